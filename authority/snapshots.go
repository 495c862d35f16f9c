package authority

// Signed need-to-know snapshots on the authority side: building
// snapshot.State from PostgreSQL, deciding which nodes changed, signing with
// the cluster CA key from the FSM, storing under the fence, and serving them
// to agents (long poll) and config-storage nodes.
//
// Rebuilds. Every table a snapshot is built from carries a trigger
// (migrations/004_snapshots.sql) that marks the cluster dirty in
// snapshot_dirty_clusters and NOTIFYs 'rap_snapshot_dirty' — in the same
// transaction as the change, so no code path can forget it (RevokeNode,
// SetMembershipStatus and approvals included). Two things act on the marks:
//
//   - the mutations of this package (roles, services, groups, flags,
//     policies) rebuild their cluster synchronously, after their fenced
//     transaction committed and before they answer, so the caller sees the
//     new snapshot version in the response;
//   - RunSnapshots, on every authority, rebuilds marked clusters while this
//     authority leads with a claimed fence (woken by the NOTIFY, with a
//     polling fallback), does a full pass after taking leadership, and
//     re-signs snapshots that passed half their lifetime.
//
// A rebuild is exact: it builds one snapshot.Index of the cluster, compares
// each node's Digest with the digest stored in node_snapshot_heads and signs
// only the nodes whose scope or body changed (or whose signing key rotated, or
// whose snapshot is half expired). So a one-node service change re-signs that
// node only; a revocation re-signs every member, because every body carries
// the revocation list. All nodes signed in one pass share one version, one
// above the highest version of the cluster, which keeps versions strictly
// increasing per node (a trigger refuses anything else).

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"hash/fnv"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rap-fabric/core/domain"
	"github.com/rap-fabric/core/fsm"
	"github.com/rap-fabric/core/snapshot"
	"github.com/rap-fabric/core/store"
)

// SnapshotOptions tune snapshot building and serving. Zero values take the
// defaults noted.
type SnapshotOptions struct {
	// TTL is the lifetime of a signed snapshot; 0 means 24 h. Snapshots are
	// re-signed when less than half of it remains.
	TTL time.Duration
	// MaxLongPoll bounds one long poll; 0 means 25 s.
	MaxLongPoll time.Duration
	// DirtyPoll is how often the leader looks for dirty marks besides being
	// woken by NOTIFY; 0 means 2 s.
	DirtyPoll time.Duration
	// FullPass is how often the leader checks every cluster (expiry refresh);
	// 0 means 5 min.
	FullPass time.Duration
	// StorageFanout is how many config-storage nodes serve each node; 0 means 2.
	StorageFanout int
	// Builder bounds the topology; zero means snapshot.DefaultConfig.
	Builder snapshot.Config
}

func (o SnapshotOptions) withDefaults() SnapshotOptions {
	if o.TTL == 0 {
		o.TTL = 24 * time.Hour
	}
	if o.MaxLongPoll == 0 {
		o.MaxLongPoll = 25 * time.Second
	}
	if o.DirtyPoll == 0 {
		o.DirtyPoll = 2 * time.Second
	}
	if o.FullPass == 0 {
		o.FullPass = 5 * time.Minute
	}
	if o.StorageFanout == 0 {
		o.StorageFanout = 2
	}
	return o
}

// snapState is the per-Authority snapshot machinery (kept beside the
// Authority so that authority.go stays untouched).
type snapState struct {
	opts      atomic.Pointer[SnapshotOptions]
	buildMu   sync.Mutex
	mu        sync.Mutex
	waiters   map[string]chan struct{}
	kick      chan struct{}
	listening atomic.Bool
}

var snapStates sync.Map // *Authority → *snapState

func (a *Authority) snaps() *snapState {
	if v, ok := snapStates.Load(a); ok {
		return v.(*snapState)
	}
	st := &snapState{waiters: map[string]chan struct{}{}, kick: make(chan struct{}, 1)}
	o := SnapshotOptions{}.withDefaults()
	st.opts.Store(&o)
	v, _ := snapStates.LoadOrStore(a, st)
	return v.(*snapState)
}

// SetSnapshotOptions replaces the snapshot options (before RunSnapshots).
func (a *Authority) SetSnapshotOptions(o SnapshotOptions) {
	o = o.withDefaults()
	a.snaps().opts.Store(&o)
}

func (a *Authority) snapOpts() SnapshotOptions { return *a.snaps().opts.Load() }

func (st *snapState) kickLoop() {
	select {
	case st.kick <- struct{}{}:
	default:
	}
}

