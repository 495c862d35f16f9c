package store_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/internal/pgtest"
	"github.com/rap-fabric/core/store"
)

func openDB(t *testing.T) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), pgtest.New(t), store.Options{LockTimeout: 500 * time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(db.Close)
	return db
}

func claim(t *testing.T, db *store.DB, epoch uint64) {
	t.Helper()
	ok, err := db.ClaimFence(context.Background(), epoch, "test-leader")
	require.NoError(t, err)
	require.True(t, ok)
}

func key32() []byte {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return b
}

func fp() string {
	s := sha256.Sum256(key32())
	return hex.EncodeToString(s[:])
}

type fixture struct {
	cluster, other store.Cluster
	node           store.Node
}

// seed creates two clusters and one node that is a member of the first.
func seed(t *testing.T, db *store.DB, epoch uint64) fixture {
	t.Helper()
	ctx := context.Background()
	var f fixture
	require.NoError(t, db.Fenced(ctx, epoch, func(tx pgx.Tx) error {
		var err error
		if f.cluster, err = store.InsertCluster(ctx, tx, store.Cluster{ID: store.NewID(), Name: "east", Slug: "east"}); err != nil {
			return err
		}
		if f.other, err = store.InsertCluster(ctx, tx, store.Cluster{ID: store.NewID(), Name: "west", Slug: "west"}); err != nil {
			return err
		}
		if f.node, err = store.InsertNode(ctx, tx, store.Node{ID: store.NewID(), Name: "n1", HostFingerprint: fp()}); err != nil {
			return err
		}
		return store.InsertMembership(ctx, tx, f.cluster.ID, f.node.ID)
	}))
	return f
}

func TestFenceRefusesWritesOutsideAndStale(t *testing.T) {
	db := openDB(t)
	ctx := context.Background()

	// No fenced transaction: the database itself refuses.
	_, err := store.InsertCluster(ctx, db.Pool, store.Cluster{ID: store.NewID(), Name: "x", Slug: "x"})
	require.ErrorIs(t, err, store.ErrFenceRequired)

	claim(t, db, 5)
	f := seed(t, db, 5)

	// The fence moves only forward and only through the claim function.
	ok, err := db.ClaimFence(ctx, 5, "again")
	require.NoError(t, err)
	require.False(t, ok, "equal epoch must not claim")
	_, err = db.Pool.Exec(ctx, `UPDATE authority_fence SET epoch = 100 WHERE id = 1`)
	err = store.MapError(err)
	require.ErrorIs(t, err, store.ErrFenceRequired)

	// An older epoch cannot write, even declaring itself in SQL.
	err = db.Fenced(ctx, 4, func(tx pgx.Tx) error { return nil })
	require.ErrorIs(t, err, store.ErrStaleEpoch)
	_, err = db.Pool.Exec(ctx, `BEGIN; SELECT set_config('rap.fence_epoch', '4', true); UPDATE clusters SET region = 'r' WHERE id = '`+f.cluster.ID+`'; COMMIT;`)
	require.ErrorIs(t, store.MapError(err), store.ErrStaleEpoch)

	// The row check trusts the epoch rap_begin_fenced confirmed only while
	// the transaction still declares it: another epoch declared later in the
	// same fenced transaction is checked against the fence again.
	err = db.Fenced(ctx, 5, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT set_config('rap.fence_epoch', '4', true)`); err != nil {
			return err
		}
		_, err := store.SetClusterStatus(ctx, tx, f.cluster.ID, "disabled")
		return err
	})
	require.ErrorIs(t, err, store.ErrStaleEpoch)
	// A confirmation of another epoch than the declared one counts for
	// nothing: the full check reads the fence. (A client running its own SQL
	// could set both to the same stale epoch; the fence guards against stale
	// leaders of this software, which declare epochs only through
	// rap_begin_fenced, not against such a client: migration 018.)
	_, err = db.Pool.Exec(ctx, `BEGIN; SELECT set_config('rap.fence_epoch', '4', true), set_config('rap.fence_held', '5', true); UPDATE clusters SET region = 'r' WHERE id = '`+f.cluster.ID+`'; COMMIT;`)
	require.ErrorIs(t, store.MapError(err), store.ErrStaleEpoch)

	// A newer claim makes the old leader's epoch stale for every later write.
	claim(t, db, 6)
	err = db.Fenced(ctx, 5, func(tx pgx.Tx) error {
		_, err := store.SetClusterStatus(ctx, tx, f.cluster.ID, "disabled")
		return err
	})
	require.ErrorIs(t, err, store.ErrStaleEpoch)
	c, err := store.GetCluster(ctx, db.Pool, f.cluster.ID)
	require.NoError(t, err)
	require.Equal(t, "active", c.Status)

	// Rows carry the epoch that wrote them.
	require.NoError(t, db.Fenced(ctx, 6, func(tx pgx.Tx) error {
		_, err := store.SetClusterStatus(ctx, tx, f.cluster.ID, "disabled")
		return err
	}))
	var e int64
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT fence_epoch FROM clusters WHERE id = $1`, f.cluster.ID).Scan(&e))
	require.EqualValues(t, 6, e)
	fs, err := db.Fence(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 6, fs.Epoch)
}

