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

	"github.com/rap-fabric/core/authority"
	"github.com/rap-fabric/core/internal/authtest"
	"github.com/rap-fabric/core/release"
)

// TestWorkloadTrialKill: kill -9 of the agent in the middle of a service
// workload's update trial (the instance already runs the new artifact, not
// yet promoted) leaves a working workload: the restarted agent finds the
// trial in workload-updates.json, re-adopts the instance, judges it and
// promotes it, and the rollout completes.
func TestWorkloadTrialKill(t *testing.T) {
	bin := binaries(t)
	g := authtest.New(t, 1)
	ctx := context.Background()
	g.Leader(10 * time.Second)
	owner := g.Client(g.DS...)
	cl, token := mkClusterToken(t, owner, "wtk")

	dir := t.TempDir()
	require.NoError(t, os.Chmod(dir, 0o711))
	require.NoError(t, os.Chmod(filepath.Dir(dir), 0o711))
	machineID := filepath.Join(dir, "machine-id")
	require.NoError(t, os.WriteFile(machineID, []byte("abcdefabcdefabcdefabcdefabcdef1d\n"), 0o644))
	ag := &wlAgent{agentProc: &agentProc{t: t, bin: bin, state: filepath.Join(dir, "state.db")}, workloads: filepath.Join(dir, "workloads"), caps: "can_run_vpn_exit"}
	t.Cleanup(func() { cleanupWorkloads(ag.workloads) })
	nodeID := enroll(t, ag.agentProc, g, owner, apiAddrs(g), "wtk", token, cl.pin, machineID)
	ag.run()
	g.Eventually(20*time.Second, "the vpn-exit role assigned", func() bool {
		return owner.Do(ctx, http.MethodPost, "/v1/clusters/wtk/nodes/"+nodeID+"/roles", map[string]any{"role": "vpn-exit"}, nil, nil) == nil
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
	publishProduct(t, owner, "vpn-exit", "2.0.0", v2)

	// The service, pinned at 1.0.0, without a health check: a trial is
	// promoted after 5 s of running, which leaves time to kill the agent in
	// the middle of it.
	addr := freePort(t)
	require.NoError(t, owner.Do(ctx, http.MethodPut, "/v1/clusters/wtk/nodes/"+nodeID+"/services/vpn-exit", map[string]any{"instance": "web", "enabled": true,
		"config": map[string]any{"workload": map[string]any{
			"driver": "native", "artifact": map[string]any{"path": v1, "sha256": fileSHA(t, v1), "version": "1.0.0"},
			"args": []string{"-listen", addr}, "stop_timeout": "2s",
			"restart": map[string]any{"initial_backoff": "200ms", "max_backoff": "1s", "crash_loop_after": 3, "stable_after": "3s"},
		}}}, nil, nil))
	var row svcRow
	g.Eventually(30*time.Second, "the pinned workload running", func() bool {
		row = services(owner, "wtk", nodeID)["web"]
		return row.ReportedState == "running"
	})
	inst := filepath.Join(ag.workloads, cl.id, row.ID)
	runs := func() string { return fileSHA(t, filepath.Join(inst, "artifact")) }
	require.Equal(t, fileSHA(t, v1), runs())

	// A rollout of 2.0.0; kill -9 of the agent as soon as the trial runs.
	var v authority.RolloutView
	require.NoError(t, owner.Do(ctx, http.MethodPost, "/v1/clusters/wtk/rollouts", map[string]any{"product": "vpn-exit", "version": "2.0.0",
		"canary_count": 1, "wave_percent": 100, "soak_seconds": 0, "failure_threshold": 1, "update_deadline_seconds": 120}, &v, nil))
	g.Eventually(60*time.Second, "the trial of 2.0.0 started", func() bool {
		return strings.Contains(ag.out.String(), "workload update staged; starting the new version") && runs() == fileSHA(t, v2)
	})
	require.NotContains(t, ag.out.String(), "workload update promoted", "killed before the trial ended")
	require.NoError(t, ag.cmd.Process.Kill())
	_ = ag.cmd.Wait()
	rec, err := os.ReadFile(filepath.Join(dir, "workload-releases", cl.id, "workload-updates.json"))
	require.NoError(t, err)
	require.Contains(t, string(rec), `"phase":"trial"`, "the trial was recorded before it was taken")

	// The restarted agent resumes the trial: the workload works, 2.0.0 is
	// promoted and the rollout completes.
	ag.run()
	g.Eventually(90*time.Second, "rollout completed after the restart", func() bool {
		return owner.Do(ctx, http.MethodGet, "/v1/clusters/wtk/rollouts/"+v.ID, nil, &v, nil) == nil && v.State == "completed"
	})
	g.Eventually(30*time.Second, "the workload running the released artifact", func() bool {
		r := services(owner, "wtk", nodeID)["web"]
		return r.ReportedState == "running" && runs() == fileSHA(t, v2)
	})
	require.Contains(t, ag.out.String(), "workload update promoted")
	require.Len(t, workloadPIDs(inst), 1)
}
