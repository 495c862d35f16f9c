package fsm

import "errors"

// Code is the stable, machine-readable name of a command failure. Codes travel
// inside Results, are stored in the idempotency table and survive snapshots, so
// they must never be renamed.
type Code string

// CommandError is the error carried by a Result whose command was rejected.
// Two CommandErrors match under errors.Is when their codes are equal and the
// target's Detail is empty or the same, so callers compare against the
// sentinels below:
//
//	if errors.Is(res.Err, fsm.ErrCAExists) { ... }
type CommandError struct {
	Code   Code
	Detail string
}

// Error implements error.
func (e *CommandError) Error() string {
	if e.Detail == "" {
		return "fsm: " + string(e.Code)
	}
	return "fsm: " + string(e.Code) + ": " + e.Detail
}

// Is reports whether target is a sentinel CommandError with the same code.
func (e *CommandError) Is(target error) bool {
	var t *CommandError
	if !errors.As(target, &t) {
		return false
	}
	return t.Code == e.Code && (t.Detail == "" || t.Detail == e.Detail)
}

func cmdErr(sentinel *CommandError, detail string) *CommandError {
	return &CommandError{Code: sentinel.Code, Detail: detail}
}

// Sentinel command errors. Apply never panics: every rejection is one of these
// (possibly with a Detail), returned in Result.Err.
var (
	// ErrUnknownVersion: the command's version byte is not one this FSM knows.
	ErrUnknownVersion = &CommandError{Code: "unknown_version"}
	// ErrUnknownType: the command's type byte is not one this FSM knows.
	ErrUnknownType = &CommandError{Code: "unknown_type"}
	// ErrMalformed: the command is truncated or its body does not decode.
	ErrMalformed = &CommandError{Code: "malformed"}
	// ErrInvalid: the command decoded but a field is missing or out of range.
	ErrInvalid = &CommandError{Code: "invalid"}
	// ErrStaleClaim: a ClaimEpoch carries a Raft term older than the last claim's.
	ErrStaleClaim = &CommandError{Code: "stale_claim"}
	// ErrCAExists: CreateClusterCA for a cluster that already has a CA.
	ErrCAExists = &CommandError{Code: "ca_exists"}
	// ErrNoCA: RotateClusterCA for a cluster without a CA.
	ErrNoCA = &CommandError{Code: "no_ca"}
	// ErrKeyIDReused: a CA key id already used by this cluster (current or rotated).
	ErrKeyIDReused = &CommandError{Code: "key_id_reused"}
	// ErrGossipKeyExists: SetGossipKey with OnlyIfNone for a pool that has a key.
	ErrGossipKeyExists = &CommandError{Code: "gossip_key_exists"}
	// ErrUnknownMember: RemoveMember for an id that is not a member.
	ErrUnknownMember = &CommandError{Code: "unknown_member"}
	// ErrRequestIDConflict: a request id seen before arrived with a different command.
	ErrRequestIDConflict = &CommandError{Code: "request_id_conflict"}
)

// Errors of snapshot restore and sealing (not command results).
var (
	// ErrSnapshotVersion: a snapshot written by an unknown format version.
	ErrSnapshotVersion = errors.New("fsm: unknown snapshot version")
	// ErrSealedFormat: sealed key material is not in a format this Sealer opens.
	ErrSealedFormat = errors.New("fsm: sealed data format not recognised")
	// ErrKEK: a key-encryption key of the wrong length or encoding.
	ErrKEK = errors.New("fsm: invalid key-encryption key")
)
