package link

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rap-fabric/core/mesh/channel"
	"github.com/rap-fabric/core/mesh/gossip"
	"github.com/rap-fabric/core/mesh/netsim"
	"github.com/rap-fabric/core/mesh/peers"
)

var four = []string{"A", "B", "C", "D"}

func TestNetsimLinksUpDataFlowsGossipMerged(t *testing.T) {
	w := newWorld(t, 1, four...)
	d := w.dir(1, four)
	// The directory has no endpoint for D: only gossip can propose one.
	// Gossip also proposes an intruder that is in no directory.
	d.Peers[3].Endpoints = nil
	for _, n := range w.order {
		n.cands = []gossip.Candidate{
			{NodeID: "D", Endpoints: []netip.AddrPort{w.nodes["D"].addr}, Load: 0.2, RTT: 7 * time.Millisecond},
			{NodeID: "X", Endpoints: []netip.AddrPort{netip.MustParseAddrPort("198.18.0.99:51820")}},
		}
	}
	w.apply(d, four...)
	took := w.until(30*time.Second, "all links up", func() (bool, string) { return w.linksUp(four...) })
	t.Logf("4 nodes, 12 links up after %v virtual", took)

	for _, n := range w.order {
		st := n.m.Status()
		if len(st) != 3 {
			t.Fatalf("%s: %d peers in status (intruder admitted?): %+v", n.id, len(st), st)
		}
		for _, s := range st {
			if s.Set != peers.Active || s.Reason == "" || s.LastHandshake.IsZero() {
				t.Errorf("%s→%s: %+v", n.id, s.NodeID, s)
			}
		}
	}
	if s, _ := w.nodes["A"].status("D"); !s.InGossip || s.Endpoint != w.nodes["D"].addr {
		t.Errorf("A→D not dialled via gossip endpoint: %+v", s)
	}

	// Data flows both ways, tagged with cluster and sender.
	for _, pair := range [][2]string{{"A", "B"}, {"B", "A"}, {"C", "D"}, {"D", "A"}} {
		if err := w.nodes[pair[0]].m.Send(pair[1], []byte("hello from "+pair[0])); err != nil {
			t.Fatalf("send %v: %v", pair, err)
		}
	}
	w.run(time.Second)
	for _, pair := range [][2]string{{"A", "B"}, {"B", "A"}, {"C", "D"}, {"D", "A"}} {
		if got := w.nodes[pair[1]].received(pair[0], "hello from "+pair[0]); got != 1 {
			t.Errorf("%s got %d messages from %s", pair[1], got, pair[0])
		}
	}
	if err := w.nodes["A"].m.Send("X", []byte("x")); !errors.Is(err, ErrNotInDirectory) {
		t.Errorf("send to intruder: %v", err)
	}
	if err := w.nodes["A"].m.Send("B", make([]byte, MaxPayload+1)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized send: %v", err)
	}

	// Probes measure the 2×10 ms RTT; nothing is lost.
	w.run(5 * time.Second)
	s, _ := w.nodes["A"].status("B")
	if s.RTT < 19*time.Millisecond || s.RTT > 25*time.Millisecond || s.Loss != 0 || s.ProbesSent < 5 {
		t.Errorf("A→B probes: rtt %v loss %v sent %d", s.RTT, s.Loss, s.ProbesSent)
	}
	rep := w.nodes["A"].m.Reports()
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{`"peer_node_id":"B"`, `"state":"up"`, `"rtt_ms":`, `"loss":0`, `"last_handshake_at":"2023-`, `"set":"active"`, `"cluster_id":"c1"`} {
		if !strings.Contains(string(b), f) {
			t.Errorf("reports lack %s: %s", f, b)
		}
	}
	// A stale directory is refused.
	if _, err := w.nodes["A"].m.UpdateDirectory(w.dir(0, four)); !errors.Is(err, ErrStaleDirectory) {
		t.Errorf("stale directory: %v", err)
	}
}

