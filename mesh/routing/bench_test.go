package routing

import (
	"testing"
	"time"
)

// BenchmarkConvergence50 builds a random 50-node graph (89 links) and runs the
// distance-vector protocol to optimal tables; it reports simulated rounds
// (one round = one link latency), messages and entries per convergence. The
// baseline computes the same tables centrally with all-pairs Dijkstra (what
// a node that knew the whole graph would do).
func BenchmarkConvergence50(b *testing.B) {
	b.Run("distance-vector", func(b *testing.B) {
		var rounds, msgs, entries int
		var proto time.Duration
		for b.Loop() {
			n := newTestNet(b, names("n", 50), nil)
			t0 := time.Now()
			randomGraph(n, 7, 40)
			proto += time.Since(t0)
			for n.optimal() != nil {
				if n.rounds > 300 {
					b.Fatal("not converged")
				}
				t0 = time.Now()
				n.step()
				proto += time.Since(t0)
			}
			rounds += n.rounds
			msgs += n.sent
			for _, id := range n.ids {
				entries += int(n.routers[id].Stats().EntriesSent)
			}
		}
		b.ReportMetric(float64(rounds)/float64(b.N), "rounds/op")
		b.ReportMetric(float64(rounds)/float64(b.N)*10, "virtual-ms/op")
		b.ReportMetric(float64(msgs)/float64(b.N), "msgs/op")
		// Wall time spent in the routers (excluding the test's optimality
		// check, which dominates ns/op).
		b.ReportMetric(float64(proto.Microseconds())/float64(b.N), "protocol-µs/op")
		b.ReportMetric(float64(entries)/float64(b.N), "entries/op")
	})
	b.Run("baseline-dijkstra-all-pairs", func(b *testing.B) {
		n := newTestNet(b, names("n", 50), nil)
		randomGraph(n, 7, 40)
		for b.Loop() {
			for _, id := range n.ids {
				_ = n.dijkstra(id)
			}
		}
	})
}
