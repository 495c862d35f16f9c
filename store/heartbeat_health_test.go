package store_test

import (
	"context"
	"encoding/json"
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
