package httpapi_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/cookiejar"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/authority"
	"github.com/rap-fabric/core/store"
)

// Partition actions are for the platform owner role only (spec): a platform
// admin is refused every one of them even with a step-up grant, as is any
// credential of another role at the authority itself; each refusal is
// audited and moves nothing. The owner is admitted.
func TestPartitionActionsNeedPlatformOwner(t *testing.T) {
	e := newAdminEnv(t)
	ctx := context.Background()
	sys := authority.Actor{ID: "test", Kind: "system"}
	c, err := e.d.Auth.CreateCluster(ctx, sys, authority.CreateClusterRequest{Name: "Parts", Slug: "parts"}, "")
	require.NoError(t, err)
	e.login()

	// A platform admin account with a session of its own.
	path := "/v1/admin/users"
	require.Equal(t, http.StatusOK, e.stepUp(http.MethodPost, path).Status)
	r := e.do(http.MethodPost, path, map[string]any{"name": "alice", "role": "platform_admin"})
	require.Equal(t, http.StatusCreated, r.Status, "%v", r.Body)
	setup := r.Body["setup_secret"].(string)
	admin := *e
	jar, _ := cookiejar.New(nil)
	admin.hc = &http.Client{Jar: jar, Timeout: 10 * time.Second, Transport: e.hc.Transport}
	admin.csrf = ""
	r = admin.do(http.MethodPost, "/v1/auth/setup/begin", map[string]any{"username": "alice", "setup_secret": setup})
	require.Equal(t, http.StatusOK, r.Status, "%v", r.Body)
	admin.secret = r.Body["totp_secret"].(string)
	r = admin.do(http.MethodPost, "/v1/auth/setup/complete", map[string]any{"username": "alice", "setup_secret": setup, "password": "alice long password", "totp_code": admin.code()})
	require.Equal(t, http.StatusOK, r.Status, "%v", r.Body)
	admin.login2("alice", "alice long password")

	for _, act := range []string{"split", "promote", "merge", "fence", "recover"} {
		p := "/v1/clusters/parts/partition/" + act
		require.Equal(t, http.StatusOK, admin.stepUp(http.MethodPost, p).Status, act)
		r = admin.do(http.MethodPost, p, map[string]any{"reason": "drill"})
		require.Equal(t, http.StatusForbidden, r.Status, "%s: %v", act, r.Body)
		require.Equal(t, "forbidden", r.code(), act)
		denied := 0
		for _, ev := range e.audit("partition." + act) {
			if ev.Outcome == "denied" {
				denied++
			}
		}
		require.Equal(t, 1, denied, "%s: the refusal is audited", act)
	}
	st, _ := e.d.FSM.Partition(c.ID)
	require.Equal(t, "normal", string(st.State), "nothing moved")
	// She can still read the partition state.
	r = admin.do(http.MethodGet, "/v1/clusters/parts/partition", nil)
	require.Equal(t, http.StatusOK, r.Status, "%v", r.Body)

	// At the authority: an API token or session of any other role is refused.
	for _, actor := range []authority.Actor{
		{ID: "owner-token:x", Kind: "api-token", Role: store.RolePlatformAdmin},
		{ID: "u", Kind: "user", Role: store.RolePlatformAdmin},
		{ID: "u", Kind: "user"},
	} {
		_, err := e.d.Auth.SetPartition(ctx, actor, "parts", authority.PartitionRequest{Action: authority.PartitionSplit, Reason: "drill"}, "")
		var ae *authority.Error
		require.True(t, errors.As(err, &ae), "%v", err)
		require.Equal(t, authority.CodeForbidden, ae.Code)
	}

	// The owner, with a grant: admitted.
	p := "/v1/clusters/parts/partition/split"
	require.Equal(t, http.StatusOK, e.stepUp(http.MethodPost, p).Status)
	r = e.do(http.MethodPost, p, map[string]any{"reason": "drill"})
	require.Equal(t, http.StatusOK, r.Status, "%v", r.Body)
	st, _ = e.d.FSM.Partition(c.ID)
	require.Equal(t, "degraded", string(st.State))
}
