package store

import (
	"context"
	"encoding/json"
	"time"
)

// RoleAssignment authorizes a node to run a role in a cluster, optionally only
// for one organization.
type RoleAssignment struct {
	ID             string          `json:"id"`
	ClusterID      string          `json:"cluster_id"`
	NodeID         string          `json:"node_id"`
	Role           string          `json:"role"`
	OrganizationID *string         `json:"organization_id,omitempty"`
	Status         string          `json:"status"`
	Policy         json.RawMessage `json:"policy"`
	AssignedBy     string          `json:"assigned_by"`
	AssignedAt     time.Time       `json:"assigned_at"`
	UpdatedAt      time.Time       `json:"updated_at"`
}

const roleCols = `id::text, cluster_id::text, node_id::text, role, organization_id::text, status, policy, assigned_by, assigned_at, updated_at`

func scanRole(row scanner) (RoleAssignment, error) {
	var r RoleAssignment
	err := row.Scan(&r.ID, &r.ClusterID, &r.NodeID, &r.Role, &r.OrganizationID, &r.Status, &r.Policy, &r.AssignedBy, &r.AssignedAt, &r.UpdatedAt)
	return r, mapErr(err)
}

// InsertRoleAssignment creates an active assignment (fenced). The database
// refuses it unless the node has an active membership in the same cluster.
func InsertRoleAssignment(ctx context.Context, q Querier, r RoleAssignment) (RoleAssignment, error) {
	if len(r.Policy) == 0 {
		r.Policy = json.RawMessage(`{}`)
	}
	return scanRole(q.QueryRow(ctx, `INSERT INTO node_role_assignments (id, cluster_id, node_id, role, organization_id, policy, assigned_by)
		VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING `+roleCols, r.ID, r.ClusterID, r.NodeID, r.Role, r.OrganizationID, r.Policy, r.AssignedBy))
}

// GetRoleAssignment finds an assignment by id.
func GetRoleAssignment(ctx context.Context, q Querier, id string) (RoleAssignment, error) {
	return scanRole(q.QueryRow(ctx, `SELECT `+roleCols+` FROM node_role_assignments WHERE id = rap_uuid($1)`, id))
}

// ListRoleAssignments lists assignments in a cluster, optionally of one node.
func ListRoleAssignments(ctx context.Context, q Querier, clusterID, nodeID string, p Page) ([]RoleAssignment, error) {
	l, o := p.norm()
	return collect(ctx, q, scanRole, `SELECT `+roleCols+` FROM node_role_assignments
		WHERE ($1 = '' OR cluster_id = rap_uuid($1)) AND ($2 = '' OR node_id = rap_uuid($2)) ORDER BY assigned_at, id LIMIT $3 OFFSET $4`, clusterID, nodeID, l, o)
}

// SetRoleStatus enables or disables an assignment (fenced).
func SetRoleStatus(ctx context.Context, q Querier, id, status string) (RoleAssignment, error) {
	return scanRole(q.QueryRow(ctx, `UPDATE node_role_assignments SET status = $2, updated_at = now() WHERE id = $1 RETURNING `+roleCols, id, status))
}

// DeleteRoleAssignment removes an assignment (fenced).
func DeleteRoleAssignment(ctx context.Context, q Querier, id string) error {
	tag, err := q.Exec(ctx, `DELETE FROM node_role_assignments WHERE id = $1`, id)
	if err != nil {
		return mapErr(err)
	}
	if tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return nil
}

// DisableNodeRoles disables every active assignment of a node in a cluster
// (used when a membership is disabled or revoked; fenced).
func DisableNodeRoles(ctx context.Context, q Querier, clusterID, nodeID string) (int64, error) {
	tag, err := q.Exec(ctx, `UPDATE node_role_assignments SET status = 'disabled', updated_at = now() WHERE cluster_id = $1 AND node_id = $2 AND status = 'active'`, clusterID, nodeID)
	if err != nil {
		return 0, mapErr(err)
	}
	return tag.RowsAffected(), nil
}
