package httpapi

// Authority join tokens (authority/authorityjoin.go):
//
//	POST /v1/authority/join-tokens              create one (owner; step-up with a session) → the token, once
//	GET  /v1/authority/join-tokens              list them (never their secrets)
//	POST /v1/authority/join-tokens/{id}/revoke  revoke one (owner)
//
// A joining authority presents the token as its bearer credential on
// POST /v1/authority/members/certificate (which binds the token to its id and
// member key) and POST /v1/authority/members (which completes the join and
// kills the token); no other route accepts it.

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/gorilla/mux"

	"github.com/rap-fabric/core/authority"
	"github.com/rap-fabric/core/store"
)

type createAuthorityJoinBody struct {
	TTLSeconds  int64  `json:"ttl_seconds"`
	Description string `json:"description"`
}

// AuthorityJoinToken is an authority join token; Token only in the answer to
// its creation.
type AuthorityJoinToken = authority.AuthorityJoinToken

func (s *Server) createAuthorityJoinToken(w http.ResponseWriter, r *http.Request, actor authority.Actor) error {
	return write(http.StatusCreated, func(r *http.Request, a authority.Actor, b createAuthorityJoinBody, _ string) (AuthorityJoinToken, error) {
		if b.TTLSeconds < 0 || b.TTLSeconds > int64(authority.MaxAuthorityJoinTTL/time.Second) {
			return AuthorityJoinToken{}, authority.Errf(authority.CodeInvalid, "ttl_seconds must be between 60 and %d", int64(authority.MaxAuthorityJoinTTL/time.Second))
		}
		return s.a.CreateAuthorityJoinToken(r.Context(), a, time.Duration(b.TTLSeconds)*time.Second, b.Description)
	})(w, r, actor)
}

func (s *Server) listAuthorityJoinTokens(w http.ResponseWriter, r *http.Request, actor authority.Actor) error {
	return list(func(r *http.Request, p store.Page) ([]AuthorityJoinToken, error) {
		return s.a.ListAuthorityJoinTokens(r.Context(), p)
	})(w, r, actor)
}

func (s *Server) revokeAuthorityJoinToken(w http.ResponseWriter, r *http.Request, actor authority.Actor) error {
	return write(http.StatusOK, func(r *http.Request, a authority.Actor, _ noBody, _ string) (AuthorityJoinToken, error) {
		return s.a.RevokeAuthorityJoinToken(r.Context(), a, mux.Vars(r)["id"])
	})(w, r, actor)
}

// authorityJoinRoutes are the only routes an authority join token opens.
var authorityJoinRoutes = map[string]bool{
	"POST /v1/authority/members/certificate": true,
	"POST /v1/authority/members":             true,
}

type authorityJoinKey struct{}

// authorityJoinTokenOf returns the id of the authority join token the request
// was authenticated with ("" for any other credential).
func authorityJoinTokenOf(ctx context.Context) string {
	id, _ := ctx.Value(authorityJoinKey{}).(string)
	return id
}

// authorityJoinAuth authenticates an authority join token on the join routes.
// A follower answers not_leader before the token is looked at (the joiner
// follows to the leader).
func (s *Server) authorityJoinAuth(w http.ResponseWriter, r *http.Request, token string, h func(w http.ResponseWriter, r *http.Request, actor authority.Actor) error) error {
	ctx := r.Context()
	anon := authority.Actor{ID: "anonymous", Kind: "user", Device: deviceLabel(r), SourceAddr: sourceAddr(r)}
	tpl := ""
	if rt := mux.CurrentRoute(r); rt != nil {
		tpl, _ = rt.GetPathTemplate()
	}
	if !authorityJoinRoutes[r.Method+" "+tpl] {
		s.refuse(ctx, r, anon, "authority_join_token_elsewhere")
		return authority.Errf(authority.CodeForbidden, "an authority join token only joins an authority (rap-authority run --join)")
	}
	if err := s.a.CheckLeader(); err != nil {
		return err
	}
	actor, id, err := s.a.CheckAuthorityJoinToken(ctx, token, sourceAddr(r))
	if err != nil {
		if !errors.Is(err, authority.ErrBadAuthorityJoinToken) {
			return err // rate limited, or the database is unavailable
		}
		s.refuse(ctx, r, anon, "invalid_credential")
		return authority.Errf(authority.CodeUnauthorized, "invalid credential")
	}
	return h(w, r.WithContext(context.WithValue(ctx, authorityJoinKey{}, id)), actor)
}
