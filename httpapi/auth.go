package httpapi

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"

	"github.com/gorilla/mux"

	"github.com/rap-fabric/core/authn"
	"github.com/rap-fabric/core/authority"
)

func sourceAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// highRiskRoutes marks the owner routes that need step-up (a fresh second
// factor bound to the action and the concrete request path) when called with a
// session. Keys are "METHOD path-template" as registered in routes(); a test
// checks that every key names a registered route. Owner API tokens never reach
// the step-up check: they are a bootstrap credential that stops working as soon
// as an owner has MFA (and then every caller has a session).
var highRiskRoutes = map[string]authn.Action{
	"POST /v1/join-requests/{id}/approve":                           authn.ActionNodeApprove,
	"POST /v1/clusters/{cluster}/nodes/{id}/revoke":                 authn.ActionNodeRevoke,
	"POST /v1/clusters":                                             authn.ActionClusterTrust,
	"POST /v1/clusters/{cluster}/nodes/{id}/roles":                  authn.ActionRoleAssign,
	"POST /v1/clusters/{cluster}/roles/{rid}/disable":               authn.ActionRoleAssign,
	"POST /v1/clusters/{cluster}/roles/{rid}/enable":                authn.ActionRoleAssign,
	"DELETE /v1/clusters/{cluster}/roles/{rid}":                     authn.ActionRoleAssign,
	"POST /v1/join-tokens":                                          authn.ActionJoinTokenCreate,
	"POST /v1/authority/members/certificate":                        authn.ActionClusterTrust,
	"POST /v1/authority/members":                                    authn.ActionClusterTrust,
	"DELETE /v1/authority/members/{id}":                             authn.ActionClusterTrust,
	"POST /v1/admin/users":                                          authn.ActionPlatformRoleAssign,
	"POST /v1/admin/users/{id}/disable":                             authn.ActionPlatformRoleAssign,
	"POST /v1/admin/users/{id}/enable":                              authn.ActionPlatformRoleAssign,
	"POST /v1/clusters/{cluster}/partition/promote":                 authn.ActionPartitionPromote,
	"POST /v1/clusters/{cluster}/partition/split":                   authn.ActionPartitionRecover,
	"POST /v1/clusters/{cluster}/partition/merge":                   authn.ActionPartitionRecover,
	"POST /v1/clusters/{cluster}/partition/fence":                   authn.ActionPartitionRecover,
	"POST /v1/clusters/{cluster}/partition/recover":                 authn.ActionPartitionRecover,
	"POST /v1/clusters/{cluster}/vpn-connections/{vid}/lease/fence": authn.ActionLeaseFence,
	"POST /v1/authority/join-tokens":                                authn.ActionClusterTrust,
	"POST /v1/clusters/{cluster}/ca/rotate":                         authn.ActionTrustRootRotate,
	"POST /v1/clusters/{cluster}/ca/retire":                         authn.ActionTrustRootRotate,
	"POST /v1/audit/reanchor":                                       authn.ActionTrustRootRotate,

	// Version storage and rollouts (releases.go, rollouts.go).
	"PUT /v1/releases/roots":                              authn.ActionTrustRootRotate,
	"POST /v1/releases/key-sets":                          authn.ActionTrustRootRotate,
	"POST /v1/releases/{release}/blocklist":               authn.ActionUpdatePolicy,
	"POST /v1/clusters/{cluster}/rollouts":                authn.ActionUpdatePolicy,
	"POST /v1/clusters/{cluster}/rollouts/pin":            authn.ActionUpdatePolicy,
	"POST /v1/clusters/{cluster}/rollouts/{rid}/pause":    authn.ActionUpdatePolicy,
	"POST /v1/clusters/{cluster}/rollouts/{rid}/resume":   authn.ActionUpdatePolicy,
	"POST /v1/clusters/{cluster}/rollouts/{rid}/rollback": authn.ActionUpdatePolicy,
	"PUT /v1/clusters/{cluster}/release-channels":         authn.ActionUpdatePolicy,
	"DELETE /v1/clusters/{cluster}/release-channels":      authn.ActionUpdatePolicy,

	// Organizations (orgs.go).
	"POST /v1/organizations/{org}/admins":            authn.ActionOrgInvite,
	"POST /v1/organizations/{org}/endpoints":         authn.ActionOrgEndpoint,
	"DELETE /v1/organizations/{org}/endpoints/{eid}": authn.ActionOrgEndpoint,
	// Split/seed guard override (clustercompare.go).
	"POST /v1/clusters/{cluster}/nodes/{id}/disable-seed": authn.ActionPartitionRecover,
}

// HighRiskRoutes returns the routes that need step-up ("METHOD template" → action).
func HighRiskRoutes() map[string]string {
	out := make(map[string]string, len(highRiskRoutes))
	for k, v := range highRiskRoutes {
		out[k] = string(v)
	}
	return out
}

