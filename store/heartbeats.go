package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// Heartbeat tables (node_heartbeats, node_heartbeat_latest) are observations,
// not fenced data: any authority writes them, in batches, outside a fenced
// transaction.

// HeartbeatRow is one row of the heartbeat append log (node_heartbeats).
type HeartbeatRow struct {
	ID             int64           `json:"id,omitempty"`
	ClusterID      string          `json:"cluster_id"`
	NodeID         string          `json:"node_id"`
	ReceivedAt     time.Time       `json:"received_at"`
	Seq            int64           `json:"seq"`
	AppliedVersion int64           `json:"applied_version"`
	AgentVersion   string          `json:"agent_version"`
	State          string          `json:"state"`
	Health         json.RawMessage `json:"health"`
	AuthorityID    string          `json:"authority_id"`
}

// LatestHeartbeat is a node's latest heartbeat in one cluster
// (node_heartbeat_latest).
type LatestHeartbeat struct {
	HeartbeatRow
	// Facts is the last reported facts object. On write, nil (or JSON null)
	// keeps the stored facts.
	Facts json.RawMessage `json:"facts"`
	// Services is the reported service status array.
	Services json.RawMessage `json:"services"`
	// SourceAddr is the agent's address as the authority saw it.
	SourceAddr string `json:"source_addr"`
	// DerivedHealth is the health last recorded by the health sweeper (the API
	// recomputes it at read time).
	DerivedHealth string `json:"derived_health"`
}

const insertHeartbeatsSQL = `INSERT INTO node_heartbeats (cluster_id, node_id, received_at, seq, applied_version, agent_version, state, health, authority_id)
SELECT c::uuid, n::uuid, r, s, av, ag, st, h::jsonb, au
  FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::int8[], $5::int8[], $6::text[], $7::text[], $8::text[], $9::text[])
       AS u(c, n, r, s, av, ag, st, h, au)`

const upsertLatestSQL = `INSERT INTO node_heartbeat_latest AS l (cluster_id, node_id, received_at, seq, applied_version, agent_version, state, health, facts, services, source_addr, authority_id)
SELECT c::uuid, n::uuid, r, s, av, ag, st, h::jsonb, coalesce(f::jsonb, 'null'::jsonb), sv::jsonb, sa, au
  FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::int8[], $5::int8[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[])
       AS u(c, n, r, s, av, ag, st, h, f, sv, sa, au)
ON CONFLICT (cluster_id, node_id) DO UPDATE SET
    received_at = EXCLUDED.received_at, seq = EXCLUDED.seq, applied_version = EXCLUDED.applied_version,
    agent_version = EXCLUDED.agent_version, state = EXCLUDED.state, health = EXCLUDED.health,
    facts = CASE WHEN jsonb_typeof(EXCLUDED.facts) = 'null' THEN l.facts ELSE EXCLUDED.facts END,
    services = EXCLUDED.services, source_addr = EXCLUDED.source_addr, authority_id = EXCLUDED.authority_id
  WHERE l.received_at <= EXCLUDED.received_at`

func jsonText(b json.RawMessage, def string) string {
	if len(b) == 0 {
		return def
	}
	return string(b)
}

