package fsm

import (
	"bytes"
	"fmt"
	"time"
	"unicode/utf8"
)

// ReanchorAudit replaces the audit checkpoint with one at the current chain
// head when the chain no longer contains the recorded one — PostgreSQL was
// restored from a backup older than the checkpoint, so the events after the
// backup are gone. Unlike SetAuditCheckpoint it may move the checkpoint back,
// so it names the checkpoint it supersedes (SupersededSeq/SupersededHash:
// it fails with ErrAuditReanchorStale when that is not the recorded one) and
// carries the operator's Reason; both are kept in the checkpoint's Reanchors,
// so an acknowledged restore stays distinguishable from silent truncation.
type ReanchorAudit struct {
	Seq            int64     `json:"seq"`
	Hash           []byte    `json:"hash"`
	MaxID          int64     `json:"max_id"`
	SupersededSeq  int64     `json:"superseded_seq"`
	SupersededHash []byte    `json:"superseded_hash"`
	Reason         string    `json:"reason"`
	Actor          string    `json:"actor"`
	At             time.Time `json:"at"`
}

// AuditReanchor records one applied ReanchorAudit: the new head, the
// checkpoint it superseded, who asked, why, when and at which log index.
type AuditReanchor struct {
	Seq             int64     `json:"seq"`
	Hash            []byte    `json:"hash"`
	SupersededSeq   int64     `json:"superseded_seq"`
	SupersededHash  []byte    `json:"superseded_hash"`
	SupersededMaxID int64     `json:"superseded_max_id"`
	SupersededIndex uint64    `json:"superseded_index"`
	Reason          string    `json:"reason"`
	Actor           string    `json:"actor"`
	At              time.Time `json:"at"`
	Index           uint64    `json:"index"`
}

// TypeReanchorAudit is ReanchorAudit's wire type.
const TypeReanchorAudit CommandType = 22

// MaxAuditReanchors bounds the re-anchor history kept in the checkpoint; the
// oldest entries are dropped first (they remain in the audit log).
const MaxAuditReanchors = 32

// MaxReanchorReasonLen bounds ReanchorAudit.Reason in bytes.
const MaxReanchorReasonLen = 1024

// ErrAuditReanchorStale: the checkpoint a ReanchorAudit supersedes is not
// the recorded one (none recorded, or another re-anchor or checkpoint won).
var ErrAuditReanchorStale = &CommandError{Code: "audit_reanchor_stale"}

// Type implements Command.
func (ReanchorAudit) Type() CommandType { return TypeReanchorAudit }

// Validate implements Command.
func (c ReanchorAudit) Validate() error {
	if err := required("actor", c.Actor, "reason", c.Reason); err != nil {
		return err
	}
	if len(c.Reason) > MaxReanchorReasonLen || !utf8.ValidString(c.Reason) {
		return cmdErr(ErrInvalid, fmt.Sprintf("reason must be valid UTF-8 of at most %d bytes", MaxReanchorReasonLen))
	}
	if c.Seq < 0 || c.MaxID < 0 || c.SupersededSeq < 0 {
		return cmdErr(ErrInvalid, "seq, max_id and superseded_seq must be >= 0")
	}
	if len(c.Hash) != 32 || len(c.SupersededHash) != 32 {
		return cmdErr(ErrInvalid, "hash and superseded_hash must have 32 bytes")
	}
	if c.Seq == c.SupersededSeq && bytes.Equal(c.Hash, c.SupersededHash) {
		return cmdErr(ErrInvalid, "the new head is the superseded checkpoint: nothing to re-anchor")
	}
	if c.At.IsZero() {
		return cmdErr(ErrInvalid, "at is required")
	}
	return nil
}

func applyReanchorAudit(s *state, index uint64, c ReanchorAudit) Result {
	cur := s.AuditCheckpoint
	if cur == nil {
		return Result{Err: cmdErr(ErrAuditReanchorStale, "no audit checkpoint is recorded")}
	}
	if cur.Seq != c.SupersededSeq || !bytes.Equal(cur.Hash, c.SupersededHash) {
		return Result{Err: cmdErr(ErrAuditReanchorStale, fmt.Sprintf("the recorded checkpoint is seq %d hash %x…, not seq %d hash %x…",
			cur.Seq, prefix4(cur.Hash), c.SupersededSeq, prefix4(c.SupersededHash)))}
	}
	at := c.At.UTC()
	r := AuditReanchor{Seq: c.Seq, Hash: bytes.Clone(c.Hash), SupersededSeq: cur.Seq, SupersededHash: cur.Hash,
		SupersededMaxID: cur.MaxID, SupersededIndex: cur.Index, Reason: c.Reason, Actor: c.Actor, At: at, Index: index}
	// A new slice: snapshots share the old one.
	keep := cur.Reanchors
	if len(keep) >= MaxAuditReanchors {
		keep = keep[len(keep)-MaxAuditReanchors+1:]
	}
	reanchors := append(append(make([]AuditReanchor, 0, len(keep)+1), keep...), r)
	s.AuditCheckpoint = &AuditCheckpoint{Seq: c.Seq, Hash: bytes.Clone(c.Hash), MaxID: c.MaxID, V2From: cur.V2From,
		Actor: c.Actor, At: at, Index: index, Reanchors: reanchors}
	return Result{}
}

// prefix4 is the first bytes of a hash for messages.
func prefix4(b []byte) []byte { return b[:min(len(b), 4)] }
