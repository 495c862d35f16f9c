package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/store"
)

func clusterCount(t *testing.T, db *store.DB) int {
	t.Helper()
	var n int
	require.NoError(t, db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM clusters`).Scan(&n))
	return n
}

func auditCount(t *testing.T, db *store.DB, action string) int {
	t.Helper()
	var n int
	require.NoError(t, db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM cluster_audit_events WHERE action = $1`, action).Scan(&n))
	return n
}

func auditEvent(action string, epoch int64) store.AuditEvent {
	return store.AuditEvent{At: time.Now(), Actor: "test", ActorKind: "system", Action: action, Outcome: "ok", FenceEpoch: &epoch}
}

// FencedBatch runs the first statements under the fence before fn, and the
// last statements with COMMIT: all of it commits or none of it does.
func TestFencedBatchPipelinesUnderTheFence(t *testing.T) {
	db := openDB(t)
	ctx := context.Background()
	claim(t, db, 3)

	// The first statements run after the epoch declaration: a fenced write
	// there succeeds, and its result is seen by fn.
	first := &pgx.Batch{}
	var declared string
	first.Queue(`SELECT current_setting('rap.fence_epoch')`).QueryRow(func(r pgx.Row) error { return r.Scan(&declared) })
	inserted := false
	first.Queue(`INSERT INTO clusters (id, name, slug) VALUES ($1, 'a', 'a')`, store.NewID()).
		Exec(func(tag pgconn.CommandTag) error { inserted = tag.RowsAffected() == 1; return nil })
	err := db.FencedBatch(ctx, 3, first, func(tx pgx.Tx, last *pgx.Batch) error {
		require.Equal(t, "3", declared)
		require.True(t, inserted, "first statements run before fn")
		if _, err := store.InsertCluster(ctx, tx, store.Cluster{ID: store.NewID(), Name: "b", Slug: "b"}); err != nil {
			return err
		}
		store.QueueAudit(last, auditEvent("test.batch", 3))
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, 2, clusterCount(t, db))
	require.Equal(t, 1, auditCount(t, db, "test.batch"))

	// A failing last statement rolls back fn's writes and the audit event.
	err = db.FencedBatch(ctx, 3, nil, func(tx pgx.Tx, last *pgx.Batch) error {
		if _, err := store.InsertCluster(ctx, tx, store.Cluster{ID: store.NewID(), Name: "c", Slug: "c"}); err != nil {
			return err
		}
		store.QueueAudit(last, auditEvent("test.rolledback", 3))
		last.Queue(`INSERT INTO clusters (id, name, slug) VALUES ($1, 'a', 'dup')`, store.NewID()) // name taken
		return nil
	})
	require.ErrorIs(t, err, store.ErrConflict)
	require.NotErrorIs(t, err, store.ErrOutcomeUnknown, "the server refused before COMMIT: the outcome is known")
	require.Equal(t, 2, clusterCount(t, db))
	require.Equal(t, 0, auditCount(t, db, "test.rolledback"))

	// Last statements cannot carry result callbacks (COMMIT follows them
	// before their results are read).
	err = db.FencedBatch(ctx, 3, nil, func(tx pgx.Tx, last *pgx.Batch) error {
		if _, err := store.InsertCluster(ctx, tx, store.Cluster{ID: store.NewID(), Name: "d", Slug: "d"}); err != nil {
			return err
		}
		last.Queue(`SELECT 1`).Exec(func(pgconn.CommandTag) error { return nil })
		return nil
	})
	require.Error(t, err)
	require.Equal(t, 2, clusterCount(t, db))

	// fn's transaction ends with fn: Commit and Rollback are refused inside,
	// and nothing works on it afterwards.
	var kept pgx.Tx
	err = db.Fenced(ctx, 3, func(tx pgx.Tx) error {
		kept = tx
		require.Error(t, tx.Commit(ctx))
		require.Error(t, tx.Rollback(ctx))
		_, err := tx.Exec(ctx, `SELECT 1`)
		return err
	})
	require.NoError(t, err)
	_, err = kept.Exec(ctx, `SELECT 1`)
	require.ErrorIs(t, err, pgx.ErrTxClosed)

	// No connection is left acquired or in a transaction.
	require.Zero(t, db.Pool.Stat().AcquiredConns())
}

// A stale epoch refuses in the first round trip: neither the first
// statements' callbacks nor fn run, and nothing is written.
func TestFencedBatchStaleEpochRunsNothing(t *testing.T) {
	db := openDB(t)
	ctx := context.Background()
	claim(t, db, 7)
	claim(t, db, 8)
	for range 3 { // the connection is reusable after each refusal
		first := &pgx.Batch{}
		ran := false
		first.Queue(`INSERT INTO idempotency_keys (key, actor, action) VALUES ($1, 'a', 'b')`, store.NewID()).
			Exec(func(pgconn.CommandTag) error { ran = true; return nil })
		err := db.FencedBatch(ctx, 7, first, func(tx pgx.Tx, last *pgx.Batch) error {
			t.Fatal("fn ran under a stale epoch")
			return nil
		})
		require.ErrorIs(t, err, store.ErrStaleEpoch)
		require.False(t, ran)
	}
	var n int
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM idempotency_keys`).Scan(&n))
	require.Zero(t, n)
	require.NoError(t, db.Fenced(ctx, 8, func(tx pgx.Tx) error { return nil }))
	require.Zero(t, db.Pool.Stat().AcquiredConns())
}
