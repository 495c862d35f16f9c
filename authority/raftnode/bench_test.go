package raftnode_test

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"

	"github.com/rap-fabric/core/authority/raftnode/rafttest"
	"github.com/rap-fabric/core/domain"
	"github.com/rap-fabric/core/fsm"
)

// Benchmarks print figures beside a baseline measured in the same run:
// raftnode.Node.Apply (typed errors, deadline, FSM encode/decode) against raw
// hashicorp/raft Apply on an identical 3-node loopback group (bolt + TCP,
// trivial FSM). Run:
//
//	go test -run '^$' -bench . -benchtime 2000x ./authority/raftnode/   (Apply)
//	go test -run '^$' -bench Failover -benchtime 10x ./authority/raftnode/

func reportLatencies(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) }
	b.ReportMetric(q(0.50), "p50_µs")
	b.ReportMetric(q(0.99), "p99_µs")
}

func benchCommand(i int) fsm.Command {
	return fsm.SetPartition{ClusterID: "c1", State: domain.PartitionNormal, Reason: fmt.Sprint(i), Actor: "bench",
		At: time.Unix(int64(i), 0)}
}

func benchCluster(b *testing.B) *rafttest.Cluster {
	c := rafttest.New(b, rafttest.Options{LogLevel: "off"})
	c.WaitLeader(waitLeader)
	return c
}

func BenchmarkApplySequential3(b *testing.B) {
	c := benchCluster(b)
	n := c.WaitLeader(waitLeader).Node()
	ctx := context.Background()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		if _, err := n.Apply(ctx, "", benchCommand(i)); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	reportLatencies(b, lat)
}

func BenchmarkApplyConcurrent64(b *testing.B) {
	c := benchCluster(b)
	n := c.WaitLeader(waitLeader).Node()
	runConcurrent(b, 64, func(i int) error { _, err := n.Apply(context.Background(), "", benchCommand(i)); return err })
}

func runConcurrent(b *testing.B, workers int, op func(i int) error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	b.ResetTimer()
	start := time.Now()
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= b.N {
					return
				}
				if err := op(i); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "ops/s")
}

// --- baseline: raw hashicorp/raft, same stores, transport and timeouts ---

type countFSM struct{ n atomic.Uint64 }

func (f *countFSM) Apply(*raft.Log) any                 { return f.n.Add(1) }
func (f *countFSM) Snapshot() (raft.FSMSnapshot, error) { return nopSnap{}, nil }
func (f *countFSM) Restore(rc io.ReadCloser) error      { return rc.Close() }

type nopSnap struct{}

func (nopSnap) Persist(s raft.SnapshotSink) error { return s.Close() }
func (nopSnap) Release()                          {}

func rawCluster(b *testing.B) *raft.Raft {
	b.Helper()
	var rafts []*raft.Raft
	var conf raft.Configuration
	type parts struct {
		trans *raft.NetworkTransport
		store *raftboltdb.BoltStore
	}
	var ps []parts
	for i := range 3 {
		trans, err := raft.NewTCPTransportWithLogger("127.0.0.1:0", nil, 3, 2*time.Second, hclog.NewNullLogger())
		if err != nil {
			b.Fatal(err)
		}
		store, err := raftboltdb.NewBoltStore(filepath.Join(b.TempDir(), "raft.db"))
		if err != nil {
			b.Fatal(err)
		}
		ps = append(ps, parts{trans, store})
		conf.Servers = append(conf.Servers, raft.Server{ID: raft.ServerID(fmt.Sprint("r", i)), Address: trans.LocalAddr()})
	}
	for i, p := range ps {
		rc := raft.DefaultConfig()
		rc.LocalID = conf.Servers[i].ID
		rc.HeartbeatTimeout, rc.ElectionTimeout, rc.LeaderLeaseTimeout = 300*time.Millisecond, 300*time.Millisecond, 150*time.Millisecond
		rc.CommitTimeout = 10 * time.Millisecond
		rc.Logger = hclog.NewNullLogger()
		logs, _ := raft.NewLogCache(512, p.store)
		r, err := raft.NewRaft(rc, &countFSM{}, logs, p.store, raft.NewInmemSnapshotStore(), p.trans)
		if err != nil {
			b.Fatal(err)
		}
		if err := r.BootstrapCluster(conf).Error(); err != nil {
			b.Fatal(err)
		}
		rafts = append(rafts, r)
	}
	b.Cleanup(func() {
		for i, r := range rafts {
			_ = r.Shutdown().Error()
			_ = ps[i].trans.Close()
			_ = ps[i].store.Close()
		}
	})
	var leader *raft.Raft
	if err := rafttest.Poll(waitLeader, func() bool {
		for _, r := range rafts {
			if r.State() == raft.Leader {
				leader = r
				return r.Barrier(time.Second).Error() == nil
			}
		}
		return false
	}); err != nil {
		b.Fatal("raw cluster: no leader")
	}
	return leader
}

