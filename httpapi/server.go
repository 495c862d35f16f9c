// Package httpapi is the JSON API of an authority: owner routes (bearer owner
// token; sessions and MFA slot into ownerAuth), agent routes (join with a token,
// everything else with a node certificate over mTLS), status and metrics.
//
// Conventions: versioned paths under /v1/; one error shape
// {"error": {"code", "message", "details"}} with statuses mapped once in
// errors.go; bodies at most 1 MiB and 32 levels deep; every list paginated
// (?limit, ?offset → {"items", "next_offset"}); fenced writes accept an
// Idempotency-Key header.
//
// Leadership: a follower does not forward fenced writes. It answers 421 with
// code not_leader and details.leader_api_addr; rapctl and the agent retry there.
// Forwarding would make a follower vouch for an agent's mTLS identity to the
// leader; redirecting keeps authentication end to end.
//
// The package owns HTTP only: it calls the authority service and never touches
// the database.
package httpapi

import (
	"context"
	"crypto/ed25519"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/gorilla/mux"
	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/rap-fabric/core/agentapi"
	"github.com/rap-fabric/core/authority"
	"github.com/rap-fabric/core/store"
)

// StatusSource reports the authority's Raft view for /v1/authority/status.
type StatusSource interface {
	Status() AuthorityStatus
}

// Members changes the authority group's membership (leader only).
type Members interface {
	// IssueMemberCert issues a Raft member certificate for a joining
	// authority's key and returns it with the platform CA certificate.
	IssueMemberCert(ctx context.Context, actor authority.Actor, id string, memberKey ed25519.PublicKey) (cert, ca []byte, err error)
	// AddMember adds an authority (holding a member certificate) as a voter.
	AddMember(ctx context.Context, actor authority.Actor, id, raftAddr, apiAddr string) error
	RemoveMember(ctx context.Context, actor authority.Actor, id string) error
}

// AuthorityStatus is the body of GET /v1/authority/status.
type AuthorityStatus struct {
	NodeID string `json:"node_id"`
	// Version is the version of this authority's binary (stamped at build).
	Version       string `json:"version"`
	State         string `json:"state"`
	LeaderID      string `json:"leader_id"`
	LeaderAPIAddr string `json:"leader_api_addr"`
	// AgreedEpoch is the authority epoch the Raft log agreed on (the FSM's).
	AgreedEpoch uint64 `json:"agreed_epoch"`
	// ClaimedEpoch is the epoch this node's own leadership claimed (0 when
	// it does not lead).
	ClaimedEpoch uint64 `json:"claimed_epoch"`
	// FenceEpoch is the epoch of the PostgreSQL fence row (authority_fence);
	// FenceEpochHeld the fence epoch this process holds for fenced writes (0
	// when none).
	FenceEpoch     uint64 `json:"fence_epoch"`
	FenceEpochHeld uint64 `json:"fence_epoch_held"`
	// Epoch is AgreedEpoch under its old name.
	//
	// Deprecated: read agreed_epoch.
	Epoch        uint64         `json:"epoch"`
	Term         uint64         `json:"term"`
	CommitIndex  uint64         `json:"commit_index"`
	AppliedIndex uint64         `json:"applied_index"`
	LastContact  *time.Time     `json:"last_contact"`
	Quorum       bool           `json:"quorum"`
	Members      []MemberStatus `json:"members"`
	// Database is the PostgreSQL server this authority's pool reaches (the
	// primary, with a multi-host URL) and the fence re-affirmations after a
	// change of server (docs/postgres-ha.md).
	Database *store.PrimaryStatus `json:"database,omitempty"`
}

// MemberStatus is one authority in the status.
type MemberStatus struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	APIAddr  string `json:"api_addr"`
	Suffrage string `json:"suffrage"`
	Healthy  bool   `json:"healthy"`
	// Version is the version the member reported in its last answer to this
	// authority's health probe (its own for itself; empty when it never
	// answered). Informational: the probe does not authenticate the member.
	Version string `json:"version"`
}

// Options configure a Server.
type Options struct {
	Authority *authority.Authority
	Status    StatusSource
	Members   Members
	Logger    hclog.Logger
	// Registry receives the API's metrics; nil means a new registry.
	Registry *prometheus.Registry
	// MetricsToken, when set, opens /metrics on the API listener to
	// "Authorization: Bearer <token>" (a Prometheus scrape token); when
	// empty /metrics is refused there (scrape the loopback metrics listener).
	MetricsToken string
}

