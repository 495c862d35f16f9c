package snapshot

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/rap-fabric/core/domain"
)

// Config bounds the topology the builder hands out. The zero value of a
// field means its default (DefaultConfig).
type Config struct {
	// MeshFanout is how many other mesh nodes each mesh node picks as
	// neighbours (half from its own region when available). Default 8.
	MeshFanout int
	// MaxMeshPeers is the strict cap on mesh-to-mesh entries in one peer
	// directory (own picks plus nodes that picked it). Must be >=
	// MeshFanout. Default 24.
	MaxMeshPeers int
	// UplinkFanout is how many mesh nodes a non-mesh node attaches to.
	// Default 2.
	UplinkFanout int
	// MaxConsumers is the strict cap on consumer entries in one mesh node's
	// directory. Default 256.
	MaxConsumers int
	// MaxSize is the encoded size limit used by Sign in BuildAll. Default
	// DefaultMaxSize.
	MaxSize int64
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{MeshFanout: 8, MaxMeshPeers: 24, UplinkFanout: 2, MaxConsumers: 256, MaxSize: DefaultMaxSize}
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.MeshFanout == 0 {
		c.MeshFanout = d.MeshFanout
	}
	if c.MaxMeshPeers == 0 {
		c.MaxMeshPeers = max(d.MaxMeshPeers, c.MeshFanout)
	}
	if c.UplinkFanout == 0 {
		c.UplinkFanout = d.UplinkFanout
	}
	if c.MaxConsumers == 0 {
		c.MaxConsumers = d.MaxConsumers
	}
	if c.MaxSize == 0 {
		c.MaxSize = d.MaxSize
	}
	return c
}

// Validate reports unusable limits, naming the field.
func (c Config) Validate() error {
	c = c.withDefaults()
	switch {
	case c.MeshFanout < 1:
		return fmt.Errorf("%w: MeshFanout %d < 1", ErrInvalidOptions, c.MeshFanout)
	case c.MaxMeshPeers < c.MeshFanout:
		return fmt.Errorf("%w: MaxMeshPeers %d < MeshFanout %d", ErrInvalidOptions, c.MaxMeshPeers, c.MeshFanout)
	case c.UplinkFanout < 1:
		return fmt.Errorf("%w: UplinkFanout %d < 1", ErrInvalidOptions, c.UplinkFanout)
	case c.MaxConsumers < 1:
		return fmt.Errorf("%w: MaxConsumers %d < 1", ErrInvalidOptions, c.MaxConsumers)
	case c.MaxSize < 1024:
		return fmt.Errorf("%w: MaxSize %d < 1024", ErrInvalidOptions, c.MaxSize)
	}
	return nil
}

// BuildOptions are the header values of the snapshots being built. All nodes
// rebuilt together may share one Version (e.g. the cluster's config revision):
// the version only has to increase strictly per node.
type BuildOptions struct {
	Version  uint64
	Epoch    uint64
	IssuedAt time.Time
	TTL      time.Duration
}

func (o BuildOptions) validate() error {
	if o.Version == 0 || o.TTL <= 0 || o.IssuedAt.IsZero() {
		return fmt.Errorf("%w: need Version > 0, TTL > 0 and IssuedAt (got %d, %s, %s)", ErrInvalidOptions, o.Version, o.TTL, o.IssuedAt)
	}
	return nil
}

// Fingerprint returns the revocation-list fingerprint of a public key: hex of
// sha256(pub).
func Fingerprint(pub []byte) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:])
}

// Roles that receive egress pool references.
var egressRoles = map[domain.Role]bool{domain.RoleEgressNode: true, domain.RoleVPNExit: true}

type nodeInfo struct {
	n         *Node
	m         NodeMembership
	member    bool
	revoked   bool
	active    bool
	grants    []RoleGrant
	roles     []domain.Role
	mesh      bool
	endpoints []string
	groupPath []string
	orgs      []string // organizations served: restricted grants and enabled services
	h         uint64
}

func (ni *nodeInfo) has(r domain.Role) bool { return slices.Contains(ni.roles, r) }

