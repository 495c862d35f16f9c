package httpapi

// Organization API (spec C9), under /v1/orgs/{org}/… for organization
// accounts only, and the platform routes that create an organization's first
// admin and publish endpoints to it:
//
//	GET    /v1/orgs/{org}                             overview (organization, own account, counts of its own objects)
//	GET    /v1/orgs/{org}/me                          the session's account
//	POST   /v1/orgs/{org}/logout                      end the session
//	POST   /v1/orgs/{org}/step-up                     fresh TOTP → grant for one high-risk organization request
//	GET    /v1/orgs/{org}/users                       accounts of the organization
//	POST   /v1/orgs/{org}/users                       invite an account (admins; step-up) → one-time setup secret
//	GET    /v1/orgs/{org}/users/{uid}                 one account
//	POST   /v1/orgs/{org}/users/{uid}/disable|enable  (admins; step-up)
//	GET    /v1/orgs/{org}/sessions                    live sessions (admins: all; members: own)
//	POST   /v1/orgs/{org}/sessions/{sid}/revoke       end a session
//	GET    /v1/orgs/{org}/endpoints[/{eid}]           published endpoints with a health summary
//	GET    /v1/orgs/{org}/resources[/{rid}]           resources;  POST create, DELETE remove (admins)
//	GET    /v1/orgs/{org}/policies[/{pid}]            policies;   POST create, DELETE remove (admins; step-up)
//	POST   /v1/orgs/{org}/access-sessions             request access to a resource through an endpoint (decided by the policies)
//	GET    /v1/orgs/{org}/access-sessions[/{aid}]     access sessions (admins: all; members: own)
//	POST   /v1/orgs/{org}/access-sessions/{aid}/revoke  end an access session (step-up)
//	GET    /v1/orgs/{org}/audit                       the organization's own audit events
//	GET    /v1/orgs/{org}/audit/verify                whether the hash chain holding them is intact
//	POST   /v1/orgs/{org}/recovery-codes              TOTP code → a new set of recovery codes (own account)
//	GET    /v1/orgs/{org}/devices                     own trusted devices; POST trusts this browser
//	POST   /v1/orgs/{org}/devices/{did}/revoke        end trust in a device
//
//	POST   /v1/organizations/{org}/admins             platform: invite an organization admin (step-up)
//	GET    /v1/organizations/{org}/endpoints          platform: endpoints with their backing nodes
//	POST   /v1/organizations/{org}/endpoints          platform: publish an endpoint (step-up)
//	DELETE /v1/organizations/{org}/endpoints/{eid}    platform: withdraw an endpoint (step-up)
//
// Every organization response is one of the Org* projection types below,
// built field by field from the service's results: a field added to a
// platform type never reaches an organization.

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/rap-fabric/core/authn"
	"github.com/rap-fabric/core/authority"
	"github.com/rap-fabric/core/httpapi/console"
	"github.com/rap-fabric/core/store"
)

// orgHighRiskRoutes are the organization routes that need an organization
// step-up grant bound to the request path.
var orgHighRiskRoutes = map[string]authn.Action{
	"POST /v1/orgs/{org}/users":                 authn.ActionOrgUserManage,
	"POST /v1/orgs/{org}/users/{uid}/disable":   authn.ActionOrgUserManage,
	"POST /v1/orgs/{org}/users/{uid}/enable":    authn.ActionOrgUserManage,
	"POST /v1/orgs/{org}/policies":              authn.ActionOrgPolicyChange,
	"DELETE /v1/orgs/{org}/policies/{pid}":      authn.ActionOrgPolicyChange,
	"POST /v1/orgs/{org}/resources":             authn.ActionOrgPolicyChange,
	"DELETE /v1/orgs/{org}/resources/{rid}":     authn.ActionOrgPolicyChange,
	"POST /v1/orgs/{org}/sessions/{sid}/revoke": authn.ActionOrgUserManage,
	// Ending someone's access is session management, like ending a console session.
	"POST /v1/orgs/{org}/access-sessions/{aid}/revoke": authn.ActionOrgUserManage,
}

// OrgHighRiskRoutes returns the organization routes that need step-up.
func OrgHighRiskRoutes() map[string]string {
	out := make(map[string]string, len(orgHighRiskRoutes))
	for k, v := range orgHighRiskRoutes {
		out[k] = string(v)
	}
	return out
}

type orgHandler func(w http.ResponseWriter, r *http.Request, p authority.OrgPrincipal, actor authority.Actor) error

