package integration

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
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/apiclient"
	"github.com/rap-fabric/core/authn"
	"github.com/rap-fabric/core/authority"
	"github.com/rap-fabric/core/daemon"
	"github.com/rap-fabric/core/httpapi"
	"github.com/rap-fabric/core/internal/authtest"
	"github.com/rap-fabric/core/internal/testwait"
)

// totpClock is the admin clock of every authority of a test group; code moves
// it one TOTP step on and returns that step's code, so each step-up gets a
// fresh code without waiting 30 s.
type totpClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *totpClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *totpClock) code(t *testing.T, secret string) string {
	t.Helper()
	c.mu.Lock()
	c.t = c.t.Add(30 * time.Second)
	now := c.t
	c.mu.Unlock()
	s, err := authn.GenerateTOTPCode(secret, now, 30)
	require.NoError(t, err)
	return s
}

// mfaGroup starts n authorities sharing clock as their admin clock, with
// fast (test-only) password hashing.
func mfaGroup(t *testing.T, n int, clock *totpClock) *authtest.Group {
	return authtest.NewWithConfig(t, n, func(_ int, c *daemon.Config) {
		c.Admin = authority.AdminOptions{Argon2: authn.FastInsecureArgon2Params(), Clock: clock.Now}
	})
}

// ownerSession makes a platform owner with TOTP (which ends the owner API
// token) and logs in; it returns the session token and the TOTP secret.
func ownerSession(t *testing.T, g *authtest.Group, clock *totpClock) (string, string) {
	t.Helper()
	ctx := context.Background()
	ad := g.Leader(15 * time.Second).Auth.Admin()
	_, _, err := ad.BootstrapOwner(ctx, "owner")
	require.NoError(t, err)
	const password = "step-up group test password"
	secret, err := ad.DemoEnroll(ctx, "owner", password)
	require.NoError(t, err)
	anon, err := apiclient.New(apiclient.Options{Servers: apiAddrs(g), CAPin: g.Pin})
	require.NoError(t, err)
	defer anon.Close()
	var login struct {
		SessionToken string `json:"session_token"`
	}
	require.NoError(t, anon.Do(ctx, http.MethodPost, "/v1/auth/login", map[string]any{"username": "owner", "password": password,
		"totp_code": clock.code(t, secret), "token": true}, &login, nil))
	require.NotEmpty(t, login.SessionToken)
	return login.SessionToken, secret
}

// submitJoin sends a node's join request over the public agent route and
// returns the answer (pending for a reviewed token).
func submitJoin(t *testing.T, addrs []string, pin, token, name string) agentJoinStatus {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	nk, err := ecdh.X25519().GenerateKey(rand.Reader)
	require.NoError(t, err)
	poll := make([]byte, 32)
	_, _ = rand.Read(poll)
	h := sha256.Sum256([]byte("step-up-host-" + name))
	ec, err := apiclient.New(apiclient.Options{Servers: addrs, CAPin: pin, ServerName: httpapi.ServerNameForPin(pin)})
	require.NoError(t, err)
	defer ec.Close()
	var st agentJoinStatus
	require.NoError(t, ec.Do(context.Background(), http.MethodPost, "/v1/agent/join", map[string]any{"token": token, "node_name": name,
		"host_fingerprint": hex.EncodeToString(h[:]), "public_key": []byte(priv.Public().(ed25519.PublicKey)), "noise_public_key": nk.PublicKey().Bytes(),
		"facts": map[string]any{"region": "eu"}, "capabilities": []string{}, "poll_secret": poll}, &st, nil))
	return st
}

// errCode is the API error code of err ("" when err is not an API error).
func errCode(err error) string {
	var ae *apiclient.Error
	if errors.As(err, &ae) {
		return ae.Code
	}
	return ""
}

type agentJoinStatus struct {
	RequestID string `json:"request_id"`
	Status    string `json:"status"`
	NodeID    string `json:"node_id"`
}

