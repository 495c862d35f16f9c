package integration

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/agentapi"
	"github.com/rap-fabric/core/authority"
	"github.com/rap-fabric/core/internal/authtest"
	"github.com/rap-fabric/core/internal/testimage"
	"github.com/rap-fabric/core/release"
)

// TestContainerWorkloadUpdates is the workload update cycle for a container
// workload, with real podman (--runtime runc), a real agent process and a
// real authority: the service runs a locally built image pinned by digest
// (1.0.0); a rollout of update-cache 2.0.0, whose signed artifact is an
// oci-archive of another image, is verified, staged, loaded into podman,
// started, turns healthy and is promoted (the container serves the new
// image's files); a broken 3.0.0 (an image without /www/healthz: running,
// never healthy) is rolled back by the agent to the 2.0.0 image within the
// deadline and the rollout halts at the canary. Without podman it fails
// under CI.
func TestContainerWorkloadUpdates(t *testing.T) {
	podman, err := exec.LookPath("podman")
	if err != nil || func() bool { _, e := os.Stat("/bin/busybox"); return e != nil }() {
		if os.Getenv("CI") != "" {
			t.Fatalf("podman and busybox-static are required under CI (scripts/install-podman.sh)")
		}
		t.Skip("podman or busybox-static missing")
	}
	imgDir := t.TempDir()
	ref, tag, err := testimage.Busybox(podman, imgDir)
	if tag != "" {
		t.Cleanup(func() { _ = exec.Command(podman, "rmi", "-f", tag).Run() })
	}
	require.NoError(t, err)
	v2, tag2, err := testimage.Archive(podman, imgDir, map[string]string{"www/version": "2.0.0\n"}, true)
	require.NoError(t, err)
	v3, tag3, err := testimage.Archive(podman, imgDir, map[string]string{"www/version": "3.0.0\n"}, false)
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = exec.Command(podman, "rmi", "-f", tag2, tag3, "localhost/rap-release-update-cache:2.0.0", "localhost/rap-release-update-cache:3.0.0").Run()
	})

	bin := binaries(t)
	g := authtest.New(t, 1)
	ctx := context.Background()
	g.Leader(10 * time.Second)
	owner := g.Client(g.DS...)
	cl, token := mkClusterToken(t, owner, "cup")
	dir := t.TempDir()
	machineID := filepath.Join(dir, "machine-id")
	require.NoError(t, os.WriteFile(machineID, []byte("c0ffeec0ffeec0ffeec0ffeec0ffee17\n"), 0o644))
	ag := &wlAgent{agentProc: &agentProc{t: t, bin: bin, state: filepath.Join(dir, "state.db")}, workloads: filepath.Join(dir, "workloads"), caps: "can_run_update_cache"}
	nodeID := enroll(t, ag.agentProc, g, owner, apiAddrs(g), "cup", token, cl.pin, machineID)
	ag.run()
	g.Eventually(20*time.Second, "the update-cache role assigned", func() bool {
		return owner.Do(ctx, http.MethodPost, "/v1/clusters/cup/nodes/"+nodeID+"/roles", map[string]any{"role": "update-cache"}, nil, nil) == nil
	})

	// Release trust and the two releases of the update-cache image.
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
	publishProduct(t, owner, "update-cache", "2.0.0", v2)
	publishProduct(t, owner, "update-cache", "3.0.0", v3)

	// The service, pinned at the 1.0.0 image.
	addr := freePort(t)
	cfg := map[string]any{"workload": map[string]any{"driver": "container", "image": ref, "image_version": "1.0.0", "host_network": true,
		"args": []string{"/bin/httpd", "-f", "-p", addr, "-h", "/www"}, "stop_timeout": "2s",
		"limits":  map[string]any{"memory_bytes": 64 << 20, "pids": 32},
		"health":  map[string]any{"kind": "http", "url": "http://" + addr + "/healthz", "interval": "300ms", "failure_threshold": 2},
		"restart": map[string]any{"initial_backoff": "300ms", "max_backoff": "2s"}}}
	require.NoError(t, owner.Do(ctx, http.MethodPut, "/v1/clusters/cup/nodes/"+nodeID+"/services/update-cache", map[string]any{"instance": "cache", "enabled": true, "config": cfg}, nil, nil))
	g.Eventually(60*time.Second, "the pinned container healthy", func() bool { return services(owner, "cup", nodeID)["cache"].ReportedState == "healthy" })
	served := func() string {
		resp, err := http.Get("http://" + addr + "/version")
		if err != nil {
			return "error: " + err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(b)))
	}
	require.True(t, strings.HasPrefix(served(), "404"), "the pinned image has no /www/version: %s", served())

	rollout := func(version, state string) authority.RolloutView {
		var v authority.RolloutView
		require.NoError(t, owner.Do(ctx, http.MethodPost, "/v1/clusters/cup/rollouts", map[string]any{"product": "update-cache", "version": version,
			"canary_count": 1, "wave_percent": 100, "soak_seconds": 0, "failure_threshold": 1, "update_deadline_seconds": 60}, &v, nil))
		g.Eventually(120*time.Second, "rollout of "+version+" "+state, func() bool {
			return owner.Do(ctx, http.MethodGet, "/v1/clusters/cup/rollouts/"+v.ID, nil, &v, nil) == nil && v.State == state
		})
		return v
	}
	workloadState := func(want func(u agentapi.UpdateReport) bool) agentapi.UpdateReport {
		var got agentapi.UpdateReport
		g.Eventually(30*time.Second, "the heartbeat's update-cache update state", func() bool {
			var l struct {
				Items []authority.NodeHeartbeat `json:"items"`
			}
			if owner.Do(ctx, http.MethodGet, "/v1/nodes/"+nodeID+"/heartbeat", nil, &l, nil) != nil || len(l.Items) == 0 {
				return false
			}
			for _, u := range l.Items[0].Updates {
				if u.Product == "update-cache" {
					got = u
					return want(u)
				}
			}
			return false
		})
		return got
	}

	// 2.0.0: verified, staged, loaded, started, healthy, promoted.
	rollout("2.0.0", "completed")
	g.Eventually(60*time.Second, "the container runs the 2.0.0 image, healthy", func() bool {
		r := services(owner, "cup", nodeID)["cache"]
		return r.ReportedState == "healthy" && r.Version == "2.0.0" && served() == "200 2.0.0"
	})
	u := workloadState(func(u agentapi.UpdateReport) bool { return u.State == "running" && u.CurrentVersion == "2.0.0" })
	require.Equal(t, "1.0.0", u.PreviousVersion)
	require.Contains(t, ag.out.String(), "workload update promoted")
	out, err := exec.Command(podman, "image", "inspect", "--format", "{{.Digest}}", "localhost/rap-release-update-cache:2.0.0").CombinedOutput()
	require.NoError(t, err, string(out))

	// 3.0.0 never turns healthy: rolled back to the 2.0.0 image, the rollout
	// halts at the canary.
	v := rollout("3.0.0", "halted")
	require.Equal(t, 0, v.CurrentWave)
	require.Equal(t, "failed", v.Waves[0].Nodes[0].Outcome)
	require.Contains(t, v.Waves[0].Nodes[0].LastFailure, "update-cache 3.0.0")
	g.Eventually(60*time.Second, "healthy again on the 2.0.0 image", func() bool {
		r := services(owner, "cup", nodeID)["cache"]
		return r.ReportedState == "healthy" && r.Version == "2.0.0" && served() == "200 2.0.0"
	})
	u = workloadState(func(u agentapi.UpdateReport) bool { return u.State == "rolled_back" })
	require.Equal(t, "2.0.0", u.CurrentVersion)
	require.Equal(t, "3.0.0", u.TargetVersion)
	require.NotEmpty(t, u.LastFailure)
	require.Contains(t, ag.out.String(), "workload update rolled back")
}
