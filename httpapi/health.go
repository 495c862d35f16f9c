package httpapi

import (
	"net/http"
	"strings"
	"time"

	"github.com/rap-fabric/core/authority"
)

// Health is the body of GET /v1/health: whether this authority can serve,
// from its Raft view and a PostgreSQL probe.
type Health struct {
	// Status is ok, degraded (serving, with problems listed) or unavailable
	// (answered as a 503 unavailable error carrying this body in
	// details.health).
	Status string `json:"status"`
	// Problems name what is wrong, one phrase each.
	Problems       []string `json:"problems"`
	NodeID         string   `json:"node_id"`
	State          string   `json:"state"`
	LeaderID       string   `json:"leader_id"`
	Quorum         bool     `json:"quorum"`
	AgreedEpoch    uint64   `json:"agreed_epoch"`
	FenceEpochHeld uint64   `json:"fence_epoch_held"`
	// DatabaseServer and DatabaseWritable repeat Database for tables.
	DatabaseServer   string                   `json:"database_server"`
	DatabaseWritable bool                     `json:"database_writable"`
	Database         authority.DatabaseHealth `json:"database"`
}

// healthProbeTimeout bounds the PostgreSQL probe of GET /v1/health.
const healthProbeTimeout = time.Second

func (s *Server) getHealth(w http.ResponseWriter, r *http.Request) error {
	h := Health{Status: "ok", Problems: []string{}}
	if s.status != nil {
		st := s.status.Status()
		h.NodeID, h.State, h.LeaderID, h.Quorum, h.AgreedEpoch, h.FenceEpochHeld = st.NodeID, st.State, st.LeaderID, st.Quorum, st.AgreedEpoch, st.FenceEpochHeld
		switch {
		case st.LeaderID == "":
			h.Problems = append(h.Problems, "no authority leader known")
		case !st.Quorum:
			h.Problems = append(h.Problems, "no quorum")
		case st.State == "Leader" && st.FenceEpochHeld != st.AgreedEpoch:
			h.Problems = append(h.Problems, "leader not holding the PostgreSQL fence at its epoch yet")
		}
	}
	if s.a != nil {
		h.Database = s.a.DatabaseHealth(r.Context(), healthProbeTimeout)
		h.DatabaseServer, h.DatabaseWritable = h.Database.Primary.Server.Addr, h.Database.Writable
		switch {
		case !h.Database.Reachable:
			h.Problems = append(h.Problems, "PostgreSQL unreachable ("+string(h.Database.Error)+")")
		case !h.Database.Writable:
			h.Problems = append(h.Problems, "PostgreSQL server is read-only (a standby)")
		}
	}
	if len(h.Problems) == 0 {
		writeJSON(w, http.StatusOK, h)
		return nil
	}
	h.Status = "degraded"
	if !h.Database.Reachable || !h.Database.Writable || h.LeaderID == "" || !h.Quorum {
		h.Status = "unavailable"
		return &authority.Error{Code: authority.CodeUnavailable, Message: "this authority cannot serve writes: " + strings.Join(h.Problems, "; "),
			Details: map[string]any{"health": h}}
	}
	writeJSON(w, http.StatusOK, h)
	return nil
}
