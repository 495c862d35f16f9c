package channel

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"net/netip"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/rap-fabric/core/mesh/netsim"
	"github.com/rap-fabric/core/mesh/wire"
)

// TestHandshakeDirect drives both sides by hand, with no network at all: the
// endpoints are pure state machines.
func TestHandshakeDirect(t *testing.T) {
	now := simStart
	clock := func() time.Time { return now }
	type out struct {
		pkt []byte
		to  netip.AddrPort
	}
	var fromA, fromB []out
	var gotB [][]byte
	aAddr := netip.MustParseAddrPort("198.18.1.1:1")
	bAddr := netip.MustParseAddrPort("198.18.1.2:1")
	mk := func(name string, sink *[]out, deliver func(Key, []byte)) *Endpoint {
		r := seededRand(1, name)
		priv, _, _ := GenerateKey(r)
		ep, err := NewEndpoint(Config{
			ClusterID: "c1", PrivateKey: priv, Clock: clock, Rand: r,
			Send:      func(p []byte, to netip.AddrPort) { *sink = append(*sink, out{append([]byte(nil), p...), to}) },
			Deliver:   deliver,
			Authorize: func([]byte) error { return nil },
		})
		if err != nil {
			t.Fatal(err)
		}
		return ep
	}
	a := mk("a", &fromA, nil)
	b := mk("b", &fromB, func(_ Key, p []byte) { gotB = append(gotB, append([]byte(nil), p...)) })

	if err := a.AddPeer(b.PublicKey(), bAddr, PeerOptions{}); err != nil {
		t.Fatal(err)
	}
	// No session yet: Seal starts the handshake and says so.
	if _, _, err := a.Seal(nil, b.PublicKey(), []byte("hi")); !errors.Is(err, ErrNoSession) {
		t.Fatalf("Seal before handshake: %v", err)
	}
	if len(fromA) != 1 || len(fromA[0].pkt) != wire.InitiationLen || fromA[0].to != bAddr {
		t.Fatalf("want one initiation to B, got %d packets", len(fromA))
	}
	if got := a.PeerState(b.PublicKey()); got != StateHandshaking {
		t.Fatalf("A state %v", got)
	}
	if err := b.HandlePacket(fromA[0].pkt, aAddr); err != nil {
		t.Fatalf("B on initiation: %v", err)
	}
	if len(fromB) != 1 || len(fromB[0].pkt) != wire.ResponseLen {
		t.Fatalf("want one response, got %d", len(fromB))
	}
	if err := a.HandlePacket(fromB[0].pkt, bAddr); err != nil {
		t.Fatalf("A on response: %v", err)
	}
	if got := a.PeerState(b.PublicKey()); got != StateEstablished {
		t.Fatalf("A state %v", got)
	}
	// A confirmed with a keepalive; B promotes the session on it.
	if len(fromA) != 2 || wire.Type(fromA[1].pkt[0]) != wire.TypeKeepalive {
		t.Fatal("A did not send a confirming keepalive")
	}
	if err := b.HandlePacket(fromA[1].pkt, aAddr); err != nil {
		t.Fatalf("B on keepalive: %v", err)
	}
	if got := b.PeerState(a.PublicKey()); got != StateEstablished {
		t.Fatalf("B state %v", got)
	}
	pkt, to, err := a.Seal(make([]byte, 0, 1500), b.PublicKey(), []byte("hello"))
	if err != nil || to != bAddr {
		t.Fatalf("Seal: %v to %v", err, to)
	}
	if err := b.HandlePacket(pkt, aAddr); err != nil {
		t.Fatal(err)
	}
	if len(gotB) != 1 || string(gotB[0]) != "hello" {
		t.Fatalf("B got %q", gotB)
	}
	// And the other way.
	pkt, _, err = b.Seal(nil, a.PublicKey(), []byte("back"))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.HandlePacket(pkt, bAddr); err != nil {
		t.Fatal(err)
	}
}

