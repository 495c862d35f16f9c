package daemon_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/apiclient"
	"github.com/rap-fabric/core/daemon"
	"github.com/rap-fabric/core/httpapi"
	"github.com/rap-fabric/core/internal/authtest"
	"github.com/rap-fabric/core/store"
)

func apiCode(err error) string {
	var ae *apiclient.Error
	if errors.As(err, &ae) {
		return ae.Code
	}
	return ""
}

func TestQuorumElectionFencingAndFailover(t *testing.T) {
	g := authtest.New(t, 3)
	ctx := context.Background()
	l := g.Leader(10 * time.Second)

	// Status: one leader, one epoch, three healthy-or-known members.
	var st httpapi.AuthorityStatus
	require.NoError(t, g.Client(l).Do(ctx, http.MethodGet, "/v1/authority/status", nil, &st, nil))
	require.Equal(t, l.Node(), st.NodeID)
	require.Equal(t, "Leader", st.State)
	require.True(t, st.Quorum)
	require.Len(t, st.Members, 3)
	require.NotZero(t, st.AgreedEpoch)
	require.Equal(t, st.AgreedEpoch, st.FenceEpoch)
	require.Equal(t, st.AgreedEpoch, st.ClaimedEpoch, "the leader claimed the agreed epoch")
	require.Equal(t, st.AgreedEpoch, st.FenceEpochHeld, "and holds its fence")
	require.Equal(t, st.AgreedEpoch, st.Epoch, "epoch stays as the deprecated name of agreed_epoch")
	epoch1 := st.AgreedEpoch

	// A fenced write on the leader.
	_, err := authtest.CreateCluster(ctx, g.Client(l), "east")
	require.NoError(t, err)

	// Through a follower: the follower answers not_leader with the leader's
	// address and the client follows it.
	f := g.Followers(l)[0]
	var raw map[string]any
	err = g.Client(f).Do(ctx, http.MethodPost, "/v1/clusters", map[string]any{"name": "west"}, &raw, nil)
	require.NoError(t, err)
	require.Equal(t, "west", raw["slug"])
	// A single hop without following shows the code itself.
	noFollow, err := apiclient.New(apiclient.Options{Servers: []string{f.APIAddr()}, Token: g.Token, CAPin: g.Pin, MaxRedirects: -1})
	require.NoError(t, err)
	err = noFollow.Do(ctx, http.MethodPost, "/v1/clusters", map[string]any{"name": "north"}, nil, nil)
	require.Equal(t, "not_leader", apiCode(err))

	// Reads are answered by any authority.
	var list struct{ Items []map[string]any }
	require.NoError(t, g.Client(f).Do(ctx, http.MethodGet, "/v1/clusters", nil, &list, nil))
	require.Len(t, list.Items, 2)

	// Kill the leader: a new leader with a higher epoch, and writes resume.
	require.NoError(t, l.Close())
	g.DS[g.Index(l)] = nil
	l2 := g.Leader(10 * time.Second)
	require.NotEqual(t, l.Node(), l2.Node())
	require.Greater(t, l2.Auth.FenceEpoch(), epoch1)
	_, err = authtest.CreateCluster(ctx, g.Client(g.Followers(nil)...), "south")
	require.NoError(t, err)

	// The deposed leader's epoch can land nothing: PostgreSQL refuses it.
	err = l2.DB.Fenced(ctx, epoch1, func(tx pgx.Tx) error {
		_, err := store.InsertOrganization(ctx, tx, store.Organization{ID: store.NewID(), Name: "late", Slug: "late"})
		return err
	})
	require.ErrorIs(t, err, store.ErrStaleEpoch)
}

