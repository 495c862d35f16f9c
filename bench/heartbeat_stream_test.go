package bench

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rap-fabric/core/internal/authtest"
)

// BenchmarkHeartbeatPaths measures the authority's own CPU per heartbeat of
// three ways to send heartbeats to one in-process authority over real TLS +
// mTLS, alternately (old, post, stream, stream, post, old) in one run: "old"
// is POST /v1/agent/heartbeat decoded with encoding/json (the path before
// the lean decoder), "post" the same route with the lean decoder, "stream"
// POST /v1/agent/heartbeat/stream (one long-lived request per agent, one
// line per heartbeat, as agent/runtime sends them).
//
// The agents run in a load generator child process (this test binary
// re-executed, as in BenchmarkHeartbeatIngest), so this process's CPU
// (getrusage) is the authority's alone: HTTPS, mTLS, routing, decoding,
// ingest, the batcher's flushes and the PostgreSQL client (PostgreSQL's own
// CPU is not in it). HB_AGENTS agents (default 16) each send HB_PER
// heartbeats (default 1000) back to back per phase, each after the previous
// one's ack, after HB_WARM unmeasured ones (default 5: the stream is open,
// or the connection re-established after a stream, before the clock
// starts). Reported per path: authority_us/hb (this process's CPU over the
// phase / heartbeats acknowledged), authority_sys_us/hb (its kernel
// share: system calls, loopback TCP, wake-ups), loadgen_us/hb (the child's),
// authority_allocs/hb, hb/s; the ratios stream/old, stream/post, post/old;
// and authority_us/hb_stream over the 30 µs aim. authority_idle_ms/s is
// this process's CPU while no heartbeat is sent (Raft, flush tickers),
// measured in the same run: a part of every phase's figure.
// HB_CPUPROFILE=file profiles this process over the "stream" phases only.
//
// Each iteration is the six phases: -benchtime Nx, N at most 10 (other
// -benchtime values skip it).
//
//	go test -run '^$' -bench BenchmarkHeartbeatPaths -benchtime 1x ./bench/
func BenchmarkHeartbeatPaths(b *testing.B) {
	if f := flag.Lookup("test.benchtime"); f == nil || !fewRuns(f.Value.String(), 10) {
		b.Skip("a few runs per invocation: -benchtime Nx, N ≤ 10 (make bench's heartbeat step)")
	}
	n, per, warm := envInt("HB_AGENTS", 16), envInt("HB_PER", 1000), envInt("HB_WARM", 5)
	g := authtest.New(b, 1)
	l := g.Leader(10 * time.Second)
	_, fleet := enrollSim(b, l.Auth, l.APIAddr(), n)
	lg, err := startChildLoad(b, fleet)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(lg.close)
	load0 := loadAvg()
	// Idle: the authority with every agent connected and nothing sent.
	time.Sleep(500 * time.Millisecond)
	i0, it := cpuTime(), time.Now()
	time.Sleep(2 * time.Second)
	idle := float64((cpuTime() - i0).Microseconds()) / 1000 / time.Since(it).Seconds()

	type phase struct {
		auth, loadgen time.Duration // per heartbeat
		sys           time.Duration // per heartbeat, the authority's kernel share of auth
		allocs        float64       // per heartbeat
		rate          float64
	}
	run := func(mode string) phase {
		l.API.SetLeanHeartbeatDecode(mode != "old")
		path := hbPathPost
		if mode == "stream" {
			path = hbPathStream
		}
		var c0, c1, s0, s1 time.Duration
		var m0, m1 runtime.MemStats
		stop := func() {}
		r, err := lg.burst(loadPlan{Path: path, Burst: per, BurstWarm: warm}, func() {
			if mode == "stream" {
				stop = profileWindow(os.Getenv("HB_CPUPROFILE"))
			}
			runtime.ReadMemStats(&m0)
			c0, s0 = cpuTime(), sysTime()
		}, func() {
			c1, s1 = cpuTime(), sysTime()
			runtime.ReadMemStats(&m1)
			stop()
		})
		if err != nil {
			b.Fatal(mode, err)
		}
		if r.Failed > 0 || r.Fallbacks > 0 || len(r.Ack) != n*per {
			b.Fatalf("%s: %d acked of %d, %d failed, %d sent by POST after a stream failed", mode, len(r.Ack), n*per, r.Failed, r.Fallbacks)
		}
		acked := time.Duration(len(r.Ack))
		return phase{auth: (c1 - c0) / acked, sys: (s1 - s0) / acked, loadgen: r.CPU / acked, allocs: float64(m1.Mallocs-m0.Mallocs) / float64(acked),
			rate: float64(acked) / r.Wall.Seconds()}
	}
	phases := map[string][]phase{}
	for b.Loop() {
		for _, m := range []string{"old", "post", "stream", "stream", "post", "old"} {
			phases[m] = append(phases[m], run(m))
			if p := phases[m][len(phases[m])-1]; testing.Verbose() {
				b.Logf("%-6s authority %.1f µs/hb, load generator %.1f µs/hb, %.0f hb/s", m, us(p.auth), us(p.loadgen), p.rate)
			}
		}
	}
	l.API.SetLeanHeartbeatDecode(true)
	med := func(m string, f func(phase) float64) float64 {
		var s []float64
		for _, p := range phases[m] {
			s = append(s, f(p))
		}
		slices.Sort(s)
		return s[len(s)/2]
	}
	auth := func(m string) float64 { return med(m, func(p phase) float64 { return us(p.auth) }) }
	for _, m := range []string{"old", "post", "stream"} {
		b.ReportMetric(auth(m), "authority_us/hb_"+m)
		b.ReportMetric(med(m, func(p phase) float64 { return us(p.sys) }), "authority_sys_us/hb_"+m)
		b.ReportMetric(med(m, func(p phase) float64 { return us(p.loadgen) }), "loadgen_us/hb_"+m)
		b.ReportMetric(med(m, func(p phase) float64 { return p.allocs }), "authority_allocs/hb_"+m)
		b.ReportMetric(med(m, func(p phase) float64 { return p.rate }), "hb/s_"+m)
	}
	b.ReportMetric(auth("post")/auth("old"), "post/old")
	b.ReportMetric(auth("stream")/auth("old"), "stream/old")
	b.ReportMetric(auth("stream")/auth("post"), "stream/post")
	b.ReportMetric(auth("stream")/30, "stream/aim_30us")
	b.ReportMetric(idle, "authority_idle_ms/s")
	fmt.Printf("heartbeat paths: %d agents × %d heartbeats per phase (after %d unmeasured), load generator in a child process; load %s → %s\n",
		n, per, warm, load0, loadAvg())
}

// fewRuns reports whether benchtime is "Nx" with 1 ≤ N ≤ most.
func fewRuns(benchtime string, most int) bool {
	n, err := strconv.Atoi(strings.TrimSuffix(benchtime, "x"))
	return strings.HasSuffix(benchtime, "x") && err == nil && n >= 1 && n <= most
}

func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1000 }
