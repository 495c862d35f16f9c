package daemon_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/agentapi"
	"github.com/rap-fabric/core/authn"
	"github.com/rap-fabric/core/authority"
	"github.com/rap-fabric/core/daemon"
	"github.com/rap-fabric/core/httpapi"
	"github.com/rap-fabric/core/internal/authtest"
)

// apiEnv is one authority with every kind of credential: an owner API token,
// an enrolled node's certificate (mTLS) and, after enableSession, an owner's
// cookie session. Requests go through the authority's real API handler (the
// one its TLS listener serves) in process, against real PostgreSQL and Raft.
type apiEnv struct {
	t     *testing.T
	g     *authtest.Group
	l     *daemon.Daemon
	h     http.Handler
	agent *fakeAgent
	cert  *x509.Certificate
	// cookie and csrf are the owner's session (enableSession).
	cookie *http.Cookie
	csrf   string
	secret string
}

func newAPIEnv(t *testing.T) *apiEnv {
	return newAPIEnvIn(t, authtest.NewWithConfig(t, 1, func(_ int, c *daemon.Config) {
		c.Admin = authority.AdminOptions{Argon2: authn.FastInsecureArgon2Params()}
	}))
}

// newAPIEnvIn is newAPIEnv in the given (one-authority) group.
func newAPIEnvIn(t *testing.T, g *authtest.Group) *apiEnv {
	l := g.Leader(15 * time.Second)
	e := &apiEnv{t: t, g: g, l: l, h: l.API.Handler()}
	owner := g.Client(l)
	_, pin := mkCluster(t, owner, "east")
	e.agent = enrollAgent(t, g, owner, pin, "east", "edge-1")
	var err error
	e.cert, err = x509.ParseCertificate(e.agent.cert)
	require.NoError(t, err)
	return e
}

// enrollAgent enrolls a fake agent into cluster slug and returns it with its
// certificate.
func enrollAgent(t *testing.T, g *authtest.Group, owner interface {
	Do(ctx context.Context, method, path string, in, out any, hdr map[string]string) error
}, pin, slug, name string) *fakeAgent {
	ctx := context.Background()
	tok := mkToken(t, g.Client(g.DS...), slug, 1)
	ag := newFakeAgent(name, "host-"+name)
	var st joinStatus
	require.NoError(t, enrollClient(t, g, pin).Do(ctx, http.MethodPost, "/v1/agent/join", ag.joinBody(tok.Token), &st, nil))
	require.NoError(t, owner.Do(ctx, http.MethodPost, "/v1/join-requests/"+st.RequestID+"/approve", nil, nil, nil))
	require.NoError(t, enrollClient(t, g, pin).Do(ctx, http.MethodPost, "/v1/agent/join/"+st.RequestID+"/poll", map[string]any{"poll_secret": ag.poll}, &st, nil))
	require.Equal(t, "approved", st.Status)
	ag.cert, ag.caCert, ag.nodeID, ag.cluster = st.Certificate, st.CACert, st.NodeID, st.ClusterID
	return ag
}

// enableSession bootstraps an owner with TOTP (which ends the owner API
// token) and logs in with a cookie session.
func (e *apiEnv) enableSession() {
	t := e.t
	ctx := context.Background()
	ad := e.l.Auth.Admin()
	_, _, err := ad.BootstrapOwner(ctx, "owner")
	require.NoError(t, err)
	e.secret, err = ad.DemoEnroll(ctx, "owner", "hostile input password")
	require.NoError(t, err)
	code, err := authn.GenerateTOTPCode(e.secret, time.Now(), 30)
	require.NoError(t, err)
	body, _ := json.Marshal(map[string]any{"username": "owner", "password": "hostile input password", "totp_code": code})
	req := httptest.NewRequest(http.MethodPost, "/v1/auth/login", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	for _, c := range rec.Result().Cookies() {
		if c.Name == authn.SessionCookieName {
			e.cookie = c
		}
	}
	require.NotNil(t, e.cookie)
	req = httptest.NewRequest(http.MethodGet, "/v1/auth/me", nil)
	req.AddCookie(e.cookie)
	rec = httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	var me map[string]any
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &me))
	e.csrf, _ = me["csrf_token"].(string)
	require.NotEmpty(t, e.csrf)
}