func TestHandshakeAndTrafficOverNetsim(t *testing.T) {
	h := newHarness(t, 1)
	a, b := h.add("a", nil), h.add("b", nil)
	h.connect(a, b, false)
	for i := range 50 {
		if err := a.ep.Send(b.pub, msg(i, 100)); err != nil {
			t.Fatal(err)
		}
		if err := b.ep.Send(a.pub, msg(1000+i, 100)); err != nil {
			t.Fatal(err)
		}
	}
	h.run(100*time.Millisecond, 10*time.Millisecond)
	if n := checkUnique(t, b.received()); n != 50 {
		t.Fatalf("B got %d", n)
	}
	if n := checkUnique(t, a.received()); n != 50 {
		t.Fatalf("A got %d", n)
	}
	sa, sb := a.ep.Stats(), b.ep.Stats()
	if sa.HandshakesCompleted != 1 || sb.HandshakesResponded != 1 {
		t.Fatalf("handshakes: A %+v B %+v", sa, sb)
	}
}

// TestLifecycle checks the state sequence the observer sees on the dialling
// side through establish, a time-driven rekey and a close.
func TestLifecycle(t *testing.T) {
	h := newHarness(t, 2)
	a, b := h.add("a", nil), h.add("b", nil)
	h.connect(a, b, true)
	h.run(125*time.Second, 500*time.Millisecond) // past RekeyAfterTime
	a.ep.ClosePeer(b.pub)
	var states []State
	for _, ev := range a.eventsOf(EventState) {
		states = append(states, ev.State)
	}
	want := []State{StateHandshaking, StateEstablished, StateRekeying, StateEstablished, StateClosed}
	if !slices.Equal(states, want) {
		t.Fatalf("states %v, want %v", states, want)
	}
}

// TestRekeyByTimeKeepsTrafficFlowing sends in both directions for 400 s of
// virtual time over a link with delay: several rekeys happen and no message
// is lost or refused.
func TestRekeyByTimeKeepsTrafficFlowing(t *testing.T) {
	h := newHarness(t, 3)
	h.net.SetDefault(netsim.LinkConfig{Delay: 20 * time.Millisecond, Jitter: 5 * time.Millisecond})
	a, b := h.add("a", nil), h.add("b", nil)
	h.connect(a, b, false)
	sent := 0
	for i := range 4000 { // one message each way every 100 ms
		if err := a.ep.Send(b.pub, msg(i, 64)); err != nil {
			t.Fatalf("A send %d at %v: %v", i, h.net.Now().Sub(simStart), err)
		}
		if err := b.ep.Send(a.pub, msg(i, 64)); err != nil {
			t.Fatalf("B send %d at %v: %v", i, h.net.Now().Sub(simStart), err)
		}
		sent++
		h.run(100*time.Millisecond, 100*time.Millisecond)
	}
	h.run(time.Second, 100*time.Millisecond)
	if n := checkUnique(t, b.received()); n != sent {
		t.Fatalf("B received %d of %d", n, sent)
	}
	if n := checkUnique(t, a.received()); n != sent {
		t.Fatalf("A received %d of %d", n, sent)
	}
	hs := a.ep.Stats().HandshakesCompleted + b.ep.Stats().HandshakesCompleted
	if hs < 4 { // 400 s / 120 s
		t.Fatalf("only %d handshakes in 400 s", hs)
	}
}

func TestRekeyByMessageCount(t *testing.T) {
	h := newHarness(t, 4)
	mod := func(c *Config) { c.Timers.RekeyAfterMessages = 100; c.Timers.RejectAfterMessages = 1000 }
	a, b := h.add("a", mod), h.add("b", mod)
	h.connect(a, b, false)
	for i := range 950 {
		if err := a.ep.Send(b.pub, msg(i, 32)); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		h.net.Advance(time.Millisecond)
	}
	h.run(time.Second, 100*time.Millisecond)
	if n := checkUnique(t, b.received()); n != 950 {
		t.Fatalf("B received %d", n)
	}
	if hs := a.ep.Stats().HandshakesCompleted; hs < 5 {
		t.Fatalf("%d handshakes for 950 messages with RekeyAfterMessages=100", hs)
	}
}

