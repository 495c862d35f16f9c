package workload

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/domain"
)

var (
	buildOnce sync.Once
	binPath   string
	binSum    string
	buildErr  error
)

// testWorkload builds internal/testworkload once per test binary.
func testWorkload(t *testing.T) (string, string) {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "testworkload-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "testworkload")
		_, file, _, _ := runtime.Caller(0)
		out, err := exec.Command("go", "build", "-o", binPath, filepath.Join(filepath.Dir(file), "..", "..", "internal", "testworkload")).CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("%v: %s", err, out)
			return
		}
		b, err := os.ReadFile(binPath)
		if err != nil {
			buildErr = err
			return
		}
		s := sha256.Sum256(b)
		binSum = hex.EncodeToString(s[:])
	})
	require.NoError(t, buildErr)
	return binPath, binSum
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// searchableDir is a temporary directory that other users may traverse (a
// per-service uid must reach its work directory).
func searchableDir(t *testing.T) string {
	d := t.TempDir()
	require.NoError(t, os.Chmod(d, 0o711))
	require.NoError(t, os.Chmod(filepath.Dir(d), 0o711))
	return d
}

func freePort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().String()
}

type fixture struct {
	t       *testing.T
	root    string
	control string
	sup     *Supervisor
	cgroup  string
}

func newFixture(t *testing.T) *fixture {
	f := &fixture{t: t, root: filepath.Join(searchableDir(t), "workloads"), control: searchableDir(t)}
	require.NoError(t, os.Chmod(f.control, 0o777))
	f.cgroup = fmt.Sprintf("rap-test-%d-%d", os.Getpid(), time.Now().UnixNano())
	f.sup = f.newSupervisor()
	t.Cleanup(func() {
		f.sup.StopCluster("c1", "test over")
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_ = f.sup.Wait(ctx, "c1")
		f.sup.Close()
		for _, ctl := range []string{"memory", "pids", "cpu", ""} {
			_ = os.Remove(filepath.Join("/sys/fs/cgroup", ctl, f.cgroup))
		}
	})
	return f
}

func (f *fixture) newSupervisor() *Supervisor {
	s, err := New(Options{Root: f.root, Drivers: map[string]Driver{"native": NewNative(NativeOptions{Users: true, CgroupParent: f.cgroup})}})
	require.NoError(f.t, err)
	return s
}

func (f *fixture) assignment(id, sum string, extra map[string]any, args ...string) Assignment {
	bin, good := testWorkload(f.t)
	if sum == "" {
		sum = good
	}
	w := map[string]any{"driver": "native", "artifact": map[string]any{"path": bin, "sha256": sum, "version": "1.0"},
		"args": args, "stop_timeout": "2s", "version_probe": []string{"-version"},
		"restart": map[string]any{"initial_backoff": "100ms", "max_backoff": "400ms", "crash_loop_after": 3, "stable_after": "3s"}}
	for k, v := range extra {
		w[k] = v
	}
	cfg, err := json.Marshal(map[string]any{"workload": w})
	require.NoError(f.t, err)
	return Assignment{ServiceID: id, Type: "vpn-exit", Role: domain.RoleVPNExit, Config: cfg}
}

var grants = []Grant{{Role: domain.RoleVPNExit}}

func (f *fixture) status(id string) Status {
	for _, s := range f.sup.Statuses("c1") {
		if s.ServiceID == id {
			return s
		}
	}
	return Status{}
}

