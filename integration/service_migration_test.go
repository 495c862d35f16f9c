package integration

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/agentapi"
	"github.com/rap-fabric/core/authority"
	"github.com/rap-fabric/core/internal/authtest"
	"github.com/rap-fabric/core/release"
)

// TestServiceLocalMigration: a release of a native service workload whose
// signed manifest declares a service-local migration command
// (migration.service_state.command) has it run by the agent's supervisor
// before the new instance starts, in the instance's work directory as the
// workload's user. 2.0.0 refuses to start without the data its migration
// writes: the migration runs first, the new instance turns healthy and is
// promoted, the run is recorded. 3.0.0's migration fails: the update is
// rolled back to 2.0.0 without the new version ever starting (it would
// leave a marker), the failure is in the heartbeat and the record, and the
// rollout halts at the canary. A release declaring no command runs none
// (1.0.0 → 2.0.0 is the only migration that ran).
func TestServiceLocalMigration(t *testing.T) {
	bin := binaries(t)
	g := authtest.New(t, 1)
	ctx := context.Background()
	g.Leader(10 * time.Second)
	owner := g.Client(g.DS...)
	cl, token := mkClusterToken(t, owner, "smig")

	dir := t.TempDir()
	require.NoError(t, os.Chmod(dir, 0o711))
	require.NoError(t, os.Chmod(filepath.Dir(dir), 0o711))
	machineID := filepath.Join(dir, "machine-id")
	require.NoError(t, os.WriteFile(machineID, []byte("abcdefabcdefabcdefabcdefabcdef17\n"), 0o644))
	ag := &wlAgent{agentProc: &agentProc{t: t, bin: bin, state: filepath.Join(dir, "state.db")}, workloads: filepath.Join(dir, "workloads"), caps: "can_run_vpn_exit"}
	t.Cleanup(func() { cleanupWorkloads(ag.workloads) })
	nodeID := enroll(t, ag.agentProc, g, owner, apiAddrs(g), "smig", token, cl.pin, machineID)
	ag.run()
	g.Eventually(20*time.Second, "the vpn-exit role assigned", func() bool {
		return owner.Do(ctx, http.MethodPost, "/v1/clusters/smig/nodes/"+nodeID+"/roles", map[string]any{"role": "vpn-exit"}, nil, nil) == nil
	})

	now := time.Now().UTC().Truncate(time.Second)
	require.NoError(t, owner.Do(ctx, http.MethodPut, "/v1/releases/roots", authority.SetRootsRequest{Threshold: 2,
		Keys: [][]byte{rootKey(1).Public().(ed25519.PublicKey), rootKey(2).Public().(ed25519.PublicKey), rootKey(3).Public().(ed25519.PublicKey)}, Reason: "test"}, nil, nil))
	ks, err := release.NewKeySetEnvelope(release.KeySet{Version: 1, SigningKeys: []release.SigningKey{{Public: rootKey(10).Public().(ed25519.PublicKey)}},
		IssuedAt: now.Add(-time.Minute), ExpiresAt: now.Add(24 * time.Hour)})
	require.NoError(t, err)
	for _, k := range []byte{1, 2} {
		ks, err = release.Sign(ks, rootKey(k))
		require.NoError(t, err)
	}
	require.NoError(t, owner.Do(ctx, http.MethodPost, "/v1/releases/key-sets", ks, nil, nil))

	// The releases are scripts around the test workload (a copy other uids
	// may run): "migrate" is their migration mode.
	v1 := filepath.Join(bin, "testworkload")
	tw := filepath.Join(dir, "testworkload")
	b, err := os.ReadFile(v1)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(tw, b, 0o755))
	require.NoError(t, os.Chmod(tw, 0o755))
	v2 := filepath.Join(dir, "svc-2.0.0")
	require.NoError(t, os.WriteFile(v2, []byte(fmt.Sprintf(`#!/bin/sh
# svc 2.0.0: needs the schema its migration writes
if [ "$1" = migrate ]; then echo "$RAP_MIGRATION_FROM->$RAP_MIGRATION_TO $RAP_PREVIOUS_VERSION->$RAP_RELEASE_VERSION" > schema; echo migrated; exit 0; fi
[ -f schema ] || { echo "no schema: not migrated"; exit 4; }
exec %s "$@"
`, tw)), 0o755))
	v3 := filepath.Join(dir, "svc-3.0.0")
	require.NoError(t, os.WriteFile(v3, []byte(fmt.Sprintf(`#!/bin/sh
# svc 3.0.0: its migration fails
if [ "$1" = migrate ]; then echo "schema 2 is corrupt"; exit 5; fi
touch started-3.0.0
exec %s "$@"
`, tw)), 0o755))
	migration := func(from, to uint32) func(*release.Manifest) {
		return func(m *release.Manifest) {
			m.Migration.ServiceState = &release.SchemaChange{From: from, To: to, Rollback: release.RollbackNone,
				Command: &release.MigrationCommand{Path: ".", Args: []string{"migrate"}, TimeoutSeconds: 20}}
		}
	}
	publishProduct(t, owner, "vpn-exit", "2.0.0", v2, migration(1, 2))
	publishProduct(t, owner, "vpn-exit", "3.0.0", v3, migration(2, 3))

	addr := freePort(t)
	require.NoError(t, owner.Do(ctx, http.MethodPut, "/v1/clusters/smig/nodes/"+nodeID+"/services/vpn-exit", map[string]any{"instance": "web", "enabled": true,
		"config": map[string]any{"workload": map[string]any{
			"driver": "native", "artifact": map[string]any{"path": v1, "sha256": fileSHA(t, v1), "version": "1.0.0"},
			"args": []string{"-listen", addr}, "stop_timeout": "2s",
			"health":  map[string]any{"kind": "http", "url": "http://" + addr + "/healthz", "interval": "200ms", "failure_threshold": 2},
			"restart": map[string]any{"initial_backoff": "200ms", "max_backoff": "1s", "crash_loop_after": 3, "stable_after": "3s"},
		}}}, nil, nil))
	var row svcRow
	g.Eventually(30*time.Second, "the pinned workload healthy", func() bool {
		row = services(owner, "smig", nodeID)["web"]
		return row.ReportedState == "healthy"
	})
	inst := filepath.Join(ag.workloads, cl.id, row.ID)
	work := filepath.Join(inst, "work")
	runs := func() string { return fileSHA(t, filepath.Join(inst, "artifact")) }
	record := func() string {
		b, _ := os.ReadFile(filepath.Join(dir, "workload-releases", cl.id, "workload-updates.json"))
		return string(b)
	}

	rollout := func(version, state string) authority.RolloutView {
		var v authority.RolloutView
		require.NoError(t, owner.Do(ctx, http.MethodPost, "/v1/clusters/smig/rollouts", map[string]any{"product": "vpn-exit", "version": version,
			"canary_count": 1, "wave_percent": 100, "soak_seconds": 0, "failure_threshold": 1, "update_deadline_seconds": 60}, &v, nil))
		g.Eventually(90*time.Second, "rollout of "+version+" "+state, func() bool {
			return owner.Do(ctx, http.MethodGet, "/v1/clusters/smig/rollouts/"+v.ID, nil, &v, nil) == nil && v.State == state
		})
		return v
	}
	workloadState := func(want func(u agentapi.UpdateReport) bool) agentapi.UpdateReport {
		var got agentapi.UpdateReport
		g.Eventually(30*time.Second, "the heartbeat's vpn-exit update state", func() bool {
			var l struct {
				Items []authority.NodeHeartbeat `json:"items"`
			}
			if owner.Do(ctx, http.MethodGet, "/v1/nodes/"+nodeID+"/heartbeat", nil, &l, nil) != nil || len(l.Items) == 0 {
				return false
			}
			for _, u := range l.Items[0].Updates {
				if u.Product == "vpn-exit" {
					got = u
					return want(u)
				}
			}
			return false
		})
		return got
	}

	// 2.0.0: migrated before it started (it refuses to run otherwise),
	// healthy, promoted; the run is recorded.
	rollout("2.0.0", "completed")
	require.Equal(t, fileSHA(t, v2), runs())
	g.Eventually(30*time.Second, "2.0.0 healthy", func() bool { return services(owner, "smig", nodeID)["web"].ReportedState == "healthy" })
	schema, err := os.ReadFile(filepath.Join(work, "schema"))
	require.NoError(t, err)
	require.Equal(t, "1->2 1.0.0->2.0.0\n", string(schema))
	require.Contains(t, record(), "service_state 1→2: . migrate: ok in")
	require.Contains(t, ag.out.String(), "service migration done")
	workloadState(func(u agentapi.UpdateReport) bool { return u.State == "running" && u.CurrentVersion == "2.0.0" })

	// 3.0.0: its migration fails; rolled back to 2.0.0, never started.
	v := rollout("3.0.0", "halted")
	require.Equal(t, 0, v.CurrentWave)
	require.Equal(t, "failed", v.Waves[0].Nodes[0].Outcome)
	require.Contains(t, v.Waves[0].Nodes[0].LastFailure, "service migration failed")
	u := workloadState(func(u agentapi.UpdateReport) bool { return u.State == "rolled_back" })
	require.Equal(t, "2.0.0", u.CurrentVersion)
	require.Equal(t, "3.0.0", u.TargetVersion)
	require.Contains(t, u.LastFailure, "schema 2 is corrupt")
	rec := record()
	require.Contains(t, rec, "service_state 2→3: . migrate: started")
	require.Contains(t, rec, "failed")
	_, err = os.Stat(filepath.Join(work, "started-3.0.0"))
	require.True(t, os.IsNotExist(err), "3.0.0 never started")
	require.Equal(t, fileSHA(t, v2), runs())
	require.Equal(t, "healthy", services(owner, "smig", nodeID)["web"].ReportedState)
	schema, err = os.ReadFile(filepath.Join(work, "schema"))
	require.NoError(t, err)
	require.Equal(t, "1->2 1.0.0->2.0.0\n", string(schema), "the failed migration changed nothing")
}
