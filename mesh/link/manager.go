package link

import (
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/rap-fabric/core/domain"
	"github.com/rap-fabric/core/mesh/channel"
	"github.com/rap-fabric/core/mesh/gossip"
	"github.com/rap-fabric/core/mesh/peers"
	"github.com/rap-fabric/core/mesh/udpconn"
	"github.com/rap-fabric/core/mesh/wire"
)

// Config configures a Manager. Zero durations and counts take defaults.
type Config struct {
	// NodeID is this node's id (skipped when found in a directory). Required.
	NodeID string
	// NoiseKey is this node's X25519 static private key, used in every
	// cluster. Required.
	NoiseKey channel.Key
	// PacketConn is the mesh UDP socket; the Manager takes ownership and
	// closes it in Close. Required.
	PacketConn net.PacketConn
	// ExternalReceive: do not start socket readers; the caller feeds every
	// datagram to HandleDatagram (in-process networks such as mesh/netsim).
	ExternalReceive bool
	// Readers is the number of socket reader goroutines (default 1).
	Readers int

	// Clock defaults to time.Now.
	Clock func() time.Time
	// Rand supplies channel randomness (default crypto/rand). The Manager
	// serializes reads, so a non-thread-safe seeded source is fine.
	Rand io.Reader
	// NewTicker makes Run's ticker (default time.NewTicker); stop releases it.
	NewTicker func(time.Duration) (c <-chan time.Time, stop func())
	// TickInterval is Run's period (default 250 ms).
	TickInterval time.Duration
	// Timers are the channel protocol timers (default channel.DefaultTimers).
	Timers channel.Timers

	// ProbeInterval is how often each active link is probed (default 1 s).
	ProbeInterval time.Duration
	// ProbeTimeout is the longest an unanswered probe waits before it counts
	// as lost (default 3 s). Once a link has a measured RTT, a probe counts as
	// lost after an RTO-like 4 × smoothed RTT, but never sooner than
	// MinProbeTimeout nor later than ProbeTimeout: a cut link is noticed in
	// about one probe interval plus MinProbeTimeout, not ProbeTimeout.
	ProbeTimeout time.Duration
	// MinProbeTimeout is the floor of the adaptive probe timeout (default
	// 400 ms, at most ProbeTimeout). It absorbs scheduling jitter on a busy
	// host (a reply later than it counts as a lost probe, which makes the
	// router prefer another path for a while).
	MinProbeTimeout time.Duration
	// DownAfter consecutive lost probes mark an established link down
	// (default 3).
	DownAfter int
	// RotateAfter: a peer not reachable for this long is dialled at its next
	// known endpoint (default 30 s).
	RotateAfter time.Duration

	// Class, Limits, Weights, Region, PreferredRoles configure peers.Selector.
	Class          peers.Class
	Limits         peers.Limits
	Weights        *peers.Weights
	Region         string
	PreferredRoles []domain.Role
	RegionDistance func(from, to string) float64

	// Candidates returns gossip's current proposals for a cluster (typically
	// (*gossip.Gossip).Candidates). Called once per Tick per cluster, with
	// the Manager's lock held; it must not call back into the Manager. May be
	// nil. Candidates not in the directory are ignored.
	Candidates func(clusterID string) []gossip.Candidate
	// Deliver receives upper-layer payloads. payload is valid only during
	// the call. Called from socket reader goroutines (or HandleDatagram's
	// caller) without Manager locks held. May be nil.
	Deliver func(clusterID, peerNodeID string, payload []byte)
	// Logger defaults to a null logger.
	Logger hclog.Logger
}

func (c *Config) fill() error {
	var errs []error
	if c.NodeID == "" {
		errs = append(errs, errors.New("NodeID is empty"))
	}
	if c.NoiseKey.IsZero() {
		errs = append(errs, errors.New("NoiseKey is zero"))
	}
	if c.PacketConn == nil {
		errs = append(errs, errors.New("PacketConn is nil"))
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrConfig, errors.Join(errs...))
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.NewTicker == nil {
		c.NewTicker = func(d time.Duration) (<-chan time.Time, func()) {
			t := time.NewTicker(d)
			return t.C, t.Stop
		}
	}
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.TickInterval, 250*time.Millisecond)
	def(&c.ProbeInterval, time.Second)
	def(&c.ProbeTimeout, 3*time.Second)
	def(&c.MinProbeTimeout, 400*time.Millisecond)
	c.MinProbeTimeout = min(c.MinProbeTimeout, c.ProbeTimeout)
	def(&c.RotateAfter, 30*time.Second)
	if c.DownAfter <= 0 {
		c.DownAfter = 3
	}
	if c.Logger == nil {
		c.Logger = hclog.NewNullLogger()
	}
	return nil
}

