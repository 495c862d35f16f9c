package daemon_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/agentapi"
	"github.com/rap-fabric/core/apiclient"
	"github.com/rap-fabric/core/authn"
	"github.com/rap-fabric/core/authority"
	"github.com/rap-fabric/core/daemon"
	"github.com/rap-fabric/core/internal/authtest"
	"github.com/rap-fabric/core/release"
	"github.com/rap-fabric/core/snapshot"
	"github.com/rap-fabric/core/store"
)

// consolePage fetches a console page with a session cookie.
func consolePage(t *testing.T, addr, session, path string) string {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, // test only: the page, not the TLS, is under test
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, err := http.NewRequest(http.MethodGet, "https://"+addr+path, nil)
	require.NoError(t, err)
	req.AddCookie(&http.Cookie{Name: authn.SessionCookieName, Value: session})
	res, err := hc.Do(req)
	require.NoError(t, err)
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode, string(body))
	require.Contains(t, res.Header.Get("Content-Security-Policy"), "style-src 'self'", "CSP as on every console page")
	return string(body)
}

// TestUpdateStateVisible: an agent's update state (state, current /
// previous / target version, last failure) travels in its heartbeat, is
// kept as the node's latest, and shows in the API, on the console's node
// page ("update state" column) and on the Releases page, whose rollouts
// show per-wave progress bars. Invalid update state is refused with a typed
// error. Channel assignments (cluster, group, node) are written through the
// owner API (fenced, audited, step-up with a session) and decide the
// desired version in the node's signed snapshot where no open rollout does.
// A changed update state in a heartbeat also feeds the rollout engine.
func TestUpdateStateVisible(t *testing.T) {
	clock := &stepClock{t: time.Now()}
	g := authtest.NewWithConfig(t, 1, func(_ int, c *daemon.Config) {
		c.Admin = authority.AdminOptions{Argon2: authn.FastInsecureArgon2Params(), Clock: clock.Now}
	})
	d := g.Leader(15 * time.Second)
	ctx := context.Background()
	owner := g.Client(g.DS...)
	rel := newReleaseFixture(t, owner)
	rel.publish("1.0.0", 0)
	rel.publish("1.1.0", 0)

	_, pin := mkClusterSnap(t, owner, "fleet")
	var tok struct {
		Token string `json:"token"`
	}
	require.NoError(t, owner.Do(ctx, http.MethodPost, "/v1/join-tokens", map[string]any{"cluster": "fleet", "max_uses": 2, "auto_approve": true, "allowed_roles": []string{"relay-node"}, "description": "vis"}, &tok, nil))
	f := &fleet{t: t, last: map[string]snapshot.Snapshot{}}
	for i := range 2 {
		f.agents = append(f.agents, enrollSnapAgent(t, g, pin, tok.Token, fmt.Sprintf("v%d", i), []string{"can_route_mesh"}))
	}
	a := f.agents[0]

	// 1. Update state in the heartbeat.
	hb := agentapi.Heartbeat{Seq: 1, SentAt: time.Now().UTC(), AgentVersion: "1.1.0", State: "normal",
		Updates: []agentapi.UpdateReport{{Product: release.ProductNodeAgent, CurrentVersion: "1.1.0", PreviousVersion: "1.0.0", FromVersion: "1.1.0",
			TargetVersion: "1.2.0", State: "rolled_back", LastFailure: "no heartbeat acknowledged within 30s"}}}
	require.NoError(t, a.c.Do(ctx, http.MethodPost, agentapi.PathHeartbeat, hb, nil, nil))
	for _, bad := range []agentapi.UpdateReport{
		{Product: release.ProductNodeAgent, CurrentVersion: "1.1.0", State: "exploded"},
		{Product: "Bad Product", CurrentVersion: "1.1.0", State: "running"},
		{Product: release.ProductNodeAgent, CurrentVersion: "", State: "running"},
		{Product: release.ProductNodeAgent, CurrentVersion: "1.1.0 with spaces", State: "running"},
		{Product: release.ProductNodeAgent, CurrentVersion: "1.1.0", State: "failed", LastFailure: strings.Repeat("x", 501)},
	} {
		b := hb
		b.Seq = 2
		b.Updates = []agentapi.UpdateReport{bad}
		require.Equal(t, "invalid_argument", apiCode(a.c.Do(ctx, http.MethodPost, agentapi.PathHeartbeat, b, nil, nil)), "%+v", bad)
	}
	var latest struct {
		Items []authority.NodeHeartbeat `json:"items"`
	}
	g.Eventually(15*time.Second, "the heartbeat's update state is stored as the node's latest", func() bool {
		require.NoError(t, owner.Do(ctx, http.MethodGet, "/v1/nodes/"+a.nodeID+"/heartbeat", nil, &latest, nil))
		return len(latest.Items) == 1 && len(latest.Items[0].Updates) == 1
	})
	u := latest.Items[0].Updates[0]
	require.Equal(t, agentapi.UpdateReport{Product: release.ProductNodeAgent, CurrentVersion: "1.1.0", PreviousVersion: "1.0.0", FromVersion: "1.1.0",
		TargetVersion: "1.2.0", State: "rolled_back", LastFailure: "no heartbeat acknowledged within 30s"}, u)
	require.Equal(t, int64(1), latest.Items[0].Seq, "the refused heartbeats changed nothing")
	require.Equal(t, "rolled_back 1.1.0 → 1.2.0 (previous 1.0.0): no heartbeat acknowledged within 30s", latest.Items[0].UpdateState)
	// The agent's own health keys stay as sent.
	hb.Seq, hb.Health = 3, []byte(`{"status":"ok"}`)
	hb.Updates[0].State, hb.Updates[0].TargetVersion, hb.Updates[0].LastFailure = "running", "1.1.0", ""
	require.NoError(t, a.c.Do(ctx, http.MethodPost, agentapi.PathHeartbeat, hb, nil, nil))
	g.Eventually(15*time.Second, "the newer update state replaces the older", func() bool {
		require.NoError(t, owner.Do(ctx, http.MethodGet, "/v1/nodes/"+a.nodeID+"/heartbeat", nil, &latest, nil))
		return len(latest.Items) == 1 && latest.Items[0].UpdateState == "running 1.1.0 (previous 1.0.0)"
	})
	require.Contains(t, string(latest.Items[0].LatestHeartbeat.Health), `"status"`)

	// 2. A rollout to show: 1.0.0 everywhere completes (stable, current and
	// candidate head), then 1.1.0 starts with a canary of one.
	start := func(version string, canary, wavePct int) authority.RolloutView {
		var v authority.RolloutView
		require.NoError(t, owner.Do(ctx, http.MethodPost, "/v1/clusters/fleet/rollouts", map[string]any{"product": release.ProductNodeAgent, "version": version,
			"canary_count": canary, "wave_percent": wavePct, "soak_seconds": 0, "failure_threshold": 1, "update_deadline_seconds": 600}, &v, nil))
		return v
	}
	r0 := start("1.0.0", 2, 100)
	f.waitDesired("1.0.0 everywhere", func(_ *snapAgent, d snapshot.DesiredVersion, _ *snapshot.Updates) bool { return d.Version == "1.0.0" })
	for _, x := range f.agents {
		f.report(x, "1.0.0", "1.0.0", "running", "")
	}
	waitRollout(t, g, owner, r0.ID, "completed", 0)
	r1 := start("1.1.0", 1, 100)
	require.Len(t, r1.Waves, 2)
	canary, other := f.agents[0], f.agents[1]
	if r1.Waves[0].Nodes[0].NodeID != canary.nodeID {
		canary, other = other, canary
	}
	f.report(canary, "1.0.0", "1.1.0", "downloading", "")

	// 3. Channel assignments. The node outside the canary has no desired
	// version from the open rollout; a node assignment to candidate gives
	// it the candidate head (1.1.0), a cluster assignment to stable 1.0.0.
	set := func(kind, scope, channel string) error {
		return owner.Do(ctx, http.MethodPut, "/v1/clusters/fleet/release-channels", authority.ChannelAssignmentRequest{ScopeKind: kind, ScopeID: scope,
			Product: release.ProductNodeAgent, Channel: channel, Reason: "test"}, nil, nil)
	}
	require.Equal(t, "invalid_argument", apiCode(set("planet", other.nodeID, "stable")))
	require.Equal(t, "invalid_argument", apiCode(set("node", other.nodeID, "beta")))
	require.Equal(t, "not_found", apiCode(set("node", store.NewID(), "stable")))
	require.Equal(t, "not_found", apiCode(set("group", store.NewID(), "stable")))
	require.NoError(t, set("node", other.nodeID, "candidate"))
	desiredOf := func(x *snapAgent, version string) {
		g.Eventually(30*time.Second, x.name+" desires "+version, func() bool {
			d, _ := f.desired(x, 2)
			return d.Version == version
		})
	}
	desiredOf(other, "1.1.0")
	desiredOf(canary, "1.1.0")
	require.NoError(t, set("cluster", "", "stable"))
	var list struct {
		Items []authority.ChannelAssignment `json:"items"`
	}
	require.NoError(t, owner.Do(ctx, http.MethodGet, "/v1/clusters/fleet/release-channels", nil, &list, nil))
	require.Len(t, list.Items, 2)
	dv, _ := f.desired(other, 0)
	require.Equal(t, "1.1.0", dv.Version, "the node's own assignment wins over the cluster's")
	require.NoError(t, owner.Do(ctx, http.MethodDelete, "/v1/clusters/fleet/release-channels", authority.ChannelAssignmentRequest{ScopeKind: "node",
		ScopeID: other.nodeID, Product: release.ProductNodeAgent, Reason: "test"}, nil, nil))
	desiredOf(other, "1.0.0")
	dv, _ = f.desired(canary, 0)
	require.Equal(t, "1.1.0", dv.Version, "the open rollout wins over the cluster's assignment")
	require.Equal(t, "not_found", apiCode(owner.Do(ctx, http.MethodDelete, "/v1/clusters/fleet/release-channels", authority.ChannelAssignmentRequest{ScopeKind: "node",
		ScopeID: other.nodeID, Product: release.ProductNodeAgent}, nil, nil)))
	audit := map[string]int{}
	evs, err := store.ListAudit(ctx, g.DS[0].DB.Pool, store.AuditFilter{TargetKind: "release_channel_assignment"}, store.Page{Limit: 100})
	require.NoError(t, err)
	for _, e := range evs {
		audit[e.Action+"/"+e.Outcome]++
	}
	require.Equal(t, 2, audit["release.channel.set/ok"], "%v", audit)
	require.Equal(t, 1, audit["release.channel.unset/ok"], "%v", audit)

	// 4. The console: a platform owner with MFA, sessions from here on.
	ad := d.Auth.Admin()
	_, _, err = ad.BootstrapOwner(ctx, "owner")
	require.NoError(t, err)
	const password = "release console test password"
	secret, err := ad.DemoEnroll(ctx, "owner", password)
	require.NoError(t, err)
	anon, err := apiclient.New(apiclient.Options{Servers: []string{d.APIAddr()}, CAPin: g.Pin})
	require.NoError(t, err)
	defer anon.Close()
	var login struct {
		SessionToken string `json:"session_token"`
	}
	require.NoError(t, anon.Do(ctx, http.MethodPost, "/v1/auth/login", map[string]any{"username": "owner", "password": password, "totp_code": clock.code(t, secret), "token": true}, &login, nil))
	sess, err := apiclient.New(apiclient.Options{Servers: []string{d.APIAddr()}, CAPin: g.Pin, Token: login.SessionToken})
	require.NoError(t, err)
	defer sess.Close()

	page := consolePage(t, d.APIAddr(), login.SessionToken, "/console/nodes/"+a.nodeID)
	require.Contains(t, page, "<td>running 1.1.0 (previous 1.0.0)</td>", "the node page's update state column")

	page = consolePage(t, d.APIAddr(), login.SessionToken, "/console/releases?cluster=fleet")
	require.Contains(t, page, `id="release-rap-node-agent-1.1.0"`)
	require.Contains(t, page, `id="rollout-`+r1.ID+`"`)
	require.Contains(t, page, `<progress value="0" max="1">`, "the canary's progress bar (its node is still downloading)")
	require.Contains(t, page, `<progress value="2" max="2">`, "the completed rollout's wave")
	require.Contains(t, page, "(downloading)", "each node's reported update state")
	require.Contains(t, page, "<td>stable</td><td>1.0.0</td>", "the stable channel head")
	require.Contains(t, page, "<td>candidate</td><td>1.1.0</td>", "the candidate channel head")
	require.NotContains(t, page, "style=", "no inline styles (CSP)")

	// Channel writes with a session need step-up.
	body := authority.ChannelAssignmentRequest{ScopeKind: "cluster", Product: release.ProductNodeAgent, Channel: "current", Reason: "console"}
	const path = "/v1/clusters/fleet/release-channels"
	require.Equal(t, "step_up_required", apiCode(sess.Do(ctx, http.MethodPut, path, body, nil, nil)))
	require.NoError(t, sess.Do(ctx, http.MethodPost, "/v1/auth/step-up", map[string]any{"method": "PUT", "path": path, "totp_code": clock.code(t, secret)}, nil, nil))
	require.NoError(t, sess.Do(ctx, http.MethodPut, path, body, nil, nil))
	desiredOf(other, "1.0.0") // current's head is 1.0.0 too

	// A report the agent could not deliver reaches the rollout engine with
	// its next heartbeat: the canary's heartbeat alone (no POST
	// /v1/agent/updates) completes the canary wave.
	require.NoError(t, canary.c.Do(ctx, http.MethodPost, agentapi.PathHeartbeat, agentapi.Heartbeat{Seq: 10, SentAt: time.Now().UTC(), AgentVersion: "1.1.0",
		State: "normal", Updates: []agentapi.UpdateReport{{Product: release.ProductNodeAgent, CurrentVersion: "1.1.0", PreviousVersion: "1.0.0",
			TargetVersion: "1.1.0", State: "running"}}}, nil, nil))
	waitRollout(t, g, sess, r1.ID, "running", 1)
}
