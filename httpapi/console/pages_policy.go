package console

import (
	"context"
	"net/http"
	"sort"
	"strings"

	"github.com/rap-fabric/core/authority"
	"github.com/rap-fabric/core/store"
)

// maxConsolePolicies bounds the route intents and QoS policies one page lists
// per cluster (the authority caps a cluster at MaxRouteIntents intents).
const maxConsolePolicies = authority.MaxRouteIntents

// policies lists each cluster's route intents and QoS policies (priority
// order); create and delete are API calls from the page.
func (c *console) policies(ctx context.Context, _ *http.Request, v *view) error {
	a := c.o.Authority
	var intents, qos []map[string]any
	for _, id := range v.clusterIDs() {
		is, err := a.ListRouteIntents(ctx, id, store.Page{Limit: maxConsolePolicies})
		if err != nil {
			return err
		}
		intents = append(intents, maps(is)...)
		qs, err := a.ListQoSPolicies(ctx, id, store.Page{Limit: maxConsolePolicies})
		if err != nil {
			return err
		}
		qos = append(qos, maps(qs)...)
	}
	v.Data["Intents"], v.Data["QoS"] = intents, qos
	v.Data["IntentActions"], v.Data["TrafficClasses"] = authority.IntentActions(), authority.TrafficClasses()
	return nil
}

// groups lists each cluster's node groups by path with the nodes placed in
// them; create, delete and placing a node are API calls from the page.
func (c *console) groups(ctx context.Context, _ *http.Request, v *view) error {
	a := c.o.Authority
	var rows []map[string]any
	for _, id := range v.clusterIDs() {
		gs, err := a.ListGroups(ctx, id)
		if err != nil {
			return err
		}
		ns, err := a.ListNodes(ctx, id, store.Page{Limit: 1000})
		if err != nil {
			return err
		}
		members := map[string][]string{}
		for _, n := range ns {
			for _, m := range n.Memberships {
				if m.ClusterID == id && m.GroupID != nil {
					members[*m.GroupID] = append(members[*m.GroupID], n.Name)
				}
			}
		}
		if v.Cluster == id {
			v.Data["Nodes"] = maps(ns)
		}
		for _, g := range gs {
			m := toMap(g)
			m["_path"] = groupPath(gs, g)
			ms := members[g.ID]
			sort.Strings(ms)
			m["_members"] = ms
			rows = append(rows, m)
		}
	}
	sort.SliceStable(rows, func(i, j int) bool { return str(rows[i]["_path"]) < str(rows[j]["_path"]) })
	v.Data["Groups"] = rows
	return nil
}

// groupPath is a group's name path from the top ("site/rack-1"), bounded so
// a cycle in bad data cannot loop.
func groupPath(gs []store.Group, g store.Group) string {
	byID := make(map[string]store.Group, len(gs))
	for _, x := range gs {
		byID[x.ID] = x
	}
	parts := []string{g.Name}
	for cur := g; cur.ParentID != nil && len(parts) <= len(gs); {
		p, ok := byID[*cur.ParentID]
		if !ok {
			break
		}
		parts = append([]string{p.Name}, parts...)
		cur = p
	}
	return strings.Join(parts, "/")
}
