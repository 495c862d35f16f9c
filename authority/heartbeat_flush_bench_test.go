package authority

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"
)

// BenchmarkHeartbeatFlush measures flush throughput (rows/s written to
// PostgreSQL: append log + latest upsert) of the batcher with one flusher and
// with HB_FLUSHERS (default 4) flushers, alternately (A B B A) in one run,
// beside a plain batched upsert of node_heartbeat_latest (unnest … ON
// CONFLICT, one statement per batch, one connection) of the same number of
// rows: HB_NODES memberships (default 2,000) × HB_PER heartbeats (default
// 10) per round, flushed at once (the backlog a slow flush leaves).
func BenchmarkHeartbeatFlush(b *testing.B) {
	nodesN, per := envN("HB_NODES", 2000), envN("HB_PER", 10)
	parallel := envN("HB_FLUSHERS", 4)
	db, _, cluster, nodes := hbDB(b, nodesN)
	ctx := context.Background()
	round := 0
	flushRate := func(flushers int) float64 {
		h := NewHeartbeats(nil, HeartbeatConfig{Flushers: flushers, MaxBatch: 1 << 20, MaxPending: 1 << 22}, StoreHeartbeatWriter(db))
		round++
		for s := 1; s <= per; s++ {
			for _, n := range nodes {
				if _, err := h.Ingest(NodePrincipal{ClusterID: cluster, NodeID: n}, HeartbeatInput{Seq: int64(round*1000 + s), AgentVersion: "bench", State: "normal",
					Health: json.RawMessage(`{"status":"ok"}`)}); err != nil {
					b.Fatal(err)
				}
			}
		}
		start := time.Now()
		if err := h.Flush(ctx); err != nil {
			b.Fatal(err)
		}
		return float64(nodesN*per) / time.Since(start).Seconds()
	}
	plain := func() float64 {
		sorted := slices.Clone(nodes)
		slices.Sort(sorted)
		start := time.Now()
		for s := 0; s < per; s++ {
			c, r, q := make([]string, nodesN), make([]time.Time, nodesN), make([]int64, nodesN)
			now := time.Now()
			for i := range sorted {
				c[i], r[i], q[i] = cluster, now, int64(s)
			}
			if _, err := db.Pool.Exec(ctx, `INSERT INTO node_heartbeat_latest AS l (cluster_id, node_id, received_at, seq, agent_version, state, health)
				SELECT c::uuid, n::uuid, r, s, 'bench', 'normal', '{"status":"ok"}'::jsonb FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::int8[]) AS u(c, n, r, s)
				ON CONFLICT (cluster_id, node_id) DO UPDATE SET received_at = EXCLUDED.received_at, seq = EXCLUDED.seq, health = EXCLUDED.health`, c, sorted, r, q); err != nil {
				b.Fatal(err)
			}
		}
		return float64(nodesN*per) / time.Since(start).Seconds()
	}
	var one, many, base []float64
	for b.Loop() {
		base = append(base, plain())
		one = append(one, flushRate(1))
		many = append(many, flushRate(parallel))
		many = append(many, flushRate(parallel))
		one = append(one, flushRate(1))
		base = append(base, plain())
	}
	med := func(x []float64) float64 { s := slices.Clone(x); slices.Sort(s); return s[len(s)/2] }
	b.ReportMetric(med(one), "rows/s_1_flusher")
	b.ReportMetric(med(many), fmt.Sprintf("rows/s_%d_flushers", parallel))
	b.ReportMetric(med(base), "rows/s_plain_upsert")
	b.ReportMetric(med(many)/med(one), "parallel/single")
	b.ReportMetric(med(many)/med(base), "parallel/plain_upsert")
	b.ReportMetric(med(one)/med(base), "single/plain_upsert")
	b.Logf("%d memberships × %d heartbeats per flush; load %s", nodesN, per, loadAvg())
}

func envN(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

func loadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	return string(b[:min(len(b), 14)])
}
