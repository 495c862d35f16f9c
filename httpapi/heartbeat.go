package httpapi

import (
	"net/http"

	"github.com/gorilla/mux"

	"github.com/rap-fabric/core/authority"
)

// Heartbeat routes:
//
//	POST /v1/agent/heartbeat             node (mTLS): one heartbeat; any authority takes it (not fenced)
//	GET  /v1/agent/desired               node (mTLS): the membership's active role assignments
//	POST /v1/agent/certificate/status    public: good / revoked / expired of a node certificate
//	GET  /v1/nodes/{id}/heartbeat        owner: latest heartbeat per cluster, health derived now
//	GET  /v1/nodes/{id}/heartbeats       owner: history, newest first (?cluster, ?limit, ?offset)
func (s *Server) heartbeatRoutes(r *mux.Router) {
	r.Handle("/v1/agent/heartbeat", s.wrap("agent.heartbeat", s.heartbeatAuth(s.agentHeartbeat))).Methods(http.MethodPost)
	r.Handle("/v1/agent/desired", s.wrap("agent.desired", s.nodeAuth(s.agentDesired))).Methods(http.MethodGet)
	r.Handle("/v1/agent/certificate/status", s.wrap("agent.certificate.status", s.agentCertStatus)).Methods(http.MethodPost)
	r.Handle("/v1/nodes/{id}/heartbeat", s.wrap("nodes.heartbeat", s.ownerAuth(s.nodeHeartbeat))).Methods(http.MethodGet)
	r.Handle("/v1/nodes/{id}/heartbeats", s.wrap("nodes.heartbeats", s.ownerAuth(s.nodeHeartbeats))).Methods(http.MethodGet)
}

// heartbeatAuth authenticates the node with the ingest's certificate cache
// (no database round trip per heartbeat).
func (s *Server) heartbeatAuth(h func(w http.ResponseWriter, r *http.Request, node authority.NodePrincipal) error) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
			return authority.Errf(authority.CodeUnauthorized, "agent routes need a node client certificate (mTLS)")
		}
		p, err := s.a.Heartbeats().Authenticate(r.Context(), r.TLS.PeerCertificates[0], sourceAddr(r))
		if err != nil {
			return err
		}
		return h(w, r, p)
	}
}

func (s *Server) agentHeartbeat(w http.ResponseWriter, r *http.Request, n authority.NodePrincipal) error {
	var in authority.HeartbeatInput
	if err := decodeJSON(w, r, &in); err != nil {
		return err
	}
	ack, err := s.a.Heartbeats().Ingest(n, in)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, ack)
	return nil
}

func (s *Server) agentDesired(w http.ResponseWriter, r *http.Request, n authority.NodePrincipal) error {
	d, err := s.a.Desired(r.Context(), n)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, d)
	return nil
}

type certStatusBody struct {
	Certificate []byte `json:"certificate"`
}

func (s *Server) agentCertStatus(w http.ResponseWriter, r *http.Request) error {
	var b certStatusBody
	if err := decodeJSON(w, r, &b); err != nil {
		return err
	}
	st, err := s.a.CertificateStatus(r.Context(), b.Certificate)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}

func (s *Server) nodeHeartbeat(w http.ResponseWriter, r *http.Request, _ authority.Actor) error {
	hs, err := s.a.Heartbeats().LatestHeartbeats(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, List[authority.NodeHeartbeat]{Items: hs})
	return nil
}

func (s *Server) nodeHeartbeats(w http.ResponseWriter, r *http.Request, _ authority.Actor) error {
	p, err := page(r)
	if err != nil {
		return err
	}
	rows, err := s.a.Heartbeats().History(r.Context(), r.URL.Query().Get("cluster"), mux.Vars(r)["id"], p)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, listOf(rows, p))
	return nil
}
