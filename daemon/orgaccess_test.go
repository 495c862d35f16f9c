package daemon_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/authn"
	"github.com/rap-fabric/core/httpapi"
)

// TestOrgAccessSessions (spec C9, real routes on a real authority with
// PostgreSQL): an organization user's request for access is decided by the
// organization's policies — granted through a policy naming the user,
// refused (audited with the reason) when no policy names it or the policy's
// time window is closed; another organization's resource answers exactly
// like one that does not exist. Admins list every access session, members
// only their own; revoking one (step-up, fenced, audited) takes effect at
// once; disabling a user ends its access sessions; another organization can
// neither see nor revoke them.
func TestOrgAccessSessions(t *testing.T) {
	e := newOrgEnv(t)
	ctx := context.Background()
	adm := bearer("org-admin-A", e.a.adminTok)
	mem := bearer("org-member-A", e.a.memberTok)
	admB := bearer("org-admin-B", e.b.adminTok)

	// Granted: the anytime policy names the member, the resource and the endpoint.
	var got httpapi.OrgAccessSession
	e.must(mem, http.MethodPost, "/v1/orgs/alpha/access-sessions", map[string]any{"resource": e.a.resource, "endpoint": "alpha-exit", "duration": "2h"}, &got)
	require.Equal(t, "active", got.Status)
	require.Equal(t, e.a.memberID, got.UserID)
	require.Equal(t, "alpha-db", got.ResourceName)
	require.Equal(t, "alpha-exit", got.EndpointName)
	require.Contains(t, []string{e.a.anytime, e.a.policy}, got.PolicyID)
	require.InDelta(t, 7200, got.ExpiresAt.Sub(got.CreatedAt).Seconds(), 1)

	// Refused: the admin is named by no policy; the reason is told and audited.
	a := e.call(adm, http.MethodPost, "/v1/orgs/alpha/access-sessions", map[string]any{"resource": "alpha-db"}, nil)
	require.Equal(t, http.StatusForbidden, a.status, a.body)
	require.Equal(t, "forbidden", a.code)
	require.Contains(t, a.body, `"reason":"no_policy"`)
	var denied int
	require.NoError(t, e.l.DB.Pool.QueryRow(ctx, `SELECT count(*) FROM cluster_audit_events WHERE organization_id = $1 AND action = 'org.access.request'
		AND outcome = 'denied' AND actor = $2 AND details->>'reason' = 'no_policy'`, e.a.id, e.a.adminID).Scan(&denied))
	require.Equal(t, 1, denied)

	// Refused: a policy naming the admin whose window is closed now.
	now := e.clk.now().UTC()
	closed := fmt.Sprintf("%02d:%02d-%02d:%02d", (now.Hour()+2)%24, now.Minute(), (now.Hour()+3)%24, now.Minute())
	e.stepUp(e.a, http.MethodPost, "/v1/orgs/alpha/policies")
	e.must(adm, http.MethodPost, "/v1/orgs/alpha/policies", map[string]any{"name": "alpha-admin-later", "subjects": []string{"user:" + e.a.admin},
		"resources": []string{e.a.resource}, "endpoints": []string{e.a.egress}, "window": closed}, nil)
	a = e.call(adm, http.MethodPost, "/v1/orgs/alpha/access-sessions", map[string]any{"resource": "alpha-db"}, nil)
	require.Equal(t, http.StatusForbidden, a.status, a.body)
	require.Contains(t, a.body, `"reason":"outside_window"`)

	// Another organization's resource (and endpoint) answer like random ids.
	aB := e.call(mem, http.MethodPost, "/v1/orgs/alpha/access-sessions", map[string]any{"resource": e.b.resource}, nil)
	aR := e.call(mem, http.MethodPost, "/v1/orgs/alpha/access-sessions", map[string]any{"resource": "6f1c2a9e-3b4d-4e5f-8a7b-9c0d1e2f3a4b"}, nil)
	require.Equal(t, http.StatusNotFound, aB.status, aB.body)
	require.Equal(t, [3]any{aR.status, aR.code, aR.msg}, [3]any{aB.status, aB.code, aB.msg})
	aB = e.call(mem, http.MethodPost, "/v1/orgs/alpha/access-sessions", map[string]any{"resource": e.a.resource, "endpoint": e.b.egress}, nil)
	require.Equal(t, http.StatusNotFound, aB.status, aB.body)

	// Listing: the admin sees the member's sessions; the member its own; B none of A's.
	var list httpapi.List[httpapi.OrgAccessSession]
	e.must(adm, http.MethodGet, "/v1/orgs/alpha/access-sessions", nil, &list)
	ids := map[string]bool{}
	for _, s := range list.Items {
		ids[s.ID] = true
	}
	require.True(t, ids[got.ID] && ids[e.a.access], "the admin lists every access session: %v", ids)
	list = httpapi.List[httpapi.OrgAccessSession]{}
	e.must(admB, http.MethodGet, "/v1/orgs/bravo/access-sessions", nil, &list)
	for _, s := range list.Items {
		require.NotEqual(t, got.ID, s.ID)
		require.NotEqual(t, e.a.access, s.ID)
	}
	require.Equal(t, http.StatusNotFound, e.call(admB, http.MethodGet, "/v1/orgs/bravo/access-sessions/"+got.ID, nil, nil).status)
	path := "/v1/orgs/bravo/access-sessions/" + got.ID + "/revoke"
	e.stepUp(e.b, http.MethodPost, path)
	require.Equal(t, http.StatusNotFound, e.call(admB, http.MethodPost, path, nil, nil).status, "B cannot revoke A's access")

	// Revocation: step-up first; then at once revoked, audited; a second revoke conflicts.
	path = "/v1/orgs/alpha/access-sessions/" + got.ID + "/revoke"
	a = e.call(adm, http.MethodPost, path, nil, nil)
	require.Equal(t, http.StatusForbidden, a.status, "step-up needed: %s", a.body)
	e.must(mem, http.MethodGet, "/v1/orgs/alpha/access-sessions/"+got.ID, nil, &got)
	require.Equal(t, "active", got.Status)
	e.stepUp(e.a, http.MethodPost, path)
	var rv httpapi.OrgAccessSession
	e.must(adm, http.MethodPost, path, nil, &rv)
	require.Equal(t, "revoked", rv.Status)
	require.NotNil(t, rv.RevokedAt)
	e.must(mem, http.MethodGet, "/v1/orgs/alpha/access-sessions/"+got.ID, nil, &got)
	require.Equal(t, "revoked", got.Status, "the member's next read sees the revocation")
	e.stepUp(e.a, http.MethodPost, path)
	require.Equal(t, http.StatusConflict, e.call(adm, http.MethodPost, path, nil, nil).status)
	var evs httpapi.List[httpapi.OrgAuditEvent]
	e.must(adm, http.MethodGet, "/v1/orgs/alpha/audit?limit=500", nil, &evs)
	actions := map[string]int{}
	for _, ev := range evs.Items {
		if ev.TargetID == got.ID || ev.Action == "org.access.request" {
			actions[ev.Action+"/"+ev.Outcome]++
		}
	}
	require.Equal(t, map[string]int{"org.access.grant/ok": 1, "org.access.revoke/ok": 1, "org.access.request/denied": 2}, actions)
	var bEvents int
	require.NoError(t, e.l.DB.Pool.QueryRow(ctx, `SELECT count(*) FROM cluster_audit_events WHERE organization_id = $1 AND target_id = $2`, e.b.id, got.ID).Scan(&bEvents))
	require.Zero(t, bEvents, "none of A's access events is in B's audit")

	// The organization console's sessions page lists them, revoked and active.
	cookie := credential{"org-cookie", func(r *http.Request) { r.AddCookie(&http.Cookie{Name: authn.SessionCookieName, Value: e.a.adminTok}) }}
	pg := e.serve(cookie, http.MethodGet, "/org/"+e.a.id+"/sessions", nil, "", nil)
	require.Equal(t, http.StatusOK, pg.status, pg.body)
	require.Contains(t, pg.body, `id="access-`+got.ID+`"`)
	require.Contains(t, pg.body, `/access-sessions/`+e.a.access+`/revoke`, "an active session has a revoke button")
	require.NotContains(t, pg.body, `/access-sessions/`+got.ID+`/revoke`, "a revoked one has none")
	for _, v := range append(topologyValues(t, e.l), tenantValues(t, e.l, e.b.id)...) {
		require.NotContains(t, pg.body, v)
	}

	// Disabling the member ends its remaining access sessions.
	path = "/v1/orgs/alpha/users/" + e.a.memberID + "/disable"
	e.stepUp(e.a, http.MethodPost, path)
	e.must(adm, http.MethodPost, path, nil, nil)
	var left int
	require.NoError(t, e.l.DB.Pool.QueryRow(ctx, `SELECT count(*) FROM org_access_sessions WHERE user_id = $1 AND status = 'active'`, e.a.memberID).Scan(&left))
	require.Zero(t, left)
	var one httpapi.OrgAccessSession
	e.must(adm, http.MethodGet, "/v1/orgs/alpha/access-sessions/"+e.a.access, nil, &one)
	require.Equal(t, "revoked", one.Status)
	requireNoPanics(t, e.apiEnv)
}
