package httpapi

// Node management routes: organizations, role assignments, desired services,
// node groups, test telemetry flags and cluster policies. Every write is a
// fenced, audited authority operation that accepts an Idempotency-Key and
// rebuilds the affected snapshots before answering.

import (
	"net/http"

	"github.com/gorilla/mux"

	"github.com/rap-fabric/core/authority"
	"github.com/rap-fabric/core/store"
)

func (s *Server) createOrganization(w http.ResponseWriter, r *http.Request, actor authority.Actor) error {
	return write(http.StatusCreated, func(r *http.Request, actor authority.Actor, b authority.CreateOrganizationRequest, k string) (any, error) {
		return s.a.CreateOrganization(r.Context(), actor, b, k)
	})(w, r, actor)
}

func (s *Server) listOrganizations(w http.ResponseWriter, r *http.Request, _ authority.Actor) error {
	p, err := page(r)
	if err != nil {
		return err
	}
	os, err := s.a.ListOrganizations(r.Context(), p)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, listOf(os, p))
	return nil
}

func (s *Server) assignRole(w http.ResponseWriter, r *http.Request, actor authority.Actor) error {
	return write(http.StatusCreated, func(r *http.Request, actor authority.Actor, b authority.AssignRoleRequest, k string) (any, error) {
		v := mux.Vars(r)
		return s.a.AssignRole(r.Context(), actor, v["cluster"], v["id"], b, k)
	})(w, r, actor)
}

func (s *Server) listRoles(w http.ResponseWriter, r *http.Request, _ authority.Actor) error {
	p, err := page(r)
	if err != nil {
		return err
	}
	node := r.URL.Query().Get("node")
	if id := mux.Vars(r)["id"]; id != "" {
		node = id
	}
	out, err := s.a.ListRoles(r.Context(), mux.Vars(r)["cluster"], node, p)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, listOf(out, p))
	return nil
}

func (s *Server) setRoleStatus(status string) ownerHandler {
	return write(http.StatusOK, func(r *http.Request, actor authority.Actor, _ noBody, k string) (any, error) {
		v := mux.Vars(r)
		return s.a.SetRoleStatus(r.Context(), actor, v["cluster"], v["rid"], status, k)
	})
}

func (s *Server) removeRole(w http.ResponseWriter, r *http.Request, actor authority.Actor) error {
	return write(http.StatusOK, func(r *http.Request, actor authority.Actor, _ noBody, k string) (any, error) {
		v := mux.Vars(r)
		return s.a.RemoveRole(r.Context(), actor, v["cluster"], v["rid"], k)
	})(w, r, actor)
}

func (s *Server) setService(w http.ResponseWriter, r *http.Request, actor authority.Actor) error {
	return write(http.StatusOK, func(r *http.Request, actor authority.Actor, b authority.SetServiceRequest, k string) (any, error) {
		v := mux.Vars(r)
		return s.a.SetService(r.Context(), actor, v["cluster"], v["id"], v["type"], b, k)
	})(w, r, actor)
}

func (s *Server) setClusterServices(enabled bool) ownerHandler {
	return write(http.StatusOK, func(r *http.Request, actor authority.Actor, _ noBody, k string) (any, error) {
		v := mux.Vars(r)
		return s.a.SetClusterServices(r.Context(), actor, v["cluster"], v["type"], enabled, k)
	})
}

func (s *Server) listServices(w http.ResponseWriter, r *http.Request, _ authority.Actor) error {
	p, err := page(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	out, err := s.a.ListServices(r.Context(), mux.Vars(r)["cluster"], q.Get("node"), q.Get("type"), p)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, listOf(out, p))
	return nil
}

func (s *Server) createGroup(w http.ResponseWriter, r *http.Request, actor authority.Actor) error {
	return write(http.StatusCreated, func(r *http.Request, actor authority.Actor, b authority.CreateGroupRequest, k string) (any, error) {
		return s.a.CreateGroup(r.Context(), actor, mux.Vars(r)["cluster"], b, k)
	})(w, r, actor)
}

