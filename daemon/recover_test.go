package daemon_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/daemon"
	"github.com/rap-fabric/core/internal/authtest"
)

// TestRecoverLostQuorumFromTheSurvivor: two of three authorities are
// destroyed (stopped, data directories wiped); the group has no quorum and
// never will. The survivor is stopped, `daemon.Recover` (rap-authority
// recover) makes it the only voter, and it restarts as leader with every
// committed entry: clusters and their CAs, members, the epoch (which then
// moves on, so PostgreSQL's fence follows). It serves writes again and the
// dead members are removed through the API.
func TestRecoverLostQuorumFromTheSurvivor(t *testing.T) {
	g := authtest.New(t, 3)
	ctx := context.Background()
	leader := g.Leader(15 * time.Second)
	owner := g.Client(g.DS...)
	var ids []string
	for _, slug := range []string{"before-1", "before-2"} {
		c, err := authtest.CreateCluster(ctx, owner, slug)
		require.NoError(t, err)
		ids = append(ids, c["id"].(string))
	}
	// Committed everywhere (the survivor has it all).
	g.Eventually(10*time.Second, "every authority applied the clusters", func() bool {
		for _, d := range g.DS {
			for _, id := range ids {
				if _, ok := d.FSM.ClusterCA(id); !ok {
					return false
				}
			}
		}
		return true
	})
	survivor := g.Followers(leader)[0]
	si := g.Index(survivor)
	epochBefore := survivor.FSM.AgreedEpoch()
	caBefore, _ := survivor.FSM.ClusterCA(ids[0])

	// Two authorities are gone for good.
	var dead []string
	for i, d := range g.DS {
		if i == si {
			continue
		}
		dead = append(dead, d.Node())
		require.NoError(t, d.Close())
		g.DS[i] = nil
		require.NoError(t, os.RemoveAll(filepath.Join(g.DataDir(i), "raft")))
	}
	// The survivor alone has no quorum: writes fail.
	err := g.Client(survivor).Do(ctx, http.MethodPost, "/v1/clusters", map[string]any{"name": "during", "slug": "during"}, nil, nil)
	require.Error(t, err)
	require.NoError(t, survivor.Close())
	g.DS[si] = nil

	dir := g.DataDir(si)
	dry, err := daemon.Recover(dir, survivor.Node(), true, nil)
	require.NoError(t, err)
	require.Len(t, dry.Before, 3)
	require.Empty(t, dry.After)
	require.NotZero(t, dry.LastIndex)
	// A dry run writes nothing: the same answer again.
	again, err := daemon.Recover(dir, survivor.Node(), true, nil)
	require.NoError(t, err)
	require.Equal(t, dry, again)
	_, err = daemon.Recover(dir, "nobody", false, nil)
	require.Error(t, err, "an id not in the configuration is refused")

	res, err := daemon.Recover(dir, survivor.Node(), false, nil)
	require.NoError(t, err)
	require.Len(t, res.After, 1)
	require.Equal(t, survivor.Node(), res.After[0].ID)

	d := g.Start(si)
	l := g.LeaderAmong(20*time.Second, d)
	require.Equal(t, d, l)
	for _, id := range ids {
		ca, ok := d.FSM.ClusterCA(id)
		require.True(t, ok, "cluster %s survived", id)
		if id == ids[0] {
			require.Equal(t, caBefore.Current.CertDER, ca.Current.CertDER)
		}
	}
	require.Greater(t, d.FSM.AgreedEpoch(), epochBefore, "a new epoch, so the PostgreSQL fence moves on")
	require.Len(t, d.FSM.Members(), 3, "the dead members are still listed until removed")

	c := g.Client(d)
	var list struct {
		Items []map[string]any `json:"items"`
	}
	require.NoError(t, c.Do(ctx, http.MethodGet, "/v1/clusters", nil, &list, nil))
	require.Len(t, list.Items, 2)
	_, err = authtest.CreateCluster(ctx, c, "after")
	require.NoError(t, err, "the recovered authority serves fenced writes")
	for _, id := range dead {
		require.NoError(t, c.Do(ctx, http.MethodDelete, "/v1/authority/members/"+id, nil, nil, nil), id)
	}
	require.Len(t, d.FSM.Members(), 1)
	require.Equal(t, d.Node(), d.FSM.Members()[0].ID)
}

