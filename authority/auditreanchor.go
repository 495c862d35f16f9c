package authority

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/rap-fabric/core/audit"
	"github.com/rap-fabric/core/fsm"
	"github.com/rap-fabric/core/store"
)

// AuditReanchor is one re-anchor recorded in Raft (fsm.AuditReanchor):
// the head it anchored, the checkpoint it superseded, who, why and when.
// Hashes encode as hex in JSON.
type AuditReanchor struct {
	Seq             int64      `json:"seq"`
	Hash            audit.Hash `json:"hash"`
	SupersededSeq   int64      `json:"superseded_seq"`
	SupersededHash  audit.Hash `json:"superseded_hash"`
	SupersededMaxID int64      `json:"superseded_max_id"`
	SupersededIndex uint64     `json:"superseded_index"`
	Reason          string     `json:"reason"`
	Actor           string     `json:"actor"`
	At              time.Time  `json:"at"`
	Index           uint64     `json:"index"`
}

func reanchorsOf(rs []fsm.AuditReanchor) []AuditReanchor {
	if len(rs) == 0 {
		return nil
	}
	out := make([]AuditReanchor, len(rs))
	for i, r := range rs {
		v := AuditReanchor{Seq: r.Seq, SupersededSeq: r.SupersededSeq, SupersededMaxID: r.SupersededMaxID,
			SupersededIndex: r.SupersededIndex, Reason: r.Reason, Actor: r.Actor, At: r.At, Index: r.Index}
		copy(v.Hash[:], r.Hash)
		copy(v.SupersededHash[:], r.SupersededHash)
		out[i] = v
	}
	return out
}

// AuditChainBehind is what the periodic checkpointer of this authority last
// found when the chain no longer contained the latest checkpoint (the
// chain's row at the checkpoint's seq is gone or differs): typically
// PostgreSQL restored from a backup older than the checkpoint. No checkpoint
// is taken until an owner re-anchors (ReanchorAudit) or the rows come back.
type AuditChainBehind struct {
	// CheckpointSeq and CheckpointIndex name the checkpoint the chain is
	// behind.
	CheckpointSeq   int64  `json:"checkpoint_seq"`
	CheckpointIndex uint64 `json:"checkpoint_index"`
	// ChainSeq is the chain head when last checked.
	ChainSeq int64 `json:"chain_seq"`
	// Break is the verifier's description.
	Break string `json:"break"`
	// Since is when this authority first found it; Refusals counts the
	// checkpoints refused since.
	Since    time.Time `json:"since"`
	Refusals int64     `json:"refusals"`
}

// AuditChainBehindStatus returns what the periodic checkpointer last found
// when the chain is behind the latest checkpoint, or nil (chain fine, not
// leader, or not checked yet).
func (a *Authority) AuditChainBehindStatus() *AuditChainBehind {
	b := a.auditBehind.Load()
	if b == nil {
		return nil
	}
	c := *b
	return &c
}

// noteAuditBehind records a refused checkpoint because the chain is behind
// cp; it reports whether this is news (a checkpoint not yet reported).
func (a *Authority) noteAuditBehind(cp fsm.AuditCheckpoint, chainSeq int64, brk string) bool {
	a.auditCheckpointRefusals.Add(1)
	prev := a.auditBehind.Load()
	next := &AuditChainBehind{CheckpointSeq: cp.Seq, CheckpointIndex: cp.Index, ChainSeq: chainSeq, Break: brk,
		Since: a.cfg.Clock().UTC(), Refusals: 1}
	news := prev == nil || prev.CheckpointIndex != cp.Index
	if !news {
		next.Since, next.Refusals = prev.Since, prev.Refusals+1
	}
	a.auditBehind.Store(next)
	return news
}

// ReanchorAuditRequest is the body of POST /v1/audit/reanchor.
type ReanchorAuditRequest struct {
	// Reason is recorded in Raft and in the audit event: why the events
	// after the chain's head are gone (which backup was restored, ticket).
	Reason string `json:"reason"`
}