func (s *Server) listGroups(w http.ResponseWriter, r *http.Request, _ authority.Actor) error {
	gs, err := s.a.ListGroups(r.Context(), mux.Vars(r)["cluster"])
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, listOf(gs, store.Page{Limit: len(gs) + 1}))
	return nil
}

type groupPatch struct {
	Name string `json:"name"`
}

func (s *Server) renameGroup(w http.ResponseWriter, r *http.Request, actor authority.Actor) error {
	return write(http.StatusOK, func(r *http.Request, actor authority.Actor, b groupPatch, k string) (any, error) {
		v := mux.Vars(r)
		return s.a.RenameGroup(r.Context(), actor, v["cluster"], v["gid"], b.Name, k)
	})(w, r, actor)
}

type groupMove struct {
	Parent string `json:"parent"`
}

func (s *Server) moveGroup(w http.ResponseWriter, r *http.Request, actor authority.Actor) error {
	return write(http.StatusOK, func(r *http.Request, actor authority.Actor, b groupMove, k string) (any, error) {
		v := mux.Vars(r)
		return s.a.MoveGroup(r.Context(), actor, v["cluster"], v["gid"], b.Parent, k)
	})(w, r, actor)
}

func (s *Server) deleteGroup(w http.ResponseWriter, r *http.Request, actor authority.Actor) error {
	return write(http.StatusOK, func(r *http.Request, actor authority.Actor, _ noBody, k string) (any, error) {
		v := mux.Vars(r)
		return s.a.DeleteGroup(r.Context(), actor, v["cluster"], v["gid"], k)
	})(w, r, actor)
}

type nodeGroupBody struct {
	Group string `json:"group"`
}

func (s *Server) setNodeGroup(w http.ResponseWriter, r *http.Request, actor authority.Actor) error {
	return write(http.StatusOK, func(r *http.Request, actor authority.Actor, b nodeGroupBody, k string) (any, error) {
		v := mux.Vars(r)
		return s.a.SetNodeGroup(r.Context(), actor, v["cluster"], v["id"], b.Group, k)
	})(w, r, actor)
}

func (s *Server) setTelemetryFlag(w http.ResponseWriter, r *http.Request, actor authority.Actor) error {
	return write(http.StatusOK, func(r *http.Request, actor authority.Actor, b authority.TelemetryFlagRequest, k string) (any, error) {
		return s.a.SetTelemetryFlag(r.Context(), actor, b, k)
	})(w, r, actor)
}

func (s *Server) deleteTelemetryFlag(w http.ResponseWriter, r *http.Request, actor authority.Actor) error {
	return write(http.StatusOK, func(r *http.Request, actor authority.Actor, _ noBody, k string) (any, error) {
		return s.a.DeleteTelemetryFlag(r.Context(), actor, mux.Vars(r)["fid"], k)
	})(w, r, actor)
}

func (s *Server) listTelemetryFlags(w http.ResponseWriter, r *http.Request, _ authority.Actor) error {
	fs, err := s.a.ListTelemetryFlags(r.Context(), r.URL.Query().Get("cluster"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, listOf(fs, store.Page{Limit: len(fs) + 1}))
	return nil
}

func (s *Server) setClusterPolicy(w http.ResponseWriter, r *http.Request, actor authority.Actor) error {
	return write(http.StatusOK, func(r *http.Request, actor authority.Actor, b authority.ClusterPolicyRequest, k string) (any, error) {
		return s.a.SetClusterPolicy(r.Context(), actor, mux.Vars(r)["cluster"], b, k)
	})(w, r, actor)
}

func (s *Server) getClusterPolicy(w http.ResponseWriter, r *http.Request, _ authority.Actor) error {
	p, err := s.a.GetClusterPolicy(r.Context(), mux.Vars(r)["cluster"])
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, p)
	return nil
}
