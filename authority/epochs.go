package authority

import (
	"context"
	"time"

	"github.com/rap-fabric/core/store"
)

// Epoch is one leadership epoch of the authority group as the fence in
// PostgreSQL recorded it (cluster_authority_terms): the epoch, the authority
// that claimed it, when it started, when the next claim ended it (nil for
// the current epoch) and how long it lasted (until now for the current one).
type Epoch struct {
	Epoch           uint64     `json:"epoch"`
	LeaderID        string     `json:"leader_id"`
	StartedAt       time.Time  `json:"started_at"`
	EndedAt         *time.Time `json:"ended_at,omitempty"`
	DurationSeconds float64    `json:"duration_seconds"`
	Current         bool       `json:"current"`
}

// Epochs returns the leadership epoch history, newest first.
func (a *Authority) Epochs(ctx context.Context, p store.Page) ([]Epoch, error) {
	ts, err := store.ListAuthorityTerms(ctx, a.db.Pool, p)
	if err != nil {
		return nil, asError(err)
	}
	now := a.Now()
	out := make([]Epoch, 0, len(ts))
	for _, t := range ts {
		e := Epoch{Epoch: t.Epoch, LeaderID: t.LeaderID, StartedAt: t.ClaimedAt.UTC(), Current: t.EndedAt == nil}
		end := now
		if t.EndedAt != nil {
			u := t.EndedAt.UTC()
			e.EndedAt, end = &u, u
		}
		if d := end.Sub(e.StartedAt); d > 0 {
			e.DurationSeconds = d.Round(time.Millisecond).Seconds()
		}
		out = append(out, e)
	}
	return out, nil
}
