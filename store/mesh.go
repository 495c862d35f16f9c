package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// MeshLink is one row of the link inventory: a node's view of one direct
// link, as its agent last reported it.
type MeshLink struct {
	ClusterID       string     `json:"cluster_id"`
	NodeID          string     `json:"node_id"`
	PeerNodeID      string     `json:"peer_node_id"`
	State           string     `json:"state"`
	Set             string     `json:"set"`
	RTTMs           float64    `json:"rtt_ms"`
	Loss            float64    `json:"loss"`
	LastHandshakeAt *time.Time `json:"last_handshake_at,omitempty"`
	ReportedAt      time.Time  `json:"reported_at"`
	AuthorityID     string     `json:"authority_id,omitempty"`
}

// MeshRoute is one destination a node reported as reachable.
type MeshRoute struct {
	ClusterID   string    `json:"cluster_id"`
	NodeID      string    `json:"node_id"`
	Destination string    `json:"destination"`
	NextHop     string    `json:"next_hop"`
	Cost        int       `json:"cost"`
	Hops        int       `json:"hops"`
	ReportedAt  time.Time `json:"reported_at"`
}

// ReplaceMeshReport replaces a node's links and routes with a new report in
// one transaction.
func ReplaceMeshReport(ctx context.Context, db *DB, clusterID, nodeID, authorityID string, links []MeshLink, routes []MeshRoute) error {
	return db.Tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM mesh_links WHERE cluster_id = $1 AND node_id = $2`, clusterID, nodeID); err != nil {
			return mapErr(err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM mesh_routes WHERE cluster_id = $1 AND node_id = $2`, clusterID, nodeID); err != nil {
			return mapErr(err)
		}
		b := &pgx.Batch{}
		for _, l := range links {
			b.Queue(`INSERT INTO mesh_links (cluster_id, node_id, peer_node_id, state, peer_set, rtt_ms, loss, last_handshake_at, authority_id)
			         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING`,
				clusterID, nodeID, l.PeerNodeID, l.State, l.Set, l.RTTMs, l.Loss, l.LastHandshakeAt, authorityID)
		}
		for _, r := range routes {
			b.Queue(`INSERT INTO mesh_routes (cluster_id, node_id, destination, next_hop, cost, hops) VALUES ($1, $2, $3, $4, $5, $6)
			         ON CONFLICT DO NOTHING`, clusterID, nodeID, r.Destination, r.NextHop, r.Cost, r.Hops)
		}
		if b.Len() == 0 {
			return nil
		}
		return mapErr(tx.SendBatch(ctx, b).Close())
	})
}

// ListMeshLinks lists a cluster's link inventory (nodeID "" for every node),
// ordered by node then peer.
func ListMeshLinks(ctx context.Context, q Querier, clusterID, nodeID string, p Page) ([]MeshLink, error) {
	lim, off := p.norm()
	return collect(ctx, q, func(r scanner) (MeshLink, error) {
		var l MeshLink
		err := r.Scan(&l.ClusterID, &l.NodeID, &l.PeerNodeID, &l.State, &l.Set, &l.RTTMs, &l.Loss, &l.LastHandshakeAt, &l.ReportedAt, &l.AuthorityID)
		return l, mapErr(err)
	}, `SELECT cluster_id::text, node_id::text, peer_node_id, state, peer_set, rtt_ms, loss, last_handshake_at, reported_at, authority_id
	      FROM mesh_links WHERE cluster_id = $1 AND ($2 = '' OR node_id = rap_uuid($2))
	     ORDER BY node_id, peer_node_id LIMIT $3 OFFSET $4`, clusterID, nodeID, lim, off)
}

// ListMeshRoutes lists the reported route health of a cluster (nodeID ""
// for every node).
func ListMeshRoutes(ctx context.Context, q Querier, clusterID, nodeID string, p Page) ([]MeshRoute, error) {
	lim, off := p.norm()
	return collect(ctx, q, func(r scanner) (MeshRoute, error) {
		var x MeshRoute
		err := r.Scan(&x.ClusterID, &x.NodeID, &x.Destination, &x.NextHop, &x.Cost, &x.Hops, &x.ReportedAt)
		return x, mapErr(err)
	}, `SELECT cluster_id::text, node_id::text, destination, next_hop, cost, hops, reported_at
	      FROM mesh_routes WHERE cluster_id = $1 AND ($2 = '' OR node_id = rap_uuid($2))
	     ORDER BY node_id, destination LIMIT $3 OFFSET $4`, clusterID, nodeID, lim, off)
}
