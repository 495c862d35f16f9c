package bench

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rap-fabric/core/agentapi"
	"github.com/rap-fabric/core/apiclient"
	"github.com/rap-fabric/core/internal/authtest"
)

// BenchmarkHeartbeatPaths measures CPU per heartbeat of three ways to send
// heartbeats to one in-process authority over real TLS + mTLS, alternately
// (old, post, stream, stream, post, old) in one run: "old" is POST
// /v1/agent/heartbeat decoded with encoding/json (the path before the lean
// decoder), "post" the same route with the lean decoder, "stream" POST
// /v1/agent/heartbeat/stream (one long-lived request per agent, one line per
// heartbeat). HB_AGENTS agents (default 16) each send HB_PER heartbeats
// (default 300) per phase back to back. The figure is this process's CPU
// (authority and the agents' clients: they share the process) per
// heartbeat, and the heartbeats/s reached.
func BenchmarkHeartbeatPaths(b *testing.B) {
	n, per := envInt("HB_AGENTS", 16), envInt("HB_PER", 300)
	g := authtest.New(b, 1)
	l := g.Leader(10 * time.Second)
	_, fleet := enrollSim(b, l.Auth, l.APIAddr(), n)
	agents, err := connectFleet(fleet)
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		for _, a := range agents {
			a.c.Close()
		}
	}()
	health := json.RawMessage(`{"status":"ok","consecutive_errors":0,"uptime_seconds":1234}`)
	seq := make([]int64, n)
	run := func(mode string) (cpuPer time.Duration, rate float64) {
		l.API.SetLeanHeartbeatDecode(mode != "old")
		var wg sync.WaitGroup
		c0, t0 := cpuTime(), time.Now()
		errs := make([]error, n)
		for i, ag := range agents {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var st *apiclient.Stream
				if mode == "stream" {
					if st, errs[i] = ag.c.OpenStream(context.Background(), agentapi.PathHeartbeatStream, agentapi.ContentTypeNDJSON); errs[i] != nil {
						return
					}
					defer st.Close()
				}
				for range per {
					seq[i]++
					hb := agentapi.Heartbeat{Seq: seq[i], SentAt: time.Now().UTC(), AgentVersion: "bench", AppliedVersion: 7, State: "normal", Health: health}
					if st == nil {
						var ack agentapi.HeartbeatAck
						if errs[i] = ag.c.Do(context.Background(), http.MethodPost, agentapi.PathHeartbeat, hb, &ack, nil); errs[i] != nil {
							return
						}
						continue
					}
					var rep agentapi.HeartbeatStreamReply
					if errs[i] = st.Send(hb); errs[i] == nil {
						errs[i] = st.Recv(&rep)
					}
					if errs[i] == nil && rep.Ack == nil {
						errs[i] = &apiclient.Error{Code: rep.Error.Code, Message: rep.Error.Message}
					}
					if errs[i] != nil {
						return
					}
				}
			}()
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				b.Fatal(mode, err)
			}
		}
		total := n * per
		return (cpuTime() - c0) / time.Duration(total), float64(total) / time.Since(t0).Seconds()
	}
	cpu := map[string][]time.Duration{}
	rate := map[string][]float64{}
	for b.Loop() {
		for _, m := range []string{"old", "post", "stream", "stream", "post", "old"} {
			c, r := run(m)
			cpu[m], rate[m] = append(cpu[m], c), append(rate[m], r)
		}
	}
	l.API.SetLeanHeartbeatDecode(true)
	us := func(m string) float64 {
		s := slices.Clone(cpu[m])
		slices.Sort(s)
		return float64(s[len(s)/2].Nanoseconds()) / 1000
	}
	hz := func(m string) float64 { s := slices.Clone(rate[m]); slices.Sort(s); return s[len(s)/2] }
	for _, m := range []string{"old", "post", "stream"} {
		b.ReportMetric(us(m), "cpu_us/hb_"+m)
		b.ReportMetric(hz(m), "hb/s_"+m)
	}
	b.ReportMetric(us("post")/us("old"), "post/old")
	b.ReportMetric(us("stream")/us("old"), "stream/old")
	b.ReportMetric(us("stream")/us("post"), "stream/post")
	b.Logf("%d agents × %d heartbeats per phase; load %s", n, per, loadAvg())
}
