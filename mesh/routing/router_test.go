package routing

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"
)

func TestConvergence(t *testing.T) {
	cases := []struct {
		name  string
		nodes int
		build func(n *testNet)
	}{
		{"line", 10, func(n *testNet) {
			for i := 1; i < len(n.ids); i++ {
				n.link(n.ids[i-1], n.ids[i], Metric(i))
			}
		}},
		{"ring", 10, func(n *testNet) {
			for i := range n.ids {
				n.link(n.ids[i], n.ids[(i+1)%len(n.ids)], Metric(1+i%3))
			}
		}},
		{"star", 11, func(n *testNet) {
			for i := 1; i < len(n.ids); i++ {
				n.link(n.ids[0], n.ids[i], Metric(i))
			}
		}},
		{"random50", 50, func(n *testNet) { randomGraph(n, 7, 40) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := newTestNet(t, names("n", tc.nodes), nil)
			tc.build(n)
			rounds, err := n.runUntil(n.optimal, 300)
			if err != nil {
				t.Fatalf("not converged after %d rounds: %v", rounds, err)
			}
			msgs := n.sent
			// Stable: a further refresh period changes nothing.
			before := tableSnapshot(n)
			for range 3 * n.tickEvery * 10 {
				n.step()
			}
			if after := tableSnapshot(n); after != before {
				t.Fatalf("tables changed after convergence")
			}
			t.Logf("%s: %d nodes, %d links: converged in %d rounds (%v virtual at %v/round), %d messages",
				tc.name, tc.nodes, len(n.cost), rounds, time.Duration(rounds)*n.round, n.round, msgs)
		})
	}
}

func tableSnapshot(n *testNet) string {
	s := ""
	for _, id := range n.ids {
		s += fmt.Sprint(id, n.routers[id].Table())
	}
	return s
}

// diamond: s–a–d cheap, s–b–d dear.
func diamond(t *testing.T, sa, ad, sb, bd Metric, policy func(string) Policy) *testNet {
	n := newTestNet(t, []string{"s", "a", "b", "d"}, policy)
	n.link("s", "a", sa)
	n.link("a", "d", ad)
	n.link("s", "b", sb)
	n.link("b", "d", bd)
	if r, err := n.runUntil(n.optimal, 100); err != nil {
		t.Fatalf("diamond not converged after %d rounds: %v", r, err)
	}
	return n
}

func TestFailoverFeasibleAlternateImmediate(t *testing.T) {
	n := diamond(t, 1, 1, 1, 1, nil)
	alts := n.routers["s"].Alternates("d")
	if len(alts) != 2 {
		t.Fatalf("alternates = %+v, want two", alts)
	}
	first := alts[0].NextHop
	other := alts[1].NextHop
	n.cutLink("s", first)
	// No round has passed: the next route is already in use.
	nh, c, hops, err := n.routers["s"].Lookup("d")
	if err != nil || nh != other || c != 2 || hops != 2 {
		t.Fatalf("after cut: %s %d %d %v, want %s 2 2", nh, c, hops, err, other)
	}
}

func TestFailoverLoopFreeAlternateImmediate(t *testing.T) {
	n := diamond(t, 1, 1, 2, 2, nil)
	if nh, _, _, _ := n.routers["s"].Lookup("d"); nh != "a" {
		t.Fatalf("primary next hop %s, want a", nh)
	}
	seq := n.routers["d"].Seq()
	n.cutLink("s", "a")
	// b's route (metric 2) is not feasible (feasibility distance 2) but it is
	// a loop-free alternate: used for data immediately.
	nh, c, _, err := n.routers["s"].Lookup("d")
	if err != nil || nh != "b" || c != 4 {
		t.Fatalf("after cut: %s %d %v, want b 4", nh, c, err)
	}
	// The sequence-number request makes it a regular route within one tick.
	rounds, err := n.runUntil(func() error {
		for _, r := range n.routers["s"].Table() {
			if r.Dst == "d" && r.NextHop == "b" {
				return nil
			}
		}
		return errors.New("not yet selected")
	}, n.tickEvery)
	if err != nil {
		t.Fatal(err)
	}
	if !seqNewer(n.routers["d"].Seq(), seq) {
		t.Fatalf("destination seq not bumped: %d", n.routers["d"].Seq())
	}
	if _, err := n.runUntil(n.optimal, 50); err != nil {
		t.Fatal(err)
	}
	t.Logf("regular route via alternate after %d rounds (tick = %d rounds)", rounds, n.tickEvery)
}

