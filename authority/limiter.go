package authority

import (
	"sync"
	"time"
)

// failureLimiter counts failed attempts per key (source address, token id) in a
// sliding window and refuses further attempts once a key exceeds its budget,
// so guessing join token secrets is slow and visible.
type failureLimiter struct {
	mu     sync.Mutex
	clock  func() time.Time
	window time.Duration
	max    int
	fails  map[string][]time.Time
}

func newFailureLimiter(clock func() time.Time) *failureLimiter {
	return &failureLimiter{clock: clock, window: time.Minute, max: 10, fails: map[string][]time.Time{}}
}

// blocked reports whether any of keys is over budget.
func (l *failureLimiter) blocked(keys ...string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.clock()
	for _, k := range keys {
		if len(l.prune(k, now)) >= l.max {
			return true
		}
	}
	return false
}

// fail records a failed attempt against every key.
func (l *failureLimiter) fail(keys ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.clock()
	for _, k := range keys {
		l.fails[k] = append(l.prune(k, now), now)
	}
	if len(l.fails) > 100000 { // bound memory under a spray of sources
		for k := range l.fails {
			if len(l.prune(k, now)) == 0 {
				delete(l.fails, k)
			}
		}
	}
}

func (l *failureLimiter) prune(k string, now time.Time) []time.Time {
	ts := l.fails[k]
	i := 0
	for i < len(ts) && now.Sub(ts[i]) > l.window {
		i++
	}
	ts = ts[i:]
	if len(ts) == 0 {
		delete(l.fails, k)
		return nil
	}
	l.fails[k] = ts
	return ts
}
