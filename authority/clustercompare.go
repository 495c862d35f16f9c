package authority

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/rap-fabric/core/store"
)

// ClusterComparison is one cluster in the side-by-side view (spec C8).
type ClusterComparison = store.ClusterComparison

// CompareClusters returns every cluster's health, membership and role
// counts, agent versions, capacity, partition state and snapshot lag, with
// the authority fence epoch this process holds.
func (a *Authority) CompareClusters(ctx context.Context) ([]ClusterComparison, error) {
	// One repeatable-read snapshot for all of its statements: read apart,
	// a heartbeat flush committing between them showed a member's agent
	// version without its facts.
	var cs []store.ClusterComparison
	err := a.db.ReadSnapshot(ctx, func(tx pgx.Tx) error {
		var err error
		cs, err = store.CompareClusters(ctx, tx)
		return err
	})
	if err != nil {
		return nil, asError(err)
	}
	return cs, nil
}
