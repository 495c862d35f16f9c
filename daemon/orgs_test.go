package daemon_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/authn"
	"github.com/rap-fabric/core/authority"
	"github.com/rap-fabric/core/daemon"
	"github.com/rap-fabric/core/httpapi"
	"github.com/rap-fabric/core/internal/authtest"
)

// orgClock is the admin clock of the organization tests: real time plus an
// offset that step moves past the next TOTP time step, so every second
// factor a test sends is a fresh code (a code is accepted once per step).
type orgClock struct{ off atomic.Int64 }

func (c *orgClock) now() time.Time { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *orgClock) step()          { c.off.Add(int64(31 * time.Second)) }

// tenant is one organization of the organization tests, with its admin's and
// member's sessions and the ids of its objects by path variable name.
type tenant struct {
	slug, id     string
	admin        string // admin account name
	adminTOTP    string
	adminTok     string
	member       string
	memberTOTP   string
	memberTok    string
	egress       string // endpoint ids
	entry        string
	down         string
	resource     string
	policy       string
	adminID      string
	memberID     string
	memberSessID string
	anytime      string // a policy without a time window
	access       string // the member's access session
}

// vars returns the tenant's ids by route path variable.
func (tn *tenant) vars() map[string]string {
	return map[string]string{"uid": tn.memberID, "sid": tn.memberSessID, "eid": tn.egress, "rid": tn.resource, "pid": tn.policy,
		"aid": tn.access, "did": "a1b2c3d4e5f60718"} // no trusted devices in the drill: an unknown one
}

type orgEnv struct {
	*apiEnv
	clk   *orgClock
	edge2 *fakeAgent
	a, b  *tenant
}

// bearer authenticates with a session token (CLI style).
func bearer(name, tok string) credential {
	return credential{name, func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }}
}

// call sends a JSON request and decodes a 2xx answer into out.
func (e *orgEnv) call(cred credential, method, path string, in, out any) answer {
	var body []byte
	ct := ""
	if in != nil {
		body, _ = json.Marshal(in)
		ct = "application/json"
	} else if writeMethod(method) {
		body, ct = []byte(`{}`), "application/json"
	}
	a := e.serve(cred, method, path, body, ct, nil)
	if out != nil && a.status < 300 {
		require.NoError(e.t, json.Unmarshal([]byte(a.body), out), a.body)
	}
	return a
}

func (e *orgEnv) must(cred credential, method, path string, in, out any) {
	e.t.Helper()
	a := e.call(cred, method, path, in, out)
	require.Less(e.t, a.status, 300, "%s %s: %s", method, path, a.body)
}

func (e *orgEnv) code(secret string) string {
	e.clk.step()
	c, err := authn.GenerateTOTPCode(secret, e.clk.now(), 30)
	require.NoError(e.t, err)
	return c
}

// setup completes an account's setup with its one-time secret and returns
// its TOTP secret and a bearer session token.
func (e *orgEnv) setup(name, setupSecret string) (totp, tok string) {
	var en struct {
		Secret string `json:"totp_secret"`
	}
	e.must(anonymous(), http.MethodPost, "/v1/auth/setup/begin", map[string]any{"username": name, "setup_secret": setupSecret}, &en)
	var lr struct {
		Token string `json:"session_token"`
	}
	e.must(anonymous(), http.MethodPost, "/v1/auth/setup/complete", map[string]any{"username": name, "setup_secret": setupSecret,
		"password": "organization password 1", "totp_code": e.code(en.Secret), "token": true}, &lr)
	require.NotEmpty(e.t, lr.Token)
	return en.Secret, lr.Token
}

// login logs an account in again (a second session).
func (e *orgEnv) login(name, totp string) string {
	var lr struct {
		Token string `json:"session_token"`
	}
	e.must(anonymous(), http.MethodPost, "/v1/auth/login", map[string]any{"username": name, "password": "organization password 1",
		"totp_code": e.code(totp), "token": true}, &lr)
	return lr.Token
}

// stepUp obtains an organization step-up grant for method path.
func (e *orgEnv) stepUp(tn *tenant, method, path string) {
	e.must(bearer("org", tn.adminTok), http.MethodPost, "/v1/orgs/"+tn.slug+"/step-up",
		map[string]any{"method": method, "path": path, "totp_code": e.code(tn.adminTOTP)}, nil)
}