// waitChan returns a channel closed at the next stored snapshot of key.
func (st *snapState) waitChan(key string) chan struct{} {
	st.mu.Lock()
	defer st.mu.Unlock()
	ch, ok := st.waiters[key]
	if !ok {
		ch = make(chan struct{})
		st.waiters[key] = ch
	}
	return ch
}

func (st *snapState) wake(key string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if ch, ok := st.waiters[key]; ok {
		close(ch)
		delete(st.waiters, key)
	}
}

// ---------------------------------------------------------------- state

type nodeFacts struct {
	Region    string `json:"region"`
	Endpoints []any  `json:"endpoints"`
}

// loadState reads everything a snapshot of clusterID may be built from.
func (a *Authority) loadState(ctx context.Context, clusterID string) (*snapshot.State, error) {
	q := a.db.Pool
	c, err := store.GetCluster(ctx, q, clusterID)
	if err != nil {
		return nil, err
	}
	members, err := store.SnapshotMembers(ctx, q, c.ID)
	if err != nil {
		return nil, err
	}
	groups, err := store.ListGroups(ctx, q, c.ID)
	if err != nil {
		return nil, err
	}
	roles, err := store.AllRoleAssignments(ctx, q, c.ID)
	if err != nil {
		return nil, err
	}
	services, err := store.AllServices(ctx, q, c.ID)
	if err != nil {
		return nil, err
	}
	orgs, err := store.AllOrganizations(ctx, q)
	if err != nil {
		return nil, err
	}
	flags, err := store.ListTelemetryFlags(ctx, q, c.ID)
	if err != nil {
		return nil, err
	}
	pol, err := store.GetClusterPolicy(ctx, q, c.ID)
	if err != nil {
		return nil, err
	}
	pubs, noises, err := store.RevokedKeys(ctx, q, c.ID)
	if err != nil {
		return nil, err
	}
	idKeys, err := a.identityKeys(ctx, c.ID)
	if err != nil {
		return nil, err
	}
	route, qos, err := a.policyWithIntents(ctx, q, c.ID, pol.RoutePolicy, pol.QoSPolicy)
	if err != nil {
		return nil, err
	}
	part, err := store.GetPartition(ctx, q, c.ID)
	if err != nil {
		return nil, err
	}
	s := &snapshot.State{Cluster: snapshot.Cluster{ID: c.ID, Name: c.Name, AuthorityState: domain.PartitionState(part.State)}, RoutePolicy: route, QoSPolicy: qos}
	if s.Updates, err = a.loadUpdates(ctx, c.ID); err != nil {
		return nil, err
	}
	for _, k := range append(pubs, noises...) {
		s.Revocations.KeyFingerprints = append(s.Revocations.KeyFingerprints, snapshot.Fingerprint(k))
	}
	groupOf := map[string]string{}
	for _, m := range members {
		n := snapshot.Node{ID: m.NodeID, Name: m.Name, NoisePublicKey: m.NoisePublicKey, IdentityPublicKey: idKeys[m.NodeID],
			IdentityStatus: domain.IdentityActive}
		if m.IdentityStatus != nil {
			n.IdentityStatus = domain.IdentityStatus(*m.IdentityStatus)
		}
		var f nodeFacts
		if json.Unmarshal(m.Facts, &f) == nil {
			n.Region = f.Region
			for _, e := range f.Endpoints {
				if s, ok := e.(string); ok && len(s) <= 255 {
					n.Endpoints = append(n.Endpoints, s)
				}
			}
		}
		nm := snapshot.NodeMembership{ClusterID: c.ID, Status: domain.MembershipStatus(m.MembershipStatus)}
		if m.GroupID != nil {
			nm.GroupID = *m.GroupID
			groupOf[m.NodeID] = *m.GroupID
		}
		n.Memberships = []snapshot.NodeMembership{nm}
		if nm.Status == domain.MembershipRevoked {
			s.Revocations.NodeIDs = append(s.Revocations.NodeIDs, m.NodeID)
		}
		s.Nodes = append(s.Nodes, n)
	}
	parent := map[string]string{}
	for _, g := range groups {
		sg := snapshot.Group{ID: g.ID, Name: g.Name}
		if g.ParentID != nil {
			sg.ParentID = *g.ParentID
			parent[g.ID] = *g.ParentID
		}
		s.Groups = append(s.Groups, sg)
	}
	for _, r := range roles {
		ra := snapshot.RoleAssignment{NodeID: r.NodeID, Role: domain.Role(r.Role), Policy: r.Policy, Disabled: r.Status != "active"}
		if r.OrganizationID != nil {
			ra.OrganizationID = *r.OrganizationID
		}
		s.Assignments = append(s.Assignments, ra)
	}
	for _, sv := range services {
		ss := snapshot.ServiceState{ID: sv.ID, NodeID: sv.NodeID, Type: sv.ServiceType, Role: domain.Role(sv.ServiceType),
			Enabled: sv.DesiredState == "enabled", Config: sv.Config}
		if sv.OrganizationID != nil {
			ss.OrganizationID = *sv.OrganizationID
		}
		s.Services = append(s.Services, ss)
	}
	for _, o := range orgs {
		s.Organizations = append(s.Organizations, snapshot.Organization{ID: o.ID, Name: o.Name})
	}
	for _, f := range flags {
		tf := snapshot.TelemetryFlag{Scope: f.Scope, Name: f.Name, Enabled: f.Enabled}
		switch f.Scope {
		case "node":
			tf.TargetID = *f.NodeID
		case "organization":
			tf.TargetID = *f.OrganizationID
		}
		s.Telemetry = append(s.Telemetry, tf)
	}
	var entry []struct {
		OrganizationID string          `json:"organization_id"`
		Policy         json.RawMessage `json:"policy"`
	}
	_ = json.Unmarshal(pol.EntryPolicies, &entry)
	for _, e := range entry {
		s.EntryPolicies = append(s.EntryPolicies, snapshot.EntryPolicy{OrganizationID: e.OrganizationID, Policy: e.Policy})
	}
	s.StorageAssignments = storageAssignments(members, roles, groupOf, parent, a.snapOpts().StorageFanout)
	return s, nil
}

