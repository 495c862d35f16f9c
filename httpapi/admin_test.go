package httpapi_test

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/authn"
	"github.com/rap-fabric/core/authority"
	"github.com/rap-fabric/core/daemon"
	"github.com/rap-fabric/core/domain"
	"github.com/rap-fabric/core/httpapi"
	"github.com/rap-fabric/core/internal/authtest"
	"github.com/rap-fabric/core/store"
)

// fakeClock drives TOTP steps, sessions and lockouts: each TOTP code the test
// needs moves the clock by one 30 s step, so codes are always fresh.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

const ownerPassword = "correct horse battery staple"

type adminEnv struct {
	t      *testing.T
	g      *authtest.Group
	d      *daemon.Daemon
	ad     *authority.Admin
	clock  *fakeClock
	secret string
	base   string
	hc     *http.Client
	csrf   string
}

func newAdminEnv(t *testing.T) *adminEnv {
	clock := &fakeClock{t: time.Now()}
	g := authtest.NewWithConfig(t, 1, func(_ int, c *daemon.Config) {
		c.Admin = authority.AdminOptions{Argon2: authn.FastInsecureArgon2Params(), Clock: clock.Now}
	})
	d := g.Leader(15 * time.Second)
	ad := d.Auth.Admin()
	ctx := context.Background()
	_, setup, err := ad.BootstrapOwner(ctx, "owner")
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(setup, "raps_setup_"))
	_, _, err = ad.BootstrapOwner(ctx, "second")
	require.Error(t, err, "only the first owner can be bootstrapped")
	secret, err := ad.DemoEnroll(ctx, "owner", ownerPassword)
	require.NoError(t, err)
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	return &adminEnv{t: t, g: g, d: d, ad: ad, clock: clock, secret: secret, base: "https://" + d.APIAddr(),
		hc: &http.Client{Timeout: 10 * time.Second, Jar: jar, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}}
}

// code returns a TOTP code of a step no earlier request has used.
func (e *adminEnv) code() string {
	e.clock.Advance(30 * time.Second)
	c, err := authn.GenerateTOTPCode(e.secret, e.clock.Now(), 30)
	require.NoError(e.t, err)
	return c
}

type resp struct {
	Status int
	Header http.Header
	Body   map[string]any
}

func (r resp) code() string {
	if e, ok := r.Body["error"].(map[string]any); ok {
		s, _ := e["code"].(string)
		return s
	}
	return ""
}

func (e *adminEnv) raw(method, path string, body []byte, hdr map[string]string) resp {
	req, err := http.NewRequest(method, e.base+path, bytes.NewReader(body))
	require.NoError(e.t, err)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := e.hc.Do(req)
	require.NoError(e.t, err)
	defer res.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(res.Body).Decode(&out)
	return resp{Status: res.StatusCode, Header: res.Header, Body: out}
}

// do sends a JSON request with the session cookie and its CSRF token.
func (e *adminEnv) do(method, path string, body any) resp {
	var b []byte
	if body != nil {
		var err error
		b, err = json.Marshal(body)
		require.NoError(e.t, err)
	}
	return e.raw(method, path, b, map[string]string{"X-CSRF-Token": e.csrf})
}

func (e *adminEnv) login() {
	r := e.do(http.MethodPost, "/v1/auth/login", map[string]any{"username": "owner", "password": ownerPassword, "totp_code": e.code()})
	require.Equal(e.t, http.StatusOK, r.Status, "%v", r.Body)
	me := e.do(http.MethodGet, "/v1/auth/me", nil)
	require.Equal(e.t, http.StatusOK, me.Status, "%v", me.Body)
	e.csrf, _ = me.Body["csrf_token"].(string)
	require.NotEmpty(e.t, e.csrf)
}

func (e *adminEnv) stepUp(method, path string) resp {
	return e.do(http.MethodPost, "/v1/auth/step-up", map[string]any{"method": method, "path": path, "totp_code": e.code()})
}

func (e *adminEnv) audit(action string) []store.AuditEvent {
	evs, err := e.d.Auth.ListAudit(context.Background(), store.AuditFilter{Action: action}, store.Page{Limit: 500})
	require.NoError(e.t, err)
	return evs
}

