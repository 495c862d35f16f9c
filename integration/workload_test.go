package integration

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/apiclient"
	"github.com/rap-fabric/core/internal/authtest"
	"github.com/rap-fabric/core/internal/testimage"
)

// wlAgent is a rap-node-agent process that supervises workloads.
type wlAgent struct {
	*agentProc
	workloads string
	caps      string
}

func (a *wlAgent) run() {
	a.cmd = exec.Command(filepath.Join(a.bin, "rap-node-agent"), a.args("run", "--interval", "300ms", "--desired-every", "600ms", "--request-timeout", "1s",
		"--log-level", "debug", "--snapshot-wait", "2s", "--no-mesh", "--capability", a.caps, "--workloads-dir", a.workloads,
		"--cgroup-parent", "rap-itest-"+strconv.Itoa(os.Getpid()))...)
	a.out = &syncBuf{}
	a.cmd.Stdout, a.cmd.Stderr = a.out, a.out
	// Its own process group: killing it (-9) must not touch the workloads,
	// which live in sessions of their own anyway.
	a.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	require.NoError(a.t, a.cmd.Start())
	cmd, out, t := a.cmd, a.out, a.t
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
		if t.Failed() {
			t.Logf("--- agent output:\n%s", out.String())
		}
	})
}

type svcRow struct {
	ID            string          `json:"id"`
	NodeID        string          `json:"node_id"`
	ServiceType   string          `json:"service_type"`
	Instance      string          `json:"service_instance_id"`
	DesiredState  string          `json:"desired_state"`
	ReportedState string          `json:"reported_state"`
	Health        string          `json:"health"`
	Version       string          `json:"version"`
	Restarts      int             `json:"restarts"`
	Reason        string          `json:"reason"`
	LastExit      json.RawMessage `json:"last_exit"`
	ReportedAt    *time.Time      `json:"reported_at"`
}

func services(owner *apiclient.Client, cluster, node string) map[string]svcRow {
	var l struct {
		Items []svcRow `json:"items"`
	}
	if owner.Do(context.Background(), http.MethodGet, "/v1/clusters/"+cluster+"/services?node="+node, nil, &l, nil) != nil {
		return nil
	}
	out := map[string]svcRow{}
	for _, s := range l.Items {
		out[s.Instance] = s
	}
	return out
}

// workloadPIDs lists the running processes whose executable is the
// supervised copy of the artifact of instance dir.
func workloadPIDs(dir string) []int {
	want := filepath.Join(dir, "artifact")
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		exe, err := os.Readlink("/proc/" + e.Name() + "/exe")
		if err != nil || exe != want {
			continue
		}
		if st, err := os.ReadFile("/proc/" + e.Name() + "/stat"); err == nil {
			if f := strings.Fields(string(st[strings.LastIndexByte(string(st), ')')+1:])); len(f) > 0 && f[0] == "Z" {
				continue
			}
		}
		out = append(out, pid)
	}
	return out
}

