package bench

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rap-fabric/core/apiclient"
	"github.com/rap-fabric/core/internal/authtest"
)

// lockedBuf is an io.Writer safe for a process's stdout and the test.
type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *lockedBuf) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// procUsage returns a process's CPU time (user+system) and resident memory.
func procUsage(pid int) (time.Duration, int64) {
	st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0
	}
	s := string(st)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	stt, _ := strconv.ParseInt(f[12], 10, 64)
	rssPages, _ := strconv.ParseInt(f[21], 10, 64)
	const hz = 100 // USER_HZ on Linux
	return time.Duration(ut+stt) * time.Second / hz, rssPages * int64(os.Getpagesize())
}

// agentWindow measures the agent's CPU share and resident memory over d.
func agentWindow(pid int, d time.Duration) (cpuPct float64, rssMB float64) {
	c0, _ := procUsage(pid)
	t0 := time.Now()
	time.Sleep(d)
	c1, rss := procUsage(pid)
	return 100 * float64(c1-c0) / float64(time.Since(t0)), float64(rss) / (1 << 20)
}

func benchFreeAddr(b *testing.B) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// BenchmarkServiceWorkloads runs the real agent binary against one
// authority and PostgreSQL and reports (1) the time from the owner's
// assignment (PUT service, enabled) to the workload reported healthy in
// PostgreSQL, p50/p99 over 20 runs, beside the agent's heartbeat interval
// (the floor of any report); (2) the agent's CPU share and resident memory
// while idle and while supervising 50 native workloads (HTTP health checks
// every second). b.N is ignored: every invocation does the 20 runs.
func BenchmarkServiceWorkloads(b *testing.B) {
	const interval = time.Second
	dir, err := os.MkdirTemp("", "rap-bench-wl-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o711); err != nil {
		b.Fatal(err)
	}
	bin := filepath.Join(dir, "bin")
	if out, err := exec.Command("go", "build", "-o", bin+"/", "../cmd/rap-node-agent", "../internal/testworkload").CombinedOutput(); err != nil {
		b.Fatalf("build: %v: %s", err, out)
	}
	art := filepath.Join(bin, "testworkload")
	raw, err := os.ReadFile(art)
	if err != nil {
		b.Fatal(err)
	}
	sum := sha256.Sum256(raw)

	g := authtest.New(b, 1)
	g.Leader(10 * time.Second)
	ctx := context.Background()
	owner := g.Client(g.DS...)
	c, err := authtest.CreateCluster(ctx, owner, "wl")
	if err != nil {
		b.Fatal(err)
	}
	var tok struct {
		Token string `json:"token"`
	}
	if err := owner.Do(ctx, http.MethodPost, "/v1/join-tokens", map[string]any{"cluster": "wl", "max_uses": 1}, &tok, nil); err != nil {
		b.Fatal(err)
	}
	state := filepath.Join(dir, "state.db")
	mid := filepath.Join(dir, "machine-id")
	_ = os.WriteFile(mid, []byte("feedfacefeedfacefeedfacefeedface\n"), 0o644)
	agentBin := filepath.Join(bin, "rap-node-agent")
	enroll := exec.Command(agentBin, "enroll", "--state", state, "--authority", g.DS[0].APIAddr(), "--token", tok.Token, "--ca-pin", c["ca_pin"].(string),
		"--name", "bench-wl", "--machine-id-file", mid, "--capability", "can_run_vpn_exit", "--poll-interval", "200ms")
	eout := &lockedBuf{}
	enroll.Stdout, enroll.Stderr = eout, eout
	if err := enroll.Start(); err != nil {
		b.Fatal(err)
	}
	var reqID string
	g.Eventually(20*time.Second, "a pending join request", func() bool {
		var l struct {
			Items []struct {
				ID string `json:"id"`
			} `json:"items"`
		}
		if owner.Do(ctx, http.MethodGet, "/v1/join-requests?cluster=wl&status=pending", nil, &l, nil) != nil || len(l.Items) != 1 {
			return false
		}
		reqID = l.Items[0].ID
		return true
	})
	var ap struct {
		NodeID string `json:"node_id"`
	}
	if err := owner.Do(ctx, http.MethodPost, "/v1/join-requests/"+reqID+"/approve", nil, &ap, nil); err != nil {
		b.Fatal(err)
	}
	if err := enroll.Wait(); err != nil {
		b.Fatalf("enroll: %v: %s", err, eout.String())
	}
	node := ap.NodeID
	wdir := filepath.Join(dir, "workloads")
	agent := exec.Command(agentBin, "run", "--state", state, "--interval", interval.String(), "--no-mesh", "--snapshot-wait", "20s",
		"--capability", "can_run_vpn_exit", "--workloads-dir", wdir, "--cgroup-parent", "rap-bench-"+strconv.Itoa(os.Getpid()), "--log-level", "warn")
	aout := &lockedBuf{}
	agent.Stdout, agent.Stderr = aout, aout
	agent.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := agent.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = agent.Process.Kill()
		_ = agent.Wait()
		killWorkloads(wdir)
	})
	g.Eventually(20*time.Second, "the capability reported", func() bool {
		var n map[string]any
		return owner.Do(ctx, http.MethodGet, "/v1/nodes/"+node, nil, &n, nil) == nil && strings.Contains(fmt.Sprint(n["capabilities"]), "can_run_vpn_exit")
	})
	if err := owner.Do(ctx, http.MethodPost, "/v1/clusters/wl/nodes/"+node+"/roles", map[string]any{"role": "vpn-exit"}, nil, nil); err != nil {
		b.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, g.DBURL)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close(ctx) })
	set := func(cl *apiclient.Client, inst string, enabled bool, addr string) error {
		body := map[string]any{"instance": inst, "enabled": enabled}
		if enabled {
			body["config"] = map[string]any{"workload": map[string]any{"driver": "native",
				"artifact": map[string]any{"path": art, "sha256": hex.EncodeToString(sum[:]), "version": "1"},
				"args":     []string{"-listen", addr}, "stop_timeout": "2s",
				"health": map[string]any{"kind": "http", "url": "http://" + addr + "/healthz", "interval": "1s"}}}
		}
		return cl.Do(ctx, http.MethodPut, "/v1/clusters/wl/nodes/"+node+"/services/vpn-exit", body, nil, nil)
	}
	stateOf := func(inst string) string {
		var s string
		_ = conn.QueryRow(ctx, `SELECT reported_state FROM node_service_instances WHERE node_id = $1 AND service_instance_id = $2`, node, inst).Scan(&s)
		return s
	}
	waitState := func(inst, want string, limit time.Duration) {
		deadline := time.Now().Add(limit)
		for stateOf(inst) != want {
			if time.Now().After(deadline) {
				b.Fatalf("%s not %s within %s (now %q); agent output:\n%s", inst, want, limit, stateOf(inst), aout.String())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}

	idleCPU, idleRSS := agentWindow(agent.Process.Pid, 10*time.Second)

	var lat []time.Duration
	for i := 0; i < 20; i++ {
		inst := "lat-" + strconv.Itoa(i)
		start := time.Now()
		if err := set(owner, inst, true, benchFreeAddr(b)); err != nil {
			b.Fatal(err)
		}
		waitState(inst, "healthy", 30*time.Second)
		lat = append(lat, time.Since(start))
		if err := set(owner, inst, false, ""); err != nil {
			b.Fatal(err)
		}
		waitState(inst, "stopped", 30*time.Second)
	}

	for i := 0; i < 50; i++ {
		if err := set(owner, "load-"+strconv.Itoa(i), true, benchFreeAddr(b)); err != nil {
			b.Fatal(err)
		}
	}
	for i := 0; i < 50; i++ {
		waitState("load-"+strconv.Itoa(i), "healthy", 60*time.Second)
	}
	loadCPU, loadRSS := agentWindow(agent.Process.Pid, 10*time.Second)
	if err := owner.Do(ctx, http.MethodPost, "/v1/clusters/wl/services/vpn-exit/disable", nil, nil, nil); err != nil {
		b.Fatal(err)
	}
	for i := 0; i < 50; i++ {
		waitState("load-"+strconv.Itoa(i), "stopped", 60*time.Second)
	}

	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(percentile(lat, 0.5)), "assign_healthy_p50_ms")
	b.ReportMetric(ms(percentile(lat, 0.99)), "assign_healthy_p99_ms")
	b.ReportMetric(ms(interval), "heartbeat_interval_ms")
	b.ReportMetric(idleCPU, "idle_cpu_%")
	b.ReportMetric(idleRSS, "idle_rss_MB")
	b.ReportMetric(loadCPU, "50_workloads_cpu_%")
	b.ReportMetric(loadRSS, "50_workloads_rss_MB")
}

// killWorkloads kills what is still recorded under root (a failed run) and
// removes the benchmark's cgroups.
func killWorkloads(root string) {
	recs, _ := filepath.Glob(filepath.Join(root, "*", "*", "instance.json"))
	for _, r := range recs {
		b, _ := os.ReadFile(r)
		if i := bytes.Index(b, []byte(`"pid":`)); i >= 0 {
			rest := string(b[i+6:])
			if j := strings.IndexAny(rest, ",}"); j > 0 {
				if pid, err := strconv.Atoi(rest[:j]); err == nil && pid > 1 {
					_ = syscall.Kill(-pid, syscall.SIGKILL)
				}
			}
		}
	}
	time.Sleep(100 * time.Millisecond)
	for _, ctl := range []string{"memory", "pids", "cpu", ""} {
		parent := filepath.Join("/sys/fs/cgroup", ctl, "rap-bench-"+strconv.Itoa(os.Getpid()))
		kids, _ := filepath.Glob(filepath.Join(parent, "*", "cgroup.procs"))
		for _, k := range kids {
			_ = os.Remove(filepath.Dir(k))
		}
		_ = os.Remove(parent)
	}
}
