package authority

// Distributing signed snapshots: the long-poll waiters woken by the
// 'rap_snapshot' NOTIFY (listen), and the read paths agents and the owner use
// (WaitSnapshot, ClusterTrust, SnapshotStatus, NodeSnapshot). Any authority
// answers them from PostgreSQL.

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"time"

	"github.com/rap-fabric/core/agentapi"
	"github.com/rap-fabric/core/fsm"
	"github.com/rap-fabric/core/snapshot"
	"github.com/rap-fabric/core/store"
)

// waitChan returns a channel closed at the next stored snapshot of key.
func (st *snapshotService) waitChan(key string) chan struct{} {
	st.mu.Lock()
	defer st.mu.Unlock()
	ch, ok := st.waiters[key]
	if !ok {
		ch = make(chan struct{})
		st.waiters[key] = ch
	}
	return ch
}

func (st *snapshotService) wake(key string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if ch, ok := st.waiters[key]; ok {
		close(ch)
		delete(st.waiters, key)
	}
}

// wakeAll wakes every long poll, so each reads PostgreSQL again: used when
// the LISTEN connection is (re)established, since notifications sent while it
// was down are lost, and when it is lost, so waiters switch to polling.
func (st *snapshotService) wakeAll() {
	st.mu.Lock()
	defer st.mu.Unlock()
	for key, ch := range st.waiters {
		close(ch)
		delete(st.waiters, key)
	}
}

