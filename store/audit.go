package store

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
)

// AuditEvent is a row of cluster_audit_events. ID is the insertion order; Seq,
// PrevHash and Hash are the chain position and hashes, set by ChainAudit after
// the event's transaction committed (nil until then).
type AuditEvent struct {
	ID             int64           `json:"id"`
	Seq            *int64          `json:"seq"`
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
	PrevHash       []byte          `json:"prev_hash,omitempty"`
	Hash           []byte          `json:"hash,omitempty"`
}

// AuditHasher computes an event's chain hash from the previous event's hash and
// the event (with Seq set). The audit package provides it.
type AuditHasher func(prev []byte, seq int64, e AuditEvent) []byte

const auditCols = `id, seq, at, cluster_id::text, organization_id::text, actor, actor_kind, device, source_addr, action, target_kind, target_id, outcome, risk, details, fence_epoch, prev_hash, hash`

func scanAudit(row scanner) (AuditEvent, error) {
	var e AuditEvent
	err := row.Scan(&e.ID, &e.Seq, &e.At, &e.ClusterID, &e.OrganizationID, &e.Actor, &e.ActorKind, &e.Device, &e.SourceAddr, &e.Action, &e.TargetKind, &e.TargetID, &e.Outcome, &e.Risk, &e.Details, &e.FenceEpoch, &e.PrevHash, &e.Hash)
	return e, mapErr(err)
}

// AppendAudit inserts e inside the caller's transaction: the event exists
// exactly when the change it describes commits. It takes no lock; ChainAudit
// links it into the hash chain afterwards.
func AppendAudit(ctx context.Context, q Querier, e AuditEvent) error {
	sql, args := auditInsert(e)
	_, err := q.Exec(ctx, sql, args...)
	return mapErr(err)
}

// QueueAudit queues the insert of e on b, for DB.FencedBatch to send together
// with COMMIT: the event exists exactly when the change it describes commits,
// as with AppendAudit, one round trip sooner.
func QueueAudit(b *pgx.Batch, e AuditEvent) {
	sql, args := auditInsert(e)
	b.Queue(sql, args...)
}