// ReanchorAudit re-anchors the audit chain after PostgreSQL was restored from
// a backup older than the latest Raft checkpoint (platform owners only:
// forbidden otherwise; leader only; fenced and audited as audit.reanchor).
// The whole chain is verified against the latest checkpoint first: it must be behind it with every link intact
// (audit.Result.Behind) — a chain that contains the checkpoint needs no
// re-anchor (conflict, audit_chain_not_behind) and a chain with a broken link
// is tampering that a re-anchor must not hide (conflict, audit_chain_broken).
// Then a checkpoint at the verified chain head is committed through Raft
// (fsm.ReanchorAudit), naming the superseded checkpoint and the reason, which
// every later checkpoint keeps in its Reanchors. With an Idempotency-Key a
// retry returns the same result.
func (a *Authority) ReanchorAudit(ctx context.Context, actor Actor, req ReanchorAuditRequest, idemKey string) (AuditAnchor, error) {
	reason := strings.TrimSpace(req.Reason)
	op := Op{Action: "audit.reanchor", Actor: actor, TargetKind: "audit_chain", TargetID: AuditChainID, IdempotencyKey: idemKey,
		Details: map[string]any{"reason": reason}}
	if actor.Role != store.RolePlatformOwner {
		e := &Error{Code: CodeForbidden, Message: "re-anchoring the audit chain is for platform owners only",
			Details: map[string]any{"role": actor.Role}}
		a.auditFailure(ctx, op, e)
		return AuditAnchor{}, e
	}
	if reason == "" || len(reason) > fsm.MaxReanchorReasonLen || !utf8.ValidString(reason) {
		e := Errf(CodeInvalid, "reason is required: valid UTF-8, at most %d bytes (which backup was restored, and why)", fsm.MaxReanchorReasonLen)
		a.auditFailure(ctx, op, e)
		return AuditAnchor{}, e
	}
	if _, err := a.ensureLeader(); err != nil {
		return AuditAnchor{}, err
	}
	reqID := ""
	if idemKey != "" {
		reqID = "audit.reanchor|" + actor.ID + "|" + idemKey
	}
	retry := false
	if reqID != "" {
		if res, ok := a.state.Remembered(reqID); ok && res.Err == nil {
			retry = true
		}
	}
	if retry {
		// Applied before: audit what was applied (the newest re-anchor).
		if cp, ok := a.state.AuditCheckpoint(); ok && len(cp.Reanchors) > 0 {
			r := reanchorsOf(cp.Reanchors)[len(cp.Reanchors)-1]
			op.Details["superseded_seq"], op.Details["superseded_hash"], op.Details["superseded_index"] = r.SupersededSeq, r.SupersededHash.String(), r.SupersededIndex
			op.Details["seq"], op.Details["hash"] = r.Seq, r.Hash.String()
		}
	} else {
		cp, ok := a.state.AuditCheckpoint()
		if !ok {
			e := Errf(CodeConflict, "no audit checkpoint has been committed: nothing to re-anchor (take one with rapctl audit checkpoint)")
			e.Details = map[string]any{"reason": "audit_chain_not_behind"}
			a.auditFailure(ctx, op, e)
			return AuditAnchor{}, e
		}
		an := anchorOf(cp)
		res, err := a.VerifyAudit(ctx, &an)
		if err != nil {
			return AuditAnchor{}, asError(err)
		}
		op.Details["superseded_seq"] = cp.Seq
		op.Details["superseded_hash"] = an.Hash.String()
		op.Details["superseded_index"] = cp.Index
		switch {
		case res.OK():
			e := Errf(CodeConflict, "the audit chain contains the latest checkpoint (seq %d): nothing to re-anchor", cp.Seq)
			e.Details = map[string]any{"reason": "audit_chain_not_behind"}
			a.auditFailure(ctx, op, e)
			return AuditAnchor{}, e
		case res.Behind == nil:
			e := &Error{Code: CodeConflict, Message: "the audit chain is broken, not only behind the checkpoint; a re-anchor would hide tampering: " + res.Break.Error(),
				Details: map[string]any{"reason": "audit_chain_broken", "seq": res.Break.Seq, "event_id": res.Break.ID, "break": string(res.Break.Reason)}}
			a.auditFailure(ctx, op, e)
			return AuditAnchor{}, e
		}
		b := res.Behind
		op.Details["seq"] = b.ChainHead.Seq
		op.Details["hash"] = b.ChainHead.Hash.String()
		op.Details["fork_seq"] = b.ForkSeq
		op.Details["missing"] = b.Missing
		op.Details["continued"] = b.Continued
		maxID, err := store.AuditMaxIDThrough(ctx, a.db.Pool, b.ChainHead.Seq)
		if err != nil {
			return AuditAnchor{}, asError(err)
		}
		cmd := fsm.ReanchorAudit{Seq: b.ChainHead.Seq, Hash: bytes.Clone(b.ChainHead.Hash[:]), MaxID: maxID,
			SupersededSeq: cp.Seq, SupersededHash: bytes.Clone(cp.Hash), Reason: reason, Actor: actor.ID, At: a.cfg.Clock()}
		if _, err := a.apply(ctx, reqID, cmd); err != nil {
			if errors.Is(err, fsm.ErrAuditReanchorStale) {
				e := &Error{Code: CodeConflict, Message: "the audit checkpoint changed meanwhile; verify again and retry", Err: err,
					Details: map[string]any{"reason": "audit_checkpoint_changed"}}
				a.auditFailure(ctx, op, e)
				return AuditAnchor{}, e
			}
			return AuditAnchor{}, err
		}
		a.auditBehind.Store(nil)
		a.log.Warn("audit chain re-anchored: the superseded checkpoint's events after the new head are acknowledged as lost",
			"superseded_seq", cp.Seq, "superseded_index", cp.Index, "seq", b.ChainHead.Seq, "missing", b.Missing, "actor", actor.ID)
	}
	if _, err := Fenced(ctx, a, op, func(pgx.Tx) (struct{}, error) { return struct{}{}, nil }); err != nil {
		return AuditAnchor{}, err
	}
	return a.LatestAuditCheckpoint()
}

