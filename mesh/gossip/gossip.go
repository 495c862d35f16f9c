package gossip

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/memberlist"
)

// Directory is the signed peer directory as gossip needs it. Implementations
// must be safe for concurrent use and cheap: they are called from
// memberlist's goroutines for every record received.
type Directory interface {
	// Lookup returns the node's Ed25519 identity key and X25519 noise key.
	Lookup(nodeID string) (identityPub ed25519.PublicKey, noisePub []byte, ok bool)
	// Revoked reports whether the node is in the revocation list.
	Revoked(nodeID string) bool
}

// GossipKeyLen is the length of the per-cluster gossip key (AES-256).
const GossipKeyLen = 32

// DefaultProbeInterval replaces memberlist.DefaultLANConfig's 1 s probe
// interval when Config.Base is nil. A dead member is declared after the
// suspicion timeout, SuspicionMult (4) × log10(members) × ProbeInterval
// once two others confirm the suspicion: 6.8 s at 50 members with 1 s,
// which with the probe that finds it put "seen dead by all" at 9–10 s
// (BenchmarkGossip50). At 750 ms the timeout is 5.1 s; the two confirmations
// stay, and the probe traffic (one ping per member per interval) is a third
// more.
const DefaultProbeInterval = 750 * time.Millisecond

// Config configures one Gossip instance.
type Config struct {
	// NodeID is this node's id; it is the memberlist node name. Required.
	NodeID string
	// ClusterID is the cluster gossiped in. Required.
	ClusterID string
	// IdentityKey is this node's Ed25519 identity key; it signs the record.
	// Required.
	IdentityKey ed25519.PrivateKey
	// GossipKey is the cluster's 32-byte gossip key from the signed snapshot
	// (memberlist SecretKey). Required.
	GossipKey []byte
	// Directory verifies received records. Required.
	Directory Directory
	// Endpoints are this node's mesh UDP addresses (at most MaxEndpoints).
	Endpoints []netip.AddrPort
	// Region is this node's region.
	Region string
	// Load is this node's initial load, 0..1.
	Load float64

	// BindAddr and BindPort are the gossip listen address (default
	// 0.0.0.0:7946; port 0 picks a free port for both TCP and UDP).
	BindAddr string
	BindPort int
	// AdvertiseAddr and AdvertisePort are what other members dial (default:
	// derived from the bind address).
	AdvertiseAddr string
	AdvertisePort int
	// Transport replaces memberlist's network transport (tests); when set,
	// Bind* are ignored.
	Transport memberlist.Transport

	// Base is the memberlist configuration to start from (timers, etc.;
	// default memberlist.DefaultLANConfig()). Name, addresses, SecretKey,
	// Label, delegates and logging are always overwritten.
	Base *memberlist.Config
	// Logger receives memberlist's log lines (levels inferred), at most
	// LogBurst lines per LogInterval (defaults DefaultLogBurst,
	// DefaultLogInterval); Stats.LogSuppressed counts the rest. Default: none.
	Logger      hclog.Logger
	LogBurst    int
	LogInterval time.Duration
	// Clock supplies record incarnations. Default time.Now.
	Clock func() time.Time
}

// Candidate is a peer gossip proposes: a verified record plus measured RTT.
// It authorizes nothing.
type Candidate struct {
	NodeID      string
	Endpoints   []netip.AddrPort
	Region      string
	Load        float64
	Incarnation uint64
	// RTT is an EWMA of memberlist probe round trips; 0 means unmeasured.
	RTT time.Duration
	// LastRTT is the most recent probe round trip.
	LastRTT time.Duration
	// GossipAddr is the member's memberlist address (informational).
	GossipAddr string
}

// Stats count what the instance did with received records.
type Stats struct {
	Accepted uint64 // records accepted (join or update)
	Rejected uint64 // records ignored (any verification failure)
	Left     uint64 // members seen leaving or dead
	// SigChecks counts Ed25519 record verifications performed; a record
	// byte-identical to the one already accepted for its member is not
	// checked again (see verify).
	SigChecks uint64
	// LogSuppressed counts memberlist log lines dropped by the log rate
	// limit (e.g. one per junk packet at the gossip port).
	LogSuppressed uint64
}

type member struct {
	rec     Record
	meta    []byte // the accepted signed record, as received
	pub     ed25519.PublicKey
	addr    string
	rtt     time.Duration
	lastRTT time.Duration
}

