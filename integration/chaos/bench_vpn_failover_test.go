package chaos

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/rap-fabric/core/internal/testwait"
)

// BenchmarkVPNLeaseFailover measures the whole failover of a VPN connection
// between real agents (drill V2's world): 10 times, during a 20 ms UDP probe
// stream client → remote, the lease holder is killed (kill -9); its lease
// expires at the authority (term v2LeaseTTL), the other exit acquires it
// and starts its tunnel, and the connector follows. The gap is the time from
// the last probe reply before the kill to the first one after it; the killed
// agent is restarted (it cleans up and stands by) before the next trial.
// Reports the gap's p50 and max in ms beside the lease term, which bounds it
// from below (the data-path part alone is exit-handover in
// BenchmarkTunnelVsPeers). b.N is ignored beyond the first iteration (run
// with -benchtime 1x).
func BenchmarkVPNLeaseFailover(b *testing.B) {
	requireNetns(b)
	requireTools(b, "ping")
	if _, err := FindPGBinDir(); err != nil {
		b.Fatal(err)
	}
	v := newVPNAgentWorld(b, "V2-bench", false, "con", "exit1", "exit2")
	holder := func() (string, bool) {
		for _, n := range []string{"exit1", "exit2"} {
			if ok, _ := v.running(n); ok {
				return n, true
			}
		}
		return "", false
	}
	testwait.For(b, 60*time.Second, "an exit holds the lease and the connector follows it", func() (bool, string) {
		h, ok := holder()
		c := v.status("con")
		return ok && c != nil && c.Tunnel != nil && c.Tunnel.Running && c.Tunnel.ExitNodeID == v.node[h], fmt.Sprintf("%s %+v", h, c)
	})
	ps := startProbeStream(b, v.w)
	defer ps.close()
	testwait.Until(b, 20*time.Second, "probe replies", func() bool { return ps.count() >= 10 })
	var gaps []time.Duration
	var order []string
	for range 10 {
		cur, _ := holder()
		next := map[string]string{"exit1": "exit2", "exit2": "exit1"}[cur]
		// The standby exit may have been restarted by the previous trial:
		// the connector must have a mesh route to it again first (the
		// relinking of a restarted node is not part of the failover).
		testwait.For(b, 30*time.Second, "connector's mesh route to "+next, func() (bool, string) {
			m, err := v.ag["con"].Mesh()
			r, ok := RouteTo(m, v.node[next])
			return err == nil && ok, fmt.Sprintf("%v %+v", err, r)
		})
		at := time.Now()
		v.ag[cur].Proc.Kill9()
		var gap time.Duration
		testwait.For(b, 60*time.Second, "probe replies via "+next, func() (bool, string) {
			var ok bool
			gap, ok = ps.gapAround(at)
			c := v.status("con")
			return ok && c != nil && c.Tunnel != nil && c.Tunnel.ExitNodeID == v.node[next], fmt.Sprintf("%+v", c)
		})
		gaps = append(gaps, gap)
		order = append(order, fmt.Sprintf("%s→%s %v", cur, next, gap.Round(time.Millisecond)))
		if err := runVPNAgent(v.ag[cur]); err != nil {
			b.Fatal(err)
		}
		testwait.For(b, 30*time.Second, cur+" restarted and standing by", func() (bool, string) {
			s := v.status(cur)
			return s != nil && s.State == "standby", fmt.Sprintf("%+v", s)
		})
	}
	slices.Sort(gaps)
	b.Logf("lease failover gaps (lease term %ds), in trial order: %v", v2LeaseTTL, order)
	b.ReportMetric(float64(gaps[len(gaps)/2].Microseconds())/1000, "gap_p50_ms")
	b.ReportMetric(float64(gaps[len(gaps)-1].Microseconds())/1000, "gap_max_ms")
	b.ReportMetric(float64(v2LeaseTTL*1000), "lease_term_ms")
	b.ReportMetric(0, "ns/op")
}