// Server is the HTTP API of one authority.
type Server struct {
	a       *authority.Authority
	status  StatusSource
	members Members
	vpn     *authority.VPN
	log     hclog.Logger
	reg     *prometheus.Registry
	router  *mux.Router
	// scrapeHash is the SHA-256 of Options.MetricsToken (nil: none).
	scrapeHash []byte

	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	panics   prometheus.Counter // recovered handler panics (guard.go)

	// releases and rollouts are the version storage and rollout services
	// (from the authority).
	releases *authority.Releases
	rollouts *authority.Rollouts

	// plainHeartbeatDecode turns the lean heartbeat decoder off
	// (SetLeanHeartbeatDecode; heartbeat_decode.go).
	plainHeartbeatDecode atomic.Bool
}

// New builds the API router.
func New(o Options) *Server {
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
	if o.Registry == nil {
		o.Registry = prometheus.NewRegistry()
	}
	s := &Server{a: o.Authority, status: o.Status, members: o.Members, log: o.Logger.Named("api"), reg: o.Registry}
	s.scrapeHash = scrapeTokenHash(o.MetricsToken)
	if o.Authority != nil {
		s.vpn = o.Authority.VPN()
		s.releases, s.rollouts = o.Authority.Releases(), o.Authority.Rollouts()
	}

	s.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rap_api_requests_total", Help: "API requests by route and status code."}, []string{"route", "code"}) // code: the numeric HTTP status
	s.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "rap_api_request_duration_seconds", Help: "API request latency by route.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}, []string{"route"})
	o.Registry.MustRegister(s.requests, s.latency)
	s.panics = newPanicCounter(o.Registry)
	s.routes()
	return s
}

// Handler returns the root handler.
func (s *Server) Handler() http.Handler { return s.guard(withHotRoutes(s.router)) }

// Registry returns the metrics registry (so other components can add metrics).
func (s *Server) Registry() *prometheus.Registry { return s.reg }

type handlerFunc func(w http.ResponseWriter, r *http.Request) error