func TestShortcutReplacesRelay(t *testing.T) {
	n := newTestNet(t, []string{"s", "r", "d"}, nil)
	n.link("s", "r", 5)
	n.link("r", "d", 5)
	if _, err := n.runUntil(n.optimal, 50); err != nil {
		t.Fatal(err)
	}
	if nh, c, h, _ := n.routers["s"].Lookup("d"); nh != "r" || c != 10 || h != 2 {
		t.Fatalf("relayed route %s %d %d", nh, c, h)
	}
	n.link("s", "d", 3) // direct link becomes healthy
	rounds, err := n.runUntil(func() error {
		if nh, _, h, _ := n.routers["s"].Lookup("d"); nh != "d" || h != 1 {
			return fmt.Errorf("still via %s", nh)
		}
		return nil
	}, n.tickEvery)
	if err != nil {
		t.Fatal(err)
	}
	if rounds > 1 {
		t.Fatalf("shortcut took %d rounds, want 1 (the neighbour's dump)", rounds)
	}
	// The link goes down again: back to the relay; heal: back to direct.
	n.cutLink("s", "d")
	if nh, _, _, err := n.routers["s"].Lookup("d"); nh != "r" {
		t.Fatalf("after direct cut: %s %v", nh, err)
	}
	n.heal("s", "d")
	if _, err := n.runUntil(n.optimal, 5); err != nil {
		t.Fatal(err)
	}
	if nh, _, _, _ := n.routers["s"].Lookup("d"); nh != "d" {
		t.Fatalf("after heal via %s", nh)
	}
	t.Logf("shortcut after %d round(s)", rounds)
}

func TestRelayKilledReroutes(t *testing.T) {
	n := newTestNet(t, []string{"s", "r1", "r2", "r3", "d"}, nil)
	n.link("s", "r1", 1)
	n.link("r1", "d", 1)
	n.link("s", "r2", 2)
	n.link("r2", "d", 2)
	n.link("s", "r3", 3)
	n.link("r3", "d", 3)
	if _, err := n.runUntil(n.optimal, 50); err != nil {
		t.Fatal(err)
	}
	n.kill("r1")
	if nh, _, _, err := n.routers["s"].Lookup("d"); err != nil || nh != "r2" {
		t.Fatalf("after kill: %s %v, want r2", nh, err)
	}
	if rounds, err := n.runUntil(n.optimal, n.tickEvery); err != nil {
		t.Fatalf("after %d rounds: %v", rounds, err)
	}
	if p, err := n.path("s", "d"); err != nil || !slices.Equal(p, []string{"s", "r2", "d"}) {
		t.Fatalf("path %v %v", p, err)
	}
}

func TestSilentRelayDeathTimesOut(t *testing.T) {
	n := newTestNet(t, []string{"s", "r1", "r2", "d"}, nil)
	n.link("s", "r1", 1)
	n.link("r1", "d", 1)
	n.link("s", "r2", 2)
	n.link("r2", "d", 2)
	if _, err := n.runUntil(n.optimal, 50); err != nil {
		t.Fatal(err)
	}
	// r1 stops answering but nobody reports its links down.
	n.dead["r1"] = true
	start := n.now
	if _, err := n.runUntil(func() error {
		if nh, _, _, _ := n.routers["s"].Lookup("d"); nh != "r2" {
			return fmt.Errorf("via %s", nh)
		}
		return nil
	}, 1000); err != nil {
		t.Fatal(err)
	}
	took := n.now.Sub(start)
	if took > 3500*time.Millisecond+time.Second {
		t.Fatalf("reroute took %v, more than RouteTimeout + one refresh", took)
	}
	t.Logf("silent relay death: rerouted after %v (RouteTimeout 3.5s)", took)
}