// submitJoin files a join request for cluster with a fresh fake agent.
func (e *adminEnv) submitJoin(clusterID, token, name string) string {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	nk, _ := ecdh.X25519().GenerateKey(rand.Reader)
	poll := make([]byte, 32)
	_, _ = rand.Read(poll)
	h := sha256.Sum256([]byte(name))
	st, err := e.d.Auth.SubmitJoinRequest(context.Background(), "127.0.0.1", clusterID, authority.JoinRequestInput{
		Token: token, NodeName: name, HostFingerprint: hex.EncodeToString(h[:]), PublicKey: priv.Public().(ed25519.PublicKey), NoisePublicKey: nk.PublicKey().Bytes(),
		Facts: json.RawMessage(`{"os":"linux"}`), Capabilities: []domain.Capability{"can_route_mesh", "can_accept_node_ingress"},
		RequestedRoles: []domain.Role{domain.RoleRelayNode}, PollSecret: poll})
	require.NoError(e.t, err)
	return st.RequestID
}

func TestHighRiskRoutesAreRegistered(t *testing.T) {
	routed := map[string]bool{}
	for _, r := range httpapi.New(httpapi.Options{}).Routes() {
		routed[r.Method+" "+r.Path] = true
	}
	for k, a := range httpapi.HighRiskRoutes() {
		require.True(t, routed[k], "high-risk marker %q names no route", k)
		require.True(t, authn.Action(a).HighRisk(), a)
	}
	for _, must := range []string{"POST /v1/join-requests/{id}/approve", "POST /v1/clusters/{cluster}/nodes/{id}/revoke", "POST /v1/clusters", "POST /v1/clusters/{cluster}/nodes/{id}/roles"} {
		require.Contains(t, httpapi.HighRiskRoutes(), must)
	}
}

func TestLoginTOTPLockoutAndOwnerToken(t *testing.T) {
	e := newAdminEnv(t)
	// The bootstrap owner token stopped working: an owner has MFA.
	tok := e.raw(http.MethodGet, "/v1/clusters", nil, map[string]string{"Authorization": "Bearer " + e.g.Token})
	require.Equal(t, http.StatusUnauthorized, tok.Status, "%v", tok.Body)

	r := e.do(http.MethodPost, "/v1/auth/login", map[string]any{"username": "owner", "password": ownerPassword})
	require.Equal(t, http.StatusUnauthorized, r.Status)
	require.Equal(t, "mfa_required", r.code())
	r = e.do(http.MethodPost, "/v1/auth/login", map[string]any{"username": "owner", "password": ownerPassword, "totp_code": "000000"})
	require.Equal(t, http.StatusUnauthorized, r.Status)
	require.Contains(t, []string{"bad_second_factor", "totp_replay"}, r.code())
	code := e.code()
	r = e.do(http.MethodPost, "/v1/auth/login", map[string]any{"username": "owner", "password": ownerPassword, "totp_code": code, "token": true})
	require.Equal(t, http.StatusOK, r.Status, "%v", r.Body)
	bearer, _ := r.Body["session_token"].(string)
	require.True(t, strings.HasPrefix(bearer, "raps_"), "CLI logins get the token in the body")
	// The same code again is a replay.
	r = e.do(http.MethodPost, "/v1/auth/login", map[string]any{"username": "owner", "password": ownerPassword, "totp_code": code})
	require.Equal(t, "totp_replay", r.code())

	// A bearer session works on owner routes without CSRF headers.
	r = e.raw(http.MethodGet, "/v1/clusters", nil, map[string]string{"Authorization": "Bearer " + bearer})
	require.Equal(t, http.StatusOK, r.Status, "%v", r.Body)

	// Idle expiry: 31 minutes later the session is gone.
	e.clock.Advance(31 * time.Minute)
	r = e.raw(http.MethodGet, "/v1/auth/me", nil, map[string]string{"Authorization": "Bearer " + bearer})
	require.Equal(t, http.StatusUnauthorized, r.Status)
	require.Equal(t, "session_expired", r.code())

	// Lockout: wrong passwords (spaced so the token bucket is not what refuses)
	// lock the account; then even the right credentials are refused.
	locked := false
	for i := 0; i < 8 && !locked; i++ {
		e.clock.Advance(15 * time.Second)
		r = e.do(http.MethodPost, "/v1/auth/login", map[string]any{"username": "owner", "password": "wrong password", "totp_code": "123456"})
		if r.Status == http.StatusTooManyRequests {
			require.Equal(t, "locked_out", r.code())
			require.NotEmpty(t, r.Header.Get("Retry-After"))
			locked = true
		} else {
			require.Equal(t, "bad_credentials", r.code())
		}
	}
	require.True(t, locked, "the account locks after repeated failures")
	r = e.do(http.MethodPost, "/v1/auth/login", map[string]any{"username": "owner", "password": ownerPassword, "totp_code": e.code()})
	require.Equal(t, http.StatusTooManyRequests, r.Status)
	require.Equal(t, "locked_out", r.code())
	// After the lock expires the owner gets in again.
	e.clock.Advance(16 * time.Minute)
	e.login()

	var ok, denied int
	for _, ev := range e.audit("auth.login") {
		switch ev.Outcome {
		case "ok":
			ok++
			require.Contains(t, string(ev.Risk), `"mfa"`)
		case "denied":
			denied++
		}
	}
	require.GreaterOrEqual(t, ok, 2)
	require.GreaterOrEqual(t, denied, 5)
}

