package routing

import (
	"errors"
	"fmt"
	"slices"
	"testing"
)

func TestIntentDecideSelectorsAndPriority(t *testing.T) {
	nodes := map[string]NodeInfo{
		"a": {Region: "eu", Roles: []string{"core-mesh"}, Groups: []string{"g1"}, Org: "o1"},
		"b": {Region: "us", Roles: []string{"rdp-worker"}},
		"c": {Region: "eu"},
	}
	p := NewIntentPolicy(nil, "a", []Intent{
		{Source: "*", Destination: "*", Action: IntentAllow, Priority: 500},
		{Source: "region:eu", Destination: "role:rdp-worker", Action: IntentDeny, Priority: 100},
		{Source: "node:c", Destination: "node:b", Action: IntentAllow, Priority: 50},
		{Source: "group:g1", Destination: "node:c", Action: IntentPreferRelay, Priority: 100},
		{Source: "organization:o1", Destination: "region:us", Action: IntentAllow, Priority: 200},
	}, nodes)
	cases := []struct {
		src, dst, want string
	}{
		{"a", "b", IntentDeny},        // region:eu → role:rdp-worker
		{"c", "b", IntentAllow},       // the node-specific allow has a lower priority number
		{"a", "c", IntentPreferRelay}, // group selector
		{"b", "a", IntentAllow},       // only the catch-all
		{"x", "b", IntentAllow},       // unknown node: attribute selectors do not match
	}
	for _, c := range cases {
		if got := p.Decide(c.src, c.dst); got != c.want {
			t.Errorf("Decide(%s, %s) = %q, want %q", c.src, c.dst, got, c.want)
		}
	}
	if !p.Denied("b", "a") || !p.Denied("a", "b") {
		t.Error("a deny covers the pair in both directions")
	}
	if p.Denied("c", "b") || p.Denied("a", "a") {
		t.Error("allowed pairs and self are not denied")
	}
	if p.AllowDestination("b") || p.AllowTransit("c", "b") || p.AllowRelay("b", "a") {
		t.Error("policy methods must refuse the denied pair")
	}
	if !p.AllowDestination("c") || !p.AllowRelay("c", "b") {
		t.Error("policy methods must allow other pairs")
	}
	if q := NewIntentPolicy(nil, "a", nil, nodes); q.Denied("a", "b") || q.Decide("a", "b") != "" {
		t.Error("no intents: nothing denied")
	}
}

// TestDenyIntentBlocksRoutesEvenViaRelays: s and d reach each other only
// through relays r1 and r2. A deny intent between s and d removes every
// route between them at both ends and keeps the relays from advertising d
// to s (and s to d), while every other pair keeps its routes; replacing the
// policy without the intent brings the routes back.
func TestDenyIntentBlocksRoutesEvenViaRelays(t *testing.T) {
	ids := []string{"s", "r1", "r2", "d"}
	infos := map[string]NodeInfo{"s": {Region: "eu"}, "r1": {Region: "eu", Roles: []string{"relay-node"}},
		"r2": {Region: "us", Roles: []string{"relay-node"}}, "d": {Region: "us", Roles: []string{"rdp-worker"}}}
	deny := []Intent{{Source: "node:s", Destination: "role:rdp-worker", Action: IntentDeny, Priority: 10}}
	withIntents := func(in []Intent) func(string) Policy {
		return func(id string) Policy { return NewIntentPolicy(AllowAll{}, id, in, infos) }
	}
	n := newTestNet(t, ids, withIntents(deny))
	advertised := map[string]bool{}
	n.tap = func(from, to string, msg []byte) {
		m, _ := Decode(msg)
		for _, e := range m.Entries {
			if e.Metric != Infinity && ((to == "s" && e.Dst == "d") || (to == "d" && e.Dst == "s")) {
				advertised[from+"→"+to] = true
			}
		}
	}
	n.link("s", "r1", 1)
	n.link("r1", "r2", 1)
	n.link("r2", "d", 1)
	n.link("s", "r2", 3)
	for range 50 {
		n.step()
	}
	for _, pair := range [][2]string{{"s", "d"}, {"d", "s"}} {
		if nh, _, _, err := n.routers[pair[0]].Lookup(pair[1]); !errors.Is(err, ErrNoRoute) {
			t.Fatalf("%s reaches %s via %s despite the deny intent", pair[0], pair[1], nh)
		}
	}
	if len(advertised) > 0 {
		t.Fatalf("routes between the denied pair advertised: %v", advertised)
	}
	for _, pair := range [][2]string{{"s", "r2"}, {"r1", "d"}, {"d", "r1"}} {
		if _, _, _, err := n.routers[pair[0]].Lookup(pair[1]); err != nil {
			t.Fatalf("%s → %s: %v (only the denied pair is cut)", pair[0], pair[1], err)
		}
	}

	// The intent is removed (a newer snapshot): routes come back.
	for _, id := range ids {
		n.routers[id].SetPolicy(withIntents(nil)(id))
	}
	if _, err := n.runUntil(func() error {
		_, err := n.path("s", "d")
		return err
	}, 100); err != nil {
		t.Fatalf("no route after the intent was removed: %v", err)
	}
	if p, err := n.path("s", "d"); err != nil || len(p) < 3 {
		t.Fatalf("s → d path %v %v", p, err)
	}
}