func auditInsert(e AuditEvent) (string, []any) {
	e.At = e.At.UTC().Truncate(time.Microsecond)
	if len(e.Risk) == 0 {
		e.Risk = json.RawMessage(`{}`)
	}
	if len(e.Details) == 0 {
		e.Details = json.RawMessage(`{}`)
	}
	return `INSERT INTO cluster_audit_events (at, cluster_id, organization_id, actor, actor_kind, device, source_addr, action, target_kind, target_id, outcome, risk, details, fence_epoch)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
		[]any{e.At, e.ClusterID, e.OrganizationID, e.Actor, e.ActorKind, e.Device, e.SourceAddr, e.Action, e.TargetKind, e.TargetID, e.Outcome, e.Risk, e.Details, e.FenceEpoch}
}

// auditChainLock is the advisory lock key of the chainer ("RAPA").
const auditChainLock = 1380012097

// PauseAuditChain holds the chainer's lock on a connection of its own until
// the returned resume is called: meanwhile every ChainAudit (on any
// authority) links nothing and returns 0, and new events stay unchained.
// It waits for a chainer at work to finish first. It exists to measure what
// chaining costs (bench BenchmarkFencedMutation); events keep being written
// and are chained once resumed.
func PauseAuditChain(ctx context.Context, db *DB) (resume func() error, err error) {
	conn, err := db.Pool.Acquire(ctx)
	if err != nil {
		return nil, mapErr(err)
	}
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, auditChainLock); err != nil {
		conn.Release()
		return nil, mapErr(err)
	}
	resumed := false
	return func() error {
		if resumed {
			return errors.New("store: the audit chain was already resumed")
		}
		resumed = true
		defer conn.Release()
		var ok bool
		err := conn.QueryRow(context.Background(), `SELECT pg_advisory_unlock($1)`, auditChainLock).Scan(&ok)
		if err == nil && !ok {
			err = errors.New("store: the audit chain lock was not held")
		}
		return mapErr(err)
	}, nil
}

// ChainAudit links up to max committed, unchained events into the hash chain
// in insertion order and returns how many it linked. Only one chainer works at
// a time (an advisory lock; others return 0 at once). Events are read back from
// PostgreSQL before hashing, so the hash covers exactly what is stored.
func ChainAudit(ctx context.Context, db *DB, hash AuditHasher, max int) (int, error) {
	n := 0
	err := db.Tx(ctx, func(tx pgx.Tx) error {
		var got bool
		if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock($1)`, auditChainLock).Scan(&got); err != nil || !got {
			return err
		}
		var headSeq int64
		var headHash []byte
		if err := tx.QueryRow(ctx, `SELECT seq, hash FROM audit_chain_head WHERE id = 1 FOR UPDATE`).Scan(&headSeq, &headHash); err != nil {
			return err
		}
		evs, err := collect(ctx, tx, scanAudit, `SELECT `+auditCols+` FROM cluster_audit_events WHERE seq IS NULL ORDER BY id LIMIT $1`, max)
		if err != nil || len(evs) == 0 {
			return err
		}
		var maxID int64
		if err := tx.QueryRow(ctx, `SELECT max_id FROM audit_chain_head WHERE id = 1`).Scan(&maxID); err != nil {
			return err
		}
		ids := make([]int64, len(evs))
		seqs := make([]int64, len(evs))
		prevs := make([][]byte, len(evs))
		hashes := make([][]byte, len(evs))
		for i, e := range evs {
			headSeq++
			h := hash(headHash, headSeq, e)
			ids[i], seqs[i], prevs[i], hashes[i] = e.ID, headSeq, headHash, h
			headHash = h
			if e.ID > maxID {
				maxID = e.ID
			}
		}
		if _, err := tx.Exec(ctx, `UPDATE cluster_audit_events e SET seq = u.seq, prev_hash = u.prev, hash = u.hash
			FROM unnest($1::bigint[], $2::bigint[], $3::bytea[], $4::bytea[]) AS u(id, seq, prev, hash) WHERE e.id = u.id`, ids, seqs, prevs, hashes); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE audit_chain_head SET seq = $1, hash = $2, max_id = $3 WHERE id = 1`, headSeq, headHash, maxID); err != nil {
			return err
		}
		n = len(evs)
		return nil
	})
	return n, err
}

// AuditFilter narrows ListAudit. Empty fields match everything.
type AuditFilter struct {
	ClusterID  string
	TargetKind string
	TargetID   string
	Action     string
	Actor      string
	// AfterID lists only events inserted after this id (a cursor).
	AfterID int64
	// BeforeID, when set, lists only events inserted before this id (the
	// cursor of a newest-first listing).
	BeforeID int64
	// Since, when set, lists only events at or after this time.
	Since time.Time
	// NewestFirst orders the events newest first (default: insertion order).
	NewestFirst bool
}

// ListAudit lists events in insertion order (chained or not yet), or newest
// first; p.Offset skips that many matching events.
func ListAudit(ctx context.Context, q Querier, f AuditFilter, p Page) ([]AuditEvent, error) {
	l, o := p.norm()
	order := "id"
	if f.NewestFirst {
		order = "id DESC"
	}
	var since *time.Time
	if !f.Since.IsZero() {
		since = &f.Since
	}
	return collect(ctx, q, scanAudit, `SELECT `+auditCols+` FROM cluster_audit_events
		WHERE ($1 = '' OR cluster_id = rap_uuid($1)) AND ($2 = '' OR target_kind = $2) AND ($3 = '' OR target_id = $3)
		  AND ($4 = '' OR action = $4) AND ($5 = '' OR actor = $5) AND id > $6
		  AND ($9 = 0 OR id < $9) AND ($10::timestamptz IS NULL OR at >= $10)
		ORDER BY `+order+` LIMIT $7 OFFSET $8`, f.ClusterID, f.TargetKind, f.TargetID, f.Action, f.Actor, f.AfterID, l, o, f.BeforeID, since)
}

// AuditHead is the chain head row: the newest chained event's seq and hash,
// the highest id chained so far, and the first seq hashed with event format 2.
type AuditHead struct {
	Seq    int64
	Hash   []byte
	MaxID  int64
	V2From int64
}

// ReadAuditHead reads the chain head row.
func ReadAuditHead(ctx context.Context, q Querier) (AuditHead, error) {
	var h AuditHead
	err := q.QueryRow(ctx, `SELECT seq, hash, max_id, v2_from FROM audit_chain_head WHERE id = 1`).Scan(&h.Seq, &h.Hash, &h.MaxID, &h.V2From)
	return h, mapErr(err)
}

// AuditMaxIDThrough returns the highest id among the events chained at or
// before seq (0 when there are none): an audit checkpoint's max_id.
func AuditMaxIDThrough(ctx context.Context, q Querier, seq int64) (int64, error) {
	var id int64
	err := q.QueryRow(ctx, `SELECT coalesce(max(id), 0) FROM cluster_audit_events WHERE seq IS NOT NULL AND seq <= $1`, seq).Scan(&id)
	return id, mapErr(err)
}

// ListAuditChained lists up to limit chained events with seq > afterSeq in
// chain order: the append-only export order (seq has no gaps and is never
// assigned out of order, unlike ids, which commit out of order).
func ListAuditChained(ctx context.Context, q Querier, afterSeq int64, limit int) ([]AuditEvent, error) {
	return collect(ctx, q, scanAudit, `SELECT `+auditCols+` FROM cluster_audit_events WHERE seq > $1 ORDER BY seq LIMIT $2`, afterSeq, limit)
}

// WalkAudit calls fn for every chained event in chain (seq) order, in batches,
// until fn returns false or an error.
func WalkAudit(ctx context.Context, q Querier, fn func(AuditEvent) (bool, error)) error {
	return WalkAuditFrom(ctx, q, 0, fn)
}

// WalkAuditFrom is WalkAudit over the events with seq > after.
func WalkAuditFrom(ctx context.Context, q Querier, after int64, fn func(AuditEvent) (bool, error)) error {
	for {
		batch, err := collect(ctx, q, scanAudit, `SELECT `+auditCols+` FROM cluster_audit_events WHERE seq > $1 ORDER BY seq LIMIT 500`, after)
		if err != nil {
			return err
		}
		for _, e := range batch {
			more, err := fn(e)
			if err != nil || !more {
				return err
			}
			after = *e.Seq
		}
		if len(batch) < 500 {
			return nil
		}
	}
}

// UnchainedAudit counts events not yet linked into the chain.
func UnchainedAudit(ctx context.Context, q Querier) (int64, error) {
	var n int64
	err := q.QueryRow(ctx, `SELECT count(*) FROM cluster_audit_events WHERE seq IS NULL`).Scan(&n)
	return n, mapErr(err)
}
