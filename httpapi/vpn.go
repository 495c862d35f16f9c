package httpapi

// VPN / IP tunnel control plane (authority/vpn.go).
//
// Owner routes (writes fenced, audited, accept an Idempotency-Key):
//
//	POST   /v1/clusters/{cluster}/vpn-connections                          create
//	GET    /v1/clusters/{cluster}/vpn-connections                          list (lease holder, epoch, health)
//	GET    /v1/clusters/{cluster}/vpn-connections/{vid}                    detail (policies, lease history, statuses)
//	PATCH  /v1/clusters/{cluster}/vpn-connections/{vid}                    update network settings / credential_ref / lease TTL
//	POST   /v1/clusters/{cluster}/vpn-connections/{vid}/enable             desired state enabled
//	POST   /v1/clusters/{cluster}/vpn-connections/{vid}/disable            desired state disabled (revokes the lease)
//	PUT    /v1/clusters/{cluster}/vpn-connections/{vid}/allowed-nodes      replace the allowed-node list
//	POST   /v1/clusters/{cluster}/vpn-connections/{vid}/route-policies     add a route policy
//	GET    /v1/clusters/{cluster}/vpn-connections/{vid}/route-policies     list route policies
//	DELETE /v1/clusters/{cluster}/vpn-connections/{vid}/route-policies/{pid}
//	GET    /v1/clusters/{cluster}/vpn-connections/{vid}/lease              active lease and history
//	POST   /v1/clusters/{cluster}/vpn-connections/{vid}/lease/fence        fence the lease (platform owner, step-up)
//
// Agent routes (node certificate, own cluster only):
//
//	GET  /v1/agent/vpn/assignments                          what this node may run (no credential_ref)
//	POST /v1/agent/vpn/connections/{vid}/lease              acquire (idempotent for the holder)
//	POST /v1/agent/vpn/connections/{vid}/lease/renew        renew {generation}; lease_lost means stop
//	POST /v1/agent/vpn/connections/{vid}/lease/release      release {generation} (idempotent)
//	POST /v1/agent/vpn/connections/{vid}/status             report {status, detail, lease_generation}

import (
	"net/http"

	"github.com/gorilla/mux"

	"github.com/rap-fabric/core/agentapi"
	"github.com/rap-fabric/core/authority"
	"github.com/rap-fabric/core/store"
)

