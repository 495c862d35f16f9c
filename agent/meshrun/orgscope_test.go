package meshrun

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/rap-fabric/core/internal/testwait"
	"github.com/rap-fabric/core/snapshot"
)

func TestFromSnapshotReadsOrganizations(t *testing.T) {
	b := snapshot.Body{Self: snapshot.Identity{NodeID: "me", Organizations: []string{"o1"}},
		Peers:       []snapshot.Peer{{NodeID: "p1", NoisePublicKey: make([]byte, 32), Relation: snapshot.RelationMesh, Organizations: []string{"o2"}}},
		RoutePolicy: json.RawMessage(`{"cross_organization":true}`)}
	d := FromSnapshot(1, b)
	if !d.CrossOrganization || !slices.Equal(d.SelfOrganizations, []string{"o1"}) || len(d.Peers) != 1 || !slices.Equal(d.Peers[0].Organizations, []string{"o2"}) {
		t.Fatalf("%+v", d)
	}
	for _, doc := range []string{``, `{}`, `{"cross_organization":"true"}`, `{"cross_organization":1}`, `{"cross_organization":false}`} {
		if FromSnapshot(1, snapshot.Body{RoutePolicy: json.RawMessage(doc)}).CrossOrganization {
			t.Fatalf("%q lifted organization scope", doc)
		}
	}
}

// TestOrganizationScopeOverLoopbackUDP runs three mesh nodes on real UDP
// sockets: b serves organization o1, c serves o2, relay a serves none, and
// b ↔ c can only go through a. Organization scope keeps b and c apart (no
// echo passes either way, while both reach the shared relay); a directory
// with cross_organization lifts it; dropping the flag restores it.
func TestOrganizationScopeOverLoopbackUDP(t *testing.T) {
	nodes := startTrio(t)
	testwait.For(t, 15*time.Second, "ping b→c via a before organization scope", func() (bool, string) { return pingOK(nodes["b"].n, "c") })
	orgs := map[string][]string{"b": {"o1"}, "c": {"o2"}}
	apply := func(v uint64, cross bool, uninformed ...string) {
		for _, id := range []string{"a", "b", "c"} {
			d := dirFor(nodes, v)
			if slices.Contains(uninformed, id) { // knows of no organizations
				if _, err := nodes[id].n.Update(d); err != nil {
					t.Fatal(err)
				}
				continue
			}
			for i := range d.Peers {
				d.Peers[i].Organizations = orgs[d.Peers[i].NodeID]
			}
			d.SelfOrganizations, d.CrossOrganization = orgs[id], cross
			if _, err := nodes[id].n.Update(d); err != nil {
				t.Fatal(err)
			}
		}
	}
	blocked := func(what string) {
		t.Helper()
		testwait.For(t, 10*time.Second, what+": b and c still reach a", func() (bool, string) {
			okB, d1 := pingOK(nodes["b"].n, "a")
			okC, d2 := pingOK(nodes["c"].n, "a")
			return okB && okC, d1 + " " + d2
		})
		for _, p := range [][2]string{{"b", "c"}, {"c", "b"}} {
			for range 3 {
				if ok, detail := pingOK(nodes[p[0]].n, p[1]); ok {
					t.Fatalf("%s: %s reached %s across organizations: %s", what, p[0], p[1], detail)
				}
			}
		}
	}
	// b and c know nothing of organizations: relay a alone keeps them apart.
	apply(2, false, "b", "c")
	blocked("relay enforces")
	if nodes["a"].n.AllowRelay("b", "c") || nodes["a"].n.AllowRelay("c", "b") {
		t.Fatal("relay a's policy does not keep b and c apart")
	}
	// Everyone knows.
	apply(3, false)
	blocked("organization scope")

	apply(4, true)
	testwait.For(t, 15*time.Second, "cross_organization lifts the scope: ping b→c", func() (bool, string) { return pingOK(nodes["b"].n, "c") })
	testwait.For(t, 15*time.Second, "ping c→b", func() (bool, string) { return pingOK(nodes["c"].n, "b") })

	apply(5, false)
	blocked("scope restored")
}
