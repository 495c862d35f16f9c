package authority

// Channel assignments (spec stage C19: "PostgreSQL is authoritative for …
// channel assignment"): which release channel (stable, current, candidate)
// a cluster, a node group or a node follows, per product. Writes are
// fenced, audited and need step-up with a session (update.policy); they
// mark the cluster's snapshots dirty, because the assignment decides
// desired versions (desiredFromChannels).
//
// Precedence of a node's desired version for a product:
//  1. an open rollout (running, paused, halted, pinned) or a rollback of
//     the product in the cluster, where it names a version for the node;
//  2. otherwise the most specific channel assignment — the node's own, then
//     its group's, then the parent groups' up the tree, then the cluster's —
//     naming the head release of that channel, when the channel has a head
//     and the head is not blocklisted;
//  3. otherwise the target of the product's last completed rollout.
// A channel never allows a downgrade: only a signed pin or rollback does.

import (
	"context"
	"errors"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/rap-fabric/core/release"
	"github.com/rap-fabric/core/rollout"
	"github.com/rap-fabric/core/snapshot"
	"github.com/rap-fabric/core/store"
)

// Channel assignment scopes.
const (
	ScopeCluster = "cluster"
	ScopeGroup   = "group"
	ScopeNode    = "node"
)

// ChannelAssignmentRequest is the body of PUT (set) and DELETE (unset)
// /v1/clusters/{cluster}/release-channels. ScopeID is the group or node id;
// for the cluster scope it may be empty (the cluster itself). Channel is
// ignored by unset.
type ChannelAssignmentRequest struct {
	ScopeKind string `json:"scope_kind"`
	ScopeID   string `json:"scope_id,omitempty"`
	Product   string `json:"product"`
	Channel   string `json:"channel,omitempty"`
	Reason    string `json:"reason,omitempty"`
}

// ChannelAssignment is one assignment (the store row).
type ChannelAssignment = store.ChannelAssignment

// checkScope validates a request's scope in cluster c and returns the
// normalized scope id.
func (s *Rollouts) checkScope(ctx context.Context, c ClusterView, req *ChannelAssignmentRequest) error {
	req.Reason = strings.TrimSpace(req.Reason)
	if len(req.Reason) > 500 {
		return Errf(CodeInvalid, "reason is at most 500 characters")
	}
	if !release.ValidProduct(req.Product) {
		return Errf(CodeInvalid, "product must be rap-node-agent or a service type")
	}
	switch req.ScopeKind {
	case ScopeCluster:
		if req.ScopeID != "" && req.ScopeID != c.ID && req.ScopeID != c.Slug {
			return Errf(CodeInvalid, "scope_id of a cluster assignment is the cluster itself (or empty)")
		}
		req.ScopeID = c.ID
	case ScopeGroup, ScopeNode:
		if req.ScopeID == "" || len(req.ScopeID) > 64 {
			return Errf(CodeInvalid, "scope_id must be a %s id", req.ScopeKind)
		}
		var ok bool
		var err error
		if req.ScopeKind == ScopeGroup {
			ok, err = store.NodeGroupInCluster(ctx, s.a.db.Pool, c.ID, req.ScopeID)
		} else {
			ok, err = store.MemberInCluster(ctx, s.a.db.Pool, c.ID, req.ScopeID)
		}
		if err != nil {
			return asError(err)
		}
		if !ok {
			return Errf(CodeNotFound, "no %s %s in cluster %s", req.ScopeKind, req.ScopeID, c.Slug)
		}
	default:
		return Errf(CodeInvalid, "scope_kind must be cluster, group or node")
	}
	return nil
}

