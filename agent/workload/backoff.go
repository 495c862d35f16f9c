package workload

import (
	"time"

	"github.com/rap-fabric/core/workloadspec"
)

// Backoff is a restart policy: Initial doubled per consecutive failure,
// capped at Max, each delay scaled by a jitter factor in [1-Jitter, 1+Jitter]
// (still capped). CrashLoopAfter consecutive failures, each within
// StableAfter of its start, make a crash loop; a run that lasted StableAfter
// resets the count.
type Backoff struct {
	Initial, Max   time.Duration
	Jitter         float64
	CrashLoopAfter int
	StableAfter    time.Duration
}

// BackoffFor is the policy of a spec (defaults from workloadspec).
func BackoffFor(s *workloadspec.Spec) Backoff {
	r := s.Restart
	b := Backoff{Initial: r.InitialBackoff.D(workloadspec.DefaultInitialBackoff), Max: r.MaxBackoff.D(workloadspec.DefaultMaxBackoff),
		Jitter: 0.2, CrashLoopAfter: r.CrashLoopAfter, StableAfter: r.StableAfter.D(workloadspec.DefaultStableAfter)}
	if b.CrashLoopAfter == 0 {
		b.CrashLoopAfter = workloadspec.DefaultCrashLoopAfter
	}
	if b.Max < b.Initial {
		b.Max = b.Initial
	}
	return b
}

// Delay is the wait before restart number failures (1 = first failure);
// rnd is a uniform random number in [0, 1).
func (b Backoff) Delay(failures int, rnd float64) time.Duration {
	if failures < 1 {
		failures = 1
	}
	d := b.Initial
	for i := 1; i < failures && d < b.Max; i++ {
		d *= 2
	}
	d = min(d, b.Max)
	f := 1 + b.Jitter*(2*rnd-1)
	return min(time.Duration(float64(d)*f), b.Max)
}

// tracker counts consecutive quick failures of one instance.
type tracker struct {
	b        Backoff
	failures int
}

// exited records an exit (or a kill for unhealthiness) of a run that lasted
// ran, and returns the delay before the next start and whether the instance
// is in a crash loop.
func (t *tracker) exited(ran time.Duration, rnd float64) (time.Duration, bool) {
	if ran >= t.b.StableAfter {
		t.failures = 0
	}
	t.failures++
	return t.b.Delay(t.failures, rnd), t.failures >= t.b.CrashLoopAfter
}
