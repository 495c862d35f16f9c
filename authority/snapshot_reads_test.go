package authority

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/fsm"
	"github.com/rap-fabric/core/store"
)

// TestLongPollReadsCoalesce: waiters that wake together (a rebuild published
// every node's snapshot) are read in a few batched statements, each waiter
// still gets exactly its own node's newest snapshot, and a node without one
// (or an id that is no uuid) gets not found.
func TestLongPollReadsCoalesce(t *testing.T) {
	db, counter, cluster, nodes := hbDB(t, 300)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	with := nodes[:280] // the last 20 have no snapshot
	require.NoError(t, db.Fenced(ctx, 1, func(tx pgx.Tx) error {
		for v := uint64(1); v <= 2; v++ {
			var snaps []store.StoredSnapshot
			for _, n := range with {
				snaps = append(snaps, store.StoredSnapshot{ClusterID: cluster, NodeID: n, Version: v, Epoch: 1, KeyID: "k1", Scope: "base",
					Digest: make([]byte, 32), Signed: []byte(n + "/" + string(rune('0'+v))), IssuedAt: now, ExpiresAt: now.Add(time.Hour)})
			}
			if err := store.SaveSnapshots(ctx, tx, cluster, snaps); err != nil {
				return err
			}
		}
		return nil
	}))
	a, err := New(Config{NodeID: "a1"}, nil, fsm.New(fsm.Options{}), db)
	require.NoError(t, err)

	asked := append(append([]string{}, nodes...), "not-a-uuid", store.NewID())
	counter.reset()
	start := make(chan struct{})
	var wg sync.WaitGroup
	got := make([]store.StoredSnapshot, len(asked))
	errs := make([]error, len(asked))
	for i, n := range asked {
		wg.Go(func() {
			<-start
			got[i], errs[i] = a.latestForPoll(ctx, cluster, n)
		})
	}
	close(start)
	wg.Wait()
	for i, n := range asked {
		if i < len(with) {
			require.NoError(t, errs[i], n)
			require.Equal(t, n, got[i].NodeID)
			require.Equal(t, uint64(2), got[i].Version, "the newest version")
			require.Equal(t, n+"/2", string(got[i].Signed))
			continue
		}
		require.ErrorIs(t, errs[i], store.ErrNotFound, n)
	}
	stmts := counter.take("SELECT DISTINCT ON (node_id)") + counter.take("SELECT cluster_id::text, node_id::text, version")
	require.Greater(t, stmts, 0)
	require.LessOrEqual(t, stmts, 60, "%d reads took %d statements", len(asked), stmts)
	t.Logf("%d concurrent reads in %d statements", len(asked), stmts)

	// A lone read is one statement, answered at once.
	counter.reset()
	s, err := a.latestForPoll(ctx, cluster, with[0])
	require.NoError(t, err)
	require.Equal(t, uint64(2), s.Version)
	require.Equal(t, 1, counter.take("SELECT cluster_id::text, node_id::text, version"))
	a.snapshots.readMu.Lock()
	defer a.snapshots.readMu.Unlock()
	require.Empty(t, a.snapshots.readQueue)
}
