package authority

// Signed need-to-know snapshots on the authority side: building
// snapshot.State from PostgreSQL, deciding which nodes changed, signing with
// the cluster CA key from the FSM and storing under the fence (this file);
// serving them to agents by long poll (snapshot_distribute.go) and to
// config-storage nodes (snapshot_storage.go); the owner documents they carry
// (snapshot_inputs.go).
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
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rap-fabric/core/domain"
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
	// CommitPart is how many nodes one rebuild builds, signs and stores per
	// fenced transaction; 0 means 2,000. A cluster-wide change of a large
	// cluster is published in several transactions, each within the fenced
	// transaction's time bound (store.Options.FencedTimeout): in one, 50,000
	// snapshots (~250 MB of envelopes) never committed on a loaded machine
	// and the rebuild failed again on every retry. A part that fails leaves
	// the dirty mark; the next rebuild skips the parts already stored (their
	// digests match) and continues with the rest.
	CommitPart int
	// DirtyShare is the most of the leader's time the rebuild loop spends
	// rebuilding dirty clusters while marks keep coming (each rebuild reads
	// and digests every node of its cluster, so on a large cluster under an
	// enrollment wave back-to-back rebuilds would take a core from the
	// enrollments themselves); after a pass that took d the loop rests
	// d·(1/share − 1), at most 10 s. 0 means 0.5; 1 means back to back. A
	// mutation's own rebuild (afterChange) is never delayed.
	DirtyShare float64
	// ChangeWait bounds how long a mutation waits for its own rebuild
	// (afterChange) before it answers; 0 means 10 s. The rebuild goes on
	// after the answer (bounded by changeRebuildBound), and the rebuild
	// loop takes over what it leaves. On a small cluster the rebuild ends
	// in milliseconds and the answer follows it, as before; at 50,000 nodes
	// it publishes in 25 parts over about a minute, and the owner's edit
	// used to answer only after all of them (BenchmarkFleet: 92 s).
	ChangeWait time.Duration
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
	if o.DirtyShare == 0 {
		o.DirtyShare = 0.5
	}
	if o.CommitPart == 0 {
		o.CommitPart = 2000
	}
	if o.ChangeWait == 0 {
		o.ChangeWait = 10 * time.Second
	}
	return o
}

// changeRebuildBound bounds a change's own rebuild once the mutation stopped
// waiting for it (the request's deadline no longer applies).
const changeRebuildBound = 10 * time.Minute

// maxDirtyRest bounds the rebuild loop's rest after a dirty pass.
const maxDirtyRest = 10 * time.Second

// dirtyRest is how long the rebuild loop rests after a dirty pass that took
// took, so that passes take at most share of its time.
func dirtyRest(took time.Duration, share float64) time.Duration {
	if share >= 1 || took <= 0 {
		return 0
	}
	return min(time.Duration(float64(took)*(1/share-1)), maxDirtyRest)
}

// snapshotService is the snapshot machinery of one Authority (a field built
// by New): its options, the build lock, the long-poll waiters and the
// rebuild loop's wake-up channel.
type snapshotService struct {
	opts      SnapshotOptions
	buildMu   sync.Mutex
	mu        sync.Mutex
	waiters   map[string]chan struct{}
	kick      chan struct{}
	listening atomic.Bool
	// sealed caches sealed envelopes served to config-storage nodes
	// (snapshot_storage.go).
	sealed sealCache
	// readMu guards the long polls' queued reads (snapshot_reads.go).
	readMu    sync.Mutex
	readQueue []*pollRead
	readers   int
}

func newSnapshotService(o SnapshotOptions) *snapshotService {
	return &snapshotService{opts: o.withDefaults(), waiters: map[string]chan struct{}{}, kick: make(chan struct{}, 1)}
}

