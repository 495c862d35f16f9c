package snapshot

import (
	"errors"
	"fmt"
)

// Verification errors. Verify and Decode return a *VerifyError that wraps
// exactly one of these, so callers test with errors.Is and log Reason(err).
var (
	// ErrTooLarge: the encoded input exceeds the size limit. Checked before
	// anything is decoded or allocated for the payload.
	ErrTooLarge = errors.New("snapshot: too large")
	// ErrMalformed: the envelope or the signed payload cannot be decoded
	// (truncated, trailing bytes, wrong magic, unknown format version, missing
	// header fields).
	ErrMalformed = errors.New("snapshot: malformed encoding")
	// ErrUnknownKey: the signing key id is not among the trusted keys (never
	// trusted, or rotated out).
	ErrUnknownKey = errors.New("snapshot: unknown or rotated-out signing key")
	// ErrBadSignature: the signature does not verify under the named key (the
	// payload or signature was altered).
	ErrBadSignature = errors.New("snapshot: bad signature")
	// ErrWrongCluster: the snapshot was issued for another cluster.
	ErrWrongCluster = errors.New("snapshot: wrong cluster")
	// ErrWrongNode: the snapshot was issued for another node (audience).
	ErrWrongNode = errors.New("snapshot: wrong audience node")
	// ErrStaleVersion: the version is not newer than the applied one (older or
	// equal: replay or rollback).
	ErrStaleVersion = errors.New("snapshot: version not newer than applied")
	// ErrExpired: Now is at or after ExpiresAt.
	ErrExpired = errors.New("snapshot: expired")
	// ErrNotYetValid: IssuedAt lies further in the future than the allowed
	// clock skew.
	ErrNotYetValid = errors.New("snapshot: not yet valid")
)

// Build errors.
var (
	// ErrInvalidState: the State handed to NewIndex is inconsistent (missing
	// cluster id, duplicate node, invalid JSON, credential-like key in a
	// config or policy).
	ErrInvalidState = errors.New("snapshot: invalid state")
	// ErrUnknownNode: Build was asked for a node that is not in the State.
	ErrUnknownNode = errors.New("snapshot: unknown node")
	// ErrNotMember: the node has no membership in the State's cluster.
	ErrNotMember = errors.New("snapshot: node is not a member of the cluster")
	// ErrNodeRevoked: the node's identity or membership is revoked; it gets no
	// snapshot at all.
	ErrNodeRevoked = errors.New("snapshot: node is revoked")
	// ErrInvalidOptions: BuildOptions or Config are unusable (zero version,
	// non-positive TTL, bad limits).
	ErrInvalidOptions = errors.New("snapshot: invalid options")
)

// Reason codes returned by Reason; stable strings for logs, metrics and the
// agent's status report.
const (
	ReasonOK           = "ok"
	ReasonTooLarge     = "too_large"
	ReasonMalformed    = "malformed"
	ReasonUnknownKey   = "unknown_key"
	ReasonBadSignature = "bad_signature"
	ReasonWrongCluster = "wrong_cluster"
	ReasonWrongNode    = "wrong_node"
	ReasonStaleVersion = "stale_version"
	ReasonExpired      = "expired"
	ReasonNotYetValid  = "not_yet_valid"
	ReasonOther        = "other"
)

var reasons = []struct {
	err  error
	code string
}{
	{ErrTooLarge, ReasonTooLarge},
	{ErrMalformed, ReasonMalformed},
	{ErrUnknownKey, ReasonUnknownKey},
	{ErrBadSignature, ReasonBadSignature},
	{ErrWrongCluster, ReasonWrongCluster},
	{ErrWrongNode, ReasonWrongNode},
	{ErrStaleVersion, ReasonStaleVersion},
	{ErrExpired, ReasonExpired},
	{ErrNotYetValid, ReasonNotYetValid},
}

// VerifyError is the typed error of Decode and Verify. It wraps one sentinel
// (see Unwrap) and carries a human detail.
type VerifyError struct {
	// Err is the sentinel, e.g. ErrStaleVersion.
	Err error
	// Detail says what exactly was wrong ("version 7 <= applied 9").
	Detail string
}

// Error implements error.
func (e *VerifyError) Error() string {
	if e.Detail == "" {
		return e.Err.Error()
	}
	return e.Err.Error() + ": " + e.Detail
}

// Unwrap returns the sentinel.
func (e *VerifyError) Unwrap() error { return e.Err }

// Reason returns the stable code of the sentinel err wraps: ReasonOK for nil,
// ReasonOther when err wraps none of the verification sentinels.
func Reason(err error) string {
	if err == nil {
		return ReasonOK
	}
	for _, r := range reasons {
		if errors.Is(err, r.err) {
			return r.code
		}
	}
	return ReasonOther
}

func verr(sentinel error, format string, args ...any) error {
	return &VerifyError{Err: sentinel, Detail: fmt.Sprintf(format, args...)}
}
