package routing

import (
	"math"
	"slices"
	"time"
)

// Policy is the caller's routing policy, normally derived from the signed
// scoped snapshot. It can only forbid: a route it refuses is never
// installed, never advertised and never used for relaying. Implementations
// must be safe for concurrent use and fast (they are called per update entry
// and, by mesh/e2e, per relayed frame).
type Policy interface {
	// AllowDestination reports whether this node may reach dst at all
	// (organization and cluster scope).
	AllowDestination(dst string) bool
	// AllowTransit reports whether this node may send traffic for dst to
	// neighbour via. via == dst is the direct link; otherwise via relays.
	AllowTransit(via, dst string) bool
	// AllowRelay reports whether this node may carry traffic that comes
	// from node from (a source or the previous hop) towards dst. Routes to
	// dst are advertised to a neighbour n only if AllowRelay(n, dst).
	AllowRelay(from, dst string) bool
}

// RelayPreferrer may be implemented by a Policy: when PreferRelay(dst) is
// true and the selected route to dst is the direct link, Lookup returns a
// usable loop-free route through a relay instead whenever there is one (for
// data only; the direct link stays selected, advertised and the fallback).
// IntentPolicy implements it for prefer-relay intents.
type RelayPreferrer interface {
	PreferRelay(dst string) bool
}

// AllowAll is a Policy that permits everything (tests, single-tenant
// clusters).
type AllowAll struct{}

// AllowDestination implements Policy.
func (AllowAll) AllowDestination(string) bool { return true }

// AllowTransit implements Policy.
func (AllowAll) AllowTransit(string, string) bool { return true }

// AllowRelay implements Policy.
func (AllowAll) AllowRelay(string, string) bool { return true }

// Scope places a node in a cluster and, optionally, an organization.
type Scope struct {
	Cluster string
	// Org is empty for shared infrastructure nodes (relays, core mesh)
	// that serve every organization of the cluster.
	Org string
	// Orgs are further organizations the node serves (from the signed
	// snapshot); the node serves Org and Orgs. A node serving none is
	// shared infrastructure.
	Orgs []string
}

// orgs returns every organization s serves.
func (s Scope) orgs() []string {
	if s.Org == "" {
		return s.Orgs
	}
	return append([]string{s.Org}, s.Orgs...)
}

// SameOrganization reports whether two nodes may carry traffic to each
// other under organization scope: either serves no organization (shared
// infrastructure), or they serve at least one organization in common.
func SameOrganization(a, b Scope) bool {
	ao, bo := a.orgs(), b.orgs()
	if len(ao) == 0 || len(bo) == 0 {
		return true
	}
	for _, x := range ao {
		if slices.Contains(bo, x) {
			return true
		}
	}
	return false
}

// ScopePolicy is a Policy built from the signed snapshot: the scopes of the
// nodes this node knows about and the nodes that may not relay. It is
// immutable after construction; replace it (Router.SetPolicy) when a new
// snapshot arrives.
type ScopePolicy struct {
	// ID is this node's id; NoTransit[ID] forbids this node from relaying.
	ID string
	// Self is this node's scope.
	Self Scope
	// Nodes maps known node ids to their scopes; unknown nodes are refused.
	Nodes map[string]Scope
	// NoTransit lists nodes that must never relay (for example thin or
	// untrusted nodes).
	NoTransit map[string]bool
	// CrossOrg allows traffic between nodes of different organizations of
	// the cluster (the route policy's "cross_organization": true). Without
	// it this node neither originates, accepts nor relays traffic between
	// two nodes that serve organizations but none in common.
	CrossOrg bool
}

func (p *ScopePolicy) reachable(a Scope, b Scope) bool {
	if a.Cluster != b.Cluster {
		return false
	}
	return p.CrossOrg || SameOrganization(a, b)
}

// AllowDestination implements Policy: dst is known, in this cluster and in a
// compatible organization.
func (p *ScopePolicy) AllowDestination(dst string) bool {
	s, ok := p.Nodes[dst]
	return ok && p.reachable(p.Self, s)
}

// AllowTransit implements Policy: via is known, in this cluster, and either
// is dst itself or may relay.
func (p *ScopePolicy) AllowTransit(via, dst string) bool {
	if !p.AllowDestination(dst) {
		return false
	}
	if via == dst {
		return true
	}
	s, ok := p.Nodes[via]
	return ok && s.Cluster == p.Self.Cluster && !p.NoTransit[via]
}

// AllowRelay implements Policy: this node may relay at all, and from and dst
// are known nodes of this cluster that may talk to each other.
func (p *ScopePolicy) AllowRelay(from, dst string) bool {
	if p.NoTransit[p.ID] {
		return false
	}
	f, ok1 := p.Nodes[from]
	d, ok2 := p.Nodes[dst]
	return ok1 && ok2 && f.Cluster == p.Self.Cluster && p.reachable(f, d)
}

// CostFromRTT turns a link measurement into a Metric: one unit per 100 µs of
// round-trip time (minimum 1), multiplied by 1 + 10·loss so that a lossy
// link is avoided. Callers should quantize measurements so that jitter does
// not cause a triggered update per probe.
func CostFromRTT(rtt time.Duration, loss float64) Metric {
	if loss < 0 || math.IsNaN(loss) {
		loss = 0
	}
	if loss > 1 {
		loss = 1
	}
	c := float64(rtt/(100*time.Microsecond)) * (1 + 10*loss)
	switch {
	case c < 1:
		return 1
	case c >= float64(Infinity-1):
		return Infinity - 1
	}
	return Metric(c)
}
