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
	// Reanchors are the re-anchors that superseded an earlier checkpoint
	// (oldest first, at most MaxAuditReanchors), carried by every later
	// checkpoint so the history of acknowledged truncations stays in Raft.
	Reanchors []AuditReanchor `json:"reanchors,omitempty"`
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
	var reanchors []AuditReanchor
	if cur := s.AuditCheckpoint; cur != nil {
		switch {
		case c.Seq < cur.Seq:
			return Result{Err: cmdErr(ErrAuditCheckpointStale, fmt.Sprintf("seq %d < recorded seq %d", c.Seq, cur.Seq))}
		case c.Seq == cur.Seq && !bytes.Equal(c.Hash, cur.Hash):
			return Result{Err: cmdErr(ErrAuditCheckpointConflict, fmt.Sprintf("seq %d recorded with another hash", c.Seq))}
		}
		v2, reanchors = cur.V2From, cur.Reanchors
	}
	// Replace, don't mutate: snapshots share the old value (and its
	// Reanchors, which are never mutated either).
	s.AuditCheckpoint = &AuditCheckpoint{Seq: c.Seq, Hash: bytes.Clone(c.Hash), MaxID: c.MaxID, V2From: v2,
		Actor: c.Actor, At: c.At.UTC(), Index: index, Reanchors: reanchors}
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
	c.Reanchors = make([]AuditReanchor, len(f.st.AuditCheckpoint.Reanchors))
	for i, r := range f.st.AuditCheckpoint.Reanchors {
		r.Hash, r.SupersededHash = bytes.Clone(r.Hash), bytes.Clone(r.SupersededHash)
		c.Reanchors[i] = r
	}
	if len(c.Reanchors) == 0 {
		c.Reanchors = nil
	}
	return c, true
}

// dumpAuditCheckpoint renders the checkpoint for Dump (nothing when unset).
func dumpAuditCheckpoint(s *state, ts func(time.Time) string) string {
	c := s.AuditCheckpoint
	if c == nil {
		return ""
	}
	out := fmt.Sprintf("audit-checkpoint seq=%d hash=%x max_id=%d v2_from=%d actor=%s at=%s index=%d\n",
		c.Seq, c.Hash, c.MaxID, c.V2From, c.Actor, ts(c.At), c.Index)
	for _, r := range c.Reanchors {
		out += fmt.Sprintf("audit-reanchor seq=%d hash=%x superseded_seq=%d superseded_hash=%x superseded_max_id=%d superseded_index=%d reason=%q actor=%s at=%s index=%d\n",
			r.Seq, r.Hash, r.SupersededSeq, r.SupersededHash, r.SupersededMaxID, r.SupersededIndex, r.Reason, r.Actor, ts(r.At), r.Index)
	}
	return out
}