// credential decorates a request with one kind of authentication.
type credential struct {
	name  string
	apply func(r *http.Request)
}

func (e *apiEnv) ownerToken() credential {
	return credential{"owner-token", func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+e.g.Token) }}
}

func (e *apiEnv) agentCert() credential {
	return credential{"agent-mtls", func(r *http.Request) {
		r.TLS = &tls.ConnectionState{HandshakeComplete: true, PeerCertificates: []*x509.Certificate{e.cert}}
	}}
}

func (e *apiEnv) session() credential {
	return credential{"session-cookie", func(r *http.Request) {
		r.AddCookie(e.cookie)
		r.Header.Set("X-CSRF-Token", e.csrf)
	}}
}

func anonymous() credential { return credential{"anonymous", func(*http.Request) {}} }

// answer is a response as the tests look at it.
type answer struct {
	status int
	code   string
	msg    string
	body   string
}

// serve sends one raw request (target is a raw request URI: it may hold
// %00 and %FF) through the authority's API handler.
func (e *apiEnv) serve(cred credential, method, target string, body []byte, contentType string, hdr map[string]string) answer {
	var rd *bytes.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	var req *http.Request
	if rd != nil {
		req = httptest.NewRequest(method, target, rd)
	} else {
		req = httptest.NewRequest(method, target, nil)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
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
	return a
}

// apiRoutes returns the routes of the authority's router (not a list kept by
// hand: a new route is walked as soon as it exists).
func apiRoutes(t *testing.T, l *daemon.Daemon) []httpapi.Route {
	rs := l.API.Routes()
	require.Greater(t, len(rs), 50)
	sort.Slice(rs, func(i, j int) bool { return rs[i].Method+rs[i].Path < rs[j].Method+rs[j].Path })
	return rs
}

var pathVar = regexp.MustCompile(`\{[^}]+\}`)

// fill substitutes every path variable of a route template with raw.
func fill(tpl, raw string) string { return pathVar.ReplaceAllString(tpl, raw) }

func writeMethod(m string) bool {
	return m == http.MethodPost || m == http.MethodPut || m == http.MethodPatch || m == http.MethodDelete
}

// skipRoute names routes a walk must not drive with a given credential
// because a success would end the walk's own session.
func skipRoute(cred credential, rt httpapi.Route) bool {
	return (cred.name == "session-cookie" && rt.Method == http.MethodPost && rt.Path == "/v1/auth/logout") ||
		(cred.name == "org-session" && rt.Method == http.MethodPost && rt.Path == "/v1/orgs/{org}/logout")
}

// requireTyped checks an answer is a typed client error: 4xx with a code and
// a message in the API's error shape.
func requireTyped(t *testing.T, a answer, what string) {
	t.Helper()
	require.True(t, a.status >= 400 && a.status < 500, "%s: want a 4xx, got %d %s", what, a.status, a.body)
	require.NotEmpty(t, a.code, "%s: typed error code (%d %s)", what, a.status, a.body)
	require.NotEmpty(t, a.msg, "%s: error message", what)
}

// requireNoServerError checks an answer is not a server failure: below 500,
// and any error is typed.
func requireNoServerError(t *testing.T, a answer, what string) {
	t.Helper()
	require.Less(t, a.status, 500, "%s: %d %s", what, a.status, a.body)
	if a.status >= 400 {
		requireTyped(t, a, what)
	}
}

// badText are the raw path/query values that are never valid: NUL and bytes
// that are not UTF-8, alone and inside a value.
var badText = []string{"%00", "a%00b", "%FF", "%C3%28", "x%FE%FF"}

// TestNULAndInvalidUTF8InEveryParameter (defect: a NUL in a path id or query
// parameter reached PostgreSQL and came back as 500): every path parameter
// and the common query parameters of every route, for every kind of
// credential, answer 400 invalid_argument.
func TestNULAndInvalidUTF8InEveryParameter(t *testing.T) {
	e := newAPIEnv(t)
	routes := apiRoutes(t, e.l)
	queryKeys := queryParams(t)
	walk := func(cred credential) {
		n := 0
		for _, rt := range routes {
			if skipRoute(cred, rt) {
				continue
			}
			var body []byte
			ct := ""
			if writeMethod(rt.Method) {
				body, ct = []byte(`{}`), "application/json"
			}
			for _, bad := range badText {
				if strings.Contains(rt.Path, "{") {
					target := fill(rt.Path, bad)
					a := e.serve(cred, rt.Method, target, body, ct, nil)
					require.Equal(t, http.StatusBadRequest, a.status, "%s %s %s: %s", cred.name, rt.Method, target, a.body)
					require.Equal(t, "invalid_argument", a.code, "%s %s %s", cred.name, rt.Method, target)
					n++
				}
				for _, k := range queryKeys {
					target := fill(rt.Path, "x") + "?" + k + "=" + bad
					a := e.serve(cred, rt.Method, target, body, ct, nil)
					require.Equal(t, http.StatusBadRequest, a.status, "%s %s %s: %s", cred.name, rt.Method, target, a.body)
					require.Equal(t, "invalid_argument", a.code, "%s %s %s", cred.name, rt.Method, target)
					n++
				}
				target := fill(rt.Path, "x") + "?" + bad + "=1"
				a := e.serve(cred, rt.Method, target, body, ct, nil)
				require.Equal(t, http.StatusBadRequest, a.status, "%s %s %s: %s", cred.name, rt.Method, target, a.body)
				n++
			}
		}
		t.Logf("%s: %d requests with NUL or invalid UTF-8 (query parameters %v), each 400 invalid_argument", cred.name, n, queryKeys)
	}
	for _, c := range []credential{anonymous(), e.ownerToken(), e.agentCert()} {
		walk(c)
	}
	walk(e.orgSession("hostile"))
	// A NUL inside a JSON string passes the HTTP layer (it is valid JSON) and
	// is refused by PostgreSQL in text (22021): a typed 400 as well.
	for _, body := range []string{`{"name":"a\u0000b"}`, `{"name":"\u0000"}`} {
		a := e.serve(e.ownerToken(), http.MethodPost, "/v1/clusters/east/groups", []byte(body), "application/json", nil)
		require.Equal(t, http.StatusBadRequest, a.status, "%s: %s", body, a.body)
		require.Equal(t, "invalid_argument", a.code)
	}
	e.enableSession()
	walk(e.session())
	requireNoPanics(t, e)
}

// TestNonJSONBodiesAre415 (defect: a cookie session's text/plain body was
// accepted): a body on a write route that is not declared
// application/json answers 415 unsupported_media_type, for every write route
// and every kind of credential, and nothing is written.
func TestNonJSONBodiesAre415(t *testing.T) {
	e := newAPIEnv(t)
	routes := apiRoutes(t, e.l)
	count := func() int {
		var n int
		// Successful changes made by this test's requests (httptest's client
		// address); background work (health sweeps) audits changes too.
		require.NoError(t, e.l.DB.Pool.QueryRow(context.Background(), `SELECT count(*) FROM cluster_audit_events
			WHERE outcome = 'ok' AND source_addr = '192.0.2.1'`).Scan(&n))
		return n
	}
	// The control: the same kind of request, declared JSON, is applied and
	// counted.
	before := count()
	ctl := e.serve(e.ownerToken(), http.MethodPost, "/v1/clusters/east/groups", []byte(`{"name":"control"}`), "application/json", nil)
	require.Equal(t, http.StatusCreated, ctl.status, ctl.body)
	require.Equal(t, before+1, count())
	for _, ct := range []string{"text/plain", ""} {
		a := e.serve(e.ownerToken(), http.MethodPost, "/v1/clusters/east/groups", []byte(`{"name":"as-text"}`), ct, nil)
		require.Equal(t, http.StatusUnsupportedMediaType, a.status, a.body)
	}
	walk := func(cred credential) {
		before := count()
		n := 0
		for _, rt := range routes {
			if !writeMethod(rt.Method) || skipRoute(cred, rt) {
				continue
			}
			target := fill(rt.Path, "x")
			for _, ct := range []string{"text/plain", "text/plain; charset=utf-8", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/jsonx", "json", ""} {
				a := e.serve(cred, rt.Method, target, []byte(`{"name":"x"}`), ct, nil)
				require.Equal(t, http.StatusUnsupportedMediaType, a.status, "%s %s %s (Content-Type %q): %s", cred.name, rt.Method, target, ct, a.body)
				require.Equal(t, "unsupported_media_type", a.code)
				n++
			}
		}
		require.Equal(t, before, count(), "%s: non-JSON requests changed nothing", cred.name)
		// Declared JSON (any parameters) is not refused for its type; the
		// heartbeat stream declares NDJSON instead.
		for _, rt := range routes {
			if writeMethod(rt.Method) && !skipRoute(cred, rt) {
				ct := "application/json; charset=utf-8"
				if rt.Path == agentapi.PathHeartbeatStream {
					ct = agentapi.ContentTypeNDJSON
				}
				a := e.serve(cred, rt.Method, fill(rt.Path, "x"), []byte(`{}`), ct, nil)
				require.NotEqual(t, http.StatusUnsupportedMediaType, a.status, "%s %s", cred.name, rt.Path)
			}
		}
		t.Logf("%s: %d non-JSON write requests, each 415", cred.name, n)
	}
	for _, c := range []credential{anonymous(), e.ownerToken(), e.agentCert()} {
		walk(c)
	}
	walk(e.orgSession("hostile"))
	e.enableSession()
	walk(e.session())
	requireNoPanics(t, e)
}

// queryParams gathers the query parameters the API reads, from the httpapi
// sources (Query().Get / q.Get calls), so a new parameter is covered as soon
// as a handler reads it.
func queryParams(t *testing.T) []string {
	re := regexp.MustCompile(`(?:Query\(\)|\bq)\.Get\("([a-z_0-9]+)"\)`)
	seen := map[string]bool{"limit": true, "offset": true}
	for _, pattern := range []string{"../httpapi/*.go", "../httpapi/console/*.go"} {
		files, err := filepath.Glob(pattern)
		require.NoError(t, err)
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			data, err := os.ReadFile(f)
			require.NoError(t, err)
			for _, m := range re.FindAllSubmatch(data, -1) {
				seen[string(m[1])] = true
			}
		}
	}
	var out []string
	for k := range seen {
		out = append(out, k)
	}
	sort.Strings(out)
	require.Greater(t, len(out), 10, "query parameters found: %v", out)
	return out
}