// cleanupWorkloads kills what a failed test may have left running (workloads
// outlive their agent by design) and removes the test's cgroups.
func cleanupWorkloads(root string) {
	recs, _ := filepath.Glob(filepath.Join(root, "*", "*"))
	for _, inst := range recs {
		for _, pid := range workloadPIDs(inst) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	// Whatever still runs in a test cgroup (an instance whose record was
	// replaced, e.g. by a rollback) is killed too: a process of
	// TestServiceLocalMigration outlived every run before this.
	for _, ctl := range []string{"memory", "pids", "cpu", ""} {
		kids, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", ctl, "rap-itest-"+strconv.Itoa(os.Getpid()), "*", "cgroup.procs"))
		for _, k := range kids {
			data, _ := os.ReadFile(k)
			for _, f := range strings.Fields(string(data)) {
				if pid, err := strconv.Atoi(f); err == nil && pid > 1 {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
	}
	time.Sleep(100 * time.Millisecond)
	for _, ctl := range []string{"memory", "pids", "cpu", ""} {
		parent := filepath.Join("/sys/fs/cgroup", ctl, "rap-itest-"+strconv.Itoa(os.Getpid()))
		kids, _ := filepath.Glob(filepath.Join(parent, "*", "cgroup.procs"))
		for _, k := range kids {
			_ = os.Remove(filepath.Dir(k))
		}
		_ = os.Remove(parent)
	}
}

func fileSHA(t *testing.T, p string) string {
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestServiceWorkloadsInAgent runs the real agent binary with a real
// workload process against three authorities and PostgreSQL: assign →
// healthy in PostgreSQL and rapctl; killed → restarted; exiting at once →
// crash_loop with its last output; wrong hash → blocked, never started; a
// service no role authorizes is refused and never runs; agent kill -9 and
// restart → the same process re-adopted; authorities down → the workload
// keeps running; unassigned → stopped.
func TestServiceWorkloadsInAgent(t *testing.T) {
	bin := binaries(t)
	g := authtest.New(t, 3)
	ctx := context.Background()
	g.Leader(10 * time.Second)
	owner := g.Client(g.DS...)
	cl, token := mkClusterToken(t, owner, "svc")

	// Directories a per-service uid may traverse (the agent runs as root in
	// CI; elsewhere workloads run as the agent's user).
	dir := t.TempDir()
	require.NoError(t, os.Chmod(dir, 0o711))
	require.NoError(t, os.Chmod(filepath.Dir(dir), 0o711))
	control := filepath.Join(dir, "control")
	require.NoError(t, os.Mkdir(control, 0o777))
	require.NoError(t, os.Chmod(control, 0o777))
	machineID := filepath.Join(dir, "machine-id")
	require.NoError(t, os.WriteFile(machineID, []byte("abcdefabcdefabcdefabcdefabcdef01\n"), 0o644))
	ag := &wlAgent{agentProc: &agentProc{t: t, bin: bin, state: filepath.Join(dir, "state.db")}, workloads: filepath.Join(dir, "workloads"), caps: "can_run_vpn_exit"}
	t.Cleanup(func() { cleanupWorkloads(ag.workloads) })
	nodeID := enroll(t, ag.agentProc, g, owner, apiAddrs(g), "svc", token, cl.pin, machineID)
	ag.run()
	g.Eventually(20*time.Second, "the vpn-exit capability reported", func() bool {
		var n map[string]any
		return owner.Do(ctx, http.MethodGet, "/v1/nodes/"+nodeID, nil, &n, nil) == nil && strings.Contains(fmt.Sprint(n["capabilities"]), "can_run_vpn_exit")
	})
	require.NoError(t, owner.Do(ctx, http.MethodPost, "/v1/clusters/svc/nodes/"+nodeID+"/roles", map[string]any{"role": "vpn-exit"}, nil, nil))

	art := filepath.Join(bin, "testworkload")
	sum := fileSHA(t, art)
	addr := freePort(t)
	workload := func(sha string) map[string]any {
		return map[string]any{"workload": map[string]any{
			"driver": "native", "artifact": map[string]any{"path": art, "sha256": sha, "version": "1.0.0"},
			"args": []string{"-listen", addr, "-control", control}, "version_probe": []string{"-version"}, "stop_timeout": "2s",
			"limits":  map[string]any{"memory_bytes": 128 << 20, "pids": 64},
			"health":  map[string]any{"kind": "http", "url": "http://" + addr + "/healthz", "interval": "200ms", "failure_threshold": 2},
			"restart": map[string]any{"initial_backoff": "200ms", "max_backoff": "1s", "crash_loop_after": 3, "stable_after": "3s"},
		}}
	}
	setService := func(instance string, enabled bool, cfg map[string]any) error {
		body := map[string]any{"instance": instance, "enabled": enabled}
		if cfg != nil {
			body["config"] = cfg
		}
		return owner.Do(ctx, http.MethodPut, "/v1/clusters/svc/nodes/"+nodeID+"/services/vpn-exit", body, nil, nil)
	}

	// 1. Assign → healthy in PostgreSQL, with the probed version; rapctl
	// shows it.
	require.NoError(t, setService("web", true, workload(sum)))
	var row svcRow
	g.Eventually(30*time.Second, "the workload reported healthy", func() bool {
		row = services(owner, "svc", nodeID)["web"]
		return row.ReportedState == "healthy"
	})
	require.Equal(t, "healthy", row.Health)
	require.Equal(t, "testworkload 9.9.9", row.Version)
	require.Equal(t, "enabled", row.DesiredState)
	inst := filepath.Join(ag.workloads, cl.id, row.ID)
	pids := workloadPIDs(inst)
	require.Len(t, pids, 1)
	rapctl := func(args ...string) string {
		cmd := exec.Command(filepath.Join(bin, "rapctl"), append([]string{"--server", strings.Join(apiAddrs(g), ","), "--token", g.Token, "--ca-pin", g.Pin}, args...)...)
		cmd.Env = append(os.Environ(), "RAPCTL_CONFIG="+filepath.Join(t.TempDir(), "none.json"))
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, string(out))
		return string(out)
	}
	out := rapctl("service", "list", "svc", "--node", nodeID)
	require.Contains(t, out, "healthy")
	require.Contains(t, out, "testworkload 9.9.9")
	logs, err := exec.Command(filepath.Join(bin, "rap-node-agent"), "logs", "web", "--workloads-dir", ag.workloads, "--tail", "5").CombinedOutput()
	require.NoError(t, err, string(logs))
	require.Contains(t, string(logs), "testworkload started pid "+strconv.Itoa(pids[0]))

	// 2. A wrong artifact hash: blocked with the reason, never started.
	require.NoError(t, setService("bad", true, workload(strings.Repeat("ab", 32))))
	g.Eventually(30*time.Second, "the wrong hash reported blocked", func() bool {
		r := services(owner, "svc", nodeID)["bad"]
		return r.ReportedState == "blocked" && strings.Contains(r.Reason, "sha256")
	})
	bad := services(owner, "svc", nodeID)["bad"]
	_, err = os.Stat(filepath.Join(ag.workloads, cl.id, bad.ID, "output.log"))
	require.True(t, os.IsNotExist(err), "a blocked workload never ran")
	auditCount := func(action, target string) int {
		conn, err := pgx.Connect(ctx, g.DBURL)
		require.NoError(t, err)
		defer conn.Close(ctx)
		var n int
		require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM cluster_audit_events WHERE action = $1 AND target_id = $2`, action, target).Scan(&n))
		return n
	}
	require.Equal(t, 1, auditCount("service.reported.blocked", bad.ID), "blocked is audited")

	// 3. A service no role of the node authorizes is refused; nothing runs.
	var apiErr *apiclient.Error
	err = owner.Do(ctx, http.MethodPut, "/v1/clusters/svc/nodes/"+nodeID+"/services/egress-node", map[string]any{"enabled": true, "config": workload(sum)}, nil, nil)
	require.ErrorAs(t, err, &apiErr)
	require.Equal(t, http.StatusBadRequest, apiErr.Status)

	// 4. Killed: restarted after its backoff, healthy again, restarts counted.
	require.NoError(t, syscall.Kill(pids[0], syscall.SIGKILL))
	g.Eventually(30*time.Second, "restarted and healthy", func() bool {
		r := services(owner, "svc", nodeID)["web"]
		p := workloadPIDs(inst)
		return r.ReportedState == "healthy" && r.Restarts >= 1 && len(p) == 1 && p[0] != pids[0]
	})
	require.Contains(t, string(services(owner, "svc", nodeID)["web"].LastExit), "SIGKILL")

	// 5. Exiting at once: crash_loop with its last output, audited.
	require.NoError(t, os.WriteFile(filepath.Join(control, "exit"), []byte("7"), 0o644))
	g.Eventually(40*time.Second, "crash_loop reported", func() bool {
		r := services(owner, "svc", nodeID)["web"]
		return r.ReportedState == "crash_loop" && strings.Contains(string(r.LastExit), "told to exit with code 7")
	})
	require.GreaterOrEqual(t, auditCount("service.reported.crash_loop", row.ID), 1, "crash_loop is audited")
	require.NoError(t, os.Remove(filepath.Join(control, "exit")))
	g.Eventually(40*time.Second, "healthy after the crash loop", func() bool { return services(owner, "svc", nodeID)["web"].ReportedState == "healthy" })

	// 6. The agent is killed (-9) and started again: the same process is
	// re-adopted, no duplicate.
	before := workloadPIDs(inst)
	require.Len(t, before, 1)
	require.NoError(t, ag.cmd.Process.Kill())
	_ = ag.cmd.Wait()
	require.Equal(t, before, workloadPIDs(inst), "the workload outlives the agent")
	ag.run()
	g.Eventually(30*time.Second, "the re-adopted workload reported", func() bool {
		var l struct {
			Items []struct {
				ClusterID string          `json:"cluster_id"`
				Services  json.RawMessage `json:"services"`
			} `json:"items"`
		}
		if owner.Do(ctx, http.MethodGet, "/v1/nodes/"+nodeID+"/heartbeat", nil, &l, nil) != nil {
			return false
		}
		for _, it := range l.Items {
			if it.ClusterID == cl.id && strings.Contains(string(it.Services), `"adopted":true`) && strings.Contains(string(it.Services), `"state":"healthy"`) {
				return true
			}
		}
		return false
	})
	require.Equal(t, before, workloadPIDs(inst), "no duplicate process after re-adoption")
	st, err := exec.Command(filepath.Join(bin, "rap-node-agent"), "status", "--state", ag.state).CombinedOutput()
	require.NoError(t, err, string(st))
	require.Contains(t, string(st), "workload vpn-exit/web: healthy")

	// 7. Every authority stops: the agent is degraded, the workload keeps
	// running and answering.
	for i, d := range g.DS {
		require.NoError(t, d.Close())
		g.DS[i] = nil
	}
	g.Eventually(20*time.Second, "agent degraded", func() bool { return ag.member(cl.id).Mode == "degraded" })
	require.Equal(t, before, workloadPIDs(inst), "the workload keeps running while degraded")
	resp, err := http.Get("http://" + addr + "/healthz")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	for i := range g.DS {
		g.Start(i)
	}
	g.Leader(20 * time.Second)
	owner = g.Client(g.DS...)

	// 8. Unassigned: stopped (reported), the process is gone.
	g.Eventually(30*time.Second, "disable accepted", func() bool { return setService("web", false, nil) == nil })
	g.Eventually(30*time.Second, "the workload reported stopped", func() bool {
		r := services(owner, "svc", nodeID)["web"]
		return r.ReportedState == "stopped" && r.DesiredState == "disabled"
	})
	g.Eventually(10*time.Second, "the process gone", func() bool { return len(workloadPIDs(inst)) == 0 })

	// 9. Assigned again, then the node is revoked: the agent stops it.
	require.NoError(t, setService("web", true, workload(sum)))
	g.Eventually(30*time.Second, "healthy again", func() bool { return services(owner, "svc", nodeID)["web"].ReportedState == "healthy" })
	require.Len(t, workloadPIDs(inst), 1)
	require.NoError(t, owner.Do(ctx, http.MethodPost, "/v1/clusters/svc/nodes/"+nodeID+"/revoke", map[string]any{"reason": "test"}, nil, nil))
	g.Eventually(30*time.Second, "the workload of a revoked node stopped", func() bool { return len(workloadPIDs(inst)) == 0 })
	require.Contains(t, ag.out.String(), "state=stopped")
}

// TestContainerWorkloadInAgent is the container cycle through the real agent
// and PostgreSQL: a locally built image by digest → healthy; the container
// killed → restarted; agent kill -9 → the same container re-adopted;
// unassigned → stopped and removed. Without podman it fails under CI.
func TestContainerWorkloadInAgent(t *testing.T) {
	podman, err := exec.LookPath("podman")
	if err != nil || func() bool { _, e := os.Stat("/bin/busybox"); return e != nil }() {
		if os.Getenv("CI") != "" {
			t.Fatalf("podman and busybox-static are required under CI (scripts/install-podman.sh)")
		}
		t.Skip("podman or busybox-static missing")
	}
	ref, tag, err := testimage.Busybox(podman, t.TempDir())
	if tag != "" {
		t.Cleanup(func() { _ = exec.Command(podman, "rmi", "-f", tag).Run() })
	}
	require.NoError(t, err)

	bin := binaries(t)
	g := authtest.New(t, 1)
	ctx := context.Background()
	g.Leader(10 * time.Second)
	owner := g.Client(g.DS...)
	cl, token := mkClusterToken(t, owner, "ctr")
	dir := t.TempDir()
	machineID := filepath.Join(dir, "machine-id")
	require.NoError(t, os.WriteFile(machineID, []byte("c0ffeec0ffeec0ffeec0ffeec0ffee01\n"), 0o644))
	ag := &wlAgent{agentProc: &agentProc{t: t, bin: bin, state: filepath.Join(dir, "state.db")}, workloads: filepath.Join(dir, "workloads"), caps: "can_run_update_cache"}
	nodeID := enroll(t, ag.agentProc, g, owner, apiAddrs(g), "ctr", token, cl.pin, machineID)
	ag.run()
	g.Eventually(20*time.Second, "the capability reported", func() bool {
		var n map[string]any
		return owner.Do(ctx, http.MethodGet, "/v1/nodes/"+nodeID, nil, &n, nil) == nil && strings.Contains(fmt.Sprint(n["capabilities"]), "can_run_update_cache")
	})
	require.NoError(t, owner.Do(ctx, http.MethodPost, "/v1/clusters/ctr/nodes/"+nodeID+"/roles", map[string]any{"role": "update-cache"}, nil, nil))
	addr := freePort(t)
	cfg := map[string]any{"workload": map[string]any{"driver": "container", "image": ref, "image_version": "bb-1", "host_network": true,
		"args": []string{"/bin/httpd", "-f", "-p", addr, "-h", "/www"}, "stop_timeout": "2s",
		"limits":  map[string]any{"memory_bytes": 64 << 20, "pids": 32},
		"health":  map[string]any{"kind": "http", "url": "http://" + addr + "/healthz", "interval": "300ms", "failure_threshold": 2},
		"restart": map[string]any{"initial_backoff": "300ms", "max_backoff": "2s"}}}
	set := func(enabled bool) error {
		return owner.Do(ctx, http.MethodPut, "/v1/clusters/ctr/nodes/"+nodeID+"/services/update-cache", map[string]any{"instance": "cache", "enabled": enabled, "config": cfg}, nil, nil)
	}
	// A VPN service never runs in a container.
	var apiErr *apiclient.Error
	require.ErrorAs(t, owner.Do(ctx, http.MethodPut, "/v1/clusters/ctr/nodes/"+nodeID+"/services/vpn-exit", map[string]any{"enabled": false, "config": cfg}, nil, nil), &apiErr)
	require.Equal(t, http.StatusBadRequest, apiErr.Status)

	require.NoError(t, set(true))
	g.Eventually(60*time.Second, "the container reported healthy", func() bool { return services(owner, "ctr", nodeID)["cache"].ReportedState == "healthy" })
	require.Equal(t, "bb-1", services(owner, "ctr", nodeID)["cache"].Version)
	containerID := func() string {
		var l struct {
			Items []struct {
				Services []struct {
					ContainerID string `json:"container_id"`
					Adopted     bool   `json:"adopted"`
					State       string `json:"state"`
				} `json:"services"`
			} `json:"items"`
		}
		if owner.Do(ctx, http.MethodGet, "/v1/nodes/"+nodeID+"/heartbeat", nil, &l, nil) != nil || len(l.Items) == 0 || len(l.Items[0].Services) == 0 {
			return ""
		}
		s := l.Items[0].Services[0]
		if s.State != "healthy" {
			return ""
		}
		return s.ContainerID + map[bool]string{true: "+adopted"}[s.Adopted]
	}
	var id string
	g.Eventually(20*time.Second, "the container id reported", func() bool { id = containerID(); return id != "" })
	out, err := exec.Command(podman, "inspect", "--format", "{{.HostConfig.ReadonlyRootfs}} {{.HostConfig.Privileged}}", id).CombinedOutput()
	require.NoError(t, err, string(out))
	require.Equal(t, "true false", strings.TrimSpace(string(out)))

	// The container is killed: restarted as a new container.
	require.NoError(t, exec.Command(podman, "kill", id).Run())
	g.Eventually(60*time.Second, "restarted and healthy", func() bool {
		r := services(owner, "ctr", nodeID)["cache"]
		return r.ReportedState == "healthy" && r.Restarts >= 1
	})
	g.Eventually(20*time.Second, "the new container id", func() bool { id = containerID(); return id != "" && !strings.HasSuffix(id, "+adopted") })

	// The agent is killed (-9) and restarted: the same container is adopted.
	require.NoError(t, ag.cmd.Process.Kill())
	_ = ag.cmd.Wait()
	ag.run()
	g.Eventually(60*time.Second, "the same container re-adopted", func() bool { return containerID() == id+"+adopted" })

	// Unassigned: stopped and removed.
	require.NoError(t, set(false))
	g.Eventually(60*time.Second, "reported stopped", func() bool { return services(owner, "ctr", nodeID)["cache"].ReportedState == "stopped" })
	require.Error(t, exec.Command(podman, "inspect", id).Run(), "the container is removed")
}
