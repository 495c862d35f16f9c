package httpapi_test

import (
	"context"
	"net/http"
	"net/http/cookiejar"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/authority"
)

// Fencing a VPN lease is a recovery action: platform owners only, with a
// fresh step-up bound to the request; platform admins are refused even with
// one. Every refusal leaves the lease alone.
func TestVPNLeaseFenceNeedsOwnerAndStepUp(t *testing.T) {
	e := newAdminEnv(t)
	ctx := context.Background()
	sys := authority.Actor{ID: "test", Kind: "system"}
	_, err := e.d.Auth.CreateCluster(ctx, sys, authority.CreateClusterRequest{Name: "Tunnels", Slug: "tun"}, "")
	require.NoError(t, err)
	_, err = e.d.VPN.CreateConnection(ctx, sys, "tun", authority.VPNConnectionRequest{Name: "office", AddressFamily: "ipv4", DesiredState: "enabled"}, "")
	require.NoError(t, err)
	e.login()
	fence := "/v1/clusters/tun/vpn-connections/office/lease/fence"

	// An owner without step-up: refused.
	r := e.do(http.MethodPost, fence, map[string]any{"reason": "drill"})
	require.Equal(t, "step_up_required", r.code(), "%v", r.Body)

	// A platform admin with a step-up grant: refused (owners only).
	path := "/v1/admin/users"
	require.Equal(t, http.StatusOK, e.stepUp(http.MethodPost, path).Status)
	r = e.do(http.MethodPost, path, map[string]any{"name": "alice", "role": "platform_admin"})
	require.Equal(t, http.StatusCreated, r.Status, "%v", r.Body)
	setup := r.Body["setup_secret"].(string)
	other := *e
	jar, _ := cookiejar.New(nil)
	other.hc = &http.Client{Jar: jar, Timeout: 10 * time.Second, Transport: e.hc.Transport}
	other.csrf = ""
	r = other.do(http.MethodPost, "/v1/auth/setup/begin", map[string]any{"username": "alice", "setup_secret": setup})
	require.Equal(t, http.StatusOK, r.Status, "%v", r.Body)
	other.secret = r.Body["totp_secret"].(string)
	r = other.do(http.MethodPost, "/v1/auth/setup/complete", map[string]any{"username": "alice", "setup_secret": setup, "password": "alice long password", "totp_code": other.code()})
	require.Equal(t, http.StatusOK, r.Status, "%v", r.Body)
	other.login2("alice", "alice long password")
	require.Equal(t, http.StatusOK, other.stepUp(http.MethodPost, fence).Status)
	r = other.do(http.MethodPost, fence, map[string]any{"reason": "drill"})
	require.Equal(t, http.StatusForbidden, r.Status, "%v", r.Body)
	require.Equal(t, "forbidden", r.code())
	// She can read the connection.
	r = other.do(http.MethodGet, "/v1/clusters/tun/vpn-connections/office", nil)
	require.Equal(t, http.StatusOK, r.Status, "%v", r.Body)
	require.Equal(t, "no_owner", r.Body["health"])

	// The owner with a grant: done (idempotent: no lease was active).
	require.Equal(t, http.StatusOK, e.stepUp(http.MethodPost, fence).Status)
	r = e.do(http.MethodPost, fence, map[string]any{"reason": "drill"})
	require.Equal(t, http.StatusOK, r.Status, "%v", r.Body)
	require.Equal(t, false, r.Body["fenced"])
	// The grant was single-use.
	r = e.do(http.MethodPost, fence, map[string]any{"reason": "drill"})
	require.Equal(t, "step_up_required", r.code())
	require.NotEmpty(t, e.audit("vpn_lease.fence"))
}