func (s *Server) orgRoutes(r *mux.Router) {
	org := func(name, method, path string, h orgHandler) {
		r.Handle(path, s.wrap(name, s.orgAuth(h))).Methods(method)
	}
	owner := func(name, method, path string, h ownerHandler) {
		r.Handle(path, s.wrap(name, s.ownerAuth(h))).Methods(method)
	}
	org("org.overview", http.MethodGet, "/v1/orgs/{org}", s.orgOverview)
	org("org.me", http.MethodGet, "/v1/orgs/{org}/me", s.orgMe)
	org("org.logout", http.MethodPost, "/v1/orgs/{org}/logout", s.orgLogout)
	org("org.stepup", http.MethodPost, "/v1/orgs/{org}/step-up", s.orgStepUp)
	org("org.users.list", http.MethodGet, "/v1/orgs/{org}/users", s.orgUsers)
	org("org.users.create", http.MethodPost, "/v1/orgs/{org}/users", s.orgCreateUser)
	org("org.users.get", http.MethodGet, "/v1/orgs/{org}/users/{uid}", s.orgUser)
	org("org.users.disable", http.MethodPost, "/v1/orgs/{org}/users/{uid}/disable", s.orgSetUserDisabled(true))
	org("org.users.enable", http.MethodPost, "/v1/orgs/{org}/users/{uid}/enable", s.orgSetUserDisabled(false))
	org("org.sessions.list", http.MethodGet, "/v1/orgs/{org}/sessions", s.orgSessions)
	org("org.sessions.revoke", http.MethodPost, "/v1/orgs/{org}/sessions/{sid}/revoke", s.orgRevokeSession)
	org("org.endpoints.list", http.MethodGet, "/v1/orgs/{org}/endpoints", s.orgEndpoints)
	org("org.endpoints.get", http.MethodGet, "/v1/orgs/{org}/endpoints/{eid}", s.orgEndpoint)
	org("org.resources.list", http.MethodGet, "/v1/orgs/{org}/resources", s.orgResources)
	org("org.resources.create", http.MethodPost, "/v1/orgs/{org}/resources", s.orgCreateResource)
	org("org.resources.get", http.MethodGet, "/v1/orgs/{org}/resources/{rid}", s.orgResource)
	org("org.resources.delete", http.MethodDelete, "/v1/orgs/{org}/resources/{rid}", s.orgDeleteResource)
	org("org.policies.list", http.MethodGet, "/v1/orgs/{org}/policies", s.orgPolicies)
	org("org.policies.create", http.MethodPost, "/v1/orgs/{org}/policies", s.orgCreatePolicy)
	org("org.policies.get", http.MethodGet, "/v1/orgs/{org}/policies/{pid}", s.orgPolicy)
	org("org.policies.delete", http.MethodDelete, "/v1/orgs/{org}/policies/{pid}", s.orgDeletePolicy)
	org("org.access.request", http.MethodPost, "/v1/orgs/{org}/access-sessions", s.orgRequestAccess)
	org("org.access.list", http.MethodGet, "/v1/orgs/{org}/access-sessions", s.orgAccessSessions)
	org("org.access.get", http.MethodGet, "/v1/orgs/{org}/access-sessions/{aid}", s.orgAccessSession)
	org("org.access.revoke", http.MethodPost, "/v1/orgs/{org}/access-sessions/{aid}/revoke", s.orgRevokeAccessSession)
	org("org.audit", http.MethodGet, "/v1/orgs/{org}/audit", s.orgAudit)
	org("org.audit.verify", http.MethodGet, "/v1/orgs/{org}/audit/verify", s.orgAuditVerify)
	org("org.recovery", http.MethodPost, "/v1/orgs/{org}/recovery-codes", s.orgRecoveryCodes)
	org("org.devices.list", http.MethodGet, "/v1/orgs/{org}/devices", s.orgDevices)
	org("org.devices.trust", http.MethodPost, "/v1/orgs/{org}/devices", s.orgTrustDevice)
	org("org.devices.revoke", http.MethodPost, "/v1/orgs/{org}/devices/{did}/revoke", s.orgRevokeDevice)

	owner("organizations.admins.invite", http.MethodPost, "/v1/organizations/{org}/admins", s.inviteOrgAdmin)
	owner("organizations.endpoints.list", http.MethodGet, "/v1/organizations/{org}/endpoints", s.platformOrgEndpoints)
	owner("organizations.endpoints.publish", http.MethodPost, "/v1/organizations/{org}/endpoints", s.publishOrgEndpoint)
	owner("organizations.endpoints.withdraw", http.MethodDelete, "/v1/organizations/{org}/endpoints/{eid}", s.withdrawOrgEndpoint)

	// The organization console (pages; actions go to the routes above).
	if s.a != nil {
		r.PathPrefix("/org/").Handler(s.wrapHTTP("orgconsole", console.NewOrg(console.OrgOptions{Source: orgConsoleSource{s}, Logger: s.log})))
	}
}