// Payload framing inside a channel: one type byte, then the body.
const (
	msgData       = 0
	msgProbe      = 1 // seq(4)
	msgProbeReply = 2 // seq(4)
	probeLen      = 5
)

// MaxPayload is the largest payload Send accepts.
const MaxPayload = wire.MaxPacketLen - wire.MinDataLen - 1

// maxOutstanding bounds unanswered probes kept per peer.
const maxOutstanding = 16

// EWMA weights.
const (
	rttAlpha         = 0.25
	lossAlpha        = 0.2
	reliabilityAlpha = 0.02
)

// Manager is one node's link runtime. Safe for concurrent use.
type Manager struct {
	cfg  Config
	conn *udpconn.Conn
	pub  channel.Key
	rand *lockedReader

	mu       sync.Mutex // guards clusters and all per-peer control state
	clusters map[string]*cluster
	order    []string
	closed   bool

	bufs    sync.Pool
	batches sync.Pool // *[][]byte for SendBatch
}

type cluster struct {
	m      *Manager
	id     string
	prefix uint8
	ep     *channel.Endpoint
	sel    *peers.Selector
	ver    uint64
	auth   atomic.Pointer[authTable]
	peers  map[string]*peerState // authorized directory peers by node id

	obsMu  sync.Mutex // leaf lock: written by the endpoint's Observer
	lastHS map[channel.Key]time.Time
}

type peerState struct {
	entry      PeerEntry
	gossipEPs  []netip.AddrPort
	gossipRTT  time.Duration
	gossipLoad float64
	inGossip   bool

	set        peers.Set
	reason     string
	score      float64
	inEndpoint bool
	persistent bool
	dial       netip.AddrPort
	epIdx      int
	lastRotate time.Time

	probeSeq    uint32
	outstanding map[uint32]time.Time
	lastProbe   time.Time
	rtt         time.Duration
	loss        float64
	reliability float64
	consecLost  int
	probesSent  uint64
	probesLost  uint64
	everUp      bool
	down        bool
	// downSince is when down last became true (the Tick that detected the
	// failure); zero while the link is not down.
	downSince time.Time
}

type lockedReader struct {
	mu sync.Mutex
	r  io.Reader
}

func (l *lockedReader) Read(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.Read(p)
}

// New validates cfg, wraps the socket and (unless ExternalReceive) starts
// its readers. Clusters appear with their first UpdateDirectory.
func New(cfg Config) (*Manager, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	pub, err := channel.PublicKey(cfg.NoiseKey)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	m := &Manager{cfg: cfg, pub: pub, clusters: map[string]*cluster{}}
	if cfg.Rand != nil {
		m.rand = &lockedReader{r: cfg.Rand}
	}
	m.bufs.New = func() any { b := make([]byte, 0, 2048); return &b }
	m.batches.New = func() any { return new([][]byte) }
	m.conn = udpconn.New(cfg.PacketConn, udpconn.Options{Readers: cfg.Readers, OnError: func(err error) {
		cfg.Logger.Debug("mesh socket error", "error", err)
	}})
	if !cfg.ExternalReceive {
		m.conn.Start()
	}
	return m, nil
}

// PublicKey returns this node's noise public key.
func (m *Manager) PublicKey() channel.Key { return m.pub }

// LocalAddr returns the mesh socket's address (what gossip should advertise).
func (m *Manager) LocalAddr() netip.AddrPort { return m.conn.LocalAddr() }

// HandleDatagram feeds one received datagram (ExternalReceive mode).
func (m *Manager) HandleDatagram(pkt []byte, from netip.AddrPort) { m.conn.Dispatch(pkt, from) }

// GossipDirectory returns a gossip.Directory view of the cluster's current
// signed directory, for gossip.Config.Directory. It follows later
// UpdateDirectory calls. Before the first directory it knows no one.
func (m *Manager) GossipDirectory(clusterID string) gossip.Directory {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, err := m.clusterLocked(clusterID)
	if err != nil {
		return emptyDirectory{}
	}
	return gossipDirectory{c: c}
}

type emptyDirectory struct{}

func (emptyDirectory) Lookup(string) (ed25519.PublicKey, []byte, bool) { return nil, nil, false }
func (emptyDirectory) Revoked(string) bool                             { return false }

