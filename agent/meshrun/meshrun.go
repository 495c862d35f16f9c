package meshrun

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/memberlist"

	"github.com/rap-fabric/core/domain"
	"github.com/rap-fabric/core/mesh/channel"
	"github.com/rap-fabric/core/mesh/e2e"
	"github.com/rap-fabric/core/mesh/gossip"
	"github.com/rap-fabric/core/mesh/link"
	"github.com/rap-fabric/core/mesh/peers"
	"github.com/rap-fabric/core/mesh/qos"
	"github.com/rap-fabric/core/mesh/routing"
	"github.com/rap-fabric/core/mesh/udpconn"
	"github.com/rap-fabric/core/snapshot"
)

// Config configures a Node.
type Config struct {
	// ClusterID and NodeID identify this membership. Required.
	ClusterID, NodeID string
	// NoiseKey is the membership's X25519 static private key. Required.
	NoiseKey channel.Key
	// Listen is the UDP address to bind; "" means 0.0.0.0:0.
	Listen string
	// Advertise overrides the advertised endpoints (host:port). Empty means
	// the bound address, or every up, non-loopback interface address with
	// the bound port when bound to an unspecified address.
	Advertise []string
	// NoDirect lists peers this node never links to directly even when the
	// directory allows it (a drill and test knob: traffic to them is
	// relayed). Their keys stay known for end-to-end sessions.
	NoDirect []string
	// Tick is the period of the routing and forwarding timers (default
	// 100 ms). LinkTick, ProbeInterval, ProbeTimeout go to the link
	// Manager (defaults 100 ms, 250 ms, 1.5 s; the link Manager shortens the
	// probe timeout to 4 × RTT, at least 400 ms, once it has measured RTT).
	Tick, LinkTick, ProbeInterval, ProbeTimeout time.Duration
	// RouteUpdate is the routing full-refresh period (default 5 s).
	RouteUpdate time.Duration
	// Timers are the channel timers (default channel.DefaultTimers).
	Timers channel.Timers
	// IdentityKey is the membership's Ed25519 identity key; it signs this
	// node's gossip record. Without it gossip stays off.
	IdentityKey ed25519.PrivateKey
	// Region is this node's region (gossip record).
	Region string
	// GossipPort is the memberlist TCP+UDP port on the mesh listen address
	// (0: any free port; it is advertised as a "gossip://" endpoint).
	GossipPort int
	// GossipBase is the memberlist configuration to start from (default
	// memberlist.DefaultLANConfig; tests use faster timers).
	GossipBase *memberlist.Config
	// LinkRate paces each peer link's mesh traffic (routing messages and
	// end-to-end frames, not link probes) in bytes per second; 0 leaves it
	// unpaced. LinkBurst is what a paced link may send at once after being
	// idle (default LinkRate/20, at least 16 KiB). LinkQueue bounds and
	// weights each link's send queue (mesh/qos defaults).
	LinkRate, LinkBurst int64
	LinkQueue           qos.Config
	// Logger defaults to a null logger.
	Logger hclog.Logger
}

// Peer is one entry of the directory handed to Update.
type Peer struct {
	NodeID   string
	NoiseKey channel.Key
	// IdentityKey is the peer's Ed25519 identity key (gossip records are
	// verified against it); nil when the directory has none.
	IdentityKey ed25519.PublicKey
	Endpoints   []netip.AddrPort
	// GossipAddrs are the peer's memberlist addresses (join seeds).
	GossipAddrs []string
	Region      string
	Relation    string
	Roles       []domain.Role
	// Organizations are the ids of the organizations the peer serves
	// (none: shared infrastructure).
	Organizations []string
}

