package e2e

import (
	"bytes"
	"context"
	"errors"
	"github.com/rap-fabric/core/mesh/qos"
	"slices"
	"testing"
	"time"

	"github.com/rap-fabric/core/mesh/netsim"
	"github.com/rap-fabric/core/mesh/routing"
)

const marker = "PLAINTEXT-MARKER-d41d8cd98f00"

func lineMesh(t *testing.T) *mesh {
	m := newMesh(t, []string{"s", "r", "d"}, nil)
	m.link("s", "r", 1)
	m.link("r", "d", 1)
	m.converge()
	return m
}

func TestEchoAcrossRelayAndRelayPrivacy(t *testing.T) {
	m := lineMesh(t)
	var seen [][]byte
	m.nodes["r"].tap = func(pkt []byte) { seen = append(seen, bytes.Clone(pkt)) }
	c, err := m.nodes["s"].fwd.DialService("d", EchoService)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if err := c.Send([]byte(marker + string(seqMsg(i)))); err != nil {
			t.Fatal(err)
		}
	}
	var got [][]byte
	m.runUntil(func() bool {
		for {
			msg, ok := c.TryRecv()
			if !ok {
				return len(got) == 5
			}
			got = append(got, msg)
		}
	}, time.Second)
	if len(got) != 5 || !bytes.Equal(got[4], []byte(marker+string(seqMsg(4)))) {
		t.Fatalf("echoes: %q", got)
	}
	if m.nodes["r"].fwd.Stats().Forwarded < 12 {
		t.Fatalf("relay forwarded %d frames", m.nodes["r"].fwd.Stats().Forwarded)
	}
	frames := 0
	for _, p := range seen {
		if p[0] == Magic {
			frames++
		}
		if bytes.Contains(p, []byte(marker)) || bytes.Contains(p, []byte("seq-0000")) {
			t.Fatalf("relay saw plaintext in %x", p)
		}
	}
	if frames < 12 {
		t.Fatalf("relay recorded only %d frames", frames)
	}
	t.Logf("relay recorded %d packets (%d e2e frames); plaintext marker absent", len(seen), frames)
}

