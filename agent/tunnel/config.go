package tunnel

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	"github.com/vishvananda/netns"
)

// DefaultPrefix starts the name of every link and nftables table the
// package creates.
const DefaultPrefix = "rapt-"

// DefaultMTU leaves room for the mesh's end-to-end and hop-by-hop headers
// inside a 1500-byte path without IP fragmentation.
const DefaultMTU = 1280

// Role is the part a node plays in a connection.
type Role string

// Roles.
const (
	// RoleConnector is the node in front of the clients: it routes the
	// remote prefixes into the tunnel.
	RoleConnector Role = "connector"
	// RoleExit is the lease holder that delivers packets into the remote
	// network and routes the client prefixes back into the tunnel.
	RoleExit Role = "exit"
)

// Transport carries packets to the peer end of the connection.
type Transport interface {
	// Send transmits one IP packet. It must not retain pkt after it
	// returns; an error means the packet was lost.
	Send(pkt []byte) error
	// Recv returns the next IP packet from the peer, blocking until one
	// arrives or ctx ends. The slice is valid until the next Recv; Recv is
	// called from one goroutine only.
	Recv(ctx context.Context) ([]byte, error)
}

// Receiver is implemented by transports that can deliver packets by
// calling a function on their own receive goroutine (pkt valid only during
// the call; fn must not block), sparing a copy and a goroutine hand-off per
// packet. Start uses it instead of Recv when the transport has it; nil
// detaches.
type Receiver interface {
	SetReceiver(fn func(pkt []byte))
}

// Policy is the route policy of a connection as enforced on this node.
type Policy struct {
	// Allowed are the destination prefixes clients may reach. Empty means
	// the connection's RemotePrefixes. A client packet to any other
	// destination is dropped (DropDestination), at the connector and again
	// at the exit.
	Allowed []netip.Prefix
	// Forward lets the node forward between its other interfaces and the
	// tunnel (net.ipv4.ip_forward and an nftables forward-accept rule for
	// the TUN): the connector needs it for clients on other hosts, the exit
	// to reach a remote network beyond itself.
	Forward bool
	// Masquerade (exit only, needs Forward) source-NATs packets leaving the
	// tunnel toward the remote network to the exit's address, so the
	// remote network needs no route back to the client prefixes.
	Masquerade bool
	// MasqueradeOnly, when not empty, limits Masquerade to packets whose
	// destination lies in one of these prefixes (each inside Allowed): the
	// route policies that ask for it. Empty masquerades all.
	MasqueradeOnly []netip.Prefix
}

// Config describes one connection on this node.
type Config struct {
	// ConnectionID names the connection; the interface is Prefix plus its
	// first 10 letters and digits (lower-cased).
	ConnectionID string
	// Role is RoleConnector or RoleExit.
	Role Role
	// Prefix overrides DefaultPrefix (at most 5 bytes).
	Prefix string
	// Address is this end's tunnel address with the tunnel prefix (for
	// example 198.18.4.1/30); the whole prefix is the tunnel's own network.
	Address netip.Prefix
	// MTU of the TUN (default DefaultMTU, 576–9000).
	MTU int
	// ClientPrefixes are the networks behind the connector; RemotePrefixes
	// the networks behind the exit. The connector routes RemotePrefixes
	// into the TUN, the exit ClientPrefixes.
	ClientPrefixes, RemotePrefixes []netip.Prefix
	// Policy is the route policy.
	Policy Policy
	// NetNS is the network namespace to work in; 0 or netns.None() mean
	// the caller's.
	NetNS netns.NsHandle
}

const maxPrefix = 5

// Name returns the interface (and nftables table) name for a connection id.
func Name(prefix, connectionID string) string {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	var b strings.Builder
	b.WriteString(prefix)
	for _, r := range strings.ToLower(connectionID) {
		if b.Len() >= 15 {
			break
		}
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// validate fills defaults and checks cfg.
func (cfg *Config) validate() error {
	bad := func(f string, a ...any) error { return fmt.Errorf("%w: "+f, append([]any{ErrConfig}, a...)...) }
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if len(cfg.Prefix) > maxPrefix || strings.ContainsAny(cfg.Prefix, "/ \x00") {
		return bad("prefix %q: at most %d bytes, no '/' or space", cfg.Prefix, maxPrefix)
	}
	if Name(cfg.Prefix, cfg.ConnectionID) == cfg.Prefix {
		return bad("connection id %q has no letters or digits", cfg.ConnectionID)
	}
	if cfg.Role != RoleConnector && cfg.Role != RoleExit {
		return bad("role %q: want connector or exit", cfg.Role)
	}
	if !cfg.Address.IsValid() || cfg.Address.Addr() == cfg.Address.Masked().Addr() {
		return bad("address %v: want a host address with its tunnel prefix", cfg.Address)
	}
	if cfg.MTU == 0 {
		cfg.MTU = DefaultMTU
	}
	if cfg.MTU < 576 || cfg.MTU > 9000 {
		return bad("mtu %d: want 576–9000", cfg.MTU)
	}
	if len(cfg.ClientPrefixes) == 0 || len(cfg.RemotePrefixes) == 0 {
		return bad("client and remote prefixes are required")
	}
	for _, ps := range [][]netip.Prefix{cfg.ClientPrefixes, cfg.RemotePrefixes, cfg.Policy.Allowed} {
		for _, p := range ps {
			if !p.IsValid() || p != p.Masked() {
				return bad("prefix %v is not a network prefix", p)
			}
		}
	}
	if len(cfg.Policy.Allowed) == 0 {
		cfg.Policy.Allowed = cfg.RemotePrefixes
	}
	for _, a := range cfg.Policy.Allowed {
		if !coveredBy(a, cfg.RemotePrefixes) {
			return bad("allowed prefix %v is outside the remote prefixes", a)
		}
	}
	if cfg.Policy.Masquerade && (cfg.Role != RoleExit || !cfg.Policy.Forward) {
		return bad("masquerade needs role exit and forward")
	}
	if len(cfg.Policy.MasqueradeOnly) > 0 && !cfg.Policy.Masquerade {
		return bad("masquerade_only needs masquerade")
	}
	for _, p := range cfg.Policy.MasqueradeOnly {
		if !p.IsValid() || p != p.Masked() || !coveredBy(p, cfg.Policy.Allowed) {
			return bad("masquerade prefix %v: want a network prefix inside the allowed prefixes", p)
		}
	}
	if cfg.NetNS == 0 {
		cfg.NetNS = netns.None()
	}
	return nil
}

// coveredBy reports whether p lies inside one of ps.
func coveredBy(p netip.Prefix, ps []netip.Prefix) bool {
	for _, q := range ps {
		if q.Bits() <= p.Bits() && q.Contains(p.Addr()) {
			return true
		}
	}
	return false
}
