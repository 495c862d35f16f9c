package authority

// Load reports (spec C8 capacity and load): an agent's optional Heartbeat.Load
// is checked and kept in the latest heartbeat's health document under
// "load", beside the update state, so it needs no column of its own and a
// heartbeat without it stays what it was.

import (
	"encoding/json"
	"math"

	"github.com/rap-fabric/core/agentapi"
)

const healthLoadKey = "load"

// Bounds of a plausible load report.
const (
	maxLoad1       = 1e6
	maxMemoryBytes = 1 << 50 // 1 PiB
	maxLinks       = 1 << 20
)

func validateLoad(l *agentapi.Load) error {
	if l == nil {
		return nil
	}
	switch {
	case math.IsNaN(l.Load1) || l.Load1 < 0 || l.Load1 > maxLoad1:
		return Errf(CodeInvalid, "load.load1 must be 0 to %g", float64(maxLoad1))
	case l.MemTotalBytes > maxMemoryBytes || l.MemUsedBytes > maxMemoryBytes:
		return Errf(CodeInvalid, "load memory figures must be at most %d bytes", uint64(maxMemoryBytes))
	case l.MemTotalBytes > 0 && l.MemUsedBytes > l.MemTotalBytes:
		return Errf(CodeInvalid, "load.mem_used_bytes exceeds load.mem_total_bytes")
	case l.Links < 0 || l.Links > maxLinks:
		return Errf(CodeInvalid, "load.links must be 0 to %d", maxLinks)
	}
	return nil
}

// withLoad returns the health document with the load report under "load"
// (health unchanged when there is none).
func withLoad(health json.RawMessage, l *agentapi.Load) (json.RawMessage, error) {
	if l == nil {
		return health, nil
	}
	raw, err := json.Marshal(l)
	if err != nil {
		return health, Errf(CodeInvalid, "load: %v", err)
	}
	return withHealthKey(health, healthLoadKey, raw)
}
