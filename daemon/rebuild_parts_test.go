package daemon_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/authority"
	"github.com/rap-fabric/core/daemon"
	"github.com/rap-fabric/core/internal/authtest"
	"github.com/rap-fabric/core/store"
)

// TestRebuildCommitsInParts: a rebuild stores its snapshots in fenced
// transactions of SnapshotOptions.CommitPart nodes (one audited
// snapshot.publish each, numbered), and when a part fails, the parts
// already stored stay and the rebuild loop's retry publishes only the rest
// (their digests match, so they are not signed again), until every node has
// the change. In one transaction a cluster too large to store within the
// fenced time bound failed again on every retry and no node ever got it.
func TestRebuildCommitsInParts(t *testing.T) {
	g := authtest.NewWithConfig(t, 1, func(_ int, c *daemon.Config) { c.Snapshots.CommitPart = 3 })
	l := g.Leader(10 * time.Second)
	ctx := context.Background()
	heads := snapCluster(t, g, l, 7)

	type publish struct {
		Version uint64 `json:"version"`
		Nodes   int    `json:"nodes"`
		Part    int    `json:"part"`
		Parts   int    `json:"parts"`
	}
	publishes := func(after uint64) []publish {
		rows, err := l.DB.Pool.Query(ctx, `SELECT details FROM cluster_audit_events WHERE action = 'snapshot.publish' AND outcome = 'ok'
			AND (details->>'version')::bigint > $1 ORDER BY id`, after)
		require.NoError(t, err)
		defer rows.Close()
		var out []publish
		for rows.Next() {
			var raw []byte
			require.NoError(t, rows.Scan(&raw))
			var p publish
			require.NoError(t, json.Unmarshal(raw, &p))
			out = append(out, p)
		}
		require.NoError(t, rows.Err())
		return out
	}
	// A forced rebuild of 7 nodes: parts of 3, 3 and 1, in node order.
	sys := authority.Actor{ID: "test", Kind: "system"}
	res, err := l.Auth.RebuildSnapshots(ctx, sys, "east", true)
	require.NoError(t, err)
	require.Len(t, res.Nodes, 7)
	v1 := res.Version
	require.Equal(t, []publish{{v1, 3, 1, 3}, {v1, 3, 2, 3}, {v1, 1, 3, 3}}, publishes(v1-1))
	for _, id := range res.Nodes {
		require.Equal(t, v1, heads()[id])
	}

	// The second part's first node cannot be stored: a change reaches the
	// first part only, and the dirty mark stays.
	blocked := res.Nodes[3]
	_, err = l.DB.Pool.Exec(ctx, fmt.Sprintf(`CREATE FUNCTION test_block() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN IF NEW.node_id = '%s' THEN RAISE EXCEPTION 'blocked by the test'; END IF; RETURN NEW; END $$;
		CREATE TRIGGER test_block BEFORE INSERT ON node_config_snapshots FOR EACH ROW EXECUTE FUNCTION test_block();`, blocked))
	require.NoError(t, err)
	_, err = l.Auth.SetTelemetryFlag(ctx, sys, authority.TelemetryFlagRequest{Scope: "cluster", Cluster: "east", Name: "probe", Enabled: true}, "")
	require.NoError(t, err)
	hs := heads()
	for i, id := range res.Nodes {
		if i < 3 {
			require.Greater(t, hs[id], v1, "part 1 stored")
		} else {
			require.Equal(t, v1, hs[id], "parts 2 and 3 not stored")
		}
	}
	ds, err := store.DirtyClusters(ctx, l.DB.Pool)
	require.NoError(t, err)
	require.Len(t, ds, 1, "the failed rebuild left its dirty mark")

	// Unblocked, the loop's retry publishes the other two parts only.
	_, err = l.DB.Pool.Exec(ctx, `DROP TRIGGER test_block ON node_config_snapshots; DROP FUNCTION test_block()`)
	require.NoError(t, err)
	g.Eventually(30*time.Second, "every node has the change", func() bool {
		hs := heads()
		for _, id := range res.Nodes {
			if hs[id] <= v1 {
				return false
			}
		}
		return true
	})
	ps := publishes(v1)
	nodes := 0
	for _, p := range ps {
		nodes += p.Nodes
	}
	require.Equal(t, 7, nodes, "no node published twice: %+v", ps)
	require.Equal(t, 3, ps[0].Nodes)
	require.Equal(t, 1, ps[0].Part)
	require.Greater(t, ps[1].Version, ps[0].Version, "the rest came from a later rebuild")
}

// snapCluster makes cluster "east" on g with n auto-approved mesh agents
// enrolled, waits until their enrollments' rebuilds are done, and returns a
// reader of every node's newest snapshot version.
func snapCluster(t *testing.T, g *authtest.Group, l *daemon.Daemon, n int) func() map[string]uint64 {
	t.Helper()
	ctx := context.Background()
	owner := g.Client(g.DS...)
	_, pin := mkClusterSnap(t, owner, "east")
	var tok struct {
		Token string `json:"token"`
	}
	require.NoError(t, owner.Do(ctx, http.MethodPost, "/v1/join-tokens", map[string]any{"cluster": "east", "max_uses": 10, "auto_approve": true,
		"allowed_roles": []string{"relay-node"}, "description": "snapshot rebuild test"}, &tok, nil))
	var cluster string
	for i := range n {
		cluster = enrollSnapAgent(t, g, pin, tok.Token, fmt.Sprintf("n%d", i), []string{"can_route_mesh"}).cluster
	}
	g.Eventually(20*time.Second, "the enrollments' rebuilds are done", func() bool {
		ds, err := store.DirtyClusters(ctx, l.DB.Pool)
		return err == nil && len(ds) == 0
	})
	return func() map[string]uint64 {
		hs, err := store.SnapshotHeads(ctx, l.DB.Pool, cluster)
		require.NoError(t, err)
		out := map[string]uint64{}
		for id, h := range hs {
			out[id] = h.Version
		}
		return out
	}
}
