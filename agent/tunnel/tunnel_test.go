package tunnel

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/rap-fabric/core/internal/testwait"
)

// These tests create TUN devices, routes and nftables tables in a fresh
// network namespace: they need root. Without root they skip, unless CI is
// set, where they fail.

func newNS(t *testing.T) netns.NsHandle {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("tunnel: the namespace tests need root (TUN, netlink, nftables) and CI is set")
		}
		t.Skip("tunnel: not root and CI unset, so skipped — run as root")
	}
	ch := make(chan netns.NsHandle, 1)
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies in the new namespace
		h, err := netns.New()
		if err != nil {
			errc <- err
			return
		}
		ch <- h
	}()
	select {
	case err := <-errc:
		if os.Getenv("CI") != "" {
			t.Fatalf("tunnel: cannot create a network namespace: %v", err)
		}
		t.Skipf("tunnel: cannot create a network namespace (%v); CI unset, so skipped", err)
	case h := <-ch:
		t.Cleanup(func() { _ = h.Close() })
		nh, err := netlink.NewHandleAt(h)
		if err != nil {
			t.Fatal(err)
		}
		defer nh.Close()
		lo, err := nh.LinkByName("lo")
		if err != nil {
			t.Fatal(err)
		}
		if err := nh.LinkSetUp(lo); err != nil {
			t.Fatal(err)
		}
		return h
	}
	return netns.None()
}

// pipe is a Transport whose far end is the test.
type pipe struct {
	sent chan []byte
	in   chan []byte
}

func newPipe() *pipe { return &pipe{sent: make(chan []byte, 64), in: make(chan []byte, 64)} }

func (p *pipe) Send(pkt []byte) error {
	select {
	case p.sent <- append([]byte(nil), pkt...):
		return nil
	default:
		return errors.New("pipe full")
	}
}