// TestNoCountToInfinity: a ring with a stub destination that vanishes. No
// node ever advertises the destination with a growing metric, and every route
// to it disappears (then is garbage-collected).
func TestNoCountToInfinity(t *testing.T) {
	n := newTestNet(t, []string{"a", "b", "c", "e", "f", "x"}, nil)
	for _, l := range [][2]string{{"a", "b"}, {"b", "c"}, {"c", "e"}, {"e", "f"}, {"f", "a"}, {"c", "x"}} {
		n.link(l[0], l[1], 1)
	}
	if _, err := n.runUntil(n.optimal, 50); err != nil {
		t.Fatal(err)
	}
	maxBefore := Metric(0)
	for _, id := range n.ids {
		if id != "x" {
			_, c, _, _ := n.routers[id].Lookup("x")
			maxBefore = max(maxBefore, c)
		}
	}
	var worst Metric
	var finiteAfter int
	n.tap = func(from, to string, msg []byte) {
		m, err := Decode(msg)
		if err != nil {
			t.Errorf("undecodable message: %v", err)
			return
		}
		for _, e := range m.Entries {
			if e.Dst == "x" && e.Metric != Infinity {
				finiteAfter++
				worst = max(worst, e.Metric)
			}
		}
	}
	n.kill("x")
	rounds, err := n.runUntil(func() error {
		for _, id := range n.ids {
			if id == "x" {
				continue
			}
			if nh, _, _, err := n.routers[id].Lookup("x"); err == nil {
				return fmt.Errorf("%s still routes x via %s", id, nh)
			}
		}
		return nil
	}, n.tickEvery)
	if err != nil {
		t.Fatal(err)
	}
	if worst > maxBefore {
		t.Fatalf("metric to x counted up to %d (was at most %d)", worst, maxBefore)
	}
	// Garbage collection: x disappears from every table.
	if _, err := n.runUntil(func() error {
		for _, id := range n.ids {
			if id == "x" {
				continue
			}
			r := n.routers[id]
			r.mu.Lock()
			_, ok := r.dests["x"]
			r.mu.Unlock()
			if ok {
				return fmt.Errorf("%s still holds x", id)
			}
		}
		return nil
	}, 600); err != nil {
		t.Fatal(err)
	}
	t.Logf("x unreachable everywhere after %d rounds; %d stale finite adverts seen, max metric %d (before %d)", rounds, finiteAfter, worst, maxBefore)
}

func TestCountToInfinityRandomGraph(t *testing.T) {
	n := newTestNet(t, names("n", 20), nil)
	randomGraph(n, 3, 15)
	if _, err := n.runUntil(n.optimal, 300); err != nil {
		t.Fatal(err)
	}
	for _, victim := range []string{"n05", "n11"} {
		n.kill(victim)
		if r, err := n.runUntil(n.optimal, 300); err != nil {
			t.Fatalf("after killing %s: %d rounds: %v", victim, r, err)
		} else {
			t.Logf("killed %s: reconverged in %d rounds", victim, r)
		}
		for _, id := range n.ids {
			if n.dead[id] {
				continue
			}
			for _, d := range n.ids {
				if d == id || n.dead[d] {
					continue
				}
				if _, err := n.path(id, d); err != nil && !errors.Is(err, ErrNoRoute) {
					t.Fatal(err)
				}
			}
		}
	}
}

func TestHopLimit(t *testing.T) {
	ids := names("n", 20)
	n := newTestNet(t, ids, nil)
	for i := 1; i < len(ids); i++ {
		n.link(ids[i-1], ids[i], 1)
	}
	for range 100 {
		n.step()
	}
	r := n.routers["n00"]
	if _, _, h, err := r.Lookup("n16"); err != nil || h != 16 {
		t.Fatalf("16 hops: %d %v", h, err)
	}
	for _, d := range ids[17:] {
		if nh, _, h, err := r.Lookup(d); !errors.Is(err, ErrNoRoute) {
			t.Fatalf("%s beyond MaxHops reachable via %s in %d hops", d, nh, h)
		}
	}
}

