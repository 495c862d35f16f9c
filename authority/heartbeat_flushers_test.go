package authority

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/store"
)

// orderWriter passes flushes to PostgreSQL and records, per call, the nodes
// it carried and, per node, the sequence numbers in the order they were
// written. The first call waits (up to a bound) for a second one to start,
// so a test can see flushes overlap.
type orderWriter struct {
	next HeartbeatWriter

	mu          sync.Mutex
	inflight    int
	maxInflight int
	second      chan struct{}
	calls       [][]string // nodes of each call
	seqs        map[string][]int64
}

func (w *orderWriter) WriteHeartbeats(ctx context.Context, rows []store.HeartbeatRow, latest []store.LatestHeartbeat) error {
	w.mu.Lock()
	w.inflight++
	w.maxInflight = max(w.maxInflight, w.inflight)
	first := len(w.calls) == 0 && w.inflight == 1
	if w.inflight == 2 {
		select {
		case <-w.second:
		default:
			close(w.second)
		}
	}
	nodes := map[string]bool{}
	for _, l := range latest {
		nodes[l.NodeID] = true
	}
	var set []string
	for n := range nodes {
		set = append(set, n)
	}
	w.calls = append(w.calls, set)
	w.mu.Unlock()
	if first {
		select {
		case <-w.second:
		case <-time.After(5 * time.Second):
		}
	}
	err := w.next.WriteHeartbeats(ctx, rows, latest)
	w.mu.Lock()
	if err == nil {
		for _, r := range rows {
			w.seqs[r.NodeID] = append(w.seqs[r.NodeID], r.Seq)
		}
	}
	w.inflight--
	w.mu.Unlock()
	return err
}

// TestParallelFlushersDisjointAndOrdered: with four flushers, flushes of
// different shards overlap, every flush carries a node set disjoint from
// the other shards' (a node is always flushed by the same shard), every
// node's rows reach PostgreSQL in the order the node sent them, and the
// latest state is the node's last heartbeat (last write wins).
func TestParallelFlushersDisjointAndOrdered(t *testing.T) {
	const nodesN, per = 40, 60
	db, _, cluster, nodes := hbDB(t, nodesN)
	w := &orderWriter{next: StoreHeartbeatWriter(db), second: make(chan struct{}), seqs: map[string][]int64{}}
	h := NewHeartbeats(nil, HeartbeatConfig{Flushers: 4, MaxBatch: 80, FlushInterval: 20 * time.Millisecond}, w)
	require.Len(t, h.shards, 4)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { h.Run(stop); close(done) }()

	var agents sync.WaitGroup
	for i, n := range nodes {
		agents.Add(1)
		go func() {
			defer agents.Done()
			for seq := 1; seq <= per; seq++ {
				_, err := h.Ingest(NodePrincipal{ClusterID: cluster, NodeID: n},
					HeartbeatInput{Seq: int64(seq), Health: json.RawMessage(fmt.Sprintf(`{"n":%d,"seq":%d}`, i, seq))})
				require.NoError(t, err)
				if seq%10 == 0 {
					time.Sleep(time.Millisecond) // let flushes interleave with ingest
				}
			}
		}()
	}
	agents.Wait()
	require.Eventually(t, func() bool { return h.Stats().Flushed == nodesN*per }, 30*time.Second, 10*time.Millisecond)
	close(stop)
	<-done

	w.mu.Lock()
	defer w.mu.Unlock()
	require.GreaterOrEqual(t, w.maxInflight, 2, "flushes of different shards overlap")
	// Each node is flushed by one shard only: the node sets of all calls,
	// grouped by shard, never share a node across shards.
	owner := map[string]*hbShard{}
	for _, set := range w.calls {
		for _, n := range set {
			sh := h.shardOf(n)
			if o, ok := owner[n]; ok {
				require.Same(t, o, sh)
			}
			owner[n] = sh
		}
		// One call carries one shard's nodes only.
		for _, n := range set {
			require.Same(t, h.shardOf(set[0]), h.shardOf(n), "a flush mixed shards")
		}
	}
	used := map[*hbShard]bool{}
	for _, sh := range owner {
		used[sh] = true
	}
	require.Greater(t, len(used), 1, "the nodes spread over several shards")
	for _, n := range nodes {
		got := w.seqs[n]
		require.Len(t, got, per, n)
		for i := range got {
			require.Equal(t, int64(i+1), got[i], "node %s: rows written in the order sent", n)
		}
	}
	require.Equal(t, nodesN, count(t, db, `SELECT count(*) FROM node_heartbeat_latest WHERE seq = $1`, per), "last write wins for every node")
	require.Equal(t, nodesN*per, count(t, db, `SELECT count(*) FROM node_heartbeats`))
}

// TestFlushersConfig: the number of flushers is validated and defaulted.
func TestFlushersConfig(t *testing.T) {
	require.NoError(t, HeartbeatConfig{}.Validate())
	require.NoError(t, HeartbeatConfig{Flushers: 1}.Validate())
	require.NoError(t, HeartbeatConfig{Flushers: MaxHeartbeatFlushers}.Validate())
	for _, n := range []int{-1, MaxHeartbeatFlushers + 1} {
		err := HeartbeatConfig{Flushers: n}.Validate()
		var ce *ConfigError
		require.ErrorAs(t, err, &ce, "%d", n)
		require.Equal(t, "Flushers", ce.Field)
	}
	err := Config{Heartbeats: HeartbeatConfig{Flushers: 100}}.Validate()
	var ce *ConfigError
	require.ErrorAs(t, err, &ce)
	require.Equal(t, "Heartbeats.Flushers", ce.Field)
	require.Len(t, NewHeartbeats(nil, HeartbeatConfig{}, &failingWriter{}).shards, DefaultHeartbeatFlushers)
	require.Equal(t, DefaultHeartbeatFlushers, DefaultConfig().Heartbeats.Flushers)
}

// TestMaxPendingBoundsEveryShard: MaxPending bounds the rows held over all
// shards while PostgreSQL fails; latest state is never dropped and every
// membership's newest row is still written once it is back.
func TestMaxPendingBoundsEveryShard(t *testing.T) {
	w := &failingWriter{fail: true}
	h := NewHeartbeats(nil, HeartbeatConfig{MaxPending: 40, MaxBatch: 40, Flushers: 4}, w)
	for seq := 1; seq <= 30; seq++ {
		for n := range 8 {
			_, err := h.Ingest(NodePrincipal{ClusterID: "c", NodeID: fmt.Sprint("node-", n)}, HeartbeatInput{Seq: int64(seq)})
			require.NoError(t, err)
		}
		if seq%10 == 0 {
			require.Error(t, h.Flush(context.Background()))
		}
	}
	st := h.Stats()
	require.LessOrEqual(t, st.Pending, 40+len(h.shards)-1)
	require.Equal(t, uint64(240), uint64(st.Pending)+st.Dropped)
	w.mu.Lock()
	w.fail = false
	w.mu.Unlock()
	require.NoError(t, h.Flush(context.Background()))
	require.Zero(t, h.Stats().Pending)
	for _, sh := range h.shards {
		require.Empty(t, sh.dirty)
	}
}