// newOrgEnv builds one authority with two clusters, two nodes (edge-1 with a
// heartbeat, edge-2 without) and two organizations with real data in each.
func newOrgEnv(t *testing.T) *orgEnv {
	clk := &orgClock{}
	base := newAPIEnvIn(t, authtest.NewWithConfig(t, 1, func(_ int, c *daemon.Config) {
		c.Admin = authority.AdminOptions{Argon2: authn.FastInsecureArgon2Params(), Clock: clk.now}
	}))
	e := &orgEnv{apiEnv: base, clk: clk}
	owner := e.g.Client(e.l)
	_, pin := mkCluster(t, owner, "north")
	e.edge2 = enrollAgent(t, e.g, owner, pin, "north", "edge-2")
	// edge-1 reports in (facts with a host name and addresses); edge-2 never does.
	hb := map[string]any{"seq": 1, "sent_at": time.Now().UTC(), "agent_version": "1.0.0", "state": "normal",
		"facts": map[string]any{"hostname": "edge-1.corp.internal", "addresses": []string{"198.51.100.7", "2001:db8::7"}}}
	a := e.call(e.agentCert(), http.MethodPost, "/v1/agent/heartbeat", hb, nil)
	require.Less(t, a.status, 300, a.body)
	e.g.Eventually(10*time.Second, "heartbeat stored", func() bool {
		var n int
		_ = e.l.DB.Pool.QueryRow(context.Background(), `SELECT count(*) FROM node_heartbeat_latest WHERE node_id = $1`, e.agent.nodeID).Scan(&n)
		return n == 1
	})
	e.a = e.newTenant("alpha", true)
	e.b = e.newTenant("bravo", false)
	return e
}

func (e *orgEnv) newTenant(p string, degraded bool) *tenant {
	t := e.t
	tn := &tenant{slug: p, admin: p + "-admin@" + p, member: p + "-member@" + p}
	own := e.ownerToken()
	var org struct{ ID string }
	e.must(own, http.MethodPost, "/v1/organizations", map[string]any{"name": p + " Corp", "slug": p}, &org)
	tn.id = org.ID
	edge1 := map[string]any{"cluster_id": e.agent.cluster, "node_id": e.agent.nodeID}
	edge2 := map[string]any{"cluster_id": e.edge2.cluster, "node_id": e.edge2.nodeID}
	egressNodes := []any{edge1}
	if degraded {
		egressNodes = append(egressNodes, edge2)
	}
	var ep struct{ ID string }
	e.must(own, http.MethodPost, "/v1/organizations/"+p+"/endpoints", map[string]any{"name": p + "-exit", "kind": "egress", "protocol": "tcp",
		"region": "eu-central", "nodes": egressNodes}, &ep)
	tn.egress = ep.ID
	e.must(own, http.MethodPost, "/v1/organizations/"+p+"/endpoints", map[string]any{"name": p + "-door", "kind": "entry", "protocol": "https",
		"region": "eu-central", "nodes": []any{edge1}}, &ep)
	tn.entry = ep.ID
	spare := edge2 // down: edge-2 never reports; B's is on edge-1, so edge-2 serves only A
	if !degraded {
		spare = edge1
	}
	e.must(own, http.MethodPost, "/v1/organizations/"+p+"/endpoints", map[string]any{"name": p + "-spare", "kind": "egress", "protocol": "udp",
		"region": "eu-central", "nodes": []any{spare}}, &ep)
	tn.down = ep.ID

	var inv struct {
		User        struct{ ID string }
		SetupSecret string `json:"setup_secret"`
	}
	e.must(own, http.MethodPost, "/v1/organizations/"+p+"/admins", map[string]any{"name": p + "-admin"}, &inv)
	tn.adminID = inv.User.ID
	require.True(t, strings.HasPrefix(inv.SetupSecret, "raps_setup_"))
	tn.adminTOTP, tn.adminTok = e.setup(tn.admin, inv.SetupSecret)
	adm := bearer("org-admin", tn.adminTok)

	// The admin invites a member (step-up), who completes the setup.
	e.stepUp(tn, http.MethodPost, "/v1/orgs/"+p+"/users")
	e.must(adm, http.MethodPost, "/v1/orgs/"+p+"/users", map[string]any{"name": p + "-member", "role": "org_member"}, &inv)
	tn.memberID = inv.User.ID
	tn.memberTOTP, tn.memberTok = e.setup(tn.member, inv.SetupSecret)

	var res struct{ ID string }
	e.stepUp(tn, http.MethodPost, "/v1/orgs/"+p+"/resources")
	e.must(adm, http.MethodPost, "/v1/orgs/"+p+"/resources", map[string]any{"name": p + "-db", "protocol": "tcp",
		"address": p + "-db.lan", "port": 5432, "endpoint": tn.egress}, &res)
	tn.resource = res.ID
	e.stepUp(tn, http.MethodPost, "/v1/orgs/"+p+"/policies")
	e.must(adm, http.MethodPost, "/v1/orgs/"+p+"/policies", map[string]any{"name": p + "-dba", "subjects": []string{"user:" + tn.member},
		"resources": []string{tn.resource}, "endpoints": []string{tn.egress}, "window": "08:00-18:00", "require_mfa": true}, &res)
	tn.policy = res.ID
	e.stepUp(tn, http.MethodPost, "/v1/orgs/"+p+"/policies")
	e.must(adm, http.MethodPost, "/v1/orgs/"+p+"/policies", map[string]any{"name": p + "-anytime", "subjects": []string{"user:" + tn.member},
		"resources": []string{tn.resource}, "endpoints": []string{tn.egress}, "require_mfa": true}, &res)
	tn.anytime = res.ID
	// The member asks for access (the anytime policy grants it).
	e.must(bearer("org-member", tn.memberTok), http.MethodPost, "/v1/orgs/"+p+"/access-sessions", map[string]any{"resource": p + "-db"}, &res)
	tn.access = res.ID

	var ss httpapi.List[httpapi.OrgSession]
	e.must(adm, http.MethodGet, "/v1/orgs/"+p+"/sessions", nil, &ss)
	for _, s := range ss.Items {
		if s.UserID == tn.memberID {
			tn.memberSessID = s.ID
		}
	}
	require.NotEmpty(t, tn.memberSessID, "member session listed")
	return tn
}

