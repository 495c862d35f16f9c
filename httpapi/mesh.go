package httpapi

// Mesh inventory routes.
//
//	POST /v1/agent/links                 (node mTLS) a node's link and route report
//	GET  /v1/clusters/{cluster}/links    (owner) link inventory, ?node= filter
//	GET  /v1/clusters/{cluster}/routes   (owner) reported route health, ?node=
//	GET  /v1/clusters/{cluster}/pings    (owner) each member's last mesh ping, ?node=
//
// Route intents and QoS policies have their own routes (intents.go:
// /v1/clusters/{cluster}/route-intents, /v1/clusters/{cluster}/qos-policies);
// the cluster policy document (PUT/GET /v1/clusters/{cluster}/policy) carries
// the rest of route_policy and qos_policy.

import (
	"net/http"

	"github.com/gorilla/mux"

	"github.com/rap-fabric/core/agentapi"
	"github.com/rap-fabric/core/authority"
)

func (s *Server) meshRoutes(r *mux.Router) {
	r.Handle(agentapi.PathLinks, s.wrap("agent.links", s.nodeAuth(s.agentLinks))).Methods(http.MethodPost)
	r.Handle("/v1/clusters/{cluster}/links", s.wrap("mesh.links", s.ownerAuth(s.listMeshLinks))).Methods(http.MethodGet)
	r.Handle("/v1/clusters/{cluster}/routes", s.wrap("mesh.routes", s.ownerAuth(s.listMeshRoutes))).Methods(http.MethodGet)
	r.Handle("/v1/clusters/{cluster}/pings", s.wrap("mesh.pings", s.ownerAuth(s.listMeshPings))).Methods(http.MethodGet)
	r.Handle("/v1/authority/epochs", s.wrap("authority.epochs", s.ownerAuth(s.listEpochs))).Methods(http.MethodGet)
}

func (s *Server) agentLinks(w http.ResponseWriter, r *http.Request, n authority.NodePrincipal) error {
	var in authority.LinkReportInput
	if err := decodeJSON(w, r, &in); err != nil {
		return err
	}
	ack, err := s.a.ReportLinks(r.Context(), n, in)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, ack)
	return nil
}

func (s *Server) listMeshLinks(w http.ResponseWriter, r *http.Request, _ authority.Actor) error {
	p, err := page(r)
	if err != nil {
		return err
	}
	out, err := s.a.ListMeshLinks(r.Context(), mux.Vars(r)["cluster"], r.URL.Query().Get("node"), p)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, listOf(out, p))
	return nil
}

func (s *Server) listMeshRoutes(w http.ResponseWriter, r *http.Request, _ authority.Actor) error {
	p, err := page(r)
	if err != nil {
		return err
	}
	out, err := s.a.ListMeshRoutes(r.Context(), mux.Vars(r)["cluster"], r.URL.Query().Get("node"), p)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, listOf(out, p))
	return nil
}

func (s *Server) listMeshPings(w http.ResponseWriter, r *http.Request, _ authority.Actor) error {
	p, err := page(r)
	if err != nil {
		return err
	}
	out, err := s.a.LastPings(r.Context(), mux.Vars(r)["cluster"], r.URL.Query().Get("node"), p)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, listOf(out, p))
	return nil
}

// listEpochs answers GET /v1/authority/epochs: the leadership epochs the
// fence recorded, newest first.
func (s *Server) listEpochs(w http.ResponseWriter, r *http.Request, _ authority.Actor) error {
	p, err := page(r)
	if err != nil {
		return err
	}
	out, err := s.a.Epochs(r.Context(), p)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, listOf(out, p))
	return nil
}