// identityKeys returns each member's Ed25519 identity public key, from the
// same identity SnapshotMembers picks (active first, then newest): peers
// verify gossip records against it.
func (a *Authority) identityKeys(ctx context.Context, clusterID string) (map[string][]byte, error) {
	rows, err := a.db.Pool.Query(ctx, `SELECT DISTINCT ON (node_id) node_id::text, public_key FROM node_identities
	      WHERE cluster_id::text = $1 ORDER BY node_id, (identity_status = 'active') DESC, created_at DESC`, clusterID)
	if err != nil {
		return nil, store.MapError(err)
	}
	defer rows.Close()
	out := map[string][]byte{}
	for rows.Next() {
		var id string
		var pub []byte
		if err := rows.Scan(&id, &pub); err != nil {
			return nil, store.MapError(err)
		}
		if len(pub) == ed25519.PublicKeySize {
			out[id] = pub
		}
	}
	return out, store.MapError(rows.Err())
}

// storageAssignments picks, for every member that gets a snapshot, the
// config-storage nodes that cache and serve it: the StorageFanout active
// config-storage nodes with the highest rendezvous score, among those whose
// role policy either lists no "groups" or lists a group on the member's group
// path. A storage node never serves itself.
func storageAssignments(members []store.SnapshotMember, roles []store.RoleAssignment, groupOf, parent map[string]string, fanout int) []snapshot.StorageAssignment {
	type storage struct {
		id     string
		groups []string
	}
	active := map[string]bool{}
	for _, m := range members {
		if m.MembershipStatus == string(domain.MembershipActive) {
			active[m.NodeID] = true
		}
	}
	var stores []storage
	for _, r := range roles {
		if r.Role != string(domain.RoleConfigStorage) || r.Status != "active" || !active[r.NodeID] {
			continue
		}
		var p struct {
			Groups []string `json:"groups"`
		}
		_ = json.Unmarshal(r.Policy, &p)
		stores = append(stores, storage{id: r.NodeID, groups: p.Groups})
	}
	if len(stores) == 0 {
		return nil
	}
	served := map[string][]string{}
	for _, m := range members {
		if m.MembershipStatus == string(domain.MembershipRevoked) {
			continue
		}
		path := map[string]bool{}
		for g, i := groupOf[m.NodeID], 0; g != "" && i < 1000; g, i = parent[g], i+1 {
			path[g] = true
		}
		type cand struct {
			id    string
			score uint64
		}
		var cands []cand
		for _, s := range stores {
			if s.id == m.NodeID {
				continue
			}
			if len(s.groups) > 0 && !slices.ContainsFunc(s.groups, func(g string) bool { return path[g] }) {
				continue
			}
			h := fnv.New64a()
			h.Write([]byte(s.id + "|" + m.NodeID))
			cands = append(cands, cand{s.id, h.Sum64()})
		}
		slices.SortFunc(cands, func(x, y cand) int {
			if x.score != y.score {
				if x.score > y.score {
					return -1
				}
				return 1
			}
			return strings.Compare(x.id, y.id)
		})
		for i := 0; i < len(cands) && i < fanout; i++ {
			served[cands[i].id] = append(served[cands[i].id], m.NodeID)
		}
	}
	var out []snapshot.StorageAssignment
	for _, s := range stores {
		if ids := served[s.id]; len(ids) > 0 {
			out = append(out, snapshot.StorageAssignment{StorageNodeID: s.id, NodeIDs: ids})
		}
	}
	return out
}