// orgAuth admits organization sessions only (cookie with CSRF checks, or a
// bearer session token), for the organization named in the path. Platform
// sessions, owner API tokens and node certificates are refused; a session of
// another organization answers not_found, like an organization that does not
// exist.
func (s *Server) orgAuth(h orgHandler) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
			return authority.Errf(authority.CodeForbidden, "node certificates cannot call organization routes")
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
		tok, cookie := sessionToken(r)
		if tok == "" {
			return authority.Errf(authority.CodeUnauthorized, "organization routes need an organization session (log in)")
		}
		p, err := s.a.Orgs().Authenticate(ctx, tok, sourceIP(r), mux.Vars(r)["org"])
		if err != nil {
			var ae *authority.Error
			if errors.As(err, &ae) || authn.ErrorCode(err) == "internal" {
				return err
			}
			s.refuse(ctx, r, anon, authn.ErrorCode(err))
			if errors.Is(err, authn.ErrSessionExpired) || errors.Is(err, authn.ErrNoSession) {
				clearCookie(w, authn.SessionCookieName)
			}
			s.writeAuthnError(w, r, err)
			return nil
		}
		if cookie && !authn.SafeMethod(r.Method) {
			c, err := s.csrfFor(r)
			if err != nil {
				return err
			}
			if err := c.Check(r, p.Session.ID); err != nil {
				s.writeAuthnError(w, r, err)
				return nil
			}
		}
		actor := p.Actor(deviceLabel(r), sourceAddr(r))
		if rt := mux.CurrentRoute(r); rt != nil {
			if tpl, err := rt.GetPathTemplate(); err == nil {
				if action, ok := orgHighRiskRoutes[r.Method+" "+tpl]; ok {
					if err := s.a.Orgs().RequireStepUp(ctx, p, actor, action, r.URL.Path); err != nil {
						return err
					}
				}
			}
		}
		return h(w, r.WithContext(context.WithValue(ctx, orgPrincipalKey{}, p)), p, actor)
	}
}

type orgPrincipalKey struct{}

// OrgPrincipalFrom returns the organization principal of a request
// authenticated by orgAuth (the organization console uses it).
func OrgPrincipalFrom(r *http.Request) (authority.OrgPrincipal, bool) {
	p, ok := r.Context().Value(orgPrincipalKey{}).(authority.OrgPrincipal)
	return p, ok
}

// --- projection types (organization side)

// OrgInfo is an organization as its own members see it.
type OrgInfo struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Slug   string `json:"slug"`
	Status string `json:"status"`
}

func newOrgInfo(o store.Organization) OrgInfo {
	return OrgInfo{ID: o.ID, Name: o.Name, Slug: o.Slug, Status: o.Status}
}

// OrgUser is an organization account as the organization sees it.
type OrgUser struct {
	ID           string    `json:"id"`
	Name         string    `json:"name"`
	Role         string    `json:"role"`
	Disabled     bool      `json:"disabled"`
	MFAEnrolled  bool      `json:"mfa_enrolled"`
	SetupPending bool      `json:"setup_pending"`
	CreatedAt    time.Time `json:"created_at"`
}

func newOrgUser(u store.AdminUser) OrgUser {
	role := ""
	if u.OrgRole != nil {
		role = *u.OrgRole
	}
	return OrgUser{ID: u.ID, Name: u.Name, Role: role, Disabled: u.Disabled, MFAEnrolled: u.MFAEnrolled, SetupPending: u.SetupPending, CreatedAt: u.CreatedAt}
}

// OrgUserCreated answers an invitation: the account and its one-time setup
// secret (shown once; only its hash is stored).
type OrgUserCreated struct {
	User         OrgUser `json:"user"`
	Organization OrgInfo `json:"organization"`
	SetupSecret  string  `json:"setup_secret"`
}

// OrgSession is a live session of an organization account.
type OrgSession struct {
	ID         string    `json:"id"`
	UserID     string    `json:"user_id"`
	UserName   string    `json:"user_name"`
	CreatedAt  time.Time `json:"created_at"`
	LastSeenAt time.Time `json:"last_seen_at"`
	ExpiresAt  time.Time `json:"expires_at"`
	Trusted    bool      `json:"trusted"`
	Current    bool      `json:"current"`
}

// OrgAccessSession is an access session of the organization: who may reach
// which of its resources through which of its endpoints, granted by which
// policy, until when. Status is active, revoked or expired.
type OrgAccessSession struct {
	ID           string     `json:"id"`
	UserID       string     `json:"user_id"`
	UserName     string     `json:"user_name"`
	ResourceID   string     `json:"resource_id"`
	ResourceName string     `json:"resource_name"`
	EndpointID   string     `json:"endpoint_id"`
	EndpointName string     `json:"endpoint_name"`
	PolicyID     string     `json:"policy_id"`
	Status       string     `json:"status"`
	CreatedAt    time.Time  `json:"created_at"`
	ExpiresAt    time.Time  `json:"expires_at"`
	RevokedAt    *time.Time `json:"revoked_at,omitempty"`
}

