package httpapi

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/rap-fabric/core/authority"
)

// Health is the body of GET /v1/health and GET /readyz: whether this
// authority can serve, from its Raft view and a PostgreSQL probe.
type Health struct {
	// Status is ok, degraded (serving, with problems listed) or unavailable
	// (answered as a 503 unavailable error carrying this body in
	// details.health).
	Status string `json:"status"`
	// Problems name what is wrong, one phrase each.
	Problems []string `json:"problems"`
	// Reason is the machine code of an unavailable authority: postgres,
	// read_only, no_leader or no_quorum ("" otherwise).
	Reason string `json:"reason,omitempty"`
	NodeID string `json:"node_id"`
	State  string `json:"state"`
	// Role is "leader", "follower" or "candidate"; Standby is true on a
	// healthy follower (GET /v1/health answers it 429, 200 with ?standbyok).
	Role           string `json:"role"`
	Standby        bool   `json:"standby"`
	LeaderID       string `json:"leader_id"`
	LeaderAPIAddr  string `json:"leader_api_addr"`
	Quorum         bool   `json:"quorum"`
	AgreedEpoch    uint64 `json:"agreed_epoch"`
	FenceEpochHeld uint64 `json:"fence_epoch_held"`
	// DatabaseServer and DatabaseWritable repeat Database for tables.
	DatabaseServer   string                   `json:"database_server"`
	DatabaseWritable bool                     `json:"database_writable"`
	Database         authority.DatabaseHealth `json:"database"`
}

// healthProbeTimeout bounds the PostgreSQL probe of GET /v1/health.
const healthProbeTimeout = time.Second

func (s *Server) healthRoutes(r *mux.Router) {
	public := func(name, method, path string, h handlerFunc) { r.Handle(path, s.wrap(name, h)).Methods(method) }
	// GET /v1/health is registered in routes (server.go).
	public("livez", http.MethodGet, "/livez", s.getLivez)
	public("readyz", http.MethodGet, "/readyz", s.getReadyz)
}

// healthReport builds the health document (no status code decided yet).
func (s *Server) healthReport(ctx context.Context) Health {
	h := Health{Status: "ok", Problems: []string{}}
	if s.status != nil {
		st := s.status.Status()
		h.NodeID, h.State, h.LeaderID, h.LeaderAPIAddr, h.Quorum, h.AgreedEpoch, h.FenceEpochHeld = st.NodeID, st.State, st.LeaderID, st.LeaderAPIAddr, st.Quorum, st.AgreedEpoch, st.FenceEpochHeld
		h.Role = strings.ToLower(st.State)
		switch {
		case st.LeaderID == "":
			h.Problems = append(h.Problems, "no authority leader known")
			h.Reason = "no_leader"
		case !st.Quorum:
			h.Problems = append(h.Problems, "no quorum")
			h.Reason = "no_quorum"
		case st.State == "Leader" && st.FenceEpochHeld != st.AgreedEpoch:
			h.Problems = append(h.Problems, "leader not holding the PostgreSQL fence at its epoch yet")
		}
	}
	if s.a != nil {
		h.Database = s.a.DatabaseHealth(ctx, healthProbeTimeout)
		h.DatabaseServer, h.DatabaseWritable = h.Database.Primary.Server.Addr, h.Database.Writable
		switch {
		case !h.Database.Reachable:
			h.Problems = append(h.Problems, "PostgreSQL unreachable ("+string(h.Database.Error)+")")
			h.Reason = "postgres"
		case !h.Database.Writable:
			h.Problems = append(h.Problems, "PostgreSQL server is read-only (a standby)")
			h.Reason = "read_only"
		}
	}
	if len(h.Problems) > 0 {
		h.Status = "degraded"
	}
	if !h.Database.Reachable || !h.Database.Writable || h.LeaderID == "" || !h.Quorum {
		h.Status = "unavailable"
	}
	h.Standby = h.Status != "unavailable" && h.Role != "leader"
	return h
}

// getHealth answers as load balancers expect of a Raft group (Vault's
// sys/health): 200 on the leader, 429 on a healthy follower (200 with
// ?standbyok, as rapctl authority health and the drills ask), 503
// unavailable without a leader, a quorum or a writable PostgreSQL (the error
// carries the document in details.health). A leader still claiming its fence
// is "degraded" and answers 200.
func (s *Server) getHealth(w http.ResponseWriter, r *http.Request) error {
	h := s.healthReport(r.Context())
	switch {
	case h.Status == "unavailable":
		return &authority.Error{Code: authority.CodeUnavailable, Message: "this authority cannot serve writes: " + strings.Join(h.Problems, "; "),
			Details: map[string]any{"health": h}}
	case h.Standby && !standbyOK(r):
		writeJSON(w, http.StatusTooManyRequests, h)
	default:
		writeJSON(w, http.StatusOK, h)
	}
	return nil
}

// standbyOK reports whether the query has standbyok (without a value, or any
// value but "false" / "0").
func standbyOK(r *http.Request) bool {
	q := r.URL.Query()
	if !q.Has("standbyok") {
		return false
	}
	v := q.Get("standbyok")
	return v != "false" && v != "0"
}

// getLivez answers 200 while the process serves HTTP: a failing liveness probe
// means "restart me", which no dependency outage justifies.
func (s *Server) getLivez(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	return nil
}

// getReadyz answers 200 when this authority can serve requests: PostgreSQL
// answers (reads and signed snapshots need nothing more; fenced writes are
// refused with no_quorum or redirected with not_leader on their own); 503
// unavailable otherwise (details.health).
func (s *Server) getReadyz(w http.ResponseWriter, r *http.Request) error {
	h := s.healthReport(r.Context())
	if s.a != nil && !h.Database.Reachable {
		return &authority.Error{Code: authority.CodeUnavailable, Message: "PostgreSQL unreachable: reads cannot be served",
			Details: map[string]any{"health": h}}
	}
	writeJSON(w, http.StatusOK, h)
	return nil
}
