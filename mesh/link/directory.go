package link

import (
	"crypto/ed25519"
	"fmt"
	"net/netip"

	"github.com/rap-fabric/core/domain"
	"github.com/rap-fabric/core/mesh/channel"
	"github.com/rap-fabric/core/mesh/gossip"
)

// PeerEntry is one node of the signed peer directory.
type PeerEntry struct {
	// NodeID is the node's id.
	NodeID string
	// NoiseKey is the node's X25519 static public key (channel identity).
	NoiseKey channel.Key
	// IdentityKey is the node's Ed25519 identity key; gossip records are
	// verified against it. May be nil if the cluster does not gossip.
	IdentityKey ed25519.PublicKey
	// Endpoints are the node's mesh UDP addresses as known to the authority
	// (gossip may propose fresher ones).
	Endpoints []netip.AddrPort
	// Roles are role hints used for role suitability in scoring.
	Roles []domain.Role
	// Region is the node's region.
	Region string
	// Trust is the trust level 0..1; zero means 1.
	Trust float64
}

// Directory is a cluster's signed peer directory plus revocation list, as
// verified by the caller (this package does not check snapshot signatures).
type Directory struct {
	// ClusterID names the cluster; one channel endpoint exists per cluster.
	ClusterID string
	// Version orders directories; an update with a lower version is refused.
	Version uint64
	// Peers may include this node (it is skipped).
	Peers []PeerEntry
	// RevokedNodes are node ids whose channels are torn down and whose
	// handshakes are refused.
	RevokedNodes []string
	// RevokedKeys are noise keys treated the same way.
	RevokedKeys []channel.Key
}

func (d *Directory) validate() error {
	if d.ClusterID == "" {
		return fmt.Errorf("%w: empty cluster id", ErrDirectory)
	}
	ids := map[string]bool{}
	keys := map[channel.Key]bool{}
	for _, p := range d.Peers {
		switch {
		case p.NodeID == "":
			return fmt.Errorf("%w: peer with empty node id", ErrDirectory)
		case p.NoiseKey.IsZero():
			return fmt.Errorf("%w: %s has a zero noise key", ErrDirectory, p.NodeID)
		case ids[p.NodeID]:
			return fmt.Errorf("%w: duplicate node id %s", ErrDirectory, p.NodeID)
		case keys[p.NoiseKey]:
			return fmt.Errorf("%w: duplicate noise key %v", ErrDirectory, p.NoiseKey)
		}
		ids[p.NodeID], keys[p.NoiseKey] = true, true
	}
	return nil
}

// authTable is an immutable view of a directory, read lock-free by the
// channel's Authorize hook, the data path and gossip verification.
type authTable struct {
	byKey        map[channel.Key]string // authorized peers (not self, not revoked)
	byNode       map[string]*PeerEntry  // every directory entry, self included
	revokedNodes map[string]bool
	revokedKeys  map[channel.Key]bool
}

func newAuthTable(d *Directory, self channel.Key, selfID string, prevRevoked map[channel.Key]bool) *authTable {
	t := &authTable{
		byKey: map[channel.Key]string{}, byNode: map[string]*PeerEntry{},
		revokedNodes: map[string]bool{}, revokedKeys: map[channel.Key]bool{},
	}
	for k := range prevRevoked { // key revocation is permanent for a cluster
		t.revokedKeys[k] = true
	}
	for _, id := range d.RevokedNodes {
		t.revokedNodes[id] = true
	}
	for _, k := range d.RevokedKeys {
		t.revokedKeys[k] = true
	}
	for i := range d.Peers {
		p := &d.Peers[i]
		t.byNode[p.NodeID] = p
		if t.revokedNodes[p.NodeID] {
			t.revokedKeys[p.NoiseKey] = true
		}
	}
	for i := range d.Peers {
		p := &d.Peers[i]
		if p.NodeID == selfID || p.NoiseKey == self || t.revokedNodes[p.NodeID] || t.revokedKeys[p.NoiseKey] {
			continue
		}
		t.byKey[p.NoiseKey] = p.NodeID
	}
	return t
}

func (t *authTable) authorize(remote []byte) error {
	k, err := channel.KeyFromBytes(remote)
	if err != nil {
		return err
	}
	if t.revokedKeys[k] {
		return fmt.Errorf("%w: key %v", ErrRevoked, k)
	}
	if _, ok := t.byKey[k]; !ok {
		return fmt.Errorf("%w: key %v", ErrNotInDirectory, k)
	}
	return nil
}

// gossipDirectory adapts a cluster's current directory to gossip.Directory.
type gossipDirectory struct{ c *cluster }

var _ gossip.Directory = gossipDirectory{}

// Lookup returns the identity and noise keys of a directory node.
func (g gossipDirectory) Lookup(nodeID string) (ed25519.PublicKey, []byte, bool) {
	p := g.c.auth.Load().byNode[nodeID]
	if p == nil || len(p.IdentityKey) != ed25519.PublicKeySize {
		return nil, nil, false
	}
	return p.IdentityKey, p.NoiseKey[:], true
}

// Revoked reports whether the node (or its noise key) is revoked.
func (g gossipDirectory) Revoked(nodeID string) bool {
	t := g.c.auth.Load()
	if t.revokedNodes[nodeID] {
		return true
	}
	p := t.byNode[nodeID]
	return p != nil && t.revokedKeys[p.NoiseKey]
}
