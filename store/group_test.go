package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/store"
)

func clusterNames(t *testing.T, db *store.DB) []string {
	t.Helper()
	rows, err := db.Pool.Query(context.Background(), `SELECT name FROM clusters ORDER BY name`)
	require.NoError(t, err)
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return names
}

// forGroupModes runs test twice: with the optimistic pass (the default) and
// with a savepoint per job from the start (SetGroupSavepoints).
func forGroupModes(t *testing.T, test func(t *testing.T, db *store.DB)) {
	for _, savepoints := range []bool{false, true} {
		name := "optimistic"
		if savepoints {
			name = "savepoints"
		}
		t.Run(name, func(t *testing.T) {
			db := openDB(t)
			db.SetGroupSavepoints(savepoints)
			test(t, db)
			if savepoints {
				require.Zero(t, db.GroupStats().Optimistic+db.GroupStats().Fallbacks)
			}
		})
	}
}

// insertJob is a group job that inserts a cluster named name in fn and queues
// its audit event (and extra, when given) to run after fn.
func insertJob(ctx context.Context, name string, extra ...string) *store.GroupJob {
	return &store.GroupJob{Fn: func(tx pgx.Tx, last *pgx.Batch) error {
		if _, err := store.InsertCluster(ctx, tx, store.Cluster{ID: store.NewID(), Name: name, Slug: name}); err != nil {
			return err
		}
		store.QueueAudit(last, auditEvent("group."+name, 5))
		for _, sql := range extra {
			last.Queue(sql)
		}
		return nil
	}}
}

// A group commits every job that succeeded, each failing job rolls back
// alone (whether it fails in its first statements, in fn with a Go error or a
// database error, or in its last statements), and the jobs after a failed one
// still run in the same transaction.
func TestFencedGroupEachJobOwnOutcome(t *testing.T) {
	forGroupModes(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		claim(t, db, 5)

		errRefused := errors.New("refused by the job")
		firstFails := &pgx.Batch{}
		firstFails.Queue(`INSERT INTO clusters (id, name, slug) VALUES ($1, 'bad first', 'BAD')`, store.NewID()) // slug check
		var seen int
		firstOK := &pgx.Batch{}
		firstOK.Queue(`SELECT count(*) FROM clusters WHERE name = 'a'`).QueryRow(func(r pgx.Row) error { return r.Scan(&seen) })
		jobs := []*store.GroupJob{
			insertJob(ctx, "a"),
			{First: firstFails, Fn: func(pgx.Tx, *pgx.Batch) error { t.Fatal("fn ran after its first statements failed"); return nil }},
			{First: firstOK, Fn: func(tx pgx.Tx, last *pgx.Batch) error {
				// Earlier jobs of the group are visible; then a Go error.
				if seen != 1 {
					return errors.New("job a not visible")
				}
				if _, err := store.InsertCluster(ctx, tx, store.Cluster{ID: store.NewID(), Name: "c", Slug: "c"}); err != nil {
					return err
				}
				return errRefused
			}},
			insertJob(ctx, "a"), // fn fails in the database: name taken by the first job
			insertJob(ctx, "e", `INSERT INTO clusters (id, name, slug) VALUES (gen_random_uuid(), 'a', 'dupe')`), // last statements fail
			insertJob(ctx, "f"),
			insertJob(ctx, "g", `INSERT INTO clusters (id, name, slug) VALUES (gen_random_uuid(), 'f', 'dupf')`), // the last job's end fails
		}
		require.NoError(t, db.FencedGroup(ctx, 5, jobs))
		for i, j := range jobs {
			require.True(t, j.Ran, "job %d ran", i)
		}
		require.NoError(t, jobs[0].Err)
		require.ErrorIs(t, jobs[1].Err, store.ErrConstraint)
		require.ErrorIs(t, jobs[2].Err, errRefused)
		require.Equal(t, 1, seen)
		require.ErrorIs(t, jobs[3].Err, store.ErrConflict)
		require.ErrorIs(t, jobs[4].Err, store.ErrConflict)
		require.NoError(t, jobs[5].Err)
		require.ErrorIs(t, jobs[6].Err, store.ErrConflict)

		require.Equal(t, []string{"a", "f"}, clusterNames(t, db))
		require.Equal(t, 1, auditCount(t, db, "group.a"))
		require.Equal(t, 0, auditCount(t, db, "group.e"))
		require.Equal(t, 1, auditCount(t, db, "group.f"))
		require.Equal(t, 0, auditCount(t, db, "group.g"))
		// Rows carry the group's epoch.
		var epochs []int64
		rows, err := db.Pool.Query(ctx, `SELECT DISTINCT fence_epoch FROM clusters`)
		require.NoError(t, err)
		epochs, err = pgx.CollectRows(rows, pgx.RowTo[int64])
		require.NoError(t, err)
		require.Equal(t, []int64{5}, epochs)
		require.Zero(t, db.Pool.Stat().AcquiredConns())
	})
}

