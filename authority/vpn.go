package authority

// The VPN / IP tunnel control plane (spec C18A-C18C, issue 19).
//
// A vpn_connection is a cluster's logical tunnel: desired state, address
// family, client and remote prefixes, DNS, MTU and a credential reference
// (never a credential). Exactly one node at a time may run it: the owner of
// its single active lease. The lease is fenced twice — a partial unique index
// allows one active lease per connection, and every lease write runs in a
// fenced transaction, so a deposed leader's epoch cannot grant or renew one.
//
// Lease rules (C18B), all inside one fenced transaction that locks the
// connection row:
//   - acquire: the connection must be enabled; the node must be an active
//     member of the connection's cluster, in its allowed-node list, with an
//     active vpn-exit or vpn-connector role. The same owner acquiring again
//     gets its lease back unchanged (idempotent); another node is refused
//     (lease_held) while the lease is active. An active lease past its expiry
//     is ended as expired first. After a fence or revocation the next lease is
//     granted only once the ended lease's term has run out, because its holder
//     may still be running until then: two holders never overlap in time.
//   - renew: only the owner, naming the generation it holds, before expiry;
//     otherwise lease_lost (the agent must stop). A renewal by a node that is
//     no longer eligible revokes the lease.
//   - release (owner) and fence (platform owner, recovery action with
//     step-up) are idempotent: ending a lease that already ended answers with
//     its final state.
//   - expiry: the leader's reclaimer ends every active lease past its expiry
//     (audited as vpn_lease.expire); disabling a connection revokes its lease.
//
// The agent route Assignments shows a node only the connections it is an
// eligible candidate for or whose lease it holds, without credential_ref
// (only has_credential_ref). Agents report an observed status per assignment
// (vpnrules.Statuses); reports are telemetry, accepted by any authority.

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5"

	"github.com/rap-fabric/core/store"
	"github.com/rap-fabric/core/vpnrules"
)

// VPNConfig configures the VPN subsystem. Zero values take the defaults noted.
type VPNConfig struct {
	// ReclaimInterval is how often the leader looks for expired leases;
	// 0 means 1 s.
	ReclaimInterval time.Duration
	// DefaultLeaseTTL is the lease time to live of a connection created
	// without one; 0 means 30 s.
	DefaultLeaseTTL time.Duration
	// Logger; nil means the authority's logger.
	Logger hclog.Logger
}

// Validate reports the first unusable field of c as a *ConfigError (Field
// relative to VPNConfig). Zero values mean defaults.
func (c VPNConfig) Validate() error {
	if c.ReclaimInterval < 0 {
		return configErr("ReclaimInterval", "must not be negative (got %s)", c.ReclaimInterval)
	}
	if c.DefaultLeaseTTL != 0 && vpnrules.CheckLeaseTTL(int(c.DefaultLeaseTTL/time.Second)) != nil {
		return configErr("DefaultLeaseTTL", "must be between 2 s and 1 h (got %s)", c.DefaultLeaseTTL)
	}
	return nil
}

// VPN is the VPN control-plane subsystem of an authority: connection
// management for the owner, leases and assignments for agents, and the
// leader's stale-lease reclaimer.
type VPN struct {
	a   *Authority
	cfg VPNConfig
	log hclog.Logger
	// reclaimMu keeps one reclaim pass at a time.
	reclaimMu sync.Mutex
}