// Gossip is one memberlist instance in one cluster.
type Gossip struct {
	cfg  Config
	ml   *memberlist.Memberlist
	self ed25519.PublicKey
	logs *logThrottle

	mu      sync.Mutex
	meta    []byte
	rec     Record
	members map[string]*member
	// checked holds, per member, the last record that passed the full
	// check, accepted or not yet: memberlist checks a new member's alive
	// message (NotifyAlive) and then announces it (NotifyJoin), and a join
	// burst repeats both, so without it each new record was verified twice
	// or more. Bounded by the Directory's members.
	checked  map[string]*member
	seen     map[string]uint64 // newest incarnation accepted per node
	lastErr  map[string]error  // last rejection per member name (bounded)
	shutdown bool

	changes                             chan struct{}
	accepted, rejected, left, sigChecks atomic.Uint64
}

// rttAlpha is the EWMA weight of a new RTT sample.
const rttAlpha = 0.25

// maxLastErr bounds the rejection diagnostics table.
const maxLastErr = 256

func (c *Config) validate() error {
	var errs []error
	bad := func(f string, a ...any) { errs = append(errs, fmt.Errorf(f, a...)) }
	if c.NodeID == "" || len(c.NodeID) > MaxIDLen {
		bad("NodeID must be 1..%d bytes", MaxIDLen)
	}
	if c.ClusterID == "" || len(c.ClusterID) > MaxIDLen {
		bad("ClusterID must be 1..%d bytes", MaxIDLen)
	}
	if len(c.IdentityKey) != ed25519.PrivateKeySize {
		bad("IdentityKey must be an Ed25519 private key")
	}
	if len(c.GossipKey) != GossipKeyLen {
		bad("GossipKey must be %d bytes (got %d)", GossipKeyLen, len(c.GossipKey))
	}
	if c.Directory == nil {
		bad("Directory is nil")
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrConfig, errors.Join(errs...))
	}
	return nil
}

// New validates cfg, signs this node's record and starts memberlist
// (listening, not yet joined). Call Join with the snapshot's seeds.
func New(cfg Config) (*Gossip, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	g := &Gossip{
		cfg:     cfg,
		self:    cfg.IdentityKey.Public().(ed25519.PublicKey),
		members: map[string]*member{},
		checked: map[string]*member{},
		seen:    map[string]uint64{},
		lastErr: map[string]error{},
		changes: make(chan struct{}, 1),
		rec: Record{
			ClusterID: cfg.ClusterID, NodeID: cfg.NodeID,
			Endpoints: append([]netip.AddrPort(nil), cfg.Endpoints...),
			Region:    cfg.Region, Load: cfg.Load,
		},
	}
	if err := g.resign(); err != nil {
		return nil, fmt.Errorf("%w: record: %w", ErrConfig, err)
	}

	var mc *memberlist.Config
	if cfg.Base != nil {
		c := *cfg.Base
		mc = &c
	} else {
		mc = memberlist.DefaultLANConfig()
		mc.ProbeInterval = DefaultProbeInterval
	}
	mc.Name = cfg.NodeID
	if cfg.Transport != nil {
		mc.Transport = cfg.Transport
	} else {
		mc.Transport = nil
		mc.BindAddr = cfg.BindAddr
		if mc.BindAddr == "" {
			mc.BindAddr = "0.0.0.0"
		}
		mc.BindPort = cfg.BindPort
	}
	mc.AdvertiseAddr = cfg.AdvertiseAddr
	mc.AdvertisePort = cfg.AdvertisePort
	if mc.AdvertiseAddr == "" {
		mc.AdvertisePort = 0
	}
	mc.SecretKey = append([]byte(nil), cfg.GossipKey...)
	mc.Keyring = nil
	mc.GossipVerifyIncoming, mc.GossipVerifyOutgoing = true, true
	// No lzw compression of gossip: memberlist allocates a 16 KB table per
	// compressed packet, which at 200 members was a fifth of the CPU and
	// most of the GC (BenchmarkGossip200: join max 10.2 s → 5.6 s, CPU
	// halved). Receivers of every version read plain and compressed
	// messages alike, so members with and without this setting mix; the
	// gossip bytes grow, which is small beside the mesh's traffic.
	mc.EnableCompression = false
	mc.Label = "rap-fabric/" + cfg.ClusterID
	d := &delegate{g: g}
	mc.Delegate, mc.Events, mc.Ping, mc.Alive = d, d, d, d
	mc.Merge, mc.Conflict = nil, nil
	mc.LogOutput = nil
	g.logs = newLogThrottle(cfg.Logger, cfg.Clock, cfg.LogBurst, cfg.LogInterval)
	mc.Logger = log.New(g.logs, "", 0)

	ml, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("gossip: memberlist: %w", err)
	}
	g.ml = ml
	return g, nil
}

