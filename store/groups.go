package store

import (
	"context"
	"time"
)

// Group is a cluster-scoped inventory folder of node memberships. Groups are not
// identities and grant nothing.
type Group struct {
	ID        string    `json:"id"`
	ClusterID string    `json:"cluster_id"`
	ParentID  *string   `json:"parent_id,omitempty"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
}

const groupCols = `id::text, cluster_id::text, parent_id::text, name, created_at`

func scanGroup(row scanner) (Group, error) {
	var g Group
	err := row.Scan(&g.ID, &g.ClusterID, &g.ParentID, &g.Name, &g.CreatedAt)
	return g, mapErr(err)
}

// InsertGroup creates a group, under ParentID when set (same cluster; fenced).
func InsertGroup(ctx context.Context, q Querier, g Group) (Group, error) {
	return scanGroup(q.QueryRow(ctx, `INSERT INTO node_groups (id, cluster_id, parent_id, name) VALUES ($1, $2, $3, $4) RETURNING `+groupCols, g.ID, g.ClusterID, g.ParentID, g.Name))
}

// MoveGroup places a group under a new parent (nil: root). The database refuses
// cycles and parents of another cluster (fenced).
func MoveGroup(ctx context.Context, q Querier, id string, parentID *string) (Group, error) {
	return scanGroup(q.QueryRow(ctx, `UPDATE node_groups SET parent_id = $2 WHERE id = $1 RETURNING `+groupCols, id, parentID))
}

// RenameGroup renames a group (fenced).
func RenameGroup(ctx context.Context, q Querier, id, name string) (Group, error) {
	return scanGroup(q.QueryRow(ctx, `UPDATE node_groups SET name = $2 WHERE id = $1 RETURNING `+groupCols, id, name))
}

// DeleteGroup deletes an empty group: one with no child groups and no members
// (ErrConstraint otherwise; fenced).
func DeleteGroup(ctx context.Context, q Querier, id string) error {
	tag, err := q.Exec(ctx, `DELETE FROM node_groups WHERE id = $1`, id)
	if err != nil {
		return mapErr(err)
	}
	if tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return nil
}

// ListGroups lists a cluster's groups.
func ListGroups(ctx context.Context, q Querier, clusterID string) ([]Group, error) {
	return collect(ctx, q, scanGroup, `SELECT `+groupCols+` FROM node_groups WHERE cluster_id = rap_uuid($1) ORDER BY name, id`, clusterID)
}