func (s *Server) newOrgAccessSession(x store.OrgAccessSession) OrgAccessSession {
	return OrgAccessSession{ID: x.ID, UserID: x.UserID, UserName: x.UserName, ResourceID: x.ResourceID, ResourceName: x.ResourceName,
		EndpointID: x.EndpointID, EndpointName: x.EndpointName, PolicyID: x.PolicyID, Status: authority.AccessStatus(x, s.a.Admin().Now()),
		CreatedAt: x.CreatedAt, ExpiresAt: x.ExpiresAt, RevokedAt: x.RevokedAt}
}

// OrgEndpoint is a published service endpoint: name, kind, protocol, region
// label and a health summary (ok, degraded, down). Never its backing nodes.
type OrgEndpoint struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Kind     string `json:"kind"`
	Protocol string `json:"protocol"`
	Region   string `json:"region"`
	Health   string `json:"health"`
}

func newOrgEndpoint(e authority.OrgEndpointView) OrgEndpoint {
	return OrgEndpoint{ID: e.ID, Name: e.Name, Kind: e.Kind, Protocol: e.Protocol, Region: e.Region, Health: e.Health}
}

// OrgResource is a resource of the organization.
type OrgResource struct {
	ID         string    `json:"id"`
	Name       string    `json:"name"`
	Protocol   string    `json:"protocol"`
	Address    string    `json:"address"`
	Port       int       `json:"port"`
	EndpointID string    `json:"endpoint_id"`
	CreatedAt  time.Time `json:"created_at"`
}

func newOrgResource(r store.OrgResource) OrgResource {
	return OrgResource{ID: r.ID, Name: r.Name, Protocol: r.Protocol, Address: r.Address, Port: r.Port, EndpointID: r.EndpointID, CreatedAt: r.CreatedAt}
}

// OrgPolicy is an access policy of the organization.
type OrgPolicy struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	Subjects    []string  `json:"subjects"`
	ResourceIDs []string  `json:"resource_ids"`
	EndpointIDs []string  `json:"endpoint_ids"`
	Window      string    `json:"window,omitempty"`
	RequireMFA  bool      `json:"require_mfa"`
	CreatedAt   time.Time `json:"created_at"`
}

func hhmm(m int) string { return time.Date(0, 1, 1, m/60, m%60, 0, 0, time.UTC).Format("15:04") }

func newOrgPolicy(p store.OrgPolicy) OrgPolicy {
	out := OrgPolicy{ID: p.ID, Name: p.Name, Subjects: p.Subjects, ResourceIDs: p.ResourceIDs, EndpointIDs: p.EndpointIDs, RequireMFA: p.RequireMFA, CreatedAt: p.CreatedAt}
	if p.WindowStart != nil && p.WindowEnd != nil {
		out.Window = hhmm(*p.WindowStart) + "-" + hhmm(*p.WindowEnd)
	}
	return out
}

// OrgAuditEvent is one of the organization's own audit events (no cluster,
// no source address, no risk signals).
type OrgAuditEvent struct {
	ID         int64          `json:"id"`
	Seq        *int64         `json:"seq"`
	At         time.Time      `json:"at"`
	Actor      string         `json:"actor"`
	ActorKind  string         `json:"actor_kind"`
	Action     string         `json:"action"`
	TargetKind string         `json:"target_kind,omitempty"`
	TargetID   string         `json:"target_id,omitempty"`
	Outcome    string         `json:"outcome"`
	Details    map[string]any `json:"details,omitempty"`
	Hash       []byte         `json:"hash,omitempty"`
}

// orgAuditDetails are the detail keys an organization event may show.
var orgAuditDetails = map[string]bool{"name": true, "role": true, "kind": true, "protocol": true, "region": true, "endpoint": true,
	"subjects": true, "require_mfa": true, "action": true, "reason": true, "error_code": true, "user_id": true,
	"resource": true, "policy": true, "expires_at": true}

func newOrgAuditEvent(e store.AuditEvent) OrgAuditEvent {
	out := OrgAuditEvent{ID: e.ID, Seq: e.Seq, At: e.At, Actor: e.Actor, ActorKind: e.ActorKind, Action: e.Action, TargetKind: e.TargetKind,
		TargetID: e.TargetID, Outcome: e.Outcome, Hash: e.Hash}
	var d map[string]any
	if json.Unmarshal(e.Details, &d) == nil {
		for k, v := range d {
			if orgAuditDetails[k] {
				if out.Details == nil {
					out.Details = map[string]any{}
				}
				out.Details[k] = v
			}
		}
	}
	return out
}

// OrgOverview answers GET /v1/orgs/{org}.
type OrgOverview struct {
	Organization OrgInfo        `json:"organization"`
	User         OrgUser        `json:"user"`
	Endpoints    []OrgEndpoint  `json:"endpoints"`
	Counts       map[string]int `json:"counts"`
}