func scopePolicy(nodes map[string]Scope, noTransit ...string) func(string) Policy {
	nt := map[string]bool{}
	for _, x := range noTransit {
		nt[x] = true
	}
	return func(id string) Policy {
		return &ScopePolicy{ID: id, Self: nodes[id], Nodes: nodes, NoTransit: nt}
	}
}

func TestPolicyForbidsTransit(t *testing.T) {
	all := map[string]Scope{"s": {Cluster: "c1"}, "a": {Cluster: "c1"}, "b": {Cluster: "c1"}, "d": {Cluster: "c1"}}
	// a is cheap but may not relay: the route goes via b.
	n := newTestNet(t, []string{"s", "a", "b", "d"}, scopePolicy(all, "a"))
	var viaA int
	n.tap = func(from, to string, msg []byte) {
		m, _ := Decode(msg)
		for _, e := range m.Entries {
			if from == "a" && e.Dst != "a" && e.Metric != Infinity {
				viaA++
			}
		}
	}
	n.link("s", "a", 1)
	n.link("a", "d", 1)
	n.link("s", "b", 5)
	n.link("b", "d", 5)
	for range 50 {
		n.step()
	}
	if p, err := n.path("s", "d"); err != nil || !slices.Equal(p, []string{"s", "b", "d"}) {
		t.Fatalf("path %v %v, want s b d", p, err)
	}
	for _, r := range n.routers["s"].Alternates("d") {
		if r.NextHop == "a" {
			t.Fatalf("route via a installed: %+v", r)
		}
	}
	if viaA != 0 {
		t.Fatalf("a advertised %d transit routes", viaA)
	}
	// Direct neighbour a is still reachable (not transit).
	if nh, _, _, err := n.routers["s"].Lookup("a"); err != nil || nh != "a" {
		t.Fatalf("s→a: %s %v", nh, err)
	}

	// Both relays forbidden: no route at all.
	n2 := newTestNet(t, []string{"s", "a", "b", "d"}, scopePolicy(all, "a", "b"))
	n2.link("s", "a", 1)
	n2.link("a", "d", 1)
	n2.link("s", "b", 5)
	n2.link("b", "d", 5)
	for range 50 {
		n2.step()
	}
	if nh, _, _, err := n2.routers["s"].Lookup("d"); !errors.Is(err, ErrNoRoute) {
		t.Fatalf("route via %s despite policy", nh)
	}
}

func TestPolicyOrganizationScope(t *testing.T) {
	nodes := map[string]Scope{
		"relay": {Cluster: "c1"},
		"a1":    {Cluster: "c1", Org: "orgA"}, "a2": {Cluster: "c1", Org: "orgA"},
		"b1": {Cluster: "c1", Org: "orgB"},
		"z1": {Cluster: "c2"},
	}
	n := newTestNet(t, []string{"relay", "a1", "a2", "b1", "z1"}, scopePolicy(nodes))
	leaked := map[string]bool{}
	n.tap = func(from, to string, msg []byte) {
		m, _ := Decode(msg)
		for _, e := range m.Entries {
			if nodes[to].Org == "orgA" && nodes[e.Dst].Org == "orgB" {
				leaked[to+"<-"+e.Dst] = true
			}
		}
	}
	for _, x := range []string{"a1", "a2", "b1", "z1"} {
		n.link("relay", x, 1)
	}
	for range 50 {
		n.step()
	}
	if _, _, _, err := n.routers["a1"].Lookup("a2"); err != nil {
		t.Fatalf("same org: %v", err)
	}
	if _, _, _, err := n.routers["a1"].Lookup("b1"); !errors.Is(err, ErrNoRoute) {
		t.Fatal("a1 reaches b1 across organizations")
	}
	if _, _, _, err := n.routers["a1"].Lookup("z1"); !errors.Is(err, ErrNoRoute) {
		t.Fatal("a1 reaches z1 in another cluster")
	}
	if _, _, _, err := n.routers["relay"].Lookup("b1"); err != nil {
		t.Fatalf("shared relay reaches b1: %v", err)
	}
	if len(leaked) > 0 {
		t.Fatalf("orgB destinations advertised to orgA nodes: %v", leaked)
	}
}

