package authority

import (
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"time"

	"github.com/rap-fabric/core/audit"
	"github.com/rap-fabric/core/store"
)

// AuditChainID names the single, platform-wide audit chain kept in
// cluster_audit_events (its genesis head is seeded by migration 001).
const AuditChainID = "platform"

// toAuditEvent converts a stored row to the audit package's event, the form
// that is hashed.
func toAuditEvent(e store.AuditEvent) audit.Event {
	ev := audit.Event{Actor: e.Actor, ActorKind: audit.ActorKind(e.ActorKind), Device: e.Device, SourceAddr: e.SourceAddr,
		Action: e.Action, TargetKind: e.TargetKind, TargetID: e.TargetID, Outcome: audit.Outcome(e.Outcome), Details: e.Details, At: e.At}
	if e.Seq != nil {
		ev.Seq = *e.Seq
	}
	if e.ClusterID != nil {
		ev.ClusterID = *e.ClusterID
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
	ev := toAuditEvent(e)
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

// ChainAudit links committed audit events into the hash chain (see
// store.ChainAudit) until none is left; every authority runs it periodically.
func (a *Authority) ChainAudit(ctx context.Context) (int, error) {
	total := 0
	for {
		n, err := store.ChainAudit(ctx, a.db, auditHash, 1000)
		total += n
		if err != nil || n < 1000 {
			return total, err
		}
	}
}

// RunAuditChainer chains audit events every interval until ctx ends.
func (a *Authority) RunAuditChainer(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		// Bounded, so a database that stops answering (a primary lost
		// without closing its connections) cannot stall the chainer.
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		if _, err := a.ChainAudit(cctx); err != nil && ctx.Err() == nil {
			a.log.Warn("audit chainer", "error", err)
		}
		cancel()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// VerifyAudit chains what is pending, then walks the whole audit chain and
// reports the first broken link.
func (a *Authority) VerifyAudit(ctx context.Context) (audit.Result, error) {
	if _, err := a.ChainAudit(ctx); err != nil {
		return audit.Result{}, err
	}
	events := func(yield func(audit.Event, error) bool) {
		stop := false
		err := store.WalkAudit(ctx, a.db.Pool, func(e store.AuditEvent) (bool, error) {
			if !yield(toAuditEvent(e), nil) {
				stop = true
				return false, nil
			}
			return true, nil
		})
		if err != nil && !stop {
			yield(audit.Event{}, fmt.Errorf("read audit: %w", err))
		}
	}
	return audit.Verify(iter.Seq2[audit.Event, error](events), audit.VerifyOptions{Start: audit.Genesis(AuditChainID)})
}