// topologyValues returns every node id, node name, host fingerprint, host
// name, IP address, cluster id/slug/name and peer key in the database.
func topologyValues(t *testing.T, l *daemon.Daemon) []string {
	ctx := context.Background()
	seen := map[string]bool{}
	add := func(sql string) {
		rows, err := l.DB.Pool.Query(ctx, sql)
		require.NoError(t, err)
		defer rows.Close()
		for rows.Next() {
			var s *string
			require.NoError(t, rows.Scan(&s))
			if s != nil && *s != "" {
				seen[*s] = true
			}
		}
		require.NoError(t, rows.Err())
	}
	add(`SELECT id::text FROM nodes UNION ALL SELECT name FROM nodes UNION ALL SELECT host_fingerprint FROM nodes`)
	add(`SELECT id::text FROM clusters UNION ALL SELECT slug FROM clusters UNION ALL SELECT name FROM clusters`)
	add(`SELECT facts->>'hostname' FROM node_heartbeat_latest`)
	rows, err := l.DB.Pool.Query(ctx, `SELECT public_key, noise_public_key FROM node_identities`)
	require.NoError(t, err)
	for rows.Next() {
		var k1, k2 []byte
		require.NoError(t, rows.Scan(&k1, &k2))
		for _, k := range [][]byte{k1, k2} {
			seen[base64.StdEncoding.EncodeToString(k)] = true
			seen[base64.RawURLEncoding.EncodeToString(k)] = true
			seen[hex.EncodeToString(k)] = true
		}
	}
	rows.Close()
	// IP addresses anywhere in the node-side tables.
	var tables []string
	rows, err = l.DB.Pool.Query(ctx, `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()
		AND (table_name LIKE 'node%' OR table_name LIKE 'mesh%' OR table_name LIKE 'join%' OR table_name LIKE 'cluster_member%' OR table_name LIKE '%link%')`)
	require.NoError(t, err)
	for rows.Next() {
		var n string
		require.NoError(t, rows.Scan(&n))
		tables = append(tables, n)
	}
	rows.Close()
	ipRE := regexp.MustCompile(`\b(?:\d{1,3}\.){3}\d{1,3}\b|\b[0-9a-f]{1,4}(?::[0-9a-f]{0,4}){2,7}\b`)
	for _, tb := range tables {
		var all *string
		require.NoError(t, l.DB.Pool.QueryRow(ctx, `SELECT string_agg(row_to_json(x)::text, ' ') FROM `+tb+` x`).Scan(&all))
		if all != nil {
			for _, ip := range ipRE.FindAllString(*all, -1) {
				if strings.Count(ip, ":") >= 2 || strings.Count(ip, ".") == 3 {
					seen[ip] = true
				}
			}
		}
	}
	require.True(t, seen["198.51.100.7"] && seen["edge-1.corp.internal"] && seen["edge-2"], "topology set is complete")
	var out []string
	for v := range seen {
		if len(v) >= 4 { // shorter fragments (e.g. "::1") would match unrelated text
			out = append(out, v)
		}
	}
	sort.Strings(out)
	return out
}

