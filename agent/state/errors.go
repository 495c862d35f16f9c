package state

import "errors"

// Sentinel errors of the local state store. Every error returned by this
// package wraps one of these (or an I/O error from the operating system) with
// %w, so callers test them with errors.Is.
var (
	// ErrCorrupt means the state file is not a readable RAP agent state file:
	// garbage, truncated, failed bbolt checksums or consistency checks, a
	// missing meta bucket, or a stored value that no longer decodes. The agent
	// must not retry in a loop; an operator restores or removes the file (the
	// node then has to enroll again).
	ErrCorrupt = errors.New("agent state file is corrupt")

	// ErrNewerSchema means the file was written by a newer agent whose schema
	// this binary does not understand. The file is left untouched; run the
	// newer agent or roll the file back from a backup.
	ErrNewerSchema = errors.New("agent state file has a newer schema than this agent supports")

	// ErrLocked means another process (or another Store in this process) holds
	// the file's exclusive lock and did not release it within Options.LockTimeout.
	ErrLocked = errors.New("agent state file is locked by another process")

	// ErrInsecurePermissions means the state file (which holds private keys)
	// is readable or writable by group or others, or is not a regular file.
	// The store refuses to open it rather than silently fixing the mode,
	// because the keys may already have been exposed; the operator must
	// investigate, then chmod 0600 (or rotate the identity).
	ErrInsecurePermissions = errors.New("agent state file has insecure permissions (want 0600)")

	// ErrStaleVersion means AdvanceAppliedVersion was offered a snapshot version
	// that is not strictly greater than the applied one.
	ErrStaleVersion = errors.New("snapshot version is not newer than the applied version")

	// ErrNotFound means the requested record does not exist (yet).
	ErrNotFound = errors.New("not found in agent state")

	// ErrNoMembership means the cluster has no namespace in this file; create
	// it with PutIdentity or PutMembership first.
	ErrNoMembership = errors.New("no membership for cluster in agent state")

	// ErrInvalidArgument means a caller passed an invalid cluster id, record
	// or size.
	ErrInvalidArgument = errors.New("invalid argument")

	// ErrClosed means the Store was used after Close.
	ErrClosed = errors.New("agent state store is closed")
)