// HeartbeatBatch queues, on b, ONE statement appending rows to the heartbeat
// log (INSERT … SELECT FROM unnest) and, when latest is not empty, ONE upsert
// of node_heartbeat_latest (unnest … ON CONFLICT, newest wins) and, when a
// latest heartbeat reports service workloads, ONE update of their rows in
// node_service_instances (service_reports.go). latest must not
// hold the same (cluster, node) twice. Sent with SendBatch, both run in one
// round trip and one implicit transaction.
func HeartbeatBatch(b *pgx.Batch, rows []HeartbeatRow, latest []LatestHeartbeat) {
	if len(rows) > 0 {
		n := len(rows)
		c, nd, h, ag, st, au := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		r := make([]time.Time, n)
		s, av := make([]int64, n), make([]int64, n)
		for i, x := range rows {
			c[i], nd[i], r[i], s[i], av[i], ag[i], st[i], h[i], au[i] = x.ClusterID, x.NodeID, x.ReceivedAt, x.Seq, x.AppliedVersion, x.AgentVersion, x.State, jsonText(x.Health, "{}"), x.AuthorityID
		}
		b.Queue(insertHeartbeatsSQL, c, nd, r, s, av, ag, st, h, au)
	}
	if len(latest) > 0 {
		n := len(latest)
		c, nd, h, ag, st, au, sv, sa := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		f := make([]*string, n)
		r := make([]time.Time, n)
		s, av := make([]int64, n), make([]int64, n)
		for i, x := range latest {
			c[i], nd[i], r[i], s[i], av[i], ag[i], st[i], h[i], au[i] = x.ClusterID, x.NodeID, x.ReceivedAt, x.Seq, x.AppliedVersion, x.AgentVersion, x.State, jsonText(x.Health, "{}"), x.AuthorityID
			sv[i], sa[i] = jsonText(x.Services, "[]"), x.SourceAddr
			if len(x.Facts) > 0 && string(x.Facts) != "null" {
				v := string(x.Facts)
				f[i] = &v
			}
		}
		b.Queue(upsertLatestSQL, c, nd, r, s, av, ag, st, h, f, sv, sa, au)
		queueServiceReports(b, latest)
	}
}

// copyHeartbeatRows is the append-log size from which WriteHeartbeats copies
// the rows (binary COPY) instead of inserting them from arrays.
const copyHeartbeatRows = 256

// WriteHeartbeats writes one flush of heartbeats atomically. A small flush
// is one round trip: one append-log statement and one latest-state upsert
// (see HeartbeatBatch). A large one (a backlog: copyHeartbeatRows rows or
// more) copies the append-log rows in binary inside a transaction, then
// upserts the latest rows: the server neither unpacks arrays nor parses
// uuid and timestamp text for every row (the append-log insert of 20,000
// rows from arrays spent a quarter of its time there).
func WriteHeartbeats(ctx context.Context, db *DB, rows []HeartbeatRow, latest []LatestHeartbeat) error {
	if len(rows) == 0 && len(latest) == 0 {
		return nil
	}
	if len(rows) < copyHeartbeatRows {
		b := &pgx.Batch{}
		HeartbeatBatch(b, rows, latest)
		return mapErr(db.Pool.SendBatch(ctx, b).Close())
	}
	return db.Tx(ctx, func(tx pgx.Tx) error {
		if err := copyHeartbeats(ctx, tx, rows); err != nil {
			return err
		}
		b := &pgx.Batch{}
		HeartbeatBatch(b, nil, latest)
		return tx.SendBatch(ctx, b).Close()
	})
}

// copyHeartbeats copies rows into the append log. Ids are parsed (each
// once) before the copy starts, so a malformed one is ErrConstraint and
// nothing is sent.
func copyHeartbeats(ctx context.Context, tx pgx.Tx, rows []HeartbeatRow) error {
	ids := map[string]pgtype.UUID{}
	for _, x := range rows {
		for _, id := range []string{x.ClusterID, x.NodeID} {
			if _, ok := ids[id]; ok {
				continue
			}
			var u pgtype.UUID
			if err := u.Scan(id); err != nil {
				return fmt.Errorf("%w: heartbeat id %q is not a uuid", ErrConstraint, id)
			}
			ids[id] = u
		}
	}
	_, err := tx.CopyFrom(ctx, pgx.Identifier{"node_heartbeats"},
		[]string{"cluster_id", "node_id", "received_at", "seq", "applied_version", "agent_version", "state", "health", "authority_id"},
		pgx.CopyFromSlice(len(rows), func(i int) ([]any, error) {
			x := rows[i]
			return []any{ids[x.ClusterID], ids[x.NodeID], x.ReceivedAt, x.Seq, x.AppliedVersion, x.AgentVersion, x.State,
				json.RawMessage(jsonText(x.Health, "{}")), x.AuthorityID}, nil
		}))
	return err
}

