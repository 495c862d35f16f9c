package store

import (
	"context"
	"encoding/json"
	"time"
)

// LastPingRow is a latest heartbeat's last `mesh ping` (stored under key in
// node_heartbeat_latest.health; the authority owns its shape).
type LastPingRow struct {
	ClusterID  string
	NodeID     string
	ReceivedAt time.Time
	Ping       json.RawMessage
}

// ListLastPings returns the pings kept under key in a cluster's latest
// heartbeats (nodeID "" for every member), newest ping first.
func ListLastPings(ctx context.Context, q Querier, clusterID, nodeID, key string, p Page) ([]LastPingRow, error) {
	l, o := p.norm()
	return collect(ctx, q, func(r scanner) (LastPingRow, error) {
		var x LastPingRow
		err := r.Scan(&x.ClusterID, &x.NodeID, &x.ReceivedAt, &x.Ping)
		return x, mapErr(err)
	}, `SELECT cluster_id::text, node_id::text, received_at, health->$3
		FROM node_heartbeat_latest
		WHERE cluster_id = rap_uuid($1) AND ($2 = '' OR node_id = rap_uuid($2)) AND jsonb_typeof(health->$3) = 'object'
		ORDER BY (health->$3->>'at')::timestamptz DESC, node_id LIMIT $4 OFFSET $5`, clusterID, nodeID, key, l, o)
}

// AuthorityTerm is one leadership epoch claimed on the fence
// (cluster_authority_terms): the epoch, the authority that claimed it and
// when; EndedAt is the next epoch's claim (nil for the current one).
type AuthorityTerm struct {
	Epoch     uint64
	LeaderID  string
	ClaimedAt time.Time
	EndedAt   *time.Time
}

// ListAuthorityTerms returns the fence's leadership epochs, newest first.
func ListAuthorityTerms(ctx context.Context, q Querier, p Page) ([]AuthorityTerm, error) {
	l, o := p.norm()
	return collect(ctx, q, func(r scanner) (AuthorityTerm, error) {
		var x AuthorityTerm
		var e int64
		err := r.Scan(&e, &x.LeaderID, &x.ClaimedAt, &x.EndedAt)
		x.Epoch = uint64(e)
		return x, mapErr(err)
	}, `SELECT epoch, leader_id, claimed_at, lead(claimed_at) OVER (ORDER BY epoch)
		FROM cluster_authority_terms ORDER BY epoch DESC LIMIT $1 OFFSET $2`, l, o)
}
