package authority

import (
	"context"

	"github.com/rap-fabric/core/store"
)

// Counts are the console overview's totals, counted by PostgreSQL.
type Counts struct {
	Nodes        int64 `json:"nodes"`
	PendingJoins int64 `json:"pending_joins"`
}

// Count returns the totals of one cluster (id or slug) or, for "", of all.
func (a *Authority) Count(ctx context.Context, cluster string) (Counts, error) {
	id := ""
	if cluster != "" {
		c, err := a.GetCluster(ctx, cluster)
		if err != nil {
			return Counts{}, err
		}
		id = c.ID
	}
	var out Counts
	var err error
	if out.Nodes, err = store.CountNodes(ctx, a.db.Pool, id); err != nil {
		return Counts{}, asError(err)
	}
	if out.PendingJoins, err = store.CountJoinRequests(ctx, a.db.Pool, id, "pending"); err != nil {
		return Counts{}, asError(err)
	}
	return out, nil
}
