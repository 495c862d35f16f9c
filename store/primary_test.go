package store_test

import (
	"context"
	"net"
	"strconv"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/internal/pgtest"
	"github.com/rap-fabric/core/store"
)

func terms(t *testing.T, db *store.DB) map[int64]string {
	t.Helper()
	rows, err := db.Pool.Query(context.Background(), `SELECT epoch, leader_id FROM cluster_authority_terms`)
	require.NoError(t, err)
	out := map[int64]string{}
	for rows.Next() {
		var e int64
		var l string
		require.NoError(t, rows.Scan(&e, &l))
		out[e] = l
	}
	require.NoError(t, rows.Err())
	return out
}

func fenceOf(t *testing.T, db *store.DB) store.FenceState {
	t.Helper()
	f, err := db.Fence(context.Background())
	require.NoError(t, err)
	return f
}

// A claim retried by the same leader (its first COMMIT's answer was lost,
// possibly on a standby promoted since) holds the fence; another leader at
// the same epoch and any older epoch do not.
func TestClaimFenceRetriedByItsLeader(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	claim(t, db, 5)
	ok, err := db.ClaimFence(ctx, 5, "test-leader")
	require.NoError(t, err)
	require.True(t, ok, "the leader of epoch 5 already holds it")
	ok, err = db.ClaimFence(ctx, 5, "other")
	require.NoError(t, err)
	require.False(t, ok, "epoch 5 belongs to test-leader")
	ok, err = db.ClaimFence(ctx, 4, "test-leader")
	require.NoError(t, err)
	require.False(t, ok, "an older epoch never claims")
	require.Equal(t, map[int64]string{5: "test-leader"}, terms(t, db), "one term row")
	p := db.Primary()
	require.NotEmpty(t, p.Server.Addr)
	require.False(t, p.Server.Started.IsZero())
	require.Zero(t, p.ServerChanges)
}

// The first fenced transaction on a server not yet verified under the
// claimed epoch re-affirms the fence there: nothing moves when the fence
// replicated, the fence moves forward when the server lost the claim, and the
// write is refused stale_epoch when the fence there is past the epoch.
func TestFencedReaffirmsTheFenceOnANewServer(t *testing.T) {
	ctx := context.Background()
	url := pgtest.New(t)
	open := func() *store.DB {
		db, err := store.Open(ctx, url, store.Options{})
		require.NoError(t, err)
		t.Cleanup(db.Close)
		return db
	}
	db, other := open(), open()
	nop := func(pgx.Tx) error { return nil }

	ok, err := db.ClaimFence(ctx, 3, "L")
	require.NoError(t, err)
	require.True(t, ok)
	require.NoError(t, db.Fenced(ctx, 3, nop))
	require.Zero(t, db.Primary().FenceReaffirms, "the server the claim ran on is verified")

	// Promotion of a synchronous standby: the fence replicated.
	store.SimulatePromotion(db)
	require.NoError(t, db.Fenced(ctx, 3, nop))
	require.NoError(t, db.Fenced(ctx, 3, nop))
	p := db.Primary()
	require.Equal(t, uint64(1), p.FenceReaffirms, "re-affirmed once, before the first write")
	require.Zero(t, p.FenceMoved)
	require.Equal(t, map[int64]string{3: "L"}, terms(t, db))

	// The new server lost the claim of epoch 7 (it only saw epoch 6 of
	// another leader): the first write claims 7 there, and 6 is stale.
	ok, err = other.ClaimFence(ctx, 6, "K")
	require.NoError(t, err)
	require.True(t, ok)
	store.SimulateLostClaim(db, 7, "L")
	require.NoError(t, db.Fenced(ctx, 7, nop))
	require.Equal(t, store.FenceState{Epoch: 7, LeaderID: "L", ClaimedAt: fenceOf(t, db).ClaimedAt}, fenceOf(t, db))
	require.Equal(t, "L", terms(t, db)[7])
	require.Equal(t, uint64(1), db.Primary().FenceMoved)
	require.ErrorIs(t, other.Fenced(ctx, 6, nop), store.ErrStaleEpoch)

	// The fence on the new server is past the epoch: refused, nothing moves.
	ok, err = other.ClaimFence(ctx, 9, "K")
	require.NoError(t, err)
	require.True(t, ok)
	store.SimulatePromotion(db)
	require.ErrorIs(t, db.Fenced(ctx, 7, nop), store.ErrStaleEpoch)
	require.Equal(t, uint64(9), fenceOf(t, db).Epoch)
	require.Equal(t, uint64(2), db.Primary().FenceReaffirms, "the refused re-affirmation is not counted")

	// Group commit re-affirms the same way: refused here (the fence is at 9),
	// and after the next leader's claim through this handle, verified once.
	job := &store.GroupJob{Fn: func(pgx.Tx, *pgx.Batch) error { return nil }}
	require.ErrorIs(t, db.FencedGroup(ctx, 7, []*store.GroupJob{job}), store.ErrStaleEpoch)
	require.True(t, job.Ran)
	ok, err = db.ClaimFence(ctx, 10, "L")
	require.NoError(t, err)
	require.True(t, ok)
	store.SimulatePromotion(db)
	job = &store.GroupJob{Fn: func(pgx.Tx, *pgx.Batch) error { return nil }}
	require.NoError(t, db.FencedGroup(ctx, 10, []*store.GroupJob{job}))
	require.NoError(t, job.Err)
	require.Equal(t, uint64(3), db.Primary().FenceReaffirms)
}

// The newest connection's host is tried first; the others keep their order,
// and each host's TLS variants stay together.
func TestPreferHostMovesTheWritableHostFirst(t *testing.T) {
	cc, err := pgconn.ParseConfig("postgres://u@10.0.0.1:5432,10.0.0.2:5432,10.0.0.3:5433/rap?sslmode=disable&target_session_attrs=read-write")
	require.NoError(t, err)
	order := func(c *pgconn.Config) []string {
		out := []string{net.JoinHostPort(c.Host, strconv.Itoa(int(c.Port)))}
		for _, f := range c.Fallbacks {
			out = append(out, net.JoinHostPort(f.Host, strconv.Itoa(int(f.Port))))
		}
		return out
	}
	require.Equal(t, []string{"10.0.0.1:5432", "10.0.0.2:5432", "10.0.0.3:5433"}, order(cc))
	store.PreferHost(cc, "10.0.0.3:5433")
	require.Equal(t, []string{"10.0.0.3:5433", "10.0.0.1:5432", "10.0.0.2:5432"}, order(cc))
	store.PreferHost(cc, "10.0.0.3:5433")
	require.Equal(t, []string{"10.0.0.3:5433", "10.0.0.1:5432", "10.0.0.2:5432"}, order(cc), "already first")
	store.PreferHost(cc, "10.0.0.9:5432")
	require.Equal(t, []string{"10.0.0.3:5433", "10.0.0.1:5432", "10.0.0.2:5432"}, order(cc), "unknown address: unchanged")

	tls, err := pgconn.ParseConfig("postgres://u@10.0.0.1:5432,10.0.0.2:5432/rap?sslmode=prefer")
	require.NoError(t, err)
	store.PreferHost(tls, "10.0.0.2:5432")
	got := order(tls)
	require.Equal(t, "10.0.0.2:5432", got[0])
	require.Equal(t, "10.0.0.2:5432", got[1], "both TLS variants of the host first")
	require.Equal(t, "10.0.0.1:5432", got[2])
}