// TestRecoverAboveANewerFence: the authority that survives a lost quorum was
// cut off (stopped) first; the other two went on electing leaders, each of
// which claimed the PostgreSQL fence with a newer epoch, and were then
// destroyed. The survivor's log ends below the fence. Recovered without
// looking at PostgreSQL (daemon.Recover) it leads but its epoch claim is
// refused as stale, so it never serves a fenced write: that is the failure
// this test pins. Recovered the way `rap-authority recover` does it
// (daemon.RecoverAboveFence) its stored term is raised to the fence epoch,
// it claims an epoch above the fence and serves fenced writes again.
func TestRecoverAboveANewerFence(t *testing.T) {
	g := authtest.New(t, 3)
	ctx := context.Background()
	leader := g.Leader(15 * time.Second)
	owner := g.Client(g.DS...)
	c, err := authtest.CreateCluster(ctx, owner, "before")
	require.NoError(t, err)
	g.Eventually(10*time.Second, "every authority applied the cluster", func() bool {
		for _, d := range g.DS {
			if _, ok := d.FSM.ClusterCA(c["id"].(string)); !ok {
				return false
			}
		}
		return true
	})
	survivor := g.Followers(leader)[0]
	si, sid := g.Index(survivor), survivor.Node()
	survivorEpoch := survivor.FSM.AgreedEpoch()
	require.NoError(t, survivor.Close())
	g.DS[si] = nil
	dir := g.DataDir(si)
	onDisk, err := daemon.Recover(dir, sid, true, nil)
	require.NoError(t, err)

	// The other two keep electing leaders (a restarted leader forces an
	// election in a higher term, and the winner claims a higher epoch) until
	// the fence is well past anything the survivor holds.
	var others []int
	for i, d := range g.DS {
		if d != nil {
			others = append(others, i)
		}
	}
	var fence uint64
	for round := 0; ; round++ {
		require.Less(t, round, 10, "the fence did not move past the survivor's term %d", onDisk.Term)
		var up []*daemon.Daemon
		for _, i := range others {
			up = append(up, g.DS[i])
		}
		l := g.LeaderAmong(30*time.Second, up...)
		g.Eventually(20*time.Second, "the new leader holds the fence", func() bool { return l.Auth.FenceEpoch() != 0 })
		f, err := l.DB.Fence(ctx)
		require.NoError(t, err)
		fence = f.Epoch
		if fence >= onDisk.Term+3 && fence > survivorEpoch+1 {
			break
		}
		li := g.Index(l)
		require.NoError(t, l.Close())
		g.DS[li] = nil
		g.Start(li)
	}
	t.Logf("survivor: epoch %d, term %d on disk; PostgreSQL fence at epoch %d", survivorEpoch, onDisk.Term, fence)
	for _, i := range others {
		require.NoError(t, g.DS[i].Close())
		g.DS[i] = nil
		require.NoError(t, os.RemoveAll(filepath.Join(g.DataDir(i), "raft")))
	}

	// Recovered blind to the fence: it leads, but its epoch is at or below
	// the fence, the claim is refused, and every fenced write fails.
	refusals := strings.Count(g.Logs.String(), "fence already at a newer epoch")
	_, err = daemon.Recover(dir, sid, false, nil)
	require.NoError(t, err)
	d := g.Start(si)
	g.Eventually(20*time.Second, "the blind survivor leads", d.Raft.IsLeader)
	g.Eventually(20*time.Second, "the stale claim is refused", func() bool {
		return strings.Count(g.Logs.String(), "fence already at a newer epoch") > refusals
	})
	require.LessOrEqual(t, d.FSM.AgreedEpoch(), fence)
	require.Zero(t, d.Auth.FenceEpoch(), "a leader below the fence holds no fence")
	_, err = authtest.CreateCluster(ctx, g.Client(d), "blind")
	require.Error(t, err, "no fenced write below the fence")
	require.NoError(t, d.Close())
	g.DS[si] = nil

	// Recovered as rap-authority recover does it: above the fence.
	res, err := daemon.RecoverAboveFence(ctx, dir, sid, g.DBURL, false, nil)
	require.NoError(t, err)
	require.Equal(t, fence, res.Fence.Epoch)
	require.GreaterOrEqual(t, res.Term, fence, "the stored term is raised to the fence epoch")
	d = g.Start(si)
	require.Equal(t, d, g.LeaderAmong(20*time.Second, d))
	g.Eventually(20*time.Second, "the recovered leader claims the fence", func() bool { return d.Auth.FenceEpoch() != 0 })
	require.Greater(t, d.FSM.AgreedEpoch(), fence)
	require.Equal(t, d.FSM.AgreedEpoch(), d.Auth.FenceEpoch())
	f, err := d.DB.Fence(ctx)
	require.NoError(t, err)
	require.Equal(t, d.FSM.AgreedEpoch(), f.Epoch)
	require.Equal(t, sid, f.LeaderID)
	_, err = authtest.CreateCluster(ctx, g.Client(d), "after")
	require.NoError(t, err, "the recovered authority serves fenced writes")
	_, ok := d.FSM.ClusterCA(c["id"].(string))
	require.True(t, ok, "the committed cluster survived")
}
