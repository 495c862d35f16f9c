package authority

// Organizations (spec C9): organization accounts with the platform's account
// security, logical service endpoints published by the platform, and the
// organization's own resources, policies, sessions and audit.
//
// Tenant isolation is structural: every organization operation takes an
// OrgPrincipal (an authenticated organization session) and reads and writes
// only rows of the principal's organization, filtered in SQL; another
// organization's object answers not_found exactly like one that does not
// exist. Results are the org-side types below (OrgEndpointView carries a
// health summary, never the backing nodes or their count).

import (
	"context"
	"errors"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rap-fabric/core/authn"
	"github.com/rap-fabric/core/snapshot"
	"github.com/rap-fabric/core/store"
)

// OrgsConfig configures the organization subsystem. Zero values take defaults.
type OrgsConfig struct {
	// SetupTTL is how long an organization account's one-time setup secret
	// stays valid; 0 means the admin accounts' SetupTTL (72 h).
	SetupTTL time.Duration
}

// Validate reports the first unusable field of c as a *ConfigError (Field
// relative to OrgsConfig).
func (c OrgsConfig) Validate() error {
	if c.SetupTTL < 0 || c.SetupTTL > 30*24*time.Hour {
		return configErr("SetupTTL", "%s out of 0..720h", c.SetupTTL)
	}
	return nil
}

// Orgs is the organization subsystem of one authority process.
type Orgs struct {
	a   *Authority
	cfg OrgsConfig
}

func newOrgs(a *Authority, cfg OrgsConfig) (*Orgs, error) {
	if cfg.SetupTTL == 0 {
		cfg.SetupTTL = 72 * time.Hour
	}
	return &Orgs{a: a, cfg: cfg}, nil
}

// OrgPrincipal is an authenticated organization session.
type OrgPrincipal struct {
	Session authn.Session
	User    store.AdminUser
	Org     store.Organization
}

// IsAdmin reports whether the principal is an organization admin.
func (p OrgPrincipal) IsAdmin() bool {
	return p.User.OrgRole != nil && *p.User.OrgRole == store.OrgRoleAdmin
}

// principal returns the account principal (for the shared step-up and risk code).
func (p OrgPrincipal) principal() Principal { return Principal{Session: p.Session, User: p.User} }

// Account returns the principal as an account principal, for the account
// security operations organization and platform accounts share (recovery
// codes, trusted devices).
func (p OrgPrincipal) Account() Principal { return p.principal() }

// Actor returns the audit actor of the principal.
func (p OrgPrincipal) Actor(device, source string) Actor {
	return p.principal().Actor(device, source)
}

// Authenticate validates an organization session token from source for the
// organization named by orgRef (id or slug). A platform account is refused
// (no_session), and so is an organization account on another organization's
// path — that one as not_found, like an organization that does not exist.
func (o *Orgs) Authenticate(ctx context.Context, token string, source netip.Addr, orgRef string) (OrgPrincipal, error) {
	ad := o.a.admin
	s, err := ad.Sessions.Validate(ctx, token, source)
	if err != nil {
		if authn.ErrorCode(err) == "internal" {
			return OrgPrincipal{}, asError(err)
		}
		return OrgPrincipal{}, err
	}
	u, err := store.AdminUserByID(ctx, o.a.db.Pool, s.UserID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return OrgPrincipal{}, asError(err)
	}
	if err != nil || u.Disabled || !u.Organization() || u.Platform() {
		return OrgPrincipal{}, authn.ErrNoSession
	}
	org, err := store.GetOrganization(ctx, o.a.db.Pool, *u.OrganizationID)
	if err != nil {
		return OrgPrincipal{}, asError(err)
	}
	if orgRef != org.ID && orgRef != org.Slug {
		return OrgPrincipal{}, Errf(CodeNotFound, "not found")
	}
	if org.Status != "active" {
		return OrgPrincipal{}, Errf(CodeForbidden, "this organization is suspended")
	}
	return OrgPrincipal{Session: s, User: u, Org: org}, nil
}

// op builds an audited operation in the principal's organization.
func (p OrgPrincipal) op(action string, actor Actor, kind, target string, details map[string]any) Op {
	return Op{Action: action, Actor: actor, OrganizationID: p.Org.ID, TargetKind: kind, TargetID: target, Details: details}
}

func (o *Orgs) requireAdmin(ctx context.Context, p OrgPrincipal, actor Actor, action string) error {
	if p.IsAdmin() {
		return nil
	}
	_ = o.a.Audit(ctx, p.op(action, actor, "route", "", map[string]any{"error_code": string(CodeForbidden)}), "denied")
	return Errf(CodeForbidden, "only organization admins may do this")
}

