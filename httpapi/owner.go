package httpapi

import (
	"net/http"
	"strconv"

	"github.com/gorilla/mux"

	"github.com/rap-fabric/core/authority"
	"github.com/rap-fabric/core/store"
)

func idem(r *http.Request) (string, error) {
	k := r.Header.Get("Idempotency-Key")
	if len(k) > 128 {
		return "", authority.Errf(authority.CodeInvalid, "Idempotency-Key must be at most 128 characters")
	}
	return k, nil
}

func (s *Server) getStatus(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, s.status.Status())
	return nil
}

type addMemberBody struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	APIAddr  string `json:"api_addr"`
}

type memberCertBody struct {
	ID              string `json:"id"`
	MemberPublicKey []byte `json:"member_public_key"`
}

// MemberCertificate is the answer to POST /v1/authority/members/certificate:
// the joining authority's Raft transport certificate and the platform CA.
type MemberCertificate struct {
	MemberCertificate []byte `json:"member_certificate"`
	PlatformCA        []byte `json:"platform_ca"`
}

func (s *Server) memberCertificate(w http.ResponseWriter, r *http.Request, actor authority.Actor) error {
	var b memberCertBody
	if err := decodeJSON(w, r, &b); err != nil {
		return err
	}
	cert, ca, err := s.members.IssueMemberCert(r.Context(), actor, b.ID, b.MemberPublicKey)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, MemberCertificate{MemberCertificate: cert, PlatformCA: ca})
	return nil
}

func (s *Server) addMember(w http.ResponseWriter, r *http.Request, actor authority.Actor) error {
	var b addMemberBody
	if err := decodeJSON(w, r, &b); err != nil {
		return err
	}
	if b.ID == "" || b.RaftAddr == "" || b.APIAddr == "" {
		return authority.Errf(authority.CodeInvalid, "id, raft_addr and api_addr are required")
	}
	if err := s.members.AddMember(r.Context(), actor, b.ID, b.RaftAddr, b.APIAddr); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s.status.Status())
	return nil
}

func (s *Server) removeMember(w http.ResponseWriter, r *http.Request, actor authority.Actor) error {
	if err := s.members.RemoveMember(r.Context(), actor, mux.Vars(r)["id"]); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s.status.Status())
	return nil
}

func (s *Server) createCluster(w http.ResponseWriter, r *http.Request, actor authority.Actor) error {
	var b authority.CreateClusterRequest
	if err := decodeJSON(w, r, &b); err != nil {
		return err
	}
	k, err := idem(r)
	if err != nil {
		return err
	}
	c, err := s.a.CreateCluster(r.Context(), actor, b, k)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, c)
	return nil
}

func (s *Server) listClusters(w http.ResponseWriter, r *http.Request, _ authority.Actor) error {
	p, err := page(r)
	if err != nil {
		return err
	}
	cs, err := s.a.ListClusters(r.Context(), p)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, listOf(cs, p))
	return nil
}

func (s *Server) getCluster(w http.ResponseWriter, r *http.Request, _ authority.Actor) error {
	c, err := s.a.GetCluster(r.Context(), mux.Vars(r)["cluster"])
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, c)
	return nil
}

func (s *Server) setClusterStatus(status string) func(w http.ResponseWriter, r *http.Request, actor authority.Actor) error {
	return func(w http.ResponseWriter, r *http.Request, actor authority.Actor) error {
		k, err := idem(r)
		if err != nil {
			return err
		}
		c, err := s.a.SetClusterStatus(r.Context(), actor, mux.Vars(r)["cluster"], status, k)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, c)
		return nil
	}
}

func (s *Server) listRevocations(w http.ResponseWriter, r *http.Request, _ authority.Actor) error {
	rs, err := s.a.Revocations(r.Context(), mux.Vars(r)["cluster"])
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, listOf(rs, store.Page{Limit: len(rs) + 1}))
	return nil
}

func (s *Server) createToken(w http.ResponseWriter, r *http.Request, actor authority.Actor) error {
	var b authority.CreateTokenRequest
	if err := decodeJSON(w, r, &b); err != nil {
		return err
	}
	k, err := idem(r)
	if err != nil {
		return err
	}
	t, err := s.a.CreateJoinToken(r.Context(), actor, b, k)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, t)
	return nil
}

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request, _ authority.Actor) error {
	p, err := page(r)
	if err != nil {
		return err
	}
	ts, err := s.a.ListJoinTokens(r.Context(), r.URL.Query().Get("cluster"), p)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, listOf(ts, p))
	return nil
}

