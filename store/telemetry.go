package store

import (
	"context"
	"time"
)

// TelemetryFlag is a test telemetry switch on a cluster, a node in a cluster or
// an organization (ClusterID nil: in every cluster).
type TelemetryFlag struct {
	ID             string    `json:"id"`
	Scope          string    `json:"scope"`
	ClusterID      *string   `json:"cluster_id,omitempty"`
	NodeID         *string   `json:"node_id,omitempty"`
	OrganizationID *string   `json:"organization_id,omitempty"`
	Name           string    `json:"name"`
	Enabled        bool      `json:"enabled"`
	UpdatedBy      string    `json:"updated_by"`
	UpdatedAt      time.Time `json:"updated_at"`
}

const flagCols = `id::text, scope, cluster_id::text, node_id::text, organization_id::text, name, enabled, updated_by, updated_at`

func scanFlag(row scanner) (TelemetryFlag, error) {
	var f TelemetryFlag
	err := row.Scan(&f.ID, &f.Scope, &f.ClusterID, &f.NodeID, &f.OrganizationID, &f.Name, &f.Enabled, &f.UpdatedBy, &f.UpdatedAt)
	return f, mapErr(err)
}

// UpsertTelemetryFlag sets a flag, creating it when new (fenced).
func UpsertTelemetryFlag(ctx context.Context, q Querier, f TelemetryFlag) (TelemetryFlag, error) {
	return scanFlag(q.QueryRow(ctx, `INSERT INTO telemetry_flags (id, scope, cluster_id, node_id, organization_id, name, enabled, updated_by)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (scope, coalesce(cluster_id, '00000000-0000-0000-0000-000000000000'::uuid),
		    coalesce(node_id, '00000000-0000-0000-0000-000000000000'::uuid),
		    coalesce(organization_id, '00000000-0000-0000-0000-000000000000'::uuid), name)
		DO UPDATE SET enabled = EXCLUDED.enabled, updated_by = EXCLUDED.updated_by, updated_at = now()
		RETURNING `+flagCols, f.ID, f.Scope, f.ClusterID, f.NodeID, f.OrganizationID, f.Name, f.Enabled, f.UpdatedBy))
}

// DeleteTelemetryFlag removes a flag (fenced).
func DeleteTelemetryFlag(ctx context.Context, q Querier, id string) (TelemetryFlag, error) {
	return scanFlag(q.QueryRow(ctx, `DELETE FROM telemetry_flags WHERE id = rap_uuid($1) RETURNING `+flagCols, id))
}

// GetTelemetryFlag finds a flag by id.
func GetTelemetryFlag(ctx context.Context, q Querier, id string) (TelemetryFlag, error) {
	return scanFlag(q.QueryRow(ctx, `SELECT `+flagCols+` FROM telemetry_flags WHERE id = rap_uuid($1)`, id))
}

// ListTelemetryFlags lists the flags that apply in a cluster (its cluster and
// node flags, and organization flags for it or for every cluster); clusterID
// "" lists every flag.
func ListTelemetryFlags(ctx context.Context, q Querier, clusterID string) ([]TelemetryFlag, error) {
	return collect(ctx, q, scanFlag, `SELECT `+flagCols+` FROM telemetry_flags
		WHERE $1 = '' OR cluster_id = rap_uuid($1) OR (scope = 'organization' AND cluster_id IS NULL)
		ORDER BY scope, name, id`, clusterID)
}
