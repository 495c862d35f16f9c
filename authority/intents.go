package authority

import (
	"context"
	"encoding/json"
	"regexp"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/rap-fabric/core/domain"
	"github.com/rap-fabric/core/snapshot"
	"github.com/rap-fabric/core/store"
)

// Route intents and QoS policies (issue 9, C6): rows of
// cluster_route_intents and qos_policies, written by fenced, audited owner
// operations. Mesh roles receive them in their snapshots, merged into the
// cluster's route policy ("route_intents") and QoS policy ("qos_policies")
// documents (mergeIntoPolicy, loadState).

// Bounds of a cluster's intents and policies (they travel in every mesh
// node's snapshot).
const (
	MaxRouteIntents = 1000
	MaxQoSPolicies  = 64
	maxPriority     = 10000
	maxBandwidth    = 100000000 // kbps
	maxLatencyMs    = 600000
)

// Route intent actions and QoS traffic classes (the database checks the same).
var (
	intentActions  = []string{"allow", "deny", "prefer-relay"}
	trafficClasses = []string{"control", "interactive", "streaming", "bulk", "best-effort"}
	policyNameRe   = regexp.MustCompile(`^[a-z][a-z0-9_.-]{0,62}$`)
	selectorRe     = regexp.MustCompile(`^(\*|(node|group|region|role|organization):[A-Za-z0-9][A-Za-z0-9._:-]{0,199})$`)
)

// RouteIntentRequest creates a route intent. Source and Destination are
// selectors: "*" or kind:value with kind node, group, region, role or
// organization. Priority defaults to 100 (lower applies first).
type RouteIntentRequest struct {
	Name        string `json:"name"`
	Source      string `json:"source"`
	Destination string `json:"destination"`
	Action      string `json:"action"`
	Priority    *int   `json:"priority,omitempty"`
}

// QoSPolicyRequest creates a QoS policy. MaxBandwidthKbps and
// LatencyTargetMs are optional (0: none). Priority defaults to 100.
type QoSPolicyRequest struct {
	Name             string `json:"name"`
	TrafficClass     string `json:"traffic_class"`
	Priority         *int   `json:"priority,omitempty"`
	MaxBandwidthKbps int64  `json:"max_bandwidth_kbps,omitempty"`
	LatencyTargetMs  int    `json:"latency_target_ms,omitempty"`
}

func oneOf(v string, allowed []string) bool {
	for _, a := range allowed {
		if v == a {
			return true
		}
	}
	return false
}

func priorityOf(p *int) (int, error) {
	if p == nil {
		return 100, nil
	}
	if *p < 0 || *p > maxPriority {
		return 0, Errf(CodeInvalid, "priority must be between 0 and %d", maxPriority)
	}
	return *p, nil
}

func checkPolicyName(name string) error {
	if !policyNameRe.MatchString(name) {
		return Errf(CodeInvalid, "name must start with a lower-case letter and use only a-z, 0-9, '_', '.', '-' (at most 63 characters)")
	}
	return nil
}

func checkSelector(what, s string) error {
	if !selectorRe.MatchString(s) {
		return Errf(CodeInvalid, "%s must be \"*\" or kind:value with kind node, group, region, role or organization (got %q)", what, s)
	}
	return nil
}