// hostileBodies are JSON bodies no route accepts as they are: empty,
// malformed, too deep, too large, wrong top-level types, extreme numbers,
// NUL and invalid UTF-8.
func hostileBodies() map[string][]byte {
	return map[string][]byte{
		"empty":        {},
		"blank":        []byte("  \n"),
		"truncated":    []byte(`{"name":`),
		"unclosed":     []byte(`{`),
		"garbage":      []byte(`}{][`),
		"two values":   []byte(`{}{}`),
		"deep":         []byte(strings.Repeat("[", 5000) + strings.Repeat("]", 5000)),
		"deep object":  []byte(strings.Repeat(`{"a":`, 100) + "1" + strings.Repeat("}", 100)),
		"huge":         []byte(`{"name":"` + strings.Repeat("a", 2<<20) + `"}`),
		"null":         []byte(`null`),
		"array":        []byte(`[1,2,3]`),
		"string":       []byte(`"str"`),
		"true":         []byte(`true`),
		"big float":    []byte(`1e999`),
		"neg int":      []byte(`-9223372036854775809`),
		"nul key":      []byte(`{"\u0000":1}`),
		"invalid utf8": []byte("{\"name\":\"\xff\xfe\"}"),
		"unknown":      []byte(`{"zz_not_a_field":1}`),
	}
}