// OrgMe answers GET /v1/orgs/{org}/me.
type OrgMe struct {
	Organization      OrgInfo    `json:"organization"`
	User              OrgUser    `json:"user"`
	ExpiresAt         time.Time  `json:"expires_at"`
	IdleTimeout       string     `json:"idle_timeout"`
	TrustedSession    bool       `json:"trusted_session"`
	MFAAt             *time.Time `json:"mfa_at,omitempty"`
	CSRFToken         string     `json:"csrf_token,omitempty"`
	RecoveryCodesLeft int        `json:"recovery_codes_left"`
}

// --- handlers

func mapList[T, U any](xs []T, f func(T) U) []U {
	out := make([]U, len(xs))
	for i, x := range xs {
		out[i] = f(x)
	}
	return out
}

func (s *Server) orgOverview(w http.ResponseWriter, r *http.Request, p authority.OrgPrincipal, _ authority.Actor) error {
	ctx, o := r.Context(), s.a.Orgs()
	all := store.Page{Limit: 500}
	eps, err := o.Endpoints(ctx, p, all)
	if err != nil {
		return err
	}
	us, err := o.Users(ctx, p, all)
	if err != nil {
		return err
	}
	rs, err := o.Resources(ctx, p, all)
	if err != nil {
		return err
	}
	ps, err := o.Policies(ctx, p, all)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, OrgOverview{Organization: newOrgInfo(p.Org), User: newOrgUser(p.User), Endpoints: mapList(eps, newOrgEndpoint),
		Counts: map[string]int{"users": len(us), "resources": len(rs), "policies": len(ps), "endpoints": len(eps)}})
	return nil
}

func (s *Server) orgMe(w http.ResponseWriter, r *http.Request, p authority.OrgPrincipal, _ authority.Actor) error {
	out := OrgMe{Organization: newOrgInfo(p.Org), User: newOrgUser(p.User), ExpiresAt: p.Session.ExpiresAt, IdleTimeout: p.Session.IdleTimeout.String(),
		TrustedSession: p.Session.Trusted}
	if !p.Session.MFAAt.IsZero() {
		t := p.Session.MFAAt
		out.MFAAt = &t
	}
	if _, cookie := sessionToken(r); cookie {
		out.CSRFToken = s.CSRFToken(r, authority.Principal{Session: p.Session, User: p.User})
	}
	out.RecoveryCodesLeft, _ = s.a.Admin().RecoveryCodesLeft(r.Context(), p.User.ID)
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) orgLogout(w http.ResponseWriter, r *http.Request, p authority.OrgPrincipal, actor authority.Actor) error {
	tok, _ := sessionToken(r)
	if err := s.a.Orgs().Logout(r.Context(), p, actor, tok); err != nil {
		return err
	}
	clearCookie(w, authn.SessionCookieName)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) orgStepUp(w http.ResponseWriter, r *http.Request, p authority.OrgPrincipal, actor authority.Actor) error {
	var b stepUpBody
	if err := decodeJSON(w, r, &b); err != nil {
		return err
	}
	u, err := url.Parse(b.Path)
	prefix := "/v1/orgs/" + mux.Vars(r)["org"] + "/"
	if err != nil || u.RawQuery != "" || u.Host != "" || !strings.HasPrefix(u.Path, prefix) {
		return authority.Errf(authority.CodeInvalid, "path must be a path of this organization's API")
	}
	req := &http.Request{Method: strings.ToUpper(b.Method), URL: &url.URL{Path: u.Path}, Header: http.Header{}}
	var m mux.RouteMatch
	if !s.router.Match(req, &m) || m.MatchErr != nil || m.Route == nil {
		return authority.Errf(authority.CodeInvalid, "no such route")
	}
	tpl, err := m.Route.GetPathTemplate()
	if err != nil {
		return authority.Errf(authority.CodeInvalid, "no such route")
	}
	action, ok := orgHighRiskRoutes[req.Method+" "+tpl]
	if !ok {
		return authority.Errf(authority.CodeInvalid, "%s %s is not a high-risk action; it needs no step-up", req.Method, tpl)
	}
	g, err := s.a.Orgs().GrantStepUp(r.Context(), p, actor, action, u.Path, b.TOTPCode)
	if err != nil {
		var ae *authority.Error
		if errors.As(err, &ae) {
			return err
		}
		s.writeAuthnError(w, r, err)
		return nil
	}
	writeJSON(w, http.StatusOK, StepUpGrant{Action: string(g.Action), Method: req.Method, Path: g.Target, ExpiresAt: g.ExpiresAt})
	return nil
}

func (s *Server) orgUsers(w http.ResponseWriter, r *http.Request, p authority.OrgPrincipal, _ authority.Actor) error {
	pg, err := page(r)
	if err != nil {
		return err
	}
	us, err := s.a.Orgs().Users(r.Context(), p, pg)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, listOf(mapList(us, newOrgUser), pg))
	return nil
}

type orgUserBody struct {
	Name string `json:"name"`
	Role string `json:"role"`
}

