package routing

import "testing"

// Organization scope over nodes serving several organizations: shared
// infrastructure reaches everyone, scoped nodes only those sharing an
// organization, unless CrossOrg; a relay refuses to carry a cross-scope pair.
func TestScopePolicyOrganizations(t *testing.T) {
	nodes := map[string]Scope{
		"shared": {Cluster: "c"},
		"a":      {Cluster: "c", Orgs: []string{"o1"}},
		"ab":     {Cluster: "c", Orgs: []string{"o1", "o2"}},
		"b":      {Cluster: "c", Org: "o2"},
		"c":      {Cluster: "c", Orgs: []string{"o3"}},
	}
	cases := []struct {
		x, y string
		same bool
	}{
		{"shared", "a", true}, {"a", "ab", true}, {"ab", "b", true}, {"a", "b", false}, {"a", "c", false}, {"ab", "c", false}, {"shared", "c", true},
	}
	for _, tc := range cases {
		if got := SameOrganization(nodes[tc.x], nodes[tc.y]); got != tc.same || SameOrganization(nodes[tc.y], nodes[tc.x]) != tc.same {
			t.Errorf("SameOrganization(%s, %s) = %v, want %v", tc.x, tc.y, got, tc.same)
		}
	}
	relay := &ScopePolicy{ID: "shared", Self: nodes["shared"], Nodes: nodes, NoTransit: map[string]bool{}}
	if relay.AllowRelay("a", "b") || relay.AllowRelay("b", "a") || !relay.AllowRelay("a", "ab") {
		t.Fatal("relay scope wrong")
	}
	pa := &ScopePolicy{ID: "a", Self: nodes["a"], Nodes: nodes, NoTransit: map[string]bool{}}
	if pa.AllowDestination("b") || pa.AllowDestination("c") || !pa.AllowDestination("ab") || !pa.AllowDestination("shared") {
		t.Fatal("destination scope wrong")
	}
	if pa.AllowTransit("shared", "b") {
		t.Fatal("transit to an out-of-scope destination allowed")
	}
	pa.CrossOrg, relay.CrossOrg = true, true
	if !pa.AllowDestination("b") || !relay.AllowRelay("a", "b") {
		t.Fatal("CrossOrg does not lift the scope")
	}
}