// clusterLocked returns the cluster, creating its endpoint on first use.
func (m *Manager) clusterLocked(id string) (*cluster, error) {
	if c := m.clusters[id]; c != nil {
		return c, nil
	}
	if m.closed {
		return nil, ErrClosed
	}
	if len(m.clusters) >= 255 {
		return nil, ErrTooManyClusters
	}
	prefix := uint8(1)
	used := map[uint8]bool{}
	for _, c := range m.clusters {
		used[c.prefix] = true
	}
	for used[prefix] {
		prefix++
	}
	c := &cluster{m: m, id: id, prefix: prefix, peers: map[string]*peerState{}, lastHS: map[channel.Key]time.Time{}}
	c.auth.Store(newAuthTable(&Directory{ClusterID: id}, m.pub, m.cfg.NodeID, nil))
	sel, err := peers.New(peers.Config{
		Class: m.cfg.Class, Limits: m.cfg.Limits, Weights: m.cfg.Weights, Region: m.cfg.Region,
		RegionDistance: m.cfg.RegionDistance, PreferredRoles: m.cfg.PreferredRoles, Clock: m.cfg.Clock,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	c.sel = sel
	ccfg := channel.DefaultConfig()
	ccfg.ClusterID = id
	ccfg.PrivateKey = m.cfg.NoiseKey
	ccfg.Clock = m.cfg.Clock
	if m.rand != nil {
		ccfg.Rand = m.rand
	}
	ccfg.Timers = m.cfg.Timers
	ccfg.IndexPrefix = prefix
	ccfg.Send = m.conn.Send
	ccfg.SendBatch = m.conn.SendBatch
	ccfg.Deliver = c.deliver
	ccfg.Authorize = func(remote []byte) error { return c.auth.Load().authorize(remote) }
	ccfg.Observer = c.observe
	ep, err := channel.NewEndpoint(ccfg)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	c.ep = ep
	if err := m.conn.Attach(prefix, ep); err != nil {
		return nil, err
	}
	m.clusters[id] = c
	m.order = append(m.order, id)
	sort.Strings(m.order)
	return c, nil
}

// observe runs under the endpoint's lock: leaf lock only.
func (c *cluster) observe(ev channel.Event) {
	if ev.Kind != channel.EventSessionEstablished {
		return
	}
	now := c.m.cfg.Clock()
	c.obsMu.Lock()
	c.lastHS[ev.Peer] = now
	c.obsMu.Unlock()
}

func (c *cluster) lastHandshake(k channel.Key) time.Time {
	c.obsMu.Lock()
	defer c.obsMu.Unlock()
	return c.lastHS[k]
}

// deliver is the endpoint's Deliver: data path, no locks held on entry.
func (c *cluster) deliver(key channel.Key, payload []byte) {
	if len(payload) == 0 {
		return
	}
	id, ok := c.auth.Load().byKey[key]
	if !ok {
		return // revoked or removed while the packet was in flight
	}
	switch payload[0] {
	case msgData:
		if c.m.cfg.Deliver != nil {
			c.m.cfg.Deliver(c.id, id, payload[1:])
		}
	case msgProbe:
		if len(payload) == probeLen {
			var reply [probeLen]byte
			reply[0] = msgProbeReply
			copy(reply[1:], payload[1:])
			_ = c.ep.Send(key, reply[:])
		}
	case msgProbeReply:
		if len(payload) == probeLen {
			c.m.probeReply(c, id, binary.BigEndian.Uint32(payload[1:]))
		}
	}
}

func (m *Manager) probeReply(c *cluster, id string, seq uint32) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := c.peers[id]
	if p == nil {
		return
	}
	sent, ok := p.outstanding[seq]
	if !ok {
		return
	}
	delete(p.outstanding, seq)
	rtt := max(m.cfg.Clock().Sub(sent), time.Microsecond)
	if p.rtt == 0 {
		p.rtt = rtt
	} else {
		p.rtt = time.Duration(rttAlpha*float64(rtt) + (1-rttAlpha)*float64(p.rtt))
	}
	p.loss *= 1 - lossAlpha
	p.reliability = reliabilityAlpha + (1-reliabilityAlpha)*p.reliability
	p.consecLost = 0
}

// UpdateResult says what a directory update changed.
type UpdateResult struct {
	// Added are peers new to the directory.
	Added []string
	// Removed are peers no longer in the directory (channels closed).
	Removed []string
	// Revoked are peers revoked by this update (channels torn down and
	// their keys refused from now on).
	Revoked []string
}

// UpdateDirectory applies a verified directory for its cluster (creating the
// cluster's endpoint on first use). Authorization switches to it at once;
// channels of peers removed or revoked are torn down before it returns (D4),
// and the sets are reselected. The Manager keeps references to the
// entries' slices: do not modify d after passing it.
func (m *Manager) UpdateDirectory(d Directory) (UpdateResult, error) {
	var res UpdateResult
	if err := d.validate(); err != nil {
		return res, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	c, err := m.clusterLocked(d.ClusterID)
	if err != nil {
		return res, err
	}
	if d.Version < c.ver {
		return res, fmt.Errorf("%w: %d < %d", ErrStaleDirectory, d.Version, c.ver)
	}
	c.ver = d.Version
	d.Peers = slices.Clone(d.Peers)
	old := c.auth.Load()
	t := newAuthTable(&d, m.pub, m.cfg.NodeID, old.revokedKeys)
	c.auth.Store(t) // refuse new handshakes before tearing anything down

	for k := range t.revokedKeys {
		if !old.revokedKeys[k] {
			c.ep.RevokePeer(k)
		}
	}
	for _, id := range sortedKeys(c.peers) {
		p := c.peers[id]
		newID, ok := t.byKey[p.entry.NoiseKey]
		switch {
		case t.revokedKeys[p.entry.NoiseKey] || t.revokedNodes[id]:
			c.ep.RevokePeer(p.entry.NoiseKey)
			res.Revoked = append(res.Revoked, id)
		case !ok || newID != id:
			c.ep.ClosePeer(p.entry.NoiseKey)
			res.Removed = append(res.Removed, id)
		default:
			continue
		}
		delete(c.peers, id)
	}
	for _, e := range d.Peers {
		if id, ok := t.byKey[e.NoiseKey]; !ok || id != e.NodeID {
			continue
		}
		p := c.peers[e.NodeID]
		if p == nil {
			p = &peerState{outstanding: map[uint32]time.Time{}, reliability: 0.9, set: peers.Cold}
			c.peers[e.NodeID] = p
			res.Added = append(res.Added, e.NodeID)
		}
		p.entry = e
	}
	m.cfg.Logger.Debug("directory applied", "cluster", c.id, "version", d.Version,
		"added", res.Added, "removed", res.Removed, "revoked", res.Revoked)
	m.reconcileLocked(c, m.cfg.Clock())
	return res, nil
}

func sortedKeys[V any](mp map[string]V) []string {
	ks := make([]string, 0, len(mp))
	for k := range mp {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// Tick merges gossip candidates, probes active links, updates link health,
// reselects the sets and advances every endpoint's timers. Run calls it;
// deterministic tests call it directly.
func (m *Manager) Tick() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return
	}
	now := m.cfg.Clock()
	for _, id := range m.order {
		c := m.clusters[id]
		m.mergeGossipLocked(c)
		m.probeLocked(c, now)
		m.reconcileLocked(c, now)
		c.ep.Tick()
	}
}

// Run calls Tick every TickInterval until ctx ends, then returns ctx.Err().
func (m *Manager) Run(ctx context.Context) error {
	ch, stop := m.cfg.NewTicker(m.cfg.TickInterval)
	defer stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
			m.Tick()
		}
	}
}

