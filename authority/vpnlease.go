package authority

// VPN leases and agent assignments (see vpn.go for the rules): what a node
// may see, lease acquire / renew / release by agents, status reports, and the
// leader's stale-lease reclaimer.

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rap-fabric/core/agentapi"
	"github.com/rap-fabric/core/store"
	"github.com/rap-fabric/core/vpnrules"
)

// ---------------------------------------------------------------- agents: assignments and leases

// Agent wire types (the contract shared with the node agent lives in agentapi).
type (
	// VPNAssignment is what a node agent learns of a connection it may run.
	VPNAssignment = agentapi.VPNAssignment
	// VPNAssignedPath is a route policy as an agent sees it.
	VPNAssignedPath = agentapi.VPNAssignedPath
	// VPNLeaseGrant is a lease as its holder sees it.
	VPNLeaseGrant = agentapi.VPNLeaseGrant
	// LeaseRequest names the lease generation an agent holds.
	LeaseRequest = agentapi.VPNLeaseRequest
	// VPNStatusRequest is an agent's status report about one assignment.
	VPNStatusRequest = agentapi.VPNStatusRequest
)

func grantOf(l store.VPNLease, ttl int) VPNLeaseGrant {
	return VPNLeaseGrant{ConnectionID: l.ConnectionID, Generation: l.Generation, Epoch: l.Epoch, AcquiredAt: l.AcquiredAt, RenewedAt: l.RenewedAt,
		ExpiresAt: l.ExpiresAt, TTLSeconds: ttl}
}

// Assignments lists the VPN assignments a node may see: connections of its
// own cluster it is an eligible candidate for, or whose lease it holds.
func (v *VPN) Assignments(ctx context.Context, n NodePrincipal) ([]VPNAssignment, error) {
	cs, err := store.VisibleVPNConnections(ctx, v.a.db.Pool, n.ClusterID, n.NodeID)
	if err != nil {
		return nil, asError(err)
	}
	out := make([]VPNAssignment, 0, len(cs))
	now := v.a.Now()
	for _, c := range cs {
		as := VPNAssignment{ConnectionID: c.ID, Name: c.Name, DesiredState: c.DesiredState, AddressFamily: c.AddressFamily,
			ClientPrefixes: c.ClientPrefixes, RemotePrefixes: c.RemotePrefixes, DNSServers: c.DNSServers, MTU: c.MTU,
			HasCredentialRef: c.CredentialRef != "", LeaseTTLSeconds: c.LeaseTTLSeconds, RoutePolicies: []VPNAssignedPath{}}
		ps, err := store.ListVPNRoutePolicies(ctx, v.a.db.Pool, c.ID)
		if err != nil {
			return nil, asError(err)
		}
		for _, p := range ps {
			as.RoutePolicies = append(as.RoutePolicies, VPNAssignedPath{Name: p.Name, Prefixes: p.Prefixes, Priority: p.Priority, Masquerade: p.Masquerade})
		}
		exitRole, err := store.VPNNodeHasExitRole(ctx, v.a.db.Pool, c.ID, n.NodeID)
		if err != nil {
			return nil, asError(err)
		}
		as.Role = agentapi.VPNRoleConnector
		if exitRole {
			// Exit candidates learn the connectors they must accept flows
			// from; connectors learn only the current exit (need-to-know).
			as.Role = agentapi.VPNRoleExit
			if as.ConnectorNodeIDs, err = store.VPNConnectorNodes(ctx, v.a.db.Pool, c.ID); err != nil {
				return nil, asError(err)
			}
		}
		el, err := store.VPNNodeEligibility(ctx, v.a.db.Pool, c, n.NodeID)
		if err != nil {
			return nil, asError(err)
		}
		as.Eligible = el.Eligible() && c.DesiredState == "enabled"
		if l, err := store.ActiveVPNLease(ctx, v.a.db.Pool, c.ID); err == nil && l.ExpiresAt.After(now) {
			as.ExitNodeID = l.OwnerNodeID
			if l.OwnerNodeID == n.NodeID {
				g := grantOf(l, c.LeaseTTLSeconds)
				as.Lease = &g
			} else {
				as.LeaseHeldByOther = true
			}
		} else if err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, asError(err)
		}
		out = append(out, as)
	}
	return out, nil
}

