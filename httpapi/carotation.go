package httpapi

// Cluster CA rotation (owner API; rotate and retire are platform-owner only,
// fenced, audited, need step-up with a session and accept an
// Idempotency-Key; see authority/carotation.go and docs/ca-rotation.md).
//
//	GET  /v1/clusters/{cluster}/ca          roots, states, nodes per root
//	POST /v1/clusters/{cluster}/ca/rotate   new root; both trusted (overlap)
//	POST /v1/clusters/{cluster}/ca/retire   {"force": false}: retire the old root

import (
	"net/http"

	"github.com/gorilla/mux"

	"github.com/rap-fabric/core/authority"
)

// caRotateBody is the (empty) body of a CA rotation.
type caRotateBody struct{}

func (s *Server) caRotationRoutes(r *mux.Router) {
	r.Handle("/v1/clusters/{cluster}/ca", s.wrap("ca.show", s.ownerAuth(s.showClusterCA))).Methods(http.MethodGet)
	r.Handle("/v1/clusters/{cluster}/ca/rotate", s.wrap("ca.rotate", s.ownerAuth(s.rotateClusterCA))).Methods(http.MethodPost)
	r.Handle("/v1/clusters/{cluster}/ca/retire", s.wrap("ca.retire", s.ownerAuth(s.retireClusterCA))).Methods(http.MethodPost)
}

func (s *Server) showClusterCA(w http.ResponseWriter, r *http.Request, _ authority.Actor) error {
	v, err := s.a.ClusterCA(r.Context(), mux.Vars(r)["cluster"])
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

func (s *Server) rotateClusterCA(w http.ResponseWriter, r *http.Request, actor authority.Actor) error {
	return write(http.StatusOK, func(r *http.Request, actor authority.Actor, _ caRotateBody, k string) (any, error) {
		return s.a.RotateClusterCA(r.Context(), actor, mux.Vars(r)["cluster"], k)
	})(w, r, actor)
}

func (s *Server) retireClusterCA(w http.ResponseWriter, r *http.Request, actor authority.Actor) error {
	return write(http.StatusOK, func(r *http.Request, actor authority.Actor, b authority.RetireCARequest, k string) (any, error) {
		return s.a.RetireClusterCA(r.Context(), actor, mux.Vars(r)["cluster"], b, k)
	})(w, r, actor)
}
