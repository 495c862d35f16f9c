package console

import (
	"context"
	"html/template"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"time"

	"github.com/rap-fabric/core/authority"
	"github.com/rap-fabric/core/domain"
	"github.com/rap-fabric/core/store"
)

// coreRoles are the roles a working cluster needs; a cluster without an active
// assignment of one has a coverage gap.
var coreRoles = []domain.Role{domain.RoleEntryNode, domain.RoleCoreMesh, domain.RoleConfigStorage}

// maxHealthNodes bounds the per-node heartbeat lookups of one page.
const maxHealthNodes = 200

// clusterIDs returns the selected cluster or every cluster.
func (v *view) clusterIDs() []string {
	if v.Cluster != "" {
		return []string{v.Cluster}
	}
	var out []string
	for _, c := range v.Clusters {
		out = append(out, str(c["id"]))
	}
	return out
}

func (c *console) healthRows(ctx context.Context, v *view, nodes []map[string]any) ([]map[string]any, error) {
	var rows []map[string]any
	for i, n := range nodes {
		if i >= maxHealthNodes {
			break
		}
		hs, err := c.o.Authority.Heartbeats().LatestHeartbeats(ctx, str(n["id"]))
		if err != nil {
			return rows, err
		}
		for _, h := range maps(hs) {
			if v.Cluster != "" && str(h["cluster_id"]) != v.Cluster {
				continue
			}
			h["node_name"] = n["name"]
			rows = append(rows, h)
		}
	}
	return rows, nil
}

type gap struct {
	Cluster string
	Missing []string
}

func (c *console) coverage(ctx context.Context, v *view) ([]gap, error) {
	var gaps []gap
	for _, cl := range v.Clusters {
		id := str(cl["id"])
		if v.Cluster != "" && id != v.Cluster {
			continue
		}
		rs, err := c.o.Authority.ListRoles(ctx, id, "", store.Page{Limit: 500})
		if err != nil {
			return gaps, err
		}
		have := map[string]bool{}
		for _, r := range rs {
			if r.Status == "active" {
				have[r.Role] = true
			}
		}
		g := gap{Cluster: str(cl["slug"])}
		for _, want := range coreRoles {
			if !have[string(want)] {
				g.Missing = append(g.Missing, string(want))
			}
		}
		if len(g.Missing) > 0 {
			gaps = append(gaps, g)
		}
	}
	return gaps, nil
}

func (c *console) overview(ctx context.Context, r *http.Request, v *view) error {
	a := c.o.Authority
	nodes, err := a.ListNodes(ctx, v.Cluster, store.Page{Limit: 500})
	if err != nil {
		return err
	}
	nm := maps(nodes)
	v.Data["ClusterCount"] = len(v.Clusters)
	v.Data["NodeCount"] = len(nm)
	joins, err := a.ListJoinRequests(ctx, v.Cluster, "pending", store.Page{Limit: 500})
	if err != nil {
		return err
	}
	v.Data["PendingJoins"] = len(joins)
	// Totals come from SQL counts, not from the length of a page.
	counts, err := a.Count(ctx, v.Cluster)
	if err != nil {
		return err
	}
	v.Data["NodeCount"], v.Data["PendingJoins"] = counts.Nodes, counts.PendingJoins
	hr, err := c.healthRows(ctx, v, nm)
	v.Data["Health"] = countBy(hr, "health_state")
	if err != nil {
		return err
	}
	gaps, err := c.coverage(ctx, v)
	v.Data["Gaps"] = gaps
	if err != nil {
		return err
	}
	var svc []map[string]any
	for _, id := range v.clusterIDs() {
		ss, err := a.ListServices(ctx, id, "", "", store.Page{Limit: 500})
		if err != nil {
			return err
		}
		svc = append(svc, maps(ss)...)
	}
	v.Data["Services"] = countBy(svc, "reported_state")
	// Risky states: no quorum, refused attempts, unhealthy nodes, revocations.
	var risky []string
	if !v.Status.Quorum {
		risky = append(risky, "this authority has no quorum: changes are refused until it rejoins a majority")
	}
	for _, h := range hr {
		if s := str(h["health_state"]); s == "offline" || s == "stale" {
			risky = append(risky, "node "+str(h["node_name"])+" is "+s)
		}
	}
	denied, err := a.ListAudit(ctx, store.AuditFilter{ClusterID: v.Cluster}, store.Page{Limit: 500})
	if err == nil {
		n := 0
		for _, e := range denied {
			if e.Outcome == "denied" {
				n++
			}
		}
		if n > 0 {
			risky = append(risky, strconv.Itoa(n)+" refused attempts in the recent audit log")
		}
	}
	v.Data["Risky"] = risky
	return nil
}