// intentFixture is a cluster of n nodes in 4 regions with k intents over
// every selector kind (deterministic).
func intentFixture(n, k int) (map[string]NodeInfo, []Intent, []string) {
	regions := []string{"eu", "us", "ap", "sa"}
	roles := []string{"relay-node", "rdp-worker", "entry-node"}
	nodes := map[string]NodeInfo{}
	var ids []string
	for i := range n {
		id := fmt.Sprintf("n%03d", i)
		ids = append(ids, id)
		nodes[id] = NodeInfo{Region: regions[i%4], Roles: []string{roles[i%3]}, Groups: []string{fmt.Sprintf("g%d", i%5)}}
	}
	ids = append(ids, "stranger") // not in the directory
	sel := func(j int) string {
		switch j % 6 {
		case 0:
			return "*"
		case 1:
			return "region:" + regions[j%4]
		case 2:
			return "role:" + roles[j%3]
		case 3:
			return fmt.Sprintf("group:g%d", j%5)
		case 4:
			return "organization:o1"
		}
		return fmt.Sprintf("node:n%03d", (j*7)%(n+3)) // some ids unknown
	}
	actions := []string{IntentDeny, IntentAllow, IntentPreferRelay}
	var in []Intent
	for j := range k {
		src, dst := sel(j*5+1), sel(j*11+2)
		if src == "*" && dst == "*" {
			dst = "region:eu"
		}
		in = append(in, Intent{Source: src, Destination: dst, Action: actions[j%3], Priority: (j * 37) % 50})
	}
	return nodes, in, ids
}

// TestIntentBitsetsMatchNaiveEvaluation compares the precomputed decision
// with a plain first-match scan over 200 intents (several bitset words) for
// every pair, including a node outside the directory.
func TestIntentBitsetsMatchNaiveEvaluation(t *testing.T) {
	nodes, in, ids := intentFixture(40, 200)
	p := NewIntentPolicy(nil, "n000", in, nodes)
	sorted := slices.Clone(in)
	slices.SortStableFunc(sorted, func(a, b Intent) int { return a.Priority - b.Priority })
	naive := func(src, dst string) string {
		for _, x := range sorted {
			if match(x.Source, src, nodes[src]) && match(x.Destination, dst, nodes[dst]) {
				return x.Action
			}
		}
		return ""
	}
	decided := map[string]int{}
	for _, a := range ids {
		for _, b := range ids {
			want, got := naive(a, b), p.Decide(a, b)
			if want != got {
				t.Fatalf("Decide(%s, %s) = %q, naive %q", a, b, got, want)
			}
			decided[got]++
		}
	}
	if decided[IntentDeny] == 0 || decided[IntentAllow] == 0 {
		t.Fatalf("fixture too weak: %v", decided)
	}
}

