package authority

// Organization access sessions (spec C9): an organization user asks to reach
// one of the organization's resources through one of its endpoints; the
// organization's policies decide (DecideAccess, a pure function), a grant is
// recorded as an access session (fenced, audited) and a denial is audited
// with its reason. Admins list and revoke the organization's access
// sessions; members see and revoke their own. Revocation is a status change
// every later read and check sees, so it takes effect at once.

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rap-fabric/core/store"
)

// Access decision reasons.
const (
	AccessGranted       = "granted"
	AccessNoPolicy      = "no_policy"      // no policy of the organization names the subject, resource and endpoint
	AccessOutsideWindow = "outside_window" // one does, but not at this time of day
	AccessMFARequired   = "mfa_required"   // one does, now, but the session has no verified second factor
	AccessUnknownObject = "unknown_object" // the resource or endpoint is not the organization's
)

// Access session durations.
const (
	DefaultAccessTTL = 8 * time.Hour
	MaxAccessTTL     = 24 * time.Hour
)

// AccessRequest is what DecideAccess decides on. Every id is the requester's
// organization's own or the request is refused.
type AccessRequest struct {
	OrganizationID string
	// User is the account's login name (name@org), matched by user:<name>.
	User string
	// Groups are the account's groups, matched by group:<name>.
	Groups     []string
	ResourceID string
	EndpointID string
	// MFA tells whether the session's second factor is verified.
	MFA bool
	At  time.Time
	// TTL is the wanted duration (0: DefaultAccessTTL; capped at MaxAccessTTL).
	TTL time.Duration
}

// AccessDecision is DecideAccess's answer.
type AccessDecision struct {
	Allowed bool
	Reason  string
	// PolicyID is the granting policy (empty when denied).
	PolicyID string
	// Until is when the access ends: the wanted TTL, cut at the end of the
	// granting policy's time window.
	Until time.Time
}

// inWindow reports whether minute-of-day m lies in [start, end), a window
// that may wrap past midnight; nil bounds mean always.
func inWindow(start, end *int, m int) bool {
	if start == nil || end == nil {
		return true
	}
	if *start < *end {
		return m >= *start && m < *end
	}
	return m >= *start || m < *end
}

// windowEnd returns the first instant at or after at when the window
// [start, end) closes (at + 24h when there is no window).
func windowEnd(start, end *int, at time.Time) time.Time {
	if start == nil || end == nil {
		return at.Add(24 * time.Hour)
	}
	at = at.UTC()
	day := time.Date(at.Year(), at.Month(), at.Day(), 0, 0, 0, 0, time.UTC)
	e := day.Add(time.Duration(*end) * time.Minute)
	if !e.After(at) {
		e = e.Add(24 * time.Hour)
	}
	return e
}

// DecideAccess decides an access request against an organization's
// policies and resources. It is pure. It grants only when one policy of the
// request's organization names the subject (user:<User> or one of its
// group:<name>s), the resource and the endpoint, the time lies in its
// window and, when it requires MFA, the session has a verified second
// factor; the resource must be one of the organization's. Policies and
// resources of other organizations are ignored, never matched. Among
// granting policies the one giving the longest access wins (ties: lowest
// id), so the answer does not depend on the order of policies.
func DecideAccess(req AccessRequest, policies []store.OrgPolicy, resources []store.OrgResource) AccessDecision {
	deny := func(reason string) AccessDecision { return AccessDecision{Reason: reason} }
	if req.OrganizationID == "" || req.ResourceID == "" || req.EndpointID == "" ||
		!slices.ContainsFunc(resources, func(r store.OrgResource) bool {
			return r.ID == req.ResourceID && r.OrganizationID == req.OrganizationID
		}) {
		return deny(AccessUnknownObject)
	}
	ttl := req.TTL
	if ttl <= 0 {
		ttl = DefaultAccessTTL
	}
	ttl = min(ttl, MaxAccessTTL)
	subjects := []string{"user:" + req.User}
	for _, g := range req.Groups {
		subjects = append(subjects, "group:"+g)
	}
	at := req.At.UTC()
	minute := at.Hour()*60 + at.Minute()
	best, reason := AccessDecision{}, AccessNoPolicy
	for _, p := range policies {
		if p.OrganizationID != req.OrganizationID || !slices.Contains(p.ResourceIDs, req.ResourceID) || !slices.Contains(p.EndpointIDs, req.EndpointID) ||
			!slices.ContainsFunc(p.Subjects, func(s string) bool { return slices.Contains(subjects, s) && s != "user:" }) {
			continue
		}
		if !inWindow(p.WindowStart, p.WindowEnd, minute) {
			if reason == AccessNoPolicy {
				reason = AccessOutsideWindow
			}
			continue
		}
		if p.RequireMFA && !req.MFA {
			reason = AccessMFARequired
			continue
		}
		until := at.Add(ttl)
		if we := windowEnd(p.WindowStart, p.WindowEnd, at); we.Before(until) {
			until = we
		}
		if !best.Allowed || until.After(best.Until) || (until.Equal(best.Until) && p.ID < best.PolicyID) {
			best = AccessDecision{Allowed: true, Reason: AccessGranted, PolicyID: p.ID, Until: until}
		}
	}
	if best.Allowed {
		return best
	}
	return deny(reason)
}