// Index is a State prepared for building: validated, canonicalized, indexed,
// with the bounded topology computed once. It is immutable and safe for
// concurrent Build calls. The State must not be mutated while the Index is
// in use (the Index shares its slices).
type Index struct {
	cfg            Config
	clusterID      string
	authorityState domain.PartitionState
	nodes          map[string]*nodeInfo
	buildable      []string
	revocations    Revocations
	gossip         map[string]GossipKey
	caRoots        []CARoot
	routePolicy    json.RawMessage
	qosPolicy      json.RawMessage
	entry          []EntryPolicy
	token          *TokenValidation
	services       map[string][]ServiceConfig
	resources      map[string]*Resource
	connectors     map[string]*Connector
	orgs           map[string]*Organization
	pools          map[string][]*EgressPool
	servedBy       map[string][]string
	cacheNodes     map[string][]string
	flagsCluster   []TelemetryFlag
	flagsNode      map[string][]TelemetryFlag
	flagsOrg       map[string][]TelemetryFlag
	meshPeers      map[string][]string
	consumers      map[string][]string
	uplinks        map[string][]string
	revokedFinger  map[string]bool
	updates        *UpdateState
	mirrorNodes    []string         // update-cache nodes, sorted
	mirrorSet      []DesiredVersion // releases desired anywhere in the cluster
	orgAccess      map[string][]OrgAccess
}