// Directory is what a verified snapshot says about the mesh.
type Directory struct {
	// Version orders directories (the snapshot version).
	Version uint64
	// Peers are the peer directory entries and uplinks.
	Peers []Peer
	// RevokedNodes and RevokedFingerprints come from the revocation list
	// (fingerprints as snapshot.Fingerprint of a noise key).
	RevokedNodes        []string
	RevokedFingerprints []string
	// Relay says whether this node may carry traffic for others (mesh
	// roles).
	Relay bool
	// GossipKey is the cluster's 32-byte memberlist key (mesh roles) and
	// GossipKeyID its generation; without a key gossip stays off.
	GossipKey   []byte
	GossipKeyID string
	// Intents are the cluster's route intents from the snapshot's route
	// policy (mesh roles); SelfRegion, SelfRoles and SelfGroups place this
	// node for their selectors. A pair a deny intent names is refused by
	// routing (no route installed or advertised) and by the forwarder (not
	// sent, relayed or accepted).
	Intents    []routing.Intent
	SelfRegion string
	SelfRoles  []domain.Role
	SelfGroups []string
	// SelfOrganizations are the organizations this node serves. Traffic
	// between two nodes that serve organizations but none in common is
	// neither originated, accepted nor relayed (organization scope) unless
	// CrossOrganization — the route policy's "cross_organization": true —
	// lifts it for the cluster.
	SelfOrganizations []string
	CrossOrganization bool
}

// FromSnapshot converts a verified snapshot body into a Directory. Entries
// with a malformed noise key are skipped; endpoints that are not UDP
// host:port addresses (for example https:// storage endpoints) are ignored.
func FromSnapshot(version uint64, b snapshot.Body) Directory {
	d := Directory{Version: version, RevokedNodes: slices.Clone(b.Revocations.NodeIDs), RevokedFingerprints: slices.Clone(b.Revocations.KeyFingerprints)}
	for _, r := range b.Roles {
		if r.Role == domain.RoleRelayNode || r.Role == domain.RoleCoreMesh {
			d.Relay = true
		}
	}
	if b.GossipKey != nil {
		d.GossipKey, d.GossipKeyID = slices.Clone(b.GossipKey.Key), b.GossipKey.KeyID
	}
	d.Intents = routeIntents(b.RoutePolicy)
	d.CrossOrganization = crossOrganization(b.RoutePolicy)
	d.SelfOrganizations = slices.Clone(b.Self.Organizations)
	d.SelfRegion, d.SelfGroups = b.Self.Region, slices.Clone(b.Membership.GroupPath)
	for _, r := range b.Roles {
		d.SelfRoles = append(d.SelfRoles, r.Role)
	}
	seen := map[string]bool{}
	for _, p := range append(slices.Clone(b.Peers), b.Uplinks...) {
		k, err := channel.KeyFromBytes(p.NoisePublicKey)
		if err != nil || seen[p.NodeID] || p.NodeID == "" {
			continue
		}
		seen[p.NodeID] = true
		var idk ed25519.PublicKey
		if len(p.IdentityPublicKey) == ed25519.PublicKeySize {
			idk = ed25519.PublicKey(slices.Clone(p.IdentityPublicKey))
		}
		d.Peers = append(d.Peers, Peer{NodeID: p.NodeID, NoiseKey: k, IdentityKey: idk, Endpoints: ParseEndpoints(p.Endpoints),
			GossipAddrs: gossipSeeds(p.Endpoints), Region: p.Region, Relation: p.Relation, Roles: p.RoleHints, Organizations: slices.Clone(p.Organizations)})
	}
	return d
}

// routeIntents reads "route_intents" from a route policy document (signed
// and canonical, so it parses; anything else yields none).
func routeIntents(doc []byte) []routing.Intent {
	if len(doc) == 0 {
		return nil
	}
	var p struct {
		Intents []routing.Intent `json:"route_intents"`
	}
	if json.Unmarshal(doc, &p) != nil {
		return nil
	}
	return p.Intents
}

// crossOrganization reads "cross_organization" from a route policy
// document: only a JSON true lifts organization scope (anything else keeps
// it: fail closed).
func crossOrganization(doc []byte) bool {
	if len(doc) == 0 {
		return false
	}
	var p struct {
		Cross json.RawMessage `json:"cross_organization"`
	}
	return json.Unmarshal(doc, &p) == nil && string(p.Cross) == "true"
}