// runRapctl runs the built rapctl with args and an empty config file; it
// returns stdout, stderr and the exit code.
func runRapctl(t *testing.T, bin string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(filepath.Join(bin, "rapctl"), args...)
	cmd.Env = append(os.Environ(), "RAPCTL_CONFIG="+filepath.Join(t.TempDir(), "none.json"), "RAPCTL_SERVERS=", "RAPCTL_TOKEN=", "RAPCTL_CA_PIN=")
	cmd.Stdin = strings.NewReader("") // not a terminal: no prompt
	var so, se strings.Builder
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	code := 0
	if err != nil {
		var ee *exec.ExitError
		require.True(t, errors.As(err, &ee), "rapctl %v: %v", args, err)
		code = ee.ExitCode()
	}
	return so.String(), se.String(), code
}

// TestStepUpThroughFollowers: three authorities, rapctl configured with the
// followers first. `token create`, `join-request approve` and `node revoke`
// each succeed after exactly one step-up (rapctl asks for the grant itself on
// step_up_required and retries once), and no follower ever consumes a grant:
// a follower answers not_leader before it takes the grant (rows counted in
// PostgreSQL), and refuses to grant one (the code is not spent there).
func TestStepUpThroughFollowers(t *testing.T) {
	bin := binaries(t)
	clock := &totpClock{t: time.Now()}
	g := mfaGroup(t, 3, clock)
	ctx := context.Background()
	leader := g.Leader(15 * time.Second)
	followers := g.Followers(leader)
	require.Len(t, followers, 2)
	owner := g.Client(g.DS...)

	// Before MFA: a cluster and a reviewed join token, and one pending request.
	cl, err := authtest.CreateCluster(ctx, owner, "su")
	require.NoError(t, err)
	pin := cl["ca_pin"].(string)
	var tok struct {
		Token string `json:"token"`
	}
	require.NoError(t, owner.Do(ctx, http.MethodPost, "/v1/join-tokens", map[string]any{"cluster": "su", "max_uses": 1, "description": "reviewed"}, &tok, nil))
	jr := submitJoin(t, apiAddrs(g), pin, tok.Token, "node-1")
	require.Equal(t, "pending", jr.Status)
	require.NotEmpty(t, jr.RequestID)

	session, secret := ownerSession(t, g, clock)
	conn, err := pgx.Connect(ctx, g.DBURL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	count := func(q string, args ...any) int {
		t.Helper()
		var n int
		require.NoError(t, conn.QueryRow(ctx, q, args...).Scan(&n))
		return n
	}
	var csrf string
	grants := func() int { return count(`SELECT count(*) FROM admin_step_up_grants`) }
	stepUps := func() int {
		return count(`SELECT count(*) FROM cluster_audit_events WHERE action = 'auth.step_up' AND outcome = 'ok'`)
	}

	// A follower refuses to grant (and so does not spend the code) and
	// refuses the action before it looks for a grant.
	only := func(addr string) *apiclient.Client {
		c, err := apiclient.New(apiclient.Options{Servers: []string{addr}, CAPin: g.Pin, Token: session, MaxRedirects: -1})
		require.NoError(t, err)
		t.Cleanup(c.Close)
		return c
	}
	approvePath := "/v1/join-requests/" + jr.RequestID + "/approve"
	code := clock.code(t, secret)
	err = only(followers[0].APIAddr()).Do(ctx, http.MethodPost, "/v1/auth/step-up", map[string]any{"method": "POST", "path": approvePath, "totp_code": code}, nil, nil)
	require.Equal(t, "not_leader", errCode(err), "%v", err)
	require.Equal(t, 0, grants())
	// The follower did not spend the code (a used code is refused): the
	// leader takes the very same one.
	require.NoError(t, only(leader.APIAddr()).Do(ctx, http.MethodPost, "/v1/auth/step-up", map[string]any{"method": "POST", "path": approvePath,
		"totp_code": code}, nil, nil))
	err = only(leader.APIAddr()).Do(ctx, http.MethodPost, "/v1/auth/step-up", map[string]any{"method": "POST", "path": approvePath, "totp_code": code}, nil, nil)
	require.Error(t, err, "a spent code is refused")
	require.Equal(t, 1, grants())
	for _, f := range followers {
		err := only(f.APIAddr()).Do(ctx, http.MethodPost, approvePath, map[string]any{}, nil, nil)
		require.Equal(t, "not_leader", errCode(err), "%v", err)
		require.Equal(t, 1, grants(), "follower %s consumed the grant", f.Node())
	}
	// The console on a follower (cookie session, CSRF token): the action and
	// a new step-up both answer not_leader naming the leader; nothing spent.
	console := func(method, addr, path string, body any) (int, map[string]any) {
		t.Helper()
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} // test only: the answers, not the TLS, are under test
		var rd *bytes.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		} else {
			rd = bytes.NewReader(nil)
		}
		req, err := http.NewRequest(method, "https://"+addr+path, rd)
		require.NoError(t, err)
		req.AddCookie(&http.Cookie{Name: authn.SessionCookieName, Value: session})
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-RAP-Request", "console")
		req.Header.Set("Sec-Fetch-Site", "same-origin")
		if csrf != "" {
			req.Header.Set("X-CSRF-Token", csrf)
		}
		res, err := hc.Do(req)
		require.NoError(t, err)
		defer res.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(res.Body).Decode(&out)
		return res.StatusCode, out
	}
	_, me := console(http.MethodGet, followers[1].APIAddr(), "/v1/auth/me", nil)
	csrf, _ = me["csrf_token"].(string)
	require.NotEmpty(t, csrf, "%v", me)
	for _, p := range []struct {
		path string
		body any
	}{{approvePath, map[string]any{}},
		{"/v1/auth/step-up", map[string]any{"method": "POST", "path": approvePath, "totp_code": clock.code(t, secret)}}} {
		status, out := console(http.MethodPost, followers[1].APIAddr(), p.path, p.body)
		e, _ := out["error"].(map[string]any)
		require.Equal(t, "not_leader", e["code"], "console POST %s on a follower: %d %v", p.path, status, out)
		d, _ := e["details"].(map[string]any)
		require.Equal(t, leader.APIAddr(), d["leader_api_addr"])
		require.Equal(t, 1, grants(), "console POST %s on a follower", p.path)
	}

	// The grant is still there for the leader; drop it (logout would too).
	_, err = conn.Exec(ctx, `DELETE FROM admin_step_up_grants`)
	require.NoError(t, err)

	servers := strings.Join([]string{followers[0].APIAddr(), followers[1].APIAddr(), leader.APIAddr()}, ",")
	rapctl := func(args ...string) (string, string, int) {
		return runRapctl(t, bin, append([]string{"--server", servers, "--token", session, "--ca-pin", g.Pin}, args...)...)
	}
	// Without a code and without a terminal: a clear refusal, nothing spent.
	before := stepUps()
	_, errOut, rc := rapctl("token", "create", "--cluster", "su", "--ttl", "10m")
	require.NotEqual(t, 0, rc)
	require.Contains(t, errOut, "step_up_required")
	require.Contains(t, errOut, "--totp")
	require.Equal(t, before, stepUps())

	ok := func(args ...string) map[string]any {
		t.Helper()
		before := stepUps()
		out, errOut, rc := rapctl(append([]string{"--totp", clock.code(t, secret), "-o", "json"}, args...)...)
		require.Equal(t, 0, rc, "rapctl %v\nstdout: %s\nstderr: %s", args, out, errOut)
		var v map[string]any
		require.NoError(t, json.Unmarshal([]byte(out), &v), out)
		require.Equal(t, before+1, stepUps(), "rapctl %v: exactly one step-up", args)
		require.Equal(t, 0, grants(), "rapctl %v: the grant was consumed (by the leader)", args)
		return v
	}
	created := ok("token", "create", "--cluster", "su", "--ttl", "10m")
	require.True(t, strings.HasPrefix(created["token"].(string), "rapjt."), "%v", created)
	approved := ok("join-request", "approve", jr.RequestID)
	node, _ := approved["node_id"].(string)
	require.NotEmpty(t, node, "%v", approved)
	revoked := ok("node", "revoke", "su", node, "--reason", "step-up test")
	require.Equal(t, "revoked", revoked["membership_status"], "%v", revoked)

	// What happened is in PostgreSQL: three fenced actions, each by the
	// session's user, and no grant left behind.
	require.Equal(t, 1, count(`SELECT count(*) FROM cluster_audit_events WHERE action = 'join_request.approve' AND outcome = 'ok'`))
	require.Equal(t, 1, count(`SELECT count(*) FROM cluster_memberships WHERE node_id = $1 AND membership_status = 'revoked'`, node))
	require.Equal(t, 0, grants())
}

