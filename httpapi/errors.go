package httpapi

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/rap-fabric/core/authority"
)

// statusOf maps every authority error code to its HTTP status, once.
var statusOf = map[authority.Code]int{
	authority.CodeInvalid:        http.StatusBadRequest,
	authority.CodeTooLarge:       http.StatusRequestEntityTooLarge,
	authority.CodeNotFound:       http.StatusNotFound,
	authority.CodeConflict:       http.StatusConflict,
	authority.CodeNotLeader:      http.StatusMisdirectedRequest,
	authority.CodeNoQuorum:       http.StatusServiceUnavailable,
	authority.CodeStaleEpoch:     http.StatusServiceUnavailable,
	authority.CodeUnavailable:    http.StatusServiceUnavailable,
	authority.CodeUnknownOutcome: http.StatusGatewayTimeout,
	authority.CodeUnauthorized:   http.StatusUnauthorized,
	authority.CodeTokenInvalid:   http.StatusUnauthorized,
	authority.CodeForbidden:      http.StatusForbidden,
	authority.CodeStepUp:         http.StatusForbidden,
	authority.CodeRevoked:        http.StatusForbidden,
	authority.CodeRateLimited:    http.StatusTooManyRequests,
	authority.CodeInternal:       http.StatusInternalServerError,
	authority.CodeClusterFenced:  http.StatusConflict,
	authority.CodeClusterSplit:   http.StatusConflict,
	// A reused Idempotency-Key names a different request: 422, as the IETF
	// Idempotency-Key draft and payment APIs answer.
	authority.CodeIdempotencyReused: http.StatusUnprocessableEntity,
	// VPN leases (authority/vpn.go).
	authority.CodeNotEligible:         http.StatusForbidden,
	authority.CodeAdminIngressRefused: http.StatusForbidden,
	authority.CodeLeaseHeld:           http.StatusConflict,
	authority.CodeLeaseLost:           http.StatusConflict,
	authority.CodeConnectionDisabled:  http.StatusConflict,
	// Cluster CA rotation (authority/carotation.go).
	authority.CodeCARetired:            http.StatusUnauthorized,
	authority.CodeCARotationInProgress: http.StatusConflict,
	authority.CodeCANoRotation:         http.StatusConflict,
	authority.CodeCARetireUnsafe:       http.StatusConflict,
}

// Codes used only by the HTTP layer.
const (
	codeMethodNotAllowed authority.Code = "method_not_allowed"
	codeNotFoundRoute    authority.Code = "route_not_found"
	codeUnsupportedMedia authority.Code = "unsupported_media_type"
)

// ErrorBody is the one error shape of the API.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is the inside of ErrorBody.
type ErrorDetail struct {
	Code    string         `json:"code"`
	Message string         `json:"message"`
	Details map[string]any `json:"details,omitempty"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError renders err in the API's error shape. Details whose keys start with
// "_" are internal (audit only) and never sent.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var ae *authority.Error
	if !errors.As(err, &ae) {
		// Map what a handler passed through unconverted (a store or
		// PostgreSQL error: unavailable, bad input); anything else is internal.
		ae = authority.AsError(err)
	}
	status, ok := statusOf[ae.Code]
	if !ok {
		switch ae.Code {
		case codeMethodNotAllowed:
			status = http.StatusMethodNotAllowed
		case codeNotFoundRoute:
			status = http.StatusNotFound
		case codeUnsupportedMedia:
			status = http.StatusUnsupportedMediaType
		default:
			status = http.StatusInternalServerError
		}
	}
	if status >= 500 && ae.Code == authority.CodeInternal {
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "error", err)
	}
	var details map[string]any
	for k, v := range ae.Details {
		if strings.HasPrefix(k, "_") {
			continue
		}
		if details == nil {
			details = map[string]any{}
		}
		details[k] = v
	}
	writeJSON(w, status, ErrorBody{Error: ErrorDetail{Code: string(ae.Code), Message: ae.Message, Details: details}})
}
