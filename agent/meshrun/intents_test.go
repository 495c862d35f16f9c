package meshrun

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/rap-fabric/core/domain"
	"github.com/rap-fabric/core/internal/testwait"
	"github.com/rap-fabric/core/mesh/routing"
	"github.com/rap-fabric/core/snapshot"
)

func TestFromSnapshotReadsRouteIntents(t *testing.T) {
	b := snapshot.Body{Self: snapshot.Identity{NodeID: "me", Region: "eu"}, Roles: []snapshot.RoleGrant{{Role: domain.RoleCoreMesh}},
		Membership:  snapshot.Membership{GroupPath: []string{"g-root", "g-dc1"}},
		RoutePolicy: json.RawMessage(`{"max_hops":4,"route_intents":[{"action":"deny","destination":"role:rdp-worker","id":"i1","name":"no-rdp","priority":10,"source":"region:eu"}]}`)}
	d := FromSnapshot(3, b)
	want := []routing.Intent{{Source: "region:eu", Destination: "role:rdp-worker", Action: routing.IntentDeny, Priority: 10}}
	if fmt.Sprint(d.Intents) != fmt.Sprint(want) || d.SelfRegion != "eu" || len(d.SelfRoles) != 1 || len(d.SelfGroups) != 2 {
		t.Fatalf("%+v", d)
	}
	if got := FromSnapshot(3, snapshot.Body{RoutePolicy: json.RawMessage(`{"max_hops":4}`)}).Intents; got != nil {
		t.Fatalf("no intents expected: %+v", got)
	}
}

// pingOK reports whether from reaches to with an answered echo.
func pingOK(n *Node, to string) (bool, string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	res, err := n.Ping(ctx, to)
	return err == nil && res.EchoRTTMs > 0, fmt.Sprint(err, res)
}

// TestDenyIntentOverLoopbackUDP runs three mesh nodes on real UDP sockets:
// b and c may only talk through relay a. With a deny intent between b and c
// in the directory no echo passes — also when b itself did not get the
// intent (a, the relay, and c enforce it) — while b and c still reach a;
// a directory without the intent restores b ↔ c.
func TestDenyIntentOverLoopbackUDP(t *testing.T) {
	nodes := startTrio(t)
	testwait.For(t, 15*time.Second, "ping b→c via a before any intent", func() (bool, string) { return pingOK(nodes["b"].n, "c") })

	deny := []routing.Intent{{Source: "node:b", Destination: "node:c", Action: routing.IntentDeny, Priority: 10}}
	apply := func(v uint64, withIntent ...string) {
		for _, id := range []string{"a", "b", "c"} {
			d := dirFor(nodes, v)
			for _, w := range withIntent {
				if w == id {
					d.Intents = deny
				}
			}
			if _, err := nodes[id].n.Update(d); err != nil {
				t.Fatal(err)
			}
		}
	}
	check := func(what string) {
		t.Helper()
		testwait.For(t, 10*time.Second, what+": b and c still reach a", func() (bool, string) {
			okB, d1 := pingOK(nodes["b"].n, "a")
			okC, d2 := pingOK(nodes["c"].n, "a")
			return okB && okC, d1 + " " + d2
		})
		for _, p := range [][2]string{{"b", "c"}, {"c", "b"}} {
			for range 3 {
				if ok, detail := pingOK(nodes[p[0]].n, p[1]); ok {
					t.Fatalf("%s: %s reached %s despite the deny intent: %s", what, p[0], p[1], detail)
				}
			}
		}
	}

	// b does not know the intent; a (the relay) and c do.
	apply(2, "a", "c")
	check("relay and destination enforce")
	// Everyone has it.
	apply(3, "a", "b", "c")
	check("all enforce")
	// The intent is removed: traffic flows again.
	apply(4)
	testwait.For(t, 15*time.Second, "ping b→c via a after the intent is removed", func() (bool, string) { return pingOK(nodes["b"].n, "c") })
}