// resign signs g.rec with a fresh incarnation. Caller holds g.mu or owns g.
func (g *Gossip) resign() error {
	inc := uint64(g.cfg.Clock().UnixNano())
	if inc <= g.rec.Incarnation {
		inc = g.rec.Incarnation + 1
	}
	r := g.rec
	r.Incarnation = inc
	meta, err := EncodeRecord(r, g.cfg.IdentityKey)
	if err != nil {
		return err
	}
	g.rec, g.meta = r, meta
	return nil
}

// Join contacts every seed ("host:port"; the snapshot's peer list) and
// returns how many answered. It fails with ErrJoin only if none did.
func (g *Gossip) Join(seeds []string) (int, error) {
	n, err := g.ml.Join(seeds)
	if n == 0 {
		return 0, fmt.Errorf("%w: %d seeds: %w", ErrJoin, len(seeds), err)
	}
	return n, nil
}

// Addr returns the memberlist address others should use as a seed.
func (g *Gossip) Addr() string {
	n := g.ml.LocalNode()
	return net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port)))
}

// Record returns this node's current (signed) record.
func (g *Gossip) Record() Record {
	g.mu.Lock()
	defer g.mu.Unlock()
	r := g.rec
	r.Endpoints = append([]netip.AddrPort(nil), r.Endpoints...)
	return r
}

// Update re-signs this node's record with new endpoints and load and
// gossips it (memberlist UpdateNode, waiting up to timeout).
func (g *Gossip) Update(endpoints []netip.AddrPort, load float64, timeout time.Duration) error {
	g.mu.Lock()
	if g.shutdown {
		g.mu.Unlock()
		return ErrShutdown
	}
	old := g.rec
	g.rec.Endpoints = append([]netip.AddrPort(nil), endpoints...)
	g.rec.Load = load
	if err := g.resign(); err != nil {
		g.rec = old
		g.mu.Unlock()
		return err
	}
	g.mu.Unlock()
	return g.ml.UpdateNode(timeout)
}

// Candidates returns the verified, alive, non-revoked peers (never this
// node), sorted by node id. Revocation and key changes in the Directory take
// effect here at once, even before Reverify.
func (g *Gossip) Candidates() []Candidate {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]Candidate, 0, len(g.members))
	for id, m := range g.members {
		if !g.stillValid(id, m) {
			continue
		}
		out = append(out, Candidate{
			NodeID: id, Endpoints: append([]netip.AddrPort(nil), m.rec.Endpoints...),
			Region: m.rec.Region, Load: m.rec.Load, Incarnation: m.rec.Incarnation,
			RTT: m.rtt, LastRTT: m.lastRTT, GossipAddr: m.addr,
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].NodeID < out[j].NodeID })
	return out
}

// stillValid re-checks a stored member against the current directory.
func (g *Gossip) stillValid(id string, m *member) bool {
	if g.cfg.Directory.Revoked(id) {
		return false
	}
	pub, _, ok := g.cfg.Directory.Lookup(id)
	return ok && bytes.Equal(pub, m.pub)
}

// Reverify drops members that no longer verify against the Directory (call
// it after a directory update) and signals Changes if any were dropped.
func (g *Gossip) Reverify() int {
	g.mu.Lock()
	n := 0
	for id, m := range g.members {
		if !g.stillValid(id, m) {
			delete(g.members, id)
			n++
		}
	}
	g.mu.Unlock()
	if n > 0 {
		g.notify()
	}
	return n
}

// Changes returns a channel that receives a value (coalesced, never
// blocking the sender) whenever the candidate set or a candidate's record
// changed. RTT updates do not signal.
func (g *Gossip) Changes() <-chan struct{} { return g.changes }

// LastRejection returns why the last record from the memberlist member
// named name was ignored, if it was.
func (g *Gossip) LastRejection(name string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.lastErr[name]
}

// Stats returns the counters.
func (g *Gossip) Stats() Stats {
	return Stats{Accepted: g.accepted.Load(), Rejected: g.rejected.Load(), Left: g.left.Load(), SigChecks: g.sigChecks.Load(), LogSuppressed: g.logs.total.Load()}
}