// tenantValues returns every id and name of organization orgID's objects.
func tenantValues(t *testing.T, l *daemon.Daemon, orgID string) []string {
	ctx := context.Background()
	var out []string
	rows, err := l.DB.Pool.Query(ctx, `
		SELECT id::text FROM organizations WHERE id = $1 UNION ALL SELECT slug FROM organizations WHERE id = $1
		UNION ALL SELECT name FROM organizations WHERE id = $1
		UNION ALL SELECT id::text FROM admin_users WHERE organization_id = $1 UNION ALL SELECT name FROM admin_users WHERE organization_id = $1
		UNION ALL SELECT id::text FROM org_endpoints WHERE organization_id = $1 UNION ALL SELECT name FROM org_endpoints WHERE organization_id = $1
		UNION ALL SELECT id::text FROM org_resources WHERE organization_id = $1 UNION ALL SELECT name FROM org_resources WHERE organization_id = $1
		UNION ALL SELECT address FROM org_resources WHERE organization_id = $1
		UNION ALL SELECT id::text FROM org_policies WHERE organization_id = $1 UNION ALL SELECT name FROM org_policies WHERE organization_id = $1
		UNION ALL SELECT id::text FROM org_access_sessions WHERE organization_id = $1
		UNION ALL SELECT encode(s.id, 'hex') FROM admin_sessions s JOIN admin_users u ON u.id = s.user_id WHERE u.organization_id = $1`, orgID)
	require.NoError(t, err)
	defer rows.Close()
	for rows.Next() {
		var s string
		require.NoError(t, rows.Scan(&s))
		out = append(out, s)
	}
	require.NoError(t, rows.Err())
	require.Greater(t, len(out), 15)
	return out
}

// leakCheck fails when an answer's body or headers hold a forbidden value
// the request did not itself carry.
func leakCheck(t *testing.T, what, request string, a answer, hdr http.Header, forbidden []string) {
	t.Helper()
	text := a.body
	for k, vs := range hdr {
		text += "\n" + k + ": " + strings.Join(vs, ",")
	}
	for _, v := range forbidden {
		if strings.Contains(text, v) && !strings.Contains(request, v) {
			t.Fatalf("%s: the answer holds %q (%d %s)", what, v, a.status, a.body)
		}
	}
}

// serveFull is serve with the answer's headers.
func (e *orgEnv) serveFull(cred credential, method, target string, in any) (answer, http.Header, string) {
	var body []byte
	ct := ""
	if in != nil {
		body, _ = json.Marshal(in)
		ct = "application/json"
	} else if writeMethod(method) {
		body, ct = []byte(`{}`), "application/json"
	}
	req := httptest.NewRequest(method, target, bytes.NewReader(body))
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	cred.apply(req)
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	a := answer{status: rec.Code, body: rec.Body.String()}
	var eb struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(rec.Body.Bytes(), &eb) == nil {
		a.code, a.msg = eb.Error.Code, eb.Error.Message
	}
	return a, rec.Result().Header, target + " " + string(body)
}