// GrantStepUp verifies a fresh TOTP code and grants one high-risk
// organization action on one target to the session (audited in the
// organization's log).
func (o *Orgs) GrantStepUp(ctx context.Context, p OrgPrincipal, actor Actor, action authn.Action, target, code string) (authn.StepUpGrant, error) {
	if !strings.HasPrefix(string(action), "org.") || action == authn.ActionOrgInvite || action == authn.ActionOrgEndpoint {
		return authn.StepUpGrant{}, Errf(CodeInvalid, "not an organization action")
	}
	g, err := o.a.admin.StepUp.Grant(ctx, p.Session, action, target, code)
	outcome, details := "ok", map[string]any{"action": string(action)}
	if err != nil {
		outcome = "denied"
		details["reason"] = authn.ErrorCode(err)
	}
	_ = o.a.AuditRisk(ctx, p.op("auth.step_up", actor, "step_up", string(action), details), outcome, p.principal().Risk(o.a.admin.Now()))
	return g, err
}

// RequireStepUp consumes the session's grant for (action, target), or audits
// the refusal and returns step_up_required.
func (o *Orgs) RequireStepUp(ctx context.Context, p OrgPrincipal, actor Actor, action authn.Action, target string) error {
	err := o.a.admin.StepUp.Require(ctx, p.Session, action, target)
	if err == nil {
		return nil
	}
	if !errors.Is(err, authn.ErrStepUpRequired) {
		return err
	}
	risk := p.principal().Risk(o.a.admin.Now())
	risk["step_up"] = "missing"
	_ = o.a.AuditRisk(ctx, p.op(string(action), actor, "route", target, map[string]any{"error_code": string(CodeStepUp)}), "denied", risk)
	return &Error{Code: CodeStepUp, Message: "this action needs a fresh second factor: POST /v1/orgs/{org}/step-up first",
		Details: map[string]any{"action": string(action), "target": target}, Err: err}
}

// Logout ends the principal's session.
func (o *Orgs) Logout(ctx context.Context, p OrgPrincipal, actor Actor, token string) error {
	_ = o.a.admin.StepUp.Forget(ctx, p.Session)
	if err := o.a.admin.Sessions.Revoke(ctx, token); err != nil {
		return err
	}
	_ = o.a.Audit(ctx, p.op("auth.logout", actor, "user", p.User.ID, nil), "ok")
	return nil
}

// --- accounts

