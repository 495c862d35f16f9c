package tunnel

import (
	"net/netip"
	"sync/atomic"
)

// DropReason says why a packet was dropped.
type DropReason uint8

// Drop reasons.
const (
	// DropMalformed: not an IPv4 or IPv6 packet, or shorter than its header.
	DropMalformed DropReason = iota
	// DropDestination: the destination is outside the route policy (a
	// client packet to a prefix the connection does not allow, or a reply
	// to an address that is not a client's).
	DropDestination
	// DropSource: the source is not one the tunnel may carry from that side.
	DropSource
	// DropTransport: the transport refused the packet (no exit, no route,
	// queue full, flow closed).
	DropTransport
	// DropWrite: writing the packet to the TUN failed.
	DropWrite
	// DropLocalScope: a multicast or link-local destination (the kernel's
	// own neighbour discovery, MLD or IGMP on the TUN); never carried.
	DropLocalScope
	numDrops
)

var dropNames = [numDrops]string{"malformed", "destination_not_allowed", "source_not_allowed", "transport", "tun_write", "local_scope"}

// String returns the reason as reported in status ("destination_not_allowed", …).
func (r DropReason) String() string {
	if r < numDrops {
		return dropNames[r]
	}
	return "unknown"
}

// filter is the per-packet route policy of one end: packets leaving
// through the tunnel must come from the near side and go to the far side,
// packets arriving the other way round. The tunnel prefix belongs to both.
type filter struct {
	near, far []netip.Prefix
}

func newFilter(cfg Config) filter {
	tun := cfg.Address.Masked()
	var near, far []netip.Prefix
	if cfg.Role == RoleConnector {
		near, far = cfg.ClientPrefixes, cfg.Policy.Allowed
	} else {
		near, far = cfg.Policy.Allowed, cfg.ClientPrefixes
	}
	return filter{near: append([]netip.Prefix{tun}, near...), far: append([]netip.Prefix{tun}, far...)}
}

// addrs returns the source and destination of an IP packet without
// allocating.
func addrs(pkt []byte) (src, dst netip.Addr, ok bool) {
	if len(pkt) < 1 {
		return src, dst, false
	}
	switch pkt[0] >> 4 {
	case 4:
		if len(pkt) < 20 || pkt[0]&0x0f < 5 {
			return src, dst, false
		}
		return netip.AddrFrom4([4]byte(pkt[12:16])), netip.AddrFrom4([4]byte(pkt[16:20])), true
	case 6:
		if len(pkt) < 40 {
			return src, dst, false
		}
		return netip.AddrFrom16([16]byte(pkt[8:24])), netip.AddrFrom16([16]byte(pkt[24:40])), true
	}
	return src, dst, false
}

func inAny(a netip.Addr, ps []netip.Prefix) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// outbound checks a packet read from the TUN, to be sent to the peer.
func (f *filter) outbound(pkt []byte) (DropReason, bool) {
	src, dst, ok := addrs(pkt)
	switch {
	case !ok:
		return DropMalformed, false
	case dst.IsMulticast() || dst.IsLinkLocalUnicast():
		return DropLocalScope, false
	case !inAny(dst, f.far):
		return DropDestination, false
	case !inAny(src, f.near):
		return DropSource, false
	}
	return 0, true
}

// inbound checks a packet received from the peer, to be written to the TUN.
func (f *filter) inbound(pkt []byte) (DropReason, bool) {
	src, dst, ok := addrs(pkt)
	switch {
	case !ok:
		return DropMalformed, false
	case !inAny(dst, f.near):
		return DropDestination, false
	case !inAny(src, f.far):
		return DropSource, false
	}
	return 0, true
}

// Stats are the counters of one tunnel.
type Stats struct {
	// Interface is the TUN name.
	Interface string `json:"interface"`
	// TxPackets/TxBytes went from the TUN to the peer; RxPackets/RxBytes
	// came from the peer into the TUN.
	TxPackets uint64 `json:"tx_packets"`
	TxBytes   uint64 `json:"tx_bytes"`
	RxPackets uint64 `json:"rx_packets"`
	RxBytes   uint64 `json:"rx_bytes"`
	// Drops counts dropped packets by reason (DropReason.String), both
	// directions; reasons with no drops are absent.
	Drops map[string]uint64 `json:"drops"`
}

type counters struct {
	txPkts, txBytes, rxPkts, rxBytes atomic.Uint64
	drops                            [numDrops]atomic.Uint64
}

func (c *counters) snapshot(name string) Stats {
	s := Stats{Interface: name, TxPackets: c.txPkts.Load(), TxBytes: c.txBytes.Load(), RxPackets: c.rxPkts.Load(), RxBytes: c.rxBytes.Load(),
		Drops: map[string]uint64{}}
	for i := range c.drops {
		if n := c.drops[i].Load(); n > 0 {
			s.Drops[DropReason(i).String()] = n
		}
	}
	return s
}
