package httpapi

import (
	"net/http"
	"strconv"
	"time"

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
	return write(http.StatusOK, func(r *http.Request, a authority.Actor, b memberCertBody, _ string) (MemberCertificate, error) {
		if tok := authorityJoinTokenOf(r.Context()); tok != "" {
			// The join token is bound to this authority (id and key) first.
			if err := s.a.BindAuthorityJoinToken(r.Context(), a, tok, b.ID, b.MemberPublicKey); err != nil {
				return MemberCertificate{}, err
			}
		}
		cert, ca, err := s.members.IssueMemberCert(r.Context(), a, b.ID, b.MemberPublicKey)
		return MemberCertificate{MemberCertificate: cert, PlatformCA: ca}, err
	})(w, r, actor)
}

func (s *Server) addMember(w http.ResponseWriter, r *http.Request, actor authority.Actor) error {
	return write(http.StatusOK, func(r *http.Request, a authority.Actor, b addMemberBody, _ string) (AuthorityStatus, error) {
		if b.ID == "" || b.RaftAddr == "" || b.APIAddr == "" {
			return AuthorityStatus{}, authority.Errf(authority.CodeInvalid, "id, raft_addr and api_addr are required")
		}
		tok := authorityJoinTokenOf(r.Context())
		if tok != "" {
			if err := s.a.AuthorityJoinBoundTo(r.Context(), tok, b.ID); err != nil {
				return AuthorityStatus{}, err
			}
		}
		if err := s.members.AddMember(r.Context(), a, b.ID, b.RaftAddr, b.APIAddr); err != nil {
			return AuthorityStatus{}, err
		}
		if tok != "" {
			if err := s.a.CompleteAuthorityJoin(r.Context(), a, tok, b.ID); err != nil {
				return AuthorityStatus{}, err
			}
		}
		return s.status.Status(), nil
	})(w, r, actor)
}

func (s *Server) removeMember(w http.ResponseWriter, r *http.Request, actor authority.Actor) error {
	return write(http.StatusOK, func(r *http.Request, a authority.Actor, _ noBody, _ string) (AuthorityStatus, error) {
		if err := s.members.RemoveMember(r.Context(), a, mux.Vars(r)["id"]); err != nil {
			return AuthorityStatus{}, err
		}
		return s.status.Status(), nil
	})(w, r, actor)
}

func (s *Server) createCluster(w http.ResponseWriter, r *http.Request, actor authority.Actor) error {
	return write(http.StatusCreated, func(r *http.Request, a authority.Actor, b authority.CreateClusterRequest, k string) (Cluster, error) {
		return one(newCluster)(s.a.CreateCluster(r.Context(), a, b, k))
	})(w, r, actor)
}

func (s *Server) listClusters(w http.ResponseWriter, r *http.Request, actor authority.Actor) error {
	return list(func(r *http.Request, p store.Page) ([]Cluster, error) {
		return many(newCluster)(s.a.ListClusters(r.Context(), p))
	})(w, r, actor)
}

func (s *Server) getCluster(w http.ResponseWriter, r *http.Request, actor authority.Actor) error {
	return read(func(r *http.Request) (Cluster, error) {
		return one(newCluster)(s.a.GetCluster(r.Context(), mux.Vars(r)["cluster"]))
	})(w, r, actor)
}

func (s *Server) setClusterStatus(status string) ownerHandler {
	return write(http.StatusOK, func(r *http.Request, a authority.Actor, _ noBody, k string) (Cluster, error) {
		return one(newCluster)(s.a.SetClusterStatus(r.Context(), a, mux.Vars(r)["cluster"], status, k))
	})
}

func (s *Server) listRevocations(w http.ResponseWriter, r *http.Request, actor authority.Actor) error {
	return read(func(r *http.Request) (List[store.Revocation], error) {
		rs, err := s.a.Revocations(r.Context(), mux.Vars(r)["cluster"])
		return listOf(rs, store.Page{Limit: len(rs) + 1}), err
	})(w, r, actor)
}

func (s *Server) createToken(w http.ResponseWriter, r *http.Request, actor authority.Actor) error {
	return write(http.StatusCreated, func(r *http.Request, a authority.Actor, b authority.CreateTokenRequest, k string) (CreatedToken, error) {
		return one(newCreatedToken)(s.a.CreateJoinToken(r.Context(), a, b, k))
	})(w, r, actor)
}

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request, actor authority.Actor) error {
	return list(func(r *http.Request, p store.Page) ([]JoinToken, error) {
		return many(newJoinToken)(s.a.ListJoinTokens(r.Context(), r.URL.Query().Get("cluster"), p))
	})(w, r, actor)
}

