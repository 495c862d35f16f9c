package httpapi

// Route intents and QoS policies (owner API; writes are fenced, audited,
// accept an Idempotency-Key and rebuild mesh nodes' snapshots).
//
//	POST   /v1/clusters/{cluster}/route-intents        create a route intent
//	GET    /v1/clusters/{cluster}/route-intents        list (priority order)
//	DELETE /v1/clusters/{cluster}/route-intents/{iid}  delete
//	POST   /v1/clusters/{cluster}/qos-policies         create a QoS policy
//	GET    /v1/clusters/{cluster}/qos-policies         list (priority order)
//	DELETE /v1/clusters/{cluster}/qos-policies/{qid}   delete

import (
	"net/http"

	"github.com/gorilla/mux"

	"github.com/rap-fabric/core/authority"
)

func (s *Server) intentRoutes(r *mux.Router) {
	owner := func(name, method, path string, h ownerHandler) {
		r.Handle(path, s.wrap(name, s.ownerAuth(h))).Methods(method)
	}
	owner("route_intents.create", http.MethodPost, "/v1/clusters/{cluster}/route-intents", s.createRouteIntent)
	owner("route_intents.list", http.MethodGet, "/v1/clusters/{cluster}/route-intents", s.listRouteIntents)
	owner("route_intents.delete", http.MethodDelete, "/v1/clusters/{cluster}/route-intents/{iid}", s.deleteRouteIntent)
	owner("qos_policies.create", http.MethodPost, "/v1/clusters/{cluster}/qos-policies", s.createQoSPolicy)
	owner("qos_policies.list", http.MethodGet, "/v1/clusters/{cluster}/qos-policies", s.listQoSPolicies)
	owner("qos_policies.delete", http.MethodDelete, "/v1/clusters/{cluster}/qos-policies/{qid}", s.deleteQoSPolicy)
}

func (s *Server) createRouteIntent(w http.ResponseWriter, r *http.Request, actor authority.Actor) error {
	return write(http.StatusCreated, func(r *http.Request, actor authority.Actor, b authority.RouteIntentRequest, k string) (any, error) {
		return s.a.CreateRouteIntent(r.Context(), actor, mux.Vars(r)["cluster"], b, k)
	})(w, r, actor)
}

func (s *Server) listRouteIntents(w http.ResponseWriter, r *http.Request, _ authority.Actor) error {
	p, err := page(r)
	if err != nil {
		return err
	}
	out, err := s.a.ListRouteIntents(r.Context(), mux.Vars(r)["cluster"], p)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, listOf(out, p))
	return nil
}

func (s *Server) deleteRouteIntent(w http.ResponseWriter, r *http.Request, actor authority.Actor) error {
	return write(http.StatusOK, func(r *http.Request, actor authority.Actor, _ noBody, k string) (any, error) {
		v := mux.Vars(r)
		return s.a.DeleteRouteIntent(r.Context(), actor, v["cluster"], v["iid"], k)
	})(w, r, actor)
}

func (s *Server) createQoSPolicy(w http.ResponseWriter, r *http.Request, actor authority.Actor) error {
	return write(http.StatusCreated, func(r *http.Request, actor authority.Actor, b authority.QoSPolicyRequest, k string) (any, error) {
		return s.a.CreateQoSPolicy(r.Context(), actor, mux.Vars(r)["cluster"], b, k)
	})(w, r, actor)
}

func (s *Server) listQoSPolicies(w http.ResponseWriter, r *http.Request, _ authority.Actor) error {
	p, err := page(r)
	if err != nil {
		return err
	}
	out, err := s.a.ListQoSPolicies(r.Context(), mux.Vars(r)["cluster"], p)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, listOf(out, p))
	return nil
}

func (s *Server) deleteQoSPolicy(w http.ResponseWriter, r *http.Request, actor authority.Actor) error {
	return write(http.StatusOK, func(r *http.Request, actor authority.Actor, _ noBody, k string) (any, error) {
		v := mux.Vars(r)
		return s.a.DeleteQoSPolicy(r.Context(), actor, v["cluster"], v["qid"], k)
	})(w, r, actor)
}
