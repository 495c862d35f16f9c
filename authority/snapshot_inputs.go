package authority

// Owner-set documents that snapshots carry: telemetry flags and cluster
// policy (validated by checkDocument, fenced, audited, followed by a
// synchronous rebuild of the cluster).

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/rap-fabric/core/domain"
	"github.com/rap-fabric/core/snapshot"
	"github.com/rap-fabric/core/store"
)

// ---------------------------------------------------------------- documents

// MaxDocumentBytes bounds policy and config documents.
const MaxDocumentBytes = 64 << 10

// checkDocument validates a JSON object that will be embedded in snapshots
// with the builder's own rules (valid JSON, no credential-like keys), so that
// a bad document is refused at the API instead of breaking a cluster's
// rebuild. It returns the document ("{}" when empty).
func checkDocument(what string, doc json.RawMessage, wantArray bool) (json.RawMessage, error) {
	doc = bytes.TrimSpace(doc)
	if len(doc) == 0 || string(doc) == "null" {
		if wantArray {
			return json.RawMessage(`[]`), nil
		}
		return json.RawMessage(`{}`), nil
	}
	if len(doc) > MaxDocumentBytes {
		return nil, Errf(CodeTooLarge, "%s must be at most %d bytes", what, MaxDocumentBytes)
	}
	open := byte('{')
	if wantArray {
		open = '['
	}
	if doc[0] != open || !json.Valid(doc) {
		kind := "a JSON object"
		if wantArray {
			kind = "a JSON array"
		}
		return nil, Errf(CodeInvalid, "%s must be %s", what, kind)
	}
	probe := &snapshot.State{Cluster: snapshot.Cluster{ID: "probe"}, Nodes: []snapshot.Node{{ID: "probe",
		Memberships: []snapshot.NodeMembership{{ClusterID: "probe", Status: domain.MembershipActive}}}}}
	if wantArray {
		var entries []struct {
			OrganizationID string          `json:"organization_id"`
			Policy         json.RawMessage `json:"policy"`
		}
		dec := json.NewDecoder(bytes.NewReader(doc))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&entries); err != nil {
			return nil, Errf(CodeInvalid, "%s must be a list of {organization_id, policy}: %v", what, err)
		}
		for _, e := range entries {
			probe.EntryPolicies = append(probe.EntryPolicies, snapshot.EntryPolicy{OrganizationID: e.OrganizationID, Policy: e.Policy})
		}
	} else {
		probe.RoutePolicy = doc
	}
	if _, err := snapshot.NewIndex(probe, snapshot.DefaultConfig()); err != nil {
		msg := strings.TrimPrefix(err.Error(), snapshot.ErrInvalidState.Error()+": ")
		return nil, Errf(CodeInvalid, "%s: %s", what, strings.ReplaceAll(msg, "route policy", what))
	}
	return doc, nil
}

// ---------------------------------------------------------------- telemetry and cluster policy

// TelemetryFlagRequest sets a test telemetry flag. Scope "cluster" needs
// Cluster; "node" needs Cluster and Node; "organization" needs Organization
// (and optionally Cluster to limit it to one cluster).
type TelemetryFlagRequest struct {
	Scope        string `json:"scope"`
	Cluster      string `json:"cluster,omitempty"`
	Node         string `json:"node,omitempty"`
	Organization string `json:"organization,omitempty"`
	Name         string `json:"name"`
	Enabled      bool   `json:"enabled"`
}

// SetTelemetryFlag creates or changes a test telemetry flag (fenced, audited);
// the affected snapshots are rebuilt.
func (a *Authority) SetTelemetryFlag(ctx context.Context, actor Actor, req TelemetryFlagRequest, idemKey string) (store.TelemetryFlag, error) {
	f := store.TelemetryFlag{ID: store.NewID(), Scope: req.Scope, Name: strings.TrimSpace(req.Name), Enabled: req.Enabled, UpdatedBy: actor.ID}
	var clusterID string
	if req.Cluster != "" {
		c, err := a.GetCluster(ctx, req.Cluster)
		if err != nil {
			return store.TelemetryFlag{}, err
		}
		clusterID = c.ID
		f.ClusterID = &clusterID
	}
	switch req.Scope {
	case "cluster":
		if clusterID == "" || req.Node != "" || req.Organization != "" {
			return store.TelemetryFlag{}, Errf(CodeInvalid, "a cluster flag needs cluster and no node or organization")
		}
	case "node":
		if clusterID == "" || req.Node == "" || req.Organization != "" {
			return store.TelemetryFlag{}, Errf(CodeInvalid, "a node flag needs cluster and node")
		}
		if _, err := store.GetMembership(ctx, a.db.Pool, clusterID, req.Node); err != nil {
			return store.TelemetryFlag{}, Errf(CodeNotFound, "node %s is not a member of this cluster", req.Node)
		}
		n := req.Node
		f.NodeID = &n
	case "organization":
		if req.Organization == "" || req.Node != "" {
			return store.TelemetryFlag{}, Errf(CodeInvalid, "an organization flag needs organization (and optionally cluster)")
		}
		o, err := store.GetOrganization(ctx, a.db.Pool, req.Organization)
		if err != nil {
			return store.TelemetryFlag{}, Errf(CodeNotFound, "no organization %q", req.Organization)
		}
		f.OrganizationID = &o.ID
	default:
		return store.TelemetryFlag{}, Errf(CodeInvalid, "scope must be cluster, node or organization")
	}
	out, err := Fenced(ctx, a, Op{Action: "telemetry_flag.set", Actor: actor, ClusterID: clusterID, TargetKind: "telemetry_flag", TargetID: f.Name,
		IdempotencyKey: idemKey, Details: map[string]any{"scope": req.Scope, "node": req.Node, "organization": req.Organization, "enabled": req.Enabled}},
		func(tx pgx.Tx) (store.TelemetryFlag, error) { return store.UpsertTelemetryFlag(ctx, tx, f) })
	if err != nil {
		return out, err
	}
	a.afterFlag(ctx, out)
	return out, nil
}