// NewIndex validates and indexes state for building. It rejects a State
// whose JSON documents are invalid or contain credential-like keys (secrets
// travel by reference only).
func NewIndex(state *State, cfg Config) (*Index, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if state == nil || state.Cluster.ID == "" {
		return nil, fmt.Errorf("%w: missing cluster id", ErrInvalidState)
	}
	x := &Index{
		cfg: cfg, clusterID: state.Cluster.ID, authorityState: authorityState(state.Cluster.AuthorityState),
		nodes:      make(map[string]*nodeInfo, len(state.Nodes)),
		gossip:     map[string]GossipKey{},
		services:   map[string][]ServiceConfig{},
		resources:  map[string]*Resource{},
		connectors: map[string]*Connector{},
		orgs:       map[string]*Organization{},
		pools:      map[string][]*EgressPool{},
		servedBy:   map[string][]string{},
		cacheNodes: map[string][]string{},
		flagsNode:  map[string][]TelemetryFlag{},
		flagsOrg:   map[string][]TelemetryFlag{},
	}
	var err error
	memo := map[string]json.RawMessage{}
	canonJSON := func(raw json.RawMessage, what string) (json.RawMessage, error) {
		if c, ok := memo[string(raw)]; ok {
			return c, nil
		}
		c, err := canonJSON(raw, what)
		if err == nil {
			memo[string(raw)] = c
		}
		return c, err
	}
	for _, k := range state.Cluster.GossipKeys {
		x.gossip[k.Pool] = k
	}
	if x.caRoots, err = checkCARoots(state.Cluster.CARoots); err != nil {
		return nil, err
	}
	if x.updates, err = indexUpdates(state.Updates); err != nil {
		return nil, err
	}
	if x.orgAccess, err = indexOrgAccess(state); err != nil {
		return nil, err
	}
	revokedIDs := map[string]bool{}
	for _, id := range state.Revocations.NodeIDs {
		revokedIDs[id] = true
	}
	x.revokedFinger = map[string]bool{}
	for _, f := range state.Revocations.KeyFingerprints {
		x.revokedFinger[f] = true
	}
	groups := map[string]*Group{}
	for i := range state.Groups {
		groups[state.Groups[i].ID] = &state.Groups[i]
	}
	for i := range state.Nodes {
		n := &state.Nodes[i]
		if n.ID == "" {
			return nil, fmt.Errorf("%w: node without id", ErrInvalidState)
		}
		if _, dup := x.nodes[n.ID]; dup {
			return nil, fmt.Errorf("%w: duplicate node %s", ErrInvalidState, n.ID)
		}
		ni := &nodeInfo{n: n, h: hash64(n.ID)}
		for _, m := range n.Memberships {
			if m.ClusterID == state.Cluster.ID {
				ni.m, ni.member = m, true
			}
		}
		ni.revoked = n.IdentityStatus == domain.IdentityRevoked || ni.m.Status == domain.MembershipRevoked ||
			revokedIDs[n.ID] || (len(n.NoisePublicKey) > 0 && x.revokedFinger[Fingerprint(n.NoisePublicKey)])
		if ni.revoked && ni.member {
			revokedIDs[n.ID] = true
		}
		ni.active = ni.member && !ni.revoked && ni.m.Status == domain.MembershipActive
		ni.endpoints = sortedCopy(n.Endpoints)
		ni.groupPath = groupPath(groups, ni.m.GroupID)
		x.nodes[n.ID] = ni
		if ni.member && !ni.revoked {
			x.buildable = append(x.buildable, n.ID)
		}
	}
	slices.Sort(x.buildable)
	x.revocations = Revocations{NodeIDs: sortedKeys(revokedIDs), KeyFingerprints: sortedKeys(x.revokedFinger)}

	for _, a := range state.Assignments {
		ni := x.nodes[a.NodeID]
		if ni == nil || !ni.active || a.Disabled || !a.Role.Valid() {
			continue
		}
		pol, err := canonJSON(a.Policy, "role policy of "+a.NodeID)
		if err != nil {
			return nil, err
		}
		ni.grants = append(ni.grants, RoleGrant{Role: a.Role, OrganizationID: a.OrganizationID, Policy: pol})
		if !ni.has(a.Role) {
			ni.roles = append(ni.roles, a.Role)
		}
		if a.Role.IsMesh() {
			ni.mesh = true
		}
	}
	for _, ni := range x.nodes {
		slices.SortFunc(ni.grants, func(a, b RoleGrant) int {
			return cmp.Or(cmp.Compare(a.Role, b.Role), cmp.Compare(a.OrganizationID, b.OrganizationID), bytes.Compare(a.Policy, b.Policy))
		})
		ni.grants = slices.CompactFunc(ni.grants, func(a, b RoleGrant) bool {
			return a.Role == b.Role && a.OrganizationID == b.OrganizationID && bytes.Equal(a.Policy, b.Policy)
		})
		slices.Sort(ni.roles)
	}

	if x.routePolicy, err = canonJSON(state.RoutePolicy, "route policy"); err != nil {
		return nil, err
	}
	if x.qosPolicy, err = canonJSON(state.QoSPolicy, "qos policy"); err != nil {
		return nil, err
	}
	for _, p := range state.EntryPolicies {
		c, err := canonJSON(p.Policy, "entry policy")
		if err != nil {
			return nil, err
		}
		if c == nil {
			c = json.RawMessage("{}")
		}
		x.entry = append(x.entry, EntryPolicy{OrganizationID: p.OrganizationID, Policy: c})
	}
	slices.SortFunc(x.entry, func(a, b EntryPolicy) int {
		return cmp.Or(cmp.Compare(a.OrganizationID, b.OrganizationID), bytes.Compare(a.Policy, b.Policy))
	})
	if t := state.TokenValidation; t != nil {
		tv := *t
		tv.Audiences = sortedCopy(t.Audiences)
		tv.Keys = slices.Clone(t.Keys)
		slices.SortFunc(tv.Keys, func(a, b TokenKey) int { return cmp.Compare(a.KeyID, b.KeyID) })
		x.token = &tv
	}

	for i := range state.Organizations {
		x.orgs[state.Organizations[i].ID] = &state.Organizations[i]
	}
	for i := range state.Resources {
		x.resources[state.Resources[i].ID] = &state.Resources[i]
	}
	for i := range state.Connectors {
		x.connectors[state.Connectors[i].ID] = &state.Connectors[i]
	}
	for _, s := range state.Services {
		ni := x.nodes[s.NodeID]
		if ni == nil || !ni.active || !s.Enabled {
			continue
		}
		cfgDoc, err := canonJSON(s.Config, "config of service "+s.ID)
		if err != nil {
			return nil, err
		}
		role := s.Role
		if role == "" {
			role = domain.Role(s.Type)
		}
		// Only references to existing objects of the service's own
		// organization survive: a misconfigured cross-organization reference
		// must not even leak the other organization's ids.
		var res, con []string
		for _, id := range s.ResourceRefs {
			if r := x.resources[id]; r != nil && r.OrganizationID == s.OrganizationID {
				res = append(res, id)
			}
		}
		for _, id := range s.ConnectorRefs {
			if c := x.connectors[id]; c != nil && c.OrganizationID == s.OrganizationID {
				con = append(con, id)
			}
		}
		x.services[s.NodeID] = append(x.services[s.NodeID], ServiceConfig{
			ID: s.ID, Type: s.Type, Instance: s.Instance, Role: role, OrganizationID: s.OrganizationID, Config: cfgDoc,
			ResourceRefs: sortedCopy(res), ConnectorRefs: sortedCopy(con),
		})
	}
	for _, l := range x.services {
		slices.SortFunc(l, func(a, b ServiceConfig) int { return cmp.Compare(a.ID, b.ID) })
	}
	for _, ni := range x.nodes {
		var orgs []string
		for _, g := range ni.grants {
			if g.OrganizationID != "" {
				orgs = append(orgs, g.OrganizationID)
			}
		}
		for _, s := range x.services[ni.n.ID] {
			if s.OrganizationID != "" && ni.has(s.Role) && allowsOrg(ni, s.Role, s.OrganizationID) {
				orgs = append(orgs, s.OrganizationID)
			}
		}
		ni.orgs = sortedCopy(orgs)
	}
	for i := range state.EgressPools {
		p := &state.EgressPools[i]
		for _, id := range p.NodeIDs {
			x.pools[id] = append(x.pools[id], p)
		}
	}
	for _, sa := range state.StorageAssignments {
		sn := x.nodes[sa.StorageNodeID]
		if sn == nil || !sn.active || !sn.has(domain.RoleConfigStorage) {
			continue
		}
		for _, id := range sa.NodeIDs {
			if t := x.nodes[id]; t != nil && t.member && !t.revoked {
				x.servedBy[id] = append(x.servedBy[id], sa.StorageNodeID)
				x.cacheNodes[sa.StorageNodeID] = append(x.cacheNodes[sa.StorageNodeID], id)
			}
		}
	}
	for k, v := range x.servedBy {
		x.servedBy[k] = sortedUnique(v)
	}
	for k, v := range x.cacheNodes {
		x.cacheNodes[k] = sortedUnique(v)
	}
	for _, f := range state.Telemetry {
		switch f.Scope {
		case "cluster":
			x.flagsCluster = append(x.flagsCluster, f)
		case "node":
			x.flagsNode[f.TargetID] = append(x.flagsNode[f.TargetID], f)
		case "organization":
			x.flagsOrg[f.TargetID] = append(x.flagsOrg[f.TargetID], f)
		}
	}
	x.computeTopology()
	x.indexMirrors()
	return x, nil
}