// agentConnection finds a connection of the node's own cluster; connections
// of other clusters do not exist for it.
func (v *VPN) agentConnection(ctx context.Context, n NodePrincipal, id string) (store.VPNConnection, error) {
	c, err := store.GetVPNConnection(ctx, v.a.db.Pool, n.ClusterID, id)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConstraint) {
			return c, Errf(CodeNotFound, "no such VPN connection")
		}
		return c, asError(err)
	}
	return c, nil
}

func nodeActor(n NodePrincipal) Actor {
	return Actor{ID: n.NodeID, Kind: "node", SourceAddr: n.SourceAddr}
}

// AcquireLease grants the connection's lease to node n, or returns n's own
// active lease (idempotent). See the package comment of this file for the
// rules. Fenced and audited (refusals too).
func (v *VPN) AcquireLease(ctx context.Context, n NodePrincipal, id string) (VPNLeaseGrant, error) {
	c, err := v.agentConnection(ctx, n, id)
	if err != nil {
		return VPNLeaseGrant{}, err
	}
	v.expireIfDue(ctx, c.ID, "missed renewals (found at an acquire)")
	op := Op{Action: "vpn_lease.acquire", Actor: nodeActor(n), ClusterID: c.ClusterID, TargetKind: "vpn_connection", TargetID: c.ID,
		Details: map[string]any{"node_id": n.NodeID}}
	return Fenced(ctx, v.a, op, func(tx pgx.Tx) (VPNLeaseGrant, error) {
		cur, err := store.LockVPNConnection(ctx, tx, c.ClusterID, c.ID)
		if err != nil {
			return VPNLeaseGrant{}, err
		}
		if cur.DesiredState != "enabled" {
			return VPNLeaseGrant{}, Errf(CodeConnectionDisabled, "the VPN connection is disabled")
		}
		el, err := store.VPNNodeEligibility(ctx, tx, cur, n.NodeID)
		if err != nil {
			return VPNLeaseGrant{}, err
		}
		if !el.Eligible() {
			e := Errf(CodeNotEligible, "this node may not own the VPN connection: it needs an active membership, a place in the allowed-node list and an active vpn-exit or vpn-connector role")
			e.Details = map[string]any{"active_member": el.ActiveMember, "allowed": el.Allowed, "vpn_role": el.Role}
			return VPNLeaseGrant{}, e
		}
		now := v.a.Now()
		active, err := store.ActiveVPNLease(ctx, tx, c.ID)
		switch {
		case err == nil && active.ExpiresAt.After(now):
			if active.OwnerNodeID == n.NodeID {
				op.Details["already_held"], op.Details["generation"] = true, active.Generation
				g := grantOf(active, cur.LeaseTTLSeconds)
				g.AlreadyHeld = true
				return g, nil
			}
			e := Errf(CodeLeaseHeld, "another node holds the VPN connection's lease")
			e.Details = map[string]any{"expires_at": active.ExpiresAt, "generation": active.Generation}
			return VPNLeaseGrant{}, e
		case err == nil:
			// Past its expiry but not reclaimed yet: end it now.
			if _, err := store.EndVPNLease(ctx, tx, c.ID, active.Generation, "expired", active.ExpiresAt, "missed renewals (reclaimed at acquire)", "system"); err != nil {
				return VPNLeaseGrant{}, err
			}
			op.Details["reclaimed_generation"] = active.Generation
		case !errors.Is(err, store.ErrNotFound):
			return VPNLeaseGrant{}, err
		default:
			// No active lease: a fenced or revoked holder may still run until
			// its term ends; wait for it.
			hist, err := store.ListVPNLeases(ctx, tx, c.ID, store.Page{Limit: 1})
			if err != nil {
				return VPNLeaseGrant{}, err
			}
			if len(hist) == 1 && (hist[0].Status == "fenced" || hist[0].Status == "revoked") && hist[0].ExpiresAt.After(now) {
				e := Errf(CodeLeaseHeld, "the previous lease was %s but its holder may run until its term ends; retry after it", hist[0].Status)
				e.Details = map[string]any{"retry_after": hist[0].ExpiresAt, "generation": hist[0].Generation}
				return VPNLeaseGrant{}, e
			}
		}
		l, err := store.InsertVPNLease(ctx, tx, store.VPNLease{ID: store.NewID(), ConnectionID: c.ID, ClusterID: c.ClusterID, OwnerNodeID: n.NodeID,
			AcquiredAt: now, ExpiresAt: now.Add(time.Duration(cur.LeaseTTLSeconds) * time.Second)})
		if errors.Is(err, store.ErrLeaseHeld) {
			return VPNLeaseGrant{}, Errf(CodeLeaseHeld, "another node holds the VPN connection's lease")
		}
		if err != nil {
			return VPNLeaseGrant{}, err
		}
		op.Details["generation"], op.Details["epoch"], op.Details["expires_at"] = l.Generation, l.Epoch, l.ExpiresAt
		return grantOf(l, cur.LeaseTTLSeconds), nil
	})
}