// AccessSessionRequest is the body of POST /v1/orgs/{org}/access-sessions.
type AccessSessionRequest struct {
	// Resource is the resource's id or name.
	Resource string `json:"resource"`
	// Endpoint is the endpoint's id or name (default: the resource's own
	// egress endpoint).
	Endpoint string `json:"endpoint"`
	// Duration is how long the access should last ("2h"; default 8h, at
	// most 24h, cut at the end of the policy's window).
	Duration string `json:"duration"`
}

// RequestAccess decides the principal's request for access against the
// organization's policies. A grant is recorded as an access session (fenced,
// audited org.access.grant); a denial is audited (org.access.request,
// denied, with the reason) and answered forbidden with the reason. A
// resource or endpoint that is not the organization's answers not_found.
func (o *Orgs) RequestAccess(ctx context.Context, p OrgPrincipal, actor Actor, req AccessSessionRequest) (store.OrgAccessSession, error) {
	var ttl time.Duration
	if req.Duration != "" {
		d, err := time.ParseDuration(req.Duration)
		if err != nil || d < time.Minute || d > MaxAccessTTL {
			return store.OrgAccessSession{}, Errf(CodeInvalid, "duration must be a duration from 1m to %s", MaxAccessTTL)
		}
		ttl = d
	}
	if req.Resource == "" || len(req.Resource) > 64 || len(req.Endpoint) > 64 {
		return store.OrgAccessSession{}, Errf(CodeInvalid, "resource must name one of the organization's resources (id or name)")
	}
	all := store.Page{Limit: 500}
	resources, err := store.ListOrgResources(ctx, o.a.db.Pool, p.Org.ID, all)
	if err != nil {
		return store.OrgAccessSession{}, asError(err)
	}
	i := slices.IndexFunc(resources, func(r store.OrgResource) bool { return r.ID == req.Resource || r.Name == req.Resource })
	if i < 0 {
		return store.OrgAccessSession{}, Errf(CodeNotFound, "not found")
	}
	res := resources[i]
	epRef := req.Endpoint
	if epRef == "" {
		epRef = res.EndpointID
	}
	ep, err := store.GetOrgEndpoint(ctx, o.a.db.Pool, p.Org.ID, epRef)
	if err != nil {
		return store.OrgAccessSession{}, asError(err)
	}
	policies, err := store.ListOrgPolicies(ctx, o.a.db.Pool, p.Org.ID, all)
	if err != nil {
		return store.OrgAccessSession{}, asError(err)
	}
	now := o.a.admin.Now()
	dec := DecideAccess(AccessRequest{OrganizationID: p.Org.ID, User: p.User.Name, ResourceID: res.ID, EndpointID: ep.ID,
		MFA: !p.Session.MFAAt.IsZero(), At: now, TTL: ttl}, policies, resources)
	details := map[string]any{"resource": res.Name, "endpoint": ep.Name, "reason": dec.Reason}
	if !dec.Allowed {
		_ = o.a.Audit(ctx, p.op("org.access.request", actor, "resource", res.ID, details), "denied")
		return store.OrgAccessSession{}, &Error{Code: CodeForbidden, Message: "access denied: " + accessReasonText(dec.Reason),
			Details: map[string]any{"reason": dec.Reason}}
	}
	id := store.NewID()
	details["policy"] = dec.PolicyID
	details["expires_at"] = dec.Until.UTC().Format(time.RFC3339)
	s := store.OrgAccessSession{ID: id, OrganizationID: p.Org.ID, UserID: p.User.ID, UserName: p.User.Name, ResourceID: res.ID, ResourceName: res.Name,
		EndpointID: ep.ID, EndpointName: ep.Name, PolicyID: dec.PolicyID, Status: "active", CreatedAt: now, ExpiresAt: dec.Until}
	_, err = Fenced(ctx, o.a, p.op("org.access.grant", actor, "access_session", id, details), func(tx pgx.Tx) (bool, error) {
		return true, store.InsertOrgAccessSession(ctx, tx, s)
	})
	if err != nil {
		return store.OrgAccessSession{}, err
	}
	return o.AccessSession(ctx, p, id)
}