const latestCols = `cluster_id::text, node_id::text, received_at, seq, applied_version, agent_version, state, health, facts, services, source_addr, authority_id, derived_health`

func scanLatest(row scanner) (LatestHeartbeat, error) {
	var l LatestHeartbeat
	err := row.Scan(&l.ClusterID, &l.NodeID, &l.ReceivedAt, &l.Seq, &l.AppliedVersion, &l.AgentVersion, &l.State, &l.Health, &l.Facts, &l.Services, &l.SourceAddr, &l.AuthorityID, &l.DerivedHealth)
	if string(l.Facts) == "null" {
		l.Facts = json.RawMessage(`{}`)
	}
	return l, mapErr(err)
}

// LatestHeartbeats returns a node's latest heartbeat in each of its clusters.
func LatestHeartbeats(ctx context.Context, q Querier, nodeID string) ([]LatestHeartbeat, error) {
	return collect(ctx, q, scanLatest, `SELECT `+latestCols+` FROM node_heartbeat_latest WHERE node_id = rap_uuid($1) ORDER BY cluster_id`, nodeID)
}

// GetLatestHeartbeat returns the latest heartbeat of one membership.
func GetLatestHeartbeat(ctx context.Context, q Querier, clusterID, nodeID string) (LatestHeartbeat, error) {
	return scanLatest(q.QueryRow(ctx, `SELECT `+latestCols+` FROM node_heartbeat_latest WHERE cluster_id = rap_uuid($1) AND node_id = rap_uuid($2)`, clusterID, nodeID))
}

func scanHeartbeat(row scanner) (HeartbeatRow, error) {
	var h HeartbeatRow
	err := row.Scan(&h.ID, &h.ClusterID, &h.NodeID, &h.ReceivedAt, &h.Seq, &h.AppliedVersion, &h.AgentVersion, &h.State, &h.Health, &h.AuthorityID)
	return h, mapErr(err)
}

// ListHeartbeats pages through a node's heartbeat history, newest first
// (clusterID "" for every cluster).
func ListHeartbeats(ctx context.Context, q Querier, clusterID, nodeID string, p Page) ([]HeartbeatRow, error) {
	l, o := p.norm()
	return collect(ctx, q, scanHeartbeat, `SELECT id, cluster_id::text, node_id::text, received_at, seq, applied_version, agent_version, state, health, authority_id
		FROM node_heartbeats WHERE node_id = rap_uuid($1) AND ($2 = '' OR cluster_id = rap_uuid($2))
		ORDER BY received_at DESC, id DESC LIMIT $3 OFFSET $4`, nodeID, clusterID, l, o)
}

// HealthRow is the input of the health sweeper.
type HealthRow struct {
	ClusterID     string
	NodeID        string
	ReceivedAt    time.Time
	DerivedHealth string
}

// ListHeartbeatHealth returns every membership's last heartbeat time and
// recorded derived health.
func ListHeartbeatHealth(ctx context.Context, q Querier) ([]HealthRow, error) {
	return collect(ctx, q, func(r scanner) (HealthRow, error) {
		var h HealthRow
		err := r.Scan(&h.ClusterID, &h.NodeID, &h.ReceivedAt, &h.DerivedHealth)
		return h, mapErr(err)
	}, `SELECT cluster_id::text, node_id::text, received_at, derived_health FROM node_heartbeat_latest`)
}

// SetDerivedHealthSQL is SetDerivedHealth's statement. It locks the rows it
// changes in (cluster_id, node_id) order first, the order in which a
// heartbeat flush upserts them (authority.Heartbeats sorts each flush): an
// UPDATE … FROM locks in whatever order its join produces (the table's
// physical order for a hash join), and a flush and a sweep over the same
// memberships then deadlocked (seen at 10,000 agents).
const SetDerivedHealthSQL = `WITH u AS (
		SELECT c::uuid AS c, n::uuid AS n, h, f FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS u(c, n, h, f)),
	locked AS (
		SELECT l.cluster_id, l.node_id FROM node_heartbeat_latest l JOIN u ON l.cluster_id = u.c AND l.node_id = u.n
		WHERE l.derived_health = u.f ORDER BY l.cluster_id, l.node_id FOR UPDATE OF l)
	UPDATE node_heartbeat_latest l SET derived_health = u.h
		FROM u, locked k
		WHERE l.cluster_id = k.cluster_id AND l.node_id = k.node_id AND u.c = k.cluster_id AND u.n = k.node_id AND l.derived_health = u.f`

