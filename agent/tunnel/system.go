package tunnel

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// inNS runs fn on a fresh OS thread switched into ns (or the caller's
// namespace when ns is not open). The thread is never handed back to the
// Go scheduler, so no other goroutine ever runs in the namespace.
func inNS(ns netns.NsHandle, fn func() error) error {
	ch := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // deliberately never unlocked: the thread dies with the goroutine
		if ns.IsOpen() {
			if err := netns.Set(ns); err != nil {
				ch <- fmt.Errorf("enter namespace: %w", err)
				return
			}
		}
		ch <- fn()
	}()
	return <-ch
}

func netlinkHandle(ns netns.NsHandle) (*netlink.Handle, error) {
	if ns.IsOpen() {
		return netlink.NewHandleAt(ns)
	}
	return netlink.NewHandle()
}

func nftConn(ns netns.NsHandle) (*nftables.Conn, error) {
	if ns.IsOpen() {
		return nftables.New(nftables.WithNetNSFd(int(ns)))
	}
	return nftables.New()
}

// openTUN creates the TUN device name in ns and returns its file, set to
// non-blocking so reads are served by the Go poller and Close unblocks
// them. The device is not persistent: it disappears when the file closes,
// also when the process dies.
func openTUN(ns netns.NsHandle, name string) (*os.File, error) {
	var f *os.File
	err := inNS(ns, func() error {
		fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open /dev/net/tun: %w", err)
		}
		ifr, err := unix.NewIfreq(name)
		if err != nil {
			unix.Close(fd)
			return err
		}
		ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
		if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
			unix.Close(fd)
			return fmt.Errorf("TUNSETIFF %s: %w", name, err)
		}
		// A tun fd works with epoll only after TUNSETIFF.
		if err := unix.SetNonblock(fd, true); err != nil {
			unix.Close(fd)
			return err
		}
		f = os.NewFile(uintptr(fd), "/dev/net/tun:"+name)
		return nil
	})
	return f, err
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// configureLink sets MTU, address and routes of the TUN and brings it up.
func configureLink(h *netlink.Handle, l netlink.Link, cfg Config, routes []netip.Prefix) error {
	if err := h.LinkSetMTU(l, cfg.MTU); err != nil {
		return fmt.Errorf("mtu: %w", err)
	}
	if err := h.AddrAdd(l, &netlink.Addr{IPNet: ipNet(cfg.Address)}); err != nil {
		return fmt.Errorf("address %v: %w", cfg.Address, err)
	}
	if err := h.LinkSetUp(l); err != nil {
		return fmt.Errorf("up: %w", err)
	}
	for _, p := range routes {
		if coveredBy(p, []netip.Prefix{cfg.Address.Masked()}) {
			continue // the address's own prefix is routed already
		}
		r := &netlink.Route{LinkIndex: l.Attrs().Index, Dst: ipNet(p), Scope: netlink.SCOPE_LINK}
		if err := h.RouteReplace(r); err != nil {
			return fmt.Errorf("route %v: %w", p, err)
		}
	}
	return nil
}

// enableForwarding turns on IPv4 (and, when needed, IPv6) forwarding in ns.
// It is a namespace-wide switch and is left on by Stop: other tunnels and
// services of the host may rely on it.
func enableForwarding(ns netns.NsHandle, v6 bool) error {
	return inNS(ns, func() error {
		if err := os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1\n"), 0o644); err != nil {
			return err
		}
		if v6 {
			return os.WriteFile("/proc/sys/net/ipv6/conf/all/forwarding", []byte("1\n"), 0o644)
		}
		return nil
	})
}

func ifname(s string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, s)
	return b
}