func (s *Server) vpnRoutes(r *mux.Router) {
	owner := func(name, method, path string, h ownerHandler) {
		r.Handle(path, s.wrap(name, s.ownerAuth(h))).Methods(method)
	}
	agent := func(name, method, path string, h func(w http.ResponseWriter, r *http.Request, node authority.NodePrincipal) error) {
		r.Handle(path, s.wrap(name, s.nodeAuth(h))).Methods(method)
	}
	const base = "/v1/clusters/{cluster}/vpn-connections"
	owner("vpn.create", http.MethodPost, base, write(http.StatusCreated, func(r *http.Request, actor authority.Actor, b authority.VPNConnectionRequest, k string) (any, error) {
		return s.vpn.CreateConnection(r.Context(), actor, mux.Vars(r)["cluster"], b, k)
	}))
	owner("vpn.list", http.MethodGet, base, func(w http.ResponseWriter, r *http.Request, _ authority.Actor) error {
		p, err := page(r)
		if err != nil {
			return err
		}
		out, err := s.vpn.ListConnections(r.Context(), mux.Vars(r)["cluster"], p)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, listOf(out, p))
		return nil
	})
	owner("vpn.get", http.MethodGet, base+"/{vid}", read(func(r *http.Request) (any, error) {
		v := mux.Vars(r)
		return s.vpn.GetConnection(r.Context(), v["cluster"], v["vid"])
	}))
	owner("vpn.update", http.MethodPatch, base+"/{vid}", write(http.StatusOK, func(r *http.Request, actor authority.Actor, b authority.VPNConnectionRequest, k string) (any, error) {
		v := mux.Vars(r)
		return s.vpn.UpdateConnection(r.Context(), actor, v["cluster"], v["vid"], b, k)
	}))
	for _, on := range []bool{true, false} {
		name, path := "vpn.disable", base+"/{vid}/disable"
		if on {
			name, path = "vpn.enable", base+"/{vid}/enable"
		}
		owner(name, http.MethodPost, path, write(http.StatusOK, func(r *http.Request, actor authority.Actor, _ noBody, k string) (any, error) {
			v := mux.Vars(r)
			return s.vpn.SetDesiredState(r.Context(), actor, v["cluster"], v["vid"], on, k)
		}))
	}
	owner("vpn.allowed_nodes", http.MethodPut, base+"/{vid}/allowed-nodes", write(http.StatusOK, func(r *http.Request, actor authority.Actor, b authority.AllowedNodesRequest, k string) (any, error) {
		v := mux.Vars(r)
		return s.vpn.SetAllowedNodes(r.Context(), actor, v["cluster"], v["vid"], b, k)
	}))
	owner("vpn.route_policies.create", http.MethodPost, base+"/{vid}/route-policies", write(http.StatusCreated, func(r *http.Request, actor authority.Actor, b authority.VPNRoutePolicyRequest, k string) (any, error) {
		v := mux.Vars(r)
		return s.vpn.CreateRoutePolicy(r.Context(), actor, v["cluster"], v["vid"], b, k)
	}))
	owner("vpn.route_policies.list", http.MethodGet, base+"/{vid}/route-policies", func(w http.ResponseWriter, r *http.Request, _ authority.Actor) error {
		v := mux.Vars(r)
		out, err := s.vpn.ListRoutePolicies(r.Context(), v["cluster"], v["vid"])
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, listOf(out, store.Page{Limit: len(out) + 1}))
		return nil
	})
	owner("vpn.route_policies.delete", http.MethodDelete, base+"/{vid}/route-policies/{pid}", write(http.StatusOK, func(r *http.Request, actor authority.Actor, _ noBody, k string) (any, error) {
		v := mux.Vars(r)
		return s.vpn.DeleteRoutePolicy(r.Context(), actor, v["cluster"], v["vid"], v["pid"], k)
	}))
	owner("vpn.lease", http.MethodGet, base+"/{vid}/lease", func(w http.ResponseWriter, r *http.Request, _ authority.Actor) error {
		p, err := page(r)
		if err != nil {
			return err
		}
		v := mux.Vars(r)
		out, err := s.vpn.Lease(r.Context(), v["cluster"], v["vid"], p)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, out)
		return nil
	})
	owner("vpn.lease.fence", http.MethodPost, base+"/{vid}/lease/fence", func(w http.ResponseWriter, r *http.Request, actor authority.Actor) error {
		if err := requirePlatformOwner(r, "fencing a VPN lease is a recovery action of platform owners"); err != nil {
			return err
		}
		return write(http.StatusOK, func(r *http.Request, actor authority.Actor, b authority.FenceLeaseRequest, k string) (any, error) {
			v := mux.Vars(r)
			return s.vpn.FenceLease(r.Context(), actor, v["cluster"], v["vid"], b, k)
		})(w, r, actor)
	})

	agent("agent.vpn.assignments", http.MethodGet, agentapi.PathVPNAssignments, func(w http.ResponseWriter, r *http.Request, n authority.NodePrincipal) error {
		out, err := s.vpn.Assignments(r.Context(), n)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, AgentVPNAssignments{Items: out})
		return nil
	})
	agent("agent.vpn.lease.acquire", http.MethodPost, agentapi.PathVPNLeaseAcquire, func(w http.ResponseWriter, r *http.Request, n authority.NodePrincipal) error {
		var b noBody
		if err := decodeJSON(w, r, &b); err != nil {
			return err
		}
		out, err := s.vpn.AcquireLease(r.Context(), n, mux.Vars(r)["vid"])
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, out)
		return nil
	})
	agent("agent.vpn.lease.renew", http.MethodPost, agentapi.PathVPNLeaseRenew, func(w http.ResponseWriter, r *http.Request, n authority.NodePrincipal) error {
		var b authority.LeaseRequest
		if err := decodeJSON(w, r, &b); err != nil {
			return err
		}
		out, err := s.vpn.RenewLease(r.Context(), n, mux.Vars(r)["vid"], b)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, out)
		return nil
	})
	agent("agent.vpn.lease.release", http.MethodPost, agentapi.PathVPNLeaseRelease, func(w http.ResponseWriter, r *http.Request, n authority.NodePrincipal) error {
		var b authority.LeaseRequest
		if err := decodeJSON(w, r, &b); err != nil {
			return err
		}
		out, err := s.vpn.ReleaseLease(r.Context(), n, mux.Vars(r)["vid"], b)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, out)
		return nil
	})
	agent("agent.vpn.status", http.MethodPost, agentapi.PathVPNStatusReport, func(w http.ResponseWriter, r *http.Request, n authority.NodePrincipal) error {
		var b authority.VPNStatusRequest
		if err := decodeJSON(w, r, &b); err != nil {
			return err
		}
		out, err := s.vpn.ReportStatus(r.Context(), n, mux.Vars(r)["vid"], b)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, out)
		return nil
	})
}

// AgentVPNAssignments is the body of GET agentapi.PathVPNAssignments.
type AgentVPNAssignments = agentapi.VPNAssignments

// requirePlatformOwner refuses platform admins (sessions of another role);
// owner API tokens carry the owner role.
func requirePlatformOwner(r *http.Request, why string) error {
	if p, ok := principalFrom(r.Context()); ok && p.User.Role != store.RolePlatformOwner {
		return authority.Errf(authority.CodeForbidden, "%s", why)
	}
	return nil
}
