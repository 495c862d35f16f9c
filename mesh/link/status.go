package link

import (
	"net/netip"
	"time"

	"github.com/rap-fabric/core/mesh/channel"
	"github.com/rap-fabric/core/mesh/peers"
)

// LinkState is the Manager's summary of one link.
type LinkState string

// Link states.
const (
	// LinkIdle: no channel and none wanted now (warm or cold peer).
	LinkIdle LinkState = "idle"
	// LinkConnecting: handshaking, never up yet.
	LinkConnecting LinkState = "connecting"
	// LinkUp: a usable session and probes answered.
	LinkUp LinkState = "up"
	// LinkDown: was up, and now DownAfter probes in a row were lost or the
	// session is gone and handshakes are retrying with backoff.
	LinkDown LinkState = "down"
	// LinkClosed: the channel was closed.
	LinkClosed LinkState = "closed"
)

// PeerStatus is the full per-peer view, for `rap-node-agent status`.
type PeerStatus struct {
	ClusterID string
	NodeID    string
	State     LinkState
	// Channel is the channel lifecycle state (idle … closed).
	Channel channel.State
	// Set, Score and Reason are the last selection decision.
	Set    peers.Set
	Score  float64
	Reason string
	// RTT is the probe RTT EWMA (falls back to gossip's when unprobed);
	// zero means unmeasured.
	RTT time.Duration
	// GossipRTT is memberlist's probe RTT EWMA.
	GossipRTT time.Duration
	// Loss is the probe loss EWMA, 0..1.
	Loss float64
	// LastHandshake is when the last session was established (zero: never).
	LastHandshake time.Time
	// Endpoint is the address being dialled or the live session's peer
	// address.
	Endpoint netip.AddrPort
	// InGossip says whether gossip currently proposes the peer.
	InGossip               bool
	ProbesSent, ProbesLost uint64
	// DownSince is when the link was detected down (State == LinkDown);
	// zero otherwise.
	DownSince time.Time
}

// LinkReport is one row of the control plane's link inventory (mesh_links).
type LinkReport struct {
	ClusterID       string     `json:"cluster_id"`
	PeerNodeID      string     `json:"peer_node_id"`
	State           string     `json:"state"`
	RTTMs           float64    `json:"rtt_ms"`
	Loss            float64    `json:"loss"`
	LastHandshakeAt *time.Time `json:"last_handshake_at,omitempty"`
	Set             string     `json:"set"`
	// DownSince is when the link was detected down; absent unless down.
	DownSince *time.Time `json:"down_since,omitempty"`
}

// Status returns every directory peer of every cluster, sorted by cluster
// then node id.
func (m *Manager) Status() []PeerStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []PeerStatus
	for _, cid := range m.order {
		c := m.clusters[cid]
		for _, id := range sortedKeys(c.peers) {
			p := c.peers[id]
			k := p.entry.NoiseKey
			st := c.ep.PeerState(k)
			ps := PeerStatus{
				ClusterID: cid, NodeID: id, Channel: st, Set: p.set, Score: p.score, Reason: p.reason,
				RTT: p.rtt, GossipRTT: p.gossipRTT, Loss: p.loss, LastHandshake: c.lastHandshake(k),
				Endpoint: p.dial, InGossip: p.inGossip, ProbesSent: p.probesSent, ProbesLost: p.probesLost,
			}
			if p.down {
				ps.DownSince = p.downSince
			}
			if ps.RTT == 0 {
				ps.RTT = p.gossipRTT
			}
			if a, ok := c.ep.PeerAddr(k); ok && usable(st) {
				ps.Endpoint = a
			}
			switch {
			case st == channel.StateClosed:
				ps.State = LinkClosed
			case usable(st) && !p.down:
				ps.State = LinkUp
			case p.down:
				ps.State = LinkDown
			case st == channel.StateHandshaking:
				ps.State = LinkConnecting
			default:
				ps.State = LinkIdle
			}
			out = append(out, ps)
		}
	}
	return out
}

// Reports returns Status as link inventory rows.
func (m *Manager) Reports() []LinkReport {
	st := m.Status()
	out := make([]LinkReport, len(st))
	for i, s := range st {
		r := LinkReport{
			ClusterID: s.ClusterID, PeerNodeID: s.NodeID, State: string(s.State),
			RTTMs: float64(s.RTT) / float64(time.Millisecond), Loss: s.Loss, Set: string(s.Set),
		}
		if !s.LastHandshake.IsZero() {
			t := s.LastHandshake.UTC()
			r.LastHandshakeAt = &t
		}
		if !s.DownSince.IsZero() {
			t := s.DownSince.UTC()
			r.DownSince = &t
		}
		out[i] = r
	}
	return out
}