// SetChannelAssignment makes a scope follow a channel for a product
// (fenced, audited; step-up with a session). Setting the same channel
// again is a no-op write that is still audited.
func (s *Rollouts) SetChannelAssignment(ctx context.Context, actor Actor, clusterRef string, req ChannelAssignmentRequest, idemKey string) (ChannelAssignment, error) {
	c, err := s.a.GetCluster(ctx, clusterRef)
	if err != nil {
		return ChannelAssignment{}, err
	}
	if !release.Channel(req.Channel).Valid() {
		return ChannelAssignment{}, Errf(CodeInvalid, "channel must be stable, current or candidate")
	}
	if err := s.checkScope(ctx, c, &req); err != nil {
		return ChannelAssignment{}, err
	}
	op := Op{Action: "release.channel.set", Actor: actor, ClusterID: c.ID, TargetKind: "release_channel_assignment",
		TargetID: req.ScopeKind + ":" + req.ScopeID + ":" + req.Product, IdempotencyKey: idemKey,
		Details: map[string]any{"scope_kind": req.ScopeKind, "scope_id": req.ScopeID, "product": req.Product, "channel": req.Channel, "reason": req.Reason}}
	out, err := Fenced(ctx, s.a, op, func(tx pgx.Tx) (ChannelAssignment, error) {
		return store.UpsertChannelAssignment(ctx, tx, store.ChannelAssignment{ClusterID: c.ID, ScopeKind: req.ScopeKind, ScopeID: req.ScopeID,
			Product: req.Product, Channel: req.Channel, SetBy: actor.ID})
	})
	if err != nil {
		return ChannelAssignment{}, err
	}
	s.log.Info("release channel assigned", "cluster_id", c.ID, "scope", req.ScopeKind, "scope_id", req.ScopeID, "product", req.Product, "channel", req.Channel, "actor", actor.ID)
	return out, nil
}

// UnsetChannelAssignment removes a scope's assignment (fenced, audited;
// step-up with a session); not_found when there is none.
func (s *Rollouts) UnsetChannelAssignment(ctx context.Context, actor Actor, clusterRef string, req ChannelAssignmentRequest, idemKey string) (ChannelAssignment, error) {
	c, err := s.a.GetCluster(ctx, clusterRef)
	if err != nil {
		return ChannelAssignment{}, err
	}
	if err := s.checkScope(ctx, c, &req); err != nil {
		return ChannelAssignment{}, err
	}
	op := Op{Action: "release.channel.unset", Actor: actor, ClusterID: c.ID, TargetKind: "release_channel_assignment",
		TargetID: req.ScopeKind + ":" + req.ScopeID + ":" + req.Product, IdempotencyKey: idemKey,
		Details: map[string]any{"scope_kind": req.ScopeKind, "scope_id": req.ScopeID, "product": req.Product, "reason": req.Reason}}
	out, err := Fenced(ctx, s.a, op, func(tx pgx.Tx) (ChannelAssignment, error) {
		x, err := store.DeleteChannelAssignment(ctx, tx, c.ID, req.ScopeKind, req.ScopeID, req.Product)
		if errors.Is(err, store.ErrNotFound) {
			return x, Errf(CodeNotFound, "no %s channel assignment of %s for %s", req.Product, req.ScopeKind, req.ScopeID)
		}
		return x, err
	})
	if err != nil {
		return ChannelAssignment{}, err
	}
	s.log.Info("release channel assignment removed", "cluster_id", c.ID, "scope", req.ScopeKind, "scope_id", req.ScopeID, "product", req.Product, "actor", actor.ID)
	return out, nil
}

// ListChannelAssignments lists a cluster's channel assignments.
func (s *Rollouts) ListChannelAssignments(ctx context.Context, clusterRef string) ([]ChannelAssignment, error) {
	c, err := s.a.GetCluster(ctx, clusterRef)
	if err != nil {
		return nil, err
	}
	out, err := store.ListChannelAssignments(ctx, s.a.db.Pool, c.ID)
	return out, asErrorOrNil(err)
}

