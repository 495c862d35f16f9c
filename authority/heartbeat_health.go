package authority

// Derived health: the leader's sweeper maps the age of each node's last
// heartbeat to healthy / late / stale / offline, records changes in
// node_heartbeat_latest and audits them; LatestHeartbeats reads the
// latest state with the health derived now.

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rap-fabric/core/store"
)

// Health is the health an authority derives from the last heartbeat time.
type Health string

// Derived health values (the node_heartbeat_latest.derived_health spellings).
const (
	HealthHealthy Health = "healthy"
	HealthLate    Health = "late"
	HealthStale   Health = "stale"
	HealthOffline Health = "offline"
	HealthUnknown Health = "unknown"
)

// DeriveHealth maps the age of the last heartbeat to a health value; a zero
// last time is unknown.
func DeriveHealth(last, now time.Time, c HeartbeatConfig) Health {
	c.defaults()
	if last.IsZero() {
		return HealthUnknown
	}
	switch age := now.Sub(last); {
	case age <= c.LateAfter:
		return HealthHealthy
	case age <= c.StaleAfter:
		return HealthLate
	case age <= c.OfflineAfter:
		return HealthStale
	default:
		return HealthOffline
	}
}

// sweepIfLeader derives health for every membership with a heartbeat,
// records changes and audits them. Only the leader sweeps, so a change is
// audited once.
func (h *Heartbeats) sweepIfLeader(ctx context.Context) {
	if !h.a.raft.IsLeader() {
		return
	}
	if _, err := h.Sweep(ctx); err != nil {
		h.a.log.Warn("heartbeat health sweep failed", "error", err)
	}
}

// HealthChange is one derived-health transition found by a sweep.
type HealthChange struct {
	ClusterID     string    `json:"cluster_id"`
	NodeID        string    `json:"node_id"`
	From          Health    `json:"from"`
	To            Health    `json:"to"`
	LastHeartbeat time.Time `json:"last_heartbeat"`
}

// Sweep derives the health of every membership with a heartbeat, records the
// changes in one statement and audits each (action node.health).
func (h *Heartbeats) Sweep(ctx context.Context) ([]HealthChange, error) {
	rows, err := store.ListHeartbeatHealth(ctx, h.a.db.Pool)
	if err != nil {
		return nil, err
	}
	now := h.cfg.Clock()
	var changes []HealthChange
	var upd []store.HealthRow
	var from []string
	for _, r := range rows {
		d := DeriveHealth(r.ReceivedAt, now, h.cfg)
		if string(d) == r.DerivedHealth {
			continue
		}
		changes = append(changes, HealthChange{ClusterID: r.ClusterID, NodeID: r.NodeID, From: Health(r.DerivedHealth), To: d, LastHeartbeat: r.ReceivedAt})
		upd = append(upd, store.HealthRow{ClusterID: r.ClusterID, NodeID: r.NodeID, DerivedHealth: string(d)})
		from = append(from, r.DerivedHealth)
	}
	if len(upd) == 0 {
		return nil, nil
	}
	// The new health and its audit events commit together (one
	// transaction, the events sent in one batch): a fleet whose heartbeats
	// all resume at once changes thousands of rows in one sweep, and one
	// transaction per event would hold the sweep for seconds.
	b := &pgx.Batch{}
	for _, c := range changes {
		ev, err := h.a.auditEvent(Op{Action: "node.health", Actor: Actor{ID: "system", Kind: "system"}, ClusterID: c.ClusterID, TargetKind: "node", TargetID: c.NodeID,
			Details: map[string]any{"from": string(c.From), "to": string(c.To), "last_heartbeat": c.LastHeartbeat.UTC().Format(time.RFC3339Nano)}}, "ok", 0, nil)
		if err != nil {
			return nil, err
		}
		store.QueueAudit(b, ev)
	}
	if err := h.a.db.Tx(ctx, func(tx pgx.Tx) error {
		if _, err := store.SetDerivedHealth(ctx, tx, upd, from); err != nil {
			return err
		}
		return tx.SendBatch(ctx, b).Close()
	}); err != nil {
		return nil, asError(err)
	}
	return changes, nil
}

// NodeHeartbeat is a node's latest heartbeat in one cluster with its health
// derived now.
type NodeHeartbeat struct {
	store.LatestHeartbeat
	Health Health `json:"health_state"`
	// AgeSeconds is the age of the heartbeat when read.
	AgeSeconds float64 `json:"age_seconds"`
	// Updates is the update state per product the heartbeat carried
	// (heartbeat_updates.go); UpdateState summarises the agent's.
	Updates     []UpdateReport `json:"updates"`
	UpdateState string         `json:"update_state"`
}

// LatestHeartbeats returns a node's latest heartbeat per cluster. A newer
// heartbeat this authority holds in memory (not flushed yet) wins over the
// database row.
func (h *Heartbeats) LatestHeartbeats(ctx context.Context, nodeID string) ([]NodeHeartbeat, error) {
	if _, err := store.GetNode(ctx, h.a.db.Pool, nodeID); err != nil {
		return nil, asError(err)
	}
	rows, err := store.LatestHeartbeats(ctx, h.a.db.Pool, nodeID)
	if err != nil {
		return nil, asError(err)
	}
	now := h.cfg.Clock()
	out := make([]NodeHeartbeat, 0, len(rows))
	for _, r := range rows {
		sh := h.shardOf(r.NodeID)
		sh.mu.Lock()
		if e := sh.latest[hbKey{r.ClusterID, r.NodeID}]; e != nil && e.row.ReceivedAt.After(r.ReceivedAt) {
			facts, dh := r.Facts, r.DerivedHealth
			r = e.row
			r.Facts, r.DerivedHealth = facts, dh
			if e.facts != nil {
				r.Facts = e.facts
			}
		}
		sh.mu.Unlock()
		us := updatesOf(r.Health)
		if us == nil {
			us = []UpdateReport{}
		}
		out = append(out, NodeHeartbeat{LatestHeartbeat: r, Health: DeriveHealth(r.ReceivedAt, now, h.cfg), AgeSeconds: now.Sub(r.ReceivedAt).Seconds(),
			Updates: us, UpdateState: UpdateSummary(us)})
	}
	return out, nil
}