// ParseEndpoints keeps the UDP host:port endpoints of a list.
func ParseEndpoints(ss []string) []netip.AddrPort {
	var out []netip.AddrPort
	for _, s := range ss {
		if a, err := netip.ParseAddrPort(strings.TrimPrefix(s, "udp://")); err == nil {
			out = append(out, a)
		}
	}
	return out
}

// socketBuffer is the receive and send buffer requested for the mesh socket.
const socketBuffer = 4 << 20

// Node is one membership's running mesh.
type Node struct {
	cfg  Config
	log  hclog.Logger
	m    *link.Manager
	r    *routing.Router
	f    *e2e.Forwarder
	adv  []string
	nodi map[string]bool

	mu      sync.Mutex
	keys    map[string]channel.Key // e2e keys: the directory minus revoked
	known   map[string]channel.Key // every key ever seen (to revoke by fingerprint)
	dirVer  uint64
	linkSet map[string]routing.Metric
	linkUp  map[string]bool
	pol     routing.Policy
	closed  bool

	gsp       *gossipState // running gossip, nil when off
	gossipOff string       // why gossip is off
	seeds     []seed
	gossipPtr atomic.Pointer[gossip.Gossip]
	gdir      atomic.Pointer[gossipDir]

	sendMu sync.RWMutex
	sendq  map[string]*qos.Link // per peer link: the QoS send queue
}

// New binds the socket and builds the link manager, router and forwarder.
// Nothing runs until Run.
func New(cfg Config) (*Node, error) {
	if cfg.ClusterID == "" || cfg.NodeID == "" || cfg.NoiseKey.IsZero() {
		return nil, fmt.Errorf("%w: ClusterID, NodeID and NoiseKey are required", ErrConfig)
	}
	if cfg.Listen == "" {
		cfg.Listen = "0.0.0.0:0"
	}
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&cfg.Tick, 100*time.Millisecond)
	def(&cfg.LinkTick, 100*time.Millisecond)
	def(&cfg.ProbeInterval, 250*time.Millisecond)
	def(&cfg.ProbeTimeout, 1500*time.Millisecond)
	def(&cfg.RouteUpdate, 5*time.Second)
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	pc, err := net.ListenPacket("udp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("%w: mesh listen %s: %w", ErrConfig, cfg.Listen, err)
	}
	if uc, ok := pc.(*net.UDPConn); ok {
		// Tunnelled TCP bursts overflow the default buffer (about 200 KiB)
		// and every overflow is a lost packet; the kernel caps the request
		// at net.core.rmem_max / wmem_max.
		_ = uc.SetReadBuffer(socketBuffer)
		_ = uc.SetWriteBuffer(socketBuffer)
	}
	n := &Node{cfg: cfg, log: cfg.Logger, keys: map[string]channel.Key{}, known: map[string]channel.Key{},
		linkSet: map[string]routing.Metric{}, linkUp: map[string]bool{}, nodi: map[string]bool{}, sendq: map[string]*qos.Link{}}
	for _, id := range cfg.NoDirect {
		n.nodi[id] = true
	}
	n.m, err = link.New(link.Config{NodeID: cfg.NodeID, NoiseKey: cfg.NoiseKey, PacketConn: pc, Timers: cfg.Timers,
		TickInterval: cfg.LinkTick, ProbeInterval: cfg.ProbeInterval, ProbeTimeout: cfg.ProbeTimeout,
		// Two lost probes in a row take a link down: with 250 ms probes and
		// the 400 ms adaptive floor, a cut link stops carrying routes in
		// about 0.7–0.9 s (the PERFORMANCE aim is 1 s), while one late reply
		// on a busy host only raises the link's cost.
		DownAfter: 2,
		Class:     peers.ClassRelay, Deliver: n.deliver, Logger: cfg.Logger.Named("link"), Candidates: n.candidates})
	if err != nil {
		pc.Close()
		return nil, err
	}
	n.pol = &routing.ScopePolicy{ID: cfg.NodeID, Self: routing.Scope{Cluster: cfg.ClusterID}, Nodes: map[string]routing.Scope{}, NoTransit: map[string]bool{cfg.NodeID: true}}
	// SwitchMargin: link costs come from probe RTTs, so two equal-cost relay
	// paths jitter around each other; keep the next hop unless the
	// alternative is clearly (routeSwitchMargin) cheaper.
	n.r, err = routing.New(routing.Config{Self: cfg.NodeID, UpdateInterval: cfg.RouteUpdate, RequestInterval: 200 * time.Millisecond, Policy: n.pol,
		SwitchMargin: routeSwitchMargin, Send: func(to string, msg []byte) { _ = n.send(to, qos.Control, bytes.Clone(msg)) }})
	if err != nil {
		n.m.Close()
		return nil, err
	}
	n.f, err = e2e.New(e2e.Config{Self: cfg.NodeID, ClusterID: cfg.ClusterID, PrivateKey: cfg.NoiseKey, Routes: n.r, Rand: rand.Reader,
		Policy: n, PeerKey: n.peerKey, HandshakeRetry: 300 * time.Millisecond,
		Send: func(to string, frame []byte) error { return n.send(to, e2e.ClassOf(frame), frame) }})
	if err != nil {
		n.m.Close()
		return nil, err
	}
	e2e.ServeEcho(n.f)
	n.adv = advertise(cfg.Advertise, n.m.LocalAddr())
	return n, nil
}

