package raftnode

import (
	"errors"
	"fmt"
)

// Sentinel errors. Node methods wrap them with %w; check with errors.Is. An
// error may match more than one: an Apply whose outcome is unknown because the
// quorum went away matches both ErrUnknownOutcome and ErrNoQuorum. Check
// ErrUnknownOutcome first — it decides whether a retry needs the same
// idempotency key.
var (
	// ErrNotLeader: this node is not the leader but knows who is. The error is
	// a *NotLeaderError carrying the leader's id and Raft address. Nothing was
	// proposed.
	ErrNotLeader = errors.New("raftnode: not the leader")
	// ErrNoQuorum: no leader is known, or this leader could not confirm a
	// quorum (or commit) within Config.QuorumTimeout. Alone, it means nothing
	// was proposed; together with ErrUnknownOutcome the proposal may still
	// commit later.
	ErrNoQuorum = errors.New("raftnode: no quorum")
	// ErrUnknownOutcome: a proposal was handed to Raft but leadership was lost
	// or the deadline passed before it committed; it may or may not be applied.
	// Retry with the same request id (the FSM deduplicates).
	ErrUnknownOutcome = errors.New("raftnode: outcome unknown")
	// ErrAlreadyBootstrapped: Bootstrap found existing Raft state on disk.
	ErrAlreadyBootstrapped = errors.New("raftnode: already bootstrapped")
	// ErrShutdown: the node was shut down.
	ErrShutdown = errors.New("raftnode: shut down")
	// ErrInvalidConfig: Config.Validate failed; the message names the fields.
	ErrInvalidConfig = errors.New("raftnode: invalid config")
)

// NotLeaderError is returned when a follower is asked to do leader work. It
// matches ErrNotLeader under errors.Is.
type NotLeaderError struct {
	// LeaderID and LeaderAddr name the current leader (Raft id and address).
	LeaderID   string
	LeaderAddr string
}

// Error implements error.
func (e *NotLeaderError) Error() string {
	return fmt.Sprintf("raftnode: not the leader (leader %s at %s)", e.LeaderID, e.LeaderAddr)
}

// Is makes errors.Is(err, ErrNotLeader) true.
func (e *NotLeaderError) Is(target error) bool { return target == ErrNotLeader }
