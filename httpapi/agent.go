package httpapi

import (
	"net/http"

	"github.com/gorilla/mux"

	"github.com/rap-fabric/core/agentapi"
	"github.com/rap-fabric/core/authority"
)

// agentJoin takes a join request. The cluster is the one the agent reached
// through its CA pin (TLS server name); the token must belong to it.
func (s *Server) agentJoin(w http.ResponseWriter, r *http.Request) error {
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		return authority.Errf(authority.CodeForbidden, "an enrolled node cannot send a join request with its certificate")
	}
	var in authority.JoinRequestInput
	if err := decodeJSON(w, r, &in); err != nil {
		return err
	}
	via := ""
	if r.TLS != nil {
		via = s.clusterForServerName(r.TLS.ServerName)
	}
	st, err := s.a.SubmitJoinRequest(r.Context(), sourceAddr(r), via, in)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusAccepted, st)
	return nil
}

func (s *Server) agentPoll(w http.ResponseWriter, r *http.Request) error {
	var b agentapi.JoinPoll
	if err := decodeJSON(w, r, &b); err != nil {
		return err
	}
	st, err := s.a.PollJoinRequest(r.Context(), mux.Vars(r)["id"], b.PollSecret)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}

// WhoAmI is the body of GET /v1/agent/whoami (the agentapi contract).
type WhoAmI = agentapi.WhoAmI

func (s *Server) agentWhoami(w http.ResponseWriter, r *http.Request, n authority.NodePrincipal) error {
	writeJSON(w, http.StatusOK, WhoAmI{ClusterID: n.ClusterID, NodeID: n.NodeID, Serial: n.Serial})
	return nil
}

func (s *Server) agentRenew(w http.ResponseWriter, r *http.Request, n authority.NodePrincipal) error {
	var b agentapi.RenewRequest
	if err := decodeJSON(w, r, &b); err != nil {
		return err
	}
	if len(b.TrustedRoots) > 8 {
		return authority.Errf(authority.CodeInvalid, "trusted_roots names at most 8 CA roots")
	}
	c, err := s.a.RenewCertificate(r.Context(), n, b.PublicKey, b.NoisePublicKey, b.TrustedRoots)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, c)
	return nil
}

// agentAdminIngress answers GET /v1/agent/admin-ingress: the Cluster Admin
// Endpoint's page definitions and preconditions for a node holding an
// active admin-ingress role, admin_ingress_refused (403, details.reason)
// otherwise (authority/adminingress.go).
func (s *Server) agentAdminIngress(w http.ResponseWriter, r *http.Request, n authority.NodePrincipal) error {
	out, err := s.a.AdminIngress(r.Context(), n)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
