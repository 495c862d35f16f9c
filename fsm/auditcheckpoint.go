package fsm

import (
	"bytes"
	"fmt"
	"time"
)

// AuditCheckpoint anchors the PostgreSQL audit hash chain in the Raft log:
// the chain's head {Seq, Hash} at some moment, the highest event id chained
// by then and the first seq hashed with event format 2. Whoever can edit
// PostgreSQL rows but not the Raft log cannot move it, so deleting the newest
// audit rows, rewinding the chain head or rewriting a tail is detected by
// verifying the chain against it.
type AuditCheckpoint struct {
	Seq    int64     `json:"seq"`
	Hash   []byte    `json:"hash"`
	MaxID  int64     `json:"max_id"`
	V2From int64     `json:"v2_from"`
	Actor  string    `json:"actor"`
	At     time.Time `json:"at"`
	Index  uint64    `json:"index"`
}

// SetAuditCheckpoint records a new audit checkpoint. It must not go back:
// Seq below the current checkpoint's fails with ErrAuditCheckpointStale, the
// same Seq with another hash with ErrAuditCheckpointConflict. V2From is
// recorded by the first checkpoint and kept by every later one.
type SetAuditCheckpoint struct {
	Seq    int64     `json:"seq"`
	Hash   []byte    `json:"hash"`
	MaxID  int64     `json:"max_id"`
	V2From int64     `json:"v2_from"`
	Actor  string    `json:"actor"`
	At     time.Time `json:"at"`
}

// TypeSetAuditCheckpoint is SetAuditCheckpoint's wire type.
const TypeSetAuditCheckpoint CommandType = 16

// Errors of SetAuditCheckpoint.
var (
	// ErrAuditCheckpointStale: a checkpoint older than the recorded one.
	ErrAuditCheckpointStale = &CommandError{Code: "audit_checkpoint_stale"}
	// ErrAuditCheckpointConflict: the recorded seq with a different hash.
	ErrAuditCheckpointConflict = &CommandError{Code: "audit_checkpoint_conflict"}
)

// Type implements Command.
func (SetAuditCheckpoint) Type() CommandType { return TypeSetAuditCheckpoint }

// Validate implements Command.
func (c SetAuditCheckpoint) Validate() error {
	if err := required("actor", c.Actor); err != nil {
		return err
	}
	if c.Seq < 0 || c.MaxID < 0 || c.V2From < 1 {
		return cmdErr(ErrInvalid, "seq and max_id must be >= 0, v2_from >= 1")
	}
	if len(c.Hash) != 32 {
		return cmdErr(ErrInvalid, fmt.Sprintf("hash has %d bytes, want 32", len(c.Hash)))
	}
	if c.At.IsZero() {
		return cmdErr(ErrInvalid, "at is required")
	}
	return nil
}

func applyAuditCheckpoint(s *state, index uint64, c SetAuditCheckpoint) Result {
	v2 := c.V2From
	if cur := s.AuditCheckpoint; cur != nil {
		switch {
		case c.Seq < cur.Seq:
			return Result{Err: cmdErr(ErrAuditCheckpointStale, fmt.Sprintf("seq %d < recorded seq %d", c.Seq, cur.Seq))}
		case c.Seq == cur.Seq && !bytes.Equal(c.Hash, cur.Hash):
			return Result{Err: cmdErr(ErrAuditCheckpointConflict, fmt.Sprintf("seq %d recorded with another hash", c.Seq))}
		}
		v2 = cur.V2From
	}
	// Replace, don't mutate: snapshots share the old value.
	s.AuditCheckpoint = &AuditCheckpoint{Seq: c.Seq, Hash: bytes.Clone(c.Hash), MaxID: c.MaxID, V2From: v2,
		Actor: c.Actor, At: c.At.UTC(), Index: index}
	return Result{}
}

// AuditCheckpoint returns the latest audit checkpoint; ok is false before the
// first one.
func (f *FSM) AuditCheckpoint() (AuditCheckpoint, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.st.AuditCheckpoint == nil {
		return AuditCheckpoint{}, false
	}
	c := *f.st.AuditCheckpoint
	c.Hash = bytes.Clone(c.Hash)
	return c, true
}

// dumpAuditCheckpoint renders the checkpoint for Dump (nothing when unset).
func dumpAuditCheckpoint(s *state, ts func(time.Time) string) string {
	c := s.AuditCheckpoint
	if c == nil {
		return ""
	}
	return fmt.Sprintf("audit-checkpoint seq=%d hash=%x max_id=%d v2_from=%d actor=%s at=%s index=%d\n",
		c.Seq, c.Hash, c.MaxID, c.V2From, c.Actor, ts(c.At), c.Index)
}