// A claim waits for an in-flight fenced transaction of the older epoch; after the
// claim commits, that epoch can write nothing more.
func TestClaimWaitsForInFlightFencedTransaction(t *testing.T) {
	db := openDB(t)
	ctx := context.Background()
	claim(t, db, 1)
	f := seed(t, db, 1)

	inTx := make(chan struct{})
	release := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- db.Fenced(ctx, 1, func(tx pgx.Tx) error {
			close(inTx)
			<-release
			_, err := store.SetClusterStatus(ctx, tx, f.cluster.ID, "disabled")
			return err
		})
	}()
	<-inTx
	claimed := make(chan bool, 1)
	go func() {
		ok, err := db.ClaimFence(ctx, 2, "new")
		if err != nil {
			t.Errorf("claim: %v", err)
		}
		claimed <- ok
	}()
	select {
	case <-claimed:
		t.Fatal("claim did not wait for the in-flight fenced transaction")
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	require.NoError(t, <-done)
	require.True(t, <-claimed)
	err := db.Fenced(ctx, 1, func(tx pgx.Tx) error { return nil })
	require.ErrorIs(t, err, store.ErrStaleEpoch)
}

func TestModelConstraints(t *testing.T) {
	db := openDB(t)
	ctx := context.Background()
	claim(t, db, 1)
	f := seed(t, db, 1)
	fenced := func(fn func(tx pgx.Tx) error) error { return db.Fenced(ctx, 1, fn) }

	t.Run("duplicate membership refused", func(t *testing.T) {
		err := fenced(func(tx pgx.Tx) error { return store.InsertMembership(ctx, tx, f.cluster.ID, f.node.ID) })
		require.ErrorIs(t, err, store.ErrConflict)
	})
	t.Run("node may join a second cluster", func(t *testing.T) {
		require.NoError(t, fenced(func(tx pgx.Tx) error { return store.InsertMembership(ctx, tx, f.other.ID, f.node.ID) }))
		ms, err := store.ListNodeMemberships(ctx, db.Pool, f.node.ID)
		require.NoError(t, err)
		require.Len(t, ms, 2)
		byNode, err := store.ListMembershipsOfNodes(ctx, db.Pool, []string{f.node.ID})
		require.NoError(t, err)
		require.Equal(t, ms, byNode[f.node.ID], "the batched read sees the same memberships")
		nodes, err := store.GetNodes(ctx, db.Pool, []string{f.node.ID, store.NewID()})
		require.NoError(t, err)
		require.Len(t, nodes, 1)
		require.Equal(t, "n1", nodes[f.node.ID].Name)
	})
	t.Run("role for a non-member refused", func(t *testing.T) {
		stranger := store.NewID()
		err := fenced(func(tx pgx.Tx) error {
			if _, err := store.InsertNode(ctx, tx, store.Node{ID: stranger, Name: "s", HostFingerprint: fp()}); err != nil {
				return err
			}
			_, err := store.InsertRoleAssignment(ctx, tx, store.RoleAssignment{ID: store.NewID(), ClusterID: f.cluster.ID, NodeID: stranger, Role: "relay-node", AssignedBy: "t"})
			return err
		})
		require.ErrorIs(t, err, store.ErrConstraint)
		_, err = store.GetNode(ctx, db.Pool, stranger)
		require.ErrorIs(t, err, store.ErrNotFound, "the failed transaction left nothing behind")
	})
	t.Run("role for a disabled membership refused; unknown role refused", func(t *testing.T) {
		require.NoError(t, fenced(func(tx pgx.Tx) error {
			return store.SetMembershipStatus(ctx, tx, f.other.ID, f.node.ID, "disabled")
		}))
		err := fenced(func(tx pgx.Tx) error {
			_, err := store.InsertRoleAssignment(ctx, tx, store.RoleAssignment{ID: store.NewID(), ClusterID: f.other.ID, NodeID: f.node.ID, Role: "relay-node", AssignedBy: "t"})
			return err
		})
		require.ErrorIs(t, err, store.ErrConstraint)
		err = fenced(func(tx pgx.Tx) error {
			_, err := store.InsertRoleAssignment(ctx, tx, store.RoleAssignment{ID: store.NewID(), ClusterID: f.cluster.ID, NodeID: f.node.ID, Role: "root-shell", AssignedBy: "t"})
			return err
		})
		require.ErrorIs(t, err, store.ErrConstraint)
		// The disabled membership in "west" did not touch "east".
		m, err := store.GetMembership(ctx, db.Pool, f.cluster.ID, f.node.ID)
		require.NoError(t, err)
		require.Equal(t, "active", m.Status)
	})
	t.Run("duplicate role refused", func(t *testing.T) {
		ra := store.RoleAssignment{ClusterID: f.cluster.ID, NodeID: f.node.ID, Role: "relay-node", AssignedBy: "t"}
		ra.ID = store.NewID()
		require.NoError(t, fenced(func(tx pgx.Tx) error { _, err := store.InsertRoleAssignment(ctx, tx, ra); return err }))
		ra.ID = store.NewID()
		err := fenced(func(tx pgx.Tx) error { _, err := store.InsertRoleAssignment(ctx, tx, ra); return err })
		require.ErrorIs(t, err, store.ErrConflict)
	})
	t.Run("group cycle refused", func(t *testing.T) {
		a, b, c := store.NewID(), store.NewID(), store.NewID()
		require.NoError(t, fenced(func(tx pgx.Tx) error {
			if _, err := store.InsertGroup(ctx, tx, store.Group{ID: a, ClusterID: f.cluster.ID, Name: "dc"}); err != nil {
				return err
			}
			if _, err := store.InsertGroup(ctx, tx, store.Group{ID: b, ClusterID: f.cluster.ID, ParentID: &a, Name: "rack"}); err != nil {
				return err
			}
			_, err := store.InsertGroup(ctx, tx, store.Group{ID: c, ClusterID: f.cluster.ID, ParentID: &b, Name: "row"})
			return err
		}))
		err := fenced(func(tx pgx.Tx) error { _, err := store.MoveGroup(ctx, tx, a, &c); return err })
		require.ErrorIs(t, err, store.ErrConstraint)
		err = fenced(func(tx pgx.Tx) error { _, err := store.MoveGroup(ctx, tx, a, &a); return err })
		require.ErrorIs(t, err, store.ErrConstraint)
		// A parent of another cluster is refused too.
		err = fenced(func(tx pgx.Tx) error {
			_, err := store.InsertGroup(ctx, tx, store.Group{ID: store.NewID(), ClusterID: f.other.ID, ParentID: &a, Name: "x"})
			return err
		})
		require.ErrorIs(t, err, store.ErrConstraint)
		// A membership may join a group of its own cluster only; at most one group.
		require.NoError(t, fenced(func(tx pgx.Tx) error { return store.SetMembershipGroup(ctx, tx, f.cluster.ID, f.node.ID, &b) }))
		err = fenced(func(tx pgx.Tx) error { return store.SetMembershipGroup(ctx, tx, f.other.ID, f.node.ID, &b) })
		require.ErrorIs(t, err, store.ErrConstraint)
		// A group with members or children cannot be deleted.
		err = fenced(func(tx pgx.Tx) error { return store.DeleteGroup(ctx, tx, b) })
		require.ErrorIs(t, err, store.ErrConstraint)
	})
	t.Run("identities hold public keys only", func(t *testing.T) {
		priv64 := make([]byte, 64)
		err := fenced(func(tx pgx.Tx) error {
			_, err := store.InsertIdentity(ctx, tx, store.Identity{ID: store.NewID(), ClusterID: f.cluster.ID, NodeID: f.node.ID, PublicKey: priv64, NoisePublicKey: key32()})
			return err
		})
		require.ErrorIs(t, err, store.ErrConstraint)
		var n int
		require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM information_schema.columns WHERE table_name = 'node_identities' AND column_name ILIKE '%priv%'`).Scan(&n))
		require.Zero(t, n)
		id1 := store.NewID()
		require.NoError(t, fenced(func(tx pgx.Tx) error {
			_, err := store.InsertIdentity(ctx, tx, store.Identity{ID: id1, ClusterID: f.cluster.ID, NodeID: f.node.ID, PublicKey: key32(), NoisePublicKey: key32()})
			return err
		}))
		err = fenced(func(tx pgx.Tx) error {
			_, err := store.InsertIdentity(ctx, tx, store.Identity{ID: store.NewID(), ClusterID: f.cluster.ID, NodeID: f.node.ID, PublicKey: key32(), NoisePublicKey: key32()})
			return err
		})
		require.ErrorIs(t, err, store.ErrConflict, "one active identity per membership")
	})
	t.Run("tokens store a hash, bounded TTL, atomic uses", func(t *testing.T) {
		now := time.Now()
		err := fenced(func(tx pgx.Tx) error {
			_, err := store.InsertToken(ctx, tx, store.JoinToken{ID: "0123456789abcdef", ClusterID: f.cluster.ID, SecretHash: []byte("too-short"), ExpiresAt: now.Add(time.Hour), MaxUses: 1, CreatedBy: "t", CreatedAt: now})
			return err
		})
		require.ErrorIs(t, err, store.ErrConstraint)
		err = fenced(func(tx pgx.Tx) error {
			_, err := store.InsertToken(ctx, tx, store.JoinToken{ID: "0123456789abcdef", ClusterID: f.cluster.ID, SecretHash: key32(), ExpiresAt: now.Add(25 * time.Hour), MaxUses: 1, CreatedBy: "t", CreatedAt: now})
			return err
		})
		require.ErrorIs(t, err, store.ErrConstraint, "TTL over 24 h")
		require.NoError(t, fenced(func(tx pgx.Tx) error {
			_, err := store.InsertToken(ctx, tx, store.JoinToken{ID: "0123456789abcdef", ClusterID: f.cluster.ID, SecretHash: key32(), ExpiresAt: now.Add(time.Hour), MaxUses: 3, CreatedBy: "t", CreatedAt: now})
			return err
		}))
		var wg sync.WaitGroup
		var mu sync.Mutex
		ok := 0
		for i := 0; i < 20; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := fenced(func(tx pgx.Tx) error {
					_, err := store.ConsumeToken(ctx, tx, "0123456789abcdef", time.Now())
					return err
				})
				if err == nil {
					mu.Lock()
					ok++
					mu.Unlock()
				} else if !errors.Is(err, store.ErrNotFound) {
					t.Errorf("consume: %v", err)
				}
			}()
		}
		wg.Wait()
		require.Equal(t, 3, ok)
	})
	t.Run("audit is append-only", func(t *testing.T) {
		_, err := db.Pool.Exec(ctx, `INSERT INTO cluster_audit_events (seq, at, actor, actor_kind, action, outcome, prev_hash, hash) VALUES (1000, now(), 'x', 'system', 'test.event', 'ok', '\x00', '\x00')`)
		require.NoError(t, err)
		_, err = db.Pool.Exec(ctx, `UPDATE cluster_audit_events SET actor = 'y' WHERE seq = 1000`)
		require.ErrorIs(t, store.MapError(err), store.ErrAppendOnly)
		_, err = db.Pool.Exec(ctx, `DELETE FROM cluster_audit_events WHERE seq = 1000`)
		require.ErrorIs(t, store.MapError(err), store.ErrAppendOnly)
		_, err = db.Pool.Exec(ctx, `TRUNCATE cluster_audit_events`)
		require.ErrorIs(t, store.MapError(err), store.ErrAppendOnly)
	})
	t.Run("status enums checked", func(t *testing.T) {
		err := fenced(func(tx pgx.Tx) error { return store.SetMembershipStatus(ctx, tx, f.cluster.ID, f.node.ID, "sleeping") })
		require.ErrorIs(t, err, store.ErrConstraint)
	})
}

// TestReadSnapshotIsOneSnapshot: every statement inside ReadSnapshot sees the
// state of its first one, even when another transaction commits between
// them (CompareClusters reads a report in several statements), and it cannot
// write.
func TestReadSnapshotIsOneSnapshot(t *testing.T) {
	db := openDB(t)
	ctx := context.Background()
	claim(t, db, 1)
	count := func(q store.Querier) int {
		var n int
		require.NoError(t, q.QueryRow(ctx, `SELECT count(*) FROM clusters`).Scan(&n))
		return n
	}
	before := count(db.Pool)
	require.NoError(t, db.ReadSnapshot(ctx, func(tx pgx.Tx) error {
		require.Equal(t, before, count(tx))
		require.NoError(t, db.Fenced(ctx, 1, func(w pgx.Tx) error {
			_, err := store.InsertCluster(ctx, w, store.Cluster{ID: store.NewID(), Name: "late", Slug: "late"})
			return err
		}))
		require.Equal(t, before, count(tx), "a commit between two statements is not seen")
		return nil
	}))
	require.Equal(t, before+1, count(db.Pool))
	err := db.ReadSnapshot(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE clusters SET name = name`)
		return err
	})
	require.Error(t, err, "read-only")
}