// NewVPN builds the VPN subsystem on a. It performs no I/O; Run starts the
// reclaimer.
func newVPN(a *Authority, cfg VPNConfig) (*VPN, error) {
	if a == nil {
		return nil, errors.New("vpn: authority is required")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.ReclaimInterval == 0 {
		cfg.ReclaimInterval = time.Second
	}
	if cfg.DefaultLeaseTTL == 0 {
		cfg.DefaultLeaseTTL = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = a.log
	}
	return &VPN{a: a, cfg: cfg, log: cfg.Logger.Named("vpn")}, nil
}

// ---------------------------------------------------------------- owner: connections

// VPNConnectionRequest creates a connection, or (PATCH) changes the fields
// that are set. DesiredState is "enabled" or "disabled" (create only;
// default disabled — use enable/disable afterwards).
type VPNConnectionRequest struct {
	Name            string    `json:"name,omitempty"`
	Organization    string    `json:"organization,omitempty"`
	DesiredState    string    `json:"desired_state,omitempty"`
	AddressFamily   string    `json:"address_family,omitempty"`
	ClientPrefixes  *[]string `json:"client_prefixes,omitempty"`
	RemotePrefixes  *[]string `json:"remote_prefixes,omitempty"`
	DNSServers      *[]string `json:"dns_servers,omitempty"`
	MTU             *int      `json:"mtu,omitempty"`
	CredentialRef   *string   `json:"credential_ref,omitempty"`
	LeaseTTLSeconds *int      `json:"lease_ttl_seconds,omitempty"`
}

// VPNConnectionView is a connection as the owner sees it: the row, its
// allowed nodes, its active lease (if any) and its health.
type VPNConnectionView struct {
	store.VPNConnection
	AllowedNodes []string `json:"allowed_nodes"`
	// Lease is the active lease, nil when no node holds the connection.
	Lease *store.VPNLease `json:"lease"`
	// Health: disabled | no_owner | lease_expired | healthy (the holder
	// reports assigned) | lease_held (held, holder not reporting assigned).
	Health string `json:"health"`
	// HolderStatus is the holder's latest reported status, "" when none.
	HolderStatus string `json:"holder_status,omitempty"`
}

// VPNConnectionDetail is GET of one connection: the view plus route
// policies, lease history and the latest status of every reporting node.
type VPNConnectionDetail struct {
	VPNConnectionView
	RoutePolicies []store.VPNRoutePolicy  `json:"route_policies"`
	LeaseHistory  []store.VPNLease        `json:"lease_history"`
	Statuses      []store.VPNStatusReport `json:"statuses"`
}

func vpnInvalid(err error) error {
	if errors.Is(err, vpnrules.ErrInvalid) {
		return Errf(CodeInvalid, "%s", strings.TrimPrefix(err.Error(), vpnrules.ErrInvalid.Error()+": "))
	}
	return err
}

// applyConnection validates req onto c (create: all fields; update: the set
// ones) and checks the result as a whole.
func (v *VPN) applyConnection(c *store.VPNConnection, req VPNConnectionRequest) error {
	if req.AddressFamily != "" {
		f, err := vpnrules.ParseFamily(req.AddressFamily)
		if err != nil {
			return vpnInvalid(err)
		}
		c.AddressFamily = string(f)
	}
	fam := vpnrules.Family(c.AddressFamily)
	if _, err := vpnrules.ParseFamily(c.AddressFamily); err != nil {
		return vpnInvalid(err)
	}
	pick := func(p *[]string, cur []string) []string {
		if p != nil {
			return *p
		}
		return cur
	}
	client, err := vpnrules.ParsePrefixes("client_prefixes", fam, pick(req.ClientPrefixes, c.ClientPrefixes), vpnrules.MaxClientPrefixes)
	if err != nil {
		return vpnInvalid(err)
	}
	remote, err := vpnrules.ParsePrefixes("remote_prefixes", fam, pick(req.RemotePrefixes, c.RemotePrefixes), vpnrules.MaxRemotePrefixes)
	if err != nil {
		return vpnInvalid(err)
	}
	dns, err := vpnrules.ParseDNS(fam, pick(req.DNSServers, c.DNSServers))
	if err != nil {
		return vpnInvalid(err)
	}
	if err := vpnrules.CheckConnection(vpnrules.Connection{Family: fam, ClientPrefixes: client, RemotePrefixes: remote}); err != nil {
		return vpnInvalid(err)
	}
	c.ClientPrefixes, c.RemotePrefixes, c.DNSServers = vpnrules.Strings(client), vpnrules.Strings(remote), vpnrules.Strings(dns)
	if req.MTU != nil {
		c.MTU = *req.MTU
	}
	if err := vpnrules.CheckMTU(c.MTU); err != nil {
		return vpnInvalid(err)
	}
	if req.LeaseTTLSeconds != nil {
		c.LeaseTTLSeconds = *req.LeaseTTLSeconds
	}
	if err := vpnrules.CheckLeaseTTL(c.LeaseTTLSeconds); err != nil {
		return vpnInvalid(err)
	}
	if req.CredentialRef != nil {
		ref := strings.TrimSpace(*req.CredentialRef)
		if len(ref) > 500 || strings.ContainsAny(ref, "\n\r\t") {
			return Errf(CodeInvalid, "credential_ref is a reference (at most 500 characters, one line), never the credential itself")
		}
		c.CredentialRef = ref
	}
	return nil
}

// CreateConnection creates a VPN connection in a cluster (fenced, audited).
func (v *VPN) CreateConnection(ctx context.Context, actor Actor, cluster string, req VPNConnectionRequest, idemKey string) (VPNConnectionView, error) {
	cl, err := v.a.GetCluster(ctx, cluster)
	if err != nil {
		return VPNConnectionView{}, err
	}
	c := store.VPNConnection{ID: store.NewID(), ClusterID: cl.ID, Name: strings.TrimSpace(req.Name), DesiredState: "disabled", MTU: 1420,
		LeaseTTLSeconds: int(v.cfg.DefaultLeaseTTL / time.Second), CreatedBy: actor.ID}
	if err := vpnInvalid(vpnrules.CheckName("connection", c.Name)); err != nil {
		return VPNConnectionView{}, err
	}
	switch req.DesiredState {
	case "", "disabled":
	case "enabled":
		c.DesiredState = "enabled"
	default:
		return VPNConnectionView{}, Errf(CodeInvalid, "desired_state must be enabled or disabled")
	}
	if req.AddressFamily == "" {
		return VPNConnectionView{}, Errf(CodeInvalid, "address_family is required (ipv4, ipv6 or dual)")
	}
	if c.OrganizationID, err = v.a.organizationID(ctx, req.Organization); err != nil {
		return VPNConnectionView{}, err
	}
	if err := v.applyConnection(&c, req); err != nil {
		return VPNConnectionView{}, err
	}
	out, err := Fenced(ctx, v.a, Op{Action: "vpn_connection.create", Actor: actor, ClusterID: cl.ID, TargetKind: "vpn_connection", TargetID: c.ID, IdempotencyKey: idemKey,
		Details: map[string]any{"name": c.Name, "desired_state": c.DesiredState, "address_family": c.AddressFamily, "client_prefixes": c.ClientPrefixes,
			"remote_prefixes": c.RemotePrefixes, "mtu": c.MTU, "has_credential_ref": c.CredentialRef != "", "lease_ttl_seconds": c.LeaseTTLSeconds}},
		func(tx pgx.Tx) (store.VPNConnection, error) {
			out, err := store.InsertVPNConnection(ctx, tx, c)
			if errors.Is(err, store.ErrConflict) {
				return out, Errf(CodeConflict, "the cluster already has a VPN connection named %q", c.Name)
			}
			return out, err
		})
	if err != nil {
		return VPNConnectionView{}, err
	}
	return v.view(ctx, out)
}

// UpdateConnection changes a connection's network settings, credential
// reference or lease time to live (fenced, audited). Route policies are
// checked again against new client prefixes.
func (v *VPN) UpdateConnection(ctx context.Context, actor Actor, cluster, id string, req VPNConnectionRequest, idemKey string) (VPNConnectionView, error) {
	c, err := v.connection(ctx, cluster, id)
	if err != nil {
		return VPNConnectionView{}, err
	}
	if req.Name != "" || req.DesiredState != "" || req.Organization != "" {
		return VPNConnectionView{}, Errf(CodeInvalid, "name, organization and desired_state cannot be changed here (use enable/disable)")
	}
	if err := v.applyConnection(&c, req); err != nil {
		return VPNConnectionView{}, err
	}
	out, err := Fenced(ctx, v.a, Op{Action: "vpn_connection.update", Actor: actor, ClusterID: c.ClusterID, TargetKind: "vpn_connection", TargetID: c.ID, IdempotencyKey: idemKey,
		Details: map[string]any{"address_family": c.AddressFamily, "client_prefixes": c.ClientPrefixes, "remote_prefixes": c.RemotePrefixes,
			"dns_servers": c.DNSServers, "mtu": c.MTU, "has_credential_ref": c.CredentialRef != "", "lease_ttl_seconds": c.LeaseTTLSeconds}},
		func(tx pgx.Tx) (store.VPNConnection, error) {
			if _, err := store.LockVPNConnection(ctx, tx, c.ClusterID, c.ID); err != nil {
				return store.VPNConnection{}, err
			}
			if err := v.checkPolicies(ctx, tx, c); err != nil {
				return store.VPNConnection{}, err
			}
			return store.UpdateVPNConnection(ctx, tx, c)
		})
	if err != nil {
		return VPNConnectionView{}, err
	}
	return v.view(ctx, out)
}

// checkPolicies re-checks a connection's route policies against its (new)
// address family and client prefixes.
func (v *VPN) checkPolicies(ctx context.Context, q store.Querier, c store.VPNConnection) error {
	ps, err := store.ListVPNRoutePolicies(ctx, q, c.ID)
	if err != nil {
		return err
	}
	conn, err := rulesConn(c)
	if err != nil {
		return err
	}
	var checked []vpnrules.RoutePolicy
	for _, p := range ps {
		rp, err := rulesPolicy(conn.Family, p)
		if err != nil {
			return err
		}
		if err := vpnrules.CheckRoutePolicy(conn, checked, rp); err != nil {
			return vpnInvalid(err)
		}
		checked = append(checked, rp)
	}
	return nil
}

func rulesConn(c store.VPNConnection) (vpnrules.Connection, error) {
	fam := vpnrules.Family(c.AddressFamily)
	client, err := vpnrules.ParsePrefixes("client_prefixes", fam, c.ClientPrefixes, vpnrules.MaxClientPrefixes)
	if err != nil {
		return vpnrules.Connection{}, vpnInvalid(err)
	}
	return vpnrules.Connection{Family: fam, ClientPrefixes: client}, nil
}

func rulesPolicy(fam vpnrules.Family, p store.VPNRoutePolicy) (vpnrules.RoutePolicy, error) {
	ps, err := vpnrules.ParsePrefixes("prefixes", fam, p.Prefixes, vpnrules.MaxPolicyPrefixes)
	if err != nil {
		return vpnrules.RoutePolicy{}, vpnInvalid(err)
	}
	return vpnrules.RoutePolicy{Name: p.Name, Prefixes: ps, AllowDefaultRoute: p.AllowDefaultRoute, AllowOverlap: p.AllowOverlap}, nil
}

// SetDesiredState enables or disables a connection (fenced, audited).
// Disabling revokes the active lease in the same transaction: its holder's
// next renewal is refused (lease_lost).
func (v *VPN) SetDesiredState(ctx context.Context, actor Actor, cluster, id string, enabled bool, idemKey string) (VPNConnectionView, error) {
	c, err := v.connection(ctx, cluster, id)
	if err != nil {
		return VPNConnectionView{}, err
	}
	state, action := "disabled", "vpn_connection.disable"
	if enabled {
		state, action = "enabled", "vpn_connection.enable"
	}
	op := Op{Action: action, Actor: actor, ClusterID: c.ClusterID, TargetKind: "vpn_connection", TargetID: c.ID, IdempotencyKey: idemKey,
		Details: map[string]any{"name": c.Name}}
	out, err := Fenced(ctx, v.a, op, func(tx pgx.Tx) (store.VPNConnection, error) {
		if _, err := store.LockVPNConnection(ctx, tx, c.ClusterID, c.ID); err != nil {
			return store.VPNConnection{}, err
		}
		if !enabled {
			l, err := store.EndVPNLease(ctx, tx, c.ID, 0, "revoked", v.a.Now(), "connection disabled", actor.ID)
			switch {
			case err == nil:
				op.Details["revoked_lease_generation"] = l.Generation
				op.Details["revoked_owner_node_id"] = l.OwnerNodeID
			case !errors.Is(err, store.ErrLeaseNotActive):
				return store.VPNConnection{}, err
			}
		}
		return store.SetVPNDesiredState(ctx, tx, c.ClusterID, c.ID, state)
	})
	if err != nil {
		return VPNConnectionView{}, err
	}
	return v.view(ctx, out)
}

// AllowedNodesRequest replaces a connection's allowed nodes.
type AllowedNodesRequest struct {
	NodeIDs []string `json:"node_ids"`
}

// SetAllowedNodes replaces a connection's allowed-node list (fenced,
// audited). The list is normalized (deduplicated, sorted) and every node must
// be a member of the connection's cluster. Removing the holder does not end
// its lease at once: its next renewal is refused (not eligible).
func (v *VPN) SetAllowedNodes(ctx context.Context, actor Actor, cluster, id string, req AllowedNodesRequest, idemKey string) (VPNConnectionView, error) {
	c, err := v.connection(ctx, cluster, id)
	if err != nil {
		return VPNConnectionView{}, err
	}
	nodes, err := vpnrules.NormalizeNodes(req.NodeIDs)
	if err != nil {
		return VPNConnectionView{}, vpnInvalid(err)
	}
	members, err := store.ClusterMembers(ctx, v.a.db.Pool, c.ClusterID, nodes)
	if err != nil {
		return VPNConnectionView{}, asError(err)
	}
	var foreign []string
	for _, n := range nodes {
		if !members[n] {
			foreign = append(foreign, n)
		}
	}
	if len(foreign) > 0 {
		e := Errf(CodeInvalid, "only nodes of the connection's cluster can be allowed: %s", strings.Join(foreign, ", "))
		e.Details = map[string]any{"not_members": foreign}
		return VPNConnectionView{}, e
	}
	_, err = Fenced(ctx, v.a, Op{Action: "vpn_connection.allowed_nodes", Actor: actor, ClusterID: c.ClusterID, TargetKind: "vpn_connection", TargetID: c.ID,
		IdempotencyKey: idemKey, Details: map[string]any{"node_ids": nodes}},
		func(tx pgx.Tx) (struct{}, error) {
			if _, err := store.LockVPNConnection(ctx, tx, c.ClusterID, c.ID); err != nil {
				return struct{}{}, err
			}
			return struct{}{}, store.ReplaceVPNAllowedNodes(ctx, tx, c.ClusterID, c.ID, nodes, actor.ID)
		})
	if err != nil {
		return VPNConnectionView{}, err
	}
	return v.view(ctx, c)
}

// VPNRoutePolicyRequest creates a route policy of a connection.
type VPNRoutePolicyRequest struct {
	Name              string   `json:"name"`
	Prefixes          []string `json:"prefixes"`
	Priority          *int     `json:"priority,omitempty"`
	AllowDefaultRoute bool     `json:"allow_default_route,omitempty"`
	AllowOverlap      bool     `json:"allow_overlap,omitempty"`
	// Masquerade: the exit source-NATs this policy's traffic toward the
	// remote network (docs/tunnels.md).
	Masquerade bool `json:"masquerade,omitempty"`
}

// CreateRoutePolicy adds a route policy to a connection (fenced, audited),
// checked against the connection and its other policies (vpnrules).
func (v *VPN) CreateRoutePolicy(ctx context.Context, actor Actor, cluster, id string, req VPNRoutePolicyRequest, idemKey string) (store.VPNRoutePolicy, error) {
	c, err := v.connection(ctx, cluster, id)
	if err != nil {
		return store.VPNRoutePolicy{}, err
	}
	p := store.VPNRoutePolicy{ID: store.NewID(), ConnectionID: c.ID, ClusterID: c.ClusterID, Name: strings.TrimSpace(req.Name),
		AllowDefaultRoute: req.AllowDefaultRoute, AllowOverlap: req.AllowOverlap, Masquerade: req.Masquerade, CreatedBy: actor.ID}
	if p.Priority, err = priorityOf(req.Priority); err != nil {
		return p, err
	}
	if err := vpnInvalid(vpnrules.CheckName("route policy", p.Name)); err != nil {
		return p, err
	}
	fam := vpnrules.Family(c.AddressFamily)
	prefixes, err := vpnrules.ParsePrefixes("prefixes", fam, req.Prefixes, vpnrules.MaxPolicyPrefixes)
	if err != nil {
		return p, vpnInvalid(err)
	}
	p.Prefixes = vpnrules.Strings(prefixes)
	return Fenced(ctx, v.a, Op{Action: "vpn_route_policy.create", Actor: actor, ClusterID: c.ClusterID, TargetKind: "vpn_route_policy", TargetID: p.ID,
		IdempotencyKey: idemKey, Details: map[string]any{"connection_id": c.ID, "name": p.Name, "prefixes": p.Prefixes, "priority": p.Priority,
			"allow_default_route": p.AllowDefaultRoute, "allow_overlap": p.AllowOverlap, "masquerade": p.Masquerade}},
		func(tx pgx.Tx) (store.VPNRoutePolicy, error) {
			cur, err := store.LockVPNConnection(ctx, tx, c.ClusterID, c.ID)
			if err != nil {
				return p, err
			}
			conn, err := rulesConn(cur)
			if err != nil {
				return p, err
			}
			existing, err := store.ListVPNRoutePolicies(ctx, tx, c.ID)
			if err != nil {
				return p, err
			}
			var ex []vpnrules.RoutePolicy
			for _, e := range existing {
				rp, err := rulesPolicy(conn.Family, e)
				if err != nil {
					return p, err
				}
				ex = append(ex, rp)
			}
			if err := vpnrules.CheckRoutePolicy(conn, ex, vpnrules.RoutePolicy{Name: p.Name, Prefixes: prefixes, AllowDefaultRoute: p.AllowDefaultRoute,
				AllowOverlap: p.AllowOverlap}); err != nil {
				return p, vpnInvalid(err)
			}
			return store.InsertVPNRoutePolicy(ctx, tx, p)
		})
}

// DeleteRoutePolicy removes a connection's route policy (fenced, audited).
func (v *VPN) DeleteRoutePolicy(ctx context.Context, actor Actor, cluster, id, policy, idemKey string) (store.VPNRoutePolicy, error) {
	c, err := v.connection(ctx, cluster, id)
	if err != nil {
		return store.VPNRoutePolicy{}, err
	}
	return Fenced(ctx, v.a, Op{Action: "vpn_route_policy.delete", Actor: actor, ClusterID: c.ClusterID, TargetKind: "vpn_route_policy", TargetID: policy,
		IdempotencyKey: idemKey, Details: map[string]any{"connection_id": c.ID}},
		func(tx pgx.Tx) (store.VPNRoutePolicy, error) {
			return store.DeleteVPNRoutePolicy(ctx, tx, c.ID, policy)
		})
}

// ListRoutePolicies lists a connection's route policies in priority order.
func (v *VPN) ListRoutePolicies(ctx context.Context, cluster, id string) ([]store.VPNRoutePolicy, error) {
	c, err := v.connection(ctx, cluster, id)
	if err != nil {
		return nil, err
	}
	out, err := store.ListVPNRoutePolicies(ctx, v.a.db.Pool, c.ID)
	return out, asErrorOrNil(err)
}

// ListConnections lists a cluster's connections with lease holder and health.
func (v *VPN) ListConnections(ctx context.Context, cluster string, p store.Page) ([]VPNConnectionView, error) {
	cl, err := v.a.GetCluster(ctx, cluster)
	if err != nil {
		return nil, err
	}
	cs, err := store.ListVPNConnections(ctx, v.a.db.Pool, cl.ID, p)
	if err != nil {
		return nil, asError(err)
	}
	out := make([]VPNConnectionView, 0, len(cs))
	for _, c := range cs {
		vw, err := v.view(ctx, c)
		if err != nil {
			return nil, err
		}
		out = append(out, vw)
	}
	return out, nil
}

// GetConnection returns one connection with its policies, lease history and
// the latest status reports.
func (v *VPN) GetConnection(ctx context.Context, cluster, id string) (VPNConnectionDetail, error) {
	c, err := v.connection(ctx, cluster, id)
	if err != nil {
		return VPNConnectionDetail{}, err
	}
	vw, err := v.view(ctx, c)
	if err != nil {
		return VPNConnectionDetail{}, err
	}
	d := VPNConnectionDetail{VPNConnectionView: vw}
	if d.RoutePolicies, err = store.ListVPNRoutePolicies(ctx, v.a.db.Pool, c.ID); err != nil {
		return d, asError(err)
	}
	if d.LeaseHistory, err = store.ListVPNLeases(ctx, v.a.db.Pool, c.ID, store.Page{Limit: 20}); err != nil {
		return d, asError(err)
	}
	if d.Statuses, err = store.ListVPNStatusLatest(ctx, v.a.db.Pool, c.ID); err != nil {
		return d, asError(err)
	}
	return d, nil
}

// VPNLeaseView is a connection's lease: the active one (nil when none) and
// its history, newest first.
type VPNLeaseView struct {
	ConnectionID string           `json:"connection_id"`
	Active       *store.VPNLease  `json:"active"`
	History      []store.VPNLease `json:"history"`
}

// Lease returns a connection's active lease and lease history (page).
func (v *VPN) Lease(ctx context.Context, cluster, id string, p store.Page) (VPNLeaseView, error) {
	c, err := v.connection(ctx, cluster, id)
	if err != nil {
		return VPNLeaseView{}, err
	}
	out := VPNLeaseView{ConnectionID: c.ID}
	if l, err := store.ActiveVPNLease(ctx, v.a.db.Pool, c.ID); err == nil {
		out.Active = &l
	} else if !errors.Is(err, store.ErrNotFound) {
		return out, asError(err)
	}
	if out.History, err = store.ListVPNLeases(ctx, v.a.db.Pool, c.ID, p); err != nil {
		return out, asError(err)
	}
	return out, nil
}

// FenceLeaseRequest is the body of a lease fence.
type FenceLeaseRequest struct {
	Reason string `json:"reason"`
}

// FenceResult answers a lease fence. Fenced is false when no lease was
// active (fencing is idempotent); Lease is the fenced or latest lease.
type FenceResult struct {
	Fenced bool            `json:"fenced"`
	Lease  *store.VPNLease `json:"lease"`
}

// FenceLease ends a connection's active lease as fenced: a recovery action
// of the platform owner (the API requires step-up). Its holder's next
// renewal is refused; no new lease is granted before the fenced lease's term
// ends. Fencing a connection without an active lease succeeds and changes
// nothing.
func (v *VPN) FenceLease(ctx context.Context, actor Actor, cluster, id string, req FenceLeaseRequest, idemKey string) (FenceResult, error) {
	c, err := v.connection(ctx, cluster, id)
	if err != nil {
		return FenceResult{}, err
	}
	req.Reason = strings.TrimSpace(req.Reason)
	if req.Reason == "" || len(req.Reason) > 500 {
		return FenceResult{}, Errf(CodeInvalid, "reason is required (at most 500 characters)")
	}
	op := Op{Action: "vpn_lease.fence", Actor: actor, ClusterID: c.ClusterID, TargetKind: "vpn_connection", TargetID: c.ID, IdempotencyKey: idemKey,
		Details: map[string]any{"reason": req.Reason}}
	return Fenced(ctx, v.a, op, func(tx pgx.Tx) (FenceResult, error) {
		if _, err := store.LockVPNConnection(ctx, tx, c.ClusterID, c.ID); err != nil {
			return FenceResult{}, err
		}
		l, err := store.EndVPNLease(ctx, tx, c.ID, 0, "fenced", v.a.Now(), req.Reason, actor.ID)
		if err == nil {
			op.Details["generation"], op.Details["owner_node_id"] = l.Generation, l.OwnerNodeID
			return FenceResult{Fenced: true, Lease: &l}, nil
		}
		if !errors.Is(err, store.ErrLeaseNotActive) {
			return FenceResult{}, err
		}
		op.Details["already_inactive"] = true
		hist, err := store.ListVPNLeases(ctx, tx, c.ID, store.Page{Limit: 1})
		if err != nil || len(hist) == 0 {
			return FenceResult{}, err
		}
		return FenceResult{Lease: &hist[0]}, nil
	})
}

// connection finds a connection of a cluster by id or name.
func (v *VPN) connection(ctx context.Context, cluster, id string) (store.VPNConnection, error) {
	cl, err := v.a.GetCluster(ctx, cluster)
	if err != nil {
		return store.VPNConnection{}, err
	}
	c, err := store.GetVPNConnection(ctx, v.a.db.Pool, cl.ID, id)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return c, Errf(CodeNotFound, "no VPN connection %q in cluster %s", id, cl.Slug)
		}
		return c, asError(err)
	}
	return c, nil
}