var (
	orgRoles  = []string{store.OrgRoleAdmin, store.OrgRoleMember}
	orgUserRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,39}$`)
)

// createUser creates an account of org. Its login name is name@<org slug>:
// names are unique per organization, so a name taken in another organization
// is neither refused nor revealed.
func (o *Orgs) createUser(ctx context.Context, op Op, org store.Organization, name, role string) (store.AdminUser, string, error) {
	if !orgUserRE.MatchString(name) {
		return store.AdminUser{}, "", Errf(CodeInvalid, "user name must match %s (the login name is name@%s)", orgUserRE, org.Slug)
	}
	name += "@" + org.Slug
	if !userNameRE.MatchString(name) {
		return store.AdminUser{}, "", Errf(CodeInvalid, "user name is too long")
	}
	orgID := org.ID
	if !slices.Contains(orgRoles, role) {
		return store.AdminUser{}, "", Errf(CodeInvalid, "role must be org_admin or org_member")
	}
	secret, err := o.a.admin.newSetupSecret()
	if err != nil {
		return store.AdminUser{}, "", err
	}
	id := store.NewID()
	op.TargetKind, op.TargetID = "user", id
	op.Details = map[string]any{"name": name, "role": role}
	_, err = Fenced(ctx, o.a, op, func(tx pgx.Tx) (bool, error) {
		err := store.InsertOrgUser(ctx, tx, id, name, orgID, role, setupHash(secret), o.a.admin.Now().Add(o.cfg.SetupTTL))
		if errors.Is(err, store.ErrConflict) {
			return false, Errf(CodeConflict, "an account with this name exists")
		}
		return true, err
	})
	if err != nil {
		return store.AdminUser{}, "", err
	}
	u, err := store.OrgUserByID(ctx, o.a.db.Pool, orgID, id)
	return u, secret, adminErr(err)
}

// InviteAdmin is the platform side: a platform admin creates an account of
// organization orgRef with role (normally org_admin) and receives its one-time
// setup secret (only its hash is stored).
func (o *Orgs) InviteAdmin(ctx context.Context, actor Actor, orgRef, name, role string) (store.AdminUser, store.Organization, string, error) {
	org, err := store.GetOrganization(ctx, o.a.db.Pool, orgRef)
	if err != nil {
		return store.AdminUser{}, org, "", asError(err)
	}
	if role == "" {
		role = store.OrgRoleAdmin
	}
	u, secret, err := o.createUser(ctx, Op{Action: "org.user.invite", Actor: actor, OrganizationID: org.ID}, org, name, role)
	return u, org, secret, err
}

// CreateUser lets an organization admin add an account to its organization.
func (o *Orgs) CreateUser(ctx context.Context, p OrgPrincipal, actor Actor, name, role string) (store.AdminUser, string, error) {
	if err := o.requireAdmin(ctx, p, actor, "org.user.create"); err != nil {
		return store.AdminUser{}, "", err
	}
	return o.createUser(ctx, p.op("org.user.create", actor, "", "", nil), p.Org, name, role)
}

// Users lists the organization's accounts.
func (o *Orgs) Users(ctx context.Context, p OrgPrincipal, pg store.Page) ([]store.AdminUser, error) {
	us, err := store.ListOrgUsers(ctx, o.a.db.Pool, p.Org.ID, pg)
	return us, adminErr(err)
}

// User returns one account of the organization.
func (o *Orgs) User(ctx context.Context, p OrgPrincipal, id string) (store.AdminUser, error) {
	u, err := store.OrgUserByID(ctx, o.a.db.Pool, p.Org.ID, id)
	return u, adminErr(err)
}

// SetUserDisabled disables or enables an account of the organization
// (admins; fenced, audited); disabling ends its sessions, access sessions
// and trusted devices.
func (o *Orgs) SetUserDisabled(ctx context.Context, p OrgPrincipal, actor Actor, id string, disabled bool) (store.AdminUser, error) {
	action := "org.user.enable"
	if disabled {
		action = "org.user.disable"
	}
	if err := o.requireAdmin(ctx, p, actor, action); err != nil {
		return store.AdminUser{}, err
	}
	if disabled && id == p.User.ID {
		return store.AdminUser{}, Errf(CodeInvalid, "an admin cannot disable their own account")
	}
	if _, err := o.User(ctx, p, id); err != nil {
		return store.AdminUser{}, err
	}
	_, err := Fenced(ctx, o.a, p.op(action, actor, "user", id, nil), func(tx pgx.Tx) (bool, error) {
		if err := store.SetOrgUserDisabled(ctx, tx, p.Org.ID, id, disabled); err != nil || !disabled {
			return true, err
		}
		// A disabled account's access sessions end with it.
		_, err := store.RevokeUserAccessSessions(ctx, tx, p.Org.ID, id, p.User.ID, o.a.admin.Now())
		return true, err
	})
	if err != nil {
		return store.AdminUser{}, err
	}
	if disabled {
		if _, err := o.a.admin.Sessions.RevokeUser(ctx, id); err != nil {
			return store.AdminUser{}, adminErr(err)
		}
		if err := o.a.admin.Devices.RevokeAll(ctx, id); err != nil {
			return store.AdminUser{}, adminErr(err)
		}
	}
	return o.User(ctx, p, id)
}

// --- sessions

// Sessions lists the live sessions of the organization's accounts (admins:
// all; members: their own).
func (o *Orgs) Sessions(ctx context.Context, p OrgPrincipal, pg store.Page) ([]store.OrgSession, error) {
	ss, err := store.ListOrgSessions(ctx, o.a.db.Pool, p.Org.ID, o.a.admin.Now(), pg)
	if err != nil {
		return nil, adminErr(err)
	}
	if !p.IsAdmin() {
		ss = slices.DeleteFunc(ss, func(s store.OrgSession) bool { return s.UserID != p.User.ID })
	}
	return ss, nil
}

// RevokeSession ends a session of the organization (admins: any; members:
// their own). It takes effect on the session's next request.
func (o *Orgs) RevokeSession(ctx context.Context, p OrgPrincipal, actor Actor, id string) error {
	if !p.IsAdmin() {
		ss, err := o.Sessions(ctx, p, store.Page{Limit: 500})
		if err != nil {
			return err
		}
		if !slices.ContainsFunc(ss, func(s store.OrgSession) bool { return s.ID == id }) {
			return Errf(CodeNotFound, "not found")
		}
	}
	userID, err := store.DeleteOrgSession(ctx, o.a.db.Pool, p.Org.ID, id)
	if err != nil {
		return asError(err)
	}
	target := id
	if len(target) > 16 {
		target = target[:16]
	}
	_ = o.a.Audit(ctx, p.op("org.session.revoke", actor, "session", target, map[string]any{"user_id": userID}), "ok")
	return nil
}

// --- endpoints

// Endpoint health summaries.
const (
	HealthOK       = "ok"
	HealthDegraded = "degraded"
	HealthDown     = "down"
)

// OrgEndpointView is an endpoint as its organization sees it: no backing
// nodes, clusters or counts — only a health summary derived from them.
type OrgEndpointView struct {
	store.OrgEndpoint
	Health string
}

func summarize(b store.EndpointBacking) string {
	switch {
	case b.Total > 0 && b.Serving == b.Total:
		return HealthOK
	case b.Serving == 0:
		return HealthDown
	default:
		return HealthDegraded
	}
}

// Endpoints lists the endpoints published to the organization with their
// health summary.
func (o *Orgs) Endpoints(ctx context.Context, p OrgPrincipal, pg store.Page) ([]OrgEndpointView, error) {
	return o.endpoints(ctx, p.Org.ID, pg)
}

func (o *Orgs) endpoints(ctx context.Context, orgID string, pg store.Page) ([]OrgEndpointView, error) {
	es, err := store.ListOrgEndpoints(ctx, o.a.db.Pool, orgID, pg)
	if err != nil {
		return nil, asError(err)
	}
	bs, err := store.OrgEndpointBackings(ctx, o.a.db.Pool, orgID)
	if err != nil {
		return nil, asError(err)
	}
	out := make([]OrgEndpointView, len(es))
	for i, e := range es {
		out[i] = OrgEndpointView{OrgEndpoint: e, Health: summarize(bs[e.ID])}
	}
	return out, nil
}

// Endpoint returns one endpoint of the organization (id or name).
func (o *Orgs) Endpoint(ctx context.Context, p OrgPrincipal, ref string) (OrgEndpointView, error) {
	e, err := store.GetOrgEndpoint(ctx, o.a.db.Pool, p.Org.ID, ref)
	if err != nil {
		return OrgEndpointView{}, asError(err)
	}
	bs, err := store.OrgEndpointBackings(ctx, o.a.db.Pool, p.Org.ID)
	if err != nil {
		return OrgEndpointView{}, asError(err)
	}
	return OrgEndpointView{OrgEndpoint: e, Health: summarize(bs[e.ID])}, nil
}

// EndpointBacker names a node backing an endpoint (platform side only).
type EndpointBacker struct {
	ClusterID string `json:"cluster_id"`
	NodeID    string `json:"node_id"`
}

// PublishEndpointRequest is what a platform admin publishes to an organization.
type PublishEndpointRequest struct {
	Name     string           `json:"name"`
	Kind     string           `json:"kind"`
	Protocol string           `json:"protocol"`
	Region   string           `json:"region"`
	Nodes    []EndpointBacker `json:"nodes"`
}

// PlatformEndpoint is an endpoint with its backing nodes (platform view).
type PlatformEndpoint struct {
	OrgEndpointView
	Nodes []EndpointBacker
}

var (
	orgNameRE    = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
	orgObjNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)
	regionRE     = regexp.MustCompile(`^[A-Za-z0-9._-]{0,64}$`)
	endpointKind = []string{"entry", "egress"}
	endpointProt = []string{"tcp", "udp", "http", "https", "ssh", "rdp", "wireguard"}
	resourceProt = []string{"tcp", "udp", "http", "https", "ssh", "rdp"}
)

// PublishEndpoint publishes a logical endpoint backed by nodes to an
// organization (platform admins; fenced; audited in the platform log and, with
// its name only, in the organization's).
func (o *Orgs) PublishEndpoint(ctx context.Context, actor Actor, orgRef string, req PublishEndpointRequest) (PlatformEndpoint, error) {
	switch {
	case !orgNameRE.MatchString(req.Name):
		return PlatformEndpoint{}, Errf(CodeInvalid, "name must match %s", orgNameRE)
	case !slices.Contains(endpointKind, req.Kind):
		return PlatformEndpoint{}, Errf(CodeInvalid, "kind must be entry or egress")
	case !slices.Contains(endpointProt, req.Protocol):
		return PlatformEndpoint{}, Errf(CodeInvalid, "protocol must be one of %s", strings.Join(endpointProt, ", "))
	case !regionRE.MatchString(req.Region):
		return PlatformEndpoint{}, Errf(CodeInvalid, "region must match %s", regionRE)
	case len(req.Nodes) == 0 || len(req.Nodes) > 100:
		return PlatformEndpoint{}, Errf(CodeInvalid, "nodes must name 1 to 100 backing nodes")
	}
	for _, n := range req.Nodes {
		if !validUUID(n.ClusterID) || !validUUID(n.NodeID) {
			return PlatformEndpoint{}, Errf(CodeInvalid, "nodes: cluster_id and node_id must be ids")
		}
	}
	org, err := store.GetOrganization(ctx, o.a.db.Pool, orgRef)
	if err != nil {
		return PlatformEndpoint{}, asError(err)
	}
	id := store.NewID()
	op := Op{Action: "org.endpoint.publish", Actor: actor, OrganizationID: org.ID, TargetKind: "endpoint", TargetID: id,
		Details: map[string]any{"name": req.Name, "kind": req.Kind, "protocol": req.Protocol, "region": req.Region}}
	_, err = Fenced(ctx, o.a, op, func(tx pgx.Tx) (bool, error) {
		if _, err := store.InsertOrgEndpoint(ctx, tx, store.OrgEndpoint{ID: id, OrganizationID: org.ID, Name: req.Name, Kind: req.Kind,
			Protocol: req.Protocol, Region: req.Region}); err != nil {
			if errors.Is(err, store.ErrConflict) {
				return false, Errf(CodeConflict, "the organization already has an endpoint with this name")
			}
			return false, err
		}
		for _, n := range req.Nodes {
			err := store.InsertOrgEndpointNode(ctx, tx, store.OrgEndpointNode{EndpointID: id, ClusterID: n.ClusterID, NodeID: n.NodeID})
			if errors.Is(err, store.ErrConflict) {
				return false, Errf(CodeInvalid, "a backing node is listed twice")
			}
			if errors.Is(err, store.ErrConstraint) {
				return false, Errf(CodeInvalid, "a backing node is not a member of the named cluster")
			}
			if err != nil {
				return false, err
			}
		}
		return true, nil
	})
	if err != nil {
		return PlatformEndpoint{}, err
	}
	eps, err := o.PlatformEndpoints(ctx, org.ID)
	if err != nil {
		return PlatformEndpoint{}, err
	}
	for _, e := range eps {
		if e.ID == id {
			return e, nil
		}
	}
	return PlatformEndpoint{}, Errf(CodeNotFound, "not found")
}

// PlatformEndpoints lists an organization's endpoints with their backing
// nodes (platform view).
func (o *Orgs) PlatformEndpoints(ctx context.Context, orgRef string) ([]PlatformEndpoint, error) {
	org, err := store.GetOrganization(ctx, o.a.db.Pool, orgRef)
	if err != nil {
		return nil, asError(err)
	}
	es, err := o.endpoints(ctx, org.ID, store.Page{Limit: 500})
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(es))
	for i, e := range es {
		ids[i] = e.ID
	}
	ns, err := store.ListOrgEndpointNodes(ctx, o.a.db.Pool, ids)
	if err != nil {
		return nil, asError(err)
	}
	out := make([]PlatformEndpoint, len(es))
	for i, e := range es {
		out[i] = PlatformEndpoint{OrgEndpointView: e, Nodes: []EndpointBacker{}}
		for _, n := range ns {
			if n.EndpointID == e.ID {
				out[i].Nodes = append(out[i].Nodes, EndpointBacker{ClusterID: n.ClusterID, NodeID: n.NodeID})
			}
		}
	}
	return out, nil
}

// WithdrawEndpoint removes an endpoint from an organization (platform
// admins; refused while a resource uses it).
func (o *Orgs) WithdrawEndpoint(ctx context.Context, actor Actor, orgRef, id string) error {
	org, err := store.GetOrganization(ctx, o.a.db.Pool, orgRef)
	if err != nil {
		return asError(err)
	}
	e, err := store.GetOrgEndpoint(ctx, o.a.db.Pool, org.ID, id)
	if err != nil {
		return asError(err)
	}
	_, err = Fenced(ctx, o.a, Op{Action: "org.endpoint.withdraw", Actor: actor, OrganizationID: org.ID, TargetKind: "endpoint", TargetID: e.ID,
		Details: map[string]any{"name": e.Name}}, func(tx pgx.Tx) (bool, error) {
		err := store.DeleteOrgEndpoint(ctx, tx, org.ID, e.ID)
		if errors.Is(err, store.ErrConstraint) || errors.Is(err, store.ErrConflict) {
			return false, Errf(CodeConflict, "resources of the organization still use this endpoint")
		}
		return true, err
	})
	return err
}

// --- resources

// ResourceRequest creates a resource.
type ResourceRequest struct {
	Name     string `json:"name"`
	Protocol string `json:"protocol"`
	Address  string `json:"address"`
	Port     int    `json:"port"`
	Endpoint string `json:"endpoint"` // egress endpoint id or name
}

var hostRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*$`)

