package console

import (
	"context"
	"html/template"
	"net/http"
	"strconv"
	"time"

	"github.com/rap-fabric/core/domain"
	"github.com/rap-fabric/core/store"
)

// Health strips: StripBuckets buckets of StripWidth, the last one holding now.
const (
	StripBuckets = 30
	StripWidth   = 2 * time.Minute
)

// ClusterName returns a cluster's slug for an id (the id itself when the
// cluster is unknown), so pages show names, with ids on hover.
func (v *view) ClusterName(id any) string {
	s := str(id)
	for _, c := range v.Clusters {
		if str(c["id"]) == s {
			return str(c["slug"])
		}
	}
	return s
}

// strip is one node's health-over-time picture.
type strip struct {
	NodeID, NodeName, Cluster string
	Cells                     []stripCell
	SVG                       template.HTML
}

func (c *console) healthStrip(ctx context.Context, v *view, clusterID, nodeID, name string) (strip, error) {
	end := v.Now.Truncate(StripWidth).Add(StripWidth)
	from := end.Add(-StripBuckets * StripWidth)
	bs, err := c.o.Authority.Heartbeats().HeartbeatBuckets(ctx, clusterID, nodeID, from, StripWidth, StripBuckets)
	if err != nil {
		return strip{}, err
	}
	cells := stripCells(from, bs, false)
	cn := v.ClusterName(clusterID)
	return strip{NodeID: nodeID, NodeName: name, Cluster: cn, Cells: cells, SVG: stripSVG(name+" in "+cn, "heartbeats", StripWidth, cells)}, nil
}

// topology draws one cluster's mesh from its members, their relay roles and
// the links they reported.
func (c *console) topology(ctx context.Context, clusterID, title string) (template.HTML, int, int, error) {
	a := c.o.Authority
	ns, err := a.ListNodes(ctx, clusterID, store.Page{Limit: 1000})
	if err != nil {
		return "", 0, 0, err
	}
	rs, err := a.ListRoles(ctx, clusterID, "", store.Page{Limit: 1000})
	if err != nil {
		return "", 0, 0, err
	}
	relay := map[string]bool{}
	for _, r := range rs {
		if r.Role == string(domain.RoleRelayNode) && r.Status == "active" {
			relay[r.NodeID] = true
		}
	}
	nodes := make([]topoNode, 0, len(ns))
	for _, n := range ns {
		nodes = append(nodes, topoNode{ID: n.ID, Name: n.Name, Relay: relay[n.ID]})
	}
	ls, err := a.ListMeshLinks(ctx, clusterID, "", store.Page{Limit: 1000})
	if err != nil {
		return "", 0, 0, err
	}
	links := make([]topoLink, 0, len(ls))
	for _, l := range ls {
		links = append(links, topoLink{From: l.NodeID, To: l.PeerNodeID, State: l.State, RTTMs: l.RTTMs, Loss: l.Loss})
	}
	var ping *topoPing
	ps, err := a.LastPings(ctx, clusterID, "", store.Page{Limit: 1})
	if err != nil {
		return "", 0, 0, err
	}
	if len(ps) > 0 {
		path := ps[0].Path
		if len(path) > 0 && path[0] != ps[0].NodeID {
			path = append([]string{ps[0].NodeID}, path...)
		}
		ping = &topoPing{Path: path, RTTMs: ps[0].RTTMs, At: ps[0].At}
	}
	return topologySVG(title, nodes, links, ping), len(nodes), len(links), nil
}

// topologyPage shows the mesh picture of each (or the selected) cluster.
func (c *console) topologyPage(ctx context.Context, _ *http.Request, v *view) error {
	type pic struct {
		Cluster      map[string]any
		SVG, Strip   template.HTML
		Nodes, Links int
	}
	var pics []pic
	for _, cl := range v.Clusters {
		id := str(cl["id"])
		if v.Cluster != "" && id != v.Cluster {
			continue
		}
		svg, n, l, err := c.topology(ctx, id, str(cl["slug"]))
		if err != nil {
			return err
		}
		strip, err := c.clusterStrip(ctx, v, id)
		if err != nil {
			return err
		}
		pics = append(pics, pic{Cluster: cl, SVG: svg, Strip: strip, Nodes: n, Links: l})
	}
	v.Data["Pictures"] = pics
	return nil
}

