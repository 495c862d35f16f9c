package store

import "context"

// ActiveRoles returns the distinct roles of a node's active assignments in a
// cluster (nodeID "") or, with nodeID "", the roles some node with an active
// membership holds active in the cluster (role coverage).
func ActiveRoles(ctx context.Context, q Querier, clusterID, nodeID string) ([]string, error) {
	rows, err := q.Query(ctx, `SELECT DISTINCT r.role FROM node_role_assignments r
		JOIN cluster_memberships m ON m.cluster_id = r.cluster_id AND m.node_id = r.node_id
		WHERE r.cluster_id = rap_uuid($1) AND ($2 = '' OR r.node_id = rap_uuid($2)) AND r.status = 'active' AND m.membership_status = 'active'
		ORDER BY 1`, clusterID, nodeID)
	if err != nil {
		return nil, mapErr(err)
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var r string
		if err := rows.Scan(&r); err != nil {
			return nil, mapErr(err)
		}
		out = append(out, r)
	}
	return out, mapErr(rows.Err())
}
