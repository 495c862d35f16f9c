package workload

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/domain"
	"github.com/rap-fabric/core/workloadspec"
)

func TestBackoffDoublesCapsAndJitters(t *testing.T) {
	b := Backoff{Initial: 100 * time.Millisecond, Max: time.Second, Jitter: 0.2, CrashLoopAfter: 3, StableAfter: 10 * time.Second}
	require.Equal(t, 100*time.Millisecond, b.Delay(1, 0.5))
	require.Equal(t, 200*time.Millisecond, b.Delay(2, 0.5))
	require.Equal(t, 800*time.Millisecond, b.Delay(4, 0.5))
	require.Equal(t, time.Second, b.Delay(5, 0.5))
	require.Equal(t, time.Second, b.Delay(50, 0.5))
	require.Equal(t, 80*time.Millisecond, b.Delay(1, 0))
	require.Equal(t, 120*time.Millisecond, b.Delay(1, 1))
	require.Equal(t, time.Second, b.Delay(9, 0.999), "jitter never exceeds the cap")
	require.Equal(t, 800*time.Millisecond, b.Delay(9, 0))
}

func TestTrackerCrashLoopAndReset(t *testing.T) {
	tr := &tracker{b: Backoff{Initial: 100 * time.Millisecond, Max: time.Second, CrashLoopAfter: 3, StableAfter: 10 * time.Second}}
	d, loop := tr.exited(time.Second, 0.5)
	require.False(t, loop)
	require.Equal(t, 100*time.Millisecond, d)
	_, loop = tr.exited(time.Second, 0.5)
	require.False(t, loop)
	d, loop = tr.exited(time.Second, 0.5)
	require.True(t, loop)
	require.Equal(t, 400*time.Millisecond, d)
	// A run that lasted StableAfter starts the count over.
	d, loop = tr.exited(time.Minute, 0.5)
	require.False(t, loop)
	require.Equal(t, 100*time.Millisecond, d)
}

func TestAuthorize(t *testing.T) {
	a := Assignment{ServiceID: "s1", Type: "vpn-exit", Role: domain.RoleVPNExit, OrganizationID: "org1"}
	require.Empty(t, Authorize(a, []Grant{{Role: domain.RoleVPNExit}}))
	require.Empty(t, Authorize(a, []Grant{{Role: domain.RoleVPNExit, OrganizationID: "org1"}}))
	require.Contains(t, Authorize(a, []Grant{{Role: domain.RoleVPNExit, OrganizationID: "org2"}}), "restricted to another organization")
	require.Contains(t, Authorize(a, []Grant{{Role: domain.RoleEgressNode}}), "no active role")
	require.Contains(t, Authorize(a, nil), "no active role")
	bad := a
	bad.Role = domain.RoleEgressNode
	require.Contains(t, Authorize(bad, []Grant{{Role: domain.RoleEgressNode}}), "does not match its role")
}

func TestRotateAndTail(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, OutputLog)
	var sb strings.Builder
	for i := 0; i < 100; i++ {
		sb.WriteString("line " + strconv.Itoa(i) + "\n")
	}
	require.NoError(t, os.WriteFile(p, []byte(sb.String()), 0o600))
	lines, err := TailLines(p, 3)
	require.NoError(t, err)
	require.Equal(t, []string{"line 97", "line 98", "line 99"}, lines)

	require.NoError(t, rotate(p, 100, 3))
	fi, err := os.Stat(p)
	require.NoError(t, err)
	require.Zero(t, fi.Size())
	old, err := os.ReadFile(p + ".1")
	require.NoError(t, err)
	require.Equal(t, sb.String(), string(old))
	require.NoError(t, os.WriteFile(p, []byte("new 1\n"), 0o600))
	lines, err = TailLines(p, 3)
	require.NoError(t, err)
	require.Equal(t, []string{"line 98", "line 99", "new 1"}, lines, "the tail continues into the rotated file")
	require.NoError(t, rotate(p, 1, 3))
	_, err = os.Stat(p + ".2")
	require.NoError(t, err, "older files shift")
	missing, err := TailLines(filepath.Join(dir, "none"), 5)
	require.NoError(t, err)
	require.Empty(t, missing)
}

type execFunc func(context.Context, []string) error

func (f execFunc) Exec(ctx context.Context, argv []string) error { return f(ctx, argv) }