// listen holds a LISTEN connection for 'rap_snapshot' (wake long polls) and
// 'rap_snapshot_dirty' (wake the rebuild loop), reconnecting with backoff.
func (a *Authority) listen(ctx context.Context) {
	st := a.snapshots
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := func() error {
			pc, err := a.db.Pool.Acquire(ctx)
			if err != nil {
				return err
			}
			conn := pc.Hijack()
			a.db.Detach(conn)
			defer conn.Close(context.WithoutCancel(ctx))
			if _, err := conn.Exec(ctx, `LISTEN rap_snapshot; LISTEN rap_snapshot_dirty`); err != nil {
				return err
			}
			st.listening.Store(true)
			// Anything published while no LISTEN connection was held was
			// not notified: every waiter reads again now.
			st.wakeAll()
			defer func() {
				st.listening.Store(false)
				st.wakeAll() // back to polling until LISTEN is held again
			}()
			backoff = 100 * time.Millisecond
			for {
				n, err := conn.WaitForNotification(ctx)
				if err != nil {
					return err
				}
				switch n.Channel {
				case "rap_snapshot":
					st.wake(n.Payload)
				case "rap_snapshot_dirty":
					st.kickLoop()
				}
			}
		}()
		if ctx.Err() != nil {
			return
		}
		a.log.Warn("snapshot LISTEN connection lost; long polls fall back to polling", "error", err)
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// ---------------------------------------------------------------- serving

// WaitSnapshot returns the node's newest signed snapshot once its version is
// above after, waiting up to wait (at most MaxLongPoll). ok is false when
// nothing newer appeared in time. A read: any authority answers from
// PostgreSQL.
//
// While this authority holds its LISTEN connection a waiter reads
// PostgreSQL once, then again only when a 'rap_snapshot' notification for its
// node arrives (or the LISTEN connection is re-established or lost, which
// wakes every waiter): an idle fleet of N agents costs N/wait reads per
// second, not N/5 s more as with a periodic re-read. Without LISTEN it polls
// every 500 ms.
func (a *Authority) WaitSnapshot(ctx context.Context, node NodePrincipal, after uint64, wait time.Duration) (store.StoredSnapshot, bool, error) {
	st := a.snapshots
	opts := a.snapshots.opts
	if wait <= 0 || wait > opts.MaxLongPoll {
		wait = opts.MaxLongPoll
	}
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	key := node.ClusterID + "/" + node.NodeID
	for {
		ch := st.waitChan(key)
		a.metrics.longPollRead()
		s, err := a.latestForPoll(ctx, node.ClusterID, node.NodeID)
		switch {
		case err == nil && s.Version > after:
			return s, true, nil
		case err != nil && !errors.Is(err, store.ErrNotFound):
			return store.StoredSnapshot{}, false, asError(err)
		}
		poll := 500 * time.Millisecond
		if st.listening.Load() {
			// Notifications wake this waiter; the timer is only a safety
			// net longer than any long poll.
			poll = opts.MaxLongPoll + time.Second
		}
		select {
		case <-ch:
		case <-time.After(poll):
		case <-deadline.C:
			return store.StoredSnapshot{}, false, nil
		case <-ctx.Done():
			return store.StoredSnapshot{}, false, asError(store.MapError(ctx.Err()))
		}
	}
}

// CAKeyView is a cluster CA public key for snapshot verification (the
// agentapi contract).
type CAKeyView = agentapi.CAKey

// TrustedCA is the body of GET /v1/agent/ca (the agentapi contract).
type TrustedCA = agentapi.TrustedCA

// ClusterTrust returns the cluster's snapshot verification keys from the
// replicated state.
func (a *Authority) ClusterTrust(clusterID string) (TrustedCA, error) {
	ca, ok := a.state.ClusterCA(clusterID)
	if !ok {
		return TrustedCA{}, Errf(CodeNotFound, "unknown cluster")
	}
	view := func(k fsm.CAKey) CAKeyView {
		return CAKeyView{KeyID: snapshot.KeyID(ed25519.PublicKey(k.PublicKey)), PublicKey: k.PublicKey, Status: string(k.Status), CreatedAt: k.CreatedAt}
	}
	// Trusted: the current key and, during a CA rotation's overlap, the old
	// root (which still signs snapshots); retired keys are listed as
	// rotated-out. CACert is the publishing root, which the agent's pin
	// names until it has moved.
	t := TrustedCA{ClusterID: clusterID, CACert: ca.Publishing().CertDER}
	for _, k := range ca.Trusted() {
		t.Keys = append(t.Keys, view(k))
	}
	for _, k := range ca.History {
		if k.Status == fsm.CAKeyRetired {
			t.Rotated = append(t.Rotated, view(k))
		}
	}
	return t, nil
}

// SnapshotStatus lists desired (issued) versus applied (reported) snapshot
// versions of a cluster's members; laggingOnly keeps the nodes behind.
func (a *Authority) SnapshotStatus(ctx context.Context, cluster, nodeID string, laggingOnly bool, p store.Page) ([]store.SnapshotStatus, error) {
	c, err := a.GetCluster(ctx, cluster)
	if err != nil {
		return nil, err
	}
	out, err := store.ListSnapshotStatus(ctx, a.db.Pool, c.ID, nodeID, laggingOnly, p)
	return out, asErrorOrNil(err)
}

// NodeSnapshotView is one node's snapshot as the owner inspects it.
type NodeSnapshotView struct {
	Status   store.SnapshotStatus   `json:"status"`
	Versions []store.StoredSnapshot `json:"versions"`
	Snapshot *snapshot.Snapshot     `json:"snapshot,omitempty"`
}

// NodeSnapshot shows a node's desired and applied versions, the versions kept
// and the content of the newest one.
func (a *Authority) NodeSnapshot(ctx context.Context, cluster, nodeID string) (NodeSnapshotView, error) {
	c, err := a.GetCluster(ctx, cluster)
	if err != nil {
		return NodeSnapshotView{}, err
	}
	st, err := store.ListSnapshotStatus(ctx, a.db.Pool, c.ID, nodeID, false, store.Page{Limit: 1})
	if err != nil {
		return NodeSnapshotView{}, asError(err)
	}
	if len(st) == 0 {
		return NodeSnapshotView{}, Errf(CodeNotFound, "node %s is not a member of cluster %s", nodeID, c.Slug)
	}
	vs, err := store.ListSnapshotVersions(ctx, a.db.Pool, c.ID, nodeID)
	if err != nil {
		return NodeSnapshotView{}, asError(err)
	}
	v := NodeSnapshotView{Status: st[0], Versions: vs}
	if len(vs) > 0 {
		if signed, err := snapshot.Decode(bytes.NewReader(vs[0].Signed), snapshot.DefaultMaxSize); err == nil {
			if s, err := snapshot.DecodeSnapshot(signed.Payload); err == nil {
				v.Snapshot = &s
			}
		}
	}
	return v, nil
}

// snapshotVersion returns the newest issued version of a node (0 for none).
func (a *Authority) snapshotVersion(ctx context.Context, clusterID, nodeID string) uint64 {
	s, err := store.LatestSnapshot(ctx, a.db.Pool, clusterID, nodeID)
	if err != nil {
		return 0
	}
	return s.Version
}
