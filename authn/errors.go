package authn

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// Sentinel errors of the package. Every error returned by authn wraps one of
// these (or a store error); check with errors.Is. StatusCode and ErrorCode map
// them to HTTP once.
var (
	// ErrBadCredentials: unknown user, wrong password or disabled account. The
	// three are deliberately indistinguishable.
	ErrBadCredentials = errors.New("authn: bad credentials")
	// ErrMFARequired: the password was right but the login needs a second factor
	// that was not supplied.
	ErrMFARequired = errors.New("authn: second factor required")
	// ErrMFANotEnrolled: the user has no confirmed TOTP secret but policy needs one
	// (platform roles always do).
	ErrMFANotEnrolled = errors.New("authn: second factor not enrolled")
	// ErrBadSecondFactor: a TOTP or recovery code did not match.
	ErrBadSecondFactor = errors.New("authn: second factor rejected")
	// ErrTOTPReplay: the TOTP code's time step was already used by this user (or a
	// later step was).
	ErrTOTPReplay = errors.New("authn: TOTP code already used")
	// ErrLockedOut: too many failures for the user or source; see RetryError.
	ErrLockedOut = errors.New("authn: locked out")
	// ErrRateLimited: attempts arrive faster than the token bucket allows; see
	// RetryError.
	ErrRateLimited = errors.New("authn: rate limited")
	// ErrStepUpRequired: a high-risk action was attempted without an unused, fresh
	// step-up grant bound to this session, action and target.
	ErrStepUpRequired = errors.New("authn: step-up authentication required")
	// ErrSessionExpired: the session passed its idle or absolute limit, or its
	// source network changed.
	ErrSessionExpired = errors.New("authn: session expired")
	// ErrNoSession: no session matches the token (never issued, revoked, malformed).
	ErrNoSession = errors.New("authn: no session")
	// ErrCSRF: a state-changing request failed the cross-site checks.
	ErrCSRF = errors.New("authn: cross-site request refused")
	// ErrBodyTooLarge: the request body exceeds the configured limit.
	ErrBodyTooLarge = errors.New("authn: request body too large")
	// ErrTooDeep: a JSON document nests deeper than allowed.
	ErrTooDeep = errors.New("authn: JSON nested too deeply")
	// ErrBadJSON: the body is not a single valid JSON value of the expected shape.
	ErrBadJSON = errors.New("authn: malformed JSON body")
	// ErrUnsupportedMediaType: a JSON endpoint received another Content-Type.
	ErrUnsupportedMediaType = errors.New("authn: unsupported media type")
	// ErrInvalidHash: a stored password hash cannot be parsed or has unsafe params.
	ErrInvalidHash = errors.New("authn: invalid password hash")
	// ErrInvalidToken: a token has the wrong prefix, length or alphabet.
	ErrInvalidToken = errors.New("authn: invalid token")
	// ErrInvalidPassword: a new password is empty or longer than allowed.
	ErrInvalidPassword = errors.New("authn: password not acceptable")
	// ErrUnknownAction: a step-up was requested for an action that is not high-risk.
	ErrUnknownAction = errors.New("authn: not a high-risk action")
	// ErrNotFound is returned by stores when a record does not exist.
	ErrNotFound = errors.New("authn: not found")
	// ErrInvalidConfig: a Config failed Validate.
	ErrInvalidConfig = errors.New("authn: invalid config")
)

// RetryError carries how long a refused caller should wait. It wraps
// ErrLockedOut or ErrRateLimited.
type RetryError struct {
	Err        error         // ErrLockedOut or ErrRateLimited
	Key        string        // which limit fired, e.g. "user" or "source"
	RetryAfter time.Duration // at least one second
}

// Error describes the refusal and the wait.
func (e *RetryError) Error() string {
	return fmt.Sprintf("%v (%s; retry after %s)", e.Err, e.Key, e.RetryAfter)
}

// Unwrap returns the sentinel.
func (e *RetryError) Unwrap() error { return e.Err }

func retryErr(sentinel error, key string, d time.Duration) error {
	if d < time.Second {
		d = time.Second
	}
	return &RetryError{Err: sentinel, Key: key, RetryAfter: d.Truncate(time.Second)}
}

// StatusCode maps an authn error to the HTTP status the API layer should send.
// Unknown errors map to 500.
func StatusCode(err error) int {
	switch {
	case err == nil:
		return http.StatusOK
	case errors.Is(err, ErrBodyTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, ErrTooDeep), errors.Is(err, ErrBadJSON):
		return http.StatusBadRequest
	case errors.Is(err, ErrUnsupportedMediaType):
		return http.StatusUnsupportedMediaType
	case errors.Is(err, ErrCSRF), errors.Is(err, ErrStepUpRequired), errors.Is(err, ErrMFANotEnrolled):
		return http.StatusForbidden
	case errors.Is(err, ErrLockedOut), errors.Is(err, ErrRateLimited):
		return http.StatusTooManyRequests
	case errors.Is(err, ErrBadCredentials), errors.Is(err, ErrMFARequired),
		errors.Is(err, ErrBadSecondFactor), errors.Is(err, ErrTOTPReplay),
		errors.Is(err, ErrSessionExpired), errors.Is(err, ErrNoSession),
		errors.Is(err, ErrInvalidToken):
		return http.StatusUnauthorized
	case errors.Is(err, ErrUnknownAction), errors.Is(err, ErrInvalidPassword):
		return http.StatusBadRequest
	default:
		return http.StatusInternalServerError
	}
}

// ErrorCode maps an authn error to a stable machine-readable code for API
// responses. Unknown errors map to "internal".
func ErrorCode(err error) string {
	for _, c := range []struct {
		err  error
		code string
	}{
		{ErrBodyTooLarge, "body_too_large"}, {ErrTooDeep, "json_too_deep"},
		{ErrBadJSON, "bad_json"}, {ErrUnsupportedMediaType, "unsupported_media_type"},
		{ErrCSRF, "csrf"}, {ErrStepUpRequired, "step_up_required"},
		{ErrMFANotEnrolled, "mfa_not_enrolled"}, {ErrLockedOut, "locked_out"},
		{ErrRateLimited, "rate_limited"}, {ErrBadCredentials, "bad_credentials"},
		{ErrMFARequired, "mfa_required"}, {ErrBadSecondFactor, "bad_second_factor"},
		{ErrTOTPReplay, "totp_replay"}, {ErrSessionExpired, "session_expired"},
		{ErrNoSession, "no_session"}, {ErrInvalidToken, "no_session"},
		{ErrUnknownAction, "unknown_action"}, {ErrInvalidPassword, "invalid_password"},
	} {
		if errors.Is(err, c.err) {
			return c.code
		}
	}
	return "internal"
}

// WriteError writes err as a small JSON body {"error":"<code>"} with the mapped
// status and, for RetryError, a Retry-After header. Internal details are not
// written to the client.
func WriteError(w http.ResponseWriter, err error) {
	var re *RetryError
	if errors.As(err, &re) {
		w.Header().Set("Retry-After", strconv.Itoa(int(re.RetryAfter/time.Second)))
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(StatusCode(err))
	_, _ = w.Write([]byte(`{"error":"` + ErrorCode(err) + `"}` + "\n"))
}
