package chaos

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Point-to-point links beside the bridge, for topologies where a host must
// be reachable only through another (a client network behind a VPN
// connector, a remote network behind an exit).

// AddLinkedHost creates a host that is not on the bridge: its only
// interface, eth0 with address addr, is a veth pair whose other end, named
// peerIf, sits in peer's namespace with address peerAddr. Both addresses
// must lie in 198.18.0.0/15.
func (n *Network) AddLinkedHost(name string, addr netip.Prefix, peer *Host, peerIf string, peerAddr netip.Prefix) (*Host, error) {
	bench := netip.MustParsePrefix("198.18.0.0/15")
	if !bench.Contains(addr.Addr()) || !bench.Contains(peerAddr.Addr()) {
		return nil, fmt.Errorf("chaos: %v and %v must lie in %v", addr, peerAddr, bench)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil, errors.New("chaos: network closed")
	}
	if _, ok := n.hosts[name]; ok {
		return nil, fmt.Errorf("chaos: host %s exists", name)
	}
	host := &Host{Name: name, IP: net.IP(addr.Addr().AsSlice()), NSName: n.Prefix + "-" + name, net: n}
	ns, err := newNamedNS(host.NSName)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoNamespaces, err)
	}
	host.ns = ns
	n.hosts[name] = host
	n.order = append(n.order, host)
	ph, err := netlink.NewHandleAt(peer.ns)
	if err != nil {
		return nil, err
	}
	defer ph.Close()
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: peerIf}, PeerName: "eth0", PeerNamespace: netlink.NsFd(int(ns))}
	if err := ph.LinkAdd(veth); err != nil {
		return nil, fmt.Errorf("%w: veth %s–%s: %w", ErrNoNamespaces, peer.Name, name, err)
	}
	if err := addrUp(ph, peerIf, peerAddr); err != nil {
		return nil, err
	}
	hh, err := netlink.NewHandleAt(ns)
	if err != nil {
		return nil, err
	}
	defer hh.Close()
	if err := addrUp(hh, "eth0", addr); err != nil {
		return nil, err
	}
	return host, setLoUp(ns)
}

func addrUp(h *netlink.Handle, name string, addr netip.Prefix) error {
	l, err := h.LinkByName(name)
	if err != nil {
		return err
	}
	if err := h.AddrAdd(l, &netlink.Addr{IPNet: &net.IPNet{IP: addr.Addr().AsSlice(), Mask: net.CIDRMask(addr.Bits(), addr.Addr().BitLen())}}); err != nil {
		return fmt.Errorf("address %v on %s: %w", addr, name, err)
	}
	return h.LinkSetUp(l)
}

// AddAddress adds a further address to one of the host's interfaces.
func (h *Host) AddAddress(ifname string, addr netip.Prefix) error {
	nh, err := netlink.NewHandleAt(h.ns)
	if err != nil {
		return err
	}
	defer nh.Close()
	l, err := nh.LinkByName(ifname)
	if err != nil {
		return err
	}
	return nh.AddrAdd(l, &netlink.Addr{IPNet: &net.IPNet{IP: addr.Addr().AsSlice(), Mask: net.CIDRMask(addr.Bits(), addr.Addr().BitLen())}})
}

// AddRoute routes dst via gateway inside the host's namespace.
func (h *Host) AddRoute(dst netip.Prefix, gateway netip.Addr) error {
	nh, err := netlink.NewHandleAt(h.ns)
	if err != nil {
		return err
	}
	defer nh.Close()
	return nh.RouteAdd(&netlink.Route{Dst: &net.IPNet{IP: dst.Addr().AsSlice(), Mask: net.CIDRMask(dst.Bits(), dst.Addr().BitLen())}, Gw: gateway.AsSlice()})
}

// Routes returns the destinations of the host's IPv4 routes (main table).
func (h *Host) Routes() ([]netip.Prefix, error) {
	nh, err := netlink.NewHandleAt(h.ns)
	if err != nil {
		return nil, err
	}
	defer nh.Close()
	rs, err := nh.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		return nil, err
	}
	var out []netip.Prefix
	for _, r := range rs {
		if r.Dst == nil {
			out = append(out, netip.MustParsePrefix("0.0.0.0/0"))
			continue
		}
		a, _ := netip.AddrFromSlice(r.Dst.IP.To4())
		bits, _ := r.Dst.Mask.Size()
		out = append(out, netip.PrefixFrom(a, bits))
	}
	return out, nil
}

// NS returns the host's namespace handle (owned by the Network: do not close).
func (h *Host) NS() netns.NsHandle { return h.ns }

// LinkHosts joins two existing hosts with a veth pair: aIf with aAddr in
// a's namespace, bIf with bAddr in b's (both in 198.18.0.0/15).
func (n *Network) LinkHosts(a *Host, aIf string, aAddr netip.Prefix, b *Host, bIf string, bAddr netip.Prefix) error {
	bench := netip.MustParsePrefix("198.18.0.0/15")
	if !bench.Contains(aAddr.Addr()) || !bench.Contains(bAddr.Addr()) {
		return fmt.Errorf("chaos: %v and %v must lie in %v", aAddr, bAddr, bench)
	}
	ah, err := netlink.NewHandleAt(a.ns)
	if err != nil {
		return err
	}
	defer ah.Close()
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: aIf}, PeerName: bIf, PeerNamespace: netlink.NsFd(int(b.ns))}
	if err := ah.LinkAdd(veth); err != nil {
		return fmt.Errorf("%w: veth %s–%s: %w", ErrNoNamespaces, a.Name, b.Name, err)
	}
	if err := addrUp(ah, aIf, aAddr); err != nil {
		return err
	}
	bh, err := netlink.NewHandleAt(b.ns)
	if err != nil {
		return err
	}
	defer bh.Close()
	return addrUp(bh, bIf, bAddr)
}