func TestPartitionKeepsLocalRoutes(t *testing.T) {
	// Two halves joined by one link; the link is cut (partition). Each half
	// keeps routing internally with no authority involved, and stale routes
	// across the cut are withdrawn.
	n := newTestNet(t, names("n", 6), nil)
	for i := 1; i < 3; i++ {
		n.link(n.ids[i-1], n.ids[i], 1)
		n.link(n.ids[i+2], n.ids[i+3], 1)
	}
	n.link("n02", "n03", 1)
	if _, err := n.runUntil(n.optimal, 50); err != nil {
		t.Fatal(err)
	}
	n.cutLink("n02", "n03")
	if r, err := n.runUntil(n.optimal, n.tickEvery); err != nil {
		t.Fatalf("after partition, %d rounds: %v", r, err)
	}
	n.heal("n02", "n03")
	if r, err := n.runUntil(n.optimal, n.tickEvery); err != nil {
		t.Fatalf("after heal, %d rounds: %v", r, err)
	}
}

func TestUnknownNeighbourIgnored(t *testing.T) {
	n := newTestNet(t, []string{"s", "d"}, nil)
	msg := EncodeUpdate(nil, []Entry{{Dst: "evil", Seq: 1, Metric: 1, Hops: 1}})
	if err := n.routers["s"].HandleMessage("intruder", msg); !errors.Is(err, ErrUnknownNeighbour) {
		t.Fatalf("err = %v", err)
	}
	if err := n.routers["s"].HandleMessage("intruder", []byte{1, 2}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("err = %v", err)
	}
	if len(n.routers["s"].Table()) != 0 {
		t.Fatal("route installed from an unknown neighbour")
	}
}

// TestLinkUpRace: the two ends of a new link learn of it at different
// times. a's full table reaches b before b has the link up and is dropped;
// b must still learn the route to a from a's answer to b's own table, within
// a few rounds, not at the next periodic refresh.
func TestLinkUpRace(t *testing.T) {
	n := newTestNet(t, []string{"a", "b"}, nil)
	n.cost[key("a", "b")] = 5
	must(t, n.routers["a"].SetLink("b", 5, true))
	n.step() // a's table reaches b, which has no link to a yet
	if got := n.routers["b"].Stats().UnknownNeighbour; got != 1 {
		t.Fatalf("b dropped %d messages from an unknown neighbour, want 1", got)
	}
	must(t, n.routers["b"].SetLink("a", 5, true))
	for range 3 {
		n.step()
	}
	for _, p := range [][2]string{{"a", "b"}, {"b", "a"}} {
		next, cost, _, err := n.routers[p[0]].Lookup(p[1])
		if err != nil || next != p[1] || cost != 5 {
			t.Fatalf("%s → %s: next %q cost %d err %v, want the direct link", p[0], p[1], next, cost, err)
		}
	}
	if a, b := n.routers["a"].Stats(), n.routers["b"].Stats(); a.PeriodicUpdates+b.PeriodicUpdates != 0 || a.FirstHeardDumps != 1 || b.FirstHeardDumps != 1 {
		t.Fatalf("periodic %d+%d, first-heard answers %d+%d; want 0 periodic and one answer each",
			a.PeriodicUpdates, b.PeriodicUpdates, a.FirstHeardDumps, b.FirstHeardDumps)
	}
}