// ChannelHeads lists every product's channel heads.
func (r *Releases) ChannelHeads(ctx context.Context) ([]store.ReleaseChannel, error) {
	out, err := store.ListChannelHeads(ctx, r.a.db.Pool)
	return out, asErrorOrNil(err)
}

// openRollout reports whether a rollout state still steers its cluster
// (it takes precedence over channel assignments).
func openRollout(state string) bool {
	switch rollout.State(state) {
	case rollout.StateRunning, rollout.StatePaused, rollout.StateHalted, rollout.StatePinned, rollout.StateRolledBack:
		return true
	}
	return false
}

// channelFor resolves a node's channel for a product: the node's own
// assignment, its group's, the parent groups' (bounded walk), the
// cluster's; "" without any.
func channelFor(node string, byScope map[[2]string]string, groups, parents map[string]string) string {
	if ch, ok := byScope[[2]string{ScopeNode, node}]; ok {
		return ch
	}
	g := groups[node]
	for i := 0; g != "" && i < 64; i++ {
		if ch, ok := byScope[[2]string{ScopeGroup, g}]; ok {
			return ch
		}
		g = parents[g]
	}
	return byScope[[2]string{ScopeCluster, ""}]
}

// desiredFromChannels fills in, for each product with channel assignments
// in the cluster, the desired version of members that no open rollout
// steers (precedence in the file comment). fromRollout holds the
// product@node pairs an open rollout decided; completed holds the pairs a
// completed rollout decided, which an assignment replaces.
func (a *Authority) desiredFromChannels(ctx context.Context, clusterID string, members []string, u *snapshot.UpdateState,
	fromOpen map[string]bool, fromCompleted map[string]bool) error {
	as, err := store.ListChannelAssignments(ctx, a.db.Pool, clusterID)
	if err != nil || len(as) == 0 {
		return err
	}
	groups, err := store.MemberGroups(ctx, a.db.Pool, clusterID)
	if err != nil {
		return err
	}
	parents, err := store.GroupParents(ctx, a.db.Pool, clusterID)
	if err != nil {
		return err
	}
	byProduct := map[string]map[[2]string]string{}
	for _, x := range as {
		m := byProduct[x.Product]
		if m == nil {
			m = map[[2]string]string{}
			byProduct[x.Product] = m
		}
		id := x.ScopeID
		if x.ScopeKind == ScopeCluster {
			id = ""
		}
		m[[2]string{x.ScopeKind, id}] = x.Channel
	}
	heads := map[string]*store.Release{} // product/channel → head (nil: none usable)
	head := func(product, ch string) (*store.Release, error) {
		k := product + "/" + ch
		if h, ok := heads[k]; ok {
			return h, nil
		}
		heads[k] = nil
		hc, err := store.GetChannelHead(ctx, a.db.Pool, product, ch)
		if errors.Is(err, store.ErrNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		rel, err := store.GetRelease(ctx, a.db.Pool, hc.ReleaseID)
		if err != nil {
			return nil, err
		}
		if rel.Status != "published" || !rel.Available {
			return nil, nil
		}
		heads[k] = &rel
		return &rel, nil
	}
	for product, byScope := range byProduct {
		for _, n := range members {
			key := product + "@" + n
			if fromOpen[key] {
				continue
			}
			ch := channelFor(n, byScope, groups, parents)
			if ch == "" {
				continue
			}
			rel, err := head(product, ch)
			if err != nil {
				return err
			}
			if rel == nil {
				continue
			}
			d := snapshot.DesiredVersion{Product: product, Version: rel.Version, ManifestDigest: rel.Digest, Wave: -1,
				DeadlineSeconds: int(rollout.DefaultPolicy().Deadline.Seconds())}
			if fromCompleted[key] {
				for i := range u.Desired[n] {
					if u.Desired[n][i].Product == product {
						u.Desired[n][i] = d
					}
				}
				continue
			}
			u.Desired[n] = append(u.Desired[n], d)
		}
	}
	return nil
}