// TestT1OrganizationEnumeration is drill T1 (tenant isolation): with two
// organizations holding real data, organization A's admin calls every
// organization route of the router with A's ids, B's ids and random ids (and
// with B's and a random organization in the path). No answer body or header
// holds a node id, node name, host name, IP address, cluster id, peer key or
// any of B's objects (checked against every such value in the database); B's
// objects answer exactly like ids that do not exist; every platform route
// refuses an organization session.
func TestT1OrganizationEnumeration(t *testing.T) {
	e := newOrgEnv(t)
	topo := topologyValues(t, e.l)
	bVals := tenantValues(t, e.l, e.b.id)
	forbidden := append(append([]string{}, topo...), bVals...)
	t.Logf("forbidden values: %d topology, %d of organization B", len(topo), len(bVals))

	var orgRoutes, platformRoutes []httpapi.Route
	for _, rt := range apiRoutes(t, e.l) {
		if rt.Path == "/v1/orgs/{org}" || strings.HasPrefix(rt.Path, "/v1/orgs/{org}/") {
			orgRoutes = append(orgRoutes, rt)
		} else {
			platformRoutes = append(platformRoutes, rt)
		}
	}
	require.GreaterOrEqual(t, len(orgRoutes), 20)
	adm := bearer("org-admin-A", e.a.adminTok)
	const random = "6f1c2a9e-3b4d-4e5f-8a7b-9c0d1e2f3a4b"
	randomVars := map[string]string{"uid": random, "sid": strings.Repeat("ab", 32), "eid": random, "rid": random, "pid": random, "aid": random, "did": "0f1e2d3c4b5a6978"}

	bodyFor := func(rt httpapi.Route, org string, v map[string]string, b *tenant) any {
		switch rt.Method + " " + rt.Path {
		case "POST /v1/orgs/{org}/users":
			// B's admin's name: taken in B, free in A (names are per organization).
			return map[string]any{"name": "bravo-admin-" + v["uid"][:4], "role": "org_member"}
		case "POST /v1/orgs/{org}/resources":
			return map[string]any{"name": "walk-res", "protocol": "tcp", "address": "10.99.0.1", "port": 22, "endpoint": v["eid"]}
		case "POST /v1/orgs/{org}/policies":
			subj := "user:nobody-at-all"
			if b != nil {
				subj = "user:" + b.member
			}
			return map[string]any{"name": "walk-pol", "subjects": []string{subj}, "resources": []string{v["rid"]}, "endpoints": []string{v["eid"]}}
		case "POST /v1/orgs/{org}/access-sessions":
			return map[string]any{"resource": v["rid"], "endpoint": v["eid"]}
		case "POST /v1/orgs/{org}/step-up":
			return map[string]any{"method": "DELETE", "path": "/v1/orgs/" + org + "/policies/" + v["pid"], "totp_code": "000000"}
		}
		return nil
	}
	target := func(rt httpapi.Route, org string, v map[string]string) string {
		return pathVar.ReplaceAllStringFunc(rt.Path, func(m string) string {
			name := strings.Trim(m, "{}")
			if name == "org" {
				return org
			}
			val, ok := v[name]
			require.True(t, ok, "the drill has no value for path variable %s of %s", name, rt.Path)
			return val
		})
	}
	n := 0
	sawLogout := false
	for _, rt := range orgRoutes {
		// B's organization and a random one in the path: the same 404.
		for _, ref := range []string{e.b.slug, e.b.id} {
			aB, hB, reqB := e.serveFull(adm, rt.Method, target(rt, ref, e.b.vars()), bodyFor(rt, ref, e.b.vars(), e.b))
			aR, hR, reqR := e.serveFull(adm, rt.Method, target(rt, random, randomVars), bodyFor(rt, random, randomVars, nil))
			leakCheck(t, "B org "+rt.Method+" "+rt.Path, reqB, aB, hB, forbidden)
			leakCheck(t, "random org "+rt.Method+" "+rt.Path, reqR, aR, hR, forbidden)
			require.Equal(t, http.StatusNotFound, aB.status, "%s %s with B's organization: %s", rt.Method, rt.Path, aB.body)
			require.Equal(t, [3]any{aR.status, aR.code, aR.msg}, [3]any{aB.status, aB.code, aB.msg}, "%s %s", rt.Method, rt.Path)
			n += 2
		}
		if rt.Method == http.MethodPost && rt.Path == "/v1/orgs/{org}/logout" {
			sawLogout = true
			continue // called last, with A's own session
		}
		// B's ids and random ids in A's organization: answered alike. On
		// high-risk routes a step-up grant for the concrete path comes
		// first, so the request reaches the handler.
		answers := map[string]answer{}
		for name, v := range map[string]map[string]string{"B": e.b.vars(), "random": randomVars} {
			var b *tenant
			if name == "B" {
				b = e.b
			}
			tg := target(rt, e.a.slug, v)
			if _, hr := httpapi.OrgHighRiskRoutes()[rt.Method+" "+rt.Path]; hr {
				e.stepUp(e.a, rt.Method, tg)
			}
			a, h, req := e.serveFull(adm, rt.Method, tg, bodyFor(rt, e.a.slug, v, b))
			leakCheck(t, name+" ids "+rt.Method+" "+tg, req, a, h, forbidden)
			require.Less(t, a.status, 500, "%s %s: %s", rt.Method, tg, a.body)
			answers[name] = a
			n++
		}
		aB, aR := answers["B"], answers["random"]
		require.Equal(t, [3]any{aR.status, aR.code, aR.msg}, [3]any{aB.status, aB.code, aB.msg}, "%s %s: B's ids vs random ids", rt.Method, rt.Path)
		if strings.Contains(rt.Path, "/{") && strings.Count(rt.Path, "{") > 1 && rt.Method == http.MethodGet {
			require.Equal(t, http.StatusNotFound, aB.status, "%s %s with B's id", rt.Method, rt.Path)
		}
		// A's own ids.
		a, h, req := e.serveFull(adm, rt.Method, target(rt, e.a.slug, e.a.vars()), bodyFor(rt, e.a.slug, e.a.vars(), nil))
		leakCheck(t, "own ids "+rt.Method+" "+rt.Path, req, a, h, forbidden)
		require.Less(t, a.status, 500, "%s %s: %s", rt.Method, rt.Path, a.body)
		if rt.Method == http.MethodGet {
			require.Equal(t, http.StatusOK, a.status, "%s %s with A's ids: %s", rt.Method, rt.Path, a.body)
		}
		n++
	}
	// Every platform route refuses the organization session wherever it
	// refuses an anonymous caller.
	for _, rt := range platformRoutes {
		tg := fill(rt.Path, random)
		anon := e.call(anonymous(), rt.Method, tg, nil, nil)
		if anon.status != http.StatusUnauthorized {
			continue
		}
		a, h, req := e.serveFull(adm, rt.Method, tg, nil)
		leakCheck(t, "platform "+rt.Method+" "+rt.Path, req, a, h, forbidden)
		require.Contains(t, []int{http.StatusUnauthorized, http.StatusForbidden}, a.status, "%s %s with an organization session: %s", rt.Method, rt.Path, a.body)
		n++
	}
	// Last, logout with A's own session.
	require.True(t, sawLogout)
	a, h, req := e.serveFull(adm, http.MethodPost, "/v1/orgs/"+e.a.slug+"/logout", nil)
	leakCheck(t, "logout", req, a, h, forbidden)
	require.Equal(t, http.StatusNoContent, a.status, a.body)
	require.Equal(t, http.StatusUnauthorized, e.call(adm, http.MethodGet, "/v1/orgs/"+e.a.slug, nil, nil).status)
	t.Logf("%d organization requests and platform refusals checked; no topology or organization B value in any answer", n)
	requireNoPanics(t, e.apiEnv)
}