// CreateResource adds a resource reachable through one of the
// organization's egress endpoints (admins; fenced, audited).
func (o *Orgs) CreateResource(ctx context.Context, p OrgPrincipal, actor Actor, req ResourceRequest) (store.OrgResource, error) {
	if err := o.requireAdmin(ctx, p, actor, "org.resource.create"); err != nil {
		return store.OrgResource{}, err
	}
	_, ipErr := netip.ParseAddr(req.Address)
	switch {
	case !orgObjNameRE.MatchString(req.Name):
		return store.OrgResource{}, Errf(CodeInvalid, "name must match %s", orgObjNameRE)
	case !slices.Contains(resourceProt, req.Protocol):
		return store.OrgResource{}, Errf(CodeInvalid, "protocol must be one of %s", strings.Join(resourceProt, ", "))
	case len(req.Address) > 253 || (ipErr != nil && !hostRE.MatchString(req.Address)):
		return store.OrgResource{}, Errf(CodeInvalid, "address must be an IP address or a host name")
	case req.Port < 1 || req.Port > 65535:
		return store.OrgResource{}, Errf(CodeInvalid, "port must be 1 to 65535")
	case req.Endpoint == "" || len(req.Endpoint) > 64:
		return store.OrgResource{}, Errf(CodeInvalid, "endpoint must name one of the organization's egress endpoints")
	}
	e, err := store.GetOrgEndpoint(ctx, o.a.db.Pool, p.Org.ID, req.Endpoint)
	if err != nil || e.Kind != "egress" {
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return store.OrgResource{}, asError(err)
		}
		return store.OrgResource{}, Errf(CodeInvalid, "endpoint must name one of the organization's egress endpoints")
	}
	id := store.NewID()
	return Fenced(ctx, o.a, p.op("org.resource.create", actor, "resource", id, map[string]any{"name": req.Name, "protocol": req.Protocol, "endpoint": e.Name}),
		func(tx pgx.Tx) (store.OrgResource, error) {
			r, err := store.InsertOrgResource(ctx, tx, store.OrgResource{ID: id, OrganizationID: p.Org.ID, Name: req.Name, Protocol: req.Protocol,
				Address: req.Address, Port: req.Port, EndpointID: e.ID})
			if errors.Is(err, store.ErrConflict) {
				return r, Errf(CodeConflict, "a resource with this name exists")
			}
			return r, err
		})
}