func TestTriggeredUpdateOnCostChange(t *testing.T) {
	n := diamond(t, 1, 1, 3, 3, nil)
	must(t, n.routers["s"].SetLink("a", 10, true))
	must(t, n.routers["a"].SetLink("s", 10, true))
	n.cost[key("s", "a")] = 10
	if r, err := n.runUntil(n.optimal, n.tickEvery); err != nil {
		t.Fatalf("%d rounds: %v", r, err)
	}
	if nh, _, _, _ := n.routers["s"].Lookup("d"); nh != "b" {
		t.Fatalf("via %s after cost rise", nh)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, c := range []Config{{}, {Self: "x"}, {Self: "x", Send: func(string, []byte) {}, MaxMessageLen: 10}} {
		if _, err := New(c); !errors.Is(err, ErrConfig) {
			t.Fatalf("%+v: %v", c, err)
		}
	}
	r, err := New(Config{Self: "x", Send: func(string, []byte) {}})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.SetLink("x", 1, true); !errors.Is(err, ErrConfig) {
		t.Fatal("self link accepted")
	}
	if nh, c, h, err := r.Lookup("x"); nh != "x" || c != 0 || h != 0 || err != nil {
		t.Fatal("self lookup")
	}
}

func TestCostFromRTT(t *testing.T) {
	if c := CostFromRTT(0, 0); c != 1 {
		t.Fatal(c)
	}
	if c := CostFromRTT(10*time.Millisecond, 0); c != 100 {
		t.Fatal(c)
	}
	if c := CostFromRTT(10*time.Millisecond, 0.1); c != 200 {
		t.Fatal(c)
	}
	if c := CostFromRTT(time.Hour, 2); c != Infinity-1 {
		t.Fatal(c)
	}
}

// TestSwitchMarginHysteresis: two equal-cost relay paths s→a→d and s→b→d
// whose link costs jitter by ~10 %. Without a margin the next hop follows
// the jitter; with SwitchMargin 0.15 it stays on the current one, and still
// moves when the alternative is clearly cheaper.
func TestSwitchMarginHysteresis(t *testing.T) {
	jitter := func(margin float64) (changes uint64, last string) {
		n := diamond(t, 10, 10, 10, 10, nil)
		s := n.routers["s"]
		s.cfg.SwitchMargin = margin
		if nh, _, _, _ := s.Lookup("d"); nh != "a" {
			t.Fatalf("initial next hop %s, want a (tie → lowest id)", nh)
		}
		before := s.Stats().RouteChange
		for i := range 10 {
			hi, lo := Metric(11), Metric(9)
			if i%2 == 1 {
				hi, lo = lo, hi
			}
			n.link("s", "a", hi)
			n.link("s", "b", lo)
			for range 2 * n.tickEvery {
				n.step()
			}
		}
		last, _, _, _ = s.Lookup("d")
		return s.Stats().RouteChange - before, last
	}
	if c, _ := jitter(0); c < 5 {
		t.Fatalf("without a margin: %d route changes under alternating jitter, want the next hop to follow it", c)
	}
	c, nh := jitter(0.15)
	if c != 0 || nh != "a" {
		t.Fatalf("with SwitchMargin 0.15: %d route changes, next hop %s; want 0 and a", c, nh)
	}
	t.Logf("alternating ±10%% jitter on two equal-cost paths: 0 route changes with SwitchMargin 0.15")

	// Clearly cheaper (20 vs 40): the margin does not hold the route.
	n := diamond(t, 10, 10, 10, 10, nil)
	s := n.routers["s"]
	s.cfg.SwitchMargin = 0.15
	n.link("s", "a", 30)
	if _, err := n.runUntil(func() error {
		if nh, _, _, _ := s.Lookup("d"); nh != "b" {
			return fmt.Errorf("still via %s", nh)
		}
		return nil
	}, 2*n.tickEvery); err != nil {
		t.Fatal(err)
	}
	// A current route that is lost is replaced immediately, margin or not.
	n.cutLink("s", "b")
	if nh, _, _, err := s.Lookup("d"); nh != "a" {
		t.Fatalf("after cutting the route in use: %s %v", nh, err)
	}
}

func TestSwitchMarginConfig(t *testing.T) {
	for _, m := range []float64{-0.1, 1, 2} {
		if _, err := New(Config{Self: "x", Send: func(string, []byte) {}, SwitchMargin: m}); !errors.Is(err, ErrConfig) {
			t.Errorf("SwitchMargin %v: %v, want ErrConfig", m, err)
		}
	}
}
