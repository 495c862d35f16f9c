package authority

import (
	"context"
	"math"

	"github.com/rap-fabric/core/agentapi"
	"github.com/rap-fabric/core/store"
)

// Mesh inventory: agents report their links and reachable destinations
// (POST /v1/agent/links, any authority, not fenced: like heartbeats it is an
// observation, not a decision); owners read them per cluster. Route intents
// and QoS policies are rows of cluster_route_intents and qos_policies
// (intents.go, fenced and audited), merged into the cluster policy's
// route_policy and qos_policy documents that mesh roles receive in their
// snapshots.

// Bounds of one link report.
const (
	maxReportLinks  = 512
	maxReportRoutes = 4096
)

// LinkReportInput is the body of POST /v1/agent/links (the agentapi
// contract).
type LinkReportInput = agentapi.LinkReport

// LinkReportAck answers a link report (the agentapi contract).
type LinkReportAck = agentapi.LinkReportAck

func okID(s string) bool { return s != "" && len(s) <= 255 }

// ReportLinks replaces the node's link inventory and route health.
func (a *Authority) ReportLinks(ctx context.Context, node NodePrincipal, in LinkReportInput) (LinkReportAck, error) {
	if len(in.Links) > maxReportLinks || len(in.Routes) > maxReportRoutes {
		return LinkReportAck{}, Errf(CodeInvalid, "a report carries at most %d links and %d routes", maxReportLinks, maxReportRoutes)
	}
	links := make([]store.MeshLink, 0, len(in.Links))
	for _, l := range in.Links {
		if !okID(l.PeerNodeID) || len(l.State) == 0 || len(l.State) > 32 || len(l.Set) > 32 ||
			math.IsNaN(l.RTTMs) || l.RTTMs < 0 || math.IsNaN(l.Loss) || l.Loss < 0 || l.Loss > 1 {
			return LinkReportAck{}, Errf(CodeInvalid, "malformed link entry for peer %q", l.PeerNodeID)
		}
		links = append(links, store.MeshLink{PeerNodeID: l.PeerNodeID, State: l.State, Set: l.Set, RTTMs: l.RTTMs, Loss: l.Loss, LastHandshakeAt: l.LastHandshakeAt})
	}
	routes := make([]store.MeshRoute, 0, len(in.Routes))
	for _, r := range in.Routes {
		if !okID(r.Destination) || !okID(r.NextHop) || r.Cost < 0 || r.Hops < 0 {
			return LinkReportAck{}, Errf(CodeInvalid, "malformed route entry for %q", r.Destination)
		}
		routes = append(routes, store.MeshRoute{Destination: r.Destination, NextHop: r.NextHop, Cost: r.Cost, Hops: r.Hops})
	}
	if err := store.ReplaceMeshReport(ctx, a.db, node.ClusterID, node.NodeID, a.cfg.NodeID, links, routes); err != nil {
		return LinkReportAck{}, asError(err)
	}
	return LinkReportAck{Links: len(links), Routes: len(routes)}, nil
}

// ListMeshLinks returns a cluster's link inventory (nodeID "" for all).
func (a *Authority) ListMeshLinks(ctx context.Context, cluster, nodeID string, p store.Page) ([]store.MeshLink, error) {
	c, err := a.GetCluster(ctx, cluster)
	if err != nil {
		return nil, err
	}
	out, err := store.ListMeshLinks(ctx, a.db.Pool, c.ID, nodeID, p)
	if err != nil {
		return nil, asError(err)
	}
	return out, nil
}

// ListMeshRoutes returns a cluster's reported route health (nodeID "" for
// all).
func (a *Authority) ListMeshRoutes(ctx context.Context, cluster, nodeID string, p store.Page) ([]store.MeshRoute, error) {
	c, err := a.GetCluster(ctx, cluster)
	if err != nil {
		return nil, err
	}
	out, err := store.ListMeshRoutes(ctx, a.db.Pool, c.ID, nodeID, p)
	if err != nil {
		return nil, asError(err)
	}
	return out, nil
}