func TestIsolatedLeaderCannotWrite(t *testing.T) {
	g := authtest.New(t, 3)
	ctx := context.Background()
	old := g.Leader(10 * time.Second)
	oldEpoch := old.Auth.FenceEpoch()
	_, err := authtest.CreateCluster(ctx, g.Client(old), "before")
	require.NoError(t, err)

	// Cut the leader off from both followers. It may still believe it leads for
	// a moment, but every fenced request it takes fails fast with no_quorum.
	g.Isolate(old)
	start := time.Now()
	onlyOld, err := apiclient.New(apiclient.Options{Servers: []string{old.APIAddr()}, Token: g.Token, CAPin: g.Pin, MaxRedirects: -1})
	require.NoError(t, err)
	err = onlyOld.Do(ctx, http.MethodPost, "/v1/clusters", map[string]any{"name": "minority"}, nil, nil)
	require.Contains(t, []string{"no_quorum", "not_leader"}, apiCode(err), "err=%v", err)
	require.Less(t, time.Since(start), 3*time.Second, "refusal must be fast")

	// The majority elects a new leader with a higher epoch and keeps working.
	var nl = g.LeaderAmong(10*time.Second, g.Followers(old)...)
	require.Greater(t, nl.Auth.FenceEpoch(), oldEpoch)
	_, err = authtest.CreateCluster(ctx, g.Client(nl), "majority")
	require.NoError(t, err)

	// Whatever the deposed leader still believes, PostgreSQL refuses its epoch,
	// and no row carries it after the new claim.
	err = old.DB.Fenced(ctx, oldEpoch, func(tx pgx.Tx) error {
		_, err := store.InsertOrganization(ctx, tx, store.Organization{ID: store.NewID(), Name: "stale", Slug: "stale"})
		return err
	})
	require.ErrorIs(t, err, store.ErrStaleEpoch)
	var claimedAt time.Time
	require.NoError(t, nl.DB.Pool.QueryRow(ctx, `SELECT claimed_at FROM cluster_authority_terms WHERE epoch = $1`, int64(nl.Auth.FenceEpoch())).Scan(&claimedAt))
	var late int
	require.NoError(t, nl.DB.Pool.QueryRow(ctx, `SELECT count(*) FROM clusters WHERE fence_epoch = $1 AND created_at > $2`, int64(oldEpoch), claimedAt).Scan(&late))
	require.Zero(t, late)
	var minority int
	require.NoError(t, nl.DB.Pool.QueryRow(ctx, `SELECT count(*) FROM clusters WHERE slug = 'minority'`).Scan(&minority))
	require.Zero(t, minority)

	// Heal: the old leader rejoins as a follower and the states converge.
	g.Heal()
	g.Eventually(10*time.Second, "old leader follows", func() bool { return !old.Raft.IsLeader() && old.FSM.AgreedEpoch() == nl.FSM.AgreedEpoch() })
	// The epoch can match before the last entries are applied.
	g.Eventually(10*time.Second, "the states converge", func() bool { return old.FSM.Dump() == nl.FSM.Dump() })
}

func TestRestartFromDiskKeepsState(t *testing.T) {
	g := authtest.New(t, 3)
	ctx := context.Background()
	l := g.Leader(10 * time.Second)
	_, err := authtest.CreateCluster(ctx, g.Client(l), "persist")
	require.NoError(t, err)
	before := l.FSM.Dump()
	epochBefore := l.FSM.AgreedEpoch()
	for i, d := range g.DS {
		require.NoError(t, d.Close())
		g.DS[i] = nil
	}
	for i := range g.DS {
		g.Start(i)
	}
	nl := g.Leader(15 * time.Second)
	g.Eventually(10*time.Second, "replayed state", func() bool {
		for _, d := range g.DS {
			if d.FSM.AgreedEpoch() <= epochBefore {
				return false
			}
		}
		return true
	})
	for _, d := range g.DS {
		_, ok := d.FSM.ClusterCA(mustClusterID(t, nl, "persist"))
		require.True(t, ok, "CA key survived restart on %s", d.Node())
		require.Len(t, d.FSM.Members(), 3)
	}
	require.NotEqual(t, before, nl.FSM.Dump(), "a new epoch was claimed after restart")
	_, err = authtest.CreateCluster(ctx, g.Client(nl), "after-restart")
	require.NoError(t, err)
}

func mustClusterID(t *testing.T, d *daemon.Daemon, slug string) string {
	t.Helper()
	c, err := store.GetCluster(context.Background(), d.DB.Pool, slug)
	require.NoError(t, err)
	return c.ID
}