// Nodes returns the ids of the nodes that get a snapshot (members of the
// cluster that are not revoked), sorted.
func (x *Index) Nodes() []string { return slices.Clone(x.buildable) }

// Build builds the snapshot of one node from state with the default Config.
// For several nodes, build one Index and call its Build.
func Build(state *State, nodeID string, opts BuildOptions) (Snapshot, error) {
	x, err := NewIndex(state, DefaultConfig())
	if err != nil {
		return Snapshot{}, err
	}
	return x.Build(nodeID, opts)
}

// Build returns the need-to-know snapshot of nodeID. See docs/snapshots.md
// for what each role receives.
func (x *Index) Build(nodeID string, opts BuildOptions) (Snapshot, error) {
	if err := opts.validate(); err != nil {
		return Snapshot{}, err
	}
	body, scope, err := x.body(nodeID)
	if err != nil {
		return Snapshot{}, err
	}
	return x.snapshot(nodeID, body, scope, opts), nil
}

// snapshot wraps a built body in its header (opts already validated).
func (x *Index) snapshot(nodeID string, body Body, scope []string, opts BuildOptions) Snapshot {
	issued := opts.IssuedAt.UTC()
	return Snapshot{
		ClusterID: x.clusterID, NodeID: nodeID, Version: opts.Version, Epoch: opts.Epoch,
		IssuedAt: issued, ExpiresAt: issued.Add(opts.TTL), Scope: scope, Body: body,
	}
}

