package tunnel

import (
	"errors"
	"net/netip"
	"testing"
)

func pfx(s ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, x := range s {
		out = append(out, netip.MustParsePrefix(x))
	}
	return out
}

func ip4(src, dst string) []byte {
	p := make([]byte, 28)
	p[0] = 0x45
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	copy(p[12:], s[:])
	copy(p[16:], d[:])
	return p
}

func ip6(src, dst string) []byte {
	p := make([]byte, 48)
	p[0] = 0x60
	s, d := netip.MustParseAddr(src).As16(), netip.MustParseAddr(dst).As16()
	copy(p[8:], s[:])
	copy(p[24:], d[:])
	return p
}

func testConfig(role Role) Config {
	return Config{ConnectionID: "c0ffee00-1234", Role: role, Address: netip.MustParsePrefix("198.18.4.1/30"),
		ClientPrefixes: pfx("198.18.2.0/24"), RemotePrefixes: pfx("198.18.3.0/24", "2001:db8:3::/64"),
		Policy: Policy{Allowed: pfx("198.18.3.0/25", "2001:db8:3::/64")}}
}

func TestFilterConnectorAndExit(t *testing.T) {
	for _, tc := range []struct {
		role     Role
		pkt      []byte
		out      bool // outbound (TUN → peer) or inbound
		wantOK   bool
		wantDrop DropReason
	}{
		{RoleConnector, ip4("198.18.2.2", "198.18.3.2"), true, true, 0},
		{RoleConnector, ip4("198.18.2.2", "198.18.3.200"), true, false, DropDestination}, // routed, outside policy
		{RoleConnector, ip4("198.18.9.9", "198.18.3.2"), true, false, DropSource},
		{RoleConnector, ip4("198.18.4.1", "198.18.4.2"), true, true, 0}, // tunnel peer itself
		{RoleConnector, ip4("198.18.3.2", "198.18.2.2"), false, true, 0},
		{RoleConnector, ip4("198.18.3.200", "198.18.2.2"), false, false, DropSource},
		{RoleConnector, ip4("198.18.3.2", "198.18.9.9"), false, false, DropDestination},
		{RoleConnector, ip6("2001:db8:2::1", "2001:db8:3::2"), true, false, DropSource},
		{RoleConnector, []byte{0x45, 0, 0}, true, false, DropMalformed},
		{RoleConnector, []byte{0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, true, false, DropMalformed},
		{RoleExit, ip4("198.18.2.2", "198.18.3.2"), false, true, 0},
		{RoleExit, ip4("198.18.2.2", "198.18.3.200"), false, false, DropDestination}, // the exit enforces too
		{RoleExit, ip4("198.18.7.7", "198.18.3.2"), false, false, DropSource},
		{RoleExit, ip4("198.18.3.2", "198.18.2.2"), true, true, 0},
		{RoleExit, ip4("198.18.3.2", "198.18.8.8"), true, false, DropDestination},
		{RoleExit, ip6("2001:db8:3::2", "2001:db8:3::3"), true, false, DropDestination},
		{RoleExit, ip6("fe80::1", "ff02::16"), true, false, DropLocalScope},
		{RoleConnector, ip4("198.18.4.1", "224.0.0.22"), true, false, DropLocalScope},
	} {
		cfg := testConfig(tc.role)
		if err := cfg.validate(); err != nil {
			t.Fatal(err)
		}
		f := newFilter(cfg)
		var r DropReason
		var ok bool
		if tc.out {
			r, ok = f.outbound(tc.pkt)
		} else {
			r, ok = f.inbound(tc.pkt)
		}
		if ok != tc.wantOK || (!ok && r != tc.wantDrop) {
			t.Errorf("%s out=%v %x: got ok=%v %v, want ok=%v %v", tc.role, tc.out, tc.pkt[:min(len(tc.pkt), 20)], ok, r, tc.wantOK, tc.wantDrop)
		}
	}
}

func TestFilterAllocatesNothing(t *testing.T) {
	cfg := testConfig(RoleConnector)
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	f := newFilter(cfg)
	pkt := ip4("198.18.2.2", "198.18.3.2")
	if n := testing.AllocsPerRun(1000, func() { f.outbound(pkt) }); n != 0 {
		t.Fatalf("%v allocations per packet", n)
	}
}

func TestConfigValidation(t *testing.T) {
	if n := Name("", "C0FFEE00-1234-5678"); n != "rapt-c0ffee0012" || len(n) > 15 {
		t.Fatalf("name %q", n)
	}
	ok := testConfig(RoleExit)
	if err := ok.validate(); err != nil || ok.MTU != DefaultMTU || ok.NetNS.IsOpen() {
		t.Fatalf("%v %d", err, ok.MTU)
	}
	for name, mut := range map[string]func(*Config){
		"no id":              func(c *Config) { c.ConnectionID = "--" },
		"role":               func(c *Config) { c.Role = "relay" },
		"address is network": func(c *Config) { c.Address = netip.MustParsePrefix("198.18.4.0/30") },
		"no address":         func(c *Config) { c.Address = netip.Prefix{} },
		"mtu":                func(c *Config) { c.MTU = 100 },
		"no clients":         func(c *Config) { c.ClientPrefixes = nil },
		"unmasked":           func(c *Config) { c.RemotePrefixes = pfx("198.18.3.1/24") },
		"allowed outside":    func(c *Config) { c.Policy.Allowed = pfx("198.18.5.0/24") },
		"masq at connector":  func(c *Config) { c.Role, c.Policy.Forward, c.Policy.Masquerade = RoleConnector, true, true },
		"masq w/o forward":   func(c *Config) { c.Policy.Masquerade = true },
		"long prefix":        func(c *Config) { c.Prefix = "toolong-" },
		"masq only w/o masq": func(c *Config) { c.Policy.Forward, c.Policy.MasqueradeOnly = true, c.Policy.Allowed },
		"masq only outside": func(c *Config) {
			c.Policy.Forward, c.Policy.Masquerade, c.Policy.MasqueradeOnly = true, true, pfx("198.18.9.0/24")
		},
	} {
		c := testConfig(RoleExit)
		mut(&c)
		if err := c.validate(); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: %v", name, err)
		}
	}
	c := testConfig(RoleConnector)
	c.Policy.Allowed = nil
	if err := c.validate(); err != nil || len(c.Policy.Allowed) != 2 {
		t.Fatalf("default allowed: %v %v", err, c.Policy.Allowed)
	}
	if _, err := Start(testConfig(RoleExit), nil); !errors.Is(err, ErrConfig) {
		t.Fatalf("nil transport: %v", err)
	}
}

func TestDropReasonNames(t *testing.T) {
	var c counters
	c.drops[DropDestination].Add(2)
	s := c.snapshot("rapt-x")
	if s.Drops["destination_not_allowed"] != 2 || len(s.Drops) != 1 || DropReason(200).String() != "unknown" {
		t.Fatalf("%+v", s)
	}
}