// TestRejectAfterTimeAndBackoffReconnect partitions an established pair: the
// session dies at RejectAfterTime, retries back off exponentially, and the
// pair reconnects after the partition heals.
func TestRejectAfterTimeAndBackoffReconnect(t *testing.T) {
	h := newHarness(t, 5)
	a, b := h.add("a", nil), h.add("b", nil)
	h.connect(a, b, true)
	h.net.Partition(a.addr, b.addr)
	before := a.ep.Stats().InitiationsSent
	h.run(181*time.Second, 500*time.Millisecond)
	if st := a.ep.PeerState(b.pub); st != StateHandshaking {
		t.Fatalf("A state after 181 s partitioned: %v", st)
	}
	if _, _, err := a.ep.Seal(nil, b.pub, []byte("x")); !errors.Is(err, ErrNoSession) {
		t.Fatalf("Seal on expired session: %v", err)
	}
	// Retries began at 120 s (rekey) and back off 5,10,20,40 s: a fixed 5 s
	// retry would have sent ~12.
	if n := a.ep.Stats().InitiationsSent - before; n < 2 || n > 6 {
		t.Fatalf("%d initiations in 61 s of retrying; backoff not applied", n)
	}
	h.run(10*time.Minute, time.Second)
	capped := a.ep.Stats().InitiationsSent
	h.run(10*time.Minute, time.Second) // capped at MaxBackoff 60 s (+1/8 jitter)
	if n := a.ep.Stats().InitiationsSent - capped; n < 8 || n > 11 {
		t.Fatalf("%d retries in 10 min, want ~10 with a 60 s cap", n)
	}
	h.net.Heal(a.addr, b.addr)
	h.waitFor("reconnect", 2*time.Minute, func() bool {
		return a.ep.PeerState(b.pub) == StateEstablished && b.ep.PeerState(a.pub) == StateEstablished
	})
	if err := a.ep.Send(b.pub, msg(1, 10)); err != nil {
		t.Fatal(err)
	}
	h.run(50*time.Millisecond, 10*time.Millisecond)
	if len(b.received()) != 1 {
		t.Fatal("no traffic after reconnect")
	}
}

func TestNonPersistentPeerGivesUp(t *testing.T) {
	h := newHarness(t, 6)
	a, b := h.add("a", nil), h.add("b", nil)
	if err := a.ep.AddPeer(b.pub, b.addr, PeerOptions{}); err != nil {
		t.Fatal(err)
	}
	h.net.Partition(a.addr, b.addr)
	if err := a.ep.Connect(b.pub); err != nil {
		t.Fatal(err)
	}
	h.run(100*time.Second, time.Second)
	if st := a.ep.PeerState(b.pub); st != StateIdle {
		t.Fatalf("state %v", st)
	}
	if len(a.eventsOf(EventHandshakeGaveUp)) != 1 {
		t.Fatal("no give-up event")
	}
}

func TestKeepalives(t *testing.T) {
	h := newHarness(t, 7)
	a, b := h.add("a", nil), h.add("b", nil)
	h.connect(a, b, true)
	// Persistent peer idle for a minute: keepalives every 25 s keep B hearing from A.
	k0 := a.ep.Stats().KeepalivesSent
	h.run(60*time.Second, 500*time.Millisecond)
	if n := a.ep.Stats().KeepalivesSent - k0; n < 2 {
		t.Fatalf("%d idle keepalives in 60 s", n)
	}
	// B (not persistent towards A) answers A's data with a passive keepalive.
	k1 := b.ep.Stats().KeepalivesSent
	if err := a.ep.Send(b.pub, msg(1, 10)); err != nil {
		t.Fatal(err)
	}
	h.run(11*time.Second, 500*time.Millisecond)
	if b.ep.Stats().KeepalivesSent == k1 {
		t.Fatal("no passive keepalive after receiving data")
	}
}

func TestReplayWindow(t *testing.T) {
	type step struct {
		n    uint64
		want bool
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"first counter accepted, duplicate refused", []step{{0, true}, {0, false}}},
		{"in order", []step{{0, true}, {1, true}, {2, true}, {1, false}}},
		{"reordered within window accepted once", []step{{10, true}, {5, true}, {5, false}, {9, true}, {11, true}, {10, false}}},
		{"edge of window", []step{{ReplayWindowSize + 100, true}, {101, true}, {100, false}, {101, false}}},
		{"far jump clears old bits", []step{{1, true}, {1 << 40, true}, {1, false}, {1<<40 - 1, true}, {1 << 40, false}}},
		{"word boundaries", []step{{63, true}, {64, true}, {127, true}, {128, true}, {64, false}, {65, true}}},
		{"advance by exactly one ring", []step{{5, true}, {5 + 64*replayWords, true}, {5, false}, {6 + 64*(replayWords-1), true}}},
		{"max counter", []step{{math.MaxUint64, true}, {math.MaxUint64, false}, {math.MaxUint64 - 1, true}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var w ReplayWindow
			for i, s := range tc.steps {
				if got := w.Accept(s.n); got != s.want {
					t.Fatalf("step %d: Accept(%d) = %v, want %v", i, s.n, got, s.want)
				}
			}
		})
	}
}