func (s *Server) orgCreateUser(w http.ResponseWriter, r *http.Request, p authority.OrgPrincipal, actor authority.Actor) error {
	var b orgUserBody
	if err := decodeJSON(w, r, &b); err != nil {
		return err
	}
	u, secret, err := s.a.Orgs().CreateUser(r.Context(), p, actor, b.Name, b.Role)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, OrgUserCreated{User: newOrgUser(u), Organization: newOrgInfo(p.Org), SetupSecret: secret})
	return nil
}

func (s *Server) orgUser(w http.ResponseWriter, r *http.Request, p authority.OrgPrincipal, _ authority.Actor) error {
	u, err := s.a.Orgs().User(r.Context(), p, mux.Vars(r)["uid"])
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, newOrgUser(u))
	return nil
}

func (s *Server) orgSetUserDisabled(disabled bool) orgHandler {
	return func(w http.ResponseWriter, r *http.Request, p authority.OrgPrincipal, actor authority.Actor) error {
		u, err := s.a.Orgs().SetUserDisabled(r.Context(), p, actor, mux.Vars(r)["uid"], disabled)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, newOrgUser(u))
		return nil
	}
}

func (s *Server) orgSessions(w http.ResponseWriter, r *http.Request, p authority.OrgPrincipal, _ authority.Actor) error {
	pg, err := page(r)
	if err != nil {
		return err
	}
	ss, err := s.a.Orgs().Sessions(r.Context(), p, pg)
	if err != nil {
		return err
	}
	cur := p.Session.ID.String()
	writeJSON(w, http.StatusOK, listOf(mapList(ss, func(x store.OrgSession) OrgSession {
		return OrgSession{ID: x.ID, UserID: x.UserID, UserName: x.UserName, CreatedAt: x.CreatedAt, LastSeenAt: x.LastSeenAt, ExpiresAt: x.ExpiresAt,
			Trusted: x.Trusted, Current: x.ID == cur}
	}), pg))
	return nil
}

func (s *Server) orgRevokeSession(w http.ResponseWriter, r *http.Request, p authority.OrgPrincipal, actor authority.Actor) error {
	if err := s.a.Orgs().RevokeSession(r.Context(), p, actor, mux.Vars(r)["sid"]); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) orgEndpoints(w http.ResponseWriter, r *http.Request, p authority.OrgPrincipal, _ authority.Actor) error {
	pg, err := page(r)
	if err != nil {
		return err
	}
	es, err := s.a.Orgs().Endpoints(r.Context(), p, pg)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, listOf(mapList(es, newOrgEndpoint), pg))
	return nil
}

func (s *Server) orgEndpoint(w http.ResponseWriter, r *http.Request, p authority.OrgPrincipal, _ authority.Actor) error {
	e, err := s.a.Orgs().Endpoint(r.Context(), p, mux.Vars(r)["eid"])
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, newOrgEndpoint(e))
	return nil
}

func (s *Server) orgResources(w http.ResponseWriter, r *http.Request, p authority.OrgPrincipal, _ authority.Actor) error {
	pg, err := page(r)
	if err != nil {
		return err
	}
	rs, err := s.a.Orgs().Resources(r.Context(), p, pg)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, listOf(mapList(rs, newOrgResource), pg))
	return nil
}

func (s *Server) orgCreateResource(w http.ResponseWriter, r *http.Request, p authority.OrgPrincipal, actor authority.Actor) error {
	var b authority.ResourceRequest
	if err := decodeJSON(w, r, &b); err != nil {
		return err
	}
	res, err := s.a.Orgs().CreateResource(r.Context(), p, actor, b)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, newOrgResource(res))
	return nil
}

func (s *Server) orgResource(w http.ResponseWriter, r *http.Request, p authority.OrgPrincipal, _ authority.Actor) error {
	res, err := s.a.Orgs().Resource(r.Context(), p, mux.Vars(r)["rid"])
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, newOrgResource(res))
	return nil
}

func (s *Server) orgDeleteResource(w http.ResponseWriter, r *http.Request, p authority.OrgPrincipal, actor authority.Actor) error {
	if err := s.a.Orgs().DeleteResource(r.Context(), p, actor, mux.Vars(r)["rid"]); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) orgPolicies(w http.ResponseWriter, r *http.Request, p authority.OrgPrincipal, _ authority.Actor) error {
	pg, err := page(r)
	if err != nil {
		return err
	}
	ps, err := s.a.Orgs().Policies(r.Context(), p, pg)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, listOf(mapList(ps, newOrgPolicy), pg))
	return nil
}

func (s *Server) orgCreatePolicy(w http.ResponseWriter, r *http.Request, p authority.OrgPrincipal, actor authority.Actor) error {
	var b authority.PolicyRequest
	if err := decodeJSON(w, r, &b); err != nil {
		return err
	}
	pol, err := s.a.Orgs().CreatePolicy(r.Context(), p, actor, b)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, newOrgPolicy(pol))
	return nil
}

