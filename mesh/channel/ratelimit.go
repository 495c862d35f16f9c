package channel

import (
	"math"
	"time"
)

// RateLimit is a token bucket: Rate tokens per second, at most Burst stored.
// A Rate of +Inf disables the limit. A zero RateLimit in a Config means "use
// the default".
type RateLimit struct {
	Rate  float64
	Burst float64
}

func (r RateLimit) unlimited() bool { return math.IsInf(r.Rate, 1) }

type bucket struct {
	tokens float64
	last   time.Time
}

func (b *bucket) take(r RateLimit, now time.Time) bool {
	if r.unlimited() {
		return true
	}
	if dt := now.Sub(b.last).Seconds(); dt > 0 {
		b.tokens = math.Min(r.Burst, b.tokens+dt*r.Rate)
	}
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true
	}
	return false
}

// limiter is a set of token buckets keyed by K, bounded in size: keys beyond
// max share one overflow bucket, so a spoofed-source flood cannot grow memory.
type limiter[K comparable] struct {
	limit    RateLimit
	max      int
	buckets  map[K]*bucket
	overflow bucket
}

func newLimiter[K comparable](l RateLimit, max int) *limiter[K] {
	return &limiter[K]{limit: l, max: max, buckets: make(map[K]*bucket), overflow: bucket{tokens: l.Burst}}
}

func (l *limiter[K]) allow(k K, now time.Time) bool {
	if l.limit.unlimited() {
		return true
	}
	b, ok := l.buckets[k]
	if !ok {
		if len(l.buckets) >= l.max {
			l.prune(now)
		}
		if len(l.buckets) >= l.max {
			return l.overflow.take(l.limit, now)
		}
		b = &bucket{tokens: l.limit.Burst, last: now}
		l.buckets[k] = b
	}
	return b.take(l.limit, now)
}

// prune drops buckets that have refilled completely: they carry no state.
func (l *limiter[K]) prune(now time.Time) {
	full := time.Duration(l.limit.Burst / l.limit.Rate * float64(time.Second))
	for k, b := range l.buckets {
		if now.Sub(b.last) >= full {
			delete(l.buckets, k)
		}
	}
}