// CreateRouteIntent adds a route intent to a cluster (fenced, audited); mesh
// nodes' snapshots are rebuilt.
func (a *Authority) CreateRouteIntent(ctx context.Context, actor Actor, cluster string, req RouteIntentRequest, idemKey string) (store.RouteIntent, error) {
	c, err := a.GetCluster(ctx, cluster)
	if err != nil {
		return store.RouteIntent{}, err
	}
	x := store.RouteIntent{ID: store.NewID(), ClusterID: c.ID, Name: strings.TrimSpace(req.Name), Source: strings.TrimSpace(req.Source),
		Destination: strings.TrimSpace(req.Destination), Action: strings.TrimSpace(req.Action), CreatedBy: actor.ID}
	if err := checkPolicyName(x.Name); err != nil {
		return x, err
	}
	if err := checkSelector("source", x.Source); err != nil {
		return x, err
	}
	if err := checkSelector("destination", x.Destination); err != nil {
		return x, err
	}
	if !oneOf(x.Action, intentActions) {
		return x, Errf(CodeInvalid, "action must be one of %s (got %q)", strings.Join(intentActions, ", "), x.Action)
	}
	if x.Priority, err = priorityOf(req.Priority); err != nil {
		return x, err
	}
	out, err := Fenced(ctx, a, Op{Action: "route_intent.create", Actor: actor, ClusterID: c.ID, TargetKind: "route_intent", TargetID: x.ID, IdempotencyKey: idemKey,
		Details: map[string]any{"name": x.Name, "source": x.Source, "destination": x.Destination, "action": x.Action, "priority": x.Priority}},
		func(tx pgx.Tx) (store.RouteIntent, error) {
			var n int
			if err := tx.QueryRow(ctx, `SELECT count(*) FROM cluster_route_intents WHERE cluster_id = $1`, c.ID).Scan(&n); err != nil {
				return store.RouteIntent{}, err
			}
			if n >= MaxRouteIntents {
				return store.RouteIntent{}, Errf(CodeInvalid, "a cluster has at most %d route intents", MaxRouteIntents)
			}
			return store.InsertRouteIntent(ctx, tx, x)
		})
	if err != nil {
		return out, err
	}
	a.afterChange(ctx, c.ID)
	return out, nil
}

// ListRouteIntents lists a cluster's route intents in priority order.
func (a *Authority) ListRouteIntents(ctx context.Context, cluster string, p store.Page) ([]store.RouteIntent, error) {
	c, err := a.GetCluster(ctx, cluster)
	if err != nil {
		return nil, err
	}
	out, err := store.ListRouteIntents(ctx, a.db.Pool, c.ID, p)
	return out, asErrorOrNil(err)
}

// DeleteRouteIntent removes a route intent (fenced, audited).
func (a *Authority) DeleteRouteIntent(ctx context.Context, actor Actor, cluster, id, idemKey string) (store.RouteIntent, error) {
	c, err := a.GetCluster(ctx, cluster)
	if err != nil {
		return store.RouteIntent{}, err
	}
	out, err := Fenced(ctx, a, Op{Action: "route_intent.delete", Actor: actor, ClusterID: c.ID, TargetKind: "route_intent", TargetID: id, IdempotencyKey: idemKey},
		func(tx pgx.Tx) (store.RouteIntent, error) { return store.DeleteRouteIntent(ctx, tx, c.ID, id) })
	if err != nil {
		return out, err
	}
	a.afterChange(ctx, c.ID)
	return out, nil
}

// CreateQoSPolicy adds a QoS policy to a cluster (fenced, audited); mesh
// nodes' snapshots are rebuilt.
func (a *Authority) CreateQoSPolicy(ctx context.Context, actor Actor, cluster string, req QoSPolicyRequest, idemKey string) (store.QoSPolicy, error) {
	c, err := a.GetCluster(ctx, cluster)
	if err != nil {
		return store.QoSPolicy{}, err
	}
	x := store.QoSPolicy{ID: store.NewID(), ClusterID: c.ID, Name: strings.TrimSpace(req.Name), TrafficClass: strings.TrimSpace(req.TrafficClass),
		MaxBandwidthKbps: req.MaxBandwidthKbps, LatencyTargetMs: req.LatencyTargetMs, CreatedBy: actor.ID}
	if err := checkPolicyName(x.Name); err != nil {
		return x, err
	}
	if !oneOf(x.TrafficClass, trafficClasses) {
		return x, Errf(CodeInvalid, "traffic_class must be one of %s (got %q)", strings.Join(trafficClasses, ", "), x.TrafficClass)
	}
	if x.Priority, err = priorityOf(req.Priority); err != nil {
		return x, err
	}
	if x.MaxBandwidthKbps < 0 || x.MaxBandwidthKbps > maxBandwidth {
		return x, Errf(CodeInvalid, "max_bandwidth_kbps must be between 0 (no cap) and %d", maxBandwidth)
	}
	if x.LatencyTargetMs < 0 || x.LatencyTargetMs > maxLatencyMs {
		return x, Errf(CodeInvalid, "latency_target_ms must be between 0 (no target) and %d", maxLatencyMs)
	}
	out, err := Fenced(ctx, a, Op{Action: "qos_policy.create", Actor: actor, ClusterID: c.ID, TargetKind: "qos_policy", TargetID: x.ID, IdempotencyKey: idemKey,
		Details: map[string]any{"name": x.Name, "traffic_class": x.TrafficClass, "priority": x.Priority, "max_bandwidth_kbps": x.MaxBandwidthKbps, "latency_target_ms": x.LatencyTargetMs}},
		func(tx pgx.Tx) (store.QoSPolicy, error) {
			var n int
			if err := tx.QueryRow(ctx, `SELECT count(*) FROM qos_policies WHERE cluster_id = $1`, c.ID).Scan(&n); err != nil {
				return store.QoSPolicy{}, err
			}
			if n >= MaxQoSPolicies {
				return store.QoSPolicy{}, Errf(CodeInvalid, "a cluster has at most %d QoS policies", MaxQoSPolicies)
			}
			return store.InsertQoSPolicy(ctx, tx, x)
		})
	if err != nil {
		return out, err
	}
	a.afterChange(ctx, c.ID)
	return out, nil
}

