package authority

import (
	"context"

	"github.com/rap-fabric/core/store"
)

// ClusterComparison is one cluster in the side-by-side view (spec C8).
type ClusterComparison = store.ClusterComparison

// CompareClusters returns every cluster's health, membership and role
// counts, agent versions, capacity, partition state and snapshot lag, with
// the authority fence epoch this process holds.
func (a *Authority) CompareClusters(ctx context.Context) ([]ClusterComparison, error) {
	cs, err := store.CompareClusters(ctx, a.db.Pool)
	if err != nil {
		return nil, asError(err)
	}
	return cs, nil
}
