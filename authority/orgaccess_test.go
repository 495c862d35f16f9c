package authority

import (
	"fmt"
	"math/rand"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/store"
)

func ip(v int) *int { return &v }

// TestDecideAccess: the decision over subjects (users and groups), the
// resource and endpoint a policy names, time windows (also across
// midnight), the MFA requirement, other organizations' policies and
// resources, and the access duration (wanted TTL, capped, cut at the end of
// the window).
func TestDecideAccess(t *testing.T) {
	const orgA, orgB = "org-a", "org-b"
	res := []store.OrgResource{
		{ID: "res-db", OrganizationID: orgA, Name: "db", EndpointID: "ep-exit"},
		{ID: "res-web", OrganizationID: orgA, Name: "web", EndpointID: "ep-exit"},
		{ID: "res-b", OrganizationID: orgB, Name: "b-db", EndpointID: "ep-b"},
	}
	pols := []store.OrgPolicy{
		{ID: "p1-dba", OrganizationID: orgA, Subjects: []string{"user:ann@a"}, ResourceIDs: []string{"res-db"}, EndpointIDs: []string{"ep-exit"}, RequireMFA: true},
		{ID: "p2-office", OrganizationID: orgA, Subjects: []string{"group:staff"}, ResourceIDs: []string{"res-web"}, EndpointIDs: []string{"ep-exit"},
			WindowStart: ip(8 * 60), WindowEnd: ip(18 * 60)},
		{ID: "p3-night", OrganizationID: orgA, Subjects: []string{"user:ops@a"}, ResourceIDs: []string{"res-db"}, EndpointIDs: []string{"ep-exit"},
			WindowStart: ip(22 * 60), WindowEnd: ip(2 * 60)},
		// B's policy names A's user and A's resource: it must never grant A anything.
		{ID: "p4-b", OrganizationID: orgB, Subjects: []string{"user:bob@a", "group:staff"}, ResourceIDs: []string{"res-db", "res-b"}, EndpointIDs: []string{"ep-exit", "ep-b"}},
	}
	day := time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)
	at := func(h, m int) time.Time { return day.Add(time.Duration(h)*time.Hour + time.Duration(m)*time.Minute) }
	for _, tc := range []struct {
		name   string
		req    AccessRequest
		reason string
		policy string
		until  time.Time
	}{
		{"user named, MFA", AccessRequest{User: "ann@a", ResourceID: "res-db", EndpointID: "ep-exit", MFA: true, At: at(3, 0)}, AccessGranted, "p1-dba", at(11, 0)},
		{"user named, no MFA", AccessRequest{User: "ann@a", ResourceID: "res-db", EndpointID: "ep-exit", At: at(3, 0)}, AccessMFARequired, "", time.Time{}},
		{"other user", AccessRequest{User: "zed@a", ResourceID: "res-db", EndpointID: "ep-exit", MFA: true, At: at(3, 0)}, AccessNoPolicy, "", time.Time{}},
		{"wrong endpoint", AccessRequest{User: "ann@a", ResourceID: "res-db", EndpointID: "ep-door", MFA: true, At: at(3, 0)}, AccessNoPolicy, "", time.Time{}},
		{"resource not in policy", AccessRequest{User: "ann@a", ResourceID: "res-web", EndpointID: "ep-exit", MFA: true, At: at(9, 0)}, AccessNoPolicy, "", time.Time{}},
		{"group in window, cut at window end", AccessRequest{User: "zed@a", Groups: []string{"staff"}, ResourceID: "res-web", EndpointID: "ep-exit", At: at(12, 0)},
			AccessGranted, "p2-office", at(18, 0)},
		{"group, window start is inclusive", AccessRequest{User: "zed@a", Groups: []string{"staff"}, ResourceID: "res-web", EndpointID: "ep-exit", At: at(8, 0), TTL: time.Hour},
			AccessGranted, "p2-office", at(9, 0)},
		{"group, window end is exclusive", AccessRequest{User: "zed@a", Groups: []string{"staff"}, ResourceID: "res-web", EndpointID: "ep-exit", At: at(18, 0)},
			AccessOutsideWindow, "", time.Time{}},
		{"group outside window", AccessRequest{User: "zed@a", Groups: []string{"staff"}, ResourceID: "res-web", EndpointID: "ep-exit", At: at(7, 59)},
			AccessOutsideWindow, "", time.Time{}},
		{"other group", AccessRequest{User: "zed@a", Groups: []string{"sales"}, ResourceID: "res-web", EndpointID: "ep-exit", At: at(12, 0)}, AccessNoPolicy, "", time.Time{}},
		{"window across midnight, before", AccessRequest{User: "ops@a", ResourceID: "res-db", EndpointID: "ep-exit", At: at(23, 30)}, AccessGranted, "p3-night", at(26, 0)},
		{"window across midnight, after", AccessRequest{User: "ops@a", ResourceID: "res-db", EndpointID: "ep-exit", At: at(1, 0), TTL: 30 * time.Minute},
			AccessGranted, "p3-night", at(1, 30)},
		{"window across midnight, outside", AccessRequest{User: "ops@a", ResourceID: "res-db", EndpointID: "ep-exit", At: at(2, 0)}, AccessOutsideWindow, "", time.Time{}},
		{"TTL capped", AccessRequest{User: "ann@a", ResourceID: "res-db", EndpointID: "ep-exit", MFA: true, At: at(0, 0), TTL: 100 * time.Hour},
			AccessGranted, "p1-dba", at(24, 0)},
		{"another organization's policy never grants", AccessRequest{User: "bob@a", Groups: []string{"staff"}, ResourceID: "res-db", EndpointID: "ep-exit", MFA: true, At: at(3, 0)},
			AccessNoPolicy, "", time.Time{}},
		{"another organization's resource is unknown", AccessRequest{User: "bob@a", ResourceID: "res-b", EndpointID: "ep-b", MFA: true, At: at(3, 0)},
			AccessUnknownObject, "", time.Time{}},
		{"no endpoint", AccessRequest{User: "ann@a", ResourceID: "res-db", MFA: true, At: at(3, 0)}, AccessUnknownObject, "", time.Time{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.req.OrganizationID = orgA
			d := DecideAccess(tc.req, pols, res)
			require.Equal(t, tc.reason, d.Reason)
			require.Equal(t, tc.reason == AccessGranted, d.Allowed)
			require.Equal(t, tc.policy, d.PolicyID)
			require.True(t, tc.until.Equal(d.Until), "until %s, want %s", d.Until, tc.until)
			// The order of the policies never matters.
			rev := slices.Clone(pols)
			slices.Reverse(rev)
			require.Equal(t, d, DecideAccess(tc.req, rev, res))
		})
	}
	// Of two granting policies, the longer access wins.
	long := append(slices.Clone(pols), store.OrgPolicy{ID: "p0-any", OrganizationID: orgA, Subjects: []string{"group:staff"},
		ResourceIDs: []string{"res-web"}, EndpointIDs: []string{"ep-exit"}})
	d := DecideAccess(AccessRequest{OrganizationID: orgA, User: "zed@a", Groups: []string{"staff"}, ResourceID: "res-web", EndpointID: "ep-exit", At: at(17, 0)}, long, res)
	require.Equal(t, "p0-any", d.PolicyID)
	require.True(t, at(25, 0).Equal(d.Until))
}