// ---------------------------------------------------------------- rebuild

// RebuildResult says what one rebuild pass of a cluster signed.
type RebuildResult struct {
	ClusterID string            `json:"cluster_id"`
	Version   uint64            `json:"version"`
	Nodes     []string          `json:"nodes"`
	Checked   int               `json:"checked"`
	Failed    map[string]string `json:"failed,omitempty"`
}

// rebuild signs and stores the snapshots of the cluster's nodes whose content
// changed (all of them with force). Leader only; the store is fenced.
func (a *Authority) rebuild(ctx context.Context, clusterID string, force bool) (RebuildResult, error) {
	st := a.snaps()
	st.buildMu.Lock()
	defer st.buildMu.Unlock()
	epoch, err := a.ensureLeader()
	if err != nil {
		return RebuildResult{}, err
	}
	opts := a.snapOpts()
	state, err := a.loadState(ctx, clusterID)
	if err != nil {
		return RebuildResult{}, asError(err)
	}
	if state.Cluster.GossipKeys, err = a.clusterGossipKeys(ctx, state.Cluster.ID); err != nil {
		return RebuildResult{}, err
	}
	idx, err := snapshot.NewIndex(state, opts.Builder)
	if err != nil {
		return RebuildResult{}, &Error{Code: CodeInternal, Message: "the cluster's configuration cannot be built into snapshots", Err: err}
	}
	key, _, kid, err := a.clusterSigner(state.Cluster.ID)
	if err != nil {
		return RebuildResult{}, err
	}
	heads, err := store.SnapshotHeads(ctx, a.db.Pool, state.Cluster.ID)
	if err != nil {
		return RebuildResult{}, asError(err)
	}
	now := a.cfg.Clock()
	var top uint64
	for _, h := range heads {
		top = max(top, h.Version)
	}
	ids := idx.Nodes()
	res := RebuildResult{ClusterID: state.Cluster.ID, Version: top + 1, Checked: len(ids)}
	bopts := snapshot.BuildOptions{Version: top + 1, Epoch: epoch, IssuedAt: now, TTL: opts.TTL}
	type built struct {
		stored store.StoredSnapshot
		skip   bool
		err    error
	}
	out := make([]built, len(ids))
	parallel(len(ids), func(i int) {
		id := ids[i]
		d, err := idx.Digest(id)
		if err != nil {
			out[i].err = err
			return
		}
		h, ok := heads[id]
		if !force && ok && bytes.Equal(h.Digest, d[:]) && h.KeyID == kid && h.ExpiresAt.Sub(now) > opts.TTL/2 {
			out[i].skip = true
			return
		}
		s, err := idx.Build(id, bopts)
		if err != nil {
			out[i].err = err
			return
		}
		signed, err := snapshot.Sign(s, key, opts.Builder.MaxSize)
		if err != nil {
			out[i].err = err
			return
		}
		wire, err := signed.MarshalBinary()
		if err != nil {
			out[i].err = err
			return
		}
		out[i].stored = store.StoredSnapshot{ClusterID: s.ClusterID, NodeID: id, Version: s.Version, Epoch: s.Epoch, KeyID: signed.KeyID,
			Scope: strings.Join(s.Scope, ","), Digest: d[:], Signed: wire, IssuedAt: s.IssuedAt, ExpiresAt: s.ExpiresAt}
	})
	var batch []store.StoredSnapshot
	for i, b := range out {
		switch {
		case b.err != nil:
			if res.Failed == nil {
				res.Failed = map[string]string{}
			}
			res.Failed[ids[i]] = b.err.Error()
			a.log.Error("snapshot build failed", "cluster_id", state.Cluster.ID, "node_id", ids[i], "error", b.err)
		case !b.skip:
			batch = append(batch, b.stored)
			res.Nodes = append(res.Nodes, ids[i])
		}
	}
	if len(batch) == 0 {
		res.Version = 0
		return res, nil
	}
	_, err = Fenced(ctx, a, Op{Action: "snapshot.publish", Actor: Actor{ID: "system", Kind: "system"}, ClusterID: state.Cluster.ID, TargetKind: "cluster",
		TargetID: state.Cluster.ID, Details: map[string]any{"version": res.Version, "nodes": len(batch), "key_id": kid}},
		func(tx pgx.Tx) (bool, error) { return true, store.SaveSnapshots(ctx, tx, state.Cluster.ID, batch) })
	if err != nil {
		return RebuildResult{}, err
	}
	return res, nil
}