// candidateFields gathers the JSON field names the API's request types may
// have, from the json tags in the httpapi and authority sources: the walk
// then finds each route's own fields by asking (an unknown field is refused
// by name) and sends every hostile value in each of them.
func candidateFields(t *testing.T) []string {
	re := regexp.MustCompile("json:\"([a-z_0-9]+)[,\"]")
	seen := map[string]bool{}
	for _, dir := range []string{"../httpapi", "../authority", "../agentapi"} {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		require.NoError(t, err)
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			data, err := os.ReadFile(f)
			require.NoError(t, err)
			for _, m := range re.FindAllSubmatch(data, -1) {
				seen[string(m[1])] = true
			}
		}
	}
	var out []string
	for f := range seen {
		out = append(out, f)
	}
	sort.Strings(out)
	require.Greater(t, len(out), 30)
	return out
}

// hostileValues are JSON values of the wrong type or at the extremes, for
// any field.
var hostileValues = []string{
	`null`, `true`, `{}`, `[]`, `[null]`, `{"a":[{}]}`, `""`, `"\u0000"`, `"a\u0000b"`, "\"\xff\xfe\"", `"` + strings.Repeat("x", 70000) + `"`,
	`0`, `-1`, `1.5`, `1e308`, `-1e308`, `1e999`, `9223372036854775807`, `-9223372036854775808`, `18446744073709551616`,
	`"-1"`, `"1e999"`, `"9999-99-99T99:99:99Z"`, `"../../etc/passwd"`, `["\u0000"]`, `{"\u0000":"\u0000"}`,
}