// highRiskAction returns the step-up action of the matched route of r.
func highRiskAction(r *http.Request) (authn.Action, bool) {
	rt := mux.CurrentRoute(r)
	if rt == nil {
		return "", false
	}
	tpl, err := rt.GetPathTemplate()
	if err != nil {
		return "", false
	}
	a, ok := highRiskRoutes[r.Method+" "+tpl]
	return a, ok
}

// ownerAuth admits platform owner/admin credentials only, in this order:
//
//  1. a session cookie (console), with CSRF checks on state-changing methods;
//  2. a bearer session token (rapctl login);
//  3. a bearer owner API token, only while no platform owner has MFA enrolled;
//  4. a bearer authority join token, on the two join routes only
//     (authorityJoinAuth).
//
// Requests that a browser marks cross-site, and bodies above MaxBodyBytes, are
// refused before any credential is looked at. A request that presents a node
// certificate is refused outright: agent certificates are role-bound to agent
// routes. Session requests to high-risk routes must spend a step-up grant, and
// only on the leader (see Authority.CheckLeader).
func (s *Server) ownerAuth(h func(w http.ResponseWriter, r *http.Request, actor authority.Actor) error) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
			return authority.Errf(authority.CodeForbidden, "node certificates cannot call owner routes")
		}
		if r.ContentLength > MaxBodyBytes {
			return authority.Errf(authority.CodeTooLarge, "request body exceeds %d bytes", MaxBodyBytes)
		}
		if r.Body != nil {
			r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
		}
		ctx := r.Context()
		anon := authority.Actor{ID: "anonymous", Kind: "user", Device: deviceLabel(r), SourceAddr: sourceAddr(r)}
		if err := crossSite(r); err != nil {
			s.refuse(ctx, r, anon, "csrf")
			s.writeAuthnError(w, r, err)
			return nil
		}
		p, hasSession, err := s.authenticateSession(r)
		if hasSession {
			if err != nil {
				if authn.ErrorCode(err) == "internal" {
					return err // the lookup failed (database unavailable): not a refusal
				}
				s.refuse(ctx, r, anon, authn.ErrorCode(err))
				if errors.Is(err, authn.ErrSessionExpired) || errors.Is(err, authn.ErrNoSession) {
					clearCookie(w, authn.SessionCookieName)
				}
				s.writeAuthnError(w, r, err)
				return nil
			}
			actor := p.Actor(deviceLabel(r), sourceAddr(r))
			if action, ok := highRiskAction(r); ok {
				// Every high-risk route is executed by the leader only: a
				// follower answers not_leader before it takes the grant, so the
				// client's retry on the leader still finds it.
				if err := s.a.CheckLeader(); err != nil {
					return err
				}
				if err := s.a.Admin().RequireStepUp(ctx, p, actor, action, r.URL.Path); err != nil {
					return err
				}
			}
			return h(w, r.WithContext(context.WithValue(ctx, principalKey{}, p)), actor)
		}
		authz := r.Header.Get("Authorization")
		if !strings.HasPrefix(authz, "Bearer ") {
			return authority.Errf(authority.CodeUnauthorized, "owner routes need a session (log in) or an Authorization: Bearer credential")
		}
		if bearer := strings.TrimPrefix(authz, "Bearer "); authority.IsAuthorityJoinToken(bearer) {
			return s.authorityJoinAuth(w, r, bearer, h)
		}
		actor, _, err := s.a.CheckOwnerToken(ctx, strings.TrimPrefix(authz, "Bearer "))
		if err != nil && !errors.Is(err, authority.ErrBadOwnerToken) {
			return err // the check itself failed (database unavailable): say so
		}
		if err != nil {
			s.refuse(ctx, r, anon, "invalid_credential")
			return authority.Errf(authority.CodeUnauthorized, "invalid credential")
		}
		disabled, err := s.a.Admin().OwnerTokensDisabled(ctx)
		if err != nil {
			return err
		}
		if disabled {
			actor.SourceAddr = sourceAddr(r)
			s.refuse(ctx, r, actor, "owner_token_disabled")
			return authority.Errf(authority.CodeUnauthorized, "owner API tokens stop working once a platform owner has MFA: use `rapctl login`")
		}
		actor.SourceAddr = sourceAddr(r)
		return h(w, r, actor)
	}
}

// refuse audits a refused owner request.
func (s *Server) refuse(ctx context.Context, r *http.Request, actor authority.Actor, reason string) {
	_ = s.a.Audit(ctx, authority.Op{Action: "auth.refuse", Actor: actor,
		Details: map[string]any{"route": r.Method + " " + r.URL.Path, "reason": reason}}, "denied")
}

// nodeAuth admits a verified, unrevoked node certificate only.
func (s *Server) nodeAuth(h func(w http.ResponseWriter, r *http.Request, node authority.NodePrincipal) error) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
			return authority.Errf(authority.CodeUnauthorized, "agent routes need a node client certificate (mTLS)")
		}
		p, err := s.a.AuthenticateNode(r.Context(), r.TLS.PeerCertificates[0], sourceAddr(r))
		if err != nil {
			return err
		}
		return h(w, r, p)
	}
}