// Idempotency keys stay exact inside a group: a second job inserting the same
// key sees the first job's row (and its stored response), and a key whose job
// rolled back is free again for the next job.
func TestFencedGroupIdempotencyKeys(t *testing.T) {
	forGroupModes(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		claim(t, db, 5)

		keyJob := func(key string, fail bool, inserted *bool, resp *string) *store.GroupJob {
			first := &pgx.Batch{}
			first.Queue(`INSERT INTO idempotency_keys (key, actor, action) VALUES ($1, 'a', 'b') ON CONFLICT (key) DO NOTHING`, key).
				Exec(func(tag pgconn.CommandTag) error { *inserted = tag.RowsAffected() == 1; return nil })
			return &store.GroupJob{First: first, Fn: func(tx pgx.Tx, last *pgx.Batch) error {
				if !*inserted {
					var b []byte
					if err := tx.QueryRow(ctx, `SELECT response FROM idempotency_keys WHERE key = $1`, key).Scan(&b); err != nil {
						return err
					}
					*resp = string(b)
					return nil
				}
				if fail {
					return errors.New("fails")
				}
				last.Queue(`UPDATE idempotency_keys SET response = $2 WHERE key = $1`, key, []byte(`{"n":1}`))
				return nil
			}}
		}
		var ins [4]bool
		var resp [4]string
		jobs := []*store.GroupJob{
			keyJob("k1", false, &ins[0], &resp[0]),
			keyJob("k1", false, &ins[1], &resp[1]), // replays k1
			keyJob("k2", true, &ins[2], &resp[2]),  // inserts k2, fails: rolled back
			keyJob("k2", false, &ins[3], &resp[3]), // k2 free again
		}
		require.NoError(t, db.FencedGroup(ctx, 5, jobs))
		require.Equal(t, [4]bool{true, false, true, true}, ins)
		require.JSONEq(t, `{"n":1}`, resp[1])
		require.NoError(t, jobs[0].Err)
		require.NoError(t, jobs[1].Err)
		require.Error(t, jobs[2].Err)
		require.NoError(t, jobs[3].Err)
		var n int
		require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM idempotency_keys WHERE response IS NOT NULL`).Scan(&n))
		require.Equal(t, 2, n)
	})
}

// A group under a stale epoch runs none of its jobs and writes nothing; the
// same group under the current epoch commits.
func TestFencedGroupStaleEpochRunsNothing(t *testing.T) {
	forGroupModes(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		claim(t, db, 7)
		claim(t, db, 8)
		ran := false
		jobs := []*store.GroupJob{insertJob(ctx, "a"), {Fn: func(pgx.Tx, *pgx.Batch) error { ran = true; return nil }}}
		err := db.FencedGroup(ctx, 7, jobs)
		require.ErrorIs(t, err, store.ErrStaleEpoch)
		require.False(t, ran)
		for _, j := range jobs {
			require.True(t, j.Ran)
			require.NoError(t, j.Err, "the group's outcome is every job's")
		}
		require.Empty(t, clusterNames(t, db))
		jobs = []*store.GroupJob{insertJob(ctx, "a"), insertJob(ctx, "b")}
		require.NoError(t, db.FencedGroup(ctx, 8, jobs))
		require.Equal(t, []string{"a", "b"}, clusterNames(t, db))
		require.Zero(t, db.Pool.Stat().AcquiredConns())
	})
}

// A claim of a newer epoch waits for an open group, and the group's writes
// are the old epoch's: the fence lock is held from the first round trip to
// COMMIT.
func TestFencedGroupHoldsTheFence(t *testing.T) {
	forGroupModes(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		claim(t, db, 5)
		claimed := make(chan bool, 1)
		jobs := []*store.GroupJob{insertJob(ctx, "a"), {Fn: func(tx pgx.Tx, last *pgx.Batch) error {
			go func() {
				ok, err := db.ClaimFence(ctx, 6, "other")
				claimed <- err == nil && ok
			}()
			// The claim cannot finish while this group is open.
			// Poll until the claim is seen waiting on the advisory lock (bounded
			// by a generous deadline: a loaded CI machine may take a while to
			// schedule the claim's goroutine and connection).
			var waiting bool
			for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
				if err := db.Pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted)`).Scan(&waiting); err != nil {
					return err
				}
				if waiting {
					break
				}
			}
			if !waiting {
				return errors.New("the claim did not wait for the group")
			}
			select {
			case <-claimed:
				return errors.New("the claim finished while the group held the fence")
			default:
			}
			_, err := store.InsertCluster(ctx, tx, store.Cluster{ID: store.NewID(), Name: "b", Slug: "b"})
			return err
		}}}
		require.NoError(t, db.FencedGroup(ctx, 5, jobs))
		require.NoError(t, jobs[1].Err)
		require.True(t, <-claimed)
		require.Equal(t, []string{"a", "b"}, clusterNames(t, db))
		err := db.FencedGroup(ctx, 5, []*store.GroupJob{insertJob(ctx, "c")})
		require.ErrorIs(t, err, store.ErrStaleEpoch)
	})
}