// TestPropertyAccessDecisionNeedToKnow: over random policies and resources
// of several organizations and random requests, a grant is always backed by
// one policy of the requester's own organization that names the subject,
// the resource and the endpoint, holds at that time and whose MFA
// requirement is met (never beyond policy); the access never outlasts the
// wanted duration or the window; whenever such a policy exists the request
// is granted; and nothing of another organization (policy, resource) ever
// decides or appears in the decision.
func TestPropertyAccessDecisionNeedToKnow(t *testing.T) {
	const orgs = 4
	r := rand.New(rand.NewSource(18))
	pick := func(prefix string, n int) string { return fmt.Sprintf("%s%d", prefix, r.Intn(n)) }
	for round := 0; round < 300; round++ {
		var res []store.OrgResource
		var pols []store.OrgPolicy
		owner := map[string]string{} // policy/resource id → organization
		for o := 0; o < orgs; o++ {
			org := fmt.Sprintf("org-%d", o)
			for i := 0; i < 4; i++ {
				id := fmt.Sprintf("res-%d-%d", o, i)
				res = append(res, store.OrgResource{ID: id, OrganizationID: org})
				owner[id] = org
			}
			for i := 0; i < 1+r.Intn(5); i++ {
				p := store.OrgPolicy{ID: fmt.Sprintf("pol-%d-%d", o, i), OrganizationID: org, RequireMFA: r.Intn(2) == 0}
				for j := 0; j < 1+r.Intn(3); j++ {
					if r.Intn(2) == 0 {
						p.Subjects = append(p.Subjects, "user:"+pick("u", 4))
					} else {
						p.Subjects = append(p.Subjects, "group:"+pick("g", 3))
					}
					// Some policies name other organizations' resources (a
					// corrupted or hostile row): they must not matter.
					p.ResourceIDs = append(p.ResourceIDs, fmt.Sprintf("res-%d-%d", r.Intn(orgs), r.Intn(4)))
					p.EndpointIDs = append(p.EndpointIDs, pick("ep", 3))
				}
				if r.Intn(2) == 0 {
					p.WindowStart, p.WindowEnd = ip(r.Intn(1440)), ip(r.Intn(1440))
					if *p.WindowStart == *p.WindowEnd {
						p.WindowStart, p.WindowEnd = nil, nil
					}
				}
				pols = append(pols, p)
				owner[p.ID] = org
			}
		}
		r.Shuffle(len(pols), func(i, j int) { pols[i], pols[j] = pols[j], pols[i] })
		for q := 0; q < 50; q++ {
			org := fmt.Sprintf("org-%d", r.Intn(orgs))
			req := AccessRequest{OrganizationID: org, User: pick("u", 4), ResourceID: fmt.Sprintf("res-%d-%d", r.Intn(orgs), r.Intn(4)),
				EndpointID: pick("ep", 3), MFA: r.Intn(2) == 0, At: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(r.Intn(2*1440)) * time.Minute),
				TTL: time.Duration(r.Intn(30)) * time.Hour}
			for g := 0; g < r.Intn(3); g++ {
				req.Groups = append(req.Groups, pick("g", 3))
			}
			d := DecideAccess(req, pols, res)
			minute := req.At.Hour()*60 + req.At.Minute()
			grants := func(p store.OrgPolicy) bool {
				subj := slices.ContainsFunc(p.Subjects, func(s string) bool {
					return s == "user:"+req.User || slices.ContainsFunc(req.Groups, func(g string) bool { return s == "group:"+g })
				})
				return p.OrganizationID == req.OrganizationID && owner[req.ResourceID] == req.OrganizationID && subj &&
					slices.Contains(p.ResourceIDs, req.ResourceID) && slices.Contains(p.EndpointIDs, req.EndpointID) &&
					inWindow(p.WindowStart, p.WindowEnd, minute) && (!p.RequireMFA || req.MFA)
			}
			want := slices.ContainsFunc(pols, grants)
			require.Equal(t, want, d.Allowed, "round %d request %+v: %+v", round, req, d)
			if !d.Allowed {
				require.Empty(t, d.PolicyID)
				require.True(t, d.Until.IsZero())
				continue
			}
			i := slices.IndexFunc(pols, func(p store.OrgPolicy) bool { return p.ID == d.PolicyID })
			require.GreaterOrEqual(t, i, 0)
			require.Equal(t, req.OrganizationID, owner[d.PolicyID], "the granting policy is the requester's organization's")
			require.Equal(t, req.OrganizationID, owner[req.ResourceID], "the resource is the requester's organization's")
			require.True(t, grants(pols[i]), "never beyond policy")
			ttl := req.TTL
			if ttl <= 0 {
				ttl = DefaultAccessTTL
			}
			require.True(t, d.Until.After(req.At))
			require.False(t, d.Until.After(req.At.Add(min(ttl, MaxAccessTTL))), "never longer than wanted")
			// Every minute of the access lies in the granting policy's window.
			p := pols[i]
			for m := req.At; m.Before(d.Until); m = m.Add(time.Minute) {
				require.True(t, inWindow(p.WindowStart, p.WindowEnd, m.Hour()*60+m.Minute()), "never outside the window")
			}
		}
	}
}
