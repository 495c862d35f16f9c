package authority

// The PostgreSQL side of GET /v1/health: can this authority reach a server
// that accepts writes, and which one (docs/postgres-ha.md).

import (
	"context"
	"time"

	"github.com/rap-fabric/core/store"
)

// DatabaseHealth is what one authority knows about its PostgreSQL server.
type DatabaseHealth struct {
	// Reachable: a query answered within the probe's deadline.
	Reachable bool `json:"reachable"`
	// Writable: the server that answered is a primary (not in recovery,
	// transaction_read_only off).
	Writable bool `json:"writable"`
	// LatencyMS is the probe's round trip, including a new connection when
	// the pool had none.
	LatencyMS float64 `json:"latency_ms"`
	// Error is the machine code of the probe's failure (unavailable, …).
	Error Code `json:"error,omitempty"`
	// Primary is the server the pool reached last and the fence
	// re-affirmations after a change of server.
	Primary store.PrimaryStatus `json:"primary"`
}

// DatabaseHealth probes PostgreSQL within timeout (0 means 1 s).
func (a *Authority) DatabaseHealth(ctx context.Context, timeout time.Duration) DatabaseHealth {
	if timeout <= 0 {
		timeout = time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	var h DatabaseHealth
	err := a.db.Pool.QueryRow(ctx, `SELECT NOT pg_is_in_recovery() AND current_setting('transaction_read_only') = 'off'`).Scan(&h.Writable)
	h.LatencyMS = float64(time.Since(start).Microseconds()) / 1000
	if err != nil {
		h.Error = asError(store.MapError(err)).Code
	} else {
		h.Reachable = true
	}
	h.Primary = a.db.Primary()
	return h
}
