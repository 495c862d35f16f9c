package meshrun

// Gossip of one membership: a mesh/gossip memberlist started when the
// verified directory carries the cluster's gossip key and at least one peer
// identity key, restarted when the key changes, stopped when the directory
// loses either. Records are verified against the link manager's live
// directory view (identity keys from the signed snapshot; revocations apply
// at once). Gossip only proposes endpoints and RTTs to the link manager
// (Config.Candidates): it never authorizes a channel.

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/rap-fabric/core/mesh/gossip"
	"github.com/rap-fabric/core/snapshot"
)

// GossipEndpointPrefix marks the memberlist address among a node's advertised
// endpoints ("gossip://host:port"); the authority copies it into the peer
// directories and FromSnapshot reads it back as a join seed.
const GossipEndpointPrefix = "gossip://"

// joinRetry is how often an instance that misses directory peers retries
// their seeds.
const joinRetry = 2 * time.Second

// gossipState is the running gossip instance (guarded by Node.mu; the
// pointer itself is read lock-free by the link manager's Candidates hook).
type gossipState struct {
	g        *gossip.Gossip
	keyID    string
	key      []byte
	lastJoin time.Time
	joinErr  string
}

func gossipSeeds(ss []string) []string {
	var out []string
	for _, s := range ss {
		if rest, ok := strings.CutPrefix(s, GossipEndpointPrefix); ok {
			if _, err := netip.ParseAddrPort(rest); err == nil {
				out = append(out, rest)
			}
		}
	}
	return out
}

// gossipWanted says whether d allows gossip for this node and why not.
func (n *Node) gossipWanted(d Directory) (bool, string) {
	switch {
	case len(n.cfg.IdentityKey) != ed25519.PrivateKeySize:
		return false, "off: no identity key configured"
	case len(d.GossipKey) != gossip.GossipKeyLen:
		return false, "off: the signed directory carries no gossip key (not a mesh role)"
	}
	for _, p := range d.Peers {
		if len(p.IdentityKey) == ed25519.PublicKeySize {
			return true, ""
		}
	}
	return false, "off: no peer identity keys in the signed directory"
}

// updateGossip starts, restarts or stops gossip after a directory update.
// Called without n.mu held.
func (n *Node) updateGossip(d Directory) {
	want, why := n.gossipWanted(d)
	n.gdir.Store(newGossipDir(d))
	n.mu.Lock()
	cur := n.gsp
	n.seeds = nil
	for _, p := range d.Peers {
		if p.NodeID != n.cfg.NodeID && !slices.Contains(d.RevokedNodes, p.NodeID) {
			for _, s := range p.GossipAddrs {
				n.seeds = append(n.seeds, seed{node: p.NodeID, addr: s})
			}
		}
	}
	if !want {
		n.gossipOff = why
	}
	n.mu.Unlock()
	if cur != nil && (!want || cur.keyID != d.GossipKeyID || !bytes.Equal(cur.key, d.GossipKey)) {
		n.stopGossip()
		cur = nil
		if want {
			n.log.Info("gossip key changed: restarting gossip", "key_id", d.GossipKeyID)
		}
	}
	if !want {
		return
	}
	if cur != nil {
		cur.g.Reverify()
		n.joinMissing(true)
		return
	}
	host := n.m.LocalAddr().Addr()
	bind := host.String()
	adv := ""
	if host.IsUnspecified() {
		bind = "0.0.0.0"
		if len(n.adv) > 0 {
			if ap, err := netip.ParseAddrPort(n.adv[0]); err == nil {
				adv = ap.Addr().String()
			}
		}
	}
	eps := ParseEndpoints(n.adv)
	if len(eps) > gossip.MaxEndpoints {
		eps = eps[:gossip.MaxEndpoints]
	}
	g, err := gossip.New(gossip.Config{NodeID: n.cfg.NodeID, ClusterID: n.cfg.ClusterID, IdentityKey: n.cfg.IdentityKey, GossipKey: d.GossipKey,
		Directory: dirView{n}, Endpoints: eps, Region: n.cfg.Region,
		BindAddr: bind, BindPort: n.cfg.GossipPort, AdvertiseAddr: adv, AdvertisePort: 0, Base: n.cfg.GossipBase,
		Logger: n.log.Named("gossip")})
	if err != nil {
		n.mu.Lock()
		n.gossipOff = "off: " + err.Error()
		n.mu.Unlock()
		n.log.Warn("gossip cannot start; mesh stays link-only", "error", err)
		return
	}
	st := &gossipState{g: g, keyID: d.GossipKeyID, key: bytes.Clone(d.GossipKey)}
	n.mu.Lock()
	closed := n.closed
	if !closed {
		n.gsp = st
		n.gossipOff = ""
	}
	n.mu.Unlock()
	if closed {
		_ = g.Shutdown()
		return
	}
	n.gossipPtr.Store(g)
	n.log.Info("gossip started", "addr", g.Addr(), "key_id", d.GossipKeyID)
	n.joinMissing(true)
}