func (a *Authority) afterFlag(ctx context.Context, f store.TelemetryFlag) {
	if f.ClusterID != nil {
		a.afterChange(ctx, *f.ClusterID)
		return
	}
	a.snapshots.kickLoop() // every cluster: the loop rebuilds them
}

// DeleteTelemetryFlag removes a flag (fenced, audited).
func (a *Authority) DeleteTelemetryFlag(ctx context.Context, actor Actor, id, idemKey string) (store.TelemetryFlag, error) {
	cur, err := store.GetTelemetryFlag(ctx, a.db.Pool, id)
	if err != nil {
		return store.TelemetryFlag{}, asError(err)
	}
	cid := ""
	if cur.ClusterID != nil {
		cid = *cur.ClusterID
	}
	out, err := Fenced(ctx, a, Op{Action: "telemetry_flag.delete", Actor: actor, ClusterID: cid, TargetKind: "telemetry_flag", TargetID: id, IdempotencyKey: idemKey},
		func(tx pgx.Tx) (store.TelemetryFlag, error) { return store.DeleteTelemetryFlag(ctx, tx, id) })
	if err != nil {
		return out, err
	}
	a.afterFlag(ctx, out)
	return out, nil
}

// ListTelemetryFlags lists the flags that apply in a cluster ("" for all).
func (a *Authority) ListTelemetryFlags(ctx context.Context, cluster string) ([]store.TelemetryFlag, error) {
	id := ""
	if cluster != "" {
		c, err := a.GetCluster(ctx, cluster)
		if err != nil {
			return nil, err
		}
		id = c.ID
	}
	out, err := store.ListTelemetryFlags(ctx, a.db.Pool, id)
	return out, asErrorOrNil(err)
}

// ClusterPolicyRequest replaces a cluster's route, QoS and entry policies.
type ClusterPolicyRequest struct {
	RoutePolicy   json.RawMessage `json:"route_policy,omitempty"`
	QoSPolicy     json.RawMessage `json:"qos_policy,omitempty"`
	EntryPolicies json.RawMessage `json:"entry_policies,omitempty"`
}

// SetClusterPolicy replaces a cluster's policies (fenced, audited); mesh and
// entry nodes' snapshots are rebuilt.
func (a *Authority) SetClusterPolicy(ctx context.Context, actor Actor, cluster string, req ClusterPolicyRequest, idemKey string) (store.ClusterPolicy, error) {
	c, err := a.GetCluster(ctx, cluster)
	if err != nil {
		return store.ClusterPolicy{}, err
	}
	p := store.ClusterPolicy{ClusterID: c.ID, UpdatedBy: actor.ID}
	if p.RoutePolicy, err = checkDocument("route_policy", req.RoutePolicy, false); err != nil {
		return p, err
	}
	if p.QoSPolicy, err = checkDocument("qos_policy", req.QoSPolicy, false); err != nil {
		return p, err
	}
	if p.EntryPolicies, err = checkDocument("entry_policies", req.EntryPolicies, true); err != nil {
		return p, err
	}
	out, err := Fenced(ctx, a, Op{Action: "cluster.policy.set", Actor: actor, ClusterID: c.ID, TargetKind: "cluster", TargetID: c.ID, IdempotencyKey: idemKey},
		func(tx pgx.Tx) (store.ClusterPolicy, error) { return store.SetClusterPolicy(ctx, tx, p) })
	if err != nil {
		return out, err
	}
	a.afterChange(ctx, c.ID)
	return out, nil
}

// GetClusterPolicy returns a cluster's policies.
func (a *Authority) GetClusterPolicy(ctx context.Context, cluster string) (store.ClusterPolicy, error) {
	c, err := a.GetCluster(ctx, cluster)
	if err != nil {
		return store.ClusterPolicy{}, err
	}
	p, err := store.GetClusterPolicy(ctx, a.db.Pool, c.ID)
	return p, asErrorOrNil(err)
}
