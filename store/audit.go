package store

import (
	"context"
	"encoding/json"
	"time"
)

// AuditEvent is a row of cluster_audit_events.
type AuditEvent struct {
	Seq            int64           `json:"seq"`
	At             time.Time       `json:"at"`
	ClusterID      *string         `json:"cluster_id,omitempty"`
	OrganizationID *string         `json:"organization_id,omitempty"`
	Actor          string          `json:"actor"`
	ActorKind      string          `json:"actor_kind"`
	Device         string          `json:"device,omitempty"`
	SourceAddr     string          `json:"source_addr,omitempty"`
	Action         string          `json:"action"`
	TargetKind     string          `json:"target_kind,omitempty"`
	TargetID       string          `json:"target_id,omitempty"`
	Outcome        string          `json:"outcome"`
	Risk           json.RawMessage `json:"risk,omitempty"`
	Details        json.RawMessage `json:"details,omitempty"`
	FenceEpoch     *int64          `json:"fence_epoch,omitempty"`
	PrevHash       []byte          `json:"prev_hash"`
	Hash           []byte          `json:"hash"`
}

// AuditHasher computes an event's chain hash from the previous event's hash and
// the event (with Seq, At and PrevHash set). The audit package provides it.
type AuditHasher func(prev []byte, e AuditEvent) []byte

const auditCols = `seq, at, cluster_id::text, organization_id::text, actor, actor_kind, device, source_addr, action, target_kind, target_id, outcome, risk, details, fence_epoch, prev_hash, hash`

func scanAudit(row scanner) (AuditEvent, error) {
	var e AuditEvent
	err := row.Scan(&e.Seq, &e.At, &e.ClusterID, &e.OrganizationID, &e.Actor, &e.ActorKind, &e.Device, &e.SourceAddr, &e.Action, &e.TargetKind, &e.TargetID, &e.Outcome, &e.Risk, &e.Details, &e.FenceEpoch, &e.PrevHash, &e.Hash)
	return e, mapErr(err)
}

// AppendAudit appends e to the hash chain inside the caller's transaction. It
// locks the chain head, so appends are linear and commit with the change they
// describe; the event becomes visible only if the transaction commits.
func AppendAudit(ctx context.Context, q Querier, hash AuditHasher, e AuditEvent) (AuditEvent, error) {
	var headSeq int64
	var headHash []byte
	if err := q.QueryRow(ctx, `SELECT seq, hash FROM audit_chain_head WHERE id = 1 FOR UPDATE`).Scan(&headSeq, &headHash); err != nil {
		return e, mapErr(err)
	}
	e.Seq = headSeq + 1
	e.At = e.At.UTC().Truncate(time.Microsecond)
	e.PrevHash = headHash
	if len(e.Risk) == 0 {
		e.Risk = json.RawMessage(`{}`)
	}
	if len(e.Details) == 0 {
		e.Details = json.RawMessage(`{}`)
	}
	e.Hash = hash(headHash, e)
	if _, err := q.Exec(ctx, `INSERT INTO cluster_audit_events (seq, at, cluster_id, organization_id, actor, actor_kind, device, source_addr, action, target_kind, target_id, outcome, risk, details, fence_epoch, prev_hash, hash)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)`,
		e.Seq, e.At, e.ClusterID, e.OrganizationID, e.Actor, e.ActorKind, e.Device, e.SourceAddr, e.Action, e.TargetKind, e.TargetID, e.Outcome, e.Risk, e.Details, e.FenceEpoch, e.PrevHash, e.Hash); err != nil {
		return e, mapErr(err)
	}
	if _, err := q.Exec(ctx, `UPDATE audit_chain_head SET seq = $1, hash = $2 WHERE id = 1`, e.Seq, e.Hash); err != nil {
		return e, mapErr(err)
	}
	return e, nil
}

// AuditFilter narrows ListAudit. Empty fields match everything.
type AuditFilter struct {
	ClusterID  string
	TargetKind string
	TargetID   string
	Action     string
	Actor      string
	AfterSeq   int64
}

// ListAudit lists events in chain order.
func ListAudit(ctx context.Context, q Querier, f AuditFilter, p Page) ([]AuditEvent, error) {
	l, _ := p.norm()
	return collect(ctx, q, scanAudit, `SELECT `+auditCols+` FROM cluster_audit_events
		WHERE ($1 = '' OR cluster_id::text = $1) AND ($2 = '' OR target_kind = $2) AND ($3 = '' OR target_id = $3)
		  AND ($4 = '' OR action = $4) AND ($5 = '' OR actor = $5) AND seq > $6
		ORDER BY seq LIMIT $7`, f.ClusterID, f.TargetKind, f.TargetID, f.Action, f.Actor, f.AfterSeq, l)
}

// WalkAudit calls fn for every event in chain order, in batches, until fn
// returns false or an error.
func WalkAudit(ctx context.Context, q Querier, fn func(AuditEvent) (bool, error)) error {
	var after int64
	for {
		batch, err := ListAudit(ctx, q, AuditFilter{AfterSeq: after}, Page{Limit: 500})
		if err != nil {
			return err
		}
		for _, e := range batch {
			more, err := fn(e)
			if err != nil || !more {
				return err
			}
			after = e.Seq
		}
		if len(batch) < 500 {
			return nil
		}
	}
}