func (s *Server) getToken(w http.ResponseWriter, r *http.Request, actor authority.Actor) error {
	return read(func(r *http.Request) (JoinToken, error) {
		return one(newJoinToken)(s.a.GetJoinToken(r.Context(), mux.Vars(r)["id"]))
	})(w, r, actor)
}

func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request, actor authority.Actor) error {
	return write(http.StatusOK, func(r *http.Request, a authority.Actor, _ noBody, k string) (JoinToken, error) {
		return one(newJoinToken)(s.a.RevokeJoinToken(r.Context(), a, mux.Vars(r)["id"], k))
	})(w, r, actor)
}

func (s *Server) listJoins(w http.ResponseWriter, r *http.Request, actor authority.Actor) error {
	return list(func(r *http.Request, p store.Page) ([]JoinRequest, error) {
		q := r.URL.Query()
		return many(newJoinRequest)(s.a.ListJoinRequests(r.Context(), q.Get("cluster"), q.Get("status"), p))
	})(w, r, actor)
}

func (s *Server) getJoin(w http.ResponseWriter, r *http.Request, actor authority.Actor) error {
	return read(func(r *http.Request) (JoinRequest, error) {
		return one(newJoinRequest)(s.a.GetJoinRequest(r.Context(), mux.Vars(r)["id"]))
	})(w, r, actor)
}

func (s *Server) approveJoin(w http.ResponseWriter, r *http.Request, actor authority.Actor) error {
	return write(http.StatusOK, func(r *http.Request, a authority.Actor, _ noBody, k string) (authority.ApproveResult, error) {
		return s.a.ApproveJoinRequest(r.Context(), a, mux.Vars(r)["id"], k)
	})(w, r, actor)
}

type rejectBody struct {
	Reason string `json:"reason"`
}

func (s *Server) rejectJoin(w http.ResponseWriter, r *http.Request, actor authority.Actor) error {
	return write(http.StatusOK, func(r *http.Request, a authority.Actor, b rejectBody, k string) (JoinRequest, error) {
		return one(newJoinRequest)(s.a.RejectJoinRequest(r.Context(), a, mux.Vars(r)["id"], b.Reason, k))
	})(w, r, actor)
}

func (s *Server) listNodes(w http.ResponseWriter, r *http.Request, actor authority.Actor) error {
	return list(func(r *http.Request, p store.Page) ([]authority.NodeView, error) {
		return s.a.ListNodes(r.Context(), r.URL.Query().Get("cluster"), p)
	})(w, r, actor)
}

func (s *Server) getNode(w http.ResponseWriter, r *http.Request, actor authority.Actor) error {
	return read(func(r *http.Request) (authority.NodeDetail, error) {
		return s.a.GetNode(r.Context(), mux.Vars(r)["id"])
	})(w, r, actor)
}

func (s *Server) revokeNode(w http.ResponseWriter, r *http.Request, actor authority.Actor) error {
	return write(http.StatusOK, func(r *http.Request, a authority.Actor, b rejectBody, k string) (store.Membership, error) {
		v := mux.Vars(r)
		return s.a.RevokeNode(r.Context(), a, v["cluster"], v["id"], b.Reason, k)
	})(w, r, actor)
}

func (s *Server) setMembership(status string) ownerHandler {
	if status == "disabled" { // with the split/seed guard (clustercompare.go has the override)
		return write(http.StatusOK, func(r *http.Request, a authority.Actor, _ noBody, k string) (store.Membership, error) {
			v := mux.Vars(r)
			return s.a.DisableMembership(r.Context(), a, v["cluster"], v["id"], false, "", k)
		})
	}
	return write(http.StatusOK, func(r *http.Request, a authority.Actor, _ noBody, k string) (store.Membership, error) {
		v := mux.Vars(r)
		return s.a.SetMembershipStatus(r.Context(), a, v["cluster"], v["id"], status, k)
	})
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
	if a := q.Get("before_id"); a != "" {
		n, err := strconv.ParseInt(a, 10, 64)
		if err != nil {
			return authority.Errf(authority.CodeInvalid, "before_id must be an integer")
		}
		f.BeforeID = n
	}
	if a := q.Get("since"); a != "" {
		t, err := time.Parse(time.RFC3339Nano, a)
		if err != nil {
			return authority.Errf(authority.CodeInvalid, "since must be an RFC 3339 time")
		}
		f.Since = t
	}
	switch q.Get("order") {
	case "", "oldest":
	case "newest":
		f.NewestFirst = true
	default:
		return authority.Errf(authority.CodeInvalid, "order must be oldest or newest")
	}
	evs, err := s.a.ListAudit(r.Context(), f, p)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, listOf(evs, p))
	return nil
}
