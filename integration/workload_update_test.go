package integration

import (
	"context"
	"crypto/ed25519"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/agentapi"
	"github.com/rap-fabric/core/authority"
	"github.com/rap-fabric/core/internal/authtest"
	"github.com/rap-fabric/core/release"
)

// TestWorkloadUpdates: a service workload updates through the supervisor
// with the agent's verify → stage → health → promote/rollback cycle, driven
// by a rollout of its service type. A real agent process supervises a real
// native workload pinned at 1.0.0; a rollout of vpn-exit 2.0.0 (signed,
// verified, staged from version storage) restarts the instance on the new
// artifact, which turns healthy and is promoted: the rollout completes; a
// kill -9 of the agent keeps it (re-adopted on the promoted artifact). A
// broken 3.0.0 (exits at start) is rolled back by the agent to 2.0.0 (the
// last good artifact, not the pinned one) within the deadline and the
// rollout halts at the canary. Each step shows in the heartbeat's update
// state.
func TestWorkloadUpdates(t *testing.T) {
	bin := binaries(t)
	g := authtest.New(t, 1)
	ctx := context.Background()
	g.Leader(10 * time.Second)
	owner := g.Client(g.DS...)
	cl, token := mkClusterToken(t, owner, "wup")

	dir := t.TempDir()
	require.NoError(t, os.Chmod(dir, 0o711))
	require.NoError(t, os.Chmod(filepath.Dir(dir), 0o711))
	machineID := filepath.Join(dir, "machine-id")
	require.NoError(t, os.WriteFile(machineID, []byte("abcdefabcdefabcdefabcdefabcdef07\n"), 0o644))
	ag := &wlAgent{agentProc: &agentProc{t: t, bin: bin, state: filepath.Join(dir, "state.db")}, workloads: filepath.Join(dir, "workloads"), caps: "can_run_vpn_exit"}
	t.Cleanup(func() { cleanupWorkloads(ag.workloads) })
	nodeID := enroll(t, ag.agentProc, g, owner, apiAddrs(g), "wup", token, cl.pin, machineID)
	ag.run()
	g.Eventually(20*time.Second, "the vpn-exit role assigned", func() bool {
		return owner.Do(ctx, http.MethodPost, "/v1/clusters/wup/nodes/"+nodeID+"/roles", map[string]any{"role": "vpn-exit"}, nil, nil) == nil
	})

	// Release trust, and two releases of the vpn-exit workload: 2.0.0 (the
	// test workload with a trailer: other bytes, same program) and 3.0.0
	// (exits at once).
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
	v1 := filepath.Join(bin, "testworkload")
	b, err := os.ReadFile(v1)
	require.NoError(t, err)
	v2 := filepath.Join(dir, "testworkload-2.0.0")
	require.NoError(t, os.WriteFile(v2, append(b, []byte("\nrap release 2.0.0\n")...), 0o755))
	v3 := filepath.Join(dir, "broken-3.0.0")
	require.NoError(t, os.WriteFile(v3, []byte("#!/bin/sh\necho broken 3.0.0\nexit 3\n"), 0o755))
	publishProduct(t, owner, "vpn-exit", "2.0.0", v2)
	publishProduct(t, owner, "vpn-exit", "3.0.0", v3)

	// The service, pinned at 1.0.0.
	addr := freePort(t)
	require.NoError(t, owner.Do(ctx, http.MethodPut, "/v1/clusters/wup/nodes/"+nodeID+"/services/vpn-exit", map[string]any{"instance": "web", "enabled": true,
		"config": map[string]any{"workload": map[string]any{
			"driver": "native", "artifact": map[string]any{"path": v1, "sha256": fileSHA(t, v1), "version": "1.0.0"},
			"args": []string{"-listen", addr}, "stop_timeout": "2s",
			"health":  map[string]any{"kind": "http", "url": "http://" + addr + "/healthz", "interval": "200ms", "failure_threshold": 2},
			"restart": map[string]any{"initial_backoff": "200ms", "max_backoff": "1s", "crash_loop_after": 3, "stable_after": "3s"},
		}}}, nil, nil))
	var row svcRow
	g.Eventually(30*time.Second, "the pinned workload healthy", func() bool {
		row = services(owner, "wup", nodeID)["web"]
		return row.ReportedState == "healthy"
	})
	runs := func() string { return fileSHA(t, filepath.Join(ag.workloads, cl.id, row.ID, "artifact")) }
	require.Equal(t, fileSHA(t, v1), runs())

	rollout := func(version, state string) authority.RolloutView {
		var v authority.RolloutView
		require.NoError(t, owner.Do(ctx, http.MethodPost, "/v1/clusters/wup/rollouts", map[string]any{"product": "vpn-exit", "version": version,
			"canary_count": 1, "wave_percent": 100, "soak_seconds": 0, "failure_threshold": 1, "update_deadline_seconds": 60}, &v, nil))
		g.Eventually(90*time.Second, "rollout of "+version+" "+state, func() bool {
			return owner.Do(ctx, http.MethodGet, "/v1/clusters/wup/rollouts/"+v.ID, nil, &v, nil) == nil && v.State == state
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

	// 2.0.0: verified, staged, started, healthy, promoted.
	rollout("2.0.0", "completed")
	require.Equal(t, fileSHA(t, v2), runs(), "the instance runs the released artifact")
	g.Eventually(30*time.Second, "the updated workload healthy", func() bool { return services(owner, "wup", nodeID)["web"].ReportedState == "healthy" })
	u := workloadState(func(u agentapi.UpdateReport) bool { return u.State == "running" && u.CurrentVersion == "2.0.0" })
	require.Equal(t, "1.0.0", u.PreviousVersion)
	require.Contains(t, ag.out.String(), "workload update promoted")

	// kill -9 of the agent: the restarted agent keeps the promoted release
	// (recorded before it was taken) and re-adopts the running instance
	// instead of restarting it on the pinned artifact.
	inst := filepath.Join(ag.workloads, cl.id, row.ID)
	pids := workloadPIDs(inst)
	require.Len(t, pids, 1)
	require.NoError(t, ag.cmd.Process.Kill())
	_ = ag.cmd.Wait()
	ag.run()
	g.Eventually(30*time.Second, "the restarted agent reports the adopted workload healthy", func() bool {
		r := services(owner, "wup", nodeID)["web"]
		return r.ReportedState == "healthy" && r.ReportedAt != nil && r.ReportedAt.After(time.Now().Add(-2*time.Second))
	})
	require.Equal(t, pids, workloadPIDs(inst), "the instance was re-adopted, not restarted")
	require.Equal(t, fileSHA(t, v2), runs())

	// 3.0.0 exits at start: rolled back to 2.0.0 by the agent, the rollout
	// halts at the canary.
	v := rollout("3.0.0", "halted")
	require.Equal(t, 0, v.CurrentWave)
	require.Equal(t, "failed", v.Waves[0].Nodes[0].Outcome)
	require.Contains(t, v.Waves[0].Nodes[0].LastFailure, "vpn-exit 3.0.0")
	g.Eventually(30*time.Second, "healthy again on the last good artifact", func() bool {
		return services(owner, "wup", nodeID)["web"].ReportedState == "healthy" && runs() == fileSHA(t, v2)
	})
	u = workloadState(func(u agentapi.UpdateReport) bool { return u.State == "rolled_back" })
	require.Equal(t, "2.0.0", u.CurrentVersion)
	require.Equal(t, "3.0.0", u.TargetVersion)
	require.True(t, strings.Contains(u.LastFailure, "restarting") || strings.Contains(u.LastFailure, "crash_loop"), u.LastFailure)
}