// TestAuthorityJoinsAfterMFA: once the owner has TOTP (owner API tokens
// refused), a fourth authority — a real rap-authority process — joins the
// group with a single-use authority join token that the owner created with
// `rapctl authority join-token create --ttl 15m` (one step-up), through a
// follower; the token is then dead (a fifth authority using it is refused at
// once and says why), and the fourth authority is removed again.
func TestAuthorityJoinsAfterMFA(t *testing.T) {
	bin := binaries(t)
	clock := &totpClock{t: time.Now()}
	g := mfaGroup(t, 3, clock)
	ctx := context.Background()
	leader := g.Leader(15 * time.Second)
	followers := g.Followers(leader)
	session, secret := ownerSession(t, g, clock)

	// The bootstrap owner token no longer works.
	err := g.Client(g.DS...).Do(ctx, http.MethodGet, "/v1/authority/status", nil, nil, nil)
	require.NoError(t, err, "status is public")
	err = g.Client(g.DS...).Do(ctx, http.MethodPost, "/v1/authority/join-tokens", map[string]any{}, nil, nil)
	require.Equal(t, "unauthenticated", errCode(err), "%v", err)

	servers := strings.Join([]string{followers[0].APIAddr(), followers[1].APIAddr(), leader.APIAddr()}, ",")
	rapctl := func(args ...string) string {
		t.Helper()
		out, errOut, rc := runRapctl(t, bin, append([]string{"--server", servers, "--token", session, "--ca-pin", g.Pin}, args...)...)
		require.Equal(t, 0, rc, "rapctl %v\nstdout: %s\nstderr: %s", args, out, errOut)
		return out
	}
	var created struct {
		ID        string    `json:"id"`
		Token     string    `json:"token"`
		ExpiresAt time.Time `json:"expires_at"`
		CreatedAt time.Time `json:"created_at"`
		State     string    `json:"state"`
	}
	require.NoError(t, json.Unmarshal([]byte(rapctl("--totp", clock.code(t, secret), "-o", "json", "authority", "join-token", "create", "--ttl", "15m",
		"--description", "a4")), &created))
	require.True(t, strings.HasPrefix(created.Token, "rapmj."), "%+v", created)
	require.Equal(t, 15*time.Minute, created.ExpiresAt.Sub(created.CreatedAt))
	require.Equal(t, "active", created.State)
	// Longer than an hour is refused.
	out, errOut, rc := runRapctl(t, bin, "--server", servers, "--token", session, "--ca-pin", g.Pin, "--totp", clock.code(t, secret),
		"authority", "join-token", "create", "--ttl", "2h")
	require.NotEqual(t, 0, rc, out)
	require.Contains(t, errOut, "invalid_argument")

	conn, err := pgx.Connect(ctx, g.DBURL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var stored int
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM authority_join_tokens WHERE id = $1 AND length(secret_hash) = 32`, created.ID).Scan(&stored))
	require.Equal(t, 1, stored, "only the hash is stored")

	// The fourth authority joins through a follower (not_leader followed).
	a4 := &proc{id: "a4", raft: freePort(t), api: freePort(t), dir: t.TempDir()}
	r4 := spawn(t, bin, g.DBURL, a4, "--join", followers[0].APIAddr(), "--join-token", created.Token, "--ca-pin", g.Pin)
	g.Eventually(60*time.Second, "four members everywhere", func() bool {
		for _, d := range g.DS {
			if len(d.FSM.Members()) != 4 {
				return false
			}
		}
		return true
	})
	testwait.Until(t, 30*time.Second, "a4 logs its join", func() bool { return strings.Contains(a4.out.String(), "joined the authority group") })
	require.False(t, r4.exited(), a4.out.String())
	var list struct {
		Items []struct {
			ID       string `json:"id"`
			State    string `json:"state"`
			MemberID string `json:"member_id"`
		} `json:"items"`
	}
	require.NoError(t, json.Unmarshal([]byte(rapctl("-o", "json", "authority", "join-token", "list")), &list))
	require.Len(t, list.Items, 1)
	require.Equal(t, "joined", list.Items[0].State)
	require.Equal(t, "a4", list.Items[0].MemberID)

	// The token is spent: a fifth authority is refused at once and says why.
	a5 := &proc{id: "a5", raft: freePort(t), api: freePort(t), dir: t.TempDir()}
	r5 := spawn(t, bin, g.DBURL, a5, "--join", leader.APIAddr(), "--join-token", created.Token, "--ca-pin", g.Pin)
	select {
	case <-r5.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("a5 kept trying with a spent token:\n%s", a5.out.String())
	}
	require.Contains(t, a5.out.String(), "join refused; not retrying")
	require.Contains(t, a5.out.String(), "unauthenticated")
	for _, d := range g.DS {
		require.Len(t, d.FSM.Members(), 4, "a5 is no member")
	}

	// A join that cannot get through logs each retry and its reason.
	a6 := &proc{id: "a6", raft: freePort(t), api: freePort(t), dir: t.TempDir()}
	r6 := spawn(t, bin, g.DBURL, a6, "--join", freePort(t), "--join-token", created.Token, "--ca-pin", g.Pin)
	testwait.Until(t, 30*time.Second, "a6 logs its second retry", func() bool { return strings.Contains(a6.out.String(), "attempt=2") })
	require.Contains(t, a6.out.String(), "join failed; retrying in 1s")
	require.Contains(t, a6.out.String(), "no authority reachable")
	require.False(t, r6.exited())
	require.NoError(t, r6.cmd.Process.Kill())
	<-r6.done

	// Removed again (one step-up).
	rapctl("--totp", clock.code(t, secret), "authority", "remove", "a4")
	g.Eventually(30*time.Second, "three members everywhere", func() bool {
		for _, d := range g.DS {
			if len(d.FSM.Members()) != 3 {
				return false
			}
			if _, ok := d.FSM.Member("a4"); ok {
				return false
			}
		}
		return true
	})

	// The table output ends with the line that joins an authority.
	out = rapctl("--totp", clock.code(t, secret), "authority", "join-token", "create")
	require.Contains(t, out, "rap-authority run --join "+followers[0].APIAddr()+" --join-token rapmj.", out)
	require.Contains(t, out, "--ca-pin "+g.Pin)

	// Audited, and the secret is in no log and no audit row.
	for _, action := range []string{"authority.join_token.create", "authority.join_token.use", "authority.member.add", "authority.join_token.joined", "authority.member.remove"} {
		var n int
		require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM cluster_audit_events WHERE action = $1 AND outcome = 'ok'`, action).Scan(&n))
		require.GreaterOrEqual(t, n, 1, action)
	}
	var leaks int
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM cluster_audit_events WHERE details::text LIKE '%' || $1 || '%'`, created.Token[strings.LastIndex(created.Token, ".")+1:]).Scan(&leaks))
	require.Zero(t, leaks)
	require.NotContains(t, g.Logs.String(), created.Token)
	for _, p := range []*proc{a4, a5, a6} {
		require.NotContains(t, p.out.String(), created.Token, p.id)
	}
}
