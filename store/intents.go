package store

import (
	"context"
	"time"
)

// RouteIntent is one of a cluster's routing intents: traffic from Source to
// Destination (selectors: "*" or kind:value) is allowed, denied or preferred
// through a relay; lower Priority is applied first.
type RouteIntent struct {
	ID          string    `json:"id"`
	ClusterID   string    `json:"cluster_id"`
	Name        string    `json:"name"`
	Source      string    `json:"source"`
	Destination string    `json:"destination"`
	Action      string    `json:"action"`
	Priority    int       `json:"priority"`
	CreatedBy   string    `json:"created_by"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

const intentCols = `id::text, cluster_id::text, name, source_selector, destination_selector, action, priority, created_by, created_at, updated_at`

func scanIntent(row scanner) (RouteIntent, error) {
	var x RouteIntent
	err := row.Scan(&x.ID, &x.ClusterID, &x.Name, &x.Source, &x.Destination, &x.Action, &x.Priority, &x.CreatedBy, &x.CreatedAt, &x.UpdatedAt)
	return x, mapErr(err)
}

// InsertRouteIntent stores a new route intent (fenced).
func InsertRouteIntent(ctx context.Context, q Querier, x RouteIntent) (RouteIntent, error) {
	return scanIntent(q.QueryRow(ctx, `INSERT INTO cluster_route_intents
		(id, cluster_id, name, source_selector, destination_selector, action, priority, created_by)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING `+intentCols,
		x.ID, x.ClusterID, x.Name, x.Source, x.Destination, x.Action, x.Priority, x.CreatedBy))
}

// DeleteRouteIntent removes a cluster's route intent by id (fenced).
func DeleteRouteIntent(ctx context.Context, q Querier, clusterID, id string) (RouteIntent, error) {
	return scanIntent(q.QueryRow(ctx, `DELETE FROM cluster_route_intents WHERE cluster_id = rap_uuid($1) AND id = rap_uuid($2) RETURNING `+intentCols, clusterID, id))
}

// ListRouteIntents lists a cluster's route intents in priority order (a zero
// Page lists up to the default page size; use AllRouteIntents for all).
func ListRouteIntents(ctx context.Context, q Querier, clusterID string, p Page) ([]RouteIntent, error) {
	lim, off := p.norm()
	return collect(ctx, q, scanIntent, `SELECT `+intentCols+` FROM cluster_route_intents WHERE cluster_id = rap_uuid($1)
		ORDER BY priority, name, id LIMIT $2 OFFSET $3`, clusterID, lim, off)
}

// AllRouteIntents lists every route intent of a cluster in priority order
// (the snapshot builder's input).
func AllRouteIntents(ctx context.Context, q Querier, clusterID string) ([]RouteIntent, error) {
	return collect(ctx, q, scanIntent, `SELECT `+intentCols+` FROM cluster_route_intents WHERE cluster_id = rap_uuid($1)
		ORDER BY priority, name, id`, clusterID)
}

// QoSPolicy is one traffic class policy of a cluster. MaxBandwidthKbps and
// LatencyTargetMs are 0 when not set.
type QoSPolicy struct {
	ID               string    `json:"id"`
	ClusterID        string    `json:"cluster_id"`
	Name             string    `json:"name"`
	TrafficClass     string    `json:"traffic_class"`
	Priority         int       `json:"priority"`
	MaxBandwidthKbps int64     `json:"max_bandwidth_kbps"`
	LatencyTargetMs  int       `json:"latency_target_ms"`
	CreatedBy        string    `json:"created_by"`
	CreatedAt        time.Time `json:"created_at"`
	UpdatedAt        time.Time `json:"updated_at"`
}

const qosCols = `id::text, cluster_id::text, name, traffic_class, priority, max_bandwidth_kbps, latency_target_ms, created_by, created_at, updated_at`

func scanQoS(row scanner) (QoSPolicy, error) {
	var x QoSPolicy
	err := row.Scan(&x.ID, &x.ClusterID, &x.Name, &x.TrafficClass, &x.Priority, &x.MaxBandwidthKbps, &x.LatencyTargetMs, &x.CreatedBy, &x.CreatedAt, &x.UpdatedAt)
	return x, mapErr(err)
}

// InsertQoSPolicy stores a new QoS policy (fenced).
func InsertQoSPolicy(ctx context.Context, q Querier, x QoSPolicy) (QoSPolicy, error) {
	return scanQoS(q.QueryRow(ctx, `INSERT INTO qos_policies
		(id, cluster_id, name, traffic_class, priority, max_bandwidth_kbps, latency_target_ms, created_by)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING `+qosCols,
		x.ID, x.ClusterID, x.Name, x.TrafficClass, x.Priority, x.MaxBandwidthKbps, x.LatencyTargetMs, x.CreatedBy))
}

// DeleteQoSPolicy removes a cluster's QoS policy by id (fenced).
func DeleteQoSPolicy(ctx context.Context, q Querier, clusterID, id string) (QoSPolicy, error) {
	return scanQoS(q.QueryRow(ctx, `DELETE FROM qos_policies WHERE cluster_id = rap_uuid($1) AND id = rap_uuid($2) RETURNING `+qosCols, clusterID, id))
}

// ListQoSPolicies lists a cluster's QoS policies in priority order.
func ListQoSPolicies(ctx context.Context, q Querier, clusterID string, p Page) ([]QoSPolicy, error) {
	lim, off := p.norm()
	return collect(ctx, q, scanQoS, `SELECT `+qosCols+` FROM qos_policies WHERE cluster_id = rap_uuid($1)
		ORDER BY priority, name, id LIMIT $2 OFFSET $3`, clusterID, lim, off)
}

// AllQoSPolicies lists every QoS policy of a cluster in priority order (the
// snapshot builder's input).
func AllQoSPolicies(ctx context.Context, q Querier, clusterID string) ([]QoSPolicy, error) {
	return collect(ctx, q, scanQoS, `SELECT `+qosCols+` FROM qos_policies WHERE cluster_id = rap_uuid($1)
		ORDER BY priority, name, id`, clusterID)
}
