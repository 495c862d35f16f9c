package chaos

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netns"
)

func TestMain(m *testing.M) {
	if os.Geteuid() == 0 {
		if removed := SweepStale(); len(removed) > 0 {
			fmt.Fprintf(os.Stderr, "chaos: removed namespaces left by dead runs: %v\n", removed)
		}
	}
	code := m.Run()
	RemoveBinaries()
	if left := Leftovers(fmt.Sprintf("%s%d-", NamespacePrefix, os.Getpid())); len(left) > 0 {
		fmt.Fprintf(os.Stderr, "chaos: left behind after the run: %v\n", left)
		code = 1
	}
	os.Exit(code)
}

var (
	probeOnce sync.Once
	probeErr  error
)

// requireChaos skips (or, under CI, fails) a drill that cannot run here: the
// drills need root and network namespaces, and PostgreSQL.
func requireChaos(t *testing.T) {
	t.Helper()
	requireNetns(t)
	if _, err := FindPGBinDir(); err != nil {
		t.Fatal(err) // scripts/pg.sh installs PostgreSQL for `make test`; the drills need it too
	}
}

// requireNetns skips (or, under CI, fails) a drill that needs root and
// network namespaces but no PostgreSQL.
func requireNetns(t testing.TB) {
	t.Helper()
	ci := os.Getenv("CI") != ""
	if os.Geteuid() != 0 {
		if ci {
			t.Fatalf("%v: the chaos drills need root (network namespaces, nftables) and CI is set", ErrNotRoot)
		}
		t.Skip("chaos drills need root (network namespaces, nftables); not root and CI unset, so skipped — run `sudo make chaos`")
	}
	probeOnce.Do(func() {
		name := fmt.Sprintf("%s%d-probe", NamespacePrefix, os.Getpid())
		if _, err := newNamedNS(name); err != nil {
			probeErr = err
			return
		}
		probeErr = netns.DeleteNamed(name)
	})
	if probeErr != nil {
		if ci {
			t.Fatalf("%v: %v (CI is set: this must work)", ErrNoNamespaces, probeErr)
		}
		t.Skipf("%v: %v; CI unset, so skipped", ErrNoNamespaces, probeErr)
	}
}

// waitAcks waits until n more first-attempt operations have been
// acknowledged since from.
func waitAcks(t *testing.T, e *Env, from time.Time, n int, timeout time.Duration) time.Duration {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		got := 0
		for _, op := range e.Hist.Ops() {
			if op.Outcome == OK && !op.Retry && op.Complete.After(from) {
				got++
			}
		}
		if got >= n {
			return time.Since(from)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: fewer than %d writes acknowledged within %v", e.Opts.Name, n, timeout)
	return 0
}

// finish stops the workload, resolves unknown outcomes, runs the standard
// checks plus extra, and emits the report.
func finish(t *testing.T, e *Env, w *Workload, title string, extra func(s DBState) []Check) *Report {
	t.Helper()
	w.Stop()
	start, end := w.Window()
	e.ResolveUnknown()
	conv := e.CheckConverged(30 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := e.ReadDB(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r := e.NewReport(title, start, end, s)
	ack, _, _ := CheckAcknowledged(e.Hist.Ops(), s)
	r.Checks = append(r.Checks, CheckStaleEpoch(s), ack, CheckLeaders(e.Mon.Observations(), s), conv)
	if extra != nil {
		r.Checks = append(r.Checks, extra(s)...)
	}
	return r
}
