package bench

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rap-fabric/core/agent/identity"
	"github.com/rap-fabric/core/apiclient"
	"github.com/rap-fabric/core/authority"
	"github.com/rap-fabric/core/httpapi"
	"github.com/rap-fabric/core/internal/authtest"
	"github.com/rap-fabric/core/store"
)

// simAgent is one simulated agent: its own enrolled identity and its own
// HTTPS + mTLS client (own connection).
type simAgent struct {
	nodeID string
	c      *apiclient.Client
}

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// enrollSim enrolls n agents through the authority's Go API (auto-approved
// join requests: real identities, memberships and certificates) and builds a
// client for each.
func enrollSim(b *testing.B, a *authority.Authority, apiAddr string, n int) (clusterID string, agents []*simAgent) {
	ctx := context.Background()
	sys := authority.Actor{ID: "bench", Kind: "system"}
	cl, err := a.CreateCluster(ctx, sys, authority.CreateClusterRequest{Name: "hb", Slug: "hb"}, "")
	if err != nil {
		b.Fatal(err)
	}
	tok, err := a.CreateJoinToken(ctx, sys, authority.CreateTokenRequest{Cluster: "hb", MaxUses: 10000, AutoApprove: true}, "")
	if err != nil {
		b.Fatal(err)
	}
	agents = make([]*simAgent, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	var firstErr atomic.Value
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				keys, err := identity.GenerateKeys(nil)
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				poll := make([]byte, 32)
				_, _ = rand.Read(poll)
				host := sha256.Sum256([]byte(fmt.Sprintf("bench-host-%d-%x", i, poll[:4])))
				st, err := a.SubmitJoinRequest(ctx, "127.0.0.1", cl.ID, authority.JoinRequestInput{Token: tok.Token, NodeName: fmt.Sprintf("sim-%d", i),
					HostFingerprint: hex.EncodeToString(host[:]), PublicKey: keys.SigningPublic(), NoisePublicKey: keys.NoisePublic(), PollSecret: poll,
					Facts: json.RawMessage(`{"hostname":"sim"}`)})
				if err != nil || st.Status != "approved" {
					firstErr.CompareAndSwap(nil, fmt.Errorf("enroll %d: %v (status %q)", i, err, st.Status))
					return
				}
				c, err := apiclient.New(apiclient.Options{Servers: []string{apiAddr}, CAPin: tok.CAPin, ServerName: httpapi.ServerNameForCluster(cl.ID),
					Certificate: &tls.Certificate{Certificate: [][]byte{st.Certificate}, PrivateKey: ed25519.PrivateKey(keys.Signing)}, Timeout: 10 * time.Second})
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				agents[i] = &simAgent{nodeID: st.NodeID, c: c}
			}
		}()
	}
	wg.Wait()
	if e, _ := firstErr.Load().(error); e != nil {
		b.Fatal(e)
	}
	// Connect every agent (TLS handshake, certificate check) before load, 16
	// at a time, as a fleet would be connected already.
	next.Store(0)
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := agents[i].c.Do(ctx, http.MethodPost, "/v1/agent/heartbeat", authority.HeartbeatInput{Facts: json.RawMessage(`{"hostname":"sim"}`)}, nil, nil); err != nil {
					firstErr.CompareAndSwap(nil, err)
				}
			}
		}()
	}
	wg.Wait()
	if e, _ := firstErr.Load().(error); e != nil {
		b.Fatal(e)
	}
	return cl.ID, agents
}

type hbResult struct {
	acked    int
	failed   int
	rate     float64
	ack      []time.Duration
	visible  []time.Duration
	flushes  uint64
	flushRow float64
	auth     uint64
}

// drive runs every agent at a fixed interval for d (after a warm-up) and
// measures acks and heartbeat → committed-in-PostgreSQL latency.
func drive(h *authority.Heartbeats, agents []*simAgent, interval, warm, d time.Duration) hbResult {
	var mu sync.Mutex
	var visible []time.Duration
	var measuring atomic.Bool
	h.OnFlush(func(sent, _ []time.Time, committed time.Time) {
		if !measuring.Load() {
			return
		}
		mu.Lock()
		for _, s := range sent {
			visible = append(visible, committed.Sub(s))
		}
		mu.Unlock()
	})
	defer h.OnFlush(nil)
	start := time.Now()
	mStart, mEnd := start.Add(warm), start.Add(warm+d)
	lat := make([][]time.Duration, len(agents))
	var failed atomic.Int64
	var wg sync.WaitGroup
	for i, ag := range agents {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			// Spread the agents over the interval.
			next := start.Add(time.Duration(int64(interval) * int64(i) / int64(len(agents))))
			seq := int64(0)
			for {
				if wait := time.Until(next); wait > 0 {
					time.Sleep(wait)
				}
				now := time.Now()
				if now.After(mEnd) {
					return
				}
				seq++
				var ack authority.HeartbeatAck
				err := ag.c.Do(ctx, http.MethodPost, "/v1/agent/heartbeat", authority.HeartbeatInput{Seq: seq, SentAt: now, AgentVersion: "bench", State: "normal",
					Health: json.RawMessage(`{"status":"ok"}`)}, &ack, nil)
				if now.After(mStart) {
					if err != nil {
						failed.Add(1)
					} else {
						lat[i] = append(lat[i], time.Since(now))
					}
				}
				next = next.Add(interval)
				if behind := time.Since(next); behind > interval {
					next = time.Now() // do not burst to catch up
				}
			}
		}()
	}
	f0 := h.Stats()
	for time.Now().Before(mStart) {
		time.Sleep(10 * time.Millisecond)
	}
	measuring.Store(true)
	f0 = h.Stats()
	wg.Wait()
	measuring.Store(false)
	f1 := h.Stats()
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	mu.Lock()
	defer mu.Unlock()
	r := hbResult{acked: len(all), failed: int(failed.Load()), rate: float64(len(all)) / d.Seconds(), ack: all, visible: visible, flushes: f1.Flushes - f0.Flushes, auth: f1.AuthChecks - f0.AuthChecks}
	if r.flushes > 0 {
		r.flushRow = float64(f1.Flushed-f0.Flushed) / float64(r.flushes)
	}
	return r
}