func (m *Manager) mergeGossipLocked(c *cluster) {
	if m.cfg.Candidates == nil {
		return
	}
	for _, p := range c.peers {
		p.inGossip = false
	}
	for _, g := range m.cfg.Candidates(c.id) {
		p := c.peers[g.NodeID]
		if p == nil {
			continue // gossip proposes; only the directory admits
		}
		p.inGossip = true
		p.gossipEPs = slices.Clone(g.Endpoints)
		p.gossipRTT = g.RTT
		p.gossipLoad = g.Load
	}
}

// probeTimeout is when a probe to p counts as lost: 4 × its smoothed RTT
// within [MinProbeTimeout, ProbeTimeout], or ProbeTimeout before any reply.
func (m *Manager) probeTimeout(p *peerState) time.Duration {
	if p.rtt <= 0 {
		return m.cfg.ProbeTimeout
	}
	return min(max(4*p.rtt, m.cfg.MinProbeTimeout), m.cfg.ProbeTimeout)
}

// usable reports whether a channel state carries traffic.
func usable(s channel.State) bool {
	return s == channel.StateEstablished || s == channel.StateRekeying
}

func (m *Manager) probeLocked(c *cluster, now time.Time) {
	for _, id := range sortedKeys(c.peers) {
		p := c.peers[id]
		timeout := m.probeTimeout(p)
		for seq, sent := range p.outstanding {
			if now.Sub(sent) >= timeout {
				delete(p.outstanding, seq)
				p.loss = lossAlpha + (1-lossAlpha)*p.loss
				p.reliability *= 1 - reliabilityAlpha
				p.consecLost++
				p.probesLost++
			}
		}
		st := c.ep.PeerState(p.entry.NoiseKey)
		wasDown := p.down
		switch {
		case usable(st):
			p.down = p.consecLost >= m.cfg.DownAfter
			if !p.down {
				p.everUp = true
			}
		case st == channel.StateHandshaking:
			p.down = p.everUp
		default:
			p.down = false
		}
		if !p.down {
			p.downSince = time.Time{}
		}
		if p.down && !wasDown {
			p.downSince = now
			c.sel.RecordFailure(id)
			m.cfg.Logger.Info("link down", "cluster", c.id, "peer", id)
		}
		if p.set != peers.Active || !usable(st) || now.Sub(p.lastProbe) < m.cfg.ProbeInterval {
			continue
		}
		if len(p.outstanding) >= maxOutstanding {
			continue
		}
		p.probeSeq++
		var msg [probeLen]byte
		msg[0] = msgProbe
		binary.BigEndian.PutUint32(msg[1:], p.probeSeq)
		p.lastProbe = now
		if err := c.ep.Send(p.entry.NoiseKey, msg[:]); err == nil {
			p.outstanding[p.probeSeq] = now
			p.probesSent++
		}
	}
}

