package bench

import (
	"fmt"
	"testing"
	"time"

	"github.com/rap-fabric/core/daemon"
	"github.com/rap-fabric/core/internal/authtest"
)

// BenchmarkEnrollment enrolls ENROLL_AGENTS (default 2,000) agents through
// auto-approved join requests, 8 at a time, on a 3-authority group with
// the production Raft timing, and reports the rate over the first and the
// last tenth of them: an enrollment whose cost grows with the number of
// enrolled nodes shows as last/first below 1 (the baseline is the same
// run's first tenth).
//
//	ENROLL_AGENTS=20000 go test -run '^$' -bench BenchmarkEnrollment -benchtime 1x -timeout 60m ./bench/
func BenchmarkEnrollment(b *testing.B) {
	n := envInt("ENROLL_AGENTS", 2000)
	for range b.N {
		g := authtest.NewPlainWithConfig(b, 3, func(_ int, c *daemon.Config) {
			c.HeartbeatTimeout, c.ElectionTimeout, c.LeaderLeaseTimeout, c.QuorumTimeout = 0, 0, 0, 0
		})
		l := g.Leader(20 * time.Second)
		_, _, done := enrollSimTimed(b, l.Auth, l.APIAddr(), n)
		tenth := max(1, n/10)
		rate := func(lo, hi int) float64 {
			start := time.Duration(0)
			if lo > 0 {
				start = done[lo-1]
			}
			return float64(hi-lo) / (done[hi-1] - start).Seconds()
		}
		first, last := rate(0, tenth), rate(n-tenth, n)
		for lo := 0; lo < n; lo += tenth {
			fmt.Printf("enrollment %6d–%6d: %.0f /s\n", lo, min(n, lo+tenth), rate(lo, min(n, lo+tenth)))
		}
		b.ReportMetric(float64(n)/done[n-1].Seconds(), "enrollments/s")
		b.ReportMetric(first, "first_tenth/s")
		b.ReportMetric(last, "last_tenth/s")
		b.ReportMetric(last/first, "last/first")
	}
}