// plainUpsert writes rows rows for the agents' memberships with a plain
// batched upsert (unnest … ON CONFLICT) of batch rows per statement, one
// connection, no HTTP — the baseline — and returns rows/s.
func plainUpsert(b *testing.B, db *store.DB, cluster string, agents []*simAgent, rows, batch int) float64 {
	ctx := context.Background()
	if batch < 1 {
		batch = 1
	}
	if batch > len(agents) {
		batch = len(agents) // one row per membership per statement (ON CONFLICT needs distinct keys)
	}
	start := time.Now()
	done := 0
	for done < rows {
		n := min(batch, rows-done)
		c, nd := make([]string, n), make([]string, n)
		r, s := make([]time.Time, n), make([]int64, n)
		now := time.Now()
		for i := 0; i < n; i++ {
			ag := agents[(done+i)%len(agents)]
			c[i], nd[i], r[i], s[i] = cluster, ag.nodeID, now, int64(done+i)
		}
		slices.Sort(nd) // the same lock order as the ingest's flushes
		if _, err := db.Pool.Exec(ctx, `INSERT INTO node_heartbeat_latest AS l (cluster_id, node_id, received_at, seq, agent_version, state, health)
			SELECT c::uuid, n::uuid, r, s, 'bench', 'normal', '{"status":"ok"}'::jsonb FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::int8[]) AS u(c, n, r, s)
			ON CONFLICT (cluster_id, node_id) DO UPDATE SET received_at = EXCLUDED.received_at, seq = EXCLUDED.seq, health = EXCLUDED.health`, c, nd, r, s); err != nil {
			b.Fatal(err)
		}
		done += n
	}
	return float64(rows) / time.Since(start).Seconds()
}

// BenchmarkHeartbeatIngest drives N simulated agents (each its own enrolled
// identity and HTTPS + mTLS connection, all in this process) against one
// in-process authority at fixed intervals and reports the sustained
// heartbeats/s, the p99 ack latency and the heartbeat → committed in
// PostgreSQL p99, beside a plain batched upsert of the same number of rows
// measured in the same run. HB_AGENTS (default 1000) and HB_SECONDS (default
// 5) change the size.
func BenchmarkHeartbeatIngest(b *testing.B) {
	n := envInt("HB_AGENTS", 1000)
	secs := envInt("HB_SECONDS", 5)
	g := authtest.New(b, 1)
	l := g.Leader(10 * time.Second)
	cluster, agents := enrollSim(b, l.Auth, l.APIAddr(), n)
	b.Cleanup(func() {
		for _, a := range agents {
			a.c.Close()
		}
	})
	h := l.Auth.Heartbeats()
	levels := []int{10_000, 25_000, 40_000}
	if v := os.Getenv("HB_OFFERED"); v != "" {
		levels = nil
		for _, f := range strings.Split(v, ",") {
			if x, err := strconv.Atoi(f); err == nil && x > 0 {
				levels = append(levels, x)
			}
		}
	}
	for _, offered := range levels {
		interval := time.Duration(float64(time.Second) * float64(n) / float64(offered))
		b.Run(fmt.Sprintf("agents=%d/offered=%d/s", n, offered), func(b *testing.B) {
			r := drive(h, agents, interval, 2*time.Second, time.Duration(secs)*time.Second)
			// Let the ingest drain before the baseline touches the same rows.
			for h.Stats().Pending > 0 {
				time.Sleep(20 * time.Millisecond)
			}
			time.Sleep(2 * h.Config().FlushInterval)
			base := plainUpsert(b, l.DB, cluster, agents, max(r.acked, 10_000), int(r.flushRow))
			ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
			b.ReportMetric(r.rate, "heartbeats/s")
			b.ReportMetric(ms(percentile(r.ack, 0.5)), "ack_p50_ms")
			b.ReportMetric(ms(percentile(r.ack, 0.99)), "ack_p99_ms")
			b.ReportMetric(ms(percentile(r.visible, 0.5)), "visible_p50_ms")
			b.ReportMetric(ms(percentile(r.visible, 0.99)), "visible_p99_ms")
			b.ReportMetric(r.flushRow, "rows/flush")
			b.ReportMetric(float64(r.failed), "failed")
			b.ReportMetric(float64(r.auth), "full_auth_checks")
			b.ReportMetric(base, "plain_upsert_rows/s")
			b.ReportMetric(r.rate/base, "ingest/plain_upsert")
		})
	}
}
