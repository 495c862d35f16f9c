package authority

// The heartbeat append log after ingest: the leader deletes rows older than
// Retention in batches of RetentionBatch (Prune), and History pages through
// what is kept.

import (
	"context"

	"github.com/rap-fabric/core/store"
)

func (h *Heartbeats) pruneIfLeader(ctx context.Context) {
	if !h.a.raft.IsLeader() {
		return
	}
	if _, err := h.Prune(ctx); err != nil {
		h.a.log.Warn("heartbeat retention failed", "error", err)
	}
}

// Prune deletes append-log rows older than Retention, RetentionBatch rows per
// statement, and returns how many it deleted.
func (h *Heartbeats) Prune(ctx context.Context) (int64, error) {
	cut := h.cfg.Clock().Add(-h.cfg.Retention)
	var total int64
	for {
		n, err := store.DeleteHeartbeatsBefore(ctx, h.a.db.Pool, cut, h.cfg.RetentionBatch)
		total += n
		if err != nil || n < int64(h.cfg.RetentionBatch) {
			return total, err
		}
	}
}

// History pages through a node's heartbeat log, newest first.
func (h *Heartbeats) History(ctx context.Context, cluster, nodeID string, p store.Page) ([]store.HeartbeatRow, error) {
	clusterID := ""
	if cluster != "" {
		c, err := h.a.GetCluster(ctx, cluster)
		if err != nil {
			return nil, err
		}
		clusterID = c.ID
	}
	rows, err := store.ListHeartbeats(ctx, h.a.db.Pool, clusterID, nodeID, p)
	return rows, asErrorOrNil(err)
}
