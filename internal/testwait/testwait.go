// Package testwait polls a condition in real time until it holds or a deadline
// passes, for tests that wait on an observation of real processes, sockets or
// goroutines instead of sleeping and hoping. Test-only: production code must
// not import it.
package testwait

import (
	"testing"
	"time"
)

// Poll intervals: the first re-check comes quickly so fast conditions cost
// little, and the interval doubles up to maxInterval so a long wait does not
// spin on the machine's few cores.
const (
	firstInterval = 5 * time.Millisecond
	maxInterval   = 50 * time.Millisecond
)

// For calls cond until it reports true, and fails t (Fatalf) when it still
// reports false after timeout, naming what was awaited and the detail cond
// returned last. cond is always called at least once, and once more after the
// deadline has passed, so a condition met during the last sleep still counts.
func For(t testing.TB, timeout time.Duration, what string, cond func() (ok bool, detail string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	interval := firstInterval
	for {
		ok, detail := cond()
		if ok {
			return
		}
		left := time.Until(deadline)
		if left < 0 {
			if detail == "" {
				t.Fatalf("timed out after %v waiting for %s", timeout, what)
			} else {
				t.Fatalf("timed out after %v waiting for %s: %s", timeout, what, detail)
			}
			return
		}
		time.Sleep(min(interval, left+time.Millisecond))
		interval = min(2*interval, maxInterval)
	}
}

// Until is For for a condition that has no detail to report.
func Until(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	For(t, timeout, what, func() (bool, string) { return cond(), "" })
}