// joinMissing joins the seeds of directory peers that are not verified
// members yet, at most every joinRetry unless now.
func (n *Node) joinMissing(now bool) {
	n.mu.Lock()
	st := n.gsp
	if st == nil || (!now && time.Since(st.lastJoin) < joinRetry) {
		n.mu.Unlock()
		return
	}
	st.lastJoin = time.Now()
	seeds := slices.Clone(n.seeds)
	n.mu.Unlock()
	have := map[string]bool{}
	for _, c := range st.g.Candidates() {
		have[c.NodeID] = true
	}
	var addrs []string
	for _, s := range seeds {
		if !have[s.node] {
			addrs = append(addrs, s.addr)
		}
	}
	if len(addrs) == 0 {
		return
	}
	go func() {
		_, err := st.g.Join(addrs)
		n.mu.Lock()
		if err != nil {
			st.joinErr = err.Error()
		} else {
			st.joinErr = ""
		}
		n.mu.Unlock()
	}()
}

func (n *Node) stopGossip() {
	n.mu.Lock()
	st := n.gsp
	n.gsp = nil
	n.mu.Unlock()
	n.gossipPtr.Store(nil)
	if st == nil {
		return
	}
	_ = st.g.Leave(500 * time.Millisecond)
	_ = st.g.Shutdown()
}

// gossipEndpoint returns "gossip://host:port" of the running instance.
func (n *Node) gossipEndpoint() string {
	n.mu.Lock()
	st := n.gsp
	n.mu.Unlock()
	if st == nil {
		return ""
	}
	return GossipEndpointPrefix + st.g.Addr()
}

// GossipStatus is the gossip part of the mesh status.
type GossipStatus struct {
	// On says whether the memberlist instance runs.
	On bool `json:"on"`
	// Addr is the memberlist address.
	Addr string `json:"addr,omitempty"`
	// KeyID names the gossip key in use (never the key).
	KeyID string `json:"key_id,omitempty"`
	// Members is memberlist's alive member count (self included, verified
	// or not); Verified counts peers whose records verified against the
	// signed directory.
	Members  int `json:"members"`
	Verified int `json:"verified"`
	// Accepted and Rejected count received records.
	Accepted uint64 `json:"accepted"`
	Rejected uint64 `json:"rejected"`
	// LogSuppressed counts gossip log lines dropped by the log rate limit
	// (junk at the gossip port is logged a few lines per interval only).
	LogSuppressed uint64 `json:"log_suppressed"`
	// JoinError is the last join failure, if any.
	JoinError string `json:"join_error,omitempty"`
}

func (n *Node) gossipStatus() (GossipStatus, string) {
	n.mu.Lock()
	st, off := n.gsp, n.gossipOff
	var joinErr string
	if st != nil {
		joinErr = st.joinErr
	}
	n.mu.Unlock()
	if st == nil {
		if off == "" {
			off = "off: waiting for a directory"
		}
		return GossipStatus{}, off
	}
	s := st.g.Stats()
	gs := GossipStatus{On: true, Addr: st.g.Addr(), KeyID: st.keyID, Members: st.g.NumMembers(), Verified: len(st.g.Candidates()),
		Accepted: s.Accepted, Rejected: s.Rejected, LogSuppressed: s.LogSuppressed, JoinError: joinErr}
	return gs, fmt.Sprintf("on: %d members, %d verified peers (key %s)", gs.Members, gs.Verified, gs.KeyID)
}

type seed struct{ node, addr string }

// gossipDir is an immutable view of the signed directory for gossip record
// verification: every directory peer with an identity key (NoDirect peers
// included: they are members, just never linked directly), minus revoked
// nodes and keys.
type gossipDir struct {
	peers   map[string]Peer
	revoked map[string]bool
}

func newGossipDir(d Directory) *gossipDir {
	g := &gossipDir{peers: map[string]Peer{}, revoked: map[string]bool{}}
	fp := map[string]bool{}
	for _, f := range d.RevokedFingerprints {
		fp[f] = true
	}
	for _, id := range d.RevokedNodes {
		g.revoked[id] = true
	}
	for _, p := range d.Peers {
		if fp[snapshot.Fingerprint(p.NoiseKey[:])] || (len(p.IdentityKey) > 0 && fp[snapshot.Fingerprint(p.IdentityKey)]) {
			g.revoked[p.NodeID] = true
		}
		if len(p.IdentityKey) == ed25519.PublicKeySize {
			g.peers[p.NodeID] = p
		}
	}
	return g
}

// dirView implements gossip.Directory over the Node's current gossipDir.
type dirView struct{ n *Node }

var _ gossip.Directory = dirView{}

// Lookup returns a directory peer's identity and noise keys.
func (v dirView) Lookup(nodeID string) (ed25519.PublicKey, []byte, bool) {
	d := v.n.gdir.Load()
	if d == nil {
		return nil, nil, false
	}
	p, ok := d.peers[nodeID]
	if !ok {
		return nil, nil, false
	}
	return p.IdentityKey, p.NoiseKey[:], true
}

// Revoked reports whether the node is revoked by the directory.
func (v dirView) Revoked(nodeID string) bool {
	d := v.n.gdir.Load()
	return d != nil && d.revoked[nodeID]
}
