package vpnrules

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"
)

func pfx(t *testing.T, ss ...string) []netip.Prefix {
	t.Helper()
	out := make([]netip.Prefix, 0, len(ss))
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

func TestParsePrefixes(t *testing.T) {
	for _, tc := range []struct {
		name string
		fam  Family
		in   []string
		want []string
		err  string
	}{
		{"ipv4 ok", FamilyIPv4, []string{"10.0.0.0/8", " 192.168.1.0/24"}, []string{"10.0.0.0/8", "192.168.1.0/24"}, ""},
		{"ipv6 ok", FamilyIPv6, []string{"fd00::/8"}, []string{"fd00::/8"}, ""},
		{"dual mixes", FamilyDual, []string{"10.0.0.0/8", "fd00::/8"}, []string{"10.0.0.0/8", "fd00::/8"}, ""},
		{"empty ok", FamilyIPv4, nil, []string{}, ""},
		{"garbage", FamilyIPv4, []string{"10.0.0/8x"}, nil, "not a CIDR"},
		{"bare address", FamilyIPv4, []string{"10.0.0.1"}, nil, "not a CIDR"},
		{"host bits", FamilyIPv4, []string{"10.0.0.1/8"}, nil, "host bits"},
		{"wrong family v6 in v4", FamilyIPv4, []string{"fd00::/8"}, nil, "address family"},
		{"wrong family v4 in v6", FamilyIPv6, []string{"10.0.0.0/8"}, nil, "address family"},
		{"duplicate", FamilyIPv4, []string{"10.0.0.0/8", "10.0.0.0/8"}, nil, "twice"},
		{"zone", FamilyIPv6, []string{"fe80::%eth0/64"}, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParsePrefixes("p", tc.fam, tc.in, 4)
			if tc.want == nil {
				require.Error(t, err)
				require.True(t, errors.Is(err, ErrInvalid))
				require.Contains(t, err.Error(), tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, Strings(got))
		})
	}
	_, err := ParsePrefixes("p", FamilyIPv4, []string{"1.0.0.0/8", "2.0.0.0/8", "3.0.0.0/8"}, 2)
	require.ErrorContains(t, err, "at most 2")
}

func TestParseDNSFamilyMTUAndTTL(t *testing.T) {
	_, err := ParseFamily("ipx")
	require.ErrorIs(t, err, ErrInvalid)
	f, err := ParseFamily(" dual ")
	require.NoError(t, err)
	require.Equal(t, FamilyDual, f)

	d, err := ParseDNS(FamilyIPv4, []string{"10.0.0.53", "1.1.1.1"})
	require.NoError(t, err)
	require.Equal(t, []string{"10.0.0.53", "1.1.1.1"}, Strings(d))
	for _, bad := range [][]string{{"fd00::53"}, {"not-an-ip"}, {"0.0.0.0"}, {"224.0.0.1"}, {"1.1.1.1", "1.1.1.1"}} {
		_, err := ParseDNS(FamilyIPv4, bad)
		require.ErrorIs(t, err, ErrInvalid, "%v", bad)
	}
	require.NoError(t, CheckMTU(1420))
	require.ErrorIs(t, CheckMTU(575), ErrInvalid)
	require.ErrorIs(t, CheckMTU(9001), ErrInvalid)
	require.NoError(t, CheckLeaseTTL(2))
	require.ErrorIs(t, CheckLeaseTTL(1), ErrInvalid)
	require.ErrorIs(t, CheckLeaseTTL(3601), ErrInvalid)
}

func TestCheckConnection(t *testing.T) {
	require.NoError(t, CheckConnection(Connection{Family: FamilyIPv4, ClientPrefixes: pfx(t, "100.64.0.0/16"), RemotePrefixes: pfx(t, "10.0.0.0/8", "192.168.0.0/16")}))
	require.ErrorContains(t, CheckConnection(Connection{ClientPrefixes: pfx(t, "10.1.0.0/16"), RemotePrefixes: pfx(t, "10.0.0.0/8")}), "overlaps remote prefix")
	require.ErrorContains(t, CheckConnection(Connection{RemotePrefixes: pfx(t, "10.0.0.0/8", "10.2.0.0/16")}), "remote_prefixes")
	require.ErrorContains(t, CheckConnection(Connection{ClientPrefixes: pfx(t, "100.64.0.0/10", "100.64.1.0/24")}), "client_prefixes")
}

func TestCheckRoutePolicy(t *testing.T) {
	conn := Connection{Family: FamilyDual, ClientPrefixes: pfx(t, "100.64.0.0/16")}
	existing := []RoutePolicy{
		{Name: "corp", Prefixes: pfx(t, "10.0.0.0/8")},
		{Name: "shared", Prefixes: pfx(t, "172.16.0.0/12"), AllowOverlap: true},
	}
	for _, tc := range []struct {
		name string
		p    RoutePolicy
		err  string
	}{
		{"ok", RoutePolicy{Name: "lab", Prefixes: pfx(t, "192.168.0.0/16", "fd00::/8")}, ""},
		{"no prefixes", RoutePolicy{Name: "empty"}, "at least one"},
		{"bad name", RoutePolicy{Name: "Bad", Prefixes: pfx(t, "192.168.0.0/16")}, "name"},
		{"default route refused", RoutePolicy{Name: "all", Prefixes: pfx(t, "0.0.0.0/0")}, "default route"},
		{"v6 default route refused", RoutePolicy{Name: "all6", Prefixes: pfx(t, "::/0")}, "default route"},
		{"default route allowed but overlaps corp", RoutePolicy{Name: "all", Prefixes: pfx(t, "0.0.0.0/0"), AllowDefaultRoute: true}, "overlaps 10.0.0.0/8"},
		{"v6 default route allowed", RoutePolicy{Name: "all6", Prefixes: pfx(t, "::/0"), AllowDefaultRoute: true}, ""},
		{"overlap within policy", RoutePolicy{Name: "twice", Prefixes: pfx(t, "192.168.0.0/16", "192.168.1.0/24")}, "of the policy overlap"},
		{"overlap with existing", RoutePolicy{Name: "sub", Prefixes: pfx(t, "10.1.0.0/16")}, "route policy \"corp\""},
		{"overlap one side allows only", RoutePolicy{Name: "sub", Prefixes: pfx(t, "10.1.0.0/16"), AllowOverlap: true}, "route policy \"corp\""},
		{"overlap both sides allow", RoutePolicy{Name: "sub", Prefixes: pfx(t, "172.16.1.0/24"), AllowOverlap: true}, ""},
		{"overlap with shared but new forbids", RoutePolicy{Name: "sub", Prefixes: pfx(t, "172.16.1.0/24")}, "route policy \"shared\""},
		{"overlap client pool", RoutePolicy{Name: "loop", Prefixes: pfx(t, "100.64.5.0/24")}, "client prefix"},
		{"duplicate name", RoutePolicy{Name: "corp", Prefixes: pfx(t, "192.0.2.0/24")}, "already has"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckRoutePolicy(conn, existing, tc.p)
			if tc.err == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, ErrInvalid)
			require.ErrorContains(t, err, tc.err)
		})
	}
}

