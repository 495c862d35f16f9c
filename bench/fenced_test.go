package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rap-fabric/core/authority"
	"github.com/rap-fabric/core/daemon"
	"github.com/rap-fabric/core/fsm"
	"github.com/rap-fabric/core/internal/authtest"
	"github.com/rap-fabric/core/store"
)

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[int(float64(len(s)-1)*p)]
}

// run executes n operations with c concurrent workers and returns the
// per-operation latencies and the throughput.
func run(n, c int, op func(i int) error) ([]time.Duration, float64, error) {
	lat := make([]time.Duration, n)
	var next atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < c; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				t0 := time.Now()
				if err := op(i); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				lat[i] = time.Since(t0)
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	if e, _ := firstErr.Load().(error); e != nil {
		return nil, 0, e
	}
	return lat, float64(n) / el.Seconds(), nil
}

// noopCommand is a well-formed version-1 log entry of a command type the FSM
// does not know: committing it goes through the whole Raft path (append, replicate
// to a quorum, fsync, FSM apply on the leader) and changes nothing but the
// applied index. The FSM answers it with fsm.ErrUnknownType.
var noopCommand = []byte{fsm.Version1, 0xff}

// BenchmarkFencedMutation measures a fenced mutation (leader check, quorum
// confirmation, PostgreSQL transaction under the fence with an audit event) on
// three in-process authorities over real TCP, with group commit (the
// authority's defaults, or RAP_BENCH_GROUP="maxJobs,maxGroups") and without it
// (every mutation its own transaction), and with group commit but a
// savepoint per mutation from the start (GroupCommitOptions.Savepoints, the
// way groups ran before their optimistic pass), beside two baselines measured in the
// same run with the same client count: a plain single-row INSERT+COMMIT on the
// same database (and, for comparison, the same into a table shaped like the
// mutation's organizations table, unfenced), and a raw Raft Apply of a no-op command on the same
// three-node group. A fourth fenced mode, group commit with the audit chain
// paused (store.PauseAuditChain), shows what chaining costs: the events of
// those phases are chained after each, outside the timing. The four fenced
// modes alternate (ABCDDCBA) so that drift in the machine's load falls on
// all of them. It also reports the CPU each kind of
// operation costs: PostgreSQL's (every server process, where the server runs
// on this machine) and this process's (authorities and clients), per
// operation. Run:
//
//	export DATABASE_URL=$(scripts/pg.sh url)
//	go test -run '^$' -bench BenchmarkFencedMutation -benchtime 1000x ./bench/
func BenchmarkFencedMutation(b *testing.B) {
	var gc authority.GroupCommitOptions
	if v := os.Getenv("RAP_BENCH_GROUP"); v != "" {
		if _, err := fmt.Sscanf(v, "%d,%d", &gc.MaxJobs, &gc.MaxGroups); err != nil {
			b.Fatalf("RAP_BENCH_GROUP=%q: want maxJobs,maxGroups", v)
		}
	}
	g := authtest.NewWithConfig(b, 3, func(_ int, c *daemon.Config) { c.GroupCommit = gc })
	l := g.Leader(10 * time.Second)
	ctx := context.Background()
	_, err := l.DB.Pool.Exec(ctx, `CREATE TABLE bench_plain (id uuid PRIMARY KEY, name text NOT NULL, created_at timestamptz NOT NULL DEFAULT now())`)
	if err != nil {
		b.Fatal(err)
	}
	// A second baseline: the fenced mutation's own row, unfenced: a table
	// shaped like organizations (its indexes, checks and defaults, without
	// the fence trigger).
	if _, err := l.DB.Pool.Exec(ctx, `CREATE TABLE bench_org (LIKE organizations INCLUDING ALL)`); err != nil {
		b.Fatal(err)
	}
	actor := authority.Actor{ID: "bench", Kind: "system"}
	fencedOp := func(int) error {
		id := store.NewID()
		_, err := authority.Fenced(ctx, l.Auth, authority.Op{Action: "bench.write", Actor: actor, TargetKind: "organization", TargetID: id},
			func(tx pgx.Tx) (store.Organization, error) {
				return store.InsertOrganization(ctx, tx, store.Organization{ID: id, Name: "bench-" + id, Slug: "b" + id[:8] + id[9:13] + id[14:18]})
			})
		return err
	}
	for _, clients := range []int{1, 32, 64} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			n := b.N
			if n < 200 {
				n = 200
			}
			// Where the CPU goes: PostgreSQL's (every server process) and
			// this process's (three authorities and the clients) per
			// operation, for the plain INSERT and each fenced mode.
			pg := pgCPU(ctx, l.DB.Pool)
			var pgUsed, goUsed [6]time.Duration // insert, ungrouped, grouped, organization-shaped insert, grouped with savepoints, grouped with the chain paused
			var pgOps [6]int
			measure := func(k, ops int, f func()) {
				var p0 time.Duration
				if pg != nil {
					p0 = pg()
				}
				g0 := selfCPU()
				f()
				goUsed[k] += selfCPU() - g0
				if pg != nil {
					pgUsed[k] += pg() - p0
				}
				pgOps[k] += ops
			}
			var base []time.Duration
			var baseRate float64
			measure(0, n, func() {
				base, baseRate, err = run(n, clients, func(int) error {
					_, err := l.DB.Pool.Exec(ctx, `INSERT INTO bench_plain (id, name) VALUES ($1, $2)`, store.NewID(), "x")
					return err
				})
			})
			if err != nil {
				b.Fatal(err)
			}
			var orgRate float64
			measure(3, n, func() {
				_, orgRate, err = run(n, clients, func(int) error {
					id := store.NewID()
					_, err := l.DB.Pool.Exec(ctx, `INSERT INTO bench_org (id, name, slug) VALUES ($1, $2, $3)`,
						id, "bench-"+id, "b"+id[:8]+id[9:13]+id[14:18])
					return err
				})
			})
			if err != nil {
				b.Fatal(err)
			}
			rft, raftRate, err := run(n, clients, func(int) error {
				_, err := l.Raft.ApplyEncoded(ctx, noopCommand)
				if errors.Is(err, fsm.ErrUnknownType) {
					return nil // committed and applied; the FSM ignored it
				}
				if err == nil {
					return errors.New("the FSM accepted the no-op command")
				}
				return err
			})
			if err != nil {
				b.Fatal(err)
			}
			// ABCDDCBA: ungrouped, grouped, grouped with a savepoint per
			// mutation from the start, grouped with the audit chain paused
			// (what the chainer costs: its UPDATE of each event, reading
			// events back and hashing them), and back; n/2 each. The events
			// of a paused phase are chained after it, outside the timing.
			var lat [4][]time.Duration
			var took [4]time.Duration
			var ops [4]int
			groups0, grouped0 := l.Auth.GroupCommitStats()
			b.ResetTimer()
			for _, mode := range []int{0, 1, 2, 3, 3, 2, 1, 0} {
				o := authority.GroupCommitOptions{MaxJobs: 1}
				if mode > 0 {
					o = gc
					o.Savepoints = mode == 2
				}
				if err := l.Auth.SetGroupCommit(o); err != nil {
					b.Fatal(err)
				}
				var resume func() error
				if mode == 3 {
					b.StopTimer()
					if resume, err = store.PauseAuditChain(ctx, l.DB); err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
				}
				t0 := time.Now()
				var d []time.Duration
				k := []int{1, 2, 4, 5}[mode]
				measure(k, n/2, func() { d, _, err = run(n/2, clients, fencedOp) })
				if err != nil {
					b.Fatal(err)
				}
				took[mode] += time.Since(t0)
				ops[mode] += n / 2
				lat[mode] = append(lat[mode], d...)
				if mode == 3 {
					b.StopTimer()
					if err := resume(); err != nil {
						b.Fatal(err)
					}
					if _, err := l.Auth.ChainAudit(ctx); err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
				}
			}
			b.StopTimer()
			if err := l.Auth.SetGroupCommit(gc); err != nil {
				b.Fatal(err)
			}
			rate := float64(ops[1]) / took[1].Seconds()
			single := float64(ops[0]) / took[0].Seconds()
			withSavepoints := float64(ops[2]) / took[2].Seconds()
			unchained := float64(ops[3]) / took[3].Seconds()
			us := func(d time.Duration) float64 { return float64(d.Microseconds()) }
			b.ReportMetric(us(percentile(base, 0.5)), "insert_p50_us")
			b.ReportMetric(us(percentile(base, 0.99)), "insert_p99_us")
			b.ReportMetric(baseRate, "insert_ops/s")
			b.ReportMetric(us(percentile(rft, 0.5)), "raft_p50_us")
			b.ReportMetric(us(percentile(rft, 0.99)), "raft_p99_us")
			b.ReportMetric(raftRate, "raft_ops/s")
			b.ReportMetric(us(percentile(lat[1], 0.5)), "fenced_p50_us")
			b.ReportMetric(us(percentile(lat[1], 0.99)), "fenced_p99_us")
			b.ReportMetric(rate, "fenced_ops/s")
			b.ReportMetric(us(percentile(lat[0], 0.5)), "ungrouped_p50_us")
			b.ReportMetric(single, "ungrouped_ops/s")
			b.ReportMetric(rate/baseRate, "fenced/insert_throughput")
			b.ReportMetric(single/baseRate, "ungrouped/insert_throughput")
			b.ReportMetric(rate/raftRate, "fenced/raft_throughput")
			b.ReportMetric(orgRate, "org_insert_ops/s")
			b.ReportMetric(rate/orgRate, "fenced/org_insert_throughput")
			b.ReportMetric(withSavepoints, "savepoints_ops/s")
			b.ReportMetric(withSavepoints/baseRate, "savepoints/insert_throughput")
			b.ReportMetric(unchained, "chain_paused_ops/s")
			b.ReportMetric(unchained/baseRate, "chain_paused/insert_throughput")
			perOp := func(d time.Duration, k int) float64 { return float64(d.Microseconds()) / float64(max(pgOps[k], 1)) }
			if pg != nil {
				b.ReportMetric(perOp(pgUsed[0], 0), "insert_pg_cpu_us/op")
				b.ReportMetric(perOp(pgUsed[1], 1), "ungrouped_pg_cpu_us/op")
				b.ReportMetric(perOp(pgUsed[2], 2), "fenced_pg_cpu_us/op")
				b.ReportMetric(perOp(pgUsed[3], 3), "org_insert_pg_cpu_us/op")
				b.ReportMetric(perOp(pgUsed[4], 4), "savepoints_pg_cpu_us/op")
				b.ReportMetric(perOp(pgUsed[5], 5), "chain_paused_pg_cpu_us/op")
			}
			b.ReportMetric(perOp(goUsed[0], 0), "insert_go_cpu_us/op")
			b.ReportMetric(perOp(goUsed[1], 1), "ungrouped_go_cpu_us/op")
			b.ReportMetric(perOp(goUsed[2], 2), "fenced_go_cpu_us/op")
			b.ReportMetric(perOp(goUsed[3], 3), "org_insert_go_cpu_us/op")
			b.ReportMetric(perOp(goUsed[4], 4), "savepoints_go_cpu_us/op")
			b.ReportMetric(perOp(goUsed[5], 5), "chain_paused_go_cpu_us/op")
			// Mean mutations per group transaction; 0 when every mutation
			// ran alone.
			groups, grouped := l.Auth.GroupCommitStats()
			if groups > groups0 {
				b.ReportMetric(float64(grouped-grouped0)/float64(groups-groups0), "mutations/group")
			} else {
				b.ReportMetric(0, "mutations/group")
			}
		})
	}
}

