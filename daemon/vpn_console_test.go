package daemon_test

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/apiclient"
	"github.com/rap-fabric/core/authn"
	"github.com/rap-fabric/core/authority"
	"github.com/rap-fabric/core/daemon"
	"github.com/rap-fabric/core/internal/authtest"
)

type stepClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *stepClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

// code moves the admin clock one TOTP step on and returns that step's code.
func (c *stepClock) code(t *testing.T, secret string) string {
	c.mu.Lock()
	c.t = c.t.Add(30 * time.Second)
	now := c.t
	c.mu.Unlock()
	s, err := authn.GenerateTOTPCode(secret, now, 30)
	require.NoError(t, err)
	return s
}

// TestVPNConsoleAndFenceStepUp: the console's VPN page shows each
// connection's lease holder, epoch and health, and fencing a lease with a
// session needs a platform owner's step-up.
func TestVPNConsoleAndFenceStepUp(t *testing.T) {
	clock := &stepClock{t: time.Now()}
	g := authtest.NewWithConfig(t, 1, func(_ int, c *daemon.Config) {
		c.Admin = authority.AdminOptions{Argon2: authn.FastInsecureArgon2Params(), Clock: clock.Now}
	})
	d := g.Leader(15 * time.Second)
	ctx := context.Background()
	owner := g.Client(g.DS...)
	_, pin := mkClusterSnap(t, owner, "tun")
	var tok struct {
		Token string `json:"token"`
	}
	require.NoError(t, owner.Do(ctx, http.MethodPost, "/v1/join-tokens", map[string]any{"cluster": "tun", "max_uses": 2, "auto_approve": true, "allowed_roles": []string{"relay-node"}, "description": "vpn console"}, &tok, nil))
	a := enrollSnapAgent(t, g, pin, tok.Token, "exit1", []string{"can_run_vpn_exit"})
	require.NoError(t, owner.Do(ctx, http.MethodPost, "/v1/clusters/tun/nodes/"+a.nodeID+"/roles", map[string]any{"role": "vpn-exit"}, nil, nil))
	var conn struct {
		ID string `json:"id"`
	}
	require.NoError(t, owner.Do(ctx, http.MethodPost, "/v1/clusters/tun/vpn-connections", map[string]any{"name": "office", "address_family": "ipv4",
		"desired_state": "enabled", "remote_prefixes": []string{"192.168.10.0/24"}, "lease_ttl_seconds": 60}, &conn, nil))
	require.NoError(t, owner.Do(ctx, http.MethodPut, "/v1/clusters/tun/vpn-connections/office/allowed-nodes", map[string]any{"node_ids": []string{a.nodeID}}, nil, nil))
	ac := vpnClient(t, g, a)
	var grant leaseGrant
	require.NoError(t, ac.Do(ctx, http.MethodPost, "/v1/agent/vpn/connections/"+conn.ID+"/lease", nil, &grant, nil))
	// The data path's counters ride on the status report (issue 20).
	tun := map[string]any{"role": "exit", "running": true, "interface": "rapt-test", "exit_node_id": a.nodeID, "tx_packets": 7, "tx_bytes": 700,
		"rx_packets": 9, "rx_bytes": 900, "drops": map[string]any{"destination_not_allowed": 3}}
	require.NoError(t, ac.Do(ctx, http.MethodPost, "/v1/agent/vpn/connections/"+conn.ID+"/status", map[string]any{"status": "assigned", "lease_generation": grant.Generation,
		"tunnel": tun}, nil, nil))
	for _, bad := range []map[string]any{{"role": "relay"}, {"role": "exit", "interface": "an-interface-name-too-long"}} {
		err := ac.Do(ctx, http.MethodPost, "/v1/agent/vpn/connections/"+conn.ID+"/status", map[string]any{"status": "assigned", "tunnel": bad}, nil, nil)
		require.Equal(t, "invalid_argument", apiCode(err), "%v: %v", bad, err)
	}
	// The assignment names the node's data-path role and the current exit.
	var asg struct {
		Items []struct {
			Role       string   `json:"role"`
			ExitNodeID string   `json:"exit_node_id"`
			Connectors []string `json:"connector_node_ids"`
		} `json:"items"`
	}
	require.NoError(t, ac.Do(ctx, http.MethodGet, "/v1/agent/vpn/assignments", nil, &asg, nil))
	require.Len(t, asg.Items, 1)
	require.Equal(t, "exit", asg.Items[0].Role)
	require.Equal(t, a.nodeID, asg.Items[0].ExitNodeID)
	require.Empty(t, asg.Items[0].Connectors, "no connector nodes")

	// A platform owner with MFA; sessions from here on.
	ad := d.Auth.Admin()
	_, _, err := ad.BootstrapOwner(ctx, "owner")
	require.NoError(t, err)
	const password = "vpn console test password"
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

	// The console page (session cookie).
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, // test only: the page, not the TLS, is under test
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, err := http.NewRequest(http.MethodGet, "https://"+d.APIAddr()+"/console/vpn?cluster=tun", nil)
	require.NoError(t, err)
	req.AddCookie(&http.Cookie{Name: authn.SessionCookieName, Value: login.SessionToken})
	res, err := hc.Do(req)
	require.NoError(t, err)
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode, string(body))
	page := string(body)
	require.Contains(t, page, "office")
	require.Contains(t, page, "health-healthy")
	require.Contains(t, page, "/console/nodes/"+a.nodeID, "the lease holder links to its node")
	require.Contains(t, page, "<td>1</td><td>"+itoa(uint64(grant.Epoch))+"</td>", "generation and epoch shown")
	require.Contains(t, page, "Fence lease")
	require.Contains(t, page, "/console/vpn/", "the connection links to its page")

	// The connection page: each node's data path.
	req, err = http.NewRequest(http.MethodGet, "https://"+d.APIAddr()+"/console/vpn/tun/"+conn.ID, nil)
	require.NoError(t, err)
	req.AddCookie(&http.Cookie{Name: authn.SessionCookieName, Value: login.SessionToken})
	res, err = hc.Do(req)
	require.NoError(t, err)
	body, _ = io.ReadAll(res.Body)
	res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode, string(body))
	page = string(body)
	require.Contains(t, page, "<code>rapt-test</code>")
	require.Contains(t, page, "<td>7 / 700</td><td>9 / 900</td>", "packets and bytes each way")
	require.Contains(t, page, "destination_not_allowed=3")

	// Fencing with a session needs step-up.
	fence := "/v1/clusters/tun/vpn-connections/office/lease/fence"
	err = sess.Do(ctx, http.MethodPost, fence, map[string]any{"reason": "test"}, nil, nil)
	require.Equal(t, "step_up_required", apiCode(err), "err=%v", err)
	require.NoError(t, sess.Do(ctx, http.MethodPost, "/v1/auth/step-up", map[string]any{"method": "POST", "path": fence, "totp_code": clock.code(t, secret)}, nil, nil))
	var fr struct {
		Fenced bool `json:"fenced"`
	}
	require.NoError(t, sess.Do(ctx, http.MethodPost, fence, map[string]any{"reason": "test"}, &fr, nil))
	require.True(t, fr.Fenced)
	err = sess.Do(ctx, http.MethodPost, fence, map[string]any{"reason": "test"}, nil, nil)
	require.Equal(t, "step_up_required", apiCode(err), "a grant is single-use")
	require.Equal(t, "lease_lost", apiCode(ac.Do(ctx, http.MethodPost, "/v1/agent/vpn/connections/"+conn.ID+"/lease/renew", map[string]any{"generation": grant.Generation}, nil, nil)))
}