// behindBreak reports whether a break found by CheckpointAudit (walking from
// the checkpoint) means the chain no longer reaches the checkpoint: its row
// is gone or differs. That is how a restore from an older backup looks; the
// full verification (VerifyAudit) tells it apart from edited rows.
func behindBreak(b *audit.Break, cp fsm.AuditCheckpoint) bool {
	return b.Reason == audit.ReasonTruncated || (b.Reason == audit.ReasonHeadMismatch && b.Seq == cp.Seq)
}

// WriteAuditVerifyReport writes (for rap-authority audit verify) the outcome of VerifyAudit against anchor and
// reports whether the chain verified. Re-anchors recorded in Raft are listed
// (an acknowledged restore), and a chain that is only behind the checkpoint
// (res.Behind: links intact, anchored events missing) is reported as a
// truncation with the checkpoint, the missing events and the re-anchor
// procedure, apart from other tampering.
func WriteAuditVerifyReport(w io.Writer, anchor *AuditAnchor, res audit.Result) bool {
	if anchor != nil {
		fmt.Fprintf(w, "checkpoint: seq %d hash %s (raft index %d)\n", anchor.Seq, anchor.Hash, anchor.Index)
		for _, r := range anchor.Reanchors {
			fmt.Fprintf(w, "re-anchored at raft index %d (%s) by %s: superseded checkpoint seq %d hash %s (raft index %d) with chain head seq %d hash %s; reason: %q\n",
				r.Index, r.At.UTC().Format(time.RFC3339), r.Actor, r.SupersededSeq, r.SupersededHash, r.SupersededIndex, r.Seq, r.Hash, r.Reason)
		}
	}
	if res.OK() {
		fmt.Fprintf(w, "audit chain intact: %d events, head seq %d hash %s\n", res.Checked, res.Head.Seq, res.Head.Hash)
		return true
	}
	b := res.Break
	if bh := res.Behind; bh != nil && anchor != nil {
		fmt.Fprintf(w, "audit chain TRUNCATED behind the checkpoint (seq %d hash %s, raft index %d, taken %s): its links are intact up to its head seq %d, but %d event(s) anchored by the checkpoint are missing (seq %d..%d)",
			anchor.Seq, anchor.Hash, anchor.Index, anchor.At.UTC().Format(time.RFC3339), bh.ChainHead.Seq, bh.Missing, bh.ForkSeq, bh.Expect.Seq)
		if bh.Continued > 0 {
			fmt.Fprintf(w, "; %d event(s) were chained after the fork at seq %d", bh.Continued, bh.ForkSeq)
		}
		fmt.Fprintf(w, "\nthis is what restoring PostgreSQL from a backup older than the checkpoint leaves: if that is what happened, acknowledge the loss with `rapctl audit reanchor --reason ...` (docs/operations.md, Restore) and verify again; otherwise treat it as tampering\n")
		if b.ID != 0 {
			fmt.Fprintf(w, "first bad event id %d seq %d (%s): %v\n", b.ID, b.Seq, b.Reason, b)
		} else {
			fmt.Fprintf(w, "first bad event seq %d (%s): %v\n", b.Seq, b.Reason, b)
		}
		return false
	}
	if b.ID != 0 {
		fmt.Fprintf(w, "audit chain BROKEN: first bad event id %d seq %d (%s) after %d good events: %v\n", b.ID, b.Seq, b.Reason, res.Checked, b)
	} else {
		fmt.Fprintf(w, "audit chain BROKEN: first bad event seq %d (%s) after %d good events: %v\n", b.Seq, b.Reason, res.Checked, b)
	}
	return false
}
