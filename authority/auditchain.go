package authority

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"time"

	"github.com/rap-fabric/core/audit"
	"github.com/rap-fabric/core/fsm"
	"github.com/rap-fabric/core/store"
)

// AuditChainID names the single, platform-wide audit chain kept in
// cluster_audit_events (its genesis head is seeded by migration 001).
const AuditChainID = "platform"

// toAuditEvent converts a stored row to the audit package's event, the form
// that is hashed: every column (format 2). Rows chained before seq v2From
// (0: none) are hashed in the legacy format 1.
func toAuditEvent(e store.AuditEvent, v2From int64) audit.Event {
	ev := audit.Event{ID: e.ID, Actor: e.Actor, ActorKind: audit.ActorKind(e.ActorKind), Device: e.Device, SourceAddr: e.SourceAddr,
		Action: e.Action, TargetKind: e.TargetKind, TargetID: e.TargetID, Outcome: audit.Outcome(e.Outcome), Details: e.Details, At: e.At,
		FenceEpoch: e.FenceEpoch, RiskJSON: e.Risk}
	if ev.RiskJSON == nil {
		ev.RiskJSON = json.RawMessage(`{}`) // the column's default: what an insert without risk stores
	}
	if e.Seq != nil {
		ev.Seq = *e.Seq
		if *e.Seq < v2From {
			ev.Format = audit.FormatLegacy
		}
	}
	if e.ClusterID != nil {
		ev.ClusterID = *e.ClusterID
	}
	if e.OrganizationID != nil {
		ev.OrgID = *e.OrganizationID
	}
	if len(e.Risk) > 0 {
		var m map[string]string
		if json.Unmarshal(e.Risk, &m) == nil {
			ev.Risk = m
		}
	}
	copy(ev.PrevHash[:], e.PrevHash)
	copy(ev.Hash[:], e.Hash)
	return ev
}

// auditHash is the store.AuditHasher of the platform chain.
func auditHash(prev []byte, seq int64, e store.AuditEvent) []byte {
	ev := toAuditEvent(e, 0)
	ev.Seq = seq
	copy(ev.PrevHash[:], prev)
	h, err := audit.ComputeHash(ev)
	if err != nil {
		// An event that cannot be normalized is stored with an all-zero hash,
		// which the verifier reports; appendAudit validates fields first.
		return make([]byte, 32)
	}
	return h[:]
}

// chainBatchTimeout bounds one batch of ChainAudit (1,000 events: well
// under a second on a working database).
const chainBatchTimeout = 8 * time.Second

// ChainAudit links committed audit events into the hash chain (see
// store.ChainAudit) until none is left; every authority runs it periodically.
func (a *Authority) ChainAudit(ctx context.Context) (int, error) {
	total := 0
	for {
		// Each batch is bounded on its own: a statement sent on a
		// connection to a primary that was cut off (not closed) would
		// otherwise hold the chainer for the caller's whole bound (30 s in
		// RunAuditChainer), long after the pool reached the new primary.
		bctx, cancel := context.WithTimeout(ctx, chainBatchTimeout)
		n, err := store.ChainAudit(bctx, a.db, auditHash, 1000)
		cancel()
		total += n
		if err != nil || n < 1000 {
			return total, err
		}
	}
}