// TestOrganizationIsolationAndSessions: an organization's views hold only its
// own objects and a health summary per endpoint (ok / degraded / down from
// the backing nodes, never the nodes); the organization audit lists exactly
// the organization's events; a revoked session fails on its next request; a
// member cannot administer; platform accounts are never organization accounts.
func TestOrganizationIsolationAndSessions(t *testing.T) {
	e := newOrgEnv(t)
	ctx := context.Background()
	adm := bearer("org-admin-A", e.a.adminTok)

	var eps httpapi.List[httpapi.OrgEndpoint]
	e.must(adm, http.MethodGet, "/v1/orgs/alpha/endpoints", nil, &eps)
	health := map[string]string{}
	for _, ep := range eps.Items {
		health[ep.Name] = ep.Health
	}
	require.Equal(t, map[string]string{"alpha-exit": authority.HealthDegraded, "alpha-door": authority.HealthOK, "alpha-spare": authority.HealthDown}, health)
	var bEps httpapi.List[httpapi.OrgEndpoint]
	e.must(bearer("org-admin-B", e.b.adminTok), http.MethodGet, "/v1/orgs/bravo/endpoints", nil, &bEps)
	for _, ep := range bEps.Items {
		if ep.Name == "bravo-exit" {
			require.Equal(t, authority.HealthOK, ep.Health)
		}
	}

	// The organization audit: exactly A's events, none of B's or the platform's.
	var evs httpapi.List[httpapi.OrgAuditEvent]
	e.must(adm, http.MethodGet, "/v1/orgs/alpha/audit?limit=500", nil, &evs)
	var want []int64
	rows, err := e.l.DB.Pool.Query(ctx, `SELECT id FROM cluster_audit_events WHERE organization_id = $1 ORDER BY id DESC`, e.a.id)
	require.NoError(t, err)
	for rows.Next() {
		var id int64
		require.NoError(t, rows.Scan(&id))
		want = append(want, id)
	}
	rows.Close()
	var got []int64
	actions := map[string]bool{}
	for _, ev := range evs.Items {
		got = append(got, ev.ID)
		actions[ev.Action] = true
	}
	require.Equal(t, want, got)
	for _, a := range []string{"org.endpoint.publish", "org.user.invite", "org.user.create", "org.resource.create", "org.policy.create", "auth.step_up", "user.setup"} {
		require.True(t, actions[a], "organization audit holds %s (%v)", a, actions)
	}

	// The organization's audit is tamper-evident: intact now; an event of
	// A edited behind the application's back (superuser, trigger disabled)
	// is named.
	var verdict httpapi.OrgAuditVerdict
	e.g.Eventually(10*time.Second, "audit chained", func() bool {
		e.must(adm, http.MethodGet, "/v1/orgs/alpha/audit/verify", nil, &verdict)
		return verdict.Intact && verdict.Events == len(want)
	})
	tx, err := e.l.DB.Pool.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `ALTER TABLE cluster_audit_events DISABLE TRIGGER USER`)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `UPDATE cluster_audit_events SET details = '{"name":"forged"}' WHERE id = $1`, want[len(want)-2])
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `ALTER TABLE cluster_audit_events ENABLE TRIGGER USER`)
	require.NoError(t, err)
	require.NoError(t, tx.Commit(ctx))
	e.must(adm, http.MethodGet, "/v1/orgs/alpha/audit/verify", nil, &verdict)
	require.False(t, verdict.Intact)
	require.Equal(t, want[len(want)-2], verdict.BrokenEventID)
	verdict = httpapi.OrgAuditVerdict{}
	e.must(bearer("org-admin-B", e.b.adminTok), http.MethodGet, "/v1/orgs/bravo/audit/verify", nil, &verdict)
	require.False(t, verdict.Intact)
	require.Zero(t, verdict.BrokenEventID, "B is told of a break, never which event of A")

	// A member cannot administer, even with a fresh second factor (refused
	// and audited in the organization's log).
	mem := bearer("org-member-A", e.a.memberTok)
	path := "/v1/orgs/alpha/resources/" + e.a.resource
	e.must(mem, http.MethodPost, "/v1/orgs/alpha/step-up", map[string]any{"method": "DELETE", "path": path, "totp_code": e.code(e.a.memberTOTP)}, nil)
	a := e.call(mem, http.MethodDelete, path, nil, nil)
	require.Equal(t, http.StatusForbidden, a.status, a.body)
	require.Equal(t, "forbidden", a.code)
	var n int
	require.NoError(t, e.l.DB.Pool.QueryRow(ctx, `SELECT count(*) FROM cluster_audit_events WHERE organization_id = $1 AND outcome = 'denied'
		AND action = 'org.resource.delete' AND actor = $2`, e.a.id, e.a.memberID).Scan(&n))
	require.Equal(t, 1, n)
	var ss httpapi.List[httpapi.OrgSession]
	e.must(mem, http.MethodGet, "/v1/orgs/alpha/sessions", nil, &ss)
	for _, s := range ss.Items {
		require.Equal(t, e.a.memberID, s.UserID, "a member sees only its own sessions")
	}

	// Revoking a session takes effect on its next request.
	second := e.login(e.a.member, e.a.memberTOTP)
	sec := bearer("member-second", second)
	e.must(sec, http.MethodGet, "/v1/orgs/alpha/me", nil, nil)
	var logins int
	require.NoError(t, e.l.DB.Pool.QueryRow(ctx, `SELECT count(*) FROM cluster_audit_events WHERE organization_id = $1 AND action = 'auth.login' AND actor = $2`,
		e.a.id, e.a.memberID).Scan(&logins))
	require.Equal(t, 1, logins, "the login is in the organization's audit")
	var all httpapi.List[httpapi.OrgSession]
	e.must(adm, http.MethodGet, "/v1/orgs/alpha/sessions", nil, &all)
	sid := ""
	for _, s := range all.Items {
		if s.UserID == e.a.memberID && s.ID != e.a.memberSessID {
			sid = s.ID
		}
	}
	require.NotEmpty(t, sid)
	path = "/v1/orgs/alpha/sessions/" + sid + "/revoke"
	require.Equal(t, http.StatusForbidden, e.call(adm, http.MethodPost, path, nil, nil).status, "step-up needed")
	e.stepUp(e.a, http.MethodPost, path)
	require.Equal(t, http.StatusNoContent, e.call(adm, http.MethodPost, path, nil, nil).status)
	require.Equal(t, http.StatusUnauthorized, e.call(sec, http.MethodGet, "/v1/orgs/alpha/me", nil, nil).status)
	e.must(mem, http.MethodGet, "/v1/orgs/alpha/me", nil, nil) // the other session lives on

	// Disabling a user ends its sessions at once.
	path = "/v1/orgs/alpha/users/" + e.a.memberID + "/disable"
	e.stepUp(e.a, http.MethodPost, path)
	e.must(adm, http.MethodPost, path, nil, nil)
	require.Equal(t, http.StatusUnauthorized, e.call(mem, http.MethodGet, "/v1/orgs/alpha/me", nil, nil).status)

	// Deleting a resource a policy uses is refused; policy first, then resource.
	path = "/v1/orgs/alpha/resources/" + e.a.resource
	e.stepUp(e.a, http.MethodDelete, path)
	require.Equal(t, http.StatusConflict, e.call(adm, http.MethodDelete, path, nil, nil).status)
	for _, pol := range []string{e.a.policy, e.a.anytime} {
		e.stepUp(e.a, http.MethodDelete, "/v1/orgs/alpha/policies/"+pol)
		require.Equal(t, http.StatusNoContent, e.call(adm, http.MethodDelete, "/v1/orgs/alpha/policies/"+pol, nil, nil).status)
	}
	e.stepUp(e.a, http.MethodDelete, path)
	require.Equal(t, http.StatusNoContent, e.call(adm, http.MethodDelete, path, nil, nil).status)

	// A platform account is never an organization account, and the database
	// refuses to make one.
	_, err = e.l.DB.Pool.Exec(ctx, `UPDATE admin_users SET platform_role = 'platform_admin' WHERE id = $1`, e.a.adminID)
	require.ErrorContains(t, err, "admin_users_scope")
	// …and the organization routes refuse platform sessions.
	ad := e.l.Auth.Admin()
	_, _, err = ad.BootstrapOwner(ctx, "owner")
	require.NoError(t, err)
	secret, err := ad.DemoEnroll(ctx, "owner", "platform owner password")
	require.NoError(t, err)
	var lr struct {
		Token string `json:"session_token"`
	}
	e.must(anonymous(), http.MethodPost, "/v1/auth/login", map[string]any{"username": "owner", "password": "platform owner password",
		"totp_code": e.code(secret), "token": true}, &lr)
	plat := bearer("platform-session", lr.Token)
	e.must(plat, http.MethodGet, "/v1/auth/me", nil, nil)
	a = e.call(plat, http.MethodGet, "/v1/orgs/alpha", nil, nil)
	require.Equal(t, http.StatusUnauthorized, a.status, a.body)
	require.Equal(t, http.StatusUnauthorized, e.call(adm, http.MethodGet, "/v1/auth/me", nil, nil).status)
}