func TestDialAcceptRecv(t *testing.T) {
	m := lineMesh(t)
	c, err := m.nodes["s"].fwd.Dial("d")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Send([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	m.run(50 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	sc, err := m.nodes["d"].fwd.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if msg, err := sc.Recv(ctx); err != nil || string(msg) != "hi" || sc.Remote() != "s" {
		t.Fatalf("%q %v %s", msg, err, sc.Remote())
	}
	if err := sc.Send([]byte("back")); err != nil {
		t.Fatal(err)
	}
	m.run(50 * time.Millisecond)
	if msg, err := c.Recv(ctx); err != nil || string(msg) != "back" {
		t.Fatalf("%q %v", msg, err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	m.run(50 * time.Millisecond)
	if _, err := sc.Recv(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("remote close: %v", err)
	}
	if err := c.Send([]byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("send after close: %v", err)
	}
}

// echoStream sends one sequence-numbered message per ms for n ms, calling
// at(i) before message i, and returns how often each echo came back.
func echoStream(t *testing.T, m *mesh, src, dst string, n int, at func(i int)) map[string]int {
	c, err := m.nodes[src].fwd.DialService(dst, EchoService)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	drain := func() {
		for {
			msg, ok := c.TryRecv()
			if !ok {
				return
			}
			got[string(msg)]++
		}
	}
	for i := range n {
		if at != nil {
			at(i)
		}
		_ = c.Send(seqMsg(i)) // ErrNoRoute while no route: counted as lost
		m.run(time.Millisecond)
		drain()
	}
	m.run(100 * time.Millisecond)
	drain()
	return got
}

func checkNoDuplicates(t *testing.T, got map[string]int) {
	t.Helper()
	for k, v := range got {
		if v != 1 {
			t.Fatalf("%s delivered %d times", k, v)
		}
	}
}

func TestFailoverAndHealNoDuplicates(t *testing.T) {
	m := newMesh(t, []string{"s", "a", "b", "d"}, nil)
	// Every link duplicates 20% of packets: the replay window must hide it.
	m.net.SetDefault(netsim.LinkConfig{Delay: 2 * time.Millisecond, Duplicate: 0.2})
	m.link("s", "a", 1)
	m.link("a", "d", 1)
	m.link("s", "b", 2)
	m.link("b", "d", 2)
	m.converge()
	if p := m.probe("s", "d").Path; !slices.Equal(p, []string{"s", "a", "d"}) {
		t.Fatalf("initial path %v", p)
	}
	var viaBAtCut, viaAAtHeal uint64
	const cutAt, healAt, n = 300, 700, 1000
	got := echoStream(t, m, "s", "d", n, func(i int) {
		switch i {
		case cutAt:
			m.cut("s", "a")
			if nh, _, _, err := m.nodes["s"].router.Lookup("d"); err != nil || nh != "b" {
				t.Fatalf("no immediate failover: %s %v", nh, err)
			}
			viaBAtCut = m.nodes["b"].fwd.Stats().Forwarded
		case healAt:
			m.heal("s", "a")
			viaAAtHeal = m.nodes["a"].fwd.Stats().Forwarded
		}
	})
	checkNoDuplicates(t, got)
	lost := n - len(got)
	if lost > 20 {
		t.Fatalf("lost %d of %d echoes", lost, n)
	}
	if m.nodes["b"].fwd.Stats().Forwarded-viaBAtCut < 2*(healAt-cutAt)/2 {
		t.Fatalf("alternate relay b carried too little after the cut")
	}
	if m.nodes["a"].fwd.Stats().Forwarded-viaAAtHeal < (n-healAt)/2 {
		t.Fatalf("traffic did not return to a after heal")
	}
	if p := m.probe("s", "d").Path; !slices.Equal(p, []string{"s", "a", "d"}) {
		t.Fatalf("path after heal %v", p)
	}
	t.Logf("failover+heal: %d/%d echoes, %d lost (in flight on the cut link), 0 duplicates; replay drops at s: %d",
		len(got), n, lost, m.nodes["s"].fwd.Stats().DroppedReplay)
}

func TestShortcutToDirectLink(t *testing.T) {
	m := lineMesh(t)
	res := m.probe("s", "d")
	if !slices.Equal(res.Path, []string{"s", "r", "d"}) || !slices.Equal(res.Reverse, []string{"d", "r", "s"}) {
		t.Fatalf("relayed probe %+v", res)
	}
	m.link("s", "d", 1)
	m.run(20 * time.Millisecond)
	res2 := m.probe("s", "d")
	if !slices.Equal(res2.Path, []string{"s", "d"}) {
		t.Fatalf("after direct link: %+v", res2)
	}
	if res2.RTT >= res.RTT {
		t.Fatalf("direct RTT %v not below relayed %v", res2.RTT, res.RTT)
	}
	t.Logf("probe relayed: path %v rtt %v (setup %v); direct: path %v rtt %v", res.Path, res.RTT, res.SetupRTT, res2.Path, res2.RTT)
}

func TestRelayKilledRerouted(t *testing.T) {
	m := newMesh(t, []string{"s", "r1", "r2", "d"}, nil)
	m.link("s", "r1", 1)
	m.link("r1", "d", 1)
	m.link("s", "r2", 3)
	m.link("r2", "d", 3)
	m.converge()
	got := echoStream(t, m, "s", "d", 400, func(i int) {
		if i == 200 {
			m.kill("r1")
		}
	})
	checkNoDuplicates(t, got)
	if len(got) < 390 {
		t.Fatalf("only %d/400 echoes", len(got))
	}
	if p := m.probe("s", "d").Path; !slices.Equal(p, []string{"s", "r2", "d"}) {
		t.Fatalf("path after relay death %v", p)
	}
}

// staticRoutes is a fixed next-hop table.
type staticRoutes map[string]string

func (s staticRoutes) Lookup(dst string) (string, routing.Metric, int, error) {
	if nh, ok := s[dst]; ok {
		return nh, 1, 1, nil
	}
	return "", routing.Infinity, 0, routing.ErrNoRoute
}

func TestTTLStopsLoops(t *testing.T) {
	// a and b each believe the other is the next hop towards x.
	l := newLinks(t, map[string]staticRoutes{
		"s": {"x": "a"}, "a": {"x": "b", "s": "s"}, "b": {"x": "a"}, "x": {},
	}, nil)
	c, err := l.f["s"].Dial("x")
	if err != nil {
		t.Fatal(err)
	}
	_ = c
	l.pump()
	fa, fb := l.f["a"].Stats(), l.f["b"].Stats()
	ttl := uint64(l.f["s"].cfg.TTL)
	if fa.Forwarded+fb.Forwarded != ttl-1 || fa.DroppedTTL+fb.DroppedTTL != 1 {
		t.Fatalf("forwarded %d+%d, ttl drops %d+%d; want %d forwards then one drop", fa.Forwarded, fb.Forwarded, fa.DroppedTTL, fb.DroppedTTL, ttl-1)
	}
	if l.f["x"].Stats().HandshakesComplete != 0 {
		t.Fatal("looping frame delivered")
	}
}

func TestRelayRefusesOutsidePolicy(t *testing.T) {
	nodes := map[string]routing.Scope{"s": {Cluster: "c", Org: "o1"}, "r": {Cluster: "c"}, "d": {Cluster: "c", Org: "o2"}}
	pol := func(id string) routing.Policy {
		return &routing.ScopePolicy{ID: id, Self: nodes[id], Nodes: nodes, CrossOrg: id == "s"}
	}
	// s (misconfigured) thinks it may reach d and routes via r; r's policy
	// says o1 and o2 may not talk: it refuses to relay.
	l := newLinks(t, map[string]staticRoutes{"s": {"d": "r"}, "r": {"d": "d", "s": "s"}, "d": {"s": "r"}}, pol)
	if _, err := l.f["s"].Dial("d"); err != nil {
		t.Fatal(err)
	}
	l.pump()
	if st := l.f["r"].Stats(); st.DroppedPolicy != 1 || st.Forwarded != 0 {
		t.Fatalf("relay stats %+v", st)
	}
	if l.f["d"].Stats().HandshakesComplete != 0 {
		t.Fatal("delivered despite policy")
	}
	// And d itself would not talk to s.
	if _, err := l.f["d"].Dial("s"); !errors.Is(err, ErrPolicy) {
		t.Fatalf("d dialled s: %v", err)
	}
}

func TestHeaderTamperingDetected(t *testing.T) {
	l := newLinks(t, map[string]staticRoutes{"s": {"d": "d", "x": "x"}, "d": {"s": "s"}, "x": {"s": "s"}}, nil)
	c, err := l.f["s"].Dial("d")
	if err != nil {
		t.Fatal(err)
	}
	l.pump()
	if !c.Established() {
		t.Fatal("not established")
	}
	var captured []byte
	l.intercept = func(from, to string, frame []byte) []byte {
		if captured == nil && frame[2] == byte(TypeData) {
			captured = bytes.Clone(frame)
		}
		return frame
	}
	if err := c.Send([]byte(marker)); err != nil {
		t.Fatal(err)
	}
	l.pump()
	l.intercept = nil
	p, err := parse(captured)
	if err != nil {
		t.Fatal(err)
	}
	sc := l.f["d"].conns[connKey{"s", c.Flow(), false}]
	// Every authenticated header byte: a flip makes the frame fail to open
	// (checked directly against the session, bypassing flow lookup).
	for i := 0; i < p.adEnd; i++ {
		if i == ttlOff {
			continue
		}
		f := bytes.Clone(captured)
		f[i] ^= 0x01
		sc.sess.window.Reset() // the genuine frame was accepted: isolate the AEAD check
		if _, err := sc.sess.open(f, p); !errors.Is(err, ErrDecrypt) {
			t.Fatalf("header byte %d modified: %v", i, err)
		}
	}
	// TTL is not authenticated (relays lower it) but cannot redirect.
	f := bytes.Clone(captured)
	f[ttlOff] = 3
	sc.sess.window.Reset()
	if _, err := sc.sess.open(f, p); err != nil {
		t.Fatalf("ttl change rejected: %v", err)
	}
	// Redirect: a relay rewrites dst d→x (same length) and delivers to x.
	red := bytes.Clone(captured)
	i := bytes.Index(red[:p.adEnd], []byte{1, 'd'})
	red[i+1] = 'x'
	if err := l.f["x"].HandleFrame("s", red); err == nil {
		t.Fatal("redirected frame accepted by x")
	}
	// Replay of the genuine frame at d: refused, delivered once.
	sc.sess.window.Reset()
	sc.sess.window.Accept(0)
	if err := l.f["d"].HandleFrame("s", bytes.Clone(captured)); !errors.Is(err, ErrReplay) {
		t.Fatalf("replay: %v", err)
	}
}

func TestUnauthorizedInitiator(t *testing.T) {
	l := newLinks(t, map[string]staticRoutes{"s": {"d": "d"}, "d": {"s": "s"}}, nil)
	// The directory lists a different key for s than the one s uses.
	l.keys["s"] = l.keys["d"]
	if _, err := l.f["s"].Dial("d"); err != nil {
		t.Fatal(err)
	}
	l.pump()
	if st := l.f["d"].Stats(); st.HandshakesComplete != 0 || st.DroppedAuth != 1 {
		t.Fatalf("d stats %+v", st)
	}
}

func TestHandshakeTimeout(t *testing.T) {
	l := newLinks(t, map[string]staticRoutes{"s": {}, "d": {}}, nil)
	c, err := l.f["s"].Dial("d")
	if err != nil {
		t.Fatal(err)
	}
	for range 10 {
		l.now = l.now.Add(time.Second)
		l.f["s"].Tick()
	}
	if err := c.Send([]byte("x")); !errors.Is(err, ErrClosed) || !errors.Is(c.Err(), ErrHandshakeTimeout) {
		t.Fatalf("send %v, err %v", err, c.Err())
	}
}

func TestParseNeverPanics(t *testing.T) {
	for _, b := range [][]byte{nil, {Magic}, {Magic, version, 3, 2, 1, 0, 0, 0, 0, 1, 's', 1}, {Magic, version, 3, 2, 1, 0, 0, 0, 0, 1, 's', 1, 'd', 40}} {
		if _, _, err := ParseHeader(b); !errors.Is(err, ErrMalformed) {
			t.Fatalf("%x: %v", b, err)
		}
	}
}

func FuzzHandleFrame(f *testing.F) {
	l := newLinks(f, map[string]staticRoutes{"s": {"d": "d"}, "d": {"s": "s"}}, nil)
	c, _ := l.f["s"].Dial("d")
	l.pump()
	var frames [][]byte
	l.intercept = func(from, to string, fr []byte) []byte { frames = append(frames, bytes.Clone(fr)); return fr }
	_ = c.Send([]byte("seed"))
	l.pump()
	if cc, err := l.f["s"].DialServiceClass("d", EchoService, qos.Bulk); err == nil { // frames with class bits
		l.pump()
		_ = cc.Send([]byte("classed seed"))
		l.pump()
	}
	l.intercept = nil
	for _, fr := range frames {
		f.Add(fr)
	}
	f.Add([]byte{Magic, version, 1, 3, 16, 0, 0, 0, 1, 1, 's', 1, 'd'})
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = l.f["d"].HandleFrame("s", bytes.Clone(b))
		_, _, _ = ParseHeader(b)
		l.queue = nil
	})
}