// NumMembers returns memberlist's count of alive members, this node
// included, verified or not (diagnostics only).
func (g *Gossip) NumMembers() int { return g.ml.NumMembers() }

// Leave announces departure to the cluster, waiting up to timeout.
func (g *Gossip) Leave(timeout time.Duration) error {
	if err := g.ml.Leave(timeout); err != nil {
		return fmt.Errorf("gossip: leave: %w", err)
	}
	return nil
}

// Shutdown stops memberlist without announcing (peers will see this node
// fail). Call Leave first for a clean exit. Safe to call twice.
func (g *Gossip) Shutdown() error {
	g.mu.Lock()
	g.shutdown = true
	g.mu.Unlock()
	if err := g.ml.Shutdown(); err != nil {
		return fmt.Errorf("gossip: shutdown: %w", err)
	}
	return nil
}

func (g *Gossip) notify() {
	select {
	case g.changes <- struct{}{}:
	default:
	}
}

// verify checks a member's meta; it does not store anything.
//
// memberlist hands every member's meta to NotifyAlive for each alive
// message and for every member in every push/pull merge (a join pushes and
// pulls the whole membership), holding its node lock: at 50 members a join
// burst delivers hundreds of thousands of copies of unchanged records. Meta
// byte-identical to the record already accepted for that member (or to this
// node's own) is therefore not verified again, as long as the Directory
// still holds the key it was verified with and does not revoke the node.
// Anything else, including every older or changed record, takes the full
// check.
func (g *Gossip) verify(n *memberlist.Node) (Record, ed25519.PublicKey, error) {
	if len(n.Meta) == 0 || len(n.Meta) > memberlist.MetaMaxSize {
		return Record{}, nil, fmt.Errorf("%w: meta is %d bytes", ErrMalformed, len(n.Meta))
	}
	if rec, pub, ok := g.alreadyVerified(n); ok {
		return rec, pub, nil
	}
	claimed, _, _, err := DecodeRecord(n.Meta)
	if err != nil {
		return Record{}, nil, err
	}
	if claimed.ClusterID != g.cfg.ClusterID {
		return Record{}, nil, fmt.Errorf("%w: %q", ErrOtherCluster, claimed.ClusterID)
	}
	if claimed.NodeID != n.Name {
		return Record{}, nil, fmt.Errorf("%w: member %q carries record of %q", ErrNameMismatch, n.Name, claimed.NodeID)
	}
	pub := g.self
	if n.Name != g.cfg.NodeID {
		if g.cfg.Directory.Revoked(n.Name) {
			return Record{}, nil, fmt.Errorf("%w: %q", ErrRevoked, n.Name)
		}
		var ok bool
		pub, _, ok = g.cfg.Directory.Lookup(n.Name)
		if !ok {
			return Record{}, nil, fmt.Errorf("%w: %q", ErrUnknownNode, n.Name)
		}
	}
	g.sigChecks.Add(1)
	rec, err := VerifyRecord(n.Meta, pub)
	if err != nil {
		return Record{}, nil, err
	}
	g.mu.Lock()
	seen := g.seen[n.Name]
	g.mu.Unlock()
	if rec.Incarnation < seen {
		return Record{}, nil, fmt.Errorf("%w: %q incarnation %d < %d", ErrStale, n.Name, rec.Incarnation, seen)
	}
	if n.Name != g.cfg.NodeID {
		g.mu.Lock()
		g.checked[n.Name] = &member{rec: rec, meta: bytes.Clone(n.Meta), pub: pub}
		g.mu.Unlock()
	}
	return rec, pub, nil
}

// alreadyVerified returns the stored record when n carries exactly the meta
// already accepted for it (this node's own current meta included), or the
// last one that passed the full check, and the Directory still vouches for
// the key it was verified with.
func (g *Gossip) alreadyVerified(n *memberlist.Node) (Record, ed25519.PublicKey, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if n.Name == g.cfg.NodeID {
		if bytes.Equal(n.Meta, g.meta) {
			return g.rec, g.self, true
		}
		return Record{}, nil, false
	}
	if m := g.members[n.Name]; m != nil && bytes.Equal(n.Meta, m.meta) && g.stillValid(n.Name, m) {
		return m.rec, m.pub, true
	}
	// A record checked but not accepted yet (or no longer), still no older
	// than the newest accepted one.
	if c := g.checked[n.Name]; c != nil && bytes.Equal(n.Meta, c.meta) && g.stillValid(n.Name, c) && c.rec.Incarnation >= g.seen[n.Name] {
		return c.rec, c.pub, true
	}
	return Record{}, nil, false
}

