package integration

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/authn"
	"github.com/rap-fabric/core/authority"
	"github.com/rap-fabric/core/daemon"
	"github.com/rap-fabric/core/internal/authtest"
)

// TestRapctlOrg drives every `rapctl org …` command of the organization API
// (the built binary) against a real authority: the platform side with the
// owner token (publish, list, withdraw endpoints; invite the first admin),
// the organization side logged in as the organization admin (`rapctl login`
// saves the session), with `rapctl org step-up` before each high-risk
// command. It checks the output, the effect (read back) and the refusals.
func TestRapctlOrg(t *testing.T) {
	bin := binaries(t)
	var off atomic.Int64
	now := func() time.Time { return time.Now().Add(time.Duration(off.Load())) }
	g := authtest.NewWithConfig(t, 1, func(_ int, c *daemon.Config) {
		c.Admin = authority.AdminOptions{Argon2: authn.FastInsecureArgon2Params(), Clock: now}
	})
	ctx := context.Background()
	g.Leader(10 * time.Second)
	owner := g.Client(g.DS...)
	addrs := apiAddrs(g)
	dir := t.TempDir()

	run := func(cfg string, withToken bool, args ...string) (string, string, int) {
		t.Helper()
		base := []string{"--server", strings.Join(addrs, ","), "--ca-pin", g.Pin}
		if withToken {
			base = append(base, "--token", g.Token)
		}
		cmd := exec.Command(filepath.Join(bin, "rapctl"), append(base, args...)...)
		cmd.Env = append(os.Environ(), "RAPCTL_CONFIG="+filepath.Join(dir, cfg))
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
	platform := func(args ...string) string {
		t.Helper()
		out, errOut, code := run("owner.json", true, args...)
		require.Equal(t, 0, code, "rapctl %v\nstdout: %s\nstderr: %s", args, out, errOut)
		return out
	}
	org := func(args ...string) string {
		t.Helper()
		out, errOut, code := run("org.json", false, args...)
		require.Equal(t, 0, code, "rapctl %v\nstdout: %s\nstderr: %s", args, out, errOut)
		return out
	}
	orgJSON := func(v any, args ...string) {
		t.Helper()
		out := org(append([]string{"-o", "json"}, args...)...)
		require.NoError(t, json.Unmarshal([]byte(out), v), "rapctl %v printed no JSON: %s", args, out)
	}
	code := func(secret string) string {
		off.Add(int64(31 * time.Second))
		c, err := authn.GenerateTOTPCode(secret, now(), 30)
		require.NoError(t, err)
		return c
	}

	// A node to back the endpoint.
	_, err := authtest.CreateCluster(ctx, owner, "demo")
	require.NoError(t, err)
	var c struct {
		ID    string `json:"id"`
		CAPin string `json:"ca_pin"`
	}
	require.NoError(t, owner.Do(ctx, http.MethodGet, "/v1/clusters/demo", nil, &c, nil))
	var tok struct {
		Token string `json:"token"`
	}
	require.NoError(t, owner.Do(ctx, http.MethodPost, "/v1/join-tokens", map[string]any{"cluster": "demo", "max_uses": 1, "auto_approve": true, "allowed_roles": []string{"relay-node"}, "description": "rapctl org"}, &tok, nil))
	nodeID, _ := joinVPNNode(t, addrs, c.CAPin, tok.Token, "exit-1")

	// Platform side (and the cross-cluster view, C8).
	require.Contains(t, platform("cluster", "compare"), "demo")
	platform("org", "create", "Acme", "--slug", "acme")
	out := platform("org", "endpoint", "publish", "acme", "acme-exit", "--kind", "egress", "--protocol", "tcp", "--region", "eu-central", "--nodes", c.ID+":"+nodeID)
	require.Contains(t, out, "acme-exit")
	out = platform("-o", "json", "org", "endpoint", "list", "acme")
	require.Contains(t, out, nodeID, "the platform view names the backing nodes")
	var inv struct {
		SetupSecret string `json:"setup_secret"`
		User        struct{ Name string }
	}
	require.NoError(t, json.Unmarshal([]byte(platform("-o", "json", "org", "invite", "acme", "boss")), &inv))
	require.Equal(t, "boss@acme", inv.User.Name)

	// The admin finishes the setup (API) and logs in with rapctl.
	var en struct {
		Secret string `json:"totp_secret"`
	}
	anon := g.Client(g.DS...)
	require.NoError(t, anon.Do(ctx, http.MethodPost, "/v1/auth/setup/begin", map[string]any{"username": "boss@acme", "setup_secret": inv.SetupSecret}, &en, nil))
	require.NoError(t, anon.Do(ctx, http.MethodPost, "/v1/auth/setup/complete", map[string]any{"username": "boss@acme", "setup_secret": inv.SetupSecret,
		"password": "acme admin password", "totp_code": code(en.Secret)}, nil, nil))
	pw := filepath.Join(dir, "pw")
	require.NoError(t, os.WriteFile(pw, []byte("acme admin password\n"), 0o600))
	out = org("login", "--user", "boss@acme", "--password-file", pw, "--totp", code(en.Secret))
	require.Contains(t, out, "logged in as boss@acme (org_admin)")
	stepUp := func(method, path string) {
		t.Helper()
		out := org("org", "step-up", "acme", method, path, "--totp", code(en.Secret))
		require.Contains(t, out, path)
	}

	out = org("org", "overview", "acme")
	require.Contains(t, out, "boss@acme")
	out = org("org", "me", "acme")
	require.Contains(t, out, "org_admin")
	out = org("org", "endpoints", "acme")
	require.Contains(t, out, "acme-exit")
	require.Contains(t, out, "down", "the backing node never sent a heartbeat")
	require.NotContains(t, out, nodeID)
	var ep struct{ ID, Health string }
	orgJSON(&ep, "org", "endpoint", "show", "acme", "acme-exit")
	require.NotEmpty(t, ep.ID)

	// Resources and policies.
	_, errOut, rc := run("org.json", false, "org", "resource", "create", "acme", "db", "--address", "10.1.2.3", "--port", "5432", "--endpoint", "acme-exit")
	require.NotEqual(t, 0, rc)
	require.Contains(t, errOut, "rapctl: step_up_required:")
	stepUp("POST", "/v1/orgs/acme/resources")
	var res struct{ ID, Address string }
	orgJSON(&res, "org", "resource", "create", "acme", "db", "--address", "10.1.2.3", "--port", "5432", "--endpoint", "acme-exit")
	require.Equal(t, "10.1.2.3", res.Address)
	require.Contains(t, org("org", "resources", "acme"), res.ID)
	require.Contains(t, org("org", "resource", "show", "acme", res.ID), "10.1.2.3")

	stepUp("POST", "/v1/orgs/acme/users")
	var created struct {
		User        struct{ ID, Name string }
		SetupSecret string `json:"setup_secret"`
	}
	orgJSON(&created, "org", "user", "create", "acme", "dev")
	require.Equal(t, "dev@acme", created.User.Name)
	require.NotEmpty(t, created.SetupSecret)
	require.Contains(t, org("org", "users", "acme"), "dev@acme")
	require.Contains(t, org("org", "user", "show", "acme", created.User.ID), "org_member")

	stepUp("POST", "/v1/orgs/acme/policies")
	var pol struct{ ID, Window string }
	orgJSON(&pol, "org", "policy", "create", "acme", "dev-db", "--subjects", "user:dev@acme", "--resources", res.ID, "--endpoints", ep.ID, "--window", "07:00-19:00")
	require.Equal(t, "07:00-19:00", pol.Window)
	require.Contains(t, org("org", "policies", "acme"), "dev-db")
	require.Contains(t, org("org", "policy", "show", "acme", pol.ID), "user:dev@acme")

	stepUp("POST", "/v1/orgs/acme/users/"+created.User.ID+"/disable")
	require.Contains(t, org("org", "user", "disable", "acme", created.User.ID), "true")
	stepUp("POST", "/v1/orgs/acme/users/"+created.User.ID+"/enable")
	require.Contains(t, org("org", "user", "enable", "acme", created.User.ID), "false")

	// Sessions: a second login (another config file) is listed and revoked.
	out2, errOut2, rc2 := run("org2.json", false, "login", "--user", "boss@acme", "--password-file", pw, "--totp", code(en.Secret))
	require.Equal(t, 0, rc2, out2+errOut2)
	var sessions struct {
		Items []struct {
			ID      string `json:"id"`
			Current bool   `json:"current"`
		} `json:"items"`
	}
	orgJSON(&sessions, "org", "sessions", "acme")
	require.Len(t, sessions.Items, 3, "setup, login and the second login")
	other := "" // newest first: the second login's
	for _, s := range sessions.Items {
		if !s.Current && other == "" {
			other = s.ID
		}
	}
	stepUp("POST", "/v1/orgs/acme/sessions/"+other+"/revoke")
	org("org", "session", "revoke", "acme", other)
	_, errOut2, rc2 = run("org2.json", false, "org", "me", "acme")
	require.NotEqual(t, 0, rc2)
	require.Contains(t, errOut2, "rapctl: no_session:")

	// Account security of the organization account itself.
	var codes struct {
		Codes []string `json:"recovery_codes"`
	}
	orgJSON(&codes, "org", "recovery-codes", "acme", "--totp", code(en.Secret))
	require.NotEmpty(t, codes.Codes)
	require.Contains(t, org("org", "devices", "acme"), "ID")
	_, errOut, rc3 := run("org.json", false, "org", "device", "revoke", "acme", "0123456789abcdef")
	require.NotEqual(t, 0, rc3)
	require.Contains(t, errOut, "rapctl: not_found:")

	// Access sessions: a policy naming the admin grants it access; listed, revoked.
	stepUp("POST", "/v1/orgs/acme/policies")
	var bossPol struct{ ID string }
	orgJSON(&bossPol, "org", "policy", "create", "acme", "boss-db", "--subjects", "user:boss@acme", "--resources", res.ID, "--endpoints", ep.ID)
	var acc struct{ ID, Status, ResourceName string }
	orgJSON(&acc, "org", "access", "request", "acme", "db", "--duration", "1h")
	require.Equal(t, "active", acc.Status)
	require.Contains(t, org("org", "access", "list", "acme"), acc.ID)
	stepUp("POST", "/v1/orgs/acme/access-sessions/"+acc.ID+"/revoke")
	orgJSON(&acc, "org", "access", "revoke", "acme", acc.ID)
	require.Equal(t, "revoked", acc.Status)

	// Deletions, then the audit shows the organization's own actions.
	for _, id := range []string{pol.ID, bossPol.ID} {
		stepUp("DELETE", "/v1/orgs/acme/policies/"+id)
		org("org", "policy", "delete", "acme", id)
	}
	stepUp("DELETE", "/v1/orgs/acme/resources/"+res.ID)
	org("org", "resource", "delete", "acme", res.ID)
	out = org("org", "audit", "acme")
	for _, a := range []string{"org.endpoint.publish", "org.user.invite", "org.resource.create", "org.policy.create", "org.user.disable",
		"org.session.revoke", "org.policy.delete", "org.resource.delete", "org.access.grant", "org.access.revoke"} {
		require.Contains(t, out, a)
	}
	var verdict struct {
		Intact bool `json:"intact"`
	}
	orgJSON(&verdict, "org", "audit", "verify", "acme")
	require.True(t, verdict.Intact)

	// Refusals: the organization session cannot reach platform commands; the
	// owner token cannot reach organization commands.
	_, errOut, rc = run("org.json", false, "cluster", "list")
	require.NotEqual(t, 0, rc)
	require.Contains(t, errOut, "rapctl: no_session:")
	_, errOut, rc = run("owner.json", true, "org", "endpoints", "acme")
	require.NotEqual(t, 0, rc)
	require.Contains(t, errOut, "rapctl: unauthenticated:")

	platform("org", "endpoint", "withdraw", "acme", ep.ID)
	require.NotContains(t, platform("org", "endpoint", "list", "acme"), "acme-exit")
	org("org", "logout", "acme")
	_, errOut, rc = run("org.json", false, "org", "me", "acme")
	require.NotEqual(t, 0, rc)
	require.Contains(t, errOut, "rapctl: no_session:")
}
