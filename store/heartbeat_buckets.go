package store

import (
	"context"
	"time"
)

// HeartbeatBucket is one time bucket of a node's heartbeat log: how many
// heartbeats arrived in it and how many of those reported degraded mode.
type HeartbeatBucket struct {
	// Index counts buckets from the window's start (0 = oldest).
	Index    int `json:"index"`
	Count    int `json:"count"`
	Degraded int `json:"degraded"`
	// Nodes counts the distinct nodes that sent a heartbeat in the bucket.
	Nodes int `json:"nodes"`
}

// HeartbeatBuckets aggregates a node's heartbeat log in one cluster over n
// buckets of width starting at from, in SQL; buckets without heartbeats are
// absent from the result. nodeID "" aggregates every node of the cluster.
func HeartbeatBuckets(ctx context.Context, q Querier, clusterID, nodeID string, from time.Time, width time.Duration, n int) ([]HeartbeatBucket, error) {
	to := from.Add(time.Duration(n) * width)
	node := `node_id = $2::uuid`
	if nodeID == "" {
		node = `$2 = ''`
	}
	return collect(ctx, q, func(r scanner) (HeartbeatBucket, error) {
		var b HeartbeatBucket
		err := r.Scan(&b.Index, &b.Count, &b.Degraded, &b.Nodes)
		return b, mapErr(err)
	}, `SELECT floor(extract(epoch FROM (received_at - $3)) / $5)::int AS b, count(*)::int,
	           count(*) FILTER (WHERE state = 'degraded')::int, count(DISTINCT node_id)::int
	      FROM node_heartbeats
	     WHERE cluster_id = $1::uuid AND `+node+` AND received_at >= $3 AND received_at < $4
	     GROUP BY b ORDER BY b`, clusterID, nodeID, from, to, width.Seconds())
}