// TestReplayWindowExhaustive compares the window with a reference set over a
// random walk of counters.
func TestReplayWindowExhaustive(t *testing.T) {
	r := seededRand(9, "window")
	var w ReplayWindow
	seen := map[uint64]bool{}
	var top uint64
	for i := range 200000 {
		var n uint64
		switch x := r.Uint64() % 10; {
		case x < 6:
			n = top + r.Uint64()%8
		case x < 9:
			n = top - min(top, r.Uint64()%(ReplayWindowSize+200))
		default:
			n = top + r.Uint64()%5000
		}
		want := !seen[n] && (i == 0 || n > top || top-n < ReplayWindowSize)
		if got := w.Accept(n); got != want {
			t.Fatalf("iteration %d: Accept(%d) = %v, want %v (top %d)", i, n, got, want, top)
		}
		if want {
			seen[n] = true
			top = max(top, n)
		}
	}
}

// TestDataReplay is fault D1: captured data packets re-injected, forged
// counters; nothing is delivered twice and the live flow continues.
func TestDataReplay(t *testing.T) {
	h := newHarness(t, 10)
	a, b := h.add("a", nil), h.add("b", nil)
	h.connect(a, b, false)
	a.tap(true)
	const total = 3000
	for i := range total {
		if err := a.ep.Send(b.pub, msg(i, 64)); err != nil {
			t.Fatal(err)
		}
	}
	h.run(10*time.Millisecond, 10*time.Millisecond)
	if n := checkUnique(t, b.received()); n != total {
		t.Fatalf("B got %d", n)
	}
	caps := a.taps()
	data := func(i int) []byte { return append([]byte(nil), caps[i]...) }
	forge := func(p []byte, f func([]byte)) []byte { f(p); return p }

	tests := []struct {
		name string
		pkt  []byte
		want error
	}{
		{"duplicate of newest", data(total - 1), ErrReplay},
		{"old seen, inside window", data(total - 100), ErrReplay},
		{"far older than window", data(0), ErrReplay},
		{"forged far-future counter", forge(data(total-1), func(p []byte) { binary.BigEndian.PutUint64(p[5:13], 1<<50) }), ErrDecrypt},
		{"forged next counter", forge(data(total-1), func(p []byte) { binary.BigEndian.PutUint64(p[5:13], total+10) }), ErrDecrypt},
		{"flipped ciphertext bit", forge(data(total-1), func(p []byte) { p[20] ^= 1 }), ErrReplay}, // replay check comes first
		{"type flipped to keepalive", forge(data(total-1), func(p []byte) { p[0] = byte(wire.TypeKeepalive) }), ErrMalformed},
		{"unknown index", forge(data(total-1), func(p []byte) { p[1] ^= 0xff }), ErrUnknownIndex},
		{"truncated", data(total - 1)[:wire.MinDataLen-1], ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := b.ep.HandlePacket(tc.pkt, a.addr)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
	// Live flow unaffected: the next genuine packet is accepted, once.
	if err := a.ep.Send(b.pub, msg(total, 64)); err != nil {
		t.Fatal(err)
	}
	h.run(10*time.Millisecond, 10*time.Millisecond)
	if n := checkUnique(t, b.received()); n != total+1 {
		t.Fatalf("live packet after forgeries: B has %d", n)
	}
	// A packet held back (reordered) inside the window is accepted exactly once.
	a.ep.mu.Lock()
	a.mu.Lock()
	a.sendDrops = true
	a.mu.Unlock()
	a.ep.mu.Unlock()
	held, _, err := a.ep.Seal(nil, b.pub, msg(total+1, 64))
	if err != nil {
		t.Fatal(err)
	}
	a.mu.Lock()
	a.sendDrops = false
	a.mu.Unlock()
	if err := a.ep.Send(b.pub, msg(total+2, 64)); err != nil {
		t.Fatal(err)
	}
	h.run(10*time.Millisecond, 10*time.Millisecond)
	if err := b.ep.HandlePacket(slices.Clone(held), a.addr); err != nil {
		t.Fatalf("late in-window packet: %v", err)
	}
	if err := b.ep.HandlePacket(slices.Clone(held), a.addr); !errors.Is(err, ErrReplay) {
		t.Fatalf("second copy: %v", err)
	}
	if n := checkUnique(t, b.received()); n != total+3 {
		t.Fatalf("B has %d, want %d", n, total+3)
	}
}

// TestLossReorderDuplication runs traffic over a bad link: every message is
// delivered at most once and the channel survives.
func TestLossReorderDuplication(t *testing.T) {
	h := newHarness(t, 11)
	h.net.SetDefault(netsim.LinkConfig{
		Loss: 0.1, Duplicate: 0.15, Delay: 10 * time.Millisecond, Jitter: 10 * time.Millisecond,
		Reorder: 0.15, ReorderDelay: 30 * time.Millisecond,
	})
	a, b := h.add("a", nil), h.add("b", nil)
	h.connect(a, b, true)
	const total = 3000
	refused := 0
	for i := range total {
		if err := a.ep.Send(b.pub, msg(i, 200)); err != nil {
			refused++
		}
		h.run(20*time.Millisecond, 20*time.Millisecond) // 60 s of traffic incl. a rekey? no: < 120 s
	}
	h.run(130*time.Second, 500*time.Millisecond) // cross a rekey with the bad link
	for i := total; i < total+500; i++ {
		if err := a.ep.Send(b.pub, msg(i, 200)); err != nil {
			refused++
		}
		h.run(20*time.Millisecond, 20*time.Millisecond)
	}
	h.run(time.Second, 100*time.Millisecond)
	n := checkUnique(t, b.received())
	if n < (total+500)*8/10 {
		t.Fatalf("only %d of %d delivered at 10%% loss (%d refused)", n, total+500, refused)
	}
	if h.net.Stats().Duplicated == 0 || b.ep.Stats().ReplayDropped == 0 {
		t.Fatalf("the test did not exercise duplication: %+v", h.net.Stats())
	}
	t.Logf("delivered %d/%d, replays dropped %d, net %+v", n, total+500, b.ep.Stats().ReplayDropped, h.net.Stats())
}

// TestReplayedInitiationRefused is fault D2, first half.
func TestReplayedInitiationRefused(t *testing.T) {
	h := newHarness(t, 12)
	a, b := h.add("a", nil), h.add("b", nil)
	a.tap(true)
	h.connect(a, b, false)
	first := a.taps()[0]
	if wire.Type(first[0]) != wire.TypeInitiation {
		t.Fatal("first tapped packet is not the initiation")
	}
	responded := b.ep.Stats().HandshakesResponded
	err := b.ep.HandlePacket(slices.Clone(first), a.addr)
	if !errors.Is(err, ErrReplayedInitiation) {
		t.Fatalf("replayed initiation: %v", err)
	}
	// An older initiation after a newer one is refused too.
	if err := a.ep.Connect(b.pub); err != nil { // new (second) handshake
		t.Fatal(err)
	}
	a.ep.cancelTestHandshake(b.pub) // forget it locally so a third one starts
	if err := a.ep.Connect(b.pub); err != nil {
		t.Fatal(err)
	}
	var inits [][]byte
	for _, p := range a.taps() {
		if wire.Type(p[0]) == wire.TypeInitiation {
			inits = append(inits, p)
		}
	}
	if len(inits) < 3 {
		t.Fatalf("%d initiations tapped", len(inits))
	}
	h.run(50*time.Millisecond, 10*time.Millisecond) // second and third delivered in order
	if err := b.ep.HandlePacket(slices.Clone(inits[1]), a.addr); !errors.Is(err, ErrReplayedInitiation) {
		t.Fatalf("older initiation: %v", err)
	}
	if got := b.ep.Stats().HandshakesResponded - responded; got != 2 {
		t.Fatalf("responded %d new handshakes, want 2 (the genuine ones)", got)
	}
	if len(b.eventsOf(EventHandshakeRefused)) != 2 {
		t.Fatal("refusals not reported")
	}
}

// TestInitiationFlood is fault D2, second half: a flood from one source is
// rate limited before public-key work and a legitimate peer still connects.
func TestInitiationFlood(t *testing.T) {
	h := newHarness(t, 13)
	a, b, c := h.add("a", nil), h.add("b", nil), h.add("c", nil)
	a.tap(true)
	h.connect(a, b, false)
	initiation := a.taps()[0]
	attacker := netip.MustParseAddrPort("198.18.9.9:4444")
	r := seededRand(13, "junk")
	junk := make([]byte, wire.InitiationLen)
	for range 2000 {
		h.net.Send(attacker, b.addr, initiation) // valid MAC, replayed
		r.Read(junk[1:])
		junk[0] = byte(wire.TypeInitiation)
		h.net.Send(attacker, b.addr, junk) // random: fails the MAC, no DH
	}
	before := b.ep.Stats()
	h.net.Advance(time.Millisecond)
	after := b.ep.Stats()
	if got := after.BadMAC - before.BadMAC; got != 2000 {
		t.Fatalf("BadMAC %d, want 2000", got)
	}
	limited := after.RateLimited - before.RateLimited
	reachedDH := after.RefusedReplay - before.RefusedReplay
	if limited < 1900 || reachedDH > 25 || limited+reachedDH != 2000 {
		t.Fatalf("rate limited %d, reached DH %d", limited, reachedDH)
	}
	// The flood continues while C connects from its own address.
	for range 500 {
		h.net.Send(attacker, b.addr, initiation)
	}
	h.connect(c, b, false)
	if err := c.ep.Send(b.pub, msg(7, 10)); err != nil {
		t.Fatal(err)
	}
	h.run(10*time.Millisecond, 10*time.Millisecond)
	if len(b.received()) != 1 {
		t.Fatal("legitimate peer's data not delivered during the flood")
	}
}

// TestPerPeerRateLimit: one key handshaking too often is limited after its
// Noise message authenticates, whatever its source address.
func TestPerPeerRateLimit(t *testing.T) {
	h := newHarness(t, 14)
	a, b := h.add("a", nil), h.add("b", func(c *Config) { c.PerSourceHandshakes = RateLimit{Rate: math.Inf(1)} })
	if err := a.ep.AddPeer(b.pub, b.addr, PeerOptions{}); err != nil {
		t.Fatal(err)
	}
	for range 30 {
		a.ep.cancelTestHandshake(b.pub)
		if err := a.ep.Connect(b.pub); err != nil {
			t.Fatal(err)
		}
	}
	h.net.Advance(time.Millisecond)
	s := b.ep.Stats()
	if s.HandshakesResponded != 10 || s.RateLimited != 20 {
		t.Fatalf("responded %d, limited %d; want burst 10 then limited", s.HandshakesResponded, s.RateLimited)
	}
}

func TestUnauthorizedKeyRefused(t *testing.T) {
	h := newHarness(t, 15)
	a, b := h.add("a", nil), h.add("b", nil)
	b.deny(a.pub)
	if err := a.ep.AddPeer(b.pub, b.addr, PeerOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := a.ep.Connect(b.pub); err != nil {
		t.Fatal(err)
	}
	h.run(time.Second, 10*time.Millisecond)
	if st := a.ep.PeerState(b.pub); st != StateHandshaking {
		t.Fatalf("A state %v", st)
	}
	if s := b.ep.Stats(); s.RefusedUnauthorized != 1 || s.ResponsesSent != 0 {
		t.Fatalf("B stats %+v", s)
	}
	ev := b.eventsOf(EventHandshakeRefused)
	if len(ev) != 1 || ev[0].Peer != a.pub || !errors.Is(ev[0].Err, ErrUnauthorized) {
		t.Fatalf("events %+v", ev)
	}
	// Outbound too: B will not dial a key its directory does not list.
	if err := b.ep.AddPeer(a.pub, a.addr, PeerOptions{}); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("AddPeer of unauthorized key: %v", err)
	}
}

// TestRevocation is fault D4: revoking closes the sessions, reports them,
// and refuses new handshakes.
func TestRevocation(t *testing.T) {
	h := newHarness(t, 16)
	a, b := h.add("a", nil), h.add("b", nil)
	h.connect(a, b, true)
	rep := b.ep.RevokePeer(a.pub)
	if !rep.Known || rep.Sessions < 1 || rep.Previous != StateEstablished || rep.Peer != a.pub {
		t.Fatalf("report %+v", rep)
	}
	if st := b.ep.PeerState(a.pub); st != StateClosed {
		t.Fatalf("B state %v", st)
	}
	// A does not know yet; its data is not delivered.
	if err := a.ep.Send(b.pub, msg(1, 10)); err != nil {
		t.Fatal(err)
	}
	h.run(20*time.Second, 500*time.Millisecond) // A's dead-peer detection rehandshakes
	if len(b.received()) != 0 {
		t.Fatal("revoked peer's data delivered")
	}
	if b.ep.Stats().RefusedRevoked == 0 {
		t.Fatal("A's new handshake was not refused as revoked")
	}
	if b.ep.Stats().UnknownIndex == 0 {
		t.Fatal("A's data on the closed session was not dropped")
	}
	// B will not dial A either.
	if err := b.ep.AddPeer(a.pub, a.addr, PeerOptions{}); !errors.Is(err, ErrRevoked) {
		t.Fatalf("AddPeer of revoked key: %v", err)
	}
	if got := b.ep.RevokePeer(Key{1}); got.Known {
		t.Fatal("unknown key reported as known")
	}
}

// TestClustersNeverMix: an initiation from another cluster fails the MAC,
// and even with a MAC forged for the right key the prologue breaks Noise.
func TestClustersNeverMix(t *testing.T) {
	h := newHarness(t, 17)
	a := h.add("a", func(c *Config) { c.ClusterID = "c2" })
	b := h.add("b", nil)
	a.tap(true)
	if err := a.ep.AddPeer(b.pub, b.addr, PeerOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := a.ep.Connect(b.pub); err != nil {
		t.Fatal(err)
	}
	h.run(time.Second, 10*time.Millisecond)
	if s := b.ep.Stats(); s.BadMAC == 0 || s.ResponsesSent != 0 {
		t.Fatalf("foreign cluster initiation: %+v", s)
	}
	init := slices.Clone(a.taps()[0])
	k := macKey("c1", b.pub)
	forged := appendMAC(&k, init[:len(init)-wire.MACLen])
	if err := b.ep.HandlePacket(forged, a.addr); !errors.Is(err, ErrHandshake) {
		t.Fatalf("forged-MAC foreign initiation: %v", err)
	}
	if a.ep.PeerState(b.pub) == StateEstablished || b.ep.PeerState(a.pub) == StateEstablished {
		t.Fatal("clusters mixed")
	}
}

// TestRandomPacketsNoPanicNoLeak is fault D3.
func TestRandomPacketsNoPanicNoLeak(t *testing.T) {
	goroutines := runtime.NumGoroutine()
	h := newHarness(t, 18)
	a, b := h.add("a", nil), h.add("b", nil)
	h.connect(a, b, false)
	r := seededRand(18, "fuzz")
	pkt := make([]byte, 2000)
	for i := range 20000 {
		n := int(r.Uint64() % 300)
		r.Read(pkt[:n])
		if n > 0 && i%2 == 0 {
			pkt[0] = byte(1 + r.Uint64()%4) // valid types, to get past the first switch
		}
		_ = b.ep.HandlePacket(pkt[:n], a.addr)
	}
	if err := a.ep.Send(b.pub, msg(1, 100)); err != nil {
		t.Fatal(err)
	}
	h.run(10*time.Millisecond, 10*time.Millisecond)
	if len(b.received()) != 1 {
		t.Fatal("channel broken by random packets")
	}
	if g := runtime.NumGoroutine(); g > goroutines {
		t.Fatalf("goroutines %d -> %d", goroutines, g)
	}
}

// TestDataPathZeroAllocs proves Seal + HandlePacket of a 1400-byte payload
// allocate nothing.
func TestDataPathZeroAllocs(t *testing.T) {
	h := newHarness(t, 19)
	a, b := h.add("a", nil), h.add("b", nil)
	h.connect(a, b, false)
	payload := bytes.Repeat([]byte{0xab}, 1400)
	buf := make([]byte, 0, 1500)
	var delivered int
	b.ep.cfg.Deliver = func(Key, []byte) { delivered++ }
	allocs := testing.AllocsPerRun(1000, func() {
		pkt, _, err := a.ep.Seal(buf[:0], b.pub, payload)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.ep.HandlePacket(pkt, a.addr); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per packet, want 0", allocs)
	}
	if delivered < 1000 {
		t.Fatalf("delivered %d", delivered)
	}
}

func TestConfigValidate(t *testing.T) {
	base := func() Config {
		c := DefaultConfig()
		c.ClusterID, c.PrivateKey = "c1", Key{1}
		c.Send = func([]byte, netip.AddrPort) {}
		c.Authorize = func([]byte) error { return nil }
		return c
	}
	tests := []struct {
		name string
		mod  func(*Config)
		ok   bool
	}{
		{"valid", func(*Config) {}, true},
		{"no cluster", func(c *Config) { c.ClusterID = "" }, false},
		{"no key", func(c *Config) { c.PrivateKey = Key{} }, false},
		{"no send", func(c *Config) { c.Send = nil }, false},
		{"no authorize", func(c *Config) { c.Authorize = nil }, false},
		{"rekey after reject", func(c *Config) { c.Timers.RekeyAfterTime = 200 * time.Second }, false},
		{"rekey count after reject", func(c *Config) { c.Timers.RekeyAfterMessages = c.Timers.RejectAfterMessages }, false},
		{"bad rate", func(c *Config) { c.PerPeerHandshakes = RateLimit{Rate: 1, Burst: 0} }, false},
		{"unlimited rate", func(c *Config) { c.GlobalHandshakes = RateLimit{Rate: math.Inf(1)} }, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := base()
			tc.mod(&c)
			err := c.Validate()
			if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrConfig)) {
				t.Fatalf("Validate() = %v", err)
			}
		})
	}
}

// TestSendBatch: SendBatch seals every plaintext in order and hands them to
// Config.SendBatch in one call, to the peer's address; the peer decrypts
// them all, in order. Without a session it sends nothing and says so;
// without Config.SendBatch it sends one by one.
func TestSendBatch(t *testing.T) {
	h := newHarness(t, 41)
	var calls [][]int // packet sizes per SendBatch call
	var dsts []netip.AddrPort
	a := h.add("a", func(c *Config) {
		send := c.Send
		c.SendBatch = func(pkts [][]byte, to netip.AddrPort) {
			var sizes []int
			for _, p := range pkts {
				sizes = append(sizes, len(p))
				send(p, to)
			}
			calls, dsts = append(calls, sizes), append(dsts, to)
		}
	})
	b := h.add("b", nil)
	if err := a.ep.AddPeer(b.pub, b.addr, PeerOptions{}); err != nil {
		t.Fatal(err)
	}
	if n, err := a.ep.SendBatch(b.pub, [][]byte{msg(0, 100), msg(1, 100)}); n != 0 || !errors.Is(err, ErrNoSession) || len(calls) != 0 {
		t.Fatalf("before a session: %d sent, %v, %d calls", n, err, len(calls))
	}
	h.connect(a, b, false)
	var batch [][]byte
	for i := range 40 {
		batch = append(batch, msg(i, 1000))
	}
	if n, err := a.ep.SendBatch(b.pub, batch); n != 40 || err != nil {
		t.Fatalf("SendBatch: %d, %v", n, err)
	}
	if len(calls) != 1 || len(calls[0]) != 40 || dsts[0] != b.addr {
		t.Fatalf("SendBatch calls %v to %v, want one of 40 to %v", len(calls), dsts, b.addr)
	}
	for _, n := range calls[0] {
		if n != calls[0][0] {
			t.Fatalf("equal plaintexts sealed to sizes %v", calls[0])
		}
	}
	h.waitFor("40 messages at b", time.Second, func() bool { return len(b.received()) == 40 })
	for i, p := range b.received() {
		if !bytes.Equal(p, batch[i]) {
			t.Fatalf("message %d differs", i)
		}
	}
	// b has no SendBatch: one by one through Send.
	if n, err := b.ep.SendBatch(a.pub, batch[:3]); n != 3 || err != nil {
		t.Fatalf("SendBatch without Config.SendBatch: %d, %v", n, err)
	}
	h.waitFor("3 messages at a", time.Second, func() bool { return len(a.received()) == 3 })
}
