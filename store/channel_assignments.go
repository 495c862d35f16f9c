package store

import (
	"context"
	"time"
)

// ChannelAssignment is the release channel a cluster, a node group or a
// node follows for one product (release_channel_assignments, fenced).
type ChannelAssignment struct {
	ClusterID string    `json:"cluster_id"`
	ScopeKind string    `json:"scope_kind"` // cluster | group | node
	ScopeID   string    `json:"scope_id"`   // the cluster, group or node id
	Product   string    `json:"product"`
	Channel   string    `json:"channel"`
	SetBy     string    `json:"set_by"`
	UpdatedAt time.Time `json:"updated_at"`
}

const channelAssignmentCols = `cluster_id::text, scope_kind, scope_id, product, channel, set_by, updated_at`

func scanChannelAssignment(row scanner) (ChannelAssignment, error) {
	var x ChannelAssignment
	err := row.Scan(&x.ClusterID, &x.ScopeKind, &x.ScopeID, &x.Product, &x.Channel, &x.SetBy, &x.UpdatedAt)
	return x, mapErr(err)
}

// markClusterDirty queues a rebuild of the cluster's snapshots in the
// caller's transaction (release_channel_assignments has no trigger of its
// own: the writes here mark it).
const markClusterDirty = `SELECT rap_mark_cluster_dirty($1::uuid, 'release_channel_assignments')`

// UpsertChannelAssignment sets the channel a scope follows for a product
// (fenced) and marks the cluster's snapshots dirty. The caller validated
// the scope.
func UpsertChannelAssignment(ctx context.Context, q Querier, x ChannelAssignment) (ChannelAssignment, error) {
	out, err := scanChannelAssignment(q.QueryRow(ctx, `INSERT INTO release_channel_assignments (cluster_id, scope_kind, scope_id, product, channel, set_by)
		VALUES ($1::uuid, $2, $3, $4, $5, $6)
		ON CONFLICT (cluster_id, scope_kind, scope_id, product) DO UPDATE SET channel = EXCLUDED.channel, set_by = EXCLUDED.set_by, updated_at = now()
		RETURNING `+channelAssignmentCols, x.ClusterID, x.ScopeKind, x.ScopeID, x.Product, x.Channel, x.SetBy))
	if err != nil {
		return ChannelAssignment{}, err
	}
	if _, err := q.Exec(ctx, markClusterDirty, x.ClusterID); err != nil {
		return ChannelAssignment{}, mapErr(err)
	}
	return out, nil
}

// DeleteChannelAssignment removes a scope's assignment (fenced) and returns
// it; ErrNotFound when there is none.
func DeleteChannelAssignment(ctx context.Context, q Querier, clusterID, kind, scopeID, product string) (ChannelAssignment, error) {
	out, err := scanChannelAssignment(q.QueryRow(ctx, `DELETE FROM release_channel_assignments
		WHERE cluster_id = rap_uuid($1) AND scope_kind = $2 AND scope_id = $3 AND product = $4 RETURNING `+channelAssignmentCols, clusterID, kind, scopeID, product))
	if err != nil {
		return ChannelAssignment{}, err
	}
	if _, err := q.Exec(ctx, markClusterDirty, clusterID); err != nil {
		return ChannelAssignment{}, mapErr(err)
	}
	return out, nil
}

// ListChannelAssignments lists a cluster's channel assignments.
func ListChannelAssignments(ctx context.Context, q Querier, clusterID string) ([]ChannelAssignment, error) {
	return collect(ctx, q, scanChannelAssignment, `SELECT `+channelAssignmentCols+` FROM release_channel_assignments
		WHERE cluster_id = rap_uuid($1) ORDER BY product, scope_kind, scope_id LIMIT 10000`, clusterID)
}

// MemberGroups returns the group of every active member of a cluster that
// is in one (node id → group id).
func MemberGroups(ctx context.Context, q Querier, clusterID string) (map[string]string, error) {
	type pair struct{ node, group string }
	rows, err := collect(ctx, q, func(row scanner) (pair, error) {
		var p pair
		return p, mapErr(row.Scan(&p.node, &p.group))
	}, `SELECT node_id::text, group_id::text FROM cluster_memberships
		WHERE cluster_id = rap_uuid($1) AND membership_status = 'active' AND group_id IS NOT NULL`, clusterID)
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(rows))
	for _, p := range rows {
		out[p.node] = p.group
	}
	return out, nil
}

// GroupParents returns the parent of every node group of a cluster that has
// one (group id → parent id).
func GroupParents(ctx context.Context, q Querier, clusterID string) (map[string]string, error) {
	type pair struct{ id, parent string }
	rows, err := collect(ctx, q, func(row scanner) (pair, error) {
		var p pair
		return p, mapErr(row.Scan(&p.id, &p.parent))
	}, `SELECT id::text, parent_id::text FROM node_groups WHERE cluster_id = rap_uuid($1) AND parent_id IS NOT NULL`, clusterID)
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(rows))
	for _, p := range rows {
		out[p.id] = p.parent
	}
	return out, nil
}

// NodeGroupInCluster reports whether a node group exists in a cluster.
func NodeGroupInCluster(ctx context.Context, q Querier, clusterID, groupID string) (bool, error) {
	var ok bool
	err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM node_groups WHERE cluster_id = rap_uuid($1) AND id = rap_uuid($2))`, clusterID, groupID).Scan(&ok)
	return ok, mapErr(err)
}

// MemberInCluster reports whether a node is a member of a cluster (any
// status but revoked).
func MemberInCluster(ctx context.Context, q Querier, clusterID, nodeID string) (bool, error) {
	var ok bool
	err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM cluster_memberships WHERE cluster_id = rap_uuid($1) AND node_id = rap_uuid($2) AND membership_status <> 'revoked')`,
		clusterID, nodeID).Scan(&ok)
	return ok, mapErr(err)
}