// RenewLease extends node n's lease of the given generation (fenced,
// audited). It answers lease_lost when that lease is not active any more or
// already past its expiry, and revokes it when n is no longer eligible or
// the connection is disabled: the agent must stop.
func (v *VPN) RenewLease(ctx context.Context, n NodePrincipal, id string, req LeaseRequest) (VPNLeaseGrant, error) {
	c, err := v.agentConnection(ctx, n, id)
	if err != nil {
		return VPNLeaseGrant{}, err
	}
	if req.Generation < 1 {
		return VPNLeaseGrant{}, Errf(CodeInvalid, "generation is required")
	}
	type result struct {
		Grant  VPNLeaseGrant
		Lost   string
		Status string
	}
	v.expireIfDue(ctx, c.ID, "missed renewals (found at a late renewal)")
	op := Op{Action: "vpn_lease.renew", Actor: nodeActor(n), ClusterID: c.ClusterID, TargetKind: "vpn_connection", TargetID: c.ID,
		Details: map[string]any{"node_id": n.NodeID, "generation": req.Generation}}
	res, err := Fenced(ctx, v.a, op, func(tx pgx.Tx) (res result, err error) {
		defer func() {
			if res.Lost != "" {
				op.Details["lost"], op.Details["lease_status"] = res.Lost, res.Status
			}
		}()
		cur, err := store.LockVPNConnection(ctx, tx, c.ClusterID, c.ID)
		if err != nil {
			return result{}, err
		}
		now := v.a.Now()
		l, err := store.GetVPNLease(ctx, tx, c.ID, req.Generation)
		if errors.Is(err, store.ErrNotFound) || (err == nil && l.OwnerNodeID != n.NodeID) {
			return result{Lost: "no lease of this generation is held by this node", Status: "unknown"}, nil
		}
		if err != nil {
			return result{}, err
		}
		if l.Status != "active" {
			return result{Lost: "the lease ended: " + l.Status, Status: l.Status}, nil
		}
		if !l.ExpiresAt.After(now) {
			if _, err := store.EndVPNLease(ctx, tx, c.ID, l.Generation, "expired", l.ExpiresAt, "renewal arrived after the expiry", "system"); err != nil {
				return result{}, err
			}
			return result{Lost: "the lease expired before this renewal", Status: "expired"}, nil
		}
		el, err := store.VPNNodeEligibility(ctx, tx, cur, n.NodeID)
		if err != nil {
			return result{}, err
		}
		if !el.Eligible() || cur.DesiredState != "enabled" {
			if _, err := store.EndVPNLease(ctx, tx, c.ID, l.Generation, "revoked", now, "owner no longer eligible", "system"); err != nil {
				return result{}, err
			}
			return result{Lost: "this node is no longer eligible for the connection", Status: "revoked"}, nil
		}
		l, err = store.RenewVPNLease(ctx, tx, c.ID, n.NodeID, l.Generation, now, now.Add(time.Duration(cur.LeaseTTLSeconds)*time.Second))
		if err != nil {
			return result{}, err
		}
		op.Details["epoch"], op.Details["expires_at"] = l.Epoch, l.ExpiresAt
		return result{Grant: grantOf(l, cur.LeaseTTLSeconds)}, nil
	})
	if err != nil {
		return VPNLeaseGrant{}, err
	}
	if res.Lost != "" {
		v.log.Info("VPN lease renewal refused", "cluster_id", c.ClusterID, "connection_id", c.ID, "peer", n.NodeID, "generation", req.Generation, "reason", res.Lost)
		return VPNLeaseGrant{}, &Error{Code: CodeLeaseLost, Message: res.Lost + "; stop using the connection",
			Details: map[string]any{"generation": req.Generation, "lease_status": res.Status}}
	}
	return res.Grant, nil
}

// ReleaseResult answers a release: the lease in its final state, and whether
// this call ended it (false: it had ended already — release is idempotent).
type ReleaseResult struct {
	Released bool           `json:"released"`
	Lease    store.VPNLease `json:"lease"`
}