func (c *console) clusters(ctx context.Context, r *http.Request, v *view) error {
	a := c.o.Authority
	type row struct {
		C         map[string]any
		Members   []map[string]any
		Services  []kv
		Roles     []kv
		Partition string
		// Snapshot roll-out: members on their desired snapshot vs behind.
		Applied, Lagging int
		Rollout          template.HTML
	}
	var rows []row
	gaps, err := c.coverage(ctx, v)
	if err != nil {
		return err
	}
	v.Data["Gaps"] = gaps
	for _, cl := range v.Clusters {
		id := str(cl["id"])
		if v.Cluster != "" && id != v.Cluster {
			continue
		}
		rw := row{C: cl}
		ns, err := a.ListNodes(ctx, id, store.Page{Limit: 500})
		if err != nil {
			return err
		}
		rw.Members = maps(ns)
		ss, err := a.ListServices(ctx, id, "", "", store.Page{Limit: 500})
		if err != nil {
			return err
		}
		rw.Services = countBy(maps(ss), "service_type")
		rs, err := a.ListRoles(ctx, id, "", store.Page{Limit: 500})
		if err != nil {
			return err
		}
		rw.Roles = countBy(maps(rs), "role")
		if p, ok := a.FSM().Partition(id); ok && p.State != domain.PartitionNormal {
			rw.Partition = string(p.State) + " — " + p.Reason + " (set by " + p.Actor + ")"
		}
		ss2, err := a.SnapshotStatus(ctx, id, "", false, store.Page{Limit: 10000})
		if err != nil {
			return err
		}
		for _, st := range ss2 {
			if st.Lagging {
				rw.Lagging++
			} else {
				rw.Applied++
			}
		}
		rw.Rollout = rolloutSVG(str(cl["slug"]), rw.Applied, rw.Lagging)
		rows = append(rows, rw)
	}
	v.Data["Rows"] = rows
	return nil
}

func (c *console) nodes(ctx context.Context, r *http.Request, v *view) error {
	ns, err := c.o.Authority.ListNodes(ctx, v.Cluster, store.Page{Limit: 500})
	if err != nil {
		return err
	}
	nm := maps(ns)
	hr, err := c.healthRows(ctx, v, nm)
	health := map[string]string{}
	for _, h := range hr {
		health[str(h["node_id"])] = str(h["health_state"])
	}
	for _, n := range nm {
		n["_health"] = health[str(n["id"])]
	}
	v.Data["Nodes"] = nm
	return err
}

func (c *console) node(ctx context.Context, r *http.Request, v *view) error {
	a := c.o.Authority
	id := r.PathValue("id")
	n, err := a.GetNode(ctx, id)
	if err != nil {
		return err
	}
	nm := toMap(n)
	v.Data["Node"] = nm
	hs, err := a.Heartbeats().LatestHeartbeats(ctx, id)
	if err != nil {
		return err
	}
	v.Data["Heartbeats"] = maps(hs)
	var roles, svcs, links, routes []map[string]any
	names := map[string]string{}
	v.Data["NodeNames"] = names
	for _, m := range n.Memberships {
		rs, err := a.ListRoles(ctx, m.ClusterID, id, store.Page{Limit: 500})
		if err != nil {
			return err
		}
		roles = append(roles, maps(rs)...)
		ss, err := a.ListServices(ctx, m.ClusterID, id, "", store.Page{Limit: 500})
		if err != nil {
			return err
		}
		svcs = append(svcs, maps(ss)...)
		ls, err := a.ListMeshLinks(ctx, m.ClusterID, id, store.Page{Limit: 500})
		if err != nil {
			return err
		}
		links = append(links, maps(ls)...)
		members, err := a.ListNodes(ctx, m.ClusterID, store.Page{Limit: 1000})
		if err != nil {
			return err
		}
		for _, mn := range members {
			names[mn.ID] = mn.Name
		}
		mr, err := a.ListMeshRoutes(ctx, m.ClusterID, id, store.Page{Limit: 500})
		if err != nil {
			return err
		}
		routes = append(routes, maps(mr)...)
	}
	v.Data["Roles"] = roles
	v.Data["Services"] = svcs
	v.Data["MeshLinks"] = links
	v.Data["MeshRoutes"] = routes
	v.Data["AllRoles"] = domain.AllRoles
	ev, err := a.ListAudit(ctx, store.AuditFilter{TargetID: id}, store.Page{Limit: 200})
	if err != nil {
		return err
	}
	v.Data["Audit"] = maps(ev)
	var cls []string
	for _, m := range n.Memberships {
		cls = append(cls, m.ClusterID)
	}
	return c.nodeStrips(ctx, v, id, n.Name, cls)
}

