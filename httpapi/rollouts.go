package httpapi

// Rollouts (owner and agent API; see authority/rollouts.go). Every owner
// change is fenced, audited, needs step-up with a session and accepts an
// Idempotency-Key.
//
//	POST /v1/clusters/{cluster}/rollouts                    start {product, version, canary_count, canary_percent, wave_percent, soak_seconds, failure_threshold, update_deadline_seconds, reason}
//	GET  /v1/clusters/{cluster}/rollouts                    list
//	GET  /v1/clusters/{cluster}/rollouts/{rid}              status with waves
//	POST /v1/clusters/{cluster}/rollouts/{rid}/pause        {reason}
//	POST /v1/clusters/{cluster}/rollouts/{rid}/resume       {reason}
//	POST /v1/clusters/{cluster}/rollouts/{rid}/rollback     {reason}
//	POST /v1/clusters/{cluster}/rollouts/pin                {product, version, reason}
//	POST /v1/releases/{release}/blocklist                   {reason}
//	GET  /v1/clusters/{cluster}/nodes/{id}/updates          a node's update state per product
//	POST /v1/agent/updates                                  agent (mTLS): update state report
//	GET  /v1/clusters/{cluster}/release-channels            channel assignments (cluster, group, node)
//	PUT  /v1/clusters/{cluster}/release-channels            set {scope_kind, scope_id, product, channel, reason}
//	DELETE /v1/clusters/{cluster}/release-channels          unset {scope_kind, scope_id, product, reason}

import (
	"github.com/rap-fabric/core/agentapi"
	"net/http"

	"github.com/gorilla/mux"

	"github.com/rap-fabric/core/authority"
	"github.com/rap-fabric/core/store"
)

func (s *Server) rolloutRoutes(r *mux.Router) {
	owner := func(name, method, path string, h ownerHandler) {
		r.Handle(path, s.wrap(name, s.ownerAuth(h))).Methods(method)
	}
	svc := func() (*authority.Rollouts, error) {
		if s.rollouts == nil {
			return nil, authority.Errf(authority.CodeUnavailable, "rollouts are not configured on this authority")
		}
		return s.rollouts, nil
	}
	owner("rollouts.start", http.MethodPost, "/v1/clusters/{cluster}/rollouts", write(http.StatusCreated, func(r *http.Request, actor authority.Actor, b authority.StartRolloutRequest, k string) (authority.RolloutView, error) {
		ro, err := svc()
		if err != nil {
			return authority.RolloutView{}, err
		}
		return ro.Start(r.Context(), actor, mux.Vars(r)["cluster"], b, k)
	}))
	owner("rollouts.list", http.MethodGet, "/v1/clusters/{cluster}/rollouts", list(func(r *http.Request, p store.Page) ([]store.Rollout, error) {
		ro, err := svc()
		if err != nil {
			return nil, err
		}
		return ro.List(r.Context(), mux.Vars(r)["cluster"], p)
	}))
	owner("rollouts.pin", http.MethodPost, "/v1/clusters/{cluster}/rollouts/pin", write(http.StatusOK, func(r *http.Request, actor authority.Actor, b authority.PinRequest, k string) (authority.RolloutView, error) {
		ro, err := svc()
		if err != nil {
			return authority.RolloutView{}, err
		}
		return ro.Pin(r.Context(), actor, mux.Vars(r)["cluster"], b, k)
	}))
	owner("rollouts.get", http.MethodGet, "/v1/clusters/{cluster}/rollouts/{rid}", read(func(r *http.Request) (authority.RolloutView, error) {
		ro, err := svc()
		if err != nil {
			return authority.RolloutView{}, err
		}
		return ro.Get(r.Context(), mux.Vars(r)["cluster"], mux.Vars(r)["rid"])
	}))
	for _, act := range []authority.RolloutAction{authority.RolloutPause, authority.RolloutResume, authority.RolloutRollback} {
		owner("rollouts."+string(act), http.MethodPost, "/v1/clusters/{cluster}/rollouts/{rid}/"+string(act), write(http.StatusOK,
			func(r *http.Request, actor authority.Actor, b authority.RolloutActionRequest, k string) (authority.RolloutView, error) {
				ro, err := svc()
				if err != nil {
					return authority.RolloutView{}, err
				}
				return ro.Act(r.Context(), actor, mux.Vars(r)["cluster"], mux.Vars(r)["rid"], act, b, k)
			}))
	}
	owner("releases.blocklist", http.MethodPost, "/v1/releases/{release}/blocklist", write(http.StatusOK, func(r *http.Request, actor authority.Actor, b authority.BlocklistRequest, k string) (authority.ReleaseView, error) {
		ro, err := svc()
		if err != nil {
			return authority.ReleaseView{}, err
		}
		return ro.Blocklist(r.Context(), actor, mux.Vars(r)["release"], b, k)
	}))
	owner("nodes.updates", http.MethodGet, "/v1/clusters/{cluster}/nodes/{id}/updates", read(func(r *http.Request) ([]store.UpdateRun, error) {
		ro, err := svc()
		if err != nil {
			return nil, err
		}
		return ro.NodeUpdates(r.Context(), mux.Vars(r)["cluster"], mux.Vars(r)["id"])
	}))
	owner("release_channels.list", http.MethodGet, "/v1/clusters/{cluster}/release-channels", read(func(r *http.Request) (List[authority.ChannelAssignment], error) {
		ro, err := svc()
		if err != nil {
			return List[authority.ChannelAssignment]{}, err
		}
		out, err := ro.ListChannelAssignments(r.Context(), mux.Vars(r)["cluster"])
		if out == nil {
			out = []authority.ChannelAssignment{}
		}
		return List[authority.ChannelAssignment]{Items: out}, err
	}))
	owner("release_channels.set", http.MethodPut, "/v1/clusters/{cluster}/release-channels", write(http.StatusOK, func(r *http.Request, actor authority.Actor, b authority.ChannelAssignmentRequest, k string) (authority.ChannelAssignment, error) {
		ro, err := svc()
		if err != nil {
			return authority.ChannelAssignment{}, err
		}
		return ro.SetChannelAssignment(r.Context(), actor, mux.Vars(r)["cluster"], b, k)
	}))
	owner("release_channels.unset", http.MethodDelete, "/v1/clusters/{cluster}/release-channels", write(http.StatusOK, func(r *http.Request, actor authority.Actor, b authority.ChannelAssignmentRequest, k string) (authority.ChannelAssignment, error) {
		ro, err := svc()
		if err != nil {
			return authority.ChannelAssignment{}, err
		}
		return ro.UnsetChannelAssignment(r.Context(), actor, mux.Vars(r)["cluster"], b, k)
	}))
	r.Handle(agentapi.PathUpdates, s.wrap("agent.updates", s.nodeAuth(func(w http.ResponseWriter, r *http.Request, n authority.NodePrincipal) error {
		ro, err := svc()
		if err != nil {
			return err
		}
		var b authority.UpdateReport
		if err := decodeJSON(w, r, &b); err != nil {
			return err
		}
		out, err := ro.Report(r.Context(), n, b)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, out)
		return nil
	}))).Methods(http.MethodPost)
}