// routeFields finds the fields route rt accepts (owner token or agent
// certificate as credential) by sending each candidate with a value no field
// takes: an unknown field is refused naming it, a known one is refused for
// its value.
func routeFields(e *apiEnv, cred credential, rt httpapi.Route, target string, candidates []string) []string {
	var out []string
	for _, f := range candidates {
		a := e.serve(cred, rt.Method, target, []byte(fmt.Sprintf(`{%q: {"zz": [[[]]]}}`, f)), "application/json", nil)
		if a.status == http.StatusBadRequest && strings.Contains(a.msg, "unknown field") {
			continue
		}
		if a.status >= 400 && a.code != "invalid_argument" {
			// Refused before the body is read (credential, step-up, route):
			// no field can be learned this way.
			return nil
		}
		out = append(out, f)
	}
	return out
}

// TestHostileInputWalk walks every route of the router with hostile input —
// empty, malformed, deep and huge JSON, wrong types, extreme numbers, NUL and
// invalid UTF-8, in the body, path and query — for every kind of credential.
// Every answer is a typed error below 500 (malformed bodies always a 4xx) and
// no handler panics.
func TestHostileInputWalk(t *testing.T) {
	e := newAPIEnv(t)
	routes := apiRoutes(t, e.l)
	candidates := candidateFields(t)
	bodies := hostileBodies()
	known := func(rt httpapi.Route) string {
		return fill(strings.NewReplacer("{cluster}", "east", "{id}", e.agent.nodeID, "{org}", "hostile").Replace(rt.Path), "x")
	}
	// An organization and its admin's session: organization routes are
	// learned and walked with it.
	orgCred := e.orgSession("hostile")
	// Each route's body fields, learned with the credential the route takes
	// (the agent's on agent routes, the owner token elsewhere).
	fields := map[httpapi.Route][]string{}
	nf := 0
	for _, rt := range routes {
		if !writeMethod(rt.Method) {
			continue
		}
		cred := e.ownerToken()
		if strings.HasPrefix(rt.Path, "/v1/agent/") {
			cred = e.agentCert()
		}
		if strings.HasPrefix(rt.Path, "/v1/orgs/") {
			cred = orgCred
		}
		fields[rt] = routeFields(e, cred, rt, known(rt), candidates)
		nf += len(fields[rt])
	}
	require.Greater(t, nf, 20, "the walk found the routes' body fields")
	queries := []string{"", "?limit=0", "?limit=-1", "?limit=99999999999999999999", "?offset=-5", "?offset=1e999", "?limit=x&offset=y",
		"?cluster=" + strings.Repeat("c", 5000), "?since=yesterday", "?since=99999-01-01T00:00:00Z", "?limit=1&limit=2", "?wait=-1",
		"?version=-1", "?version=18446744073709551616", "?action=" + strings.Repeat("%C3%A9", 3000)}
	// Every query parameter a handler reads, at once, at each extreme.
	for _, v := range []string{"-1", "0", "99999999999999999999", "1e999", "true", "%5B%5D", strings.Repeat("z", 3000)} {
		var kv []string
		for _, k := range queryParams(t) {
			kv = append(kv, k+"="+v)
		}
		queries = append(queries, "?"+strings.Join(kv, "&"))
	}
	walk := func(cred credential) {
		n := 0
		classes := map[int]int{}
		serve := func(method, target string, body []byte, ct string) answer {
			a := e.serve(cred, method, target, body, ct, nil)
			classes[a.status/100*100]++
			return a
		}
		for _, rt := range routes {
			if skipRoute(cred, rt) {
				continue
			}
			targets := []string{fill(rt.Path, "x")}
			if strings.Contains(rt.Path, "{") {
				// Known ids get handlers past their lookups; odd ones test
				// the parsing of the rest.
				targets = append(targets, known(rt), fill(rt.Path, strings.Repeat("9", 400)), fill(rt.Path, "-1"), fill(rt.Path, "%20"), fill(rt.Path, "%E2%80%AE"))
			}
			var body []byte
			ct := ""
			if writeMethod(rt.Method) {
				body, ct = []byte(`{}`), "application/json"
			}
			for i, target := range targets {
				qs := queries
				if i > 1 {
					qs = queries[:1]
				}
				for _, q := range qs {
					a := serve(rt.Method, target+q, body, ct)
					requireNoServerError(t, a, cred.name+" "+rt.Method+" "+target+q)
					n++
				}
			}
			if !writeMethod(rt.Method) {
				continue
			}
			target := targets[len(targets)-1]
			if len(targets) > 1 {
				target = targets[1]
			}
			for name, b := range bodies {
				a := serve(rt.Method, target, b, "application/json")
				what := cred.name + " " + rt.Method + " " + target + " body " + name
				if name == "empty" || name == "blank" || name == "null" {
					// The same as no body (encoding/json decodes null into
					// a struct as nothing): valid for routes without
					// required fields.
					requireNoServerError(t, a, what)
				} else {
					requireTyped(t, a, what) // nothing malformed is ever accepted
				}
				n++
			}
			for _, f := range fields[rt] {
				for _, v := range hostileValues {
					a := serve(rt.Method, target, []byte(fmt.Sprintf(`{%q: %s}`, f, v)), "application/json")
					requireNoServerError(t, a, cred.name+" "+rt.Method+" "+target+" "+f+"="+v[:min(len(v), 40)])
					n++
				}
			}
		}
		t.Logf("%s: %d hostile requests, none answered 5xx; by status class %v", cred.name, n, classes)
	}
	// The agent first: the owner's walk may revoke it (a hostile but valid
	// revoke body).
	for _, c := range []credential{e.agentCert(), anonymous(), e.ownerToken()} {
		walk(c)
	}
	walk(orgCred)
	e.enableSession()
	walk(e.session())
	requireNoPanics(t, e)
}

// requireNoPanics checks the recovery middleware recovered nothing: the
// counter is zero and no log line reports a panic.
func requireNoPanics(t *testing.T, e *apiEnv) {
	t.Helper()
	mfs, err := e.l.API.Registry().Gather()
	require.NoError(t, err)
	found := false
	for _, mf := range mfs {
		if mf.GetName() == "rap_api_panics_total" {
			found = true
			require.Zero(t, mf.GetMetric()[0].GetCounter().GetValue(), "recovered panics")
		}
	}
	require.True(t, found, "the panic counter is registered")
	require.NotContains(t, e.g.Logs.String(), "handler panic recovered", "no handler panicked")
}
