package authority

import (
	"context"
	"time"

	"github.com/rap-fabric/core/store"
)

// maxHeartbeatBuckets bounds one health-over-time query.
const maxHeartbeatBuckets = 1440

// HeartbeatBuckets aggregates a node's heartbeat history in a cluster into n
// buckets of width starting at from (the console's health-over-time strip).
func (h *Heartbeats) HeartbeatBuckets(ctx context.Context, cluster, nodeID string, from time.Time, width time.Duration, n int) ([]store.HeartbeatBucket, error) {
	if n < 1 || n > maxHeartbeatBuckets || width < time.Second {
		return nil, Errf(CodeInvalid, "between 1 and %d buckets of at least 1s", maxHeartbeatBuckets)
	}
	c, err := h.a.GetCluster(ctx, cluster)
	if err != nil {
		return nil, err
	}
	out, err := store.HeartbeatBuckets(ctx, h.a.db.Pool, c.ID, nodeID, from, width, n)
	return out, asErrorOrNil(err)
}
