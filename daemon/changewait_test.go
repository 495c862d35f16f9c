package daemon_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/authority"
	"github.com/rap-fabric/core/daemon"
	"github.com/rap-fabric/core/internal/authtest"
	"github.com/rap-fabric/core/store"
)

// TestChangeAnswersBeforeALongRebuild: a mutation waits for its own snapshot
// rebuild at most SnapshotOptions.ChangeWait; a rebuild that takes longer
// (here one node's snapshot takes 2 s to store) goes on after the answer and
// still publishes the change to every node, the dirty mark is cleared, and
// rap_snapshot_change_wait_exceeded_total counts the early answer. A quick
// rebuild is still waited for: the change is published when it answers.
func TestChangeAnswersBeforeALongRebuild(t *testing.T) {
	g := authtest.NewWithConfig(t, 1, func(i int, c *daemon.Config) {
		metricsConfig(i, c)
		c.Snapshots.CommitPart = 2
		c.Snapshots.ChangeWait = 300 * time.Millisecond
	})
	l := g.Leader(10 * time.Second)
	ctx := context.Background()
	heads := snapCluster(t, g, l, 4)
	allAbove := func(v uint64) bool {
		hs := heads()
		for _, hv := range hs {
			if hv <= v {
				return false
			}
		}
		return len(hs) > 0
	}
	top := func() uint64 {
		var v uint64
		for _, hv := range heads() {
			v = max(v, hv)
		}
		return v
	}
	sys := authority.Actor{ID: "test", Kind: "system"}

	// Quick: answered after the rebuild, which published to every node.
	v0 := top()
	_, err := l.Auth.SetTelemetryFlag(ctx, sys, authority.TelemetryFlagRequest{Scope: "cluster", Cluster: "east", Name: "probe", Enabled: true}, "")
	require.NoError(t, err)
	require.True(t, allAbove(v0), "a quick rebuild is waited for")
	require.Zero(t, scrape(t, l).value("rap_snapshot_change_wait_exceeded_total"))

	// Slow: the last node's snapshot takes 2 s to store (within the fenced
	// statement timeout, 3 s).
	slow := ""
	for id := range heads() {
		slow = max(slow, id)
	}
	_, err = l.DB.Pool.Exec(ctx, fmt.Sprintf(`CREATE FUNCTION test_slow() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN IF NEW.node_id = '%s' THEN PERFORM pg_sleep(2); END IF; RETURN NEW; END $$;
		CREATE TRIGGER test_slow BEFORE INSERT ON node_config_snapshots FOR EACH ROW EXECUTE FUNCTION test_slow();`, slow))
	require.NoError(t, err)
	v1 := top()
	began := time.Now()
	_, err = l.Auth.SetTelemetryFlag(ctx, sys, authority.TelemetryFlagRequest{Scope: "cluster", Cluster: "east", Name: "probe", Enabled: false}, "")
	took := time.Since(began)
	require.NoError(t, err)
	require.Less(t, took, 1800*time.Millisecond, "the change answered before its 2 s rebuild ended")
	require.Equal(t, v1, heads()[slow], "the slow node's snapshot was not stored yet when the change answered")
	g.Eventually(20*time.Second, "the rebuild went on and published the change to every node", func() bool { return allAbove(v1) })
	g.Eventually(10*time.Second, "the dirty mark is cleared", func() bool {
		ds, err := store.DirtyClusters(ctx, l.DB.Pool)
		return err == nil && len(ds) == 0
	})
	require.Equal(t, 1.0, scrape(t, l).value("rap_snapshot_change_wait_exceeded_total"))
}
