package release

import (
	"errors"
	"fmt"
)

// Verification errors. Decode, Verify* and Digester.Verify return a *Error
// wrapping exactly one of these; test with errors.Is and log Reason(err).
var (
	// ErrTooLarge: the input exceeds the size limit (checked while reading,
	// before the payload is decoded).
	ErrTooLarge = errors.New("release: too large")
	// ErrMalformed: the envelope or payload cannot be decoded, is not in
	// canonical form, has the wrong kind, or violates a field rule.
	ErrMalformed = errors.New("release: malformed")
	// ErrUnknownKey: a signature names a key that is not trusted (not a
	// registered root, or not in the verified key set).
	ErrUnknownKey = errors.New("release: unknown key")
	// ErrRevokedKey: the manifest is signed by a key the key set revokes.
	ErrRevokedKey = errors.New("release: revoked key")
	// ErrBadSignature: a signature does not verify under the key it names.
	ErrBadSignature = errors.New("release: bad signature")
	// ErrThreshold: fewer distinct valid root signatures than the threshold.
	ErrThreshold = errors.New("release: root signature threshold not met")
	// ErrExpired: Now is at or after the document's ExpiresAt.
	ErrExpired = errors.New("release: expired")
	// ErrNotYetValid: IssuedAt lies further in the future than the skew.
	ErrNotYetValid = errors.New("release: not yet valid")
	// ErrStaleKeySet: the key set version is older than the applied one
	// (a replayed key set could resurrect a revoked key).
	ErrStaleKeySet = errors.New("release: key set older than applied")
	// ErrWrongProduct: the manifest is for another product.
	ErrWrongProduct = errors.New("release: wrong product")
	// ErrWrongArch: the manifest has no artifact for the verifier's OS and
	// architecture.
	ErrWrongArch = errors.New("release: no artifact for this os/arch")
	// ErrWrongChannel: the manifest is not eligible for the requested channel.
	ErrWrongChannel = errors.New("release: not eligible for channel")
	// ErrDowngrade: the version is lower than the current one and no signed
	// rollback or pin allows it.
	ErrDowngrade = errors.New("release: downgrade refused")
	// ErrUpgradePath: the current version is below the manifest's minimum
	// upgrade-from version.
	ErrUpgradePath = errors.New("release: current version below minimum upgrade-from")
	// ErrBlocklisted: the version is blocklisted.
	ErrBlocklisted = errors.New("release: version blocklisted")
	// ErrArtifactMismatch: the artifact bytes differ from the manifest (size
	// or sha256), whoever served them.
	ErrArtifactMismatch = errors.New("release: artifact does not match manifest")
	// ErrInvalid: a document or key handed to a Sign or New function is
	// unusable (validation failed before signing).
	ErrInvalid = errors.New("release: invalid input")
)

// Reason codes returned by Reason: stable strings for logs, the agent's
// heartbeat (last failure) and API error codes.
const (
	ReasonOK               = "ok"
	ReasonTooLarge         = "too_large"
	ReasonMalformed        = "malformed"
	ReasonUnknownKey       = "unknown_key"
	ReasonRevokedKey       = "revoked_key"
	ReasonBadSignature     = "bad_signature"
	ReasonThreshold        = "threshold_not_met"
	ReasonExpired          = "expired"
	ReasonNotYetValid      = "not_yet_valid"
	ReasonStaleKeySet      = "stale_key_set"
	ReasonWrongProduct     = "wrong_product"
	ReasonWrongArch        = "wrong_arch"
	ReasonWrongChannel     = "wrong_channel"
	ReasonDowngrade        = "downgrade"
	ReasonUpgradePath      = "unsupported_upgrade_path"
	ReasonBlocklisted      = "blocklisted"
	ReasonArtifactMismatch = "artifact_mismatch"
	ReasonInvalid          = "invalid"
	ReasonOther            = "other"
)

var reasons = []struct {
	err  error
	code string
}{
	{ErrTooLarge, ReasonTooLarge},
	{ErrMalformed, ReasonMalformed},
	{ErrUnknownKey, ReasonUnknownKey},
	{ErrRevokedKey, ReasonRevokedKey},
	{ErrBadSignature, ReasonBadSignature},
	{ErrThreshold, ReasonThreshold},
	{ErrExpired, ReasonExpired},
	{ErrNotYetValid, ReasonNotYetValid},
	{ErrStaleKeySet, ReasonStaleKeySet},
	{ErrWrongProduct, ReasonWrongProduct},
	{ErrWrongArch, ReasonWrongArch},
	{ErrWrongChannel, ReasonWrongChannel},
	{ErrDowngrade, ReasonDowngrade},
	{ErrUpgradePath, ReasonUpgradePath},
	{ErrBlocklisted, ReasonBlocklisted},
	{ErrArtifactMismatch, ReasonArtifactMismatch},
	{ErrInvalid, ReasonInvalid},
}

// Error is the typed error of this package: one sentinel plus a detail.
type Error struct {
	// Err is the sentinel, e.g. ErrDowngrade.
	Err error
	// Detail says what exactly was wrong ("1.2.0 < current 1.3.0").
	Detail string
}

// Error implements error.
func (e *Error) Error() string {
	if e.Detail == "" {
		return e.Err.Error()
	}
	return e.Err.Error() + ": " + e.Detail
}

// Unwrap returns the sentinel.
func (e *Error) Unwrap() error { return e.Err }

// Reason returns the stable code of the sentinel err wraps: ReasonOK for nil,
// ReasonOther when err wraps none of this package's sentinels.
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

func rerr(sentinel error, format string, args ...any) error {
	return &Error{Err: sentinel, Detail: fmt.Sprintf(format, args...)}
}
