package daemon_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
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