// BenchmarkIntentPolicyAllowRelay is the per-relayed-frame check with 1000
// intents over 300 known nodes, beside the ScopePolicy it wraps (baseline).
func BenchmarkIntentPolicyAllowRelay(b *testing.B) {
	nodes, in, ids := intentFixture(300, 1000)
	scopes := map[string]Scope{}
	for id := range nodes {
		scopes[id] = Scope{Cluster: "c1"}
	}
	base := &ScopePolicy{ID: "n000", Self: Scope{Cluster: "c1"}, Nodes: scopes}
	p := NewIntentPolicy(base, "n000", in, nodes)
	run := func(b *testing.B, pol Policy) {
		i := 0
		for b.Loop() {
			_ = pol.AllowRelay(ids[i%len(ids)], ids[(i*7+3)%len(ids)])
			i++
		}
	}
	b.Run("baseline-scope-policy", func(b *testing.B) { run(b, base) })
	b.Run("intents-1000", func(b *testing.B) { run(b, p) })
}

// TestResolvedIntentNodesDecideForStrangers: a relay knows neither the
// source's region nor the destination's role (both outside its directory);
// the node lists the authority resolved decide, and replace local attribute
// matching (an empty list matches nobody).
func TestResolvedIntentNodesDecideForStrangers(t *testing.T) {
	nodes := map[string]NodeInfo{"relay": {Region: "eu"}, "local": {Region: "eu", Roles: []string{"rdp-worker"}}}
	p := NewIntentPolicy(nil, "relay", []Intent{
		{Source: "region:eu", Destination: "role:rdp-worker", Action: IntentDeny, Priority: 1,
			SourceNodes: []string{"far-src"}, DestinationNodes: []string{"far-dst", "local"}},
		{Source: "group:g9", Destination: "*", Action: IntentDeny, Priority: 2, SourceNodes: []string{}},
	}, nodes)
	if !p.Denied("far-src", "far-dst") || p.AllowRelay("far-src", "far-dst") || p.AllowRelay("far-dst", "far-src") {
		t.Fatal("the resolved pair must be denied at a relay that knows neither node")
	}
	if !p.Denied("far-src", "local") {
		t.Fatal("a known node in the resolved list matches")
	}
	if p.Denied("relay", "local") {
		t.Fatal("the resolved list replaces local region matching: relay is in eu but not listed")
	}
	if p.Denied("someone", "far-dst") {
		t.Fatal("an empty resolved list matches nobody")
	}
}

// TestPreferRelayIntentSelectsRelayedRoute: s and d share a cheap direct
// link and a relay r. With a prefer-relay intent s → d, s sends through r
// (d, without a matching intent, keeps the direct link); when r goes away
// s falls back to the direct link; without the intent s uses it directly.
func TestPreferRelayIntentSelectsRelayedRoute(t *testing.T) {
	ids := []string{"s", "r", "d"}
	prefer := []Intent{{Source: "node:s", Destination: "node:d", Action: IntentPreferRelay, Priority: 1}}
	n := newTestNet(t, ids, func(id string) Policy { return NewIntentPolicy(AllowAll{}, id, prefer, nil) })
	n.link("s", "d", 1)
	n.link("s", "r", 1)
	n.link("r", "d", 1)
	for range 50 {
		n.step()
	}
	if nh, _, _, err := n.routers["s"].Lookup("d"); err != nil || nh != "r" {
		t.Fatalf("s → d via %q (%v), want the relay r", nh, err)
	}
	if nh, _, _, err := n.routers["d"].Lookup("s"); err != nil || nh != "s" {
		t.Fatalf("d → s via %q (%v), want the direct link", nh, err)
	}
	n.kill("r")
	if _, err := n.runUntil(func() error {
		if nh, _, _, err := n.routers["s"].Lookup("d"); err != nil || nh != "d" {
			return fmt.Errorf("via %q: %v", nh, err)
		}
		return nil
	}, 100); err != nil {
		t.Fatalf("no fallback to the direct link: %v", err)
	}

	plain := newTestNet(t, ids, func(id string) Policy { return NewIntentPolicy(AllowAll{}, id, nil, nil) })
	plain.link("s", "d", 1)
	plain.link("s", "r", 1)
	plain.link("r", "d", 1)
	for range 50 {
		plain.step()
	}
	if nh, _, _, err := plain.routers["s"].Lookup("d"); err != nil || nh != "d" {
		t.Fatalf("without the intent s → d via %q (%v), want direct", nh, err)
	}
}