func (s *Server) getToken(w http.ResponseWriter, r *http.Request, _ authority.Actor) error {
	t, err := s.a.GetJoinToken(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, t)
	return nil
}

func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request, actor authority.Actor) error {
	k, err := idem(r)
	if err != nil {
		return err
	}
	t, err := s.a.RevokeJoinToken(r.Context(), actor, mux.Vars(r)["id"], k)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, t)
	return nil
}

func (s *Server) listJoins(w http.ResponseWriter, r *http.Request, _ authority.Actor) error {
	p, err := page(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	js, err := s.a.ListJoinRequests(r.Context(), q.Get("cluster"), q.Get("status"), p)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, listOf(js, p))
	return nil
}

func (s *Server) getJoin(w http.ResponseWriter, r *http.Request, _ authority.Actor) error {
	j, err := s.a.GetJoinRequest(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, j)
	return nil
}

func (s *Server) approveJoin(w http.ResponseWriter, r *http.Request, actor authority.Actor) error {
	k, err := idem(r)
	if err != nil {
		return err
	}
	res, err := s.a.ApproveJoinRequest(r.Context(), actor, mux.Vars(r)["id"], k)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

type rejectBody struct {
	Reason string `json:"reason"`
}

func (s *Server) rejectJoin(w http.ResponseWriter, r *http.Request, actor authority.Actor) error {
	var b rejectBody
	if err := decodeJSON(w, r, &b); err != nil {
		return err
	}
	k, err := idem(r)
	if err != nil {
		return err
	}
	j, err := s.a.RejectJoinRequest(r.Context(), actor, mux.Vars(r)["id"], b.Reason, k)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, j)
	return nil
}

func (s *Server) listNodes(w http.ResponseWriter, r *http.Request, _ authority.Actor) error {
	p, err := page(r)
	if err != nil {
		return err
	}
	ns, err := s.a.ListNodes(r.Context(), r.URL.Query().Get("cluster"), p)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, listOf(ns, p))
	return nil
}

func (s *Server) getNode(w http.ResponseWriter, r *http.Request, _ authority.Actor) error {
	n, err := s.a.GetNode(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, n)
	return nil
}

func (s *Server) revokeNode(w http.ResponseWriter, r *http.Request, actor authority.Actor) error {
	var b rejectBody
	if err := decodeJSON(w, r, &b); err != nil {
		return err
	}
	k, err := idem(r)
	if err != nil {
		return err
	}
	v := mux.Vars(r)
	m, err := s.a.RevokeNode(r.Context(), actor, v["cluster"], v["id"], b.Reason, k)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, m)
	return nil
}

func (s *Server) setMembership(status string) func(w http.ResponseWriter, r *http.Request, actor authority.Actor) error {
	return func(w http.ResponseWriter, r *http.Request, actor authority.Actor) error {
		k, err := idem(r)
		if err != nil {
			return err
		}
		v := mux.Vars(r)
		m, err := s.a.SetMembershipStatus(r.Context(), actor, v["cluster"], v["id"], status, k)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, m)
		return nil
	}
}

func (s *Server) listAudit(w http.ResponseWriter, r *http.Request, _ authority.Actor) error {
	p, err := page(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	f := store.AuditFilter{TargetKind: q.Get("target_kind"), TargetID: q.Get("target_id"), Action: q.Get("action"), Actor: q.Get("actor")}
	if c := q.Get("cluster"); c != "" {
		cl, err := s.a.GetCluster(r.Context(), c)
		if err != nil {
			return err
		}
		f.ClusterID = cl.ID
	}
	if a := q.Get("after_id"); a != "" {
		n, err := strconv.ParseInt(a, 10, 64)
		if err != nil {
			return authority.Errf(authority.CodeInvalid, "after_id must be an integer")
		}
		f.AfterID = n
	}
	evs, err := s.a.ListAudit(r.Context(), f, p)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, listOf(evs, p))
	return nil
}