func (s *Server) routes() {
	r := mux.NewRouter()
	r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		s.writeError(w, req, authority.Errf(codeNotFoundRoute, "no such route"))
	})
	r.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		s.writeError(w, req, authority.Errf(codeMethodNotAllowed, "method %s not allowed here", req.Method))
	})
	// /metrics on the API listener needs the scrape token (metrics.go); the
	// loopback metrics listener serves MetricsHandler without one.
	r.Handle("/metrics", s.wrap("metrics", s.scrapeAuth(promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{})))).Methods(http.MethodGet)
	public := func(name, method, path string, h handlerFunc) { r.Handle(path, s.wrap(name, h)).Methods(method) }
	owner := func(name, method, path string, h func(w http.ResponseWriter, r *http.Request, actor authority.Actor) error) {
		r.Handle(path, s.wrap(name, s.ownerAuth(h))).Methods(method)
	}
	agent := func(name, method, path string, h func(w http.ResponseWriter, r *http.Request, node authority.NodePrincipal) error) {
		r.Handle(path, s.wrap(name, s.nodeAuth(h))).Methods(method)
	}

	public("status", http.MethodGet, "/v1/authority/status", s.getStatus)
	public("health", http.MethodGet, "/v1/health", s.getHealth)
	owner("members.certificate", http.MethodPost, "/v1/authority/members/certificate", s.memberCertificate)
	owner("members.add", http.MethodPost, "/v1/authority/members", s.addMember)
	owner("members.remove", http.MethodDelete, "/v1/authority/members/{id}", s.removeMember)
	owner("authority.join_tokens.create", http.MethodPost, "/v1/authority/join-tokens", s.createAuthorityJoinToken)
	owner("authority.join_tokens.list", http.MethodGet, "/v1/authority/join-tokens", s.listAuthorityJoinTokens)
	owner("authority.join_tokens.revoke", http.MethodPost, "/v1/authority/join-tokens/{id}/revoke", s.revokeAuthorityJoinToken)

	owner("clusters.create", http.MethodPost, "/v1/clusters", s.createCluster)
	owner("clusters.list", http.MethodGet, "/v1/clusters", s.listClusters)
	owner("clusters.get", http.MethodGet, "/v1/clusters/{cluster}", s.getCluster)
	owner("clusters.disable", http.MethodPost, "/v1/clusters/{cluster}/disable", s.setClusterStatus("disabled"))
	owner("clusters.enable", http.MethodPost, "/v1/clusters/{cluster}/enable", s.setClusterStatus("active"))
	owner("clusters.revocations", http.MethodGet, "/v1/clusters/{cluster}/revocations", s.listRevocations)

	owner("tokens.create", http.MethodPost, "/v1/join-tokens", s.createToken)
	owner("tokens.list", http.MethodGet, "/v1/join-tokens", s.listTokens)
	owner("tokens.get", http.MethodGet, "/v1/join-tokens/{id}", s.getToken)
	owner("tokens.revoke", http.MethodPost, "/v1/join-tokens/{id}/revoke", s.revokeToken)

	owner("joins.list", http.MethodGet, "/v1/join-requests", s.listJoins)
	owner("joins.get", http.MethodGet, "/v1/join-requests/{id}", s.getJoin)
	owner("joins.approve", http.MethodPost, "/v1/join-requests/{id}/approve", s.approveJoin)
	owner("joins.reject", http.MethodPost, "/v1/join-requests/{id}/reject", s.rejectJoin)

	owner("nodes.list", http.MethodGet, "/v1/nodes", s.listNodes)
	owner("nodes.get", http.MethodGet, "/v1/nodes/{id}", s.getNode)
	owner("nodes.revoke", http.MethodPost, "/v1/clusters/{cluster}/nodes/{id}/revoke", s.revokeNode)
	owner("nodes.disable", http.MethodPost, "/v1/clusters/{cluster}/nodes/{id}/disable", s.setMembership("disabled"))
	owner("nodes.enable", http.MethodPost, "/v1/clusters/{cluster}/nodes/{id}/enable", s.setMembership("active"))

	owner("audit.list", http.MethodGet, "/v1/audit", s.listAudit)
	owner("audit.checkpoint.get", http.MethodGet, "/v1/audit/checkpoint", s.getAuditCheckpoint)
	owner("audit.checkpoint.create", http.MethodPost, "/v1/audit/checkpoint", s.createAuditCheckpoint)
	owner("audit.reanchor", http.MethodPost, "/v1/audit/reanchor", s.reanchorAudit)
	owner("audit.export", http.MethodGet, "/v1/audit/export", s.exportAudit)

	public("agent.join", http.MethodPost, agentapi.PathJoin, s.agentJoin)
	public("agent.join.poll", http.MethodPost, agentapi.PathJoinPoll, s.agentPoll)
	agent("agent.whoami", http.MethodGet, agentapi.PathWhoAmI, s.agentWhoami)
	agent("agent.renew", http.MethodPost, agentapi.PathRenew, s.agentRenew)

	// Node management and snapshots (manage.go, snapshots.go).
	owner("organizations.create", http.MethodPost, "/v1/organizations", s.createOrganization)
	owner("organizations.list", http.MethodGet, "/v1/organizations", s.listOrganizations)
	owner("roles.assign", http.MethodPost, "/v1/clusters/{cluster}/nodes/{id}/roles", s.assignRole)
	owner("roles.list.node", http.MethodGet, "/v1/clusters/{cluster}/nodes/{id}/roles", s.listRoles)
	owner("roles.list", http.MethodGet, "/v1/clusters/{cluster}/roles", s.listRoles)
	owner("roles.disable", http.MethodPost, "/v1/clusters/{cluster}/roles/{rid}/disable", s.setRoleStatus("disabled"))
	owner("roles.enable", http.MethodPost, "/v1/clusters/{cluster}/roles/{rid}/enable", s.setRoleStatus("active"))
	owner("roles.remove", http.MethodDelete, "/v1/clusters/{cluster}/roles/{rid}", s.removeRole)
	owner("services.set", http.MethodPut, "/v1/clusters/{cluster}/nodes/{id}/services/{type}", s.setService)
	owner("services.list", http.MethodGet, "/v1/clusters/{cluster}/services", s.listServices)
	owner("services.cluster.enable", http.MethodPost, "/v1/clusters/{cluster}/services/{type}/enable", s.setClusterServices(true))
	owner("services.cluster.disable", http.MethodPost, "/v1/clusters/{cluster}/services/{type}/disable", s.setClusterServices(false))
	owner("groups.create", http.MethodPost, "/v1/clusters/{cluster}/groups", s.createGroup)
	owner("groups.list", http.MethodGet, "/v1/clusters/{cluster}/groups", s.listGroups)
	owner("groups.rename", http.MethodPatch, "/v1/clusters/{cluster}/groups/{gid}", s.renameGroup)
	owner("groups.move", http.MethodPost, "/v1/clusters/{cluster}/groups/{gid}/move", s.moveGroup)
	owner("groups.delete", http.MethodDelete, "/v1/clusters/{cluster}/groups/{gid}", s.deleteGroup)
	owner("nodes.group", http.MethodPut, "/v1/clusters/{cluster}/nodes/{id}/group", s.setNodeGroup)
	owner("telemetry.set", http.MethodPut, "/v1/telemetry-flags", s.setTelemetryFlag)
	owner("telemetry.list", http.MethodGet, "/v1/telemetry-flags", s.listTelemetryFlags)
	owner("telemetry.delete", http.MethodDelete, "/v1/telemetry-flags/{fid}", s.deleteTelemetryFlag)
	owner("policy.set", http.MethodPut, "/v1/clusters/{cluster}/policy", s.setClusterPolicy)
	owner("policy.get", http.MethodGet, "/v1/clusters/{cluster}/policy", s.getClusterPolicy)
	owner("snapshots.status", http.MethodGet, "/v1/clusters/{cluster}/snapshots", s.listSnapshotStatus)
	owner("snapshots.rebuild", http.MethodPost, "/v1/clusters/{cluster}/snapshots/rebuild", s.rebuildSnapshots)
	owner("snapshots.node", http.MethodGet, "/v1/clusters/{cluster}/nodes/{id}/snapshot", s.getNodeSnapshot)
	agent("agent.snapshot", http.MethodGet, agentapi.PathSnapshot, s.agentSnapshot)
	agent("agent.ca", http.MethodGet, agentapi.PathCA, s.agentCA)
	agent("agent.storage", http.MethodGet, agentapi.PathStorageSnapshots, s.agentStorageSnapshots)
	agent("agent.admin_ingress", http.MethodGet, agentapi.PathAdminIngress, s.agentAdminIngress) // agent.go
	s.heartbeatRoutes(r)
	// Platform admin authentication, accounts and the console (login.go).
	s.adminRoutes(r)
	// Mesh inventory (mesh.go).
	s.meshRoutes(r)
	// Route intents and QoS policies (intents.go).
	s.intentRoutes(r)
	// Partition decisions (partition.go).
	s.partitionRoutes(r)
	// Cluster CA rotation (carotation.go).
	s.caRotationRoutes(r)
	// VPN connections and leases (vpn.go).
	s.vpnRoutes(r)
	// Version storage (releases.go).
	s.releaseRoutes(r)
	// Rollouts (rollouts.go).
	s.rolloutRoutes(r)
	// Organization API and the platform's organization routes (orgs.go).
	s.orgRoutes(r)
	// Cross-cluster comparison (clustercompare.go).
	s.compareRoutes(r)
	// Load balancer health: /v1/health, /livez, /readyz (health.go).
	s.healthRoutes(r)
	// The OpenAPI document (openapi.go).
	s.openAPIRoutes(r)
	s.router = r
}