func (v *VPN) view(ctx context.Context, c store.VPNConnection) (VPNConnectionView, error) {
	vw := VPNConnectionView{VPNConnection: c}
	var err error
	if vw.AllowedNodes, err = store.ListVPNAllowedNodes(ctx, v.a.db.Pool, c.ID); err != nil {
		return vw, asError(err)
	}
	if l, err := store.ActiveVPNLease(ctx, v.a.db.Pool, c.ID); err == nil {
		vw.Lease = &l
	} else if !errors.Is(err, store.ErrNotFound) {
		return vw, asError(err)
	}
	if vw.Lease != nil {
		sts, err := store.ListVPNStatusLatest(ctx, v.a.db.Pool, c.ID)
		if err != nil {
			return vw, asError(err)
		}
		for _, s := range sts {
			if s.NodeID == vw.Lease.OwnerNodeID {
				vw.HolderStatus = s.Status
			}
		}
	}
	vw.Health = health(c, vw.Lease, vw.HolderStatus, v.a.Now())
	return vw, nil
}

func health(c store.VPNConnection, l *store.VPNLease, holderStatus string, now time.Time) string {
	switch {
	case c.DesiredState != "enabled":
		return "disabled"
	case l == nil:
		return "no_owner"
	case !l.ExpiresAt.After(now):
		return "lease_expired"
	case holderStatus == string(vpnrules.StatusAssigned):
		return "healthy"
	}
	return "lease_held"
}
