package store_test

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/store"
)

// TestSetDerivedHealthLocksInFlushOrder: the health sweep's update locks its
// rows in (cluster, node) order, the order of a heartbeat flush's upsert, so
// the two cannot deadlock. The rows lie in the table in the other order and
// are passed in the other order; a transaction holding the first row (as a
// flush does that has upserted it and goes on to the second) blocks the sweep
// before the sweep takes the second row, so the flush can take it and commit.
// With an update that locks in join order the sweep holds the second row
// first and one of the two fails (deadlock, or the test DB's lock timeout).
func TestSetDerivedHealthLocksInFlushOrder(t *testing.T) {
	db := openDB(t)
	ctx := context.Background()
	claim(t, db, 1)
	f := seed(t, db, 1)
	var n2 store.Node
	require.NoError(t, db.Fenced(ctx, 1, func(tx pgx.Tx) error {
		var err error
		if n2, err = store.InsertNode(ctx, tx, store.Node{ID: store.NewID(), Name: "n2", HostFingerprint: fp()}); err != nil {
			return err
		}
		return store.InsertMembership(ctx, tx, f.cluster.ID, n2.ID)
	}))
	first, second := f.node.ID, n2.ID
	if first > second {
		first, second = second, first
	}
	latest := func(node string) store.LatestHeartbeat {
		return store.LatestHeartbeat{HeartbeatRow: store.HeartbeatRow{ClusterID: f.cluster.ID, NodeID: node, ReceivedAt: time.Now(), Seq: 1,
			State: "normal", Health: json.RawMessage(`{}`), AuthorityID: "a1"}, Services: json.RawMessage(`[]`)}
	}
	// The second row first in the table.
	require.NoError(t, store.WriteHeartbeats(ctx, db, nil, []store.LatestHeartbeat{latest(second)}))
	require.NoError(t, store.WriteHeartbeats(ctx, db, nil, []store.LatestHeartbeat{latest(first)}))
	rows, err := store.ListHeartbeatHealth(ctx, db.Pool)
	require.NoError(t, err)
	require.Len(t, rows, 2)
	from := rows[0].DerivedHealth

	flush, err := db.Pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = flush.Rollback(ctx) }()
	var pid int
	require.NoError(t, flush.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&pid))
	bump := `UPDATE node_heartbeat_latest SET seq = seq + 1 WHERE node_id = $1::uuid`
	_, err = flush.Exec(ctx, bump, first)
	require.NoError(t, err)

	swept := make(chan error, 1)
	var changed int64
	go func() {
		var err error
		changed, err = store.SetDerivedHealth(ctx, db.Pool, []store.HealthRow{
			{ClusterID: f.cluster.ID, NodeID: second, DerivedHealth: "offline"},
			{ClusterID: f.cluster.ID, NodeID: first, DerivedHealth: "offline"}}, []string{from, from})
		swept <- err
	}()
	// The sweep waits for the flush's lock.
	deadline := time.Now().Add(5 * time.Second)
	for {
		var waiting bool
		require.NoError(t, db.Pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid)))`, pid).Scan(&waiting))
		if waiting {
			break
		}
		require.True(t, time.Now().Before(deadline), "the sweep never waited for the flush's row")
		time.Sleep(5 * time.Millisecond)
	}
	_, err = flush.Exec(ctx, bump, second)
	require.NoError(t, err, "the flush's second row must be free: the sweep locks in order")
	require.NoError(t, flush.Commit(ctx))
	require.NoError(t, <-swept)
	require.EqualValues(t, 2, changed)
	rows, err = store.ListHeartbeatHealth(ctx, db.Pool)
	require.NoError(t, err)
	for _, r := range rows {
		require.Equal(t, "offline", r.DerivedHealth)
	}
}

// TestWriteHeartbeatsCopiesLargeFlush: a flush of copyHeartbeatRows rows or
// more goes by binary COPY; every row arrives with its values, and the
// flush is atomic: when the latest-state upsert fails (a node that is no
// member), none of the copied rows stays. A malformed id is a typed error.
func TestWriteHeartbeatsCopiesLargeFlush(t *testing.T) {
	db := openDB(t)
	ctx := context.Background()
	claim(t, db, 1)
	f := seed(t, db, 1)
	at := time.Now().UTC().Truncate(time.Microsecond)
	rows := make([]store.HeartbeatRow, store.CopyHeartbeatRows+10)
	for i := range rows {
		rows[i] = store.HeartbeatRow{ClusterID: f.cluster.ID, NodeID: f.node.ID, ReceivedAt: at.Add(time.Duration(i) * time.Millisecond), Seq: int64(i + 1),
			AppliedVersion: 7, AgentVersion: "2.0.0", State: "degraded", Health: json.RawMessage(`{"disk":"full"}`), AuthorityID: "a2"}
	}
	latest := store.LatestHeartbeat{HeartbeatRow: rows[len(rows)-1], Services: json.RawMessage(`[]`)}
	require.NoError(t, store.WriteHeartbeats(ctx, db, rows, []store.LatestHeartbeat{latest}))
	var n, seqSum int64
	var health, agent, state, auth string
	var applied int64
	var first time.Time
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*), sum(seq), min(received_at) FROM node_heartbeats WHERE node_id = $1::uuid`, f.node.ID).Scan(&n, &seqSum, &first))
	require.EqualValues(t, len(rows), n)
	require.EqualValues(t, len(rows)*(len(rows)+1)/2, seqSum)
	require.True(t, first.Equal(at), "%v vs %v", first, at)
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT health::text, agent_version, state, authority_id, applied_version FROM node_heartbeats WHERE seq = 3`).Scan(&health, &agent, &state, &auth, &applied))
	require.Equal(t, []any{`{"disk": "full"}`, "2.0.0", "degraded", "a2", int64(7)}, []any{health, agent, state, auth, applied})
	got, err := store.GetLatestHeartbeat(ctx, db.Pool, f.cluster.ID, f.node.ID)
	require.NoError(t, err)
	require.EqualValues(t, len(rows), got.Seq)

	// The latest upsert fails (no such membership): nothing is kept.
	stranger := latest
	stranger.NodeID = store.NewID()
	err = store.WriteHeartbeats(ctx, db, rows, []store.LatestHeartbeat{stranger})
	require.ErrorIs(t, err, store.ErrConstraint)
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM node_heartbeats`).Scan(&n))
	require.EqualValues(t, len(rows), n, "the copied rows of the failed flush were rolled back")

	bad := slices.Clone(rows)
	bad[5].NodeID = "not-a-uuid"
	require.ErrorIs(t, store.WriteHeartbeats(ctx, db, bad, nil), store.ErrConstraint)
}