func (c *console) joins(ctx context.Context, r *http.Request, v *view) error {
	status := r.URL.Query().Get("status")
	v.Data["Status"] = status
	js, err := c.o.Authority.ListJoinRequests(ctx, v.Cluster, status, store.Page{Limit: 200})
	if err != nil {
		return err
	}
	v.Data["Joins"] = maps(js)
	ts, err := c.o.Authority.ListJoinTokens(ctx, v.Cluster, store.Page{Limit: 200})
	if err != nil {
		return err
	}
	v.Data["Tokens"] = maps(ts)
	return nil
}

func (c *console) roles(ctx context.Context, r *http.Request, v *view) error {
	var rows []map[string]any
	for _, id := range v.clusterIDs() {
		rs, err := c.o.Authority.ListRoles(ctx, id, r.URL.Query().Get("node"), store.Page{Limit: 500})
		if err != nil {
			return err
		}
		rows = append(rows, maps(rs)...)
	}
	v.Data["Roles"] = rows
	v.Data["AllRoles"] = domain.AllRoles
	ns, err := c.o.Authority.ListNodes(ctx, v.Cluster, store.Page{Limit: 500})
	if err != nil {
		return err
	}
	v.Data["Nodes"] = maps(ns)
	names := map[string]string{}
	for _, n := range ns {
		names[n.ID] = n.Name
	}
	v.Data["NodeNames"] = names
	orgs, err := c.o.Authority.ListOrganizations(ctx, store.Page{Limit: 500})
	if err != nil {
		return err
	}
	v.Data["Orgs"] = maps(orgs)
	var hist []map[string]any
	for _, action := range []string{"role.assign", "role.remove", "role.disable", "role.enable", "role.status"} {
		ev, err := c.o.Authority.ListAudit(ctx, store.AuditFilter{Action: action, ClusterID: v.Cluster}, store.Page{Limit: 200})
		if err != nil {
			return err
		}
		hist = append(hist, maps(ev)...)
	}
	sort.Slice(hist, func(i, j int) bool { return str(hist[i]["at"]) > str(hist[j]["at"]) })
	v.Data["History"] = hist
	return nil
}

func (c *console) services(ctx context.Context, r *http.Request, v *view) error {
	var rows []map[string]any
	for _, id := range v.clusterIDs() {
		ss, err := c.o.Authority.ListServices(ctx, id, "", "", store.Page{Limit: 500})
		if err != nil {
			return err
		}
		rows = append(rows, maps(ss)...)
	}
	v.Data["Services"] = rows
	v.Data["ByState"] = countBy(rows, "reported_state")
	v.Data["Types"] = countBy(rows, "service_type")
	ns, err := c.o.Authority.ListNodes(ctx, v.Cluster, store.Page{Limit: 1000})
	if err != nil {
		return err
	}
	names := map[string]string{}
	for _, n := range ns {
		names[n.ID] = n.Name
	}
	v.Data["NodeNames"] = names
	return nil
}

func (c *console) health(ctx context.Context, r *http.Request, v *view) error {
	ns, err := c.o.Authority.ListNodes(ctx, v.Cluster, store.Page{Limit: 500})
	if err != nil {
		return err
	}
	hr, err := c.healthRows(ctx, v, maps(ns))
	v.Data["Rows"] = hr
	v.Data["ByHealth"] = countBy(hr, "health_state")
	var alerts []map[string]any
	for _, h := range hr {
		if s := str(h["health_state"]); s != "healthy" {
			alerts = append(alerts, h)
		}
	}
	v.Data["Alerts"] = alerts
	if err != nil {
		return err
	}
	for _, h := range hr {
		s, err := c.healthStrip(ctx, v, str(h["cluster_id"]), str(h["node_id"]), str(h["node_name"]))
		if err != nil {
			return err
		}
		h["_strip"] = s.SVG
	}
	return nil
}

