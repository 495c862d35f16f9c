package store_test

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/store"
)

// counted wraps a job's Fn to count how often it runs.
func counted(j *store.GroupJob, n *int) *store.GroupJob {
	fn := j.Fn
	j.Fn = func(tx pgx.Tx, last *pgx.Batch) error { *n++; return fn(tx, last) }
	return j
}

// A group whose jobs all succeed commits in the optimistic pass (no
// savepoint, each job's audit event sent with COMMIT), each job run once; a
// job refused before it sent a statement fails alone in that pass, and a job
// with first statements (an idempotency key) sees the earlier jobs' last
// statements.
func TestFencedGroupOptimisticCommitsWithoutSavepoints(t *testing.T) {
	db := openDB(t)
	ctx := context.Background()
	claim(t, db, 5)

	var runs [5]int
	refused := errors.New("refused before any statement")
	var inserted bool
	var stored []byte
	first := &pgx.Batch{}
	first.Queue(`INSERT INTO idempotency_keys (key, actor, action) VALUES ('k', 'a', 'b') ON CONFLICT (key) DO NOTHING`).
		Exec(func(tag pgconn.CommandTag) error { inserted = tag.RowsAffected() == 1; return nil })
	jobs := []*store.GroupJob{
		counted(&store.GroupJob{Fn: func(tx pgx.Tx, last *pgx.Batch) error {
			if _, err := tx.Exec(ctx, `INSERT INTO idempotency_keys (key, actor, action) VALUES ('k', 'a', 'b')`); err != nil {
				return err
			}
			last.Queue(`UPDATE idempotency_keys SET response = '{"n":7}' WHERE key = 'k'`)
			return nil
		}}, &runs[0]),
		counted(insertJob(ctx, "a"), &runs[1]),
		counted(&store.GroupJob{Fn: func(pgx.Tx, *pgx.Batch) error { return refused }}, &runs[2]),
		counted(&store.GroupJob{First: first, Fn: func(tx pgx.Tx, last *pgx.Batch) error {
			// The key is the first job's, and so is its stored response,
			// though that job's last statement runs with COMMIT.
			return tx.QueryRow(ctx, `SELECT response FROM idempotency_keys WHERE key = 'k'`).Scan(&stored)
		}}, &runs[3]),
		counted(insertJob(ctx, "b"), &runs[4]),
	}
	require.NoError(t, db.FencedGroup(ctx, 5, jobs))
	require.Equal(t, store.GroupStats{Optimistic: 1}, db.GroupStats())
	require.Equal(t, [5]int{1, 1, 1, 1, 1}, runs)
	for i, j := range jobs {
		require.True(t, j.Ran, "job %d", i)
		if i != 2 {
			require.NoError(t, j.Err, "job %d", i)
		}
	}
	require.ErrorIs(t, jobs[2].Err, refused)
	require.False(t, inserted)
	require.JSONEq(t, `{"n":7}`, string(stored))
	require.Equal(t, []string{"a", "b"}, clusterNames(t, db))
	require.Equal(t, 1, auditCount(t, db, "group.a"))
	require.Equal(t, 1, auditCount(t, db, "group.b"))
}

// A job that fails after its statements ran sends the group to the savepoint
// pass: every job runs again, the failed one fails alone, the others commit
// once (no row or audit event twice), and the next groups use savepoints from
// the start.
func TestFencedGroupOptimisticFallsBack(t *testing.T) {
	db := openDB(t)
	ctx := context.Background()
	claim(t, db, 5)

	var runs [3]int
	jobs := []*store.GroupJob{
		counted(insertJob(ctx, "a"), &runs[0]),
		counted(insertJob(ctx, "a"), &runs[1]), // name taken by the first job
		counted(insertJob(ctx, "c"), &runs[2]),
	}
	require.NoError(t, db.FencedGroup(ctx, 5, jobs))
	require.Equal(t, store.GroupStats{Fallbacks: 1}, db.GroupStats())
	// The first two ran in both passes; the third only in the second.
	require.Equal(t, [3]int{2, 2, 1}, runs)
	require.NoError(t, jobs[0].Err)
	require.ErrorIs(t, jobs[1].Err, store.ErrConflict)
	require.NoError(t, jobs[2].Err)
	require.Equal(t, []string{"a", "c"}, clusterNames(t, db))
	require.Equal(t, 1, auditCount(t, db, "group.a"))
	require.Equal(t, 1, auditCount(t, db, "group.c"))

	// The next group runs with savepoints from the start.
	require.NoError(t, db.FencedGroup(ctx, 5, []*store.GroupJob{insertJob(ctx, "d"), insertJob(ctx, "e")}))
	require.Equal(t, store.GroupStats{Fallbacks: 1, Savepoints: 1}, db.GroupStats())
	require.Equal(t, []string{"a", "c", "d", "e"}, clusterNames(t, db))
}

// A last statement that does not build, behind another job's, makes pgx close
// the connection before COMMIT is sent: the group runs again with savepoints
// on a new connection, and only the job with the bad statement fails.
func TestFencedGroupOptimisticBrokenConnection(t *testing.T) {
	db := openDB(t)
	ctx := context.Background()
	claim(t, db, 5)

	jobs := []*store.GroupJob{
		insertJob(ctx, "a"),
		{Fn: func(tx pgx.Tx, last *pgx.Batch) error {
			_, err := store.InsertCluster(ctx, tx, store.Cluster{ID: store.NewID(), Name: "b", Slug: "b"})
			last.Queue(`SELECT $1::int`, 1, 2) // does not build
			return err
		}},
		insertJob(ctx, "c"),
	}
	require.NoError(t, db.FencedGroup(ctx, 5, jobs))
	require.Equal(t, store.GroupStats{Fallbacks: 1}, db.GroupStats())
	require.NoError(t, jobs[0].Err)
	require.Error(t, jobs[1].Err)
	require.NoError(t, jobs[2].Err)
	require.Equal(t, []string{"a", "c"}, clusterNames(t, db))
	require.Equal(t, 1, auditCount(t, db, "group.a"))
	require.Equal(t, 1, auditCount(t, db, "group.c"))
	require.Zero(t, db.Pool.Stat().AcquiredConns())
}