// ListQoSPolicies lists a cluster's QoS policies in priority order.
func (a *Authority) ListQoSPolicies(ctx context.Context, cluster string, p store.Page) ([]store.QoSPolicy, error) {
	c, err := a.GetCluster(ctx, cluster)
	if err != nil {
		return nil, err
	}
	out, err := store.ListQoSPolicies(ctx, a.db.Pool, c.ID, p)
	return out, asErrorOrNil(err)
}

// DeleteQoSPolicy removes a QoS policy (fenced, audited).
func (a *Authority) DeleteQoSPolicy(ctx context.Context, actor Actor, cluster, id, idemKey string) (store.QoSPolicy, error) {
	c, err := a.GetCluster(ctx, cluster)
	if err != nil {
		return store.QoSPolicy{}, err
	}
	out, err := Fenced(ctx, a, Op{Action: "qos_policy.delete", Actor: actor, ClusterID: c.ID, TargetKind: "qos_policy", TargetID: id, IdempotencyKey: idemKey},
		func(tx pgx.Tx) (store.QoSPolicy, error) { return store.DeleteQoSPolicy(ctx, tx, c.ID, id) })
	if err != nil {
		return out, err
	}
	a.afterChange(ctx, c.ID)
	return out, nil
}

// snapshotIntent and snapshotQoS are what a mesh node learns of each row
// (no authorship or timestamps).
type snapshotIntent struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Source      string `json:"source"`
	Destination string `json:"destination"`
	Action      string `json:"action"`
	Priority    int    `json:"priority"`
	// SourceNodes and DestinationNodes are set by resolveIntentNodes for a
	// region, role, group or organization selector: the members it names
	// (possibly none), so that a mesh node decides for nodes it does not
	// know.
	SourceNodes      *[]string `json:"source_nodes,omitempty"`
	DestinationNodes *[]string `json:"destination_nodes,omitempty"`
}

type snapshotQoS struct {
	ID               string `json:"id"`
	Name             string `json:"name"`
	TrafficClass     string `json:"traffic_class"`
	Priority         int    `json:"priority"`
	MaxBandwidthKbps int64  `json:"max_bandwidth_kbps,omitempty"`
	LatencyTargetMs  int    `json:"latency_target_ms,omitempty"`
}

// policyWithIntents returns the cluster's route and QoS policy documents for
// snapshots: the owner's documents with the cluster's route intents under
// "route_intents" and QoS policies under "qos_policies" (replacing any such
// key of the document). With no rows the documents are unchanged, so
// clusters without intents keep identical snapshots.
func (a *Authority) policyWithIntents(ctx context.Context, q store.Querier, clusterID string, route, qos json.RawMessage) (json.RawMessage, json.RawMessage, error) {
	intents, err := store.AllRouteIntents(ctx, q, clusterID)
	if err != nil {
		return nil, nil, err
	}
	qps, err := store.AllQoSPolicies(ctx, q, clusterID)
	if err != nil {
		return nil, nil, err
	}
	if len(intents) > 0 {
		list := make([]snapshotIntent, 0, len(intents))
		for _, x := range intents {
			list = append(list, snapshotIntent{ID: x.ID, Name: x.Name, Source: x.Source, Destination: x.Destination, Action: x.Action, Priority: x.Priority})
		}
		if route, err = mergeIntoPolicy(route, "route_intents", list); err != nil {
			return nil, nil, err
		}
	}
	if len(qps) > 0 {
		list := make([]snapshotQoS, 0, len(qps))
		for _, x := range qps {
			list = append(list, snapshotQoS{ID: x.ID, Name: x.Name, TrafficClass: x.TrafficClass, Priority: x.Priority, MaxBandwidthKbps: x.MaxBandwidthKbps, LatencyTargetMs: x.LatencyTargetMs})
		}
		if qos, err = mergeIntoPolicy(qos, "qos_policies", list); err != nil {
			return nil, nil, err
		}
	}
	return route, qos, nil
}

