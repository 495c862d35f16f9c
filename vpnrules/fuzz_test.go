package vpnrules

import (
	"errors"
	"strings"
	"testing"
)

// FuzzRoutePolicy feeds arbitrary prefix lists (API input) through parsing
// and the route policy checks: no panic, and every refusal is ErrInvalid.
func FuzzRoutePolicy(f *testing.F) {
	for _, seed := range []string{"10.0.0.0/8", "0.0.0.0/0", "::/0,fd00::/8", "10.0.0.1/8", "192.168.1.0/24,192.168.0.0/16", "", "x/y", "1.2.3.4/33", "fe80::%eth0/64"} {
		f.Add(seed, "ipv4", true, false)
		f.Add(seed, "dual", false, true)
	}
	f.Fuzz(func(t *testing.T, list, family string, allowDefault, allowOverlap bool) {
		fam, err := ParseFamily(family)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("family error not ErrInvalid: %v", err)
			}
			return
		}
		ps, err := ParsePrefixes("prefixes", fam, strings.Split(list, ","), MaxPolicyPrefixes)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("prefix error not ErrInvalid: %v", err)
			}
			return
		}
		for _, p := range ps {
			if p != p.Masked() || !fam.Allows(p.Addr()) {
				t.Fatalf("accepted %s for %s", p, fam)
			}
		}
		conn := Connection{Family: fam, ClientPrefixes: ps}
		_ = CheckConnection(conn)
		err = CheckRoutePolicy(Connection{Family: fam}, []RoutePolicy{{Name: "other", Prefixes: ps, AllowOverlap: allowOverlap}},
			RoutePolicy{Name: "p", Prefixes: ps, AllowDefaultRoute: allowDefault, AllowOverlap: allowOverlap})
		if err == nil {
			for _, p := range ps {
				if IsDefaultRoute(p) && !allowDefault {
					t.Fatalf("default route %s accepted without allow_default_route", p)
				}
			}
			if len(ps) > 0 && !allowOverlap {
				t.Fatalf("overlap with an identical policy accepted without allow_overlap: %v", ps)
			}
		} else if !errors.Is(err, ErrInvalid) {
			t.Fatalf("policy error not ErrInvalid: %v", err)
		}
	})
}
