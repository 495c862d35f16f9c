package routing

// Route intents from the signed snapshot, applied as a Policy: a pair of
// nodes that a deny intent names never carries traffic, in either direction,
// directly or through relays.

import (
	"math/bits"
	"slices"
	"strings"
)

// Route intent actions (the authority accepts exactly these).
const (
	IntentAllow       = "allow"
	IntentDeny        = "deny"
	IntentPreferRelay = "prefer-relay"
)

// Intent is one route intent: traffic from nodes matching Source to nodes
// matching Destination gets Action. Selectors are "*" or kind:value with
// kind node (node id), region, role, group (a group id on the node's group
// path) or organization (organization id). Lower Priority is evaluated
// first; the first intent whose selectors both match decides.
type Intent struct {
	Source      string `json:"source"`
	Destination string `json:"destination"`
	Action      string `json:"action"`
	Priority    int    `json:"priority"`
	// SourceNodes and DestinationNodes, when not nil, are the node ids the
	// authority resolved an attribute selector to (it knows every node; a
	// relay does not). They replace local matching of that side.
	SourceNodes      []string `json:"source_nodes,omitempty"`
	DestinationNodes []string `json:"destination_nodes,omitempty"`
}

// NodeInfo is what the local node knows about a node for selector matching
// (from its peer directory). A selector on an attribute that is unknown
// (empty) does not match.
type NodeInfo struct {
	Region string
	Roles  []string
	Groups []string
	Org    string
}

// IntentPolicy restricts a Base policy with route intents. It is immutable
// after NewIntentPolicy; replace it when a new snapshot arrives. Selectors
// are matched once, at construction: each known node gets a bitset of the
// intents whose source (and destination) it matches, so a decision per frame
// is a few word ANDs, whatever the number of intents.
type IntentPolicy struct {
	base    Policy
	self    string
	intents []Intent
	words   int
	// src and dst: per known node, the intents whose Source (Destination)
	// matches it. wildSrc/wildDst: the "*" selectors; nodeSrc/nodeDst: the
	// node:ID selectors, for nodes not in the directory.
	src, dst         map[string][]uint64
	wildSrc, wildDst []uint64
	nodeSrc, nodeDst map[string][]uint64
	anyDeny          bool
}

// NewIntentPolicy returns base restricted by intents (evaluated in priority
// order, ties in the given order). nodes describes the known nodes,
// including self; base nil means AllowAll.
func NewIntentPolicy(base Policy, self string, intents []Intent, nodes map[string]NodeInfo) *IntentPolicy {
	if base == nil {
		base = AllowAll{}
	}
	in := slices.Clone(intents)
	slices.SortStableFunc(in, func(a, b Intent) int { return a.Priority - b.Priority })
	p := &IntentPolicy{base: base, self: self, intents: in, words: (len(in) + 63) / 64,
		src: map[string][]uint64{}, dst: map[string][]uint64{}, nodeSrc: map[string][]uint64{}, nodeDst: map[string][]uint64{}}
	p.wildSrc, p.wildDst = make([]uint64, p.words), make([]uint64, p.words)
	set := func(m map[string][]uint64, k string, i int) {
		b := m[k]
		if b == nil {
			b = make([]uint64, p.words)
			m[k] = b
		}
		b[i/64] |= 1 << (i % 64)
	}
	for i, x := range in {
		p.anyDeny = p.anyDeny || x.Action == IntentDeny
		for _, side := range []struct {
			sel      string
			resolved []string
			wild     []uint64
			node     map[string][]uint64
			known    map[string][]uint64
		}{{x.Source, x.SourceNodes, p.wildSrc, p.nodeSrc, p.src}, {x.Destination, x.DestinationNodes, p.wildDst, p.nodeDst, p.dst}} {
			switch id, isNode := strings.CutPrefix(side.sel, "node:"); {
			case side.sel == "*":
				side.wild[i/64] |= 1 << (i % 64)
			case isNode && id != "":
				set(side.node, id, i)
			case side.resolved != nil:
				for _, id := range side.resolved {
					set(side.node, id, i)
				}
			}
			var rs map[string]bool
			if side.resolved != nil && side.sel != "*" && !strings.HasPrefix(side.sel, "node:") {
				rs = make(map[string]bool, len(side.resolved))
				for _, id := range side.resolved {
					rs[id] = true
				}
			}
			for id, info := range nodes {
				ok := rs[id]
				if rs == nil {
					ok = match(side.sel, id, info)
				}
				if ok {
					set(side.known, id, i)
				}
			}
		}
	}
	return p
}

func match(sel, id string, info NodeInfo) bool {
	if sel == "*" {
		return true
	}
	kind, val, ok := strings.Cut(sel, ":")
	if !ok || val == "" {
		return false
	}
	switch kind {
	case "node":
		return id == val
	case "region":
		return info.Region != "" && info.Region == val
	case "role":
		return slices.Contains(info.Roles, val)
	case "group":
		return slices.Contains(info.Groups, val)
	case "organization":
		return info.Org != "" && info.Org == val
	}
	return false
}

// side returns id's bitset on one side when it is precomputed (a known
// node), else the node:ID selectors naming it (nil if none); the caller ORs
// the "*" selectors in for an unknown node.
func side(known map[string][]uint64, byNode map[string][]uint64, id string) (bits []uint64, isKnown bool) {
	if b, ok := known[id]; ok {
		return b, true
	}
	return byNode[id], false
}

// Decide returns the action of the first intent matching src → dst, or ""
// when none matches.
func (p *IntentPolicy) Decide(src, dst string) string {
	sb, sKnown := side(p.src, p.nodeSrc, src)
	db, dKnown := side(p.dst, p.nodeDst, dst)
	for w := 0; w < p.words; w++ {
		var s, d uint64
		if sb != nil {
			s = sb[w]
		}
		if !sKnown {
			s |= p.wildSrc[w]
		}
		if s == 0 {
			continue
		}
		if db != nil {
			d = db[w]
		}
		if !dKnown {
			d |= p.wildDst[w]
		}
		if x := s & d; x != 0 {
			return p.intents[w*64+bits.TrailingZeros64(x)].Action
		}
	}
	return ""
}

// Denied reports whether the pair a, b is denied: a deny decides a → b or
// b → a. A denied pair carries no traffic in either direction (a reply is
// traffic too).
func (p *IntentPolicy) Denied(a, b string) bool {
	if a == b || !p.anyDeny {
		return false
	}
	return p.Decide(a, b) == IntentDeny || p.Decide(b, a) == IntentDeny
}

// AllowDestination implements Policy: base allows dst and the pair (self,
// dst) is not denied.
func (p *IntentPolicy) AllowDestination(dst string) bool {
	return p.base.AllowDestination(dst) && !p.Denied(p.self, dst)
}

// AllowTransit implements Policy: base allows it and the pair (self, dst) is
// not denied.
func (p *IntentPolicy) AllowTransit(via, dst string) bool {
	return p.base.AllowTransit(via, dst) && !p.Denied(p.self, dst)
}

// AllowRelay implements Policy: base allows it and the pair (from, dst) is
// not denied, so a relay neither carries a denied pair's frames nor
// advertises dst to a neighbour denied to reach it.
func (p *IntentPolicy) AllowRelay(from, dst string) bool {
	return p.base.AllowRelay(from, dst) && !p.Denied(from, dst)
}

// PreferRelay implements RelayPreferrer: the first intent matching self →
// dst says prefer-relay.
func (p *IntentPolicy) PreferRelay(dst string) bool {
	return p.Decide(p.self, dst) == IntentPreferRelay
}