func accessReasonText(reason string) string {
	switch reason {
	case AccessOutsideWindow:
		return "the policy that would grant it does not allow access at this time of day (UTC)"
	case AccessMFARequired:
		return "the policy that would grant it requires a verified second factor"
	case AccessUnknownObject:
		return "unknown resource or endpoint"
	}
	return "no policy of the organization grants you this resource through this endpoint"
}

// AccessSessions lists the organization's access sessions, newest first
// (admins: all; members: their own).
func (o *Orgs) AccessSessions(ctx context.Context, p OrgPrincipal, pg store.Page) ([]store.OrgAccessSession, error) {
	user := ""
	if !p.IsAdmin() {
		user = p.User.ID
	}
	ss, err := store.ListOrgAccessSessions(ctx, o.a.db.Pool, p.Org.ID, user, pg)
	return ss, adminErr(err)
}

// AccessSession returns one access session of the organization (members:
// only their own; another's answers not_found).
func (o *Orgs) AccessSession(ctx context.Context, p OrgPrincipal, id string) (store.OrgAccessSession, error) {
	if !validUUID(id) {
		return store.OrgAccessSession{}, Errf(CodeNotFound, "not found")
	}
	s, err := store.GetOrgAccessSession(ctx, o.a.db.Pool, p.Org.ID, id)
	if err == nil && !p.IsAdmin() && s.UserID != p.User.ID {
		err = store.ErrNotFound
	}
	return s, adminErr(err)
}

// AccessStatus is an access session's status at now: active, revoked or
// expired.
func AccessStatus(s store.OrgAccessSession, now time.Time) string {
	if s.Status == "active" && !now.Before(s.ExpiresAt) {
		return "expired"
	}
	return s.Status
}

// RevokeAccessSession ends an access session of the organization (admins:
// any; members: their own; fenced, audited). It takes effect at once: every
// later read and check sees it revoked.
func (o *Orgs) RevokeAccessSession(ctx context.Context, p OrgPrincipal, actor Actor, id string) (store.OrgAccessSession, error) {
	s, err := o.AccessSession(ctx, p, id)
	if err != nil {
		return s, err
	}
	now := o.a.admin.Now()
	if AccessStatus(s, now) != "active" {
		return s, Errf(CodeConflict, "this access session is already %s", AccessStatus(s, now))
	}
	_, err = Fenced(ctx, o.a, p.op("org.access.revoke", actor, "access_session", s.ID, map[string]any{"resource": s.ResourceName, "user_id": s.UserID}),
		func(tx pgx.Tx) (bool, error) {
			err := store.RevokeOrgAccessSession(ctx, tx, p.Org.ID, s.ID, p.User.ID, now)
			if errors.Is(err, store.ErrNotFound) {
				return false, Errf(CodeConflict, "this access session is no longer active")
			}
			return true, err
		})
	if err != nil {
		return s, err
	}
	return o.AccessSession(ctx, p, id)
}