func (g *Gossip) reject(name string, err error) {
	g.rejected.Add(1)
	g.mu.Lock()
	if _, ok := g.lastErr[name]; ok || len(g.lastErr) < maxLastErr {
		g.lastErr[name] = err
	}
	g.mu.Unlock()
	g.cfg.Logger.Debug("ignoring gossip record", "member", name, "error", err)
}

// upsert stores a verified member seen by the event delegate.
func (g *Gossip) upsert(n *memberlist.Node) {
	if n.Name == g.cfg.NodeID {
		return
	}
	rec, pub, err := g.verify(n)
	if err != nil {
		g.reject(n.Name, err)
		g.mu.Lock()
		_, had := g.members[n.Name]
		if had && !errors.Is(err, ErrStale) {
			delete(g.members, n.Name)
		}
		g.mu.Unlock()
		if had {
			g.notify()
		}
		return
	}
	g.accepted.Add(1)
	g.mu.Lock()
	m := g.members[n.Name]
	changed := m == nil || m.rec.Incarnation != rec.Incarnation
	if m == nil {
		m = &member{}
		g.members[n.Name] = m
	}
	m.rec, m.pub, m.addr = rec, pub, n.Address()
	if !bytes.Equal(m.meta, n.Meta) {
		m.meta = bytes.Clone(n.Meta)
	}
	if rec.Incarnation > g.seen[n.Name] {
		g.seen[n.Name] = rec.Incarnation
	}
	delete(g.lastErr, n.Name)
	g.mu.Unlock()
	if changed {
		g.notify()
	}
}

// delegate adapts Gossip to memberlist's delegate interfaces. Its methods
// run on memberlist goroutines, some with memberlist locks held: they take
// only g.mu and never call back into memberlist.
type delegate struct{ g *Gossip }

// NodeMeta returns the signed record.
func (d *delegate) NodeMeta(limit int) []byte {
	d.g.mu.Lock()
	defer d.g.mu.Unlock()
	if len(d.g.meta) > limit {
		return nil
	}
	return append([]byte(nil), d.g.meta...)
}

// NotifyMsg ignores user messages: this package sends none.
func (d *delegate) NotifyMsg([]byte) {}

// GetBroadcasts has nothing to broadcast.
func (d *delegate) GetBroadcasts(int, int) [][]byte { return nil }

// LocalState carries no state: records travel as node meta.
func (d *delegate) LocalState(bool) []byte { return nil }

// MergeRemoteState ignores remote state.
func (d *delegate) MergeRemoteState([]byte, bool) {}

// NotifyAlive refuses members whose record does not verify, so memberlist
// does not even track them.
func (d *delegate) NotifyAlive(n *memberlist.Node) error {
	if _, _, err := d.g.verify(n); err != nil {
		if n.Name != d.g.cfg.NodeID {
			d.g.reject(n.Name, err)
		}
		return err
	}
	return nil
}

// NotifyJoin stores a verified member.
func (d *delegate) NotifyJoin(n *memberlist.Node) { d.g.upsert(n) }

// NotifyUpdate re-verifies a member's new record.
func (d *delegate) NotifyUpdate(n *memberlist.Node) { d.g.upsert(n) }

// NotifyLeave drops a member that left or was declared dead.
func (d *delegate) NotifyLeave(n *memberlist.Node) {
	d.g.mu.Lock()
	_, had := d.g.members[n.Name]
	delete(d.g.members, n.Name)
	d.g.mu.Unlock()
	if had {
		d.g.left.Add(1)
		d.g.notify()
	}
}

// AckPayload adds nothing to acks.
func (d *delegate) AckPayload() []byte { return nil }

// NotifyPingComplete records the probe RTT of a verified member.
func (d *delegate) NotifyPingComplete(other *memberlist.Node, rtt time.Duration, _ []byte) {
	if other == nil || rtt <= 0 {
		return
	}
	d.g.mu.Lock()
	defer d.g.mu.Unlock()
	m := d.g.members[other.Name]
	if m == nil {
		return
	}
	m.lastRTT = rtt
	if m.rtt == 0 {
		m.rtt = rtt
	} else {
		m.rtt = time.Duration(rttAlpha*float64(rtt) + (1-rttAlpha)*float64(m.rtt))
	}
}