// orgSession creates organization slug (owner token), invites its admin,
// enrolls it and logs it in: the organization-session credential of the
// hostile-input walks (real clock, like enableSession).
func (e *apiEnv) orgSession(slug string) credential {
	t := e.t
	ctx := context.Background()
	own := e.ownerToken()
	body, _ := json.Marshal(map[string]any{"name": slug + " Org", "slug": slug})
	a := e.serve(own, http.MethodPost, "/v1/organizations", body, "application/json", nil)
	require.Equal(t, http.StatusCreated, a.status, a.body)
	body, _ = json.Marshal(map[string]any{"name": "admin"})
	a = e.serve(own, http.MethodPost, "/v1/organizations/"+slug+"/admins", body, "application/json", nil)
	require.Equal(t, http.StatusCreated, a.status, a.body)
	name := "admin@" + slug
	secret, err := e.l.Auth.Admin().DemoEnroll(ctx, name, "organization walk password")
	require.NoError(t, err)
	code, err := authn.GenerateTOTPCode(secret, time.Now(), 30)
	require.NoError(t, err)
	body, _ = json.Marshal(map[string]any{"username": name, "password": "organization walk password", "totp_code": code, "token": true})
	a = e.serve(anonymous(), http.MethodPost, "/v1/auth/login", body, "application/json", nil)
	require.Equal(t, http.StatusOK, a.status, a.body)
	var lr struct {
		Token string `json:"session_token"`
	}
	require.NoError(t, json.Unmarshal([]byte(a.body), &lr))
	return bearer("org-session", lr.Token)
}