func TestNormalizeNodes(t *testing.T) {
	a := "0a6d1b4e-0000-4000-8000-000000000001"
	b := "0a6d1b4e-0000-4000-8000-000000000002"
	for _, tc := range []struct {
		name string
		in   []string
		want []string
		err  bool
	}{
		{"sorted and deduplicated", []string{b, a, " " + b, "0A6D1B4E-0000-4000-8000-000000000001"}, []string{a, b}, false},
		{"empty", nil, []string{}, false},
		{"not a uuid", []string{a, "node-1"}, nil, true},
		{"sql injection attempt", []string{"'; DROP TABLE nodes; --"}, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := NormalizeNodes(tc.in)
			if tc.err {
				require.ErrorIs(t, err, ErrInvalid)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
	many := make([]string, MaxAllowedNodes+1)
	for i := range many {
		many[i] = "0a6d1b4e-0000-4000-8000-" + fmtHex12(i)
	}
	_, err := NormalizeNodes(many)
	require.ErrorContains(t, err, "at most")
}

func fmtHex12(i int) string {
	const hex = "0123456789abcdef"
	b := []byte("000000000000")
	for p := 11; p >= 0 && i > 0; p-- {
		b[p] = hex[i%16]
		i /= 16
	}
	return string(b)
}

func TestParseStatus(t *testing.T) {
	for _, s := range Statuses {
		got, err := ParseStatus(string(s))
		require.NoError(t, err)
		require.Equal(t, s, got)
	}
	for _, bad := range []string{"", "running", "ASSIGNED", "assigned ", "lease_held"} {
		_, err := ParseStatus(bad)
		require.ErrorIs(t, err, ErrInvalid, "%q", bad)
	}
}
