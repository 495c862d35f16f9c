package httpapi

// Partition decisions (owner API; every action is fenced, audited, needs
// step-up with a session, accepts an Idempotency-Key and reaches the
// cluster's nodes in their next snapshot; see authority/partition.go).
//
//	GET  /v1/clusters/{cluster}/partition           state, record and recent history
//	POST /v1/clusters/{cluster}/partition/split     normal → degraded (admissions stop)
//	POST /v1/clusters/{cluster}/partition/promote   degraded → promoted (admissions resume)
//	POST /v1/clusters/{cluster}/partition/merge     degraded|promoted → normal
//	POST /v1/clusters/{cluster}/partition/fence     → fenced (cluster frozen)
//	POST /v1/clusters/{cluster}/partition/recover   fenced → normal
//
// Each POST takes {"reason": "..."} (required).

import (
	"net/http"

	"github.com/gorilla/mux"

	"github.com/rap-fabric/core/authority"
)

// partitionBody is the body of a partition action.
type partitionBody struct {
	Reason string `json:"reason"`
}

func (s *Server) partitionRoutes(r *mux.Router) {
	r.Handle("/v1/clusters/{cluster}/partition", s.wrap("partition.show", s.ownerAuth(s.showPartition))).Methods(http.MethodGet)
	for _, act := range []authority.PartitionAction{authority.PartitionSplit, authority.PartitionPromote, authority.PartitionMerge,
		authority.PartitionFence, authority.PartitionRecover} {
		r.Handle("/v1/clusters/{cluster}/partition/"+string(act), s.wrap("partition."+string(act), s.ownerAuth(s.partitionAction(act)))).Methods(http.MethodPost)
	}
}

func (s *Server) showPartition(w http.ResponseWriter, r *http.Request, _ authority.Actor) error {
	v, err := s.a.Partition(r.Context(), mux.Vars(r)["cluster"])
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

func (s *Server) partitionAction(act authority.PartitionAction) ownerHandler {
	return func(w http.ResponseWriter, r *http.Request, actor authority.Actor) error {
		return write(http.StatusOK, func(r *http.Request, actor authority.Actor, b partitionBody, k string) (any, error) {
			return s.a.SetPartition(r.Context(), actor, mux.Vars(r)["cluster"], authority.PartitionRequest{Action: act, Reason: b.Reason}, k)
		})(w, r, actor)
	}
}