// AuditPageSize is how many events one audit page shows.
const AuditPageSize = 100

// audit pages through the audit log newest first with a cursor (?before=id);
// the outcome filter is applied while reading, so every page is full until
// the log runs out.
func (c *console) audit(ctx context.Context, r *http.Request, v *view) error {
	q := r.URL.Query()
	f := store.AuditFilter{ClusterID: v.Cluster, Action: q.Get("action"), Actor: q.Get("actor"), TargetKind: q.Get("target_kind"), TargetID: q.Get("target_id"), NewestFirst: true}
	if b := q.Get("before"); b != "" {
		id, err := strconv.ParseInt(b, 10, 64)
		if err != nil || id < 1 {
			return authority.Errf(authority.CodeInvalid, "before must be a positive event id")
		}
		f.BeforeID = id
	}
	outcome := q.Get("outcome")
	var rows []map[string]any
	more := false
	for batch := 0; batch < 20 && len(rows) < AuditPageSize; batch++ {
		ev, err := c.o.Authority.ListAudit(ctx, f, store.Page{Limit: 500})
		if err != nil {
			return err
		}
		for _, e := range ev {
			if outcome != "" && e.Outcome != outcome {
				continue
			}
			if len(rows) == AuditPageSize {
				more = true
				break
			}
			rows = append(rows, toMap(e))
		}
		if more || len(ev) < 500 {
			break
		}
		f.BeforeID = ev[len(ev)-1].ID
		more = true // the batch cap may stop here with events left
	}
	if len(rows) < AuditPageSize {
		more = false
	}
	v.Data["Events"] = rows
	v.Data["Filter"] = map[string]string{"action": f.Action, "actor": f.Actor, "target_kind": f.TargetKind, "target_id": f.TargetID, "outcome": outcome}
	keep := url.Values{}
	for _, k := range []string{"cluster", "action", "actor", "target_kind", "target_id", "outcome"} {
		if q.Get(k) != "" {
			keep.Set(k, q.Get(k))
		}
	}
	v.Data["Newest"] = "?" + keep.Encode()
	if more && len(rows) > 0 {
		keep.Set("before", str(rows[len(rows)-1]["id"]))
		v.Data["Older"] = "?" + keep.Encode()
	}
	v.Data["Paged"] = q.Get("before") != ""
	return nil
}

func (c *console) trust(ctx context.Context, r *http.Request, v *view) error {
	a := c.o.Authority
	type row struct {
		C           map[string]any
		CA          map[string]any
		Certs       []map[string]any
		Revocations []map[string]any
		Expiry      template.HTML
	}
	var rows []row
	for _, cl := range v.Clusters {
		id := str(cl["id"])
		if v.Cluster != "" && id != v.Cluster {
			continue
		}
		rw := row{C: cl}
		if ca, err := a.ClusterTrust(id); err == nil {
			rw.CA = toMap(ca)
			delete(rw.CA, "ca_certificate")
		}
		ns, err := a.ListNodes(ctx, id, store.Page{Limit: 200})
		if err != nil {
			return err
		}
		for _, n := range ns {
			d, err := a.GetNode(ctx, n.ID)
			if err != nil {
				return err
			}
			for _, idn := range d.Identities {
				if idn.ClusterID == id {
					m := toMap(idn)
					m["node_name"] = n.Name
					rw.Certs = append(rw.Certs, m)
				}
			}
		}
		rs, err := a.Revocations(ctx, id)
		if err != nil {
			return err
		}
		rw.Revocations = maps(rs)
		var marks []certMark
		for _, m := range rw.Certs {
			t, err := time.Parse(time.RFC3339Nano, str(m["certificate_not_after"]))
			if err != nil || str(m["identity_status"]) != "active" {
				continue
			}
			nb, _ := time.Parse(time.RFC3339Nano, str(m["certificate_not_before"]))
			marks = append(marks, certMark{Node: str(m["node_name"]), Serial: str(m["certificate_serial"]), NotBefore: nb, NotAfter: t})
		}
		rw.Expiry = expirySVG(str(cl["slug"]), v.Now, marks)
		rows = append(rows, rw)
	}
	v.Data["Rows"] = rows
	return nil
}