// addRules creates table inet <name>: a forward chain accepting packets
// into and out of the TUN and, with masquerade, a source-NAT chain
// masquerading packets that came out of the TUN and leave by another
// interface — only those to a prefix of only, when it is not empty.
func addRules(ns netns.NsHandle, name string, masquerade bool, only []netip.Prefix) error {
	c, err := nftConn(ns)
	if err != nil {
		return err
	}
	t := c.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: name})
	accept := nftables.ChainPolicyAccept
	fwd := c.AddChain(&nftables.Chain{Name: "forward", Table: t, Type: nftables.ChainTypeFilter, Hooknum: nftables.ChainHookForward,
		Priority: nftables.ChainPriorityFilter, Policy: &accept})
	for _, key := range []expr.MetaKey{expr.MetaKeyIIFNAME, expr.MetaKeyOIFNAME} {
		c.AddRule(&nftables.Rule{Table: t, Chain: fwd, Exprs: []expr.Any{
			&expr.Meta{Key: key, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifname(name)},
			&expr.Counter{},
			&expr.Verdict{Kind: expr.VerdictAccept},
		}})
	}
	if masquerade {
		nat := c.AddChain(&nftables.Chain{Name: "postrouting", Table: t, Type: nftables.ChainTypeNAT, Hooknum: nftables.ChainHookPostrouting,
			Priority: nftables.ChainPriorityNATSource, Policy: &accept})
		ifs := []expr.Any{
			&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifname(name)},
			&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: ifname(name)},
		}
		if len(only) == 0 {
			c.AddRule(&nftables.Rule{Table: t, Chain: nat, Exprs: append(ifs, &expr.Counter{}, &expr.Masq{})})
		}
		for _, p := range only {
			c.AddRule(&nftables.Rule{Table: t, Chain: nat, Exprs: append(append([]expr.Any{}, ifs...), append(daddrIn(p), &expr.Counter{}, &expr.Masq{})...)})
		}
	}
	return c.Flush()
}

// daddrIn matches packets whose destination address lies in p.
func daddrIn(p netip.Prefix) []expr.Any {
	proto, off, n := byte(unix.NFPROTO_IPV4), uint32(16), 4
	if p.Addr().Is6() {
		proto, off, n = unix.NFPROTO_IPV6, 24, 16
	}
	mask := net.CIDRMask(p.Bits(), n*8)
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: uint32(n)},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: uint32(n), Mask: mask, Xor: make([]byte, n)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: p.Masked().Addr().AsSlice()},
	}
}

// Leftovers lists the links and nftables tables in ns whose name starts
// with prefix (DefaultPrefix when empty).
func Leftovers(ns netns.NsHandle, prefix string) (links, tables []string, err error) {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	h, err := netlinkHandle(ns)
	if err != nil {
		return nil, nil, err
	}
	defer h.Close()
	ls, err := h.LinkList()
	if err != nil {
		return nil, nil, err
	}
	for _, l := range ls {
		if strings.HasPrefix(l.Attrs().Name, prefix) {
			links = append(links, l.Attrs().Name)
		}
	}
	c, err := nftConn(ns)
	if err != nil {
		return links, nil, err
	}
	ts, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return links, nil, err
	}
	for _, t := range ts {
		if strings.HasPrefix(t.Name, prefix) {
			tables = append(tables, t.Name)
		}
	}
	return links, tables, nil
}

// Cleanup removes every link (with its addresses and routes) and inet
// nftables table in ns whose name starts with prefix (DefaultPrefix when
// empty): what a previous run of the agent left behind. Call it before
// starting tunnels; it must not run while tunnels of this process are up.
// It returns what it removed.
func Cleanup(ns netns.NsHandle, prefix string) ([]string, error) {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	links, tables, err := Leftovers(ns, prefix)
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	for _, name := range links {
		if err := deleteLink(ns, name); err != nil {
			errs = append(errs, err)
		} else {
			removed = append(removed, "link "+name)
		}
	}
	for _, name := range tables {
		if err := deleteTable(ns, name); err != nil {
			errs = append(errs, err)
		} else {
			removed = append(removed, "table inet "+name)
		}
	}
	return removed, errors.Join(errs...)
}

// deleteLink removes link name if it exists.
func deleteLink(ns netns.NsHandle, name string) error {
	h, err := netlinkHandle(ns)
	if err != nil {
		return err
	}
	defer h.Close()
	l, err := h.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil
		}
		return fmt.Errorf("find %s: %w", name, err)
	}
	if err := h.LinkDel(l); err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("delete link %s: %w", name, err)
	}
	return nil
}

// deleteLinkIndex removes link name if it exists with index idx (a link
// of the same name created by someone else since is left alone).
func deleteLinkIndex(ns netns.NsHandle, name string, idx int) error {
	h, err := netlinkHandle(ns)
	if err != nil {
		return err
	}
	defer h.Close()
	l, err := h.LinkByIndex(idx)
	if err != nil || l.Attrs().Name != name {
		return nil // gone (closing the TUN removes it) or not ours
	}
	if err := h.LinkDel(l); err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("delete link %s: %w", name, err)
	}
	return nil
}

// deleteTable removes table inet name if it exists.
func deleteTable(ns netns.NsHandle, name string) error {
	c, err := nftConn(ns)
	if err != nil {
		return err
	}
	ts, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return err
	}
	for _, t := range ts {
		if t.Name == name {
			c.DelTable(t)
			if err := c.Flush(); err != nil {
				return fmt.Errorf("delete table %s: %w", name, err)
			}
		}
	}
	return nil
}