func rawPayload(i int) []byte {
	data, err := fsm.Encode("", benchCommand(i))
	if err != nil {
		panic(err)
	}
	return data
}

func BenchmarkRawRaftApplySequential3(b *testing.B) {
	r := rawCluster(b)
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		if err := r.Apply(rawPayload(i), 0).Error(); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	reportLatencies(b, lat)
}

func BenchmarkRawRaftApplyConcurrent64(b *testing.B) {
	r := rawCluster(b)
	runConcurrent(b, 64, func(i int) error { return r.Apply(rawPayload(i), 0).Error() })
}

// BenchmarkFailover: one iteration is one trial — shut the leader down, then
// measure until another member leads (leader_ms, Raft's own election: the
// baseline) and until the first Apply succeeds on it (apply_ms: election +
// Barrier + epoch claim + the Apply). 500/500/250 ms timeouts. The old leader
// is restarted between trials.
func BenchmarkFailover(b *testing.B) {
	c := rafttest.New(b, rafttest.Options{LogLevel: "off", HeartbeatTimeout: 500 * time.Millisecond,
		ElectionTimeout: 500 * time.Millisecond, LeaderLeaseTimeout: 250 * time.Millisecond})
	var leaderMS, applyMS []float64
	// Each trial takes about a second: cap them so `-bench . -benchtime 2000x`
	// (meant for the Apply benchmarks) stays usable.
	trials := min(b.N, 30)
	b.ResetTimer()
	for i := range trials {
		b.StopTimer()
		old := c.WaitLeader(waitLeader)
		c.WaitConverged(10 * time.Second)
		b.StartTimer()
		start := time.Now()
		c.Kill(old)
		var elected time.Duration
		ok := false
		for deadline := start.Add(15 * time.Second); !ok && time.Now().Before(deadline); {
			for _, m := range c.Others(old) {
				n := m.Node()
				if !n.IsLeader() {
					continue
				}
				if elected == 0 {
					elected = time.Since(start)
				}
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				_, err := n.Apply(ctx, fmt.Sprint("failover-", i), benchCommand(i))
				cancel()
				if err == nil {
					ok = true
					break
				}
			}
			if !ok {
				time.Sleep(time.Millisecond)
			}
		}
		total := time.Since(start)
		b.StopTimer()
		if !ok {
			b.Fatalf("trial %d: no successful Apply within 15 s", i)
		}
		leaderMS = append(leaderMS, float64(elected.Microseconds())/1000)
		applyMS = append(applyMS, float64(total.Microseconds())/1000)
		c.Restart(old)
		b.StartTimer()
	}
	b.StopTimer()
	slices.Sort(leaderMS)
	slices.Sort(applyMS)
	b.ReportMetric(leaderMS[len(leaderMS)/2], "leader_median_ms")
	b.ReportMetric(leaderMS[len(leaderMS)-1], "leader_max_ms")
	b.ReportMetric(applyMS[len(applyMS)/2], "apply_median_ms")
	b.ReportMetric(applyMS[len(applyMS)-1], "apply_max_ms")
	b.ReportMetric(float64(len(applyMS)), "trials")
}