// SetDerivedHealth records derived health for many memberships in one
// statement; from guards against a concurrent sweeper (only rows still at
// their previous health change).
func SetDerivedHealth(ctx context.Context, q Querier, rows []HealthRow, from []string) (int64, error) {
	n := len(rows)
	c, nd, h := make([]string, n), make([]string, n), make([]string, n)
	for i, r := range rows {
		c[i], nd[i], h[i] = r.ClusterID, r.NodeID, r.DerivedHealth
	}
	tag, err := q.Exec(ctx, SetDerivedHealthSQL, c, nd, h, from)
	if err != nil {
		return 0, mapErr(err)
	}
	return tag.RowsAffected(), nil
}

// DeleteHeartbeatsBefore deletes at most limit append-log rows received
// before t and returns how many it deleted.
func DeleteHeartbeatsBefore(ctx context.Context, q Querier, t time.Time, limit int) (int64, error) {
	tag, err := q.Exec(ctx, `DELETE FROM node_heartbeats WHERE id IN (
		SELECT id FROM node_heartbeats WHERE received_at < $1 ORDER BY received_at LIMIT $2)`, t, limit)
	if err != nil {
		return 0, mapErr(err)
	}
	return tag.RowsAffected(), nil
}

// GoodCertificateSerials returns which of serials are still good node
// certificates: not revoked and their membership not revoked (the same rule as
// the authority's per-request check), in one statement.
func GoodCertificateSerials(ctx context.Context, q Querier, serials []string) (map[string]bool, error) {
	out := map[string]bool{}
	if len(serials) == 0 {
		return out, nil
	}
	rows, err := q.Query(ctx, `SELECT c.serial FROM node_certificates c
		JOIN cluster_memberships m ON m.cluster_id = c.cluster_id AND m.node_id = c.node_id
		WHERE c.serial = ANY($1) AND c.revoked_at IS NULL AND m.membership_status <> 'revoked'`, serials)
	if err != nil {
		return nil, mapErr(err)
	}
	defer rows.Close()
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, mapErr(err)
		}
		out[s] = true
	}
	return out, mapErr(rows.Err())
}

// AuthRevocation is the revocation counter of migration 020: every
// revocation of a node certificate or membership moves Seq and draws a new
// random Stamp in its own transaction.
type AuthRevocation struct {
	Seq   int64
	Stamp string
}

// AuthRevocationSeq reads the revocation counter. While its Stamp stays the
// same, no certificate GoodCertificateSerials accepted has been revoked since
// (compare the Stamp, not Seq: a restored or failed-over database can hold an
// older Seq, which a later revocation could bring back to a value already
// read).
func AuthRevocationSeq(ctx context.Context, q Querier) (AuthRevocation, error) {
	var r AuthRevocation
	err := q.QueryRow(ctx, `SELECT seq, stamp::text FROM auth_revocation_seq`).Scan(&r.Seq, &r.Stamp)
	return r, mapErr(err)
}

// ActiveRoleAssignments lists a membership's active role assignments.
func ActiveRoleAssignments(ctx context.Context, q Querier, clusterID, nodeID string) ([]RoleAssignment, error) {
	return collect(ctx, q, scanRole, `SELECT `+roleCols+` FROM node_role_assignments
		WHERE cluster_id = rap_uuid($1) AND node_id = rap_uuid($2) AND status = 'active' ORDER BY role, id LIMIT 500`, clusterID, nodeID)
}
