package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/gorilla/mux"
)

// HealthSource reports what a load balancer needs to know about this
// authority (GET /v1/health, /livez, /readyz).
type HealthSource interface {
	// Health checks PostgreSQL and the Raft view within ctx (the daemon
	// bounds each check by its own short timeout). Safe for concurrent use.
	Health(ctx context.Context) Health
}

// Health is the body of GET /v1/health and GET /readyz.
type Health struct {
	NodeID string `json:"node_id"`
	// Role is "leader", "follower" or "candidate" (Raft's view).
	Role string `json:"role"`
	// LeaderID and LeaderAPIAddr name the leader this authority knows ("" when none).
	LeaderID      string `json:"leader_id"`
	LeaderAPIAddr string `json:"leader_api_addr"`
	// Quorum: a leader confirmed a quorum now; a follower heard from its
	// leader recently.
	Quorum bool `json:"quorum"`
	// Postgres: the source of truth answered a ping.
	Postgres bool `json:"postgres"`
	// FenceHeld: this authority holds the PostgreSQL fence (leaders only).
	FenceHeld bool `json:"fence_held"`
	// Status is "leader", "standby" or "unavailable"; Reason says why an
	// unavailable authority is unavailable ("postgres", "no_quorum",
	// "fence_not_held").
	Status string `json:"status"`
	Reason string `json:"reason,omitempty"`
}

// healthTimeout bounds one health check (database ping and quorum round).
const healthTimeout = time.Second

func (s *Server) healthRoutes(r *mux.Router) {
	public := func(name, method, path string, h handlerFunc) { r.Handle(path, s.wrap(name, h)).Methods(method) }
	public("health", http.MethodGet, "/v1/health", s.getHealth)
	public("livez", http.MethodGet, "/livez", s.getLivez)
	public("readyz", http.MethodGet, "/readyz", s.getReadyz)
}

// getHealth answers as load balancers expect of a Raft group (Vault's
// sys/health, Consul's leader checks): 200 on the leader that holds a quorum
// and the fence, 429 on a healthy follower (200 with ?standbyok), 503 without
// a quorum or PostgreSQL.
func (s *Server) getHealth(w http.ResponseWriter, r *http.Request) error {
	h := s.healthReport(r.Context())
	code := http.StatusServiceUnavailable
	switch {
	case !h.Postgres:
		h.Status, h.Reason = "unavailable", "postgres"
	case !h.Quorum:
		h.Status, h.Reason = "unavailable", "no_quorum"
	case h.Role == "leader" && !h.FenceHeld:
		h.Status, h.Reason = "unavailable", "fence_not_held"
	case h.Role == "leader":
		h.Status, code = "leader", http.StatusOK
	default:
		h.Status, code = "standby", http.StatusTooManyRequests
		if standbyOK(r) {
			code = http.StatusOK
		}
	}
	writeJSON(w, code, h)
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
// otherwise.
func (s *Server) getReadyz(w http.ResponseWriter, r *http.Request) error {
	h := s.healthReport(r.Context())
	code := http.StatusOK
	h.Status = "ready"
	if !h.Postgres {
		h.Status, h.Reason, code = "unavailable", "postgres", http.StatusServiceUnavailable
	}
	writeJSON(w, code, h)
	return nil
}

func (s *Server) healthReport(ctx context.Context) Health {
	if s.health == nil {
		return Health{Role: "unknown"}
	}
	ctx, cancel := context.WithTimeout(ctx, healthTimeout)
	defer cancel()
	return s.health.Health(ctx)
}