// BenchmarkFailover kills the leader (closes it) and measures the time until
// the first fenced mutation succeeds on a new leader, over 10 trials, with
// 300 ms Raft timeouts. The killed authority is restarted between trials.
func BenchmarkFailover(b *testing.B) {
	g := authtest.New(b, 3)
	ctx := context.Background()
	actor := authority.Actor{ID: "bench", Kind: "system"}
	var times, elected, claimed []time.Duration
	for trial := 0; trial < 10; trial++ {
		l := g.Leader(15 * time.Second)
		i := g.Index(l)
		start := time.Now()
		_ = l.Close()
		g.DS[i] = nil
		var leaderAt, fenceAt time.Duration
		for {
			var ok bool
			for _, d := range g.DS {
				if d == nil || !d.Raft.IsLeader() {
					continue
				}
				if leaderAt == 0 {
					leaderAt = time.Since(start)
				}
				if d.Auth.FenceEpoch() == 0 {
					continue
				}
				if fenceAt == 0 {
					fenceAt = time.Since(start)
				}
				id := store.NewID()
				_, err := authority.Fenced(ctx, d.Auth, authority.Op{Action: "bench.failover", Actor: actor}, func(tx pgx.Tx) (store.Organization, error) {
					return store.InsertOrganization(ctx, tx, store.Organization{ID: id, Name: "f-" + id, Slug: "f" + id[:8]})
				})
				ok = err == nil
			}
			if ok {
				break
			}
			if time.Since(start) > 20*time.Second {
				b.Fatal("no fenced write within 20 s of the leader's death")
			}
			time.Sleep(5 * time.Millisecond)
		}
		times = append(times, time.Since(start))
		elected, claimed = append(elected, leaderAt), append(claimed, fenceAt)
		g.Start(i)
	}
	b.ReportMetric(float64(percentile(times, 0.5).Milliseconds()), "failover_median_ms")
	b.ReportMetric(float64(percentile(times, 1).Milliseconds()), "failover_max_ms")
	// Where the time goes: until a survivor leads (Raft's detection and
	// election, polled every 5 ms), and until it holds the PostgreSQL fence.
	b.ReportMetric(float64(percentile(elected, 0.5).Milliseconds()), "elected_median_ms")
	b.ReportMetric(float64(percentile(elected, 1).Milliseconds()), "elected_max_ms")
	b.ReportMetric(float64(percentile(claimed, 0.5).Milliseconds()), "fenced_median_ms")
	b.ReportMetric(float64(percentile(claimed, 1).Milliseconds()), "fenced_max_ms")
}