// Digest returns sha256 of the canonical encoding of nodeID's scope and body
// (no header): equal digests mean an unchanged snapshot. The authority may
// store it beside each signed snapshot to skip re-signing unchanged ones.
func (x *Index) Digest(nodeID string) ([32]byte, error) {
	body, scope, err := x.body(nodeID)
	if err != nil {
		return [32]byte{}, err
	}
	return digest(body, scope)
}

// digest is Digest of a built body.
func digest(body Body, scope []string) ([32]byte, error) {
	b, err := json.Marshal(struct {
		Scope []string `json:"scope"`
		Body  Body     `json:"body"`
	}{scope, body})
	if err != nil {
		return [32]byte{}, fmt.Errorf("%w: %v", ErrInvalidState, err)
	}
	return sha256.Sum256(b), nil
}

func (x *Index) body(nodeID string) (Body, []string, error) {
	ni := x.nodes[nodeID]
	switch {
	case ni == nil:
		return Body{}, nil, fmt.Errorf("%w: %s", ErrUnknownNode, nodeID)
	case !ni.member:
		return Body{}, nil, fmt.Errorf("%w: %s in %s", ErrNotMember, nodeID, x.clusterID)
	case ni.revoked:
		return Body{}, nil, fmt.Errorf("%w: %s", ErrNodeRevoked, nodeID)
	}
	n := ni.n
	b := Body{
		Self: Identity{NodeID: n.ID, Name: n.Name, Region: n.Region, Endpoints: ni.endpoints,
			NoisePublicKey: n.NoisePublicKey, IdentityPublicKey: n.IdentityPublicKey, IdentityStatus: n.IdentityStatus, Organizations: ni.orgs},
		Membership:  Membership{ClusterID: x.clusterID, Status: ni.m.Status, GroupPath: ni.groupPath, AuthorityState: x.authorityState},
		Roles:       ni.grants,
		Revocations: x.revocations,
		CARoots:     x.caRoots,
		Updates:     x.updatesFor(nodeID),
	}
	scope := []string{ScopeBase}
	for _, sid := range x.servedBy[nodeID] {
		b.ConfigStorage = append(b.ConfigStorage, StorageEndpoint{NodeID: sid, Endpoints: x.nodes[sid].endpoints})
	}
	if ni.mesh {
		scope = append(scope, ScopeMesh)
		if k, ok := x.gossip[n.GossipPool]; ok {
			b.GossipKey = &GossipKey{Pool: n.GossipPool, KeyID: k.KeyID, Key: k.Key}
		}
		for _, id := range x.meshPeers[nodeID] {
			b.Peers = append(b.Peers, x.peer(id, RelationMesh))
		}
		for _, id := range x.consumers[nodeID] {
			b.Peers = append(b.Peers, x.peer(id, RelationConsumer))
		}
		slices.SortFunc(b.Peers, func(a, c Peer) int { return cmp.Compare(a.NodeID, c.NodeID) })
		b.RoutePolicy, b.QoSPolicy = x.routePolicy, x.qosPolicy
	} else if ups := x.uplinks[nodeID]; len(ups) > 0 {
		scope = append(scope, ScopeUplinks)
		for _, id := range ups {
			b.Uplinks = append(b.Uplinks, x.peer(id, RelationUplink))
		}
	}
	orgs := map[string]bool{}
	if ni.has(domain.RoleEntryNode) {
		scope = append(scope, ScopeEntry)
		b.TokenValidation = x.token
		for _, p := range x.entry {
			if p.OrganizationID == "" || allowsOrg(ni, domain.RoleEntryNode, p.OrganizationID) {
				b.EntryPolicies = append(b.EntryPolicies, p)
			}
		}
	}
	res, con := map[string]bool{}, map[string]bool{}
	for _, s := range x.services[nodeID] {
		if !ni.has(s.Role) || (s.OrganizationID != "" && !allowsOrg(ni, s.Role, s.OrganizationID)) {
			continue
		}
		b.Services = append(b.Services, s)
		if s.OrganizationID != "" {
			orgs[s.OrganizationID] = true
		}
		for _, id := range s.ResourceRefs {
			if r := x.resources[id]; r != nil && r.OrganizationID == s.OrganizationID && !res[id] {
				res[id] = true
				b.Resources = append(b.Resources, ResourceRef{ID: r.ID, OrganizationID: r.OrganizationID, Protocol: r.Protocol,
					Address: r.Address, Port: r.Port, EgressPoolID: r.EgressPoolID, CredentialRef: r.CredentialRef})
			}
		}
		for _, id := range s.ConnectorRefs {
			if c := x.connectors[id]; c != nil && c.OrganizationID == s.OrganizationID && !con[id] {
				con[id] = true
				b.Connectors = append(b.Connectors, ConnectorRef{ID: c.ID, OrganizationID: c.OrganizationID, Type: c.Type,
					Endpoint: c.Endpoint, CredentialRef: c.CredentialRef})
			}
		}
	}
	for _, p := range x.pools[nodeID] {
		for r := range egressRoles {
			if ni.has(r) && (p.OrganizationID == "" || allowsOrg(ni, r, p.OrganizationID)) {
				b.EgressPools = append(b.EgressPools, EgressPoolRef{ID: p.ID, OrganizationID: p.OrganizationID, Name: p.Name})
				if p.OrganizationID != "" {
					orgs[p.OrganizationID] = true
				}
				break
			}
		}
	}
	b.OrgAccess = x.orgAccess[nodeID]
	if len(b.Services) > 0 || len(b.EgressPools) > 0 || len(b.OrgAccess) > 0 {
		scope = append(scope, ScopeServices)
	}
	slices.SortFunc(b.Resources, func(a, c ResourceRef) int { return cmp.Compare(a.ID, c.ID) })
	slices.SortFunc(b.Connectors, func(a, c ConnectorRef) int { return cmp.Compare(a.ID, c.ID) })
	slices.SortFunc(b.EgressPools, func(a, c EgressPoolRef) int { return cmp.Compare(a.ID, c.ID) })
	b.EgressPools = slices.CompactFunc(b.EgressPools, func(a, c EgressPoolRef) bool { return a.ID == c.ID })
	for _, id := range sortedKeys(orgs) {
		ref := OrgRef{ID: id}
		if o := x.orgs[id]; o != nil {
			ref.Name = o.Name
		}
		b.Organizations = append(b.Organizations, ref)
	}
	if ni.has(domain.RoleConfigStorage) {
		scope = append(scope, ScopeConfigStorage)
		b.CacheNodes = x.cacheNodes[nodeID]
	}
	b.Telemetry = append(b.Telemetry, x.flagsCluster...)
	b.Telemetry = append(b.Telemetry, x.flagsNode[nodeID]...)
	for _, o := range b.Organizations {
		b.Telemetry = append(b.Telemetry, x.flagsOrg[o.ID]...)
	}
	slices.SortFunc(b.Telemetry, func(a, c TelemetryFlag) int {
		return cmp.Or(cmp.Compare(a.Scope, c.Scope), cmp.Compare(a.TargetID, c.TargetID), cmp.Compare(a.Name, c.Name))
	})
	slices.Sort(scope)
	return b, scope, nil
}