// send is the mesh send path: frames for a peer go through that link's QoS
// queue, which sends at once while the link is idle and, while it is backed
// up (another goroutine is sending to the peer, or LinkRate is used up),
// sends the queued frames control first, then by weighted round robin over
// the other classes, up to 32 at a time in one batched write (link
// SendBatch: sendmmsg, and UDP GSO for runs of equal-sized packets). The
// link takes frame.
func (n *Node) send(to string, c qos.Class, frame []byte) error {
	n.sendMu.RLock()
	l := n.sendq[to]
	n.sendMu.RUnlock()
	if l == nil {
		n.sendMu.Lock()
		if l = n.sendq[to]; l == nil {
			l = qos.NewLink(func(b []byte) error { return n.m.Send(to, b) },
				qos.LinkConfig{Queue: n.cfg.LinkQueue, Rate: n.cfg.LinkRate, Burst: n.cfg.LinkBurst,
					SendBatch: func(bs [][]byte) (int, error) { return n.m.SendBatch(to, bs) }})
			n.sendq[to] = l
		}
		n.sendMu.Unlock()
	}
	return l.Send(c, frame)
}

// dropSendQueue closes a removed peer's send queue (what waits is lost).
func (n *Node) dropSendQueue(id string) {
	n.sendMu.Lock()
	l := n.sendq[id]
	delete(n.sendq, id)
	n.sendMu.Unlock()
	if l != nil {
		l.Close()
	}
}

// SendQueueStats returns the QoS send queue counters of the link to peer
// (false when nothing was sent to it).
func (n *Node) SendQueueStats(peer string) (qos.LinkStats, bool) {
	n.sendMu.RLock()
	l := n.sendq[peer]
	n.sendMu.RUnlock()
	if l == nil {
		return qos.LinkStats{}, false
	}
	return l.Stats(), true
}

// Policy methods delegate to the router's current policy (kept in step by
// Update) so the forwarder and the router agree.
func (n *Node) policy() routing.Policy {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.pol
}

// AllowDestination implements routing.Policy for the forwarder.
func (n *Node) AllowDestination(dst string) bool { return n.policy().AllowDestination(dst) }

// AllowTransit implements routing.Policy for the forwarder.
func (n *Node) AllowTransit(via, dst string) bool { return n.policy().AllowTransit(via, dst) }

// AllowRelay implements routing.Policy for the forwarder.
func (n *Node) AllowRelay(from, dst string) bool { return n.policy().AllowRelay(from, dst) }

