package store

import (
	"context"
	"encoding/json"
	"time"
)

// ServiceInstance is the desired (and last reported) state of one service
// workload on one node in one cluster.
type ServiceInstance struct {
	ID                string          `json:"id"`
	ClusterID         string          `json:"cluster_id"`
	NodeID            string          `json:"node_id"`
	ServiceType       string          `json:"service_type"`
	ServiceInstanceID string          `json:"service_instance_id"`
	OrganizationID    *string         `json:"organization_id,omitempty"`
	DesiredState      string          `json:"desired_state"`
	Config            json.RawMessage `json:"config"`
	ReportedState     string          `json:"reported_state"`
	// Health, Version, Restarts, ReportedSince (when the instance entered
	// ReportedState), Reason (why it is not healthy), LastExit and
	// ReportedAt (the heartbeat that carried the report) are what the node's
	// supervisor reported; zero until it reported.
	Health        string          `json:"health"`
	Version       string          `json:"version"`
	Restarts      int             `json:"restarts"`
	ReportedSince *time.Time      `json:"reported_since,omitempty"`
	Reason        string          `json:"reason,omitempty"`
	LastExit      json.RawMessage `json:"last_exit,omitempty"`
	ReportedAt    *time.Time      `json:"reported_at,omitempty"`
	UpdatedAt     time.Time       `json:"updated_at"`
}

const serviceCols = `id::text, cluster_id::text, node_id::text, service_type, service_instance_id, organization_id::text, desired_state, config, reported_state,
	health, version, restarts, reported_since, reason, last_exit, last_heartbeat_at, updated_at`

func scanService(row scanner) (ServiceInstance, error) {
	var s ServiceInstance
	err := row.Scan(&s.ID, &s.ClusterID, &s.NodeID, &s.ServiceType, &s.ServiceInstanceID, &s.OrganizationID, &s.DesiredState, &s.Config, &s.ReportedState,
		&s.Health, &s.Version, &s.Restarts, &s.ReportedSince, &s.Reason, &s.LastExit, &s.ReportedAt, &s.UpdatedAt)
	if string(s.LastExit) == "null" {
		s.LastExit = nil
	}
	return s, mapErr(err)
}

// UpsertService creates or updates the desired state of a service instance,
// keyed by (cluster, node, type, instance id) (fenced).
func UpsertService(ctx context.Context, q Querier, s ServiceInstance) (ServiceInstance, error) {
	if len(s.Config) == 0 {
		s.Config = json.RawMessage(`{}`)
	}
	return scanService(q.QueryRow(ctx, `INSERT INTO node_service_instances (id, cluster_id, node_id, service_type, service_instance_id, organization_id, desired_state, config)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (cluster_id, node_id, service_type, service_instance_id) DO UPDATE
		   SET organization_id = EXCLUDED.organization_id, desired_state = EXCLUDED.desired_state, config = EXCLUDED.config, updated_at = now()
		RETURNING `+serviceCols, s.ID, s.ClusterID, s.NodeID, s.ServiceType, s.ServiceInstanceID, s.OrganizationID, s.DesiredState, s.Config))
}

// SetServicesDesired sets the desired state of every instance of a service
// type in a cluster (nodeID "" for all nodes) and returns the changed rows
// (fenced).
func SetServicesDesired(ctx context.Context, q Querier, clusterID, nodeID, serviceType, desired string) ([]ServiceInstance, error) {
	return collect(ctx, q, scanService, `UPDATE node_service_instances SET desired_state = $4, updated_at = now()
		WHERE cluster_id = $1 AND ($2 = '' OR node_id = rap_uuid($2)) AND service_type = $3 AND desired_state <> $4 RETURNING `+serviceCols,
		clusterID, nodeID, serviceType, desired)
}

// ListServices lists a cluster's service instances, optionally of one node
// and/or one type.
func ListServices(ctx context.Context, q Querier, clusterID, nodeID, serviceType string, p Page) ([]ServiceInstance, error) {
	l, o := p.norm()
	return collect(ctx, q, scanService, `SELECT `+serviceCols+` FROM node_service_instances
		WHERE cluster_id = rap_uuid($1) AND ($2 = '' OR node_id = rap_uuid($2)) AND ($3 = '' OR service_type = $3)
		ORDER BY node_id, service_type, service_instance_id LIMIT $4 OFFSET $5`, clusterID, nodeID, serviceType, l, o)
}

// AllServices lists every service instance of a cluster (for snapshot builds).
func AllServices(ctx context.Context, q Querier, clusterID string) ([]ServiceInstance, error) {
	return collect(ctx, q, scanService, `SELECT `+serviceCols+` FROM node_service_instances WHERE cluster_id = rap_uuid($1)`, clusterID)
}