// addrs lists where a peer may be dialled: gossip's (fresh, self-signed)
// endpoints first, then the directory's, deduplicated.
func (p *peerState) addrs() []netip.AddrPort {
	var out []netip.AddrPort
	for _, a := range append(slices.Clone(p.gossipEPs), p.entry.Endpoints...) {
		if a.IsValid() && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

func (m *Manager) reconcileLocked(c *cluster, now time.Time) {
	var cands []peers.Candidate
	states := map[string]channel.State{}
	unreachable := map[string]bool{}
	for _, id := range sortedKeys(c.peers) {
		p := c.peers[id]
		st := c.ep.PeerState(p.entry.NoiseKey)
		states[id] = st
		if len(p.addrs()) == 0 && !usable(st) {
			unreachable[id] = true
			continue
		}
		lat := p.rtt
		if lat == 0 {
			lat = p.gossipRTT
		}
		trust := p.entry.Trust
		if trust == 0 {
			trust = 1
		}
		cands = append(cands, peers.Candidate{
			ID: id, Region: p.entry.Region, Latency: lat, Loss: p.loss, Reliability: p.reliability,
			Load: p.gossipLoad, Roles: p.entry.Roles, Trust: trust,
		})
	}
	sel := c.sel.Select(cands)
	for _, id := range sortedKeys(c.peers) {
		p := c.peers[id]
		if unreachable[id] {
			m.applyLocked(c, id, p, peers.Decision{ID: id, Set: peers.Cold, Reason: "cold: no endpoint known"}, states[id], now)
			continue
		}
		d, _ := sel.ByID(id)
		m.applyLocked(c, id, p, d, states[id], now)
	}
}

func (m *Manager) applyLocked(c *cluster, id string, p *peerState, d peers.Decision, st channel.State, now time.Time) {
	prev := p.set
	p.set, p.reason, p.score = d.Set, d.Reason, d.Score
	addrs := p.addrs()
	if !usable(st) && len(addrs) > 0 {
		i := slices.Index(addrs, p.dial)
		switch {
		case i < 0:
			p.epIdx, p.lastRotate = 0, now
		case now.Sub(p.lastRotate) >= m.cfg.RotateAfter && len(addrs) > 1:
			p.epIdx, p.lastRotate = (i+1)%len(addrs), now
		default:
			p.epIdx = i
		}
	}
	var dial netip.AddrPort
	if !usable(st) && len(addrs) > 0 {
		dial = addrs[p.epIdx%len(addrs)] // never overwrite a roamed address of a live session
	}
	switch d.Set {
	case peers.Active, peers.Warm:
		persistent := d.Set == peers.Active
		if !p.inEndpoint || p.persistent != persistent || (dial.IsValid() && dial != p.dial) {
			if err := c.ep.AddPeer(p.entry.NoiseKey, dial, channel.PeerOptions{Persistent: persistent}); err != nil {
				m.cfg.Logger.Debug("add peer", "cluster", c.id, "peer", id, "error", err)
				return
			}
			p.inEndpoint, p.persistent = true, persistent
			if dial.IsValid() {
				p.dial = dial
			}
		}
		if persistent && prev != peers.Active && st == channel.StateIdle && p.dial.IsValid() {
			_ = c.ep.Connect(p.entry.NoiseKey)
		}
	default:
		if p.inEndpoint && (prev == peers.Active || prev == peers.Warm) {
			c.ep.ClosePeer(p.entry.NoiseKey)
			p.inEndpoint, p.persistent = false, false
			clear(p.outstanding)
		}
	}
}

// Send frames payload for the upper layers and sends it to peerNodeID over
// the first cluster (by id) where a channel to it is up, else the first
// cluster whose directory has it. If no session is usable yet, a handshake
// starts and the channel error (channel.ErrNoSession) is returned: retry
// later. The payload is copied.
func (m *Manager) Send(peerNodeID string, payload []byte) error {
	if len(payload) > MaxPayload {
		return ErrTooLarge
	}
	c, key, err := m.route(peerNodeID)
	if err != nil {
		return err
	}
	bp := m.bufs.Get().(*[]byte)
	buf := append(append((*bp)[:0], msgData), payload...)
	err = c.ep.Send(key, buf)
	*bp = buf
	m.bufs.Put(bp)
	if err != nil {
		return fmt.Errorf("link: send to %s: %w", peerNodeID, err)
	}
	return nil
}

// SendBatch sends payloads to peerNodeID in order, as Send does each, with
// one route lookup and one batched write (channel.Endpoint.SendBatch: runs
// of equal-sized packets leave as one UDP GSO message where the socket has
// it). It returns how many were sent and the error that stopped the rest.
// The payloads are copied.
func (m *Manager) SendBatch(peerNodeID string, payloads [][]byte) (int, error) {
	for _, p := range payloads {
		if len(p) > MaxPayload {
			return 0, ErrTooLarge
		}
	}
	c, key, err := m.route(peerNodeID)
	if err != nil {
		return 0, err
	}
	bp := m.batches.Get().(*[][]byte)
	bufs := *bp
	for i, p := range payloads {
		if i == len(bufs) {
			bufs = append(bufs, make([]byte, 0, MaxPayload+1))
		}
		bufs[i] = append(append(bufs[i][:0], msgData), p...)
	}
	n, err := c.ep.SendBatch(key, bufs[:len(payloads)])
	*bp = bufs
	m.batches.Put(bp)
	if err != nil {
		return n, fmt.Errorf("link: send to %s: %w", peerNodeID, err)
	}
	return n, nil
}

func (m *Manager) route(id string) (*cluster, channel.Key, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, channel.Key{}, ErrClosed
	}
	var first *cluster
	var firstP *peerState
	for _, cid := range m.order {
		c := m.clusters[cid]
		p := c.peers[id]
		if p == nil {
			continue
		}
		if usable(c.ep.PeerState(p.entry.NoiseKey)) {
			return c, p.entry.NoiseKey, nil
		}
		if first == nil {
			first, firstP = c, p
		}
	}
	if first == nil {
		return nil, channel.Key{}, fmt.Errorf("%w: %s", ErrNotInDirectory, id)
	}
	if !firstP.inEndpoint { // cold peer: dial on demand, not kept up
		addrs := firstP.addrs()
		var dial netip.AddrPort
		if len(addrs) > 0 {
			dial = addrs[0]
		}
		if err := first.ep.AddPeer(firstP.entry.NoiseKey, dial, channel.PeerOptions{}); err != nil {
			return nil, channel.Key{}, err
		}
		firstP.inEndpoint, firstP.dial = true, dial
	}
	return first, firstP.entry.NoiseKey, nil
}

// ChannelStats returns the cluster endpoint's counters.
func (m *Manager) ChannelStats(clusterID string) (channel.Stats, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.clusters[clusterID]
	if c == nil {
		return channel.Stats{}, false
	}
	return c.ep.Stats(), true
}

// SocketStats returns the socket's counters (datagrams read, offloaded
// sends and reads, errors).
func (m *Manager) SocketStats() udpconn.Stats { return m.conn.Stats() }

// Close closes every endpoint and the socket.
func (m *Manager) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	for _, c := range m.clusters {
		c.ep.Close()
		m.conn.Detach(c.prefix)
	}
	m.mu.Unlock()
	return m.conn.Close()
}
