package store

import (
	"context"
	"fmt"
)

// SeedGaps reports whether nodeID seeds clusterID — it also holds an active
// membership in another cluster that it joined earlier (spec: split/seed
// workflows) — and, if so, which conditions for removing it from clusterID
// do not hold yet: the cluster's own healthy node set, current snapshots,
// coverage of the roles the seed holds, and admin ingress.
func SeedGaps(ctx context.Context, q Querier, clusterID, nodeID string) (seed bool, unmet []string, err error) {
	err = q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM cluster_memberships o JOIN cluster_memberships m ON m.node_id = o.node_id
		WHERE m.cluster_id = rap_uuid($1) AND m.node_id = rap_uuid($2) AND o.cluster_id <> m.cluster_id
		  AND o.membership_status = 'active' AND o.joined_at < m.joined_at)`, clusterID, nodeID).Scan(&seed)
	if err != nil || !seed {
		return seed, nil, mapErr(err)
	}
	var healthy, stale int
	err = q.QueryRow(ctx, `SELECT
		count(*) FILTER (WHERE hb.derived_health = 'healthy'),
		count(*) FILTER (WHERE h.version IS NULL OR coalesce(hb.applied_version, 0) < h.version)
		FROM cluster_memberships m
		LEFT JOIN node_heartbeat_latest hb ON hb.cluster_id = m.cluster_id AND hb.node_id = m.node_id
		LEFT JOIN node_snapshot_heads h ON h.cluster_id = m.cluster_id AND h.node_id = m.node_id
		WHERE m.cluster_id = rap_uuid($1) AND m.node_id::text <> $2 AND m.membership_status = 'active'`, clusterID, nodeID).Scan(&healthy, &stale)
	if err != nil {
		return true, nil, mapErr(err)
	}
	if healthy == 0 {
		unmet = append(unmet, "healthy_node_set: no other member of the cluster has a healthy heartbeat")
	}
	if stale > 0 {
		unmet = append(unmet, fmt.Sprintf("current_snapshots: %d other members have not applied their newest snapshot", stale))
	}
	rows, err := q.Query(ctx, `SELECT DISTINCT r.role FROM node_role_assignments r
		WHERE r.cluster_id = rap_uuid($1) AND r.node_id = rap_uuid($2) AND r.status = 'active'
		  AND NOT EXISTS (SELECT 1 FROM node_role_assignments o JOIN cluster_memberships m ON m.cluster_id = o.cluster_id AND m.node_id = o.node_id
		                   WHERE o.cluster_id = r.cluster_id AND o.node_id <> r.node_id AND o.role = r.role AND o.status = 'active' AND m.membership_status = 'active')
		ORDER BY 1`, clusterID, nodeID)
	if err != nil {
		return true, nil, mapErr(err)
	}
	for rows.Next() {
		var role string
		if err := rows.Scan(&role); err != nil {
			rows.Close()
			return true, nil, mapErr(err)
		}
		unmet = append(unmet, "role_coverage: only the seed node holds "+role)
	}
	rows.Close()
	var ingress bool
	err = q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM node_role_assignments o JOIN cluster_memberships m ON m.cluster_id = o.cluster_id AND m.node_id = o.node_id
		WHERE o.cluster_id = rap_uuid($1) AND o.node_id::text <> $2 AND o.role = 'admin-ingress' AND o.status = 'active' AND m.membership_status = 'active')`,
		clusterID, nodeID).Scan(&ingress)
	if err != nil {
		return true, nil, mapErr(err)
	}
	if !ingress {
		unmet = append(unmet, "admin_ingress: no other member serves admin-ingress")
	}
	return true, unmet, nil
}