// TestBrowserRequestHygiene is TESTING.md C1.
func TestBrowserRequestHygiene(t *testing.T) {
	e := newAdminEnv(t)
	e.login()
	org := []byte(`{"name":"Acme","slug":"acme"}`)

	// Cross-origin POST with the session cookie → 403.
	r := e.raw(http.MethodPost, "/v1/organizations", org, map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site", "X-CSRF-Token": e.csrf})
	require.Equal(t, http.StatusForbidden, r.Status, "%v", r.Body)
	require.Equal(t, "csrf", r.code())
	r = e.raw(http.MethodPost, "/v1/organizations", org, map[string]string{"Origin": "https://evil.example"})
	require.Equal(t, http.StatusForbidden, r.Status, "%v", r.Body)
	// A cookie without the CSRF token or the custom header → 403.
	r = e.raw(http.MethodPost, "/v1/organizations", org, nil)
	require.Equal(t, http.StatusForbidden, r.Status, "%v", r.Body)
	require.Equal(t, "csrf", r.code())
	// Cross-site login posts are refused too.
	r = e.raw(http.MethodPost, "/v1/auth/login", []byte(`{"username":"owner","password":"x"}`), map[string]string{"Sec-Fetch-Site": "cross-site"})
	require.Equal(t, http.StatusForbidden, r.Status)

	// State change via GET → 405.
	r = e.do(http.MethodGet, "/v1/join-requests/00000000-0000-0000-0000-000000000000/approve", nil)
	require.Equal(t, http.StatusMethodNotAllowed, r.Status, "%v", r.Body)
	r = e.do(http.MethodGet, "/v1/auth/logout", nil)
	require.Equal(t, http.StatusMethodNotAllowed, r.Status)

	// 10 MiB body → 413.
	big := append([]byte(`{"name":"`), bytes.Repeat([]byte("a"), 10<<20)...)
	big = append(big, []byte(`"}`)...)
	r = e.raw(http.MethodPost, "/v1/organizations", big, map[string]string{"X-CSRF-Token": e.csrf})
	require.Equal(t, http.StatusRequestEntityTooLarge, r.Status, "%v", r.Body)
	r = e.raw(http.MethodPost, "/v1/auth/login", big, nil)
	require.Equal(t, http.StatusRequestEntityTooLarge, r.Status)

	// Deeply nested JSON → 400.
	deep := []byte(`{"name":"x","slug":"x","metadata":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`)
	r = e.raw(http.MethodPost, "/v1/organizations", deep, map[string]string{"X-CSRF-Token": e.csrf})
	require.Equal(t, http.StatusBadRequest, r.Status, "%v", r.Body)
	r = e.raw(http.MethodPost, "/v1/auth/login", []byte(strings.Repeat("[", 100)+strings.Repeat("]", 100)), nil)
	require.Equal(t, http.StatusBadRequest, r.Status)

	// A same-origin request with the token goes through.
	r = e.raw(http.MethodPost, "/v1/organizations", org, map[string]string{"X-CSRF-Token": e.csrf, "Origin": e.base, "Sec-Fetch-Site": "same-origin"})
	require.Equal(t, http.StatusCreated, r.Status, "%v", r.Body)
}

// TestStepUp is TESTING.md C2: high-risk actions without a fresh second
// factor, with a replayed grant or code, or with a grant for another action or
// target are refused (and audited); with the right grant they succeed once.
func TestStepUp(t *testing.T) {
	e := newAdminEnv(t)
	e.login()

	// Cluster trust: no grant → 403 step_up_required, audited as denied with risk.
	r := e.do(http.MethodPost, "/v1/clusters", map[string]any{"name": "east", "slug": "east"})
	require.Equal(t, http.StatusForbidden, r.Status, "%v", r.Body)
	require.Equal(t, "step_up_required", r.code())
	den := e.audit("cluster.trust")
	require.NotEmpty(t, den)
	last := den[len(den)-1]
	require.Equal(t, "denied", last.Outcome)
	require.Equal(t, "user", last.ActorKind)
	require.NotEmpty(t, last.SourceAddr)
	require.Contains(t, string(last.Risk), "step_up")

	// Not a high-risk route: no grant is issued.
	r = e.stepUp(http.MethodGet, "/v1/clusters")
	require.Equal(t, http.StatusBadRequest, r.Status)

	g := e.stepUp(http.MethodPost, "/v1/clusters")
	require.Equal(t, http.StatusOK, g.Status, "%v", g.Body)
	require.Equal(t, "cluster.trust", g.Body["action"])
	r = e.do(http.MethodPost, "/v1/clusters", map[string]any{"name": "east", "slug": "east"})
	require.Equal(t, http.StatusCreated, r.Status, "%v", r.Body)
	clusterID := r.Body["id"].(string)
	// The grant was spent: a second cluster needs a new one.
	r = e.do(http.MethodPost, "/v1/clusters", map[string]any{"name": "west", "slug": "west"})
	require.Equal(t, "step_up_required", r.code())

	// A replayed TOTP code is refused for step-up.
	code := e.code()
	r = e.do(http.MethodPost, "/v1/auth/step-up", map[string]any{"method": "POST", "path": "/v1/join-tokens", "totp_code": code})
	require.Equal(t, http.StatusOK, r.Status, "%v", r.Body)
	r = e.do(http.MethodPost, "/v1/auth/step-up", map[string]any{"method": "POST", "path": "/v1/join-tokens", "totp_code": code})
	require.Equal(t, http.StatusUnauthorized, r.Status)
	require.Equal(t, "totp_replay", r.code())
	r = e.do(http.MethodPost, "/v1/join-tokens", map[string]any{"cluster": "east", "max_uses": 5})
	require.Equal(t, http.StatusCreated, r.Status, "%v", r.Body)
	token := r.Body["token"].(string)

	reqA := e.submitJoin(clusterID, token, "edge-a")
	reqB := e.submitJoin(clusterID, token, "edge-b")

	// A grant for another target (request A) does not approve request B.
	require.Equal(t, http.StatusOK, e.stepUp(http.MethodPost, "/v1/join-requests/"+reqA+"/approve").Status)
	r = e.do(http.MethodPost, "/v1/join-requests/"+reqB+"/approve", nil)
	require.Equal(t, "step_up_required", r.code())
	// A grant for another action (reject is not high risk; revoke is) does not approve.
	require.Equal(t, http.StatusOK, e.stepUp(http.MethodPost, "/v1/clusters/east/nodes/x/revoke").Status)
	r = e.do(http.MethodPost, "/v1/join-requests/"+reqB+"/approve", nil)
	require.Equal(t, "step_up_required", r.code())
	// The right grant approves once.
	r = e.do(http.MethodPost, "/v1/join-requests/"+reqA+"/approve", nil)
	require.Equal(t, http.StatusOK, r.Status, "%v", r.Body)
	nodeID := r.Body["node_id"].(string)

	// Role assignment needs its own grant.
	rolePath := "/v1/clusters/" + clusterID + "/nodes/" + nodeID + "/roles"
	r = e.do(http.MethodPost, rolePath, map[string]any{"role": "relay-node"})
	require.Equal(t, "step_up_required", r.code())
	require.Equal(t, http.StatusOK, e.stepUp(http.MethodPost, rolePath).Status)
	r = e.do(http.MethodPost, rolePath, map[string]any{"role": "relay-node"})
	require.Equal(t, http.StatusCreated, r.Status, "%v", r.Body)

	// Revocation with a grant for exactly that node.
	revokePath := "/v1/clusters/" + clusterID + "/nodes/" + nodeID + "/revoke"
	require.Equal(t, http.StatusOK, e.stepUp(http.MethodPost, revokePath).Status)
	r = e.do(http.MethodPost, revokePath, map[string]any{"reason": "test"})
	require.Equal(t, http.StatusOK, r.Status, "%v", r.Body)

	// Five wrong step-up codes lock step-up.
	for i := 0; i < 5; i++ {
		r = e.do(http.MethodPost, "/v1/auth/step-up", map[string]any{"method": "POST", "path": "/v1/clusters", "totp_code": "000000"})
		require.NotEqual(t, http.StatusOK, r.Status)
	}
	r = e.stepUp(http.MethodPost, "/v1/clusters")
	require.Equal(t, http.StatusTooManyRequests, r.Status, "%v", r.Body)

	// Every refused attempt is in the audit log with actor, source and outcome.
	var deniedApprove int
	for _, ev := range e.audit("node.approve") {
		if ev.Outcome == "denied" {
			deniedApprove++
			require.NotEmpty(t, ev.Actor)
			require.NotEmpty(t, ev.SourceAddr)
		}
	}
	require.Equal(t, 2, deniedApprove)
	require.NotEmpty(t, e.audit("auth.step_up"))

	// Logout ends the session.
	require.Equal(t, http.StatusOK, e.do(http.MethodPost, "/v1/auth/logout", map[string]any{}).Status)
	require.Equal(t, http.StatusUnauthorized, e.do(http.MethodGet, "/v1/auth/me", nil).Status)
}

// TestAccountSetupFlow covers bootstrap → setup (TOTP enrollment with QR) →
// recovery codes → a login with a recovery code, and account creation by an
// owner with step-up.
func TestAccountSetupFlow(t *testing.T) {
	e := newAdminEnv(t)
	e.login()
	path := "/v1/admin/users"
	require.Equal(t, http.StatusOK, e.stepUp(http.MethodPost, path).Status)
	r := e.do(http.MethodPost, path, map[string]any{"name": "alice", "role": "platform_admin"})
	require.Equal(t, http.StatusCreated, r.Status, "%v", r.Body)
	setup := r.Body["setup_secret"].(string)

	// alice cannot log in before the setup.
	other := *e
	jar, _ := cookiejar.New(nil)
	other.hc = &http.Client{Jar: jar, Timeout: 10 * time.Second, Transport: e.hc.Transport}
	other.csrf = ""
	r = other.do(http.MethodPost, "/v1/auth/login", map[string]any{"username": "alice", "password": "whatever password"})
	require.Equal(t, "bad_credentials", r.code())
	r = other.do(http.MethodPost, "/v1/auth/setup/begin", map[string]any{"username": "alice", "setup_secret": "raps_setup_wrong"})
	require.Equal(t, http.StatusUnauthorized, r.Status)
	r = other.do(http.MethodPost, "/v1/auth/setup/begin", map[string]any{"username": "alice", "setup_secret": setup})
	require.Equal(t, http.StatusOK, r.Status, "%v", r.Body)
	require.True(t, strings.HasPrefix(r.Body["otpauth_uri"].(string), "otpauth://totp/"))
	require.NotEmpty(t, r.Body["qr_png_base64"])
	other.secret = r.Body["totp_secret"].(string)
	r = other.do(http.MethodPost, "/v1/auth/setup/complete", map[string]any{"username": "alice", "setup_secret": setup, "password": "alice long password", "totp_code": other.code()})
	require.Equal(t, http.StatusOK, r.Status, "%v", r.Body)
	codes := r.Body["recovery_codes"].([]any)
	require.Len(t, codes, 10)
	// The setup secret is single use.
	r = other.do(http.MethodPost, "/v1/auth/setup/begin", map[string]any{"username": "alice", "setup_secret": setup})
	require.Equal(t, http.StatusUnauthorized, r.Status)

	// A recovery code logs in once.
	jar2, _ := cookiejar.New(nil)
	other.hc = &http.Client{Jar: jar2, Timeout: 10 * time.Second, Transport: e.hc.Transport}
	r = other.do(http.MethodPost, "/v1/auth/login", map[string]any{"username": "alice", "password": "alice long password", "recovery_code": codes[0]})
	require.Equal(t, http.StatusOK, r.Status, "%v", r.Body)
	require.Equal(t, true, r.Body["used_recovery_code"])
	r = other.do(http.MethodPost, "/v1/auth/login", map[string]any{"username": "alice", "password": "alice long password", "recovery_code": codes[0]})
	require.Equal(t, http.StatusUnauthorized, r.Status)
	// A platform admin cannot create accounts.
	other.login2("alice", "alice long password")
	r = other.do(http.MethodPost, path, map[string]any{"name": "bob", "role": "platform_admin"})
	require.Equal(t, http.StatusForbidden, r.Status)

	// A trusted device: registered right after MFA, listed, revocable.
	r = e.do(http.MethodPost, "/v1/auth/devices", map[string]any{"label": "laptop"})
	require.Equal(t, http.StatusCreated, r.Status, "%v", r.Body)
	id := r.Body["id"].(string)
	r = e.do(http.MethodGet, "/v1/auth/devices", nil)
	require.Len(t, r.Body["items"], 1)
	require.Equal(t, http.StatusOK, e.do(http.MethodPost, "/v1/auth/devices/"+id+"/revoke", map[string]any{}).Status)
}

func (e *adminEnv) login2(user, password string) {
	r := e.do(http.MethodPost, "/v1/auth/login", map[string]any{"username": user, "password": password, "totp_code": e.code()})
	require.Equal(e.t, http.StatusOK, r.Status, "%v", r.Body)
	me := e.do(http.MethodGet, "/v1/auth/me", nil)
	require.Equal(e.t, http.StatusOK, me.Status)
	e.csrf = me.Body["csrf_token"].(string)
}
