package routing

// Route intents from the signed snapshot, applied as a Policy: a pair of
// nodes that a deny intent names never carries traffic, in either direction,
// directly or through relays.

import (
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
// after NewIntentPolicy; replace it when a new snapshot arrives.
type IntentPolicy struct {
	base    Policy
	self    string
	intents []Intent
	nodes   map[string]NodeInfo
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
	return &IntentPolicy{base: base, self: self, intents: in, nodes: nodes}
}

func (p *IntentPolicy) match(sel, id string) bool {
	if sel == "*" {
		return true
	}
	kind, val, ok := strings.Cut(sel, ":")
	if !ok || val == "" {
		return false
	}
	info := p.nodes[id]
	switch kind {
	case "node":
		return id == val
	case "region":
		return info.Region == val
	case "role":
		return slices.Contains(info.Roles, val)
	case "group":
		return slices.Contains(info.Groups, val)
	case "organization":
		return info.Org == val
	}
	return false
}

// Decide returns the action of the first intent matching src → dst, or ""
// when none matches.
func (p *IntentPolicy) Decide(src, dst string) string {
	for _, in := range p.intents {
		if p.match(in.Source, src) && p.match(in.Destination, dst) {
			return in.Action
		}
	}
	return ""
}

// Denied reports whether the pair a, b is denied: a deny decides a → b or
// b → a. A denied pair carries no traffic in either direction (a reply is
// traffic too).
func (p *IntentPolicy) Denied(a, b string) bool {
	if a == b {
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
