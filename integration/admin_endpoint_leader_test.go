package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/authn"
	"github.com/rap-fabric/core/authority"
	"github.com/rap-fabric/core/daemon"
	"github.com/rap-fabric/core/httpapi"
	"github.com/rap-fabric/core/internal/authtest"
	"github.com/rap-fabric/core/store"
)

// apiRequests reads rap_api_requests_total{route, code} from d's own
// metrics registry (in process).
func apiRequests(t *testing.T, d *daemon.Daemon, route string, code int) int {
	rec := httptest.NewRecorder()
	d.API.MetricsHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	want := `rap_api_requests_total{code="` + strconv.Itoa(code) + `",route="` + route + `"} `
	sc := bufio.NewScanner(rec.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), want); ok {
			n, err := strconv.ParseFloat(v, 64)
			require.NoError(t, err)
			return int(n)
		}
	}
	return 0
}

// TestAdminEndpointFollowsLeader (spec: Admin Endpoint Placement; following
// not_leader) runs a 3-authority group with PostgreSQL and a real agent
// process whose Cluster Admin Endpoint has a follower as its first
// authority. The admin holds a session (password + TOTP). Each step starts
// from a fresh endpoint (the agent is restarted), so its first try is the
// follower:
//   - a group created through a page's form: the follower answers
//     not_leader, the endpoint sends the same request to the leader, and the
//     group is applied once and audited once, as the admin;
//   - a step-up through the endpoint: the follower refuses before it reads
//     the TOTP code, so the leader accepts the same code (no totp_replay);
//   - the high-risk role assignment that grant is for: the follower refuses
//     before it takes the grant, the leader spends it and applies the
//     assignment once, audited once; the same request again is refused
//     step_up_required (the grant was single-use and spent on the leader).
func TestAdminEndpointFollowsLeader(t *testing.T) {
	clock := &consoleClock{t: time.Now()}
	g := authtest.NewWithConfig(t, 3, func(_ int, c *daemon.Config) {
		c.Admin = authority.AdminOptions{Argon2: authn.FastInsecureArgon2Params(), Clock: clock.Now}
	})
	ctx := context.Background()
	leader := g.Leader(20 * time.Second)
	fols := g.Followers(leader)
	require.Len(t, fols, 2)
	first := fols[0]
	rig := newAdminRig(t, g, "fol", 1)
	a := rig.enroll("fol-a", []string{first.APIAddr(), leader.APIAddr(), fols[1].APIAddr()})
	addr := freePort(t)
	run := func() { a.runAdmin("can_accept_client_ingress,can_route_mesh,can_accept_node_ingress", addr) }
	restart := func() {
		a.stop(syscall.SIGTERM)
		run()
		rig.waitServing(a)
	}
	run()
	rig.assign(a.node, "admin-ingress")
	rig.assign(a.node, "core-mesh")
	rig.waitServing(a)
	requireLeader := func() {
		t.Helper()
		require.Same(t, leader, g.Leader(5*time.Second), "the raft leader changed during the test; its assertions name the first leader")
	}

	// The owner account with TOTP, and a session held as a bearer token
	// (from here on the owner API token no longer works).
	ad := leader.Auth.Admin()
	acct, _, err := ad.BootstrapOwner(ctx, "owner")
	require.NoError(t, err)
	const password = "admin endpoint leader password"
	secret, err := ad.DemoEnroll(ctx, "owner", password)
	require.NoError(t, err)
	var login httpapi.LoginResponse
	require.NoError(t, g.Client(leader).Do(ctx, http.MethodPost, "/v1/auth/login",
		httpapi.LoginRequest{Username: "owner", Password: password, TOTPCode: clock.code(t, secret), Token: true}, &login, nil))
	require.NotEmpty(t, login.SessionToken)

	hc := adminHTTP(t, rig.pin)
	send := func(method, path, ctype, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, "https://"+addr+path, strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", ctype)
		req.Header.Set("Authorization", "Bearer "+login.SessionToken)
		resp, err := hc.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	audited := func(action, needle string) []store.AuditEvent {
		evs, err := leader.Auth.ListAudit(ctx, store.AuditFilter{Action: action}, store.Page{Limit: 100})
		require.NoError(t, err)
		var out []store.AuditEvent
		for _, ev := range evs {
			if strings.Contains(string(ev.Details), needle) || ev.TargetID == needle {
				out = append(out, ev)
			}
		}
		return out
	}

	// 1. A form through the endpoint, first to the follower.
	fol421 := apiRequests(t, first, "groups.create", http.StatusMisdirectedRequest)
	st, body := send(http.MethodPost, "/ui/groups/forms/1", "application/x-www-form-urlencoded", url.Values{"name": {"via-follower"}}.Encode())
	require.Equal(t, http.StatusSeeOther, st, body)
	require.Equal(t, fol421+1, apiRequests(t, first, "groups.create", http.StatusMisdirectedRequest), "the follower was asked first and answered not_leader")
	require.Zero(t, apiRequests(t, first, "groups.create", http.StatusCreated)+apiRequests(t, first, "groups.create", http.StatusOK))
	evs := audited("group.create", "via-follower")
	require.Len(t, evs, 1, "applied once, audited once")
	require.Equal(t, acct.ID, evs[0].Actor)
	require.Equal(t, "ok", evs[0].Outcome)
	st, body = send(http.MethodGet, "/ui/groups", "", "")
	require.Equal(t, http.StatusOK, st)
	require.Equal(t, 1, strings.Count(body, "via-follower"))
	requireLeader()

	// 2. A step-up through a fresh endpoint: the follower refuses before it
	// reads the code, and the leader accepts the same code.
	restart()
	rolePath := "/v1/clusters/fol/nodes/" + a.node + "/roles"
	sfol := apiRequests(t, first, "auth.stepup", http.StatusMisdirectedRequest)
	raw, _ := json.Marshal(map[string]string{"method": http.MethodPost, "path": rolePath, "totp_code": clock.code(t, secret)})
	st, body = send(http.MethodPost, "/v1/auth/step-up", "application/json", string(raw))
	require.Equal(t, http.StatusOK, st, body)
	require.Contains(t, body, `"action":"`+string(authn.ActionRoleAssign)+`"`)
	require.Equal(t, sfol+1, apiRequests(t, first, "auth.stepup", http.StatusMisdirectedRequest), "the follower was asked first")
	requireLeader()

	// 3. The high-risk mutation through a fresh endpoint: the follower
	// refuses before it takes the grant; the leader spends it once.
	restart()
	rfol := apiRequests(t, first, "roles.assign", http.StatusMisdirectedRequest)
	st, body = send(http.MethodPost, rolePath, "application/json", `{"role":"relay-node"}`)
	require.Less(t, st, 300, body)
	require.Equal(t, rfol+1, apiRequests(t, first, "roles.assign", http.StatusMisdirectedRequest), "the follower was asked first")
	evs = audited("role.assign", "relay-node")
	require.Len(t, evs, 1, "applied once, audited once")
	require.Equal(t, acct.ID, evs[0].Actor)
	require.Equal(t, "ok", evs[0].Outcome)
	st, body = send(http.MethodPost, rolePath, "application/json", `{"role":"relay-node"}`)
	require.Equal(t, http.StatusForbidden, st, body)
	require.Contains(t, body, "step_up_required", "the grant was spent once, on the leader")
	require.Len(t, audited("role.assign", "relay-node"), 1)
	st, body = send(http.MethodGet, "/v1/clusters/fol/nodes/"+a.node+"/roles", "", "")
	require.Equal(t, http.StatusOK, st, body)
	require.Equal(t, 1, strings.Count(body, `"relay-node"`), body)
	requireLeader()
}