// mergeIntoPolicy sets key in a JSON object document (empty: {}).
func mergeIntoPolicy(doc json.RawMessage, key string, v any) (json.RawMessage, error) {
	m := map[string]json.RawMessage{}
	if d := strings.TrimSpace(string(doc)); d != "" && d != "null" {
		if err := json.Unmarshal(doc, &m); err != nil {
			return nil, err
		}
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	m[key] = b
	return json.Marshal(m)
}

// resolveIntentNodes resolves the attribute selectors (region, role, group,
// organization) of the route intents in route against the cluster state:
// each such side gets the sorted ids of the non-revoked members it names.
// A relay sees frames of nodes outside its bounded directory, so it cannot
// resolve these itself; "*" and node:ID need no resolution. A node is in an
// organization when an active role assignment or an enabled service of that
// organization is on it.
func resolveIntentNodes(route json.RawMessage, s *snapshot.State) (json.RawMessage, error) {
	m := map[string]json.RawMessage{}
	if d := strings.TrimSpace(string(route)); d == "" || d == "null" {
		return route, nil
	}
	if err := json.Unmarshal(route, &m); err != nil {
		return nil, err
	}
	raw, ok := m["route_intents"]
	if !ok {
		return route, nil
	}
	var list []snapshotIntent
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, err
	}
	parent := map[string]string{}
	for _, g := range s.Groups {
		parent[g.ID] = g.ParentID
	}
	type attrs struct {
		region string
		roles  map[string]bool
		groups map[string]bool
		orgs   map[string]bool
	}
	nodes := map[string]*attrs{}
	var ids []string
	for _, n := range s.Nodes {
		a := &attrs{region: n.Region, roles: map[string]bool{}, groups: map[string]bool{}, orgs: map[string]bool{}}
		revoked := false
		for _, ms := range n.Memberships {
			if ms.ClusterID != s.Cluster.ID {
				continue
			}
			revoked = ms.Status == domain.MembershipRevoked
			for g, i := ms.GroupID, 0; g != "" && i < 1000; g, i = parent[g], i+1 {
				a.groups[g] = true
			}
		}
		if !revoked {
			nodes[n.ID] = a
			ids = append(ids, n.ID)
		}
	}
	slices.Sort(ids)
	for _, r := range s.Assignments {
		if a := nodes[r.NodeID]; a != nil && !r.Disabled {
			a.roles[string(r.Role)] = true
			if r.OrganizationID != "" {
				a.orgs[r.OrganizationID] = true
			}
		}
	}
	for _, sv := range s.Services {
		if a := nodes[sv.NodeID]; a != nil && sv.Enabled && sv.OrganizationID != "" {
			a.orgs[sv.OrganizationID] = true
		}
	}
	resolve := func(sel string) *[]string {
		kind, val, _ := strings.Cut(sel, ":")
		var test func(*attrs) bool
		switch kind {
		case "region":
			test = func(a *attrs) bool { return a.region == val }
		case "role":
			test = func(a *attrs) bool { return a.roles[val] }
		case "group":
			test = func(a *attrs) bool { return a.groups[val] }
		case "organization":
			test = func(a *attrs) bool { return a.orgs[val] }
		default:
			return nil
		}
		out := []string{}
		for _, id := range ids {
			if test(nodes[id]) {
				out = append(out, id)
			}
		}
		return &out
	}
	for i := range list {
		list[i].SourceNodes, list[i].DestinationNodes = resolve(list[i].Source), resolve(list[i].Destination)
	}
	return mergeIntoPolicy(route, "route_intents", list)
}