// wrap adds metrics, security headers and error rendering to a handler.
// RequestTimeout bounds one API request (database calls included), so a
// request meets a clear error instead of hanging when PostgreSQL stops
// answering. Long polls (longPoll) get LongPollTimeout instead.
const (
	RequestTimeout  = 5 * time.Second
	LongPollTimeout = 40 * time.Second
)

// longPoll names the routes that wait on purpose.
var longPoll = map[string]bool{"agent.snapshot": true, "agent.storage": true, "agent.release.artifact": true}

func (s *Server) wrap(name string, h handlerFunc) http.Handler {
	timeout := RequestTimeout
	if longPoll[name] {
		timeout = LongPollTimeout
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		r = r.WithContext(ctx)
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, code: 200}
		sw.Header().Set("X-Content-Type-Options", "nosniff")
		if err := checkMediaType(r); err != nil {
			s.writeError(sw, r, err)
		} else if err := h(sw, r); err != nil {
			s.writeError(sw, r, err)
		}
		s.requests.WithLabelValues(name, strconv.Itoa(sw.code)).Inc()
		s.latency.WithLabelValues(name).Observe(time.Since(start).Seconds())
	})
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

// Route describes one API route (for the OpenAPI consistency test and docs).
type Route struct {
	Method string
	Path   string
}

// Routes lists every registered route.
func (s *Server) Routes() []Route {
	var out []Route
	_ = s.router.Walk(func(rt *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		path, err := rt.GetPathTemplate()
		if err != nil {
			return nil
		}
		methods, err := rt.GetMethods()
		if err != nil {
			return nil
		}
		for _, m := range methods {
			out = append(out, Route{Method: m, Path: path})
		}
		return nil
	})
	return out
}