// A statement pgx refuses before sending it (it does not prepare or does not
// build) fails its own job; a statement that does not prepare aborts the
// transaction, so the job before it rolls back too, with a retryable error.
func TestFencedGroupBadStatements(t *testing.T) {
	forGroupModes(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		claim(t, db, 5)
		noParse := &pgx.Batch{}
		noParse.Queue(`SELEC 1`)
		noParse2 := &pgx.Batch{}
		noParse2.Queue(`SELEC 2`)
		jobs := []*store.GroupJob{
			{First: noParse, Fn: func(pgx.Tx, *pgx.Batch) error { t.Fatal("fn ran"); return nil }}, // before BEGIN
			insertJob(ctx, "a"),
			{First: noParse2, Fn: func(pgx.Tx, *pgx.Batch) error { t.Fatal("fn ran"); return nil }}, // aborts: a rolls back
			insertJob(ctx, "c"),
			{Fn: func(tx pgx.Tx, last *pgx.Batch) error {
				_, err := store.InsertCluster(ctx, tx, store.Cluster{ID: store.NewID(), Name: "d", Slug: "d"})
				last.Queue(`SELECT $1::int`, 1, 2) // does not build
				return err
			}},
			insertJob(ctx, "e"),
		}
		require.NoError(t, db.FencedGroup(ctx, 5, jobs))
		require.Error(t, jobs[0].Err)
		require.ErrorIs(t, jobs[1].Err, store.ErrUnavailable)
		require.Error(t, jobs[2].Err)
		require.NoError(t, jobs[3].Err)
		require.Error(t, jobs[4].Err)
		require.NoError(t, jobs[5].Err)
		require.Equal(t, []string{"c", "e"}, clusterNames(t, db))
		require.Zero(t, db.Pool.Stat().AcquiredConns())
	})
}