// ReleaseLease ends node n's lease of the given generation (fenced, audited;
// idempotent).
func (v *VPN) ReleaseLease(ctx context.Context, n NodePrincipal, id string, req LeaseRequest) (ReleaseResult, error) {
	c, err := v.agentConnection(ctx, n, id)
	if err != nil {
		return ReleaseResult{}, err
	}
	if req.Generation < 1 {
		return ReleaseResult{}, Errf(CodeInvalid, "generation is required")
	}
	op := Op{Action: "vpn_lease.release", Actor: nodeActor(n), ClusterID: c.ClusterID, TargetKind: "vpn_connection", TargetID: c.ID,
		Details: map[string]any{"node_id": n.NodeID, "generation": req.Generation}}
	return Fenced(ctx, v.a, op, func(tx pgx.Tx) (ReleaseResult, error) {
		if _, err := store.LockVPNConnection(ctx, tx, c.ClusterID, c.ID); err != nil {
			return ReleaseResult{}, err
		}
		l, err := store.GetVPNLease(ctx, tx, c.ID, req.Generation)
		if errors.Is(err, store.ErrNotFound) || (err == nil && l.OwnerNodeID != n.NodeID) {
			return ReleaseResult{}, Errf(CodeNotFound, "this node never held generation %d of the connection's lease", req.Generation)
		}
		if err != nil {
			return ReleaseResult{}, err
		}
		if l.Status != "active" {
			op.Details["already_ended"] = l.Status
			return ReleaseResult{Lease: l}, nil
		}
		l, err = store.EndVPNLease(ctx, tx, c.ID, l.Generation, "released", v.a.Now(), "released by its owner", n.NodeID)
		if err != nil {
			return ReleaseResult{}, err
		}
		return ReleaseResult{Released: true, Lease: l}, nil
	})
}

// ReportStatus records node n's observed status of a connection it may see
// (not fenced: telemetry, any authority accepts it). A change of status is
// audited. Unknown status values are refused.
func (v *VPN) ReportStatus(ctx context.Context, n NodePrincipal, id string, req VPNStatusRequest) (store.VPNStatusReport, error) {
	st, err := vpnrules.ParseStatus(req.Status)
	if err != nil {
		return store.VPNStatusReport{}, vpnInvalid(err)
	}
	if len(req.Detail) > 500 {
		return store.VPNStatusReport{}, Errf(CodeInvalid, "detail is at most 500 characters")
	}
	if req.LeaseGeneration < 0 {
		return store.VPNStatusReport{}, Errf(CodeInvalid, "lease_generation must not be negative")
	}
	vis, err := store.VisibleVPNConnections(ctx, v.a.db.Pool, n.ClusterID, n.NodeID)
	if err != nil {
		return store.VPNStatusReport{}, asError(err)
	}
	var c *store.VPNConnection
	for i := range vis {
		if vis[i].ID == id || vis[i].Name == id {
			c = &vis[i]
		}
	}
	if c == nil {
		return store.VPNStatusReport{}, Errf(CodeNotFound, "no such VPN assignment for this node")
	}
	rep := store.VPNStatusReport{ClusterID: c.ClusterID, ConnectionID: c.ID, NodeID: n.NodeID, Status: string(st), Detail: req.Detail,
		LeaseGeneration: req.LeaseGeneration, ReceivedAt: v.a.Now(), AuthorityID: v.a.cfg.NodeID}
	if req.Tunnel != nil {
		if err := checkTunnelStatus(req.Tunnel); err != nil {
			return rep, err
		}
		if rep.Tunnel, err = json.Marshal(req.Tunnel); err != nil {
			return rep, Errf(CodeInvalid, "tunnel: %v", err)
		}
	}
	prev, err := store.RecordVPNStatus(ctx, v.a.db.Pool, rep)
	if err != nil {
		return rep, asError(err)
	}
	if prev != rep.Status {
		_ = v.a.Audit(ctx, Op{Action: "vpn_status.change", Actor: nodeActor(n), ClusterID: c.ClusterID, TargetKind: "vpn_connection", TargetID: c.ID,
			Details: map[string]any{"from": prev, "to": rep.Status, "lease_generation": rep.LeaseGeneration}}, "ok")
	}
	return rep, nil
}

