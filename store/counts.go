package store

import "context"

// CountNodes counts the nodes of a cluster (memberships of any status), or
// every node when clusterID is "", in SQL: never capped by a page size.
func CountNodes(ctx context.Context, q Querier, clusterID string) (int64, error) {
	var n int64
	var err error
	if clusterID == "" {
		err = q.QueryRow(ctx, `SELECT count(*) FROM nodes`).Scan(&n)
	} else {
		err = q.QueryRow(ctx, `SELECT count(*) FROM cluster_memberships WHERE cluster_id = $1::uuid`, clusterID).Scan(&n)
	}
	return n, mapErr(err)
}

// CountJoinRequests counts join requests by cluster ("" for all) and status
// ("" for any), in SQL.
func CountJoinRequests(ctx context.Context, q Querier, clusterID, status string) (int64, error) {
	var n int64
	err := q.QueryRow(ctx, `SELECT count(*) FROM node_join_requests WHERE ($1 = '' OR cluster_id = rap_uuid($1)) AND ($2 = '' OR status = $2)`, clusterID, status).Scan(&n)
	return n, mapErr(err)
}