// Resources lists the organization's resources.
func (o *Orgs) Resources(ctx context.Context, p OrgPrincipal, pg store.Page) ([]store.OrgResource, error) {
	rs, err := store.ListOrgResources(ctx, o.a.db.Pool, p.Org.ID, pg)
	return rs, adminErr(err)
}

// Resource returns one resource of the organization.
func (o *Orgs) Resource(ctx context.Context, p OrgPrincipal, id string) (store.OrgResource, error) {
	r, err := store.GetOrgResource(ctx, o.a.db.Pool, p.Org.ID, id)
	return r, adminErr(err)
}

// DeleteResource removes a resource (admins; fenced, audited).
func (o *Orgs) DeleteResource(ctx context.Context, p OrgPrincipal, actor Actor, id string) error {
	if err := o.requireAdmin(ctx, p, actor, "org.resource.delete"); err != nil {
		return err
	}
	r, err := o.Resource(ctx, p, id)
	if err != nil {
		return err
	}
	_, err = Fenced(ctx, o.a, p.op("org.resource.delete", actor, "resource", r.ID, map[string]any{"name": r.Name}), func(tx pgx.Tx) (bool, error) {
		var used bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM org_policies WHERE organization_id = $1 AND $2 = ANY(resource_ids))`, p.Org.ID, r.ID).Scan(&used); err != nil {
			return false, err
		}
		if used {
			return false, Errf(CodeConflict, "a policy still grants access to this resource")
		}
		return true, store.DeleteOrgResource(ctx, tx, p.Org.ID, r.ID)
	})
	return err
}

// --- policies

// PolicyRequest creates a policy.
type PolicyRequest struct {
	Name       string   `json:"name"`
	Subjects   []string `json:"subjects"`
	Resources  []string `json:"resources"`
	Endpoints  []string `json:"endpoints"`
	Window     string   `json:"window"` // "HH:MM-HH:MM" UTC, "" for always
	RequireMFA *bool    `json:"require_mfa"`
}

var subjectRE = regexp.MustCompile(`^(user|group):[a-z0-9][a-z0-9._@-]{0,63}$`)

func parseWindow(s string) (*int, *int, error) {
	if s == "" {
		return nil, nil, nil
	}
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return nil, nil, Errf(CodeInvalid, "window must be HH:MM-HH:MM (UTC)")
	}
	parse := func(x string) (int, bool) {
		t, err := time.Parse("15:04", x)
		if err != nil {
			return 0, false
		}
		return t.Hour()*60 + t.Minute(), true
	}
	x, ok1 := parse(a)
	y, ok2 := parse(b)
	if !ok1 || !ok2 || x == y {
		return nil, nil, Errf(CodeInvalid, "window must be HH:MM-HH:MM (UTC) with different ends")
	}
	return &x, &y, nil
}

func uniqueIDs(ids []string, what string, max int) ([]string, error) {
	if len(ids) == 0 || len(ids) > max {
		return nil, Errf(CodeInvalid, "%s must list 1 to %d ids", what, max)
	}
	out := slices.Clone(ids)
	slices.Sort(out)
	out = slices.Compact(out)
	for _, id := range out {
		if !validUUID(id) {
			return nil, Errf(CodeInvalid, "%s must list ids of the organization's %s", what, what)
		}
	}
	return out, nil
}

// CreatePolicy adds an access policy (admins; fenced, audited). Every
// referenced user, resource and endpoint must be the organization's own.
func (o *Orgs) CreatePolicy(ctx context.Context, p OrgPrincipal, actor Actor, req PolicyRequest) (store.OrgPolicy, error) {
	if err := o.requireAdmin(ctx, p, actor, "org.policy.create"); err != nil {
		return store.OrgPolicy{}, err
	}
	if !orgObjNameRE.MatchString(req.Name) {
		return store.OrgPolicy{}, Errf(CodeInvalid, "name must match %s", orgObjNameRE)
	}
	if len(req.Subjects) == 0 || len(req.Subjects) > 100 {
		return store.OrgPolicy{}, Errf(CodeInvalid, "subjects must list 1 to 100 of user:<name> or group:<name>")
	}
	users, err := store.ListOrgUsers(ctx, o.a.db.Pool, p.Org.ID, store.Page{Limit: 500})
	if err != nil {
		return store.OrgPolicy{}, asError(err)
	}
	for _, s := range req.Subjects {
		if !subjectRE.MatchString(s) {
			return store.OrgPolicy{}, Errf(CodeInvalid, "subjects must be user:<name> or group:<name>")
		}
		if name, ok := strings.CutPrefix(s, "user:"); ok && !slices.ContainsFunc(users, func(u store.AdminUser) bool { return u.Name == name }) {
			return store.OrgPolicy{}, Errf(CodeInvalid, "subjects: the organization has no user of that name")
		}
	}
	res, err := uniqueIDs(req.Resources, "resources", 100)
	if err != nil {
		return store.OrgPolicy{}, err
	}
	eps, err := uniqueIDs(req.Endpoints, "endpoints", 20)
	if err != nil {
		return store.OrgPolicy{}, err
	}
	ws, we, err := parseWindow(req.Window)
	if err != nil {
		return store.OrgPolicy{}, err
	}
	mfa := true
	if req.RequireMFA != nil {
		mfa = *req.RequireMFA
	}
	for _, c := range []struct {
		table, what string
		ids         []string
	}{{"org_resources", "resources", res}, {"org_endpoints", "endpoints", eps}} {
		n, err := store.CountOrgRows(ctx, o.a.db.Pool, c.table, p.Org.ID, c.ids)
		if err != nil {
			return store.OrgPolicy{}, asError(err)
		}
		if n != len(c.ids) {
			return store.OrgPolicy{}, Errf(CodeInvalid, "%s must list ids of the organization's %s", c.what, c.what)
		}
	}
	id := store.NewID()
	return Fenced(ctx, o.a, p.op("org.policy.create", actor, "policy", id, map[string]any{"name": req.Name, "subjects": req.Subjects, "require_mfa": mfa}),
		func(tx pgx.Tx) (store.OrgPolicy, error) {
			pol, err := store.InsertOrgPolicy(ctx, tx, store.OrgPolicy{ID: id, OrganizationID: p.Org.ID, Name: req.Name, Subjects: req.Subjects,
				ResourceIDs: res, EndpointIDs: eps, WindowStart: ws, WindowEnd: we, RequireMFA: mfa})
			if errors.Is(err, store.ErrConflict) {
				return pol, Errf(CodeConflict, "a policy with this name exists")
			}
			return pol, err
		})
}

// Policies lists the organization's policies.
func (o *Orgs) Policies(ctx context.Context, p OrgPrincipal, pg store.Page) ([]store.OrgPolicy, error) {
	ps, err := store.ListOrgPolicies(ctx, o.a.db.Pool, p.Org.ID, pg)
	return ps, adminErr(err)
}

// Policy returns one policy of the organization.
func (o *Orgs) Policy(ctx context.Context, p OrgPrincipal, id string) (store.OrgPolicy, error) {
	pol, err := store.GetOrgPolicy(ctx, o.a.db.Pool, p.Org.ID, id)
	return pol, adminErr(err)
}

// DeletePolicy removes a policy (admins; fenced, audited).
func (o *Orgs) DeletePolicy(ctx context.Context, p OrgPrincipal, actor Actor, id string) error {
	if err := o.requireAdmin(ctx, p, actor, "org.policy.delete"); err != nil {
		return err
	}
	pol, err := o.Policy(ctx, p, id)
	if err != nil {
		return err
	}
	_, err = Fenced(ctx, o.a, p.op("org.policy.delete", actor, "policy", pol.ID, map[string]any{"name": pol.Name}), func(tx pgx.Tx) (bool, error) {
		return true, store.DeleteOrgPolicy(ctx, tx, p.Org.ID, pol.ID)
	})
	return err
}

// --- audit

// Audit lists the organization's own audit events, newest first.
func (o *Orgs) Audit(ctx context.Context, p OrgPrincipal, pg store.Page) ([]store.AuditEvent, error) {
	es, err := store.ListOrgAudit(ctx, o.a.db.Pool, p.Org.ID, pg)
	return es, adminErr(err)
}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

func validUUID(s string) bool { return uuidRE.MatchString(s) }

// loadOrgAccess fills the organization access inputs of a cluster's
// snapshot state (the builder gives each node only what it backs).
func loadOrgAccess(ctx context.Context, q store.Querier, clusterID string, s *snapshot.State) error {
	eps, nodes, res, pols, err := store.OrgSnapshotInputs(ctx, q, clusterID)
	if err != nil {
		return err
	}
	for _, e := range eps {
		s.OrgEndpoints = append(s.OrgEndpoints, snapshot.OrgEndpoint{ID: e.ID, OrganizationID: e.OrganizationID, Name: e.Name, Kind: e.Kind,
			Protocol: e.Protocol, NodeIDs: nodes[e.ID]})
	}
	for _, r := range res {
		s.OrgResources = append(s.OrgResources, snapshot.OrgResource{ID: r.ID, OrganizationID: r.OrganizationID, Protocol: r.Protocol,
			Address: r.Address, Port: r.Port, EndpointID: r.EndpointID})
	}
	for _, p := range pols {
		sp := snapshot.OrgPolicy{ID: p.ID, OrganizationID: p.OrganizationID, Subjects: p.Subjects, ResourceIDs: p.ResourceIDs,
			EndpointIDs: p.EndpointIDs, WindowStart: -1, WindowEnd: -1, RequireMFA: p.RequireMFA}
		if p.WindowStart != nil && p.WindowEnd != nil {
			sp.WindowStart, sp.WindowEnd = *p.WindowStart, *p.WindowEnd
		}
		s.OrgPolicies = append(s.OrgPolicies, sp)
	}
	return nil
}

// OrgAuditVerdict is the organization's view of the audit chain's integrity:
// whether the chain holding its events is intact and, when the first break
// is one of its own events, which one. Nothing about other events is told.
type OrgAuditVerdict struct {
	Intact bool
	// Events is how many of the organization's chained events were covered.
	Events int
	// BrokenEventID is the organization's event at the first break (0 when
	// the chain is intact or the break is outside its events).
	BrokenEventID int64
	Reason        string
}

// VerifyAudit checks the hash chain that holds the organization's events
// (the platform chain: every event links to the one before it and its hash
// covers the organization id, so an edited, moved, inserted or deleted event
// of the organization breaks it).
func (o *Orgs) VerifyAudit(ctx context.Context, p OrgPrincipal) (OrgAuditVerdict, error) {
	// Against the newest Raft-agreed checkpoint when there is one, so
	// truncation and replaced rows are caught too.
	var anchor *AuditAnchor
	if an, err := o.a.LatestAuditCheckpoint(); err == nil {
		anchor = &an
	}
	res, err := o.a.VerifyAudit(ctx, anchor)
	if err != nil {
		return OrgAuditVerdict{}, asError(err)
	}
	var v OrgAuditVerdict
	if err := o.a.db.Pool.QueryRow(ctx, `SELECT count(*) FROM cluster_audit_events WHERE organization_id = rap_uuid($1) AND seq IS NOT NULL`, p.Org.ID).Scan(&v.Events); err != nil {
		return OrgAuditVerdict{}, asError(err)
	}
	if res.OK() {
		v.Intact = true
		return v, nil
	}
	v.Reason = string(res.Break.Reason)
	var id int64
	err = o.a.db.Pool.QueryRow(ctx, `SELECT id FROM cluster_audit_events WHERE seq = $1 AND organization_id = rap_uuid($2)`, res.Break.Seq, p.Org.ID).Scan(&id)
	if err == nil {
		v.BrokenEventID = id
	}
	return v, nil
}