func (f *fixture) waitFor(id string, what string, ok func(Status) bool) Status {
	f.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		s := f.status(id)
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("%s: timed out waiting for %s; last status %+v", id, what, s)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func alive(pid int) bool { _, ok := procStart(pid); return ok }

func healthCheck(addr string) map[string]any {
	return map[string]any{"kind": "http", "url": "http://" + addr + "/healthz", "interval": "100ms", "timeout": "1s", "failure_threshold": 2}
}

func TestNativeLifecycle(t *testing.T) {
	f := newFixture(t)
	addr := freePort(t)
	a := f.assignment("svc-a", "", map[string]any{"health": healthCheck(addr), "limits": map[string]any{"memory_bytes": 64 << 20, "pids": 64, "cpu_millis": 500}},
		"-listen", addr, "-control", f.control)
	f.sup.Apply("c1", []Assignment{a}, grants)
	s := f.waitFor("svc-a", "healthy", func(s Status) bool { return s.State == StateHealthy })
	require.Equal(t, HealthHealthy, s.Health)
	require.Equal(t, "testworkload 9.9.9", s.Version, "the version probe answers")
	require.NotZero(t, s.PID)
	pid := s.PID
	// Own session and process group.
	pgid, err := syscall.Getpgid(pid)
	require.NoError(t, err)
	require.Equal(t, pid, pgid)
	if os.Geteuid() == 0 {
		require.True(t, strings.HasPrefix(s.User, "uid 2"), s.User)
		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		require.NoError(t, err)
		require.NotContains(t, string(st), "Uid:\t0\t", "the workload does not run as root")
		// Limits in the cgroup hierarchy (v1 on this host, or v2).
		rec, ok := readRecord(InstanceDir(f.root, "c1", "svc-a"))
		require.True(t, ok)
		require.NotEmpty(t, rec.Cgroups)
		found, placed := false, false
		for _, d := range rec.Cgroups {
			for _, name := range []string{"memory.limit_in_bytes", "memory.max"} {
				if b, err := os.ReadFile(filepath.Join(d, name)); err == nil {
					require.Equal(t, fmt.Sprint(64<<20), strings.TrimSpace(string(b)))
					found = true
				}
			}
			if b, err := os.ReadFile(filepath.Join(d, "cgroup.procs")); err == nil && strings.Contains(string(b), fmt.Sprint(pid)) {
				placed = true
			}
		}
		require.True(t, found, "memory limit written in %v", rec.Cgroups)
		require.True(t, placed, "the workload is in its cgroup")
	}
	out, err := TailLines(filepath.Join(InstanceDir(f.root, "c1", "svc-a"), OutputLog), 5)
	require.NoError(t, err)
	require.Contains(t, strings.Join(out, "\n"), "testworkload started pid")

	// Killed: restarted after its backoff, with a new pid.
	killed := time.Now()
	require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
	f.waitFor("svc-a", "restarting", func(s Status) bool { return s.Restarts == 1 })
	s = f.waitFor("svc-a", "restarted and healthy", func(s Status) bool { return s.State == StateHealthy && s.PID != pid && s.Restarts == 1 })
	require.GreaterOrEqual(t, s.Since.Sub(killed), 80*time.Millisecond, "the restart waited its backoff (100 ms ± 20 %)")
	require.NotNil(t, s.LastExit)
	require.Equal(t, "SIGKILL", s.LastExit.Signal)
	require.False(t, alive(pid))

	// Failing its check: unhealthy, then restarted.
	require.NoError(t, os.WriteFile(filepath.Join(f.control, "unhealthy"), nil, 0o644))
	f.waitFor("svc-a", "unhealthy", func(s Status) bool { return s.State == StateUnhealthy && s.Health == HealthUnhealthy })
	pid = f.status("svc-a").PID
	f.waitFor("svc-a", "restarted for its health", func(s Status) bool { return s.Restarts == 2 })
	require.NoError(t, os.Remove(filepath.Join(f.control, "unhealthy")))
	s = f.waitFor("svc-a", "healthy again", func(s Status) bool { return s.State == StateHealthy })
	require.NotEqual(t, pid, s.PID)

	// Unassigned: stopped, process gone, no record left.
	pid = s.PID
	f.sup.Apply("c1", nil, grants)
	f.waitFor("svc-a", "stopped", func(s Status) bool { return s.State == StateStopped })
	require.Equal(t, "unassigned", f.status("svc-a").Reason)
	require.False(t, alive(pid))
	_, ok := readRecord(InstanceDir(f.root, "c1", "svc-a"))
	require.False(t, ok)
}

func TestNativeCrashLoopReportsLastOutput(t *testing.T) {
	f := newFixture(t)
	f.sup.Apply("c1", []Assignment{f.assignment("svc-crash", "", nil, "-exit-after", "1ms", "-code", "7")}, grants)
	s := f.waitFor("svc-crash", "crash_loop", func(s Status) bool { return s.State == StateCrashLoop })
	require.NotNil(t, s.LastExit)
	require.Equal(t, 7, s.LastExit.Code)
	require.Contains(t, strings.Join(s.LastExit.Output, "\n"), "exiting with code 7")
	require.Contains(t, s.Reason, "crash loop")
	require.GreaterOrEqual(t, s.Restarts, 3)
	// It keeps retrying at the cap.
	n := s.Restarts
	f.waitFor("svc-crash", "another attempt", func(s Status) bool { return s.Restarts > n && s.State == StateCrashLoop })
}

func TestNativeBlocked(t *testing.T) {
	f := newFixture(t)
	wrong := strings.Repeat("0", 64)
	f.sup.Apply("c1", []Assignment{
		f.assignment("svc-hash", wrong, nil),
		f.assignment("svc-norole", "", nil),
	}, []Grant{{Role: domain.RoleEgressNode}})
	s := f.waitFor("svc-norole", "blocked", func(s Status) bool { return s.State == StateBlocked })
	require.Contains(t, s.Reason, "no active role")
	// With the role, the wrong hash still blocks; the right one runs.
	f.sup.Apply("c1", []Assignment{f.assignment("svc-hash", wrong, nil), f.assignment("svc-norole", "", nil)}, grants)
	s = f.waitFor("svc-hash", "blocked for its hash", func(s Status) bool { return s.State == StateBlocked && strings.Contains(s.Reason, "sha256") })
	require.Zero(t, s.PID)
	_, err := os.Stat(filepath.Join(InstanceDir(f.root, "c1", "svc-hash"), OutputLog))
	require.True(t, os.IsNotExist(err), "a blocked workload never ran")
	f.waitFor("svc-norole", "running once authorized", func(s Status) bool { return s.State == StateRunning && s.PID != 0 })
}

func TestNativeReadoptionAndStopTimeout(t *testing.T) {
	f := newFixture(t)
	a := f.assignment("svc-keep", "", nil, "-ignore-term")
	f.sup.Apply("c1", []Assignment{a}, grants)
	s := f.waitFor("svc-keep", "running", func(s Status) bool { return s.State == StateRunning && s.PID != 0 })
	pid := s.PID

	// The agent goes away (as after kill -9: nothing stops the workload).
	f.sup.Close()
	require.True(t, alive(pid))
	f.sup = f.newSupervisor()
	f.sup.Apply("c1", []Assignment{a}, grants)
	s = f.waitFor("svc-keep", "re-adopted", func(s Status) bool { return s.State == StateRunning && s.Adopted })
	require.Equal(t, pid, s.PID, "the same process, no duplicate")
	time.Sleep(300 * time.Millisecond)
	require.Equal(t, pid, f.status("svc-keep").PID)

	// It ignores SIGTERM: killed after the 2 s stop timeout.
	start := time.Now()
	f.sup.Apply("c1", nil, grants)
	f.waitFor("svc-keep", "stopped", func(s Status) bool { return s.State == StateStopped })
	require.GreaterOrEqual(t, time.Since(start), 2*time.Second)
	require.False(t, alive(pid))
}

func TestOrphanRecordStopped(t *testing.T) {
	f := newFixture(t)
	a := f.assignment("svc-orphan", "", nil)
	f.sup.Apply("c1", []Assignment{a}, grants)
	pid := f.waitFor("svc-orphan", "running", func(s Status) bool { return s.PID != 0 }).PID
	f.sup.Close()
	// The new agent's snapshot no longer assigns it.
	f.sup = f.newSupervisor()
	f.sup.Apply("c1", nil, grants)
	deadline := time.Now().Add(20 * time.Second)
	for alive(pid) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	require.False(t, alive(pid), "an unassigned workload found on disk is stopped")
}

func TestNativeExecHealthCheck(t *testing.T) {
	f := newFixture(t)
	marker := filepath.Join(f.control, "unhealthy")
	a := f.assignment("svc-exec", "", map[string]any{"health": map[string]any{"kind": "exec", "command": []string{"/bin/sh", "-c", "test ! -e " + marker},
		"interval": "200ms", "failure_threshold": 3}})
	f.sup.Apply("c1", []Assignment{a}, grants)
	f.waitFor("svc-exec", "healthy", func(s Status) bool { return s.State == StateHealthy })
	require.NoError(t, os.WriteFile(marker, nil, 0o644))
	s := f.waitFor("svc-exec", "unhealthy", func(s Status) bool { return s.State == StateUnhealthy })
	require.Contains(t, s.Reason, "health check failed")
	require.NoError(t, os.Remove(marker))
	f.waitFor("svc-exec", "healthy again", func(s Status) bool { return s.State == StateHealthy })
}

// TestNativeRelativeRoot: a supervisor whose Root is relative (an agent
// started with a relative --state path) still starts its workloads: the
// driver runs them in their own working directories, so the root is made
// absolute once (make demo found this: "fork/exec .rap/demo/…/artifact: no
// such file or directory").
func TestNativeRelativeRoot(t *testing.T) {
	f := newFixture(t)
	a := f.assignment("svc-rel", "", nil, "-control", f.control) // builds the test workload (needs the module's directory)
	t.Chdir(searchableDir(t))
	rel, err := New(Options{Root: "workloads", Drivers: map[string]Driver{"native": NewNative(NativeOptions{Users: true, CgroupParent: f.cgroup})}})
	require.NoError(t, err)
	f.sup.Close()
	f.sup = rel
	f.sup.Apply("c1", []Assignment{a}, grants)
	s := f.waitFor("svc-rel", "running", func(s Status) bool { return s.State == StateRunning || s.State == StateHealthy })
	require.NotZero(t, s.PID)
	require.True(t, alive(s.PID))
}