// checkTunnelStatus bounds an agent's data-path report before it is stored.
func checkTunnelStatus(t *agentapi.VPNTunnelStatus) error {
	if t.Role != agentapi.VPNRoleExit && t.Role != agentapi.VPNRoleConnector {
		return Errf(CodeInvalid, "tunnel.role must be exit or connector")
	}
	if len(t.Interface) > 15 || len(t.ExitNodeID) > 64 || len(t.Error) > 500 {
		return Errf(CodeInvalid, "tunnel: interface at most 15, exit_node_id 64, error 500 characters")
	}
	if len(t.Drops) > 16 {
		return Errf(CodeInvalid, "tunnel.drops: at most 16 reasons")
	}
	for k := range t.Drops {
		if k == "" || len(k) > 32 {
			return Errf(CodeInvalid, "tunnel.drops: reason names are 1-32 characters")
		}
	}
	return nil
}

// ---------------------------------------------------------------- reclaimer

// ReclaimExpired ends every active lease past its expiry (leader only; each
// in its own fenced, audited transaction as vpn_lease.expire) and returns
// how many it ended. A follower returns 0 and no error.
func (v *VPN) ReclaimExpired(ctx context.Context) (int, error) {
	if _, err := v.a.ensureLeader(); err != nil {
		return 0, nil
	}
	v.reclaimMu.Lock()
	defer v.reclaimMu.Unlock()
	exp, err := store.ExpiredVPNLeases(ctx, v.a.db.Pool, v.a.Now(), 100)
	if err != nil {
		return 0, asError(err)
	}
	n := 0
	for _, l := range exp {
		ended, err := v.expire(ctx, l, "missed renewals")
		if err != nil {
			return n, err
		}
		if ended {
			n++
		}
	}
	return n, nil
}

// expire ends lease l as expired if it is still active and past its expiry
// (fenced; audited as vpn_lease.expire). The reclaimer calls it, and so do
// acquire and renew when they meet an expired lease first, so every expiry
// has its own audit event.
func (v *VPN) expire(ctx context.Context, l store.VPNLease, reason string) (bool, error) {
	op := Op{Action: "vpn_lease.expire", Actor: Actor{ID: "system", Kind: "system"}, ClusterID: l.ClusterID, TargetKind: "vpn_connection",
		TargetID: l.ConnectionID, Details: map[string]any{"generation": l.Generation, "owner_node_id": l.OwnerNodeID, "expired_at": l.ExpiresAt, "reason": reason}}
	ended, err := Fenced(ctx, v.a, op, func(tx pgx.Tx) (bool, error) {
		if _, err := store.LockVPNConnection(ctx, tx, l.ClusterID, l.ConnectionID); err != nil {
			return false, err
		}
		cur, err := store.GetVPNLease(ctx, tx, l.ConnectionID, l.Generation)
		if err != nil {
			return false, err
		}
		if cur.Status != "active" || cur.ExpiresAt.After(v.a.Now()) {
			// Renewed or ended meanwhile: nothing to reclaim (the audit
			// event says so).
			op.Details["skipped"] = "renewed or ended meanwhile"
			return false, nil
		}
		_, err = store.EndVPNLease(ctx, tx, l.ConnectionID, l.Generation, "expired", cur.ExpiresAt, reason, "system")
		return err == nil, err
	})
	if err == nil && ended {
		v.log.Info("VPN lease expired", "cluster_id", l.ClusterID, "connection_id", l.ConnectionID, "generation", l.Generation, "peer", l.OwnerNodeID)
	}
	return ended, err
}

// expireIfDue ends the connection's active lease first when it is past its
// expiry (see expire); errors are left to the caller's own transaction,
// which checks again.
func (v *VPN) expireIfDue(ctx context.Context, connID, reason string) {
	l, err := store.ActiveVPNLease(ctx, v.a.db.Pool, connID)
	if err != nil || l.ExpiresAt.After(v.a.Now()) {
		return
	}
	if _, err := v.expire(ctx, l, reason); err != nil {
		v.log.Debug("expiring a VPN lease before the request failed; the request checks again", "connection_id", connID, "error", err)
	}
}

// Run reclaims expired leases every ReclaimInterval while this authority
// leads, until stop is closed.
func (v *VPN) Run(stop <-chan struct{}) {
	t := time.NewTicker(v.cfg.ReclaimInterval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if _, err := v.ReclaimExpired(ctx); err != nil {
			v.log.Warn("reclaiming expired VPN leases failed; retrying", "error", err)
		}
		cancel()
	}
}