func advertise(explicit []string, local netip.AddrPort) []string {
	if len(explicit) > 0 {
		return slices.Clone(explicit)
	}
	if !local.Addr().IsUnspecified() {
		return []string{local.String()}
	}
	var out []string
	ifs, _ := net.Interfaces()
	for _, i := range ifs {
		if i.Flags&net.FlagUp == 0 || i.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, _ := i.Addrs()
		for _, a := range addrs {
			p, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			ip, ok := netip.AddrFromSlice(p.IP)
			if !ok || ip.IsLinkLocalUnicast() || (local.Addr().Is4() && !ip.Unmap().Is4()) {
				continue
			}
			out = append(out, netip.AddrPortFrom(ip.Unmap(), local.Port()).String())
		}
	}
	if len(out) == 0 {
		out = []string{netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), local.Port()).String()}
	}
	sort.Strings(out)
	return out
}

// Endpoints returns the advertised endpoints: the UDP endpoints (host:port)
// and, while gossip runs, its memberlist address ("gossip://host:port").
func (n *Node) Endpoints() []string {
	out := slices.Clone(n.adv)
	if g := n.gossipEndpoint(); g != "" {
		out = append(out, g)
	}
	return out
}

// candidates feeds the link manager with gossip's verified proposals.
func (n *Node) candidates(string) []gossip.Candidate {
	if g := n.gossipPtr.Load(); g != nil {
		return g.Candidates()
	}
	return nil
}

// LocalAddr returns the bound socket address.
func (n *Node) LocalAddr() netip.AddrPort { return n.m.LocalAddr() }

func (n *Node) peerKey(id string) (channel.Key, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	k, ok := n.keys[id]
	return k, ok
}

func (n *Node) deliver(_, from string, payload []byte) {
	if len(payload) == 0 {
		return
	}
	switch payload[0] {
	case routing.Magic:
		_ = n.r.HandleMessage(from, payload)
	case e2e.Magic:
		_ = n.f.HandleFrame(from, bytes.Clone(payload))
	}
}

// Update applies a directory from a newer verified snapshot: links to peers
// removed or revoked are torn down before it returns, routes through them
// withdrawn, and the end-to-end keys and routing policy replaced.
func (n *Node) Update(d Directory) (link.UpdateResult, error) {
	revokedFP := map[string]bool{}
	for _, f := range d.RevokedFingerprints {
		revokedFP[f] = true
	}
	revokedNode := map[string]bool{}
	for _, id := range d.RevokedNodes {
		revokedNode[id] = true
	}
	ld := link.Directory{ClusterID: n.cfg.ClusterID, Version: d.Version, RevokedNodes: slices.Clone(d.RevokedNodes)}
	keys := map[string]channel.Key{}
	pol := &routing.ScopePolicy{ID: n.cfg.NodeID, Self: routing.Scope{Cluster: n.cfg.ClusterID, Orgs: slices.Clone(d.SelfOrganizations)},
		Nodes: map[string]routing.Scope{}, NoTransit: map[string]bool{}, CrossOrg: d.CrossOrganization}
	if !d.Relay {
		pol.NoTransit[n.cfg.NodeID] = true
	}
	n.mu.Lock()
	for _, p := range d.Peers {
		n.known[p.NodeID] = p.NoiseKey
	}
	for id, k := range n.known {
		if revokedFP[snapshot.Fingerprint(k[:])] {
			ld.RevokedKeys = append(ld.RevokedKeys, k)
			revokedNode[id] = true
		}
	}
	for _, p := range d.Peers {
		if p.NodeID == n.cfg.NodeID || revokedNode[p.NodeID] {
			continue
		}
		keys[p.NodeID] = p.NoiseKey
		pol.Nodes[p.NodeID] = routing.Scope{Cluster: n.cfg.ClusterID, Orgs: slices.Clone(p.Organizations)}
		if !isMesh(p) {
			pol.NoTransit[p.NodeID] = true
		}
		if n.nodi[p.NodeID] {
			continue
		}
		ld.Peers = append(ld.Peers, link.PeerEntry{NodeID: p.NodeID, NoiseKey: p.NoiseKey, IdentityKey: p.IdentityKey, Endpoints: p.Endpoints,
			Roles: p.Roles, Region: p.Region})
	}
	var rpol routing.Policy = pol
	if len(d.Intents) > 0 {
		infos := map[string]routing.NodeInfo{n.cfg.NodeID: {Region: d.SelfRegion, Roles: roleNames(d.SelfRoles), Groups: d.SelfGroups}}
		for _, p := range d.Peers {
			if _, ok := pol.Nodes[p.NodeID]; ok {
				infos[p.NodeID] = routing.NodeInfo{Region: p.Region, Roles: roleNames(p.Roles)}
			}
		}
		rpol = routing.NewIntentPolicy(pol, n.cfg.NodeID, d.Intents, infos)
	}
	n.keys, n.pol, n.dirVer = keys, rpol, d.Version
	n.mu.Unlock()
	sort.Slice(ld.RevokedKeys, func(i, j int) bool { return bytes.Compare(ld.RevokedKeys[i][:], ld.RevokedKeys[j][:]) < 0 })
	res, err := n.m.UpdateDirectory(ld)
	if err != nil {
		return res, err
	}
	n.r.SetPolicy(rpol)
	for _, id := range append(slices.Clone(res.Removed), res.Revoked...) {
		n.r.RemoveLink(id)
		n.dropSendQueue(id)
		n.mu.Lock()
		delete(n.linkSet, id)
		delete(n.linkUp, id)
		n.mu.Unlock()
	}
	if len(res.Revoked) > 0 || len(res.Removed) > 0 {
		n.log.Info("mesh peers torn down by a new directory", "version", d.Version, "revoked", res.Revoked, "removed", res.Removed)
	}
	n.updateGossip(d)
	return res, nil
}