func (x *Index) peer(id, rel string) Peer {
	ni := x.nodes[id]
	return Peer{NodeID: id, NoisePublicKey: ni.n.NoisePublicKey, IdentityPublicKey: ni.n.IdentityPublicKey, Endpoints: ni.endpoints,
		Region: ni.n.Region, Relation: rel, RoleHints: ni.roles, Organizations: ni.orgs}
}

// allowsOrg reports whether ni holds role r unrestricted or restricted to org.
func allowsOrg(ni *nodeInfo, r domain.Role, org string) bool {
	for _, g := range ni.grants {
		if g.Role == r && (g.OrganizationID == "" || g.OrganizationID == org) {
			return true
		}
	}
	return false
}

func groupPath(groups map[string]*Group, id string) []string {
	var path []string
	for seen := 0; id != "" && seen <= len(groups); seen++ {
		g := groups[id]
		if g == nil {
			break
		}
		path = append(path, g.ID)
		id = g.ParentID
	}
	slices.Reverse(path)
	return path
}

// forbiddenKey reports whether a JSON object key looks like it holds a
// credential rather than a reference to one.
func forbiddenKey(k string) bool {
	var sb strings.Builder
	sb.Grow(len(k))
	for i := 0; i < len(k); i++ {
		if c := k[i]; c != '_' && c != '-' {
			sb.WriteByte(c)
		}
	}
	k = strings.ToLower(sb.String())
	if strings.HasSuffix(k, "ref") || strings.HasSuffix(k, "refs") {
		return false
	}
	for _, bad := range []string{"password", "passwd", "secret", "privatekey", "apikey", "passphrase", "credential"} {
		if strings.Contains(k, bad) {
			return true
		}
	}
	return false
}

