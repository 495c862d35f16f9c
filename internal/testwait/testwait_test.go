package testwait

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// recorder is a testing.TB whose Fatalf records the message and ends the
// calling goroutine, as the real one does.
type recorder struct {
	testing.TB
	mu    sync.Mutex
	fatal string
}

func (r *recorder) Helper() {}

func (r *recorder) Fatalf(format string, args ...any) {
	r.mu.Lock()
	r.fatal = fmt.Sprintf(format, args...)
	r.mu.Unlock()
	runtime.Goexit()
}

// run calls f with a recorder on its own goroutine (Fatalf ends it) and
// returns the recorded failure message ("" when none) and whether f returned.
func run(f func(tb testing.TB)) (fatal string, returned bool) {
	r := &recorder{}
	done := make(chan bool)
	go func() {
		ok := false
		defer func() { done <- ok }()
		f(r)
		ok = true
	}()
	returned = <-done
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.fatal, returned
}

func TestFor(t *testing.T) {
	tests := []struct {
		name      string
		okAt      int // the call on which cond first holds; 0 = never
		detail    string
		timeout   time.Duration
		wantFatal []string // substrings of the failure message; nil = success
		minCalls  int
	}{
		{name: "holds at once", okAt: 1, timeout: time.Second, minCalls: 1},
		{name: "holds on the fourth poll", okAt: 4, timeout: 10 * time.Second, minCalls: 4},
		{name: "never holds, detail reported", okAt: 0, detail: "3 of 5 peers up", timeout: 30 * time.Millisecond,
			wantFatal: []string{"timed out after 30ms", "links up", "3 of 5 peers up"}, minCalls: 2},
		{name: "never holds, zero timeout still checks once", okAt: 0, timeout: 0,
			wantFatal: []string{"timed out after 0s waiting for links up"}, minCalls: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			fatal, returned := run(func(tb testing.TB) {
				For(tb, tc.timeout, "links up", func() (bool, string) {
					calls++
					return tc.okAt != 0 && calls >= tc.okAt, tc.detail
				})
			})
			if calls < tc.minCalls {
				t.Errorf("cond called %d times, want at least %d", calls, tc.minCalls)
			}
			if tc.wantFatal == nil {
				if fatal != "" || !returned {
					t.Fatalf("For failed (%q, returned %v), want success", fatal, returned)
				}
				if calls != tc.okAt {
					t.Errorf("cond called %d times after it held on call %d", calls, tc.okAt)
				}
				return
			}
			if returned {
				t.Fatalf("For returned after the deadline instead of failing the test")
			}
			for _, w := range tc.wantFatal {
				if !strings.Contains(fatal, w) {
					t.Errorf("failure %q does not mention %q", fatal, w)
				}
			}
		})
	}
}

func TestUntil(t *testing.T) {
	calls := 0
	fatal, returned := run(func(tb testing.TB) {
		Until(tb, 10*time.Second, "third call", func() bool { calls++; return calls == 3 })
	})
	if fatal != "" || !returned || calls != 3 {
		t.Fatalf("Until: fatal %q, returned %v, calls %d; want success after 3 calls", fatal, returned, calls)
	}

	fatal, returned = run(func(tb testing.TB) {
		Until(tb, 20*time.Millisecond, "never", func() bool { return false })
	})
	if returned || fatal != "timed out after 20ms waiting for never" {
		t.Fatalf("Until: fatal %q, returned %v; want a timeout failure", fatal, returned)
	}
}