func parallel(n int, f func(i int)) {
	workers := min(runtime.GOMAXPROCS(0), n)
	var wg sync.WaitGroup
	next := make(chan int)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				f(i)
			}
		}()
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
}

// rebuildMarked rebuilds a cluster and clears its dirty mark if nothing marked
// it again meanwhile.
func (a *Authority) rebuildMarked(ctx context.Context, clusterID string) (RebuildResult, error) {
	var mark *store.DirtyCluster
	ds, err := store.DirtyClusters(ctx, a.db.Pool)
	if err != nil {
		return RebuildResult{}, asError(err)
	}
	for i := range ds {
		if ds[i].ClusterID == clusterID {
			mark = &ds[i]
		}
	}
	res, err := a.rebuild(ctx, clusterID, false)
	if err != nil {
		return res, err
	}
	if mark != nil && len(res.Failed) == 0 {
		if err := store.ClearDirty(ctx, a.db.Pool, *mark); err != nil {
			a.log.Warn("could not clear a snapshot dirty mark", "cluster_id", clusterID, "error", err)
		}
	}
	return res, nil
}

// afterChange is called by the mutations of this package after their fenced
// transaction committed: it rebuilds the cluster's affected snapshots
// synchronously. A failure leaves the dirty mark for the rebuild loop.
func (a *Authority) afterChange(ctx context.Context, clusterID string) {
	if _, err := a.rebuildMarked(ctx, clusterID); err != nil {
		a.log.Warn("snapshot rebuild after a change failed; the rebuild loop retries", "cluster_id", clusterID, "error", err)
	}
	a.snaps().kickLoop()
}

// RebuildSnapshots rebuilds a cluster's snapshots now (leader only, fenced);
// force re-signs every node even when unchanged.
func (a *Authority) RebuildSnapshots(ctx context.Context, actor Actor, cluster string, force bool) (RebuildResult, error) {
	c, err := a.GetCluster(ctx, cluster)
	if err != nil {
		return RebuildResult{}, err
	}
	if _, err := a.ensureLeader(); err != nil {
		return RebuildResult{}, err
	}
	if err := a.verifyQuorum(ctx); err != nil {
		return RebuildResult{}, err
	}
	res, err := a.rebuild(ctx, c.ID, force)
	if err != nil {
		return res, err
	}
	_ = a.Audit(ctx, Op{Action: "snapshot.rebuild", Actor: actor, ClusterID: c.ID, TargetKind: "cluster", TargetID: c.ID,
		Details: map[string]any{"force": force, "nodes": len(res.Nodes), "version": res.Version}}, "ok")
	return res, nil
}

// RunSnapshots runs until stop is closed, on every authority: a LISTEN
// connection that wakes long polls when a snapshot is stored (by any
// authority) and, while this authority leads with a claimed fence, the
// rebuild loop over dirty clusters (woken by NOTIFY, polling every
// DirtyPoll), with a full pass after taking leadership and every FullPass.
func (a *Authority) RunSnapshots(stop <-chan struct{}) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-stop:
		case <-ctx.Done():
		}
		cancel()
	}()
	st := a.snaps()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		a.listen(ctx)
	}()
	defer wg.Wait()
	opts := a.snapOpts()
	tick := time.NewTicker(opts.DirtyPoll)
	defer tick.Stop()
	var lastEpoch uint64
	var lastFull time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-st.kick:
		}
		e := a.epoch.Load()
		if e == 0 || !a.raft.IsLeader() {
			lastEpoch = 0
			continue
		}
		if e != lastEpoch || time.Since(lastFull) > opts.FullPass {
			if a.fullPass(ctx) {
				lastEpoch, lastFull = e, time.Now()
			}
		}
		ds, err := store.DirtyClusters(ctx, a.db.Pool)
		if err != nil {
			continue
		}
		for _, d := range ds {
			if _, err := a.rebuildMarked(ctx, d.ClusterID); err != nil && ctx.Err() == nil {
				a.log.Warn("snapshot rebuild failed", "cluster_id", d.ClusterID, "reason", d.Reason, "error", err)
			}
		}
	}
}

func (a *Authority) fullPass(ctx context.Context) bool {
	ok := true
	for off := 0; ; off += 500 {
		cs, err := store.ListClusters(ctx, a.db.Pool, store.Page{Limit: 500, Offset: off})
		if err != nil {
			return false
		}
		for _, c := range cs {
			if _, err := a.rebuild(ctx, c.ID, false); err != nil {
				ok = false
				a.log.Warn("snapshot full pass failed for a cluster", "cluster_id", c.ID, "error", err)
			}
		}
		if len(cs) < 500 {
			return ok
		}
	}
}