// canonJSON validates a JSON document, refuses credential-like keys and
// returns it with sorted object keys and no insignificant whitespace.
func canonJSON(raw json.RawMessage, what string) (json.RawMessage, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil || dec.More() {
		return nil, fmt.Errorf("%w: %s is not one JSON value", ErrInvalidState, what)
	}
	if k := findForbidden(v); k != "" {
		return nil, fmt.Errorf("%w: %s has credential-like key %q (use a *_ref)", ErrInvalidState, what, k)
	}
	out, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInvalidState, what, err)
	}
	return out, nil
}

func findForbidden(v any) string {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			if forbiddenKey(k) {
				return k
			}
			if f := findForbidden(e); f != "" {
				return f
			}
		}
	case []any:
		for _, e := range t {
			if f := findForbidden(e); f != "" {
				return f
			}
		}
	}
	return ""
}

func sortedCopy(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return sortedUnique(slices.Clone(s))
}

func sortedUnique(s []string) []string {
	slices.Sort(s)
	return slices.Compact(s)
}

func sortedKeys(m map[string]bool) []string {
	if len(m) == 0 {
		return nil
	}
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// authorityState is what a body says of the cluster's partition state:
// nothing when normal.
func authorityState(s domain.PartitionState) domain.PartitionState {
	if s == domain.PartitionNormal {
		return ""
	}
	return s
}

// checkCARoots validates the cluster's CA roots and sorts them by key id:
// at most one active root, no duplicate key ids, a certificate each.
func checkCARoots(roots []CARoot) ([]CARoot, error) {
	if len(roots) == 0 {
		return nil, nil
	}
	out := slices.Clone(roots)
	slices.SortFunc(out, func(a, b CARoot) int { return strings.Compare(a.KeyID, b.KeyID) })
	active := 0
	for i, r := range out {
		switch {
		case r.KeyID == "" || len(r.Certificate) == 0:
			return nil, fmt.Errorf("%w: CA root without key id or certificate", ErrInvalidState)
		case i > 0 && out[i-1].KeyID == r.KeyID:
			return nil, fmt.Errorf("%w: duplicate CA root %s", ErrInvalidState, r.KeyID)
		case r.Status == CARootActive:
			active++
		case r.Status != CARootPrevious:
			return nil, fmt.Errorf("%w: CA root %s has status %q", ErrInvalidState, r.KeyID, r.Status)
		}
	}
	if active != 1 {
		return nil, fmt.Errorf("%w: %d active CA roots, want 1", ErrInvalidState, active)
	}
	return out, nil
}