// TestOrgAccessInSignedSnapshots: policies and resources reach the nodes
// that back the organization's endpoints in their signed snapshots, and only
// those: edge-2 backs only organization A's endpoints and its snapshot holds
// A's policy and resource and nothing of B; edge-1 backs both and holds both.
func TestOrgAccessInSignedSnapshots(t *testing.T) {
	e := newOrgEnv(t)
	bVals := tenantValues(t, e.l, e.b.id)
	snap := func(ag *fakeAgent) string {
		a := e.call(e.ownerToken(), http.MethodGet, "/v1/clusters/"+ag.cluster+"/nodes/"+ag.nodeID+"/snapshot", nil, nil)
		require.Equal(t, http.StatusOK, a.status, a.body)
		return a.body
	}
	var s1, s2 string
	e.g.Eventually(20*time.Second, "snapshots carry the organizations' policies", func() bool {
		s1, s2 = snap(e.agent), snap(e.edge2)
		return strings.Contains(s1, e.a.policy) && strings.Contains(s1, e.b.policy) && strings.Contains(s2, e.a.policy)
	})
	require.Contains(t, s2, e.a.resource)
	require.Contains(t, s2, "alpha-db.lan")
	for _, v := range bVals {
		require.NotContains(t, s2, v, "edge-2 serves only organization A")
	}
	require.Contains(t, s1, e.b.resource)
	// Accounts are not distributed (a policy names its subjects only).
	for _, v := range []string{e.a.admin, e.b.admin, e.a.adminID, e.a.memberID} {
		require.NotContains(t, s1, v)
		require.NotContains(t, s2, v)
	}
}
