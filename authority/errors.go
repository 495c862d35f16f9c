package authority

import (
	"errors"
	"fmt"

	"github.com/rap-fabric/core/store"
)

// Code is a machine-readable error code; the HTTP layer maps each code to a
// status once (httpapi/errors.go).
type Code string

// Error codes.
const (
	CodeInvalid        Code = "invalid_argument"
	CodeNotFound       Code = "not_found"
	CodeConflict       Code = "conflict"
	CodeNotLeader      Code = "not_leader"
	CodeNoQuorum       Code = "no_quorum"
	CodeStaleEpoch     Code = "stale_epoch"
	CodeUnknownOutcome Code = "unknown_outcome"
	CodeUnauthorized   Code = "unauthenticated"
	CodeForbidden      Code = "forbidden"
	CodeStepUp         Code = "step_up_required"
	CodeRateLimited    Code = "rate_limited"
	CodeTokenInvalid   Code = "token_invalid"
	CodeRevoked        Code = "revoked"
	CodeUnavailable    Code = "unavailable"
	CodeInternal       Code = "internal"
	CodeTooLarge       Code = "too_large"
	// CodeClusterFenced: the owner fenced (froze) the cluster; see partition.go.
	CodeClusterFenced Code = "cluster_fenced"
	// CodeClusterSplit: the owner declared the cluster split; admissions wait.
	CodeClusterSplit Code = "cluster_split"
	// CodeIdempotencyReused: an Idempotency-Key was sent again with a
	// different request (method, path or body) than the one it first named.
	CodeIdempotencyReused Code = "idempotency_key_reused"
	// CodeNotEligible: the node may not own this VPN connection's lease
	// (membership, allowed-node policy or VPN role missing; see vpn.go).
	CodeNotEligible Code = "not_eligible"
	// CodeLeaseHeld: another node holds the VPN connection's active lease (or
	// a fenced holder's term has not run out yet).
	CodeLeaseHeld Code = "lease_held"
	// CodeLeaseLost: the caller's VPN lease is no longer active (expired,
	// released, fenced, revoked or superseded): stop using it.
	CodeLeaseLost Code = "lease_lost"
	// CodeConnectionDisabled: the VPN connection's desired state is disabled.
	CodeConnectionDisabled Code = "connection_disabled"
)

// Error is the typed error every authority operation returns.
type Error struct {
	Code    Code
	Message string
	Details map[string]any
	Err     error // cause, never shown to clients
}

// Error implements error.
func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Errf makes an Error with a formatted message.
func Errf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// CodeOf returns the code of err, mapping store errors; unknown errors are
// internal. A nil error has the empty code.
func CodeOf(err error) Code {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return asError(err).Code
}

// AsError converts any error into an *Error (nil for nil): typed errors keep
// their code, store and PostgreSQL errors are mapped, anything else is internal.
func AsError(err error) *Error { return asError(err) }

// asError converts any error into an *Error, mapping the store's typed errors.
func asError(err error) *Error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	err = store.MapError(err) // raw pgx/PostgreSQL errors too (idempotent)
	switch {
	case errors.Is(err, store.ErrOutcomeUnknown):
		return &Error{Code: CodeUnknownOutcome, Message: "the database connection failed during commit; the change may or may not be applied — retry with the same Idempotency-Key", Err: err}
	case errors.Is(err, store.ErrNotFound):
		return &Error{Code: CodeNotFound, Message: "not found", Err: err}
	case errors.Is(err, store.ErrConflict):
		return &Error{Code: CodeConflict, Message: "already exists or changed concurrently", Err: err}
	case errors.Is(err, store.ErrConstraint):
		return &Error{Code: CodeInvalid, Message: constraintMessage(err), Err: err}
	case errors.Is(err, store.ErrStaleEpoch):
		return &Error{Code: CodeStaleEpoch, Message: "this authority's epoch is stale; a newer leader exists", Err: err}
	case errors.Is(err, store.ErrTimeout), errors.Is(err, store.ErrUnavailable):
		return &Error{Code: CodeUnavailable, Message: "database unavailable; nothing was written", Err: err}
	}
	return &Error{Code: CodeInternal, Message: "internal error", Err: err}
}

func constraintMessage(err error) string {
	msg := err.Error()
	const prefix = "constraint violated: "
	if len(msg) > len(prefix) && msg[:len(prefix)] == prefix {
		return msg[len(prefix):]
	}
	return "the change violates a data model rule"
}