// RunAuditChainer chains audit events every interval until ctx ends. On the
// leader it also commits an audit checkpoint through Raft every
// Audit.CheckpointEvery events or Audit.CheckpointInterval (see
// CheckpointAudit).
func (a *Authority) RunAuditChainer(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	var retryAt time.Time
	for {
		// Bounded, so a database that stops answering (a primary lost
		// without closing its connections) cannot stall the chainer.
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		if _, err := a.ChainAudit(cctx); err != nil && ctx.Err() == nil {
			a.log.Warn("audit chainer", "error", err)
		} else if err == nil && a.raft != nil && a.raft.IsLeader() && a.FenceEpoch() > 0 && !a.cfg.Clock().Before(retryAt) {
			if err := a.maybeCheckpointAudit(ctx); err != nil && ctx.Err() == nil {
				// A broken chain is logged by CheckpointAudit; anything else
				// (lost leadership, no quorum) is retried a little later.
				retryAt = a.cfg.Clock().Add(a.cfg.Audit.retryDelay())
				var e *Error
				if !errors.As(err, &e) || e.Details["reason"] != "audit_chain_behind" {
					// (behind: logged once per checkpoint by CheckpointAudit)
					a.log.Warn("audit checkpoint", "error", err)
				}
			}
		}
		cancel()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// AuditConfig configures the audit chain's Raft checkpoints.
type AuditConfig struct {
	// CheckpointEvery: the leader commits a checkpoint once this many events
	// were chained since the last one; 0 means 1000.
	CheckpointEvery int
	// CheckpointInterval: the leader commits a checkpoint when the chain moved
	// and the last one is older than this; 0 means one minute.
	CheckpointInterval time.Duration
}

func (c AuditConfig) withDefaults() AuditConfig {
	if c.CheckpointEvery == 0 {
		c.CheckpointEvery = 1000
	}
	if c.CheckpointInterval == 0 {
		c.CheckpointInterval = time.Minute
	}
	return c
}

func (c AuditConfig) retryDelay() time.Duration {
	return min(c.withDefaults().CheckpointInterval, 10*time.Second)
}

// Validate reports the first unusable field of c as a *ConfigError (Field
// relative to AuditConfig). Zero values mean defaults.
func (c AuditConfig) Validate() error {
	if c.CheckpointEvery < 0 {
		return configErr("CheckpointEvery", "must not be negative (got %d)", c.CheckpointEvery)
	}
	if c.CheckpointInterval < 0 {
		return configErr("CheckpointInterval", "must not be negative (got %s)", c.CheckpointInterval)
	}
	return nil
}

// AuditAnchor is an audit checkpoint as committed in the Raft log: the chain
// head {Seq, Hash}, the highest event id chained by then, and the first seq
// hashed with event format 2. Hash encodes as hex in JSON.
type AuditAnchor struct {
	Seq    int64      `json:"seq"`
	Hash   audit.Hash `json:"hash"`
	MaxID  int64      `json:"max_id"`
	V2From int64      `json:"v2_from"`
	Actor  string     `json:"actor,omitempty"`
	At     time.Time  `json:"at,omitzero"`
	Index  uint64     `json:"index,omitempty"`
	// Reanchors are the re-anchors recorded in Raft, oldest first: each
	// superseded a checkpoint the restored chain was behind (ReanchorAudit).
	Reanchors []AuditReanchor `json:"reanchors,omitempty"`
	// ChainBehind, only in GET /v1/audit/checkpoint from the leader, is set
	// while its periodic checkpointer refuses to checkpoint because the chain
	// is behind this checkpoint.
	ChainBehind *AuditChainBehind `json:"chain_behind,omitempty"`
}

func anchorOf(c fsm.AuditCheckpoint) AuditAnchor {
	an := AuditAnchor{Seq: c.Seq, MaxID: c.MaxID, V2From: c.V2From, Actor: c.Actor, At: c.At, Index: c.Index,
		Reanchors: reanchorsOf(c.Reanchors)}
	copy(an.Hash[:], c.Hash)
	return an
}

// LatestAuditCheckpoint returns the latest audit checkpoint this authority's
// Raft state machine applied, or not_found before the first one.
func (a *Authority) LatestAuditCheckpoint() (AuditAnchor, error) {
	c, ok := a.state.AuditCheckpoint()
	if !ok {
		return AuditAnchor{}, Errf(CodeNotFound, "no audit checkpoint has been committed yet")
	}
	an := anchorOf(c)
	if b := a.AuditChainBehindStatus(); b != nil && b.CheckpointIndex == c.Index {
		an.ChainBehind = b
	}
	return an, nil
}

// maybeCheckpointAudit commits a checkpoint when enough events were chained
// since the last one, or the chain moved and the last one is old enough.
func (a *Authority) maybeCheckpointAudit(ctx context.Context) error {
	head, err := store.ReadAuditHead(ctx, a.db.Pool)
	if err != nil {
		return err
	}
	cfg := a.cfg.Audit.withDefaults()
	cp, ok := a.state.AuditCheckpoint()
	switch {
	case !ok && head.Seq == 0:
		return nil // nothing to anchor yet
	case ok && head.Seq == cp.Seq && bytes.Equal(head.Hash, cp.Hash):
		return nil
	case ok && head.Seq > cp.Seq && head.Seq-cp.Seq < int64(cfg.CheckpointEvery) && a.cfg.Clock().Sub(cp.At) < cfg.CheckpointInterval:
		return nil
	}
	_, err = a.CheckpointAudit(ctx, Actor{ID: "system", Kind: "system"})
	return err
}

// CheckpointAudit anchors the audit chain in Raft (leader only): it chains
// pending events, verifies the chain from the last checkpoint (from genesis
// for the first one) to the current head, and commits {seq, hash, max id}
// through the log. A chain that does not extend the last checkpoint (rows
// deleted, rewritten or replaced, the head moved back) is refused with
// conflict, logged as an error and audited as a failed audit.checkpoint; the
// old checkpoint stays, so the evidence is kept. A chain that no longer
// reaches the checkpoint (its row gone or different: a restore from an older
// backup) is refused with details.reason audit_chain_behind, reported once
// per checkpoint by the periodic checkpointer and visible in
// AuditChainBehindStatus until an owner re-anchors (ReanchorAudit). When the head has not moved
// the current checkpoint is returned and nothing is committed. An owner's
// request (actor kind other than system) is audited.
func (a *Authority) CheckpointAudit(ctx context.Context, actor Actor) (AuditAnchor, error) {
	if _, err := a.ensureLeader(); err != nil {
		return AuditAnchor{}, err
	}
	if _, err := a.ChainAudit(ctx); err != nil {
		return AuditAnchor{}, asError(err)
	}
	head, err := store.ReadAuditHead(ctx, a.db.Pool)
	if err != nil {
		return AuditAnchor{}, asError(err)
	}
	opts := audit.VerifyOptions{Start: audit.Genesis(AuditChainID)}
	v2From, maxID := head.V2From, int64(0)
	cp, hasCP := a.state.AuditCheckpoint()
	if hasCP {
		v2From, maxID = cp.V2From, cp.MaxID
		opts.Start = audit.Head{Seq: cp.Seq}
		copy(opts.Start.Hash[:], cp.Hash)
	}
	// Walk from the checkpoint (the checkpoint's own row included, so a
	// replaced head row is caught) to the newest chained row.
	from := opts.Start.Seq
	if hasCP && cp.Seq > 0 {
		from = cp.Seq - 1
	}
	var res audit.Result
	var walkErr error
	first := true
	events := func(yield func(audit.Event, error) bool) {
		walkErr = store.WalkAuditFrom(ctx, a.db.Pool, from, func(e store.AuditEvent) (bool, error) {
			ev := toAuditEvent(e, v2From)
			if first && hasCP && cp.Seq > 0 {
				first = false
				// The checkpoint's own row: it must still be there, unchanged.
				if ev.Seq != cp.Seq || !bytes.Equal(ev.Hash[:], cp.Hash) {
					res.Break = &audit.Break{Seq: cp.Seq, ID: ev.ID, Reason: audit.ReasonHeadMismatch,
						Detail: "the row at the checkpoint's seq is missing or differs from the checkpoint"}
					return false, nil
				}
				if ev.ID > maxID {
					maxID = ev.ID
				}
				return true, nil
			}
			first = false
			if ev.ID > maxID {
				maxID = ev.ID
			}
			return yield(ev, nil), nil
		})
	}
	if res.Break == nil {
		r, err := audit.Verify(iter.Seq2[audit.Event, error](events), opts)
		if err == nil {
			err = walkErr
		}
		if err != nil {
			return AuditAnchor{}, asError(err)
		}
		if res.Break == nil {
			res = r
		}
	}
	if res.Break == nil && hasCP && cp.Seq > 0 && first {
		res.Break = &audit.Break{Seq: cp.Seq, Reason: audit.ReasonTruncated, Detail: fmt.Sprintf("the checkpoint's row (seq %d) and every row after it are gone", cp.Seq)}
	}
	if res.Break == nil && hasCP && res.Head.Seq < cp.Seq {
		res.Break = &audit.Break{Seq: res.Head.Seq + 1, Reason: audit.ReasonTruncated,
			Detail: fmt.Sprintf("chain ends at seq %d, checkpoint is seq %d", res.Head.Seq, cp.Seq)}
	}
	if res.Break != nil && hasCP && behindBreak(res.Break, cp) {
		// The chain no longer reaches the checkpoint: PostgreSQL restored
		// from an older backup (or the newest rows deleted). Refuse, keep the
		// checkpoint, and say so once per checkpoint (the break's text moves
		// as new rows are chained); an owner re-anchors (ReanchorAudit).
		e := &Error{Code: CodeConflict, Message: "the audit chain is behind the last checkpoint (restored from an older backup?); no checkpoint taken — " +
			"verify with rap-authority audit verify and, if the loss is expected, re-anchor with rapctl audit reanchor: " + res.Break.Error(),
			Details: map[string]any{"reason": "audit_chain_behind", "seq": res.Break.Seq, "checkpoint_seq": cp.Seq, "break": string(res.Break.Reason)}}
		head, herr := store.ReadAuditHead(ctx, a.db.Pool)
		if herr != nil {
			head.Seq = res.Head.Seq
		}
		if news := a.noteAuditBehind(cp, head.Seq, res.Break.Error()); news || (actor.Kind != "system" && actor.Kind != "") {
			a.log.Error("audit chain is behind the last Raft checkpoint; refusing to checkpoint until an owner re-anchors (rapctl audit reanchor) or the rows come back",
				"checkpoint_seq", cp.Seq, "checkpoint_index", cp.Index, "chain_seq", head.Seq, "break", res.Break.Error())
			a.auditFailure(ctx, Op{Action: "audit.checkpoint", Actor: actor, TargetKind: "audit_chain", TargetID: AuditChainID}, e)
		}
		return AuditAnchor{}, e
	}
	if res.Break != nil {
		e := &Error{Code: CodeConflict, Message: "the audit chain does not extend the last checkpoint: " + res.Break.Error(),
			Details: map[string]any{"reason": "audit_chain_broken", "seq": res.Break.Seq, "event_id": res.Break.ID, "break": string(res.Break.Reason)}}
		// The periodic checkpointer retries; a break it already reported is
		// not audited again (an owner's request always is).
		msg := res.Break.Error()
		if last := a.lastAuditBreak.Swap(&msg); actor.Kind != "system" || last == nil || *last != msg {
			a.log.Error("audit chain does not extend the last Raft checkpoint: tampering suspected; no new checkpoint taken", "break", msg)
			a.auditFailure(ctx, Op{Action: "audit.checkpoint", Actor: actor, TargetKind: "audit_chain", TargetID: AuditChainID}, e)
		}
		return AuditAnchor{}, e
	}
	a.auditBehind.Store(nil)
	if hasCP && res.Head.Seq == cp.Seq {
		return anchorOf(cp), nil
	}
	cmd := fsm.SetAuditCheckpoint{Seq: res.Head.Seq, Hash: bytes.Clone(res.Head.Hash[:]), MaxID: maxID, V2From: max(v2From, 1),
		Actor: actor.ID, At: a.cfg.Clock()}
	if cmd.Actor == "" {
		cmd.Actor = "system"
	}
	if _, err := a.apply(ctx, "", cmd); err != nil {
		return AuditAnchor{}, err
	}
	if actor.Kind != "system" && actor.Kind != "" {
		_ = a.Audit(ctx, Op{Action: "audit.checkpoint", Actor: actor, TargetKind: "audit_chain", TargetID: AuditChainID,
			Details: map[string]any{"seq": cmd.Seq, "hash": res.Head.Hash.String()}}, "ok")
	}
	c, _ := a.state.AuditCheckpoint()
	return anchorOf(c), nil
}

// VerifyAudit chains what is pending, then walks the whole audit chain and
// reports the first broken link. With anchor (a Raft checkpoint), the chain
// must contain the anchored head, and rows before it must not have been
// inserted after it, so truncation, a rewound head and replaced rows are
// detected too; the anchor's v2_from decides which rows use the legacy hash
// format. Without one, only the links between rows are checked.
func (a *Authority) VerifyAudit(ctx context.Context, anchor *AuditAnchor) (audit.Result, error) {
	if _, err := a.ChainAudit(ctx); err != nil {
		return audit.Result{}, err
	}
	head, err := store.ReadAuditHead(ctx, a.db.Pool)
	if err != nil {
		return audit.Result{}, err
	}
	opts := audit.VerifyOptions{Start: audit.Genesis(AuditChainID)}
	v2From := head.V2From
	if anchor != nil {
		if anchor.V2From > 0 {
			v2From = anchor.V2From
		}
		opts.Expect = &audit.Head{Seq: anchor.Seq, Hash: anchor.Hash}
		opts.ExpectMaxID = anchor.MaxID
		opts.ExpectAt = anchor.At
	}
	events := func(yield func(audit.Event, error) bool) {
		stop := false
		err := store.WalkAudit(ctx, a.db.Pool, func(e store.AuditEvent) (bool, error) {
			if !yield(toAuditEvent(e, v2From), nil) {
				stop = true
				return false, nil
			}
			return true, nil
		})
		if err != nil && !stop {
			yield(audit.Event{}, fmt.Errorf("read audit: %w", err))
		}
	}
	return audit.Verify(iter.Seq2[audit.Event, error](events), opts)
}