func (st *snapshotService) kickLoop() {
	select {
	case st.kick <- struct{}{}:
	default:
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
		ss := snapshot.ServiceState{ID: sv.ID, NodeID: sv.NodeID, Type: sv.ServiceType, Instance: sv.ServiceInstanceID, Role: domain.Role(sv.ServiceType),
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
	if s.RoutePolicy, err = resolveIntentNodes(s.RoutePolicy, s); err != nil {
		return nil, err
	}
	var entry []struct {
		OrganizationID string          `json:"organization_id"`
		Policy         json.RawMessage `json:"policy"`
	}
	_ = json.Unmarshal(pol.EntryPolicies, &entry)
	for _, e := range entry {
		s.EntryPolicies = append(s.EntryPolicies, snapshot.EntryPolicy{OrganizationID: e.OrganizationID, Policy: e.Policy})
	}
	s.StorageAssignments = storageAssignments(members, roles, groupOf, parent, a.snapshots.opts.StorageFanout)
	if err := loadOrgAccess(ctx, q, c.ID, s); err != nil {
		return nil, err
	}
	return s, nil
}

// identityKeys returns each member's Ed25519 identity public key, from the
// same identity SnapshotMembers picks (active first, then newest): peers
// verify gossip records against it.
func (a *Authority) identityKeys(ctx context.Context, clusterID string) (map[string][]byte, error) {
	rows, err := a.db.Pool.Query(ctx, `SELECT DISTINCT ON (node_id) node_id::text, public_key FROM node_identities
	      WHERE cluster_id = rap_uuid($1) ORDER BY node_id, (identity_status = 'active') DESC, created_at DESC`, clusterID)
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
	st := a.snapshots
	st.buildMu.Lock()
	defer st.buildMu.Unlock()
	defer a.metrics.observeSnapshotBuild(time.Now())
	epoch, err := a.ensureLeader()
	if err != nil {
		return RebuildResult{}, err
	}
	opts := a.snapshots.opts
	state, err := a.loadState(ctx, clusterID)
	if err != nil {
		return RebuildResult{}, asError(err)
	}
	if state.Cluster.GossipKeys, err = a.clusterGossipKeys(ctx, state.Cluster.ID); err != nil {
		return RebuildResult{}, err
	}
	state.Cluster.CARoots = a.caRoots(state.Cluster.ID)
	idx, err := snapshot.NewIndex(state, opts.Builder)
	if err != nil {
		return RebuildResult{}, &Error{Code: CodeInternal, Message: "the cluster's configuration cannot be built into snapshots", Err: err}
	}
	key, _, kid, err := a.publishingClusterSigner(state.Cluster.ID)
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
	unchanged := func(id string, d [32]byte) bool {
		h, ok := heads[id]
		return !force && ok && bytes.Equal(h.Digest, d[:]) && h.KeyID == kid && h.ExpiresAt.Sub(now) > opts.TTL/2
	}
	// In parts of CommitPart nodes: each is built, signed and stored in its
	// own fenced transaction (see SnapshotOptions.CommitPart).
	for lo := 0; lo < len(ids); lo += opts.CommitPart {
		part := ids[lo:min(len(ids), lo+opts.CommitPart)]
		var batch []store.StoredSnapshot
		for _, b := range idx.Rebuild(part, bopts, key, 0, unchanged) {
			switch {
			case b.Err != nil:
				if res.Failed == nil {
					res.Failed = map[string]string{}
				}
				res.Failed[b.NodeID] = b.Err.Error()
				a.log.Error("snapshot build failed", "cluster_id", state.Cluster.ID, "node_id", b.NodeID, "error", b.Err)
			case !b.Skipped:
				s := b.Header
				batch = append(batch, store.StoredSnapshot{ClusterID: s.ClusterID, NodeID: b.NodeID, Version: s.Version, Epoch: s.Epoch, KeyID: b.Signed.KeyID,
					Scope: strings.Join(s.Scope, ","), Digest: b.Digest[:], Signed: b.Wire, IssuedAt: s.IssuedAt, ExpiresAt: s.ExpiresAt})
			}
		}
		if len(batch) == 0 {
			continue
		}
		details := map[string]any{"version": res.Version, "nodes": len(batch), "key_id": kid}
		if len(ids) > opts.CommitPart {
			details["part"] = lo/opts.CommitPart + 1
			details["parts"] = (len(ids) + opts.CommitPart - 1) / opts.CommitPart
		}
		_, err = Fenced(ctx, a, Op{Action: "snapshot.publish", Actor: Actor{ID: "system", Kind: "system"}, ClusterID: state.Cluster.ID, TargetKind: "cluster",
			TargetID: state.Cluster.ID, Details: details},
			func(tx pgx.Tx) (bool, error) { return true, store.SaveSnapshots(ctx, tx, state.Cluster.ID, batch) })
		if err != nil {
			if len(res.Nodes) > 0 {
				a.log.Warn("snapshot rebuild stored some parts only; the rest is rebuilt again", "cluster_id", state.Cluster.ID,
					"stored", len(res.Nodes), "nodes", len(ids), "error", err)
			}
			return RebuildResult{}, err
		}
		for _, b := range batch {
			res.Nodes = append(res.Nodes, b.NodeID)
		}
	}
	if len(res.Nodes) == 0 {
		res.Version = 0
	}
	return res, nil
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
// transaction committed: it rebuilds the cluster's affected snapshots and
// waits for that up to SnapshotOptions.ChangeWait (or until ctx ends); the
// rebuild itself is not tied to the request and goes on after the wait. A
// failure leaves the dirty mark for the rebuild loop.
func (a *Authority) afterChange(ctx context.Context, clusterID string) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), changeRebuildBound)
		defer cancel()
		if _, err := a.rebuildMarked(rctx, clusterID); err != nil {
			a.log.Warn("snapshot rebuild after a change failed; the rebuild loop retries", "cluster_id", clusterID, "error", err)
		}
		a.snapshots.kickLoop()
	}()
	t := time.NewTimer(a.snapshots.opts.ChangeWait)
	defer t.Stop()
	select {
	case <-done:
	case <-ctx.Done():
	case <-t.C:
		a.metrics.changeWaitExceeded()
		a.log.Info("a change's snapshot rebuild takes longer than the change waits for it; it goes on after the answer",
			"cluster_id", clusterID, "change_wait", a.snapshots.opts.ChangeWait)
	}
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
	st := a.snapshots
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		a.listen(ctx)
	}()
	defer wg.Wait()
	opts := a.snapshots.opts
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
		e := a.fenceEpoch.Load()
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
		if err != nil || len(ds) == 0 {
			continue
		}
		began := time.Now()
		for _, d := range ds {
			if _, err := a.rebuildMarked(ctx, d.ClusterID); err != nil && ctx.Err() == nil {
				a.log.Warn("snapshot rebuild failed", "cluster_id", d.ClusterID, "reason", d.Reason, "error", err)
			}
		}
		// Marks that arrive meanwhile wait (the kick channel keeps one
		// wake-up) and are rebuilt together by the next pass.
		if rest := dirtyRest(time.Since(began), opts.DirtyShare); rest > 0 {
			a.metrics.observeDirtyRest(rest)
			select {
			case <-ctx.Done():
				return
			case <-time.After(rest):
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