func TestNetsimRevocationTearsDownWithinOneTick(t *testing.T) {
	w := newWorld(t, 2, four...)
	w.apply(w.dir(1, four), four...)
	w.until(30*time.Second, "links up", func() (bool, string) { return w.linksUp(four...) })

	// Version 2 revokes D; D itself does not get it.
	res, err := w.nodes["A"].m.UpdateDirectory(w.dir(2, four, "D"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Revoked, []string{"D"}) {
		t.Errorf("result %+v", res)
	}
	w.apply(w.dir(2, four, "D"), "B", "C")
	dKey := w.nodes["D"].pub
	for _, id := range []string{"A", "B", "C"} {
		n := w.nodes[id]
		if _, ok := n.status("D"); ok {
			t.Errorf("%s still reports D", id)
		}
		if st := n.m.clusters["c1"].ep.PeerState(dKey); st != channel.StateClosed {
			t.Errorf("%s: channel to D is %v right after the update", id, st)
		}
	}
	w.step() // "within one tick": still closed after the tick
	if st := w.nodes["A"].m.clusters["c1"].ep.PeerState(dKey); st != channel.StateClosed {
		t.Errorf("after a tick: %v", st)
	}

	// D keeps trying: nothing it sends is delivered, and its new handshakes
	// are refused.
	before := w.nodes["A"].received("D", "")
	for range 5 {
		_ = w.nodes["D"].m.Send("A", []byte("still here"))
		w.run(time.Second)
	}
	w.until(60*time.Second, "A refuses D's handshakes", func() (bool, string) {
		st, _ := w.nodes["A"].m.ChannelStats("c1")
		return st.RefusedRevoked > 0, "no refusal yet"
	})
	if got := w.nodes["A"].received("D", ""); got != before {
		t.Errorf("A delivered %d payloads from revoked D", got-before)
	}
	w.run(20 * time.Second)
	if s, _ := w.nodes["D"].status("A"); s.State == LinkUp {
		t.Errorf("D still sees its link to A up: %+v", s)
	}
	if ok, detail := w.linksUp("A", "B", "C"); !ok {
		t.Errorf("other links disturbed: %s", detail)
	}
}

func TestNetsimOutsiderCannotConnect(t *testing.T) {
	w := newWorld(t, 3, "A", "B", "C", "E")
	w.apply(w.dir(1, []string{"A", "B", "C"}), "A", "B", "C")
	// E believes it belongs (a stale or forged directory of its own).
	w.apply(w.dir(1, []string{"A", "B", "C", "E"}), "E")
	w.until(30*time.Second, "members up", func() (bool, string) { return w.linksUp("A", "B", "C") })
	w.run(30 * time.Second)
	for _, id := range []string{"A", "B", "C"} {
		st, _ := w.nodes[id].m.ChannelStats("c1")
		if st.RefusedUnauthorized == 0 {
			t.Errorf("%s never refused E: %+v", id, st)
		}
		if _, ok := w.nodes[id].status("E"); ok {
			t.Errorf("%s lists E", id)
		}
		if s, _ := w.nodes["E"].status(id); s.State == LinkUp || !s.LastHandshake.IsZero() {
			t.Errorf("E→%s: %+v", id, s)
		}
	}
	_ = w.nodes["E"].m.Send("A", []byte("let me in"))
	w.run(time.Second)
	if w.nodes["A"].received("E", "") != 0 {
		t.Error("A delivered a payload from E")
	}
}

func TestNetsimLossPartitionAndBackoff(t *testing.T) {
	w := newWorld(t, 4, four...)
	w.apply(w.dir(1, four), four...)
	w.until(30*time.Second, "links up", func() (bool, string) { return w.linksUp(four...) })
	a, b := w.nodes["A"], w.nodes["B"]

	// 30 % loss each way: the estimate rises, the link survives.
	lossy := netsim.LinkConfig{Delay: 10 * time.Millisecond, Loss: 0.3}
	w.net.SetLink(a.addr, b.addr, lossy)
	w.net.SetLink(b.addr, a.addr, lossy)
	w.run(40 * time.Second)
	s, _ := a.status("B")
	if s.Loss < 0.1 || s.ProbesLost == 0 {
		t.Errorf("loss not estimated: %+v", s)
	}
	clean := netsim.LinkConfig{Delay: 10 * time.Millisecond}
	w.net.SetLink(a.addr, b.addr, clean)
	w.net.SetLink(b.addr, a.addr, clean)
	w.until(30*time.Second, "recovered from loss", func() (bool, string) { return w.linksUp("A", "B") })

	// Partition for longer than RejectAfterTime: the sessions die and the
	// handshakes retry with exponential backoff.
	initBefore := a.pc.initiationsTo(b.addr)
	if s, _ := a.status("B"); !s.DownSince.IsZero() {
		t.Errorf("DownSince set on an up link: %+v", s)
	}
	partitioned := w.net.Now()
	w.net.Partition(a.addr, b.addr)
	took := w.until(20*time.Second, "link down", func() (bool, string) {
		s, _ := a.status("B")
		return s.State == LinkDown, string(s.State)
	})
	t.Logf("A→B down %v after the partition", took)
	// until checks after each Tick, so the Tick that marked the link down ran
	// at the current virtual time: DownSince is exactly the detection moment.
	detected := w.net.Now()
	if s, _ := a.status("B"); !s.DownSince.Equal(detected) || !s.DownSince.After(partitioned) {
		t.Errorf("DownSince = %v, want the detection tick %v (partition at %v)", s.DownSince, detected, partitioned)
	}
	if r := reportFor(a, "B"); r.DownSince == nil || !r.DownSince.Equal(detected) || r.DownSince.Location() != time.UTC {
		t.Errorf("LinkReport.DownSince = %v, want %v UTC", r.DownSince, detected)
	}
	if r := reportFor(a, "C"); r.DownSince != nil {
		t.Errorf("LinkReport.DownSince on up link A→C: %v", r.DownSince)
	}
	w.run(200 * time.Second)
	if s, _ := a.status("B"); s.State == LinkDown && !s.DownSince.Equal(detected) {
		t.Errorf("DownSince moved while the link stayed down: %v, want %v", s.DownSince, detected)
	}
	inits := a.pc.initiationsTo(b.addr) - initBefore
	if inits < 3 || inits > 10 {
		t.Errorf("%d initiations A→B during a 200 s partition; exponential backoff expects ~7 (a fixed 5 s retry would send ~37)", inits)
	}
	if s, _ := a.status("B"); s.State != LinkDown || s.Channel == channel.StateEstablished {
		t.Errorf("A→B during partition: %+v", s)
	}
	if ok, detail := w.linksUp("A", "C", "D"); !ok {
		t.Errorf("unaffected links: %s", detail)
	}

	healed := w.net.Now()
	w.net.Heal(a.addr, b.addr)
	took = w.until(90*time.Second, "link back up after heal", func() (bool, string) { return w.linksUp("A", "B") })
	t.Logf("A↔B up %v after heal (%d initiations while partitioned)", took, inits)
	if s, _ := a.status("B"); !s.LastHandshake.After(healed) {
		t.Errorf("no new handshake after heal: %+v", s)
	}
	if s, _ := a.status("B"); !s.DownSince.IsZero() {
		t.Errorf("DownSince not cleared after the link came back: %v", s.DownSince)
	}
	if r := reportFor(a, "B"); r.DownSince != nil {
		t.Errorf("LinkReport.DownSince not cleared after heal: %v", r.DownSince)
	}
	if err := a.m.Send("B", []byte("back")); err != nil {
		t.Fatal(err)
	}
	w.run(time.Second)
	if b.received("A", "back") != 1 {
		t.Error("no data after heal")
	}
}

func TestSelectionLimitsWarmAndCold(t *testing.T) {
	w := newWorld(t, 5, four...)
	// A keeps at most 1 active and 1 warm peer: one of B, C, D is cold.
	a := w.nodes["A"]
	_ = a.m.Close()
	m, err := New(Config{NodeID: "A", NoiseKey: mustPriv(t, 5, "A"), PacketConn: &simPC{net: w.net, addr: a.addr, done: make(chan struct{}), initiations: map[netip.AddrPort]int{}},
		ExternalReceive: true, Clock: w.net.Now, Rand: seeded(5, "A2"), Limits: peers.Limits{MinActive: 1, MaxActive: 1, MaxWarm: 1}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	a.m = m
	w.net.Attach(a.addr, m.HandleDatagram)
	w.apply(w.dir(1, four), four...)
	w.run(20 * time.Second)
	sets := map[peers.Set]int{}
	for _, s := range a.m.Status() {
		sets[s.Set]++
		if s.Reason == "" {
			t.Errorf("%s: no reason", s.NodeID)
		}
	}
	if sets[peers.Active] != 1 || sets[peers.Warm] != 1 || sets[peers.Cold] != 1 {
		t.Errorf("sets %v: %+v", sets, a.m.Status())
	}
	// A cold peer can still be reached (dialled on demand, not kept up; the
	// other side may also hold a channel to A, since it chose A as active).
	var cold string
	for _, s := range a.m.Status() {
		if s.Set == peers.Cold {
			cold = s.NodeID
		}
	}
	w.until(5*time.Second, "send to cold peer", func() (bool, string) {
		err := a.m.Send(cold, []byte("on demand"))
		if err != nil && !errors.Is(err, channel.ErrNoSession) {
			t.Fatalf("send to cold peer: %v", err)
		}
		return err == nil, "no session"
	})
	w.run(time.Second)
	if w.nodes[cold].received("A", "on demand") != 1 {
		t.Error("on-demand payload not delivered")
	}
	if s, _ := a.status(cold); s.Set != peers.Cold {
		t.Errorf("sending promoted the cold peer: %+v", s)
	}
}

func mustPriv(t *testing.T, seed uint64, id string) channel.Key {
	priv, _, err := channel.GenerateKey(seeded(seed, id))
	if err != nil {
		t.Fatal(err)
	}
	return priv
}

func TestConfigAndDirectoryValidation(t *testing.T) {
	if _, err := New(Config{}); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "PacketConn") {
		t.Errorf("empty config: %v", err)
	}
	w := newWorld(t, 6, "A", "B")
	m := w.nodes["A"].m
	bad := []Directory{
		{},
		{ClusterID: "c1", Peers: []PeerEntry{{NodeID: "B"}}},
		{ClusterID: "c1", Peers: []PeerEntry{w.nodes["B"].entry(), w.nodes["B"].entry()}},
	}
	for _, d := range bad {
		if _, err := m.UpdateDirectory(d); !errors.Is(err, ErrDirectory) {
			t.Errorf("%+v: %v", d, err)
		}
	}
}

// reportFor returns n's LinkReport row for peer (zero if absent).
func reportFor(n *testNode, peer string) LinkReport {
	for _, r := range n.m.Reports() {
		if r.PeerNodeID == peer {
			return r
		}
	}
	return LinkReport{}
}

// TestAdaptiveProbeTimeout: once a link has an RTT, a probe counts as lost
// after 4 × smoothed RTT (floored at MinProbeTimeout), so a cut link is
// noticed within about a probe interval plus the floor instead of
// ProbeTimeout; before any reply the full ProbeTimeout applies.
func TestAdaptiveProbeTimeout(t *testing.T) {
	m := &Manager{cfg: Config{ProbeTimeout: 3 * time.Second, MinProbeTimeout: 250 * time.Millisecond}}
	for _, tc := range []struct {
		rtt, want time.Duration
	}{
		{0, 3 * time.Second},                             // no measurement yet
		{20 * time.Millisecond, 250 * time.Millisecond},  // floored
		{200 * time.Millisecond, 800 * time.Millisecond}, // 4 × RTT
		{2 * time.Second, 3 * time.Second},               // capped
	} {
		if got := m.probeTimeout(&peerState{rtt: tc.rtt}); got != tc.want {
			t.Errorf("rtt %v: timeout %v, want %v", tc.rtt, got, tc.want)
		}
	}

	w := newWorld(t, 7, "A", "B")
	w.apply(w.dir(1, []string{"A", "B"}), "A", "B")
	w.until(30*time.Second, "links up", func() (bool, string) { return w.linksUp("A", "B") })
	w.run(5 * time.Second) // RTT measured (≈20 ms on the simulated link)
	a, b := w.nodes["A"], w.nodes["B"]
	before, _ := a.status("B")
	if before.ProbesLost != 0 || before.RTT <= 0 {
		t.Fatalf("before the cut: %+v", before)
	}
	w.net.Partition(a.addr, b.addr)
	took := w.until(10*time.Second, "first lost probe", func() (bool, string) {
		s, _ := a.status("B")
		return s.ProbesLost > 0, fmt.Sprintf("lost %d", s.ProbesLost)
	})
	t.Logf("first probe counted lost %v after the cut (interval 1 s, floor 400 ms, ProbeTimeout 3 s)", took)
	// At most one probe interval until the next probe, the floor, and a tick
	// of granularity each — far below the 3 s ProbeTimeout.
	if limit := time.Second + 400*time.Millisecond + 2*w.tick; took > limit {
		t.Errorf("first loss after %v, want ≤ %v", took, limit)
	}
}