func isMesh(p Peer) bool {
	if p.Relation == snapshot.RelationMesh || p.Relation == snapshot.RelationUplink {
		return true
	}
	return slices.Contains(p.Roles, domain.RoleRelayNode) || slices.Contains(p.Roles, domain.RoleCoreMesh)
}

// Run runs the link manager and the routing/forwarding timers until ctx
// ends.
func (n *Node) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = n.m.Run(ctx) }()
	t := time.NewTicker(n.cfg.Tick)
	defer t.Stop()
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		n.syncLinks()
		n.r.Tick()
		n.f.Tick()
		n.joinMissing(false)
	}
}

// syncLinks feeds the router from the link probes: an up link with its
// quantized cost, a link that is not up as down.
func (n *Node) syncLinks() {
	for _, s := range n.m.Status() {
		up := s.State == link.LinkUp
		cost := quantize(routing.CostFromRTT(s.RTT, s.Loss))
		n.mu.Lock()
		prevUp, had := n.linkUp[s.NodeID]
		prevCost := n.linkSet[s.NodeID]
		change := !had && up || had && (prevUp != up || up && prevCost != cost)
		if change {
			n.linkUp[s.NodeID], n.linkSet[s.NodeID] = up, cost
		}
		n.mu.Unlock()
		if change {
			_ = n.r.SetLink(s.NodeID, cost, up)
		}
	}
}

// routeSwitchMargin is the routing hysteresis: a different next hop must be
// more than 10 % cheaper than the current one to replace it. A direct link
// (about half the cost of a one-relay path) still wins back at once.
const routeSwitchMargin = 0.1

// quantize keeps about two significant digits so that probe jitter does not
// trigger a routing update per probe.
func quantize(m routing.Metric) routing.Metric {
	step := routing.Metric(1)
	for v := m; v >= 100; v /= 10 {
		step *= 10
	}
	q := (m / step) * step
	if q < 1 {
		q = 1
	}
	return q
}

