// Package vpnrules holds the pure rules of the VPN / IP tunnel control plane
// (spec C18A-C18C): parsing and checking a connection's prefixes and DNS
// servers against its address family, route policy checks (prefixes parse,
// no overlaps unless the policy allows them, the default route only when the
// policy allows it explicitly), normalization of allowed-node lists, and the
// status values an agent may report.
//
// It performs no I/O and imports nothing of ours: the authority validates
// requests with it, and the agent uses its status vocabulary. It does not
// decide who may hold a lease (authority/vpn.go does) and it never sees a
// credential.
package vpnrules

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
)

// Family is a connection's address family.
type Family string

// Address families.
const (
	FamilyIPv4 Family = "ipv4"
	FamilyIPv6 Family = "ipv6"
	FamilyDual Family = "dual"
)

// Status is what an agent reports about one of its VPN assignments.
type Status string

// The status values an agent may report (spec C18C); anything else is refused.
const (
	StatusNotStarted    Status = "not_started"
	StatusAssigned      Status = "assigned"
	StatusLeaseRequired Status = "lease_required"
	StatusBlocked       Status = "blocked"
	StatusUnknown       Status = "unknown"
)

// Statuses lists every allowed status in a stable order.
var Statuses = []Status{StatusNotStarted, StatusAssigned, StatusLeaseRequired, StatusBlocked, StatusUnknown}

// Limits of a connection (the database checks the same).
const (
	MaxClientPrefixes = 64
	MaxRemotePrefixes = 256
	MaxPolicyPrefixes = 256
	MaxDNSServers     = 8
	MinMTU            = 576
	MaxMTU            = 9000
	MinLeaseTTL       = 2    // seconds
	MaxLeaseTTL       = 3600 // seconds
	MaxAllowedNodes   = 64
)

// ErrInvalid is wrapped by every error of this package.
var ErrInvalid = errors.New("invalid")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

var nameRe = regexp.MustCompile(`^[a-z][a-z0-9_.-]{0,62}$`)

// CheckName checks a connection or route policy name.
func CheckName(what, name string) error {
	if !nameRe.MatchString(name) {
		return invalid("%s name must start with a lower-case letter and use only a-z, 0-9, '_', '.', '-' (at most 63 characters), got %q", what, name)
	}
	return nil
}

// ParseFamily parses an address family.
func ParseFamily(s string) (Family, error) {
	switch f := Family(strings.TrimSpace(s)); f {
	case FamilyIPv4, FamilyIPv6, FamilyDual:
		return f, nil
	}
	return "", invalid("address_family must be ipv4, ipv6 or dual, got %q", s)
}

// Allows reports whether family f admits an address of a's kind.
func (f Family) Allows(a netip.Addr) bool {
	switch f {
	case FamilyIPv4:
		return a.Is4()
	case FamilyIPv6:
		return a.Is6() && !a.Is4In6()
	case FamilyDual:
		return true
	}
	return false
}

// ParseStatus parses an agent's status report value.
func ParseStatus(s string) (Status, error) {
	st := Status(s)
	if slices.Contains(Statuses, st) {
		return st, nil
	}
	return "", invalid("status must be one of not_started, assigned, lease_required, blocked, unknown; got %q", s)
}

// IsDefaultRoute reports whether p is 0.0.0.0/0 or ::/0.
func IsDefaultRoute(p netip.Prefix) bool { return p.Bits() == 0 }

// ParsePrefixes parses CIDR prefixes for what ("client_prefixes", ...): each
// must be in canonical form (no host bits set), of family f, and listed once.
// The result keeps the input order.
func ParsePrefixes(what string, f Family, in []string, max int) ([]netip.Prefix, error) {
	if len(in) > max {
		return nil, invalid("%s: at most %d prefixes", what, max)
	}
	out := make([]netip.Prefix, 0, len(in))
	for _, s := range in {
		p, err := netip.ParsePrefix(strings.TrimSpace(s))
		if err != nil {
			return nil, invalid("%s: %q is not a CIDR prefix", what, s)
		}
		if p.Addr().Zone() != "" {
			return nil, invalid("%s: %q has a zone", what, s)
		}
		if p != p.Masked() {
			return nil, invalid("%s: %q has host bits set (did you mean %s?)", what, s, p.Masked())
		}
		if !f.Allows(p.Addr()) {
			return nil, invalid("%s: %s is not of address family %s", what, p, f)
		}
		if slices.Contains(out, p) {
			return nil, invalid("%s: %s is listed twice", what, p)
		}
		out = append(out, p)
	}
	return out, nil
}

// ParseDNS parses DNS server addresses of family f.
func ParseDNS(f Family, in []string) ([]netip.Addr, error) {
	if len(in) > MaxDNSServers {
		return nil, invalid("dns_servers: at most %d", MaxDNSServers)
	}
	out := make([]netip.Addr, 0, len(in))
	for _, s := range in {
		a, err := netip.ParseAddr(strings.TrimSpace(s))
		if err != nil || a.Zone() != "" {
			return nil, invalid("dns_servers: %q is not an IP address", s)
		}
		if !f.Allows(a) {
			return nil, invalid("dns_servers: %s is not of address family %s", a, f)
		}
		if a.IsUnspecified() || a.IsMulticast() {
			return nil, invalid("dns_servers: %s cannot be a DNS server", a)
		}
		if slices.Contains(out, a) {
			return nil, invalid("dns_servers: %s is listed twice", a)
		}
		out = append(out, a)
	}
	return out, nil
}