func (c *console) account(ctx context.Context, r *http.Request, v *view) error {
	ad := c.o.Authority.Admin()
	ds, err := ad.Devices.List(ctx, v.User.ID)
	if err != nil {
		return err
	}
	var devs []map[string]any
	for _, d := range ds {
		devs = append(devs, map[string]any{"id": d.ID.String()[:16], "label": d.Label, "created_at": d.CreatedAt, "expires_at": d.ExpiresAt, "revoked": !d.RevokedAt.IsZero()})
	}
	v.Data["Devices"] = devs
	v.Data["RecoveryLeft"], _ = ad.RecoveryCodesLeft(ctx, v.User.ID)
	us, err := ad.Users(ctx, store.Page{Limit: 500})
	if err != nil {
		return err
	}
	v.Data["Users"] = maps(us)
	return nil
}

// vpn lists each cluster's VPN connections with their lease holder, epoch,
// expiry and health; enable/disable and the lease fence (step-up) are API
// calls from the page.
func (c *console) vpn(ctx context.Context, r *http.Request, v *view) error {
	type group struct {
		Cluster     map[string]any
		Connections []map[string]any
	}
	var groups []group
	for _, cl := range v.Clusters {
		id := str(cl["id"])
		if v.Cluster != "" && id != v.Cluster {
			continue
		}
		g := group{Cluster: cl}
		if c.o.VPN != nil {
			cs, err := c.o.VPN.ListConnections(ctx, id, store.Page{Limit: 500})
			if err != nil {
				return err
			}
			g.Connections = maps(cs)
		}
		groups = append(groups, g)
	}
	v.Data["Groups"] = groups
	return nil
}

// vpnConn shows one VPN connection: settings, route policies, each node's
// data path (interface, counters, drops, current exit) and the lease history.
func (c *console) vpnConn(ctx context.Context, r *http.Request, v *view) error {
	if c.o.VPN == nil {
		return ErrNoPage
	}
	d, err := c.o.VPN.GetConnection(ctx, r.PathValue("cluster"), r.PathValue("id"))
	if err != nil {
		return err
	}
	v.Data["Conn"] = toMap(d)
	return nil
}

// maxConsoleRollouts bounds the rollouts (with their waves) one Releases
// page shows per cluster.
const maxConsoleRollouts = 10

// maxConsoleReleasePlatforms bounds the releases whose artifacts the
// Releases page looks up.
const maxConsoleReleasePlatforms = 50

// releases shows the published releases with their channels and artifacts,
// the channel heads and assignments, and each cluster's recent rollouts with
// per-wave progress (succeeded / failed / pending of each wave's nodes).
func (c *console) releases(ctx context.Context, r *http.Request, v *view) error {
	a := c.o.Authority
	rels, err := a.Releases().ListReleases(ctx, r.URL.Query().Get("product"), store.Page{Limit: 200})
	if err != nil {
		return err
	}
	rows := maps(rels)
	// The list carries no platforms; the newest releases get theirs (with
	// each artifact's upload progress).
	for i, rel := range rels {
		if i >= maxConsoleReleasePlatforms {
			break
		}
		if full, err := a.Releases().GetRelease(ctx, rel.ID); err == nil {
			rows[i]["platforms"] = toMap(full)["platforms"]
		}
	}
	v.Data["Releases"] = rows
	heads, err := a.Releases().ChannelHeads(ctx)
	if err != nil {
		return err
	}
	v.Data["Heads"] = maps(heads)
	type group struct {
		Cluster     map[string]any
		Rollouts    []map[string]any
		Assignments []map[string]any
	}
	var groups []group
	for _, cl := range v.Clusters {
		id := str(cl["id"])
		if v.Cluster != "" && id != v.Cluster {
			continue
		}
		g := group{Cluster: cl}
		rs, err := a.Rollouts().List(ctx, id, store.Page{Limit: maxConsoleRollouts})
		if err != nil {
			return err
		}
		for _, x := range rs {
			rv, err := a.Rollouts().Get(ctx, id, x.ID)
			if err != nil {
				return err
			}
			g.Rollouts = append(g.Rollouts, toMap(rv))
		}
		as, err := a.Rollouts().ListChannelAssignments(ctx, id)
		if err != nil {
			return err
		}
		g.Assignments = maps(as)
		groups = append(groups, g)
	}
	v.Data["Groups"] = groups
	return nil
}