func (p *pipe) Recv(ctx context.Context) ([]byte, error) {
	select {
	case b := <-p.in:
		return b, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// udp4 builds an IPv4/UDP packet (checksums left zero: the kernel accepts
// a zero UDP checksum; the IP header checksum is computed).
func udp4(src, dst string, payload []byte) []byte {
	p := make([]byte, 28+len(payload))
	p[0], p[8], p[9] = 0x45, 64, 17
	p[2], p[3] = byte(len(p)>>8), byte(len(p))
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	copy(p[12:], s[:])
	copy(p[16:], d[:])
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(p[i])<<8 | uint32(p[i+1])
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	cs := ^uint16(sum)
	p[10], p[11] = byte(cs>>8), byte(cs)
	p[20], p[21], p[22], p[23] = 0x30, 0x39, 0x00, 0x09 // 12345 → 9
	p[24], p[25] = byte((8+len(payload))>>8), byte(8+len(payload))
	copy(p[28:], payload)
	return p
}

func TestExitInNamespace(t *testing.T) {
	ns := newNS(t)
	cfg := testConfig(RoleExit)
	cfg.Address = netip.MustParsePrefix("198.18.4.2/30")
	cfg.Policy.Forward, cfg.Policy.Masquerade = true, true
	cfg.NetNS = ns
	tr := newPipe()
	tun, err := Start(cfg, tr)
	if err != nil {
		t.Fatal(err)
	}
	defer tun.Stop()
	name := tun.Name()

	// Link, MTU, address, route for the client prefix, nftables table.
	nh, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer nh.Close()
	l, err := nh.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	if l.Attrs().MTU != DefaultMTU || l.Attrs().Flags&net.FlagUp == 0 {
		t.Fatalf("link %+v", l.Attrs())
	}
	addrs, _ := nh.AddrList(l, netlink.FAMILY_V4)
	if len(addrs) != 1 || addrs[0].IPNet.String() != "198.18.4.2/30" {
		t.Fatalf("addresses %v", addrs)
	}
	routes, _ := nh.RouteList(l, netlink.FAMILY_V4)
	if !slices.ContainsFunc(routes, func(r netlink.Route) bool { return r.Dst != nil && r.Dst.String() == "198.18.2.0/24" }) {
		t.Fatalf("no client route into the TUN: %v", routes)
	}
	nft, err := nftables.New(nftables.WithNetNSFd(int(ns)))
	if err != nil {
		t.Fatal(err)
	}
	chains, err := nft.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range chains {
		if c.Table.Name == name {
			got = append(got, c.Name)
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, []string{"forward", "postrouting"}) {
		t.Fatalf("chains of %s: %v", name, got)
	}
	var fwd []byte
	if err := inNS(ns, func() error { var err error; fwd, err = os.ReadFile("/proc/sys/net/ipv4/ip_forward"); return err }); err != nil || string(fwd) != "1\n" {
		t.Fatalf("ip_forward in the namespace: %q %v", fwd, err)
	}

	// Outbound: the kernel routes a datagram to a client into the TUN; it
	// reaches the transport.
	err = inNS(ns, func() error {
		c, err := net.Dial("udp", "198.18.2.2:9")
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write([]byte("hello client"))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case pkt := <-tr.sent:
		src, dst, ok := addrs4(pkt)
		if !ok || src != "198.18.4.2" || dst != "198.18.2.2" {
			t.Fatalf("sent %x", pkt)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("nothing reached the transport: %+v", tun.Stats())
	}

	// Inbound: allowed packets are written to the TUN, others counted.
	tr.in <- udp4("198.18.2.2", "198.18.4.2", []byte("to the exit itself"))
	tr.in <- udp4("198.18.2.2", "198.18.3.200", []byte("outside the policy"))
	tr.in <- udp4("198.18.9.9", "198.18.3.2", []byte("foreign source"))
	tr.in <- []byte{0x45}
	testwait.For(t, 5*time.Second, "inbound packets accounted", func() (bool, string) {
		s := tun.Stats()
		return s.RxPackets == 1 && s.Drops["destination_not_allowed"] == 1 && s.Drops["source_not_allowed"] == 1 && s.Drops["malformed"] == 1, ""
	})

	// Stop removes link, routes and table; a second Stop is a no-op.
	if err := tun.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := tun.Stop(); err != nil {
		t.Fatal(err)
	}
	links, tables, err := Leftovers(ns, "")
	if err != nil || len(links)+len(tables) > 0 {
		t.Fatalf("after Stop: %v %v %v", links, tables, err)
	}
	rs, _ := nh.RouteList(nil, netlink.FAMILY_V4)
	for _, r := range rs {
		if r.Dst != nil && r.Dst.String() == "198.18.2.0/24" {
			t.Fatalf("route left: %v", r)
		}
	}
}

func addrs4(pkt []byte) (src, dst string, ok bool) {
	s, d, ok := addrs(pkt)
	return s.String(), d.String(), ok
}

func TestCleanupAndSameNameReplacement(t *testing.T) {
	ns := newNS(t)
	// Leftovers: a veth pair and a table named by the prefix, plus a link
	// and a table that are not ours.
	nh, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer nh.Close()
	for _, v := range []*netlink.Veth{
		{LinkAttrs: netlink.LinkAttrs{Name: "rapt-old"}, PeerName: "rapt-oldp"},
		{LinkAttrs: netlink.LinkAttrs{Name: "other0"}, PeerName: "other1"},
	} {
		if err := nh.LinkAdd(v); err != nil {
			t.Fatal(err)
		}
	}
	nft, err := nftables.New(nftables.WithNetNSFd(int(ns)))
	if err != nil {
		t.Fatal(err)
	}
	nft.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: "rapt-old"})
	nft.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: "other"})
	if err := nft.Flush(); err != nil {
		t.Fatal(err)
	}
	removed, err := Cleanup(ns, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) < 2 {
		t.Fatalf("removed %v", removed)
	}
	links, tables, _ := Leftovers(ns, "")
	if len(links)+len(tables) > 0 {
		t.Fatalf("left %v %v", links, tables)
	}
	if _, err := nh.LinkByName("other0"); err != nil {
		t.Fatal("Cleanup removed a link that is not ours")
	}
	ts, _ := nft.ListTablesOfFamily(nftables.TableFamilyINet)
	if !slices.ContainsFunc(ts, func(x *nftables.Table) bool { return x.Name == "other" }) {
		t.Fatal("Cleanup removed a table that is not ours")
	}

	// A second Start of the same connection takes the first's link for a
	// leftover; the first's reader ends instead of spinning, and its Stop
	// leaves the second's link alone.
	cfg := testConfig(RoleConnector)
	cfg.NetNS = ns
	first, err := Start(cfg, newPipe())
	if err != nil {
		t.Fatal(err)
	}
	second, err := Start(cfg, newPipe())
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := nh.LinkByName(second.Name()); err != nil {
		t.Fatalf("the first Stop removed the second's link: %v", err)
	}
	if err := second.Stop(); err != nil {
		t.Fatal(err)
	}
	if links, tables, _ := Leftovers(ns, ""); len(links)+len(tables) > 0 {
		t.Fatalf("left %v %v", links, tables)
	}
}