// listen holds a LISTEN connection for 'rap_snapshot' (wake long polls) and
// 'rap_snapshot_dirty' (wake the rebuild loop), reconnecting with backoff.
func (a *Authority) listen(ctx context.Context) {
	st := a.snaps()
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := func() error {
			pc, err := a.db.Pool.Acquire(ctx)
			if err != nil {
				return err
			}
			conn := pc.Hijack()
			defer conn.Close(context.WithoutCancel(ctx))
			if _, err := conn.Exec(ctx, `LISTEN rap_snapshot; LISTEN rap_snapshot_dirty`); err != nil {
				return err
			}
			st.listening.Store(true)
			defer st.listening.Store(false)
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
func (a *Authority) WaitSnapshot(ctx context.Context, node NodePrincipal, after uint64, wait time.Duration) (store.StoredSnapshot, bool, error) {
	st := a.snaps()
	opts := a.snapOpts()
	if wait <= 0 || wait > opts.MaxLongPoll {
		wait = opts.MaxLongPoll
	}
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	key := node.ClusterID + "/" + node.NodeID
	for {
		ch := st.waitChan(key)
		s, err := store.LatestSnapshot(ctx, a.db.Pool, node.ClusterID, node.NodeID)
		switch {
		case err == nil && s.Version > after:
			return s, true, nil
		case err != nil && !errors.Is(err, store.ErrNotFound):
			return store.StoredSnapshot{}, false, asError(err)
		}
		poll := 500 * time.Millisecond
		if st.listening.Load() {
			poll = 5 * time.Second
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

// CAKeyView is a cluster CA public key for snapshot verification.
type CAKeyView struct {
	KeyID     string    `json:"key_id"`
	PublicKey []byte    `json:"public_key"`
	Status    string    `json:"status"`
	CreatedAt time.Time `json:"created_at"`
}

// TrustedCA is the body of GET /v1/agent/ca: the keys an agent trusts for
// snapshots of its cluster (Keys: the current CA key) and the rotated-out
// ones it must no longer trust (Rotated), with the CA certificate.
type TrustedCA struct {
	ClusterID string      `json:"cluster_id"`
	Keys      []CAKeyView `json:"keys"`
	Rotated   []CAKeyView `json:"rotated,omitempty"`
	CACert    []byte      `json:"ca_certificate"`
}

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
	t := TrustedCA{ClusterID: clusterID, Keys: []CAKeyView{view(ca.Current)}, CACert: ca.Current.CertDER}
	for _, k := range ca.History {
		t.Rotated = append(t.Rotated, view(k))
	}
	return t, nil
}

// StorageSnapshots returns the newest signed snapshots a config-storage node
// caches and serves: those of the nodes listed in its own snapshot's
// cache_nodes. The node must hold an active config-storage role.
func (a *Authority) StorageSnapshots(ctx context.Context, node NodePrincipal) ([]store.StoredSnapshot, error) {
	roles, err := store.ListRoleAssignments(ctx, a.db.Pool, node.ClusterID, node.NodeID, store.Page{Limit: 500})
	if err != nil {
		return nil, asError(err)
	}
	if !slices.ContainsFunc(roles, func(r store.RoleAssignment) bool {
		return r.Role == string(domain.RoleConfigStorage) && r.Status == "active"
	}) {
		return nil, Errf(CodeForbidden, "this node holds no active config-storage role in this cluster")
	}
	own, err := store.LatestSnapshot(ctx, a.db.Pool, node.ClusterID, node.NodeID)
	if errors.Is(err, store.ErrNotFound) {
		return []store.StoredSnapshot{}, nil
	}
	if err != nil {
		return nil, asError(err)
	}
	signed, err := snapshot.Decode(bytes.NewReader(own.Signed), snapshot.DefaultMaxSize)
	if err != nil {
		return nil, &Error{Code: CodeInternal, Message: "stored snapshot does not decode", Err: err}
	}
	s, err := snapshot.DecodeSnapshot(signed.Payload)
	if err != nil {
		return nil, &Error{Code: CodeInternal, Message: "stored snapshot does not decode", Err: err}
	}
	if len(s.Body.CacheNodes) == 0 {
		return []store.StoredSnapshot{}, nil
	}
	out, err := store.LatestSnapshots(ctx, a.db.Pool, node.ClusterID, s.Body.CacheNodes)
	return out, asErrorOrNil(err)
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

// ---------------------------------------------------------------- documents

// MaxDocumentBytes bounds policy and config documents.
const MaxDocumentBytes = 64 << 10

// checkDocument validates a JSON object that will be embedded in snapshots
// with the builder's own rules (valid JSON, no credential-like keys), so that
// a bad document is refused at the API instead of breaking a cluster's
// rebuild. It returns the document ("{}" when empty).
func checkDocument(what string, doc json.RawMessage, wantArray bool) (json.RawMessage, error) {
	doc = bytes.TrimSpace(doc)
	if len(doc) == 0 || string(doc) == "null" {
		if wantArray {
			return json.RawMessage(`[]`), nil
		}
		return json.RawMessage(`{}`), nil
	}
	if len(doc) > MaxDocumentBytes {
		return nil, Errf(CodeTooLarge, "%s must be at most %d bytes", what, MaxDocumentBytes)
	}
	open := byte('{')
	if wantArray {
		open = '['
	}
	if doc[0] != open || !json.Valid(doc) {
		kind := "a JSON object"
		if wantArray {
			kind = "a JSON array"
		}
		return nil, Errf(CodeInvalid, "%s must be %s", what, kind)
	}
	probe := &snapshot.State{Cluster: snapshot.Cluster{ID: "probe"}, Nodes: []snapshot.Node{{ID: "probe",
		Memberships: []snapshot.NodeMembership{{ClusterID: "probe", Status: domain.MembershipActive}}}}}
	if wantArray {
		var entries []struct {
			OrganizationID string          `json:"organization_id"`
			Policy         json.RawMessage `json:"policy"`
		}
		dec := json.NewDecoder(bytes.NewReader(doc))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&entries); err != nil {
			return nil, Errf(CodeInvalid, "%s must be a list of {organization_id, policy}: %v", what, err)
		}
		for _, e := range entries {
			probe.EntryPolicies = append(probe.EntryPolicies, snapshot.EntryPolicy{OrganizationID: e.OrganizationID, Policy: e.Policy})
		}
	} else {
		probe.RoutePolicy = doc
	}
	if _, err := snapshot.NewIndex(probe, snapshot.DefaultConfig()); err != nil {
		msg := strings.TrimPrefix(err.Error(), snapshot.ErrInvalidState.Error()+": ")
		return nil, Errf(CodeInvalid, "%s: %s", what, strings.ReplaceAll(msg, "route policy", what))
	}
	return doc, nil
}

// ---------------------------------------------------------------- telemetry and cluster policy

// TelemetryFlagRequest sets a test telemetry flag. Scope "cluster" needs
// Cluster; "node" needs Cluster and Node; "organization" needs Organization
// (and optionally Cluster to limit it to one cluster).
type TelemetryFlagRequest struct {
	Scope        string `json:"scope"`
	Cluster      string `json:"cluster,omitempty"`
	Node         string `json:"node,omitempty"`
	Organization string `json:"organization,omitempty"`
	Name         string `json:"name"`
	Enabled      bool   `json:"enabled"`
}

// SetTelemetryFlag creates or changes a test telemetry flag (fenced, audited);
// the affected snapshots are rebuilt.
func (a *Authority) SetTelemetryFlag(ctx context.Context, actor Actor, req TelemetryFlagRequest, idemKey string) (store.TelemetryFlag, error) {
	f := store.TelemetryFlag{ID: store.NewID(), Scope: req.Scope, Name: strings.TrimSpace(req.Name), Enabled: req.Enabled, UpdatedBy: actor.ID}
	var clusterID string
	if req.Cluster != "" {
		c, err := a.GetCluster(ctx, req.Cluster)
		if err != nil {
			return store.TelemetryFlag{}, err
		}
		clusterID = c.ID
		f.ClusterID = &clusterID
	}
	switch req.Scope {
	case "cluster":
		if clusterID == "" || req.Node != "" || req.Organization != "" {
			return store.TelemetryFlag{}, Errf(CodeInvalid, "a cluster flag needs cluster and no node or organization")
		}
	case "node":
		if clusterID == "" || req.Node == "" || req.Organization != "" {
			return store.TelemetryFlag{}, Errf(CodeInvalid, "a node flag needs cluster and node")
		}
		if _, err := store.GetMembership(ctx, a.db.Pool, clusterID, req.Node); err != nil {
			return store.TelemetryFlag{}, Errf(CodeNotFound, "node %s is not a member of this cluster", req.Node)
		}
		n := req.Node
		f.NodeID = &n
	case "organization":
		if req.Organization == "" || req.Node != "" {
			return store.TelemetryFlag{}, Errf(CodeInvalid, "an organization flag needs organization (and optionally cluster)")
		}
		o, err := store.GetOrganization(ctx, a.db.Pool, req.Organization)
		if err != nil {
			return store.TelemetryFlag{}, Errf(CodeNotFound, "no organization %q", req.Organization)
		}
		f.OrganizationID = &o.ID
	default:
		return store.TelemetryFlag{}, Errf(CodeInvalid, "scope must be cluster, node or organization")
	}
	out, err := Fenced(ctx, a, Op{Action: "telemetry_flag.set", Actor: actor, ClusterID: clusterID, TargetKind: "telemetry_flag", TargetID: f.Name,
		IdempotencyKey: idemKey, Details: map[string]any{"scope": req.Scope, "node": req.Node, "organization": req.Organization, "enabled": req.Enabled}},
		func(tx pgx.Tx) (store.TelemetryFlag, error) { return store.UpsertTelemetryFlag(ctx, tx, f) })
	if err != nil {
		return out, err
	}
	a.afterFlag(ctx, out)
	return out, nil
}

func (a *Authority) afterFlag(ctx context.Context, f store.TelemetryFlag) {
	if f.ClusterID != nil {
		a.afterChange(ctx, *f.ClusterID)
		return
	}
	a.snaps().kickLoop() // every cluster: the loop rebuilds them
}

// DeleteTelemetryFlag removes a flag (fenced, audited).
func (a *Authority) DeleteTelemetryFlag(ctx context.Context, actor Actor, id, idemKey string) (store.TelemetryFlag, error) {
	cur, err := store.GetTelemetryFlag(ctx, a.db.Pool, id)
	if err != nil {
		return store.TelemetryFlag{}, asError(err)
	}
	cid := ""
	if cur.ClusterID != nil {
		cid = *cur.ClusterID
	}
	out, err := Fenced(ctx, a, Op{Action: "telemetry_flag.delete", Actor: actor, ClusterID: cid, TargetKind: "telemetry_flag", TargetID: id, IdempotencyKey: idemKey},
		func(tx pgx.Tx) (store.TelemetryFlag, error) { return store.DeleteTelemetryFlag(ctx, tx, id) })
	if err != nil {
		return out, err
	}
	a.afterFlag(ctx, out)
	return out, nil
}

// ListTelemetryFlags lists the flags that apply in a cluster ("" for all).
func (a *Authority) ListTelemetryFlags(ctx context.Context, cluster string) ([]store.TelemetryFlag, error) {
	id := ""
	if cluster != "" {
		c, err := a.GetCluster(ctx, cluster)
		if err != nil {
			return nil, err
		}
		id = c.ID
	}
	out, err := store.ListTelemetryFlags(ctx, a.db.Pool, id)
	return out, asErrorOrNil(err)
}

// ClusterPolicyRequest replaces a cluster's route, QoS and entry policies.
type ClusterPolicyRequest struct {
	RoutePolicy   json.RawMessage `json:"route_policy,omitempty"`
	QoSPolicy     json.RawMessage `json:"qos_policy,omitempty"`
	EntryPolicies json.RawMessage `json:"entry_policies,omitempty"`
}

// SetClusterPolicy replaces a cluster's policies (fenced, audited); mesh and
// entry nodes' snapshots are rebuilt.
func (a *Authority) SetClusterPolicy(ctx context.Context, actor Actor, cluster string, req ClusterPolicyRequest, idemKey string) (store.ClusterPolicy, error) {
	c, err := a.GetCluster(ctx, cluster)
	if err != nil {
		return store.ClusterPolicy{}, err
	}
	p := store.ClusterPolicy{ClusterID: c.ID, UpdatedBy: actor.ID}
	if p.RoutePolicy, err = checkDocument("route_policy", req.RoutePolicy, false); err != nil {
		return p, err
	}
	if p.QoSPolicy, err = checkDocument("qos_policy", req.QoSPolicy, false); err != nil {
		return p, err
	}
	if p.EntryPolicies, err = checkDocument("entry_policies", req.EntryPolicies, true); err != nil {
		return p, err
	}
	out, err := Fenced(ctx, a, Op{Action: "cluster.policy.set", Actor: actor, ClusterID: c.ID, TargetKind: "cluster", TargetID: c.ID, IdempotencyKey: idemKey},
		func(tx pgx.Tx) (store.ClusterPolicy, error) { return store.SetClusterPolicy(ctx, tx, p) })
	if err != nil {
		return out, err
	}
	a.afterChange(ctx, c.ID)
	return out, nil
}

// GetClusterPolicy returns a cluster's policies.
func (a *Authority) GetClusterPolicy(ctx context.Context, cluster string) (store.ClusterPolicy, error) {
	c, err := a.GetCluster(ctx, cluster)
	if err != nil {
		return store.ClusterPolicy{}, err
	}
	p, err := store.GetClusterPolicy(ctx, a.db.Pool, c.ID)
	return p, asErrorOrNil(err)
}