func TestHealthChecks(t *testing.T) {
	ok := true
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	ctx := context.Background()
	h := &workloadspec.Health{Kind: workloadspec.CheckHTTP, URL: srv.URL + "/healthz"}
	require.NoError(t, Check(ctx, h, nil))
	ok = false
	require.ErrorContains(t, Check(ctx, h, nil), "503")

	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	tcp := &workloadspec.Health{Kind: workloadspec.CheckTCP, Address: l.Addr().String()}
	require.NoError(t, Check(ctx, tcp, nil))
	l.Close()
	require.Error(t, Check(ctx, tcp, nil))

	ex := &workloadspec.Health{Kind: workloadspec.CheckExec, Command: []string{"true"}, Timeout: workloadspec.Duration(time.Second)}
	require.NoError(t, Check(ctx, ex, execFunc(func(context.Context, []string) error { return nil })))
	require.Error(t, Check(ctx, ex, execFunc(func(context.Context, []string) error { return errors.New("exit status 1") })))
	require.Error(t, Check(ctx, ex, nil))
}

func TestStoppedInstancesAreForgotten(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	s, err := New(Options{Root: t.TempDir(), Now: func() time.Time { return now }, ForgetAfter: time.Minute})
	require.NoError(t, err)
	defer s.Close()
	// No driver: the instance fails at once, then is stopped by the unassignment.
	cfg := []byte(`{"workload":{"driver":"native","artifact":{"path":"/bin/true","sha256":"` + strings.Repeat("a", 64) + `"}}}`)
	s.Apply("c1", []Assignment{{ServiceID: "s1", Type: "vpn-exit", Role: domain.RoleVPNExit, Config: cfg}}, []Grant{{Role: domain.RoleVPNExit}})
	deadline := time.Now().Add(10 * time.Second)
	for len(s.Statuses("c1")) == 0 || s.Statuses("c1")[0].State != StateFailed {
		require.True(t, time.Now().Before(deadline))
		time.Sleep(5 * time.Millisecond)
	}
	require.Contains(t, s.Statuses("c1")[0].Reason, "no native driver")
	s.Apply("c1", nil, nil)
	require.NoError(t, s.Wait(context.Background(), "c1"))
	require.Equal(t, StateStopped, s.Statuses("c1")[0].State)
	now = now.Add(2 * time.Minute)
	require.Empty(t, s.Statuses("c1"), "forgotten after ForgetAfter")
}

func TestAssignmentWithoutSpecStaysPending(t *testing.T) {
	s, err := New(Options{Root: t.TempDir()})
	require.NoError(t, err)
	defer s.Close()
	s.Apply("c1", []Assignment{{ServiceID: "s1", Type: "remote-access", Role: domain.RoleRemoteAccess, Config: []byte(`{"adapters":["ssh"]}`)}},
		[]Grant{{Role: domain.RoleRemoteAccess}})
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := s.Statuses("c1")
		if len(st) == 1 && st[0].Reason != "" {
			require.Equal(t, StatePending, st[0].State)
			require.Contains(t, st[0].Reason, "no workload spec")
			return
		}
		require.True(t, time.Now().Before(deadline))
		time.Sleep(5 * time.Millisecond)
	}
}

type syncWriter struct {
	mu sync.Mutex
	b  strings.Builder
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}
func (w *syncWriter) String() string { w.mu.Lock(); defer w.mu.Unlock(); return w.b.String() }

func TestFollowAndFindLog(t *testing.T) {
	root := t.TempDir()
	inst := &Instance{Key: "c1/s1", Cluster: "c1", Assignment: Assignment{ServiceID: "s1", Type: "vpn-exit", Instance: "web"}, Dir: InstanceDir(root, "c1", "s1")}
	require.NoError(t, os.MkdirAll(inst.Dir, 0o700))
	writeMeta(inst)
	for _, name := range []string{"s1", "vpn-exit", "web", "vpn-exit/web"} {
		p, err := FindLog(root, "", name)
		require.NoError(t, err, name)
		require.Equal(t, inst.LogPath(), p)
	}
	_, err := FindLog(root, "other-cluster", "web")
	require.Error(t, err)

	require.NoError(t, os.WriteFile(inst.LogPath(), []byte("old\n"), 0o600))
	ctx, cancel := context.WithCancel(context.Background())
	var out syncWriter
	done := make(chan struct{})
	go func() { _ = Follow(ctx, inst.LogPath(), 4, &out, 10*time.Millisecond); close(done) }()
	f, err := os.OpenFile(inst.LogPath(), os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, _ = f.WriteString("new 1\n")
	require.Eventually(t, func() bool { return out.String() == "new 1\n" }, 10*time.Second, 10*time.Millisecond)
	// Rotated (truncated): following starts over at the beginning.
	// (What is written after it stays shorter than what was read: a file
	// that grew past the old offset again before a poll is indistinguishable.)
	require.NoError(t, os.Truncate(inst.LogPath(), 0))
	_, _ = f.WriteString("r\n")
	f.Close()
	require.Eventually(t, func() bool { return out.String() == "new 1\nr\n" }, 10*time.Second, 10*time.Millisecond)
	cancel()
	<-done
}