// nodeStrips adds the health strip of each of the node's memberships.
func (c *console) nodeStrips(ctx context.Context, v *view, nodeID, name string, clusters []string) error {
	var ss []strip
	for _, cl := range clusters {
		s, err := c.healthStrip(ctx, v, cl, nodeID, name)
		if err != nil {
			return err
		}
		ss = append(ss, s)
	}
	v.Data["Strips"] = ss
	return nil
}

// NodeName returns a node's name for an id from the names the page loaded
// (Data["NodeNames"]); unknown ids come back as they are.
func (v *view) NodeName(id any) string {
	s := str(id)
	if names, ok := v.Data["NodeNames"].(map[string]string); ok {
		if n, ok := names[s]; ok {
			return n
		}
	}
	return s
}

// stripCells spreads SQL buckets over StripBuckets cells starting at from; a
// cluster's cells count reporting nodes, a node's its heartbeats.
func stripCells(from time.Time, bs []store.HeartbeatBucket, nodes bool) []stripCell {
	cells := make([]stripCell, StripBuckets)
	for i := range cells {
		cells[i].Start = from.Add(time.Duration(i) * StripWidth)
	}
	for _, b := range bs {
		if b.Index >= 0 && b.Index < len(cells) {
			cells[b.Index].Count, cells[b.Index].Degraded = b.Count, b.Degraded
			if nodes {
				cells[b.Index].Count = b.Nodes
			}
		}
	}
	return cells
}

// clusterStrip is a cluster's health over time: per bucket, how many of its
// nodes sent a heartbeat and whether any reported degraded mode.
func (c *console) clusterStrip(ctx context.Context, v *view, clusterID string) (template.HTML, error) {
	end := v.Now.Truncate(StripWidth).Add(StripWidth)
	from := end.Add(-StripBuckets * StripWidth)
	bs, err := c.o.Authority.Heartbeats().HeartbeatBuckets(ctx, clusterID, "", from, StripWidth, StripBuckets)
	if err != nil {
		return "", err
	}
	return stripSVG("cluster "+v.ClusterName(clusterID), "nodes reporting", StripWidth, stripCells(from, bs, true)), nil
}

// raft is the Raft panel: this authority's view of the group (leader,
// voters and their health, term, commit/applied lag, last contact, epochs)
// and the group's membership changes from the audit log.
func (c *console) raft(ctx context.Context, _ *http.Request, v *view) error {
	st := v.Status
	v.Data["Lag"] = int64(st.CommitIndex) - int64(st.AppliedIndex)
	voters := 0
	for _, m := range st.Members {
		if m.Suffrage == "voter" {
			voters++
		}
	}
	v.Data["Voters"] = voters
	v.Data["Majority"] = voters/2 + 1
	if !st.LastContact.IsZero() {
		v.Data["LastContactAgo"] = humanDuration(v.Now.Sub(st.LastContact).Round(time.Second))
	}
	ev, err := c.o.Authority.ListAudit(ctx, store.AuditFilter{TargetKind: "authority"}, store.Page{Limit: 200})
	if err != nil {
		return err
	}
	v.Data["Events"] = maps(ev)
	es, err := c.o.Authority.Epochs(ctx, store.Page{Limit: 20})
	if err != nil {
		return err
	}
	v.Data["Epochs"] = maps(es)
	return nil
}

// Ago renders a JSON time as how long before the page's time it was ("3m
// ago"), for tables where recency matters more than the timestamp.
func (v *view) Ago(t any) string {
	at, err := time.Parse(time.RFC3339Nano, str(t))
	if err != nil {
		return str(t)
	}
	d := v.Now.Sub(at)
	if d < 0 {
		return "just now"
	}
	return humanDuration(d.Round(time.Second)) + " ago"
}

// Seconds renders a JSON number of seconds as a human duration.
func (v *view) Seconds(s any) string {
	f, ok := s.(float64)
	if !ok {
		return str(s)
	}
	return humanDuration(time.Duration(f * float64(time.Second)).Round(time.Second))
}

// RTT renders a JSON round-trip time in milliseconds for people.
func (v *view) RTT(ms any) string {
	f, ok := ms.(float64)
	if !ok {
		return str(ms)
	}
	return humanMs(f)
}

// Percent renders a JSON fraction (0..1) as a percentage.
func (v *view) Percent(x any) string {
	f, ok := x.(float64)
	if !ok {
		return str(x)
	}
	return strconv.FormatFloat(f*100, 'f', -1, 64) + "%"
}