func (s *Server) orgPolicy(w http.ResponseWriter, r *http.Request, p authority.OrgPrincipal, _ authority.Actor) error {
	pol, err := s.a.Orgs().Policy(r.Context(), p, mux.Vars(r)["pid"])
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, newOrgPolicy(pol))
	return nil
}

func (s *Server) orgDeletePolicy(w http.ResponseWriter, r *http.Request, p authority.OrgPrincipal, actor authority.Actor) error {
	if err := s.a.Orgs().DeletePolicy(r.Context(), p, actor, mux.Vars(r)["pid"]); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) orgRequestAccess(w http.ResponseWriter, r *http.Request, p authority.OrgPrincipal, actor authority.Actor) error {
	var b authority.AccessSessionRequest
	if err := decodeJSON(w, r, &b); err != nil {
		return err
	}
	x, err := s.a.Orgs().RequestAccess(r.Context(), p, actor, b)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, s.newOrgAccessSession(x))
	return nil
}

func (s *Server) orgAccessSessions(w http.ResponseWriter, r *http.Request, p authority.OrgPrincipal, _ authority.Actor) error {
	pg, err := page(r)
	if err != nil {
		return err
	}
	xs, err := s.a.Orgs().AccessSessions(r.Context(), p, pg)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, listOf(mapList(xs, s.newOrgAccessSession), pg))
	return nil
}

func (s *Server) orgAccessSession(w http.ResponseWriter, r *http.Request, p authority.OrgPrincipal, _ authority.Actor) error {
	x, err := s.a.Orgs().AccessSession(r.Context(), p, mux.Vars(r)["aid"])
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s.newOrgAccessSession(x))
	return nil
}

func (s *Server) orgRevokeAccessSession(w http.ResponseWriter, r *http.Request, p authority.OrgPrincipal, actor authority.Actor) error {
	x, err := s.a.Orgs().RevokeAccessSession(r.Context(), p, actor, mux.Vars(r)["aid"])
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s.newOrgAccessSession(x))
	return nil
}

func (s *Server) orgAudit(w http.ResponseWriter, r *http.Request, p authority.OrgPrincipal, _ authority.Actor) error {
	pg, err := page(r)
	if err != nil {
		return err
	}
	es, err := s.a.Orgs().Audit(r.Context(), p, pg)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, listOf(mapList(es, newOrgAuditEvent), pg))
	return nil
}

// OrgAuditVerdict answers GET /v1/orgs/{org}/audit/verify.
type OrgAuditVerdict struct {
	Intact        bool   `json:"intact"`
	Events        int    `json:"events"`
	BrokenEventID int64  `json:"broken_event_id,omitempty"`
	Reason        string `json:"reason,omitempty"`
}

func (s *Server) orgAuditVerify(w http.ResponseWriter, r *http.Request, p authority.OrgPrincipal, _ authority.Actor) error {
	v, err := s.a.Orgs().VerifyAudit(r.Context(), p)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, OrgAuditVerdict{Intact: v.Intact, Events: v.Events, BrokenEventID: v.BrokenEventID, Reason: v.Reason})
	return nil
}

// Account security of the session's own account: the same operations as
// platform accounts (login.go), on the organization's routes.

func (s *Server) orgRecoveryCodes(w http.ResponseWriter, r *http.Request, p authority.OrgPrincipal, actor authority.Actor) error {
	var b codeBody
	if err := decodeJSON(w, r, &b); err != nil {
		return err
	}
	codes, err := s.a.Admin().RegenerateRecoveryCodes(r.Context(), p.Account(), actor, b.TOTPCode)
	if err != nil {
		s.writeAuthnError(w, r, err)
		return nil
	}
	writeJSON(w, http.StatusOK, map[string]any{"recovery_codes": codes})
	return nil
}

func (s *Server) orgDevices(w http.ResponseWriter, r *http.Request, p authority.OrgPrincipal, _ authority.Actor) error {
	ds, err := s.a.Admin().Devices.List(r.Context(), p.User.ID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, List[DeviceView]{Items: mapList(ds, deviceView)})
	return nil
}

func (s *Server) orgTrustDevice(w http.ResponseWriter, r *http.Request, p authority.OrgPrincipal, actor authority.Actor) error {
	var b trustBody
	if err := decodeJSON(w, r, &b); err != nil {
		return err
	}
	tok, d, err := s.a.Admin().TrustDevice(r.Context(), p.Account(), actor, b.Label, sourceIP(r))
	if err != nil {
		return err
	}
	http.SetCookie(w, authn.NewSecureCookie(authn.DeviceCookieName, tok, d.ExpiresAt))
	writeJSON(w, http.StatusCreated, deviceView(d))
	return nil
}

func (s *Server) orgRevokeDevice(w http.ResponseWriter, r *http.Request, p authority.OrgPrincipal, actor authority.Actor) error {
	if err := s.a.Admin().RevokeDevice(r.Context(), p.Account(), actor, mux.Vars(r)["did"]); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"revoked": true})
	return nil
}