// CheckMTU checks a tunnel MTU.
func CheckMTU(mtu int) error {
	if mtu < MinMTU || mtu > MaxMTU {
		return invalid("mtu must be between %d and %d, got %d", MinMTU, MaxMTU, mtu)
	}
	return nil
}

// CheckLeaseTTL checks a lease time to live in seconds.
func CheckLeaseTTL(sec int) error {
	if sec < MinLeaseTTL || sec > MaxLeaseTTL {
		return invalid("lease_ttl_seconds must be between %d and %d, got %d", MinLeaseTTL, MaxLeaseTTL, sec)
	}
	return nil
}

// Overlaps reports the first pair of overlapping prefixes between a and b
// (within a alone when b is nil).
func Overlaps(a, b []netip.Prefix) (netip.Prefix, netip.Prefix, bool) {
	if b == nil {
		for i := range a {
			for j := i + 1; j < len(a); j++ {
				if a[i].Overlaps(a[j]) {
					return a[i], a[j], true
				}
			}
		}
		return netip.Prefix{}, netip.Prefix{}, false
	}
	for _, x := range a {
		for _, y := range b {
			if x.Overlaps(y) {
				return x, y, true
			}
		}
	}
	return netip.Prefix{}, netip.Prefix{}, false
}

// Connection is what CheckConnection validates: a connection's network shape.
type Connection struct {
	Family         Family
	ClientPrefixes []netip.Prefix
	RemotePrefixes []netip.Prefix
}

// CheckConnection checks that a connection's client address pool and remote
// prefixes do not overlap each other (traffic to a remote prefix would loop
// back to clients) and that neither overlaps within itself.
func CheckConnection(c Connection) error {
	if x, y, ok := Overlaps(c.ClientPrefixes, nil); ok {
		return invalid("client_prefixes %s and %s overlap", x, y)
	}
	if x, y, ok := Overlaps(c.RemotePrefixes, nil); ok {
		return invalid("remote_prefixes %s and %s overlap", x, y)
	}
	if x, y, ok := Overlaps(c.ClientPrefixes, c.RemotePrefixes); ok {
		return invalid("client prefix %s overlaps remote prefix %s", x, y)
	}
	return nil
}

// RoutePolicy is a route policy to check: the prefixes routed through the
// connection and what the policy explicitly allows.
type RoutePolicy struct {
	Name              string
	Prefixes          []netip.Prefix
	AllowDefaultRoute bool
	AllowOverlap      bool
}

// CheckRoutePolicy checks a new route policy of a connection against the
// connection and its existing policies:
//   - at least one prefix;
//   - the default route (0.0.0.0/0, ::/0) only with AllowDefaultRoute;
//   - no prefix overlaps another prefix of the policy (never allowed: it is
//     ambiguous within one policy);
//   - no prefix overlaps a prefix of an existing policy, unless both
//     policies allow overlap (a default route allowed explicitly overlaps
//     everything by design, so it needs AllowOverlap too when others exist);
//   - no prefix but an allowed default route overlaps the connection's
//     client address pool.
func CheckRoutePolicy(c Connection, existing []RoutePolicy, p RoutePolicy) error {
	if err := CheckName("route policy", p.Name); err != nil {
		return err
	}
	if len(p.Prefixes) == 0 {
		return invalid("a route policy needs at least one prefix")
	}
	for _, x := range p.Prefixes {
		if IsDefaultRoute(x) && !p.AllowDefaultRoute {
			return invalid("%s is a default route: set allow_default_route to route everything through this connection", x)
		}
	}
	if x, y, ok := Overlaps(p.Prefixes, nil); ok {
		return invalid("prefixes %s and %s of the policy overlap", x, y)
	}
	specific := make([]netip.Prefix, 0, len(p.Prefixes))
	for _, x := range p.Prefixes {
		if !IsDefaultRoute(x) { // an allowed default route covers the pool by design
			specific = append(specific, x)
		}
	}
	if x, y, ok := Overlaps(specific, c.ClientPrefixes); ok {
		return invalid("prefix %s overlaps the client prefix %s of the connection", x, y)
	}
	for _, e := range existing {
		if e.Name == p.Name {
			return invalid("the connection already has a route policy named %q", p.Name)
		}
		if p.AllowOverlap && e.AllowOverlap {
			continue
		}
		if x, y, ok := Overlaps(p.Prefixes, e.Prefixes); ok {
			return invalid("prefix %s overlaps %s of route policy %q (both policies must set allow_overlap)", x, y, e.Name)
		}
	}
	return nil
}

// NormalizeNodes deduplicates and sorts node ids (lower-case UUIDs). It
// refuses malformed ids and more than MaxAllowedNodes; membership in the
// connection's cluster is checked by the caller against the database.
func NormalizeNodes(in []string) ([]string, error) {
	out := make([]string, 0, len(in))
	for _, s := range in {
		id := strings.ToLower(strings.TrimSpace(s))
		if !uuidRe.MatchString(id) {
			return nil, invalid("node id %q is not a UUID", s)
		}
		out = append(out, id)
	}
	slices.Sort(out)
	out = slices.Compact(out)
	if len(out) > MaxAllowedNodes {
		return nil, invalid("at most %d allowed nodes per connection", MaxAllowedNodes)
	}
	return out, nil
}

var uuidRe = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// Strings renders prefixes in their canonical text form.
func Strings[T fmt.Stringer](in []T) []string {
	out := make([]string, len(in))
	for i, x := range in {
		out[i] = x.String()
	}
	return out
}
