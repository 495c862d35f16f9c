package authority

// Coalesced long-poll reads: when a rebuild publishes thousands of snapshots
// at once, every waiter on this authority wakes together and each needs its
// node's newest snapshot. Instead of one statement per waiter, the waiting
// reads are taken in batches (up to maxPollReadBatch, per cluster) and served
// by one store.LatestSnapshots each. Nothing runs in the background: a reader
// that finds fewer than maxPollReaders at work drains the queue itself, so a
// lone poll is read at once, by one statement, as before.

import (
	"context"
	"time"

	"github.com/rap-fabric/core/store"
)

const (
	// maxPollReaders bounds the batches read at once (pool connections).
	maxPollReaders = 4
	// maxPollReadBatch bounds the snapshots read by one statement.
	maxPollReadBatch = 256
	// pollReadTimeout bounds one batch's statement.
	pollReadTimeout = 10 * time.Second
)

// pollRead is one waiter's read of its node's newest snapshot.
type pollRead struct {
	cluster, node string
	done          chan struct{}
	snap          store.StoredSnapshot
	err           error
}

// latestForPoll returns the node's newest snapshot (store.ErrNotFound when it
// has none), read together with the other waiters' reads queued beside it.
func (a *Authority) latestForPoll(ctx context.Context, cluster, node string) (store.StoredSnapshot, error) {
	st := a.snapshots
	r := &pollRead{cluster: cluster, node: node, done: make(chan struct{})}
	st.readMu.Lock()
	st.readQueue = append(st.readQueue, r)
	lead := st.readers < maxPollReaders
	if lead {
		st.readers++
	}
	st.readMu.Unlock()
	if lead {
		a.drainPollReads(true)
	}
	select {
	case <-r.done:
		return r.snap, r.err
	case <-ctx.Done():
		return store.StoredSnapshot{}, store.MapError(ctx.Err())
	}
}

// drainPollReads serves queued reads in batches until the queue is empty,
// then gives its reader slot back. With once (the requester's own goroutine)
// it serves one batch, which holds its own read, and hands the slot to a new
// goroutine if more wait, so that no request waits for others to be served.
func (a *Authority) drainPollReads(once bool) {
	st := a.snapshots
	for {
		st.readMu.Lock()
		n := min(len(st.readQueue), maxPollReadBatch)
		if n == 0 {
			st.readers--
			st.readMu.Unlock()
			return
		}
		batch := append([]*pollRead(nil), st.readQueue[:n]...)
		st.readQueue = append(st.readQueue[:0], st.readQueue[n:]...)
		st.readMu.Unlock()
		a.readBatch(batch)
		if once {
			go a.drainPollReads(false)
			return
		}
	}
}

// readBatch reads the newest snapshot of every request in batch, one
// statement per cluster (a lone request by store.LatestSnapshot), and answers
// each.
func (a *Authority) readBatch(batch []*pollRead) {
	ctx, cancel := context.WithTimeout(context.Background(), pollReadTimeout)
	defer cancel()
	byCluster := map[string][]*pollRead{}
	for _, r := range batch {
		byCluster[r.cluster] = append(byCluster[r.cluster], r)
	}
	for cluster, rs := range byCluster {
		if len(rs) == 1 {
			rs[0].snap, rs[0].err = store.LatestSnapshot(ctx, a.db.Pool, cluster, rs[0].node)
			close(rs[0].done)
			continue
		}
		nodes := make([]string, len(rs))
		for i, r := range rs {
			nodes[i] = r.node
		}
		snaps, err := store.LatestSnapshots(ctx, a.db.Pool, cluster, nodes)
		got := make(map[string]store.StoredSnapshot, len(snaps))
		for _, s := range snaps {
			got[s.NodeID] = s
		}
		for _, r := range rs {
			switch s, ok := got[r.node]; {
			case err != nil:
				r.err = err
			case ok:
				r.snap = s
			default:
				r.err = store.ErrNotFound
			}
			close(r.done)
		}
	}
}