// ProbeResult is a mesh ping: the path taken and the round trips.
type ProbeResult struct {
	Destination string   `json:"destination"`
	Path        []string `json:"path"`
	Reverse     []string `json:"reverse,omitempty"`
	SetupRTTMs  float64  `json:"setup_rtt_ms"`
	RTTMs       float64  `json:"rtt_ms"`
	EchoRTTMs   float64  `json:"echo_rtt_ms,omitempty"`
}

// Ping probes dst (path and RTT over an end-to-end flow) and then sends one
// echo message through the echo service.
func (n *Node) Ping(ctx context.Context, dst string) (ProbeResult, error) {
	if _, ok := n.peerKey(dst); !ok {
		return ProbeResult{}, fmt.Errorf("%w: %s", ErrUnknownNode, dst)
	}
	r, err := n.f.Probe(ctx, dst)
	if err != nil {
		return ProbeResult{}, err
	}
	out := ProbeResult{Destination: dst, Path: r.Path, Reverse: r.Reverse, SetupRTTMs: ms(r.SetupRTT), RTTMs: ms(r.RTT)}
	if rtt, err := n.Echo(ctx, dst, []byte("rap-mesh-ping")); err == nil {
		out.EchoRTTMs = ms(rtt)
	}
	return out, nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Echo sends msg to dst's echo service over a new end-to-end flow and waits
// for it to come back; it returns the round trip of the message (including
// the end-to-end handshake).
func (n *Node) Echo(ctx context.Context, dst string, msg []byte) (time.Duration, error) {
	c, err := n.f.DialServiceClass(dst, e2e.EchoService, qos.Interactive)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	start := time.Now()
	if err := c.Send(msg); err != nil {
		return 0, err
	}
	got, err := c.Recv(ctx)
	if err != nil {
		return 0, err
	}
	if !bytes.Equal(got, msg) {
		return 0, errors.New("meshrun: echo returned different bytes")
	}
	return time.Since(start), nil
}

// DialEcho opens an end-to-end flow to dst's echo service (benchmarks and
// long-running checks reuse one flow).
func (n *Node) DialEcho(dst string) (*e2e.Conn, error) { return n.f.DialService(dst, e2e.EchoService) }

// LinkStatus is one peer link as shown by `rap-node-agent status`.
type LinkStatus struct {
	NodeID        string    `json:"node_id"`
	State         string    `json:"state"`
	Set           string    `json:"set"`
	Reason        string    `json:"reason,omitempty"`
	Endpoint      string    `json:"endpoint,omitempty"`
	RTTMs         float64   `json:"rtt_ms"`
	Loss          float64   `json:"loss"`
	LastHandshake time.Time `json:"last_handshake,omitzero"`
	// DownSince is when the link was detected down (RFC 3339, UTC); absent
	// unless State is "down".
	DownSince time.Time `json:"down_since,omitzero"`
	// QueueLen is how many frames wait in the link's QoS send queue now,
	// QueueDropped how many it dropped (full) since the link appeared.
	QueueLen     int    `json:"queue_len,omitempty"`
	QueueDropped uint64 `json:"queue_dropped,omitempty"`
}

// RouteStatus is one destination of the routing table.
type RouteStatus struct {
	Destination string `json:"destination"`
	NextHop     string `json:"next_hop"`
	Cost        uint16 `json:"cost"`
	Hops        int    `json:"hops"`
}

// Status is the mesh of one membership.
type Status struct {
	Listen           string        `json:"listen"`
	Endpoints        []string      `json:"endpoints"`
	DirectoryVersion uint64        `json:"directory_version"`
	DirectoryPeers   int           `json:"directory_peers"`
	Links            []LinkStatus  `json:"links"`
	Routes           []RouteStatus `json:"routes"`
	E2EDelivered     uint64        `json:"e2e_delivered"`
	E2EForwarded     uint64        `json:"e2e_forwarded"`
	// E2ESent counts end-to-end frames this node originated, E2EHandshakes
	// the end-to-end handshakes it completed (either side), and E2EDropped
	// the frames it dropped by reason (ttl, no_route, policy, replay, auth,
	// malformed, no_session, queue); reasons that never happened are absent.
	E2ESent           uint64            `json:"e2e_sent"`
	E2EHandshakes     uint64            `json:"e2e_handshakes"`
	E2EDropped        map[string]uint64 `json:"e2e_dropped,omitempty"`
	Gossip            string            `json:"gossip"`
	GossipDetail      GossipStatus      `json:"gossip_detail"`
	NoDirect          []string          `json:"no_direct,omitempty"`
	RouteTableVersion uint64            `json:"-"`
}

// Status reports links, routes and forwarding counters.
func (n *Node) Status() Status {
	n.mu.Lock()
	s := Status{Listen: n.m.LocalAddr().String(), Endpoints: slices.Clone(n.adv), DirectoryVersion: n.dirVer, DirectoryPeers: len(n.keys),
		NoDirect: slices.Clone(n.cfg.NoDirect), Links: []LinkStatus{}, Routes: []RouteStatus{}}
	n.mu.Unlock()
	s.GossipDetail, s.Gossip = n.gossipStatus()
	for _, p := range n.m.Status() {
		l := LinkStatus{NodeID: p.NodeID, State: string(p.State), Set: string(p.Set), Reason: p.Reason, RTTMs: ms(p.RTT), Loss: p.Loss, LastHandshake: p.LastHandshake}
		if p.Endpoint.IsValid() {
			l.Endpoint = p.Endpoint.String()
		}
		if !p.DownSince.IsZero() {
			l.DownSince = p.DownSince.UTC()
		}
		if qs, ok := n.SendQueueStats(p.NodeID); ok {
			l.QueueLen, l.QueueDropped = qs.Len, qs.Dropped
		}
		s.Links = append(s.Links, l)
	}
	for _, r := range n.r.Table() {
		if r.Dst == n.cfg.NodeID {
			continue
		}
		s.Routes = append(s.Routes, RouteStatus{Destination: r.Dst, NextHop: r.NextHop, Cost: uint16(r.Cost), Hops: r.Hops})
	}
	st := n.f.Stats()
	s.E2EDelivered, s.E2EForwarded = st.Delivered, st.Forwarded
	s.E2ESent, s.E2EHandshakes = st.Sent, st.HandshakesComplete
	drops := e2eDrops(st)
	for i, reason := range E2EDropReasons {
		if drops[i] != 0 {
			if s.E2EDropped == nil {
				s.E2EDropped = map[string]uint64{}
			}
			s.E2EDropped[reason] = drops[i]
		}
	}
	return s
}

// E2EDropReasons are the keys of Status.E2EDropped, in a fixed order.
var E2EDropReasons = []string{"ttl", "no_route", "policy", "replay", "auth", "malformed", "no_session", "queue"}

// e2eDrops returns st's drop counters in the order of E2EDropReasons.
func e2eDrops(st e2e.Stats) []uint64 {
	return []uint64{st.DroppedTTL, st.DroppedNoRoute, st.DroppedPolicy, st.DroppedReplay, st.DroppedAuth,
		st.DroppedMalformed, st.DroppedNoSession, st.DroppedQueue}
}

// Reports returns the link inventory rows for the control plane.
func (n *Node) Reports() []link.LinkReport { return n.m.Reports() }

// Close closes the socket and every channel.
func (n *Node) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	n.mu.Unlock()
	n.sendMu.Lock()
	for id, l := range n.sendq {
		l.Close()
		delete(n.sendq, id)
	}
	n.sendMu.Unlock()
	n.stopGossip()
	return n.m.Close()
}

// ChannelStats returns the cumulative Noise channel counters of this
// membership (handshakes, sessions, refusals; for metrics).
func (n *Node) ChannelStats() (channel.Stats, bool) { return n.m.ChannelStats(n.cfg.ClusterID) }

// SocketStats returns the mesh socket's counters, among them the batched
// sends that went out as UDP GSO messages and the coalesced reads.
func (n *Node) SocketStats() udpconn.Stats { return n.m.SocketStats() }

func roleNames(rs []domain.Role) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = string(r)
	}
	return out
}