// --- platform routes

type inviteBody struct {
	Name string `json:"name"`
	Role string `json:"role"`
}

func (s *Server) inviteOrgAdmin(w http.ResponseWriter, r *http.Request, actor authority.Actor) error {
	var b inviteBody
	if err := decodeJSON(w, r, &b); err != nil {
		return err
	}
	u, org, secret, err := s.a.Orgs().InviteAdmin(r.Context(), actor, mux.Vars(r)["org"], b.Name, b.Role)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, OrgUserCreated{User: newOrgUser(u), Organization: newOrgInfo(org), SetupSecret: secret})
	return nil
}

// PlatformOrgEndpoint is an organization endpoint with its backing nodes
// (platform view only).
type PlatformOrgEndpoint struct {
	OrgEndpoint
	OrganizationID string                     `json:"organization_id"`
	Nodes          []authority.EndpointBacker `json:"nodes"`
}

func newPlatformOrgEndpoint(e authority.PlatformEndpoint) PlatformOrgEndpoint {
	return PlatformOrgEndpoint{OrgEndpoint: newOrgEndpoint(e.OrgEndpointView), OrganizationID: e.OrganizationID, Nodes: e.Nodes}
}

func (s *Server) platformOrgEndpoints(w http.ResponseWriter, r *http.Request, _ authority.Actor) error {
	es, err := s.a.Orgs().PlatformEndpoints(r.Context(), mux.Vars(r)["org"])
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, listOf(mapList(es, newPlatformOrgEndpoint), store.Page{Limit: 500}))
	return nil
}

func (s *Server) publishOrgEndpoint(w http.ResponseWriter, r *http.Request, actor authority.Actor) error {
	var b authority.PublishEndpointRequest
	if err := decodeJSON(w, r, &b); err != nil {
		return err
	}
	e, err := s.a.Orgs().PublishEndpoint(r.Context(), actor, mux.Vars(r)["org"], b)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, newPlatformOrgEndpoint(e))
	return nil
}

func (s *Server) withdrawOrgEndpoint(w http.ResponseWriter, r *http.Request, actor authority.Actor) error {
	v := mux.Vars(r)
	if err := s.a.Orgs().WithdrawEndpoint(r.Context(), actor, v["org"], v["eid"]); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// --- organization console (httpapi/console, NewOrg)

// orgConsoleSource implements console.OrgSource: pages show exactly what the
// organization API answers the same session.
type orgConsoleSource struct{ s *Server }

// Principal implements console.OrgSource (session cookie only).
func (c orgConsoleSource) Principal(r *http.Request, org string) (authority.OrgPrincipal, error) {
	ck, err := r.Cookie(authn.SessionCookieName)
	if err != nil || ck.Value == "" {
		return authority.OrgPrincipal{}, authn.ErrNoSession
	}
	return c.s.a.Orgs().Authenticate(r.Context(), ck.Value, sourceIP(r), org)
}

// CSRFToken implements console.OrgSource.
func (c orgConsoleSource) CSRFToken(r *http.Request, p authority.OrgPrincipal) string {
	return c.s.CSRFToken(r, authority.Principal{Session: p.Session, User: p.User})
}

// bufferWriter collects an in-process API answer.
type bufferWriter struct {
	h    http.Header
	code int
	buf  []byte
}

func (b *bufferWriter) Header() http.Header { return b.h }
func (b *bufferWriter) Write(p []byte) (int, error) {
	b.buf = append(b.buf, p...)
	return len(p), nil
}
func (b *bufferWriter) WriteHeader(code int) { b.code = code }

// Read implements console.OrgSource: it serves GET /v1/orgs/{org}{path}
// through the router with the page request's own session and decodes it.
func (c orgConsoleSource) Read(r *http.Request, org, path string) (any, error) {
	p, q, _ := strings.Cut(path, "?")
	req := r.Clone(r.Context())
	req.Method, req.Body, req.ContentLength, req.RequestURI = http.MethodGet, http.NoBody, 0, ""
	req.URL = &url.URL{Path: "/v1/orgs/" + url.PathEscape(org) + p, RawQuery: q}
	bw := &bufferWriter{h: http.Header{}, code: http.StatusOK}
	c.s.router.ServeHTTP(bw, req)
	if bw.code != http.StatusOK {
		var eb ErrorBody
		if json.Unmarshal(bw.buf, &eb) == nil && eb.Error.Message != "" {
			return nil, authority.Errf(authority.Code(eb.Error.Code), "%s", eb.Error.Message)
		}
		return nil, authority.Errf(authority.CodeInternal, "the organization API answered %d", bw.code)
	}
	var out any
	if err := json.Unmarshal(bw.buf, &out); err != nil {
		return nil, err
	}
	return out, nil
}
