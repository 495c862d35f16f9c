package e2e

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/rap-fabric/core/mesh/routing"
)

// denySD is a route intent that denies the pair s, d.
var denySD = []routing.Intent{{Source: "node:s", Destination: "node:d", Action: routing.IntentDeny, Priority: 10}}

func intentPol(in []routing.Intent) func(string) routing.Policy {
	return func(id string) routing.Policy { return routing.NewIntentPolicy(routing.AllowAll{}, id, in, nil) }
}

// TestDeniedPairRefusedByRelayAndDestination: s does not know the intent (a
// node without intents in its snapshot, or one misled by an advertised
// route) and sends to d via r. The relay refuses the denied pair's frame;
// with a relay that lets it through, d refuses it on delivery; d itself
// never dials s.
func TestDeniedPairRefusedByRelayAndDestination(t *testing.T) {
	routes := map[string]staticRoutes{"s": {"d": "r"}, "r": {"d": "d", "s": "s"}, "d": {"s": "r"}}
	pol := func(id string) routing.Policy {
		if id == "s" {
			return routing.AllowAll{}
		}
		return intentPol(denySD)(id)
	}
	l := newLinks(t, routes, pol)
	if _, err := l.f["s"].Dial("d"); err != nil {
		t.Fatal(err)
	}
	l.pump()
	if st := l.f["r"].Stats(); st.DroppedPolicy == 0 || st.Forwarded != 0 {
		t.Fatalf("relay carried the denied pair: %+v", st)
	}
	if l.f["d"].Stats().HandshakesComplete != 0 {
		t.Fatal("delivered despite the deny intent")
	}
	if _, err := l.f["d"].Dial("s"); !errors.Is(err, ErrPolicy) {
		t.Fatalf("d dialled s: %v", err)
	}

	// The relay does not know the intent either: d drops on arrival.
	pol2 := func(id string) routing.Policy {
		if id == "d" {
			return intentPol(denySD)(id)
		}
		return routing.AllowAll{}
	}
	l2 := newLinks(t, routes, pol2)
	if _, err := l2.f["s"].Dial("d"); err != nil {
		t.Fatal(err)
	}
	l2.pump()
	if st := l2.f["r"].Stats(); st.Forwarded == 0 {
		t.Fatalf("the permissive relay should have forwarded: %+v", st)
	}
	if st := l2.f["d"].Stats(); st.DroppedPolicy == 0 || st.HandshakesComplete != 0 {
		t.Fatalf("d accepted the denied pair: %+v", st)
	}
}

// swapPolicy lets a test replace every node's policy at once, as a new
// snapshot does on an agent.
type swapPolicy struct {
	mu sync.Mutex
	p  routing.Policy
}

func (s *swapPolicy) get() routing.Policy {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.p
}
func (s *swapPolicy) set(p routing.Policy) { s.mu.Lock(); s.p = p; s.mu.Unlock() }

func (s *swapPolicy) AllowDestination(dst string) bool  { return s.get().AllowDestination(dst) }
func (s *swapPolicy) AllowTransit(via, dst string) bool { return s.get().AllowTransit(via, dst) }
func (s *swapPolicy) AllowRelay(from, dst string) bool  { return s.get().AllowRelay(from, dst) }

// TestDenyIntentStopsEchoThroughRelay runs routers and forwarders on a
// simulated network: s – r – d, with a direct link s – d as well. With the
// deny intent no echo from s reaches d by either path; once the intent is
// removed (new policy at every node) the echo flows.
func TestDenyIntentStopsEchoThroughRelay(t *testing.T) {
	pols := map[string]*swapPolicy{}
	m := newMesh(t, []string{"s", "r", "d"}, func(id string) routing.Policy {
		p := &swapPolicy{p: intentPol(denySD)(id)}
		pols[id] = p
		return p
	})
	m.link("s", "r", 1)
	m.link("r", "d", 1)
	m.link("s", "d", 5)
	m.run(3 * time.Second)
	if _, _, _, err := m.nodes["s"].router.Lookup("d"); !errors.Is(err, routing.ErrNoRoute) {
		t.Fatalf("s has a route to d despite the deny intent: %v", err)
	}
	if _, err := m.nodes["s"].fwd.DialService("d", EchoService); !errors.Is(err, ErrPolicy) {
		t.Fatalf("s dialled d: %v", err)
	}
	// r itself still talks to both.
	if _, _, _, err := m.nodes["r"].router.Lookup("d"); err != nil {
		t.Fatalf("r → d: %v", err)
	}

	// Remove the intent everywhere.
	for id, p := range pols {
		p.set(intentPol(nil)(id))
		m.nodes[id].router.SetPolicy(p)
	}
	m.converge()
	c, err := m.nodes["s"].fwd.DialService("d", EchoService)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Send([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	var got []byte
	if !m.runUntil(func() bool {
		msg, ok := c.TryRecv()
		got = msg
		return ok
	}, 2*time.Second) || string(got) != "ping" {
		t.Fatalf("no echo after the intent was removed: %q", got)
	}
}
