package httpapi_test

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/authority"
	"github.com/rap-fabric/core/fsm"
)

// Cluster CA rotation through the owner API: rotate and retire need a
// step-up grant, are refused to a platform admin (audited), and the owner's
// actions are audited; GET shows both roots during the overlap and one after
// retirement; a second rotation during the overlap and a retirement without
// one are refused with typed codes.
func TestClusterCARotationRoutes(t *testing.T) {
	e := newAdminEnv(t)
	ctx := context.Background()
	sys := authority.Actor{ID: "test", Kind: "system"}
	c, err := e.d.Auth.CreateCluster(ctx, sys, authority.CreateClusterRequest{Name: "Rot", Slug: "rot"}, "")
	require.NoError(t, err)
	e.login()

	rotate, retire := "/v1/clusters/rot/ca/rotate", "/v1/clusters/rot/ca/retire"
	// The console's cluster page offers both actions as step-up buttons
	// naming the action in words.
	res, err := e.hc.Get(e.base + "/console/clusters")
	require.NoError(t, err)
	page, err := io.ReadAll(res.Body)
	res.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode)
	for _, want := range []string{`id="ca-rotate-rot"`, `id="ca-retire-rot"`, "Rotate the certificate authority of cluster rot (create a new root)",
		"Retire the old certificate authority root of cluster rot", "/v1/clusters/" + c.ID + "/ca/rotate"} {
		require.Contains(t, string(page), want)
	}
	// Without a step-up grant: refused, nothing rotates.
	r := e.do(http.MethodPost, rotate, map[string]any{})
	require.Equal(t, http.StatusForbidden, r.Status, "%v", r.Body)
	require.Equal(t, "step_up_required", r.code())
	ca, _ := e.d.FSM.ClusterCA(c.ID)
	require.Empty(t, ca.History)

	// A platform admin (not owner) with a grant: refused and audited.
	path := "/v1/admin/users"
	require.Equal(t, http.StatusOK, e.stepUp(http.MethodPost, path).Status)
	r = e.do(http.MethodPost, path, map[string]any{"name": "bob", "role": "platform_admin"})
	require.Equal(t, http.StatusCreated, r.Status, "%v", r.Body)
	setup := r.Body["setup_secret"].(string)
	admin := *e
	jar, _ := cookiejar.New(nil)
	admin.hc = &http.Client{Jar: jar, Timeout: 10 * time.Second, Transport: e.hc.Transport}
	admin.csrf = ""
	r = admin.do(http.MethodPost, "/v1/auth/setup/begin", map[string]any{"username": "bob", "setup_secret": setup})
	require.Equal(t, http.StatusOK, r.Status, "%v", r.Body)
	admin.secret = r.Body["totp_secret"].(string)
	r = admin.do(http.MethodPost, "/v1/auth/setup/complete", map[string]any{"username": "bob", "setup_secret": setup, "password": "bob long password", "totp_code": admin.code()})
	require.Equal(t, http.StatusOK, r.Status, "%v", r.Body)
	admin.login2("bob", "bob long password")
	require.Equal(t, http.StatusOK, admin.stepUp(http.MethodPost, rotate).Status)
	r = admin.do(http.MethodPost, rotate, map[string]any{})
	require.Equal(t, http.StatusForbidden, r.Status, "%v", r.Body)
	require.Equal(t, "forbidden", r.code())
	denied := 0
	for _, ev := range e.audit("cluster.ca.rotate") {
		if ev.Outcome == "denied" {
			denied++
		}
	}
	require.Equal(t, 1, denied, "the refusal is audited")
	ca, _ = e.d.FSM.ClusterCA(c.ID)
	require.Empty(t, ca.History, "nothing rotated")
	// The admin may read the CA status.
	r = admin.do(http.MethodGet, "/v1/clusters/rot/ca", nil)
	require.Equal(t, http.StatusOK, r.Status, "%v", r.Body)

	// Retire with no rotation: typed refusal.
	require.Equal(t, http.StatusOK, e.stepUp(http.MethodPost, retire).Status)
	r = e.do(http.MethodPost, retire, map[string]any{})
	require.Equal(t, http.StatusConflict, r.Status, "%v", r.Body)
	require.Equal(t, "ca_no_rotation", r.code())

	// The owner rotates: two trusted roots, the old one publishing.
	oldKey := ca.Current.KeyID
	require.Equal(t, http.StatusOK, e.stepUp(http.MethodPost, rotate).Status)
	r = e.do(http.MethodPost, rotate, map[string]any{})
	require.Equal(t, http.StatusOK, r.Status, "%v", r.Body)
	require.Equal(t, true, r.Body["overlap"])
	roots := r.Body["roots"].([]any)
	require.Len(t, roots, 2)
	ca, _ = e.d.FSM.ClusterCA(c.ID)
	require.NotEqual(t, oldKey, ca.Current.KeyID)
	require.Equal(t, oldKey, ca.Publishing().KeyID)
	ok := 0
	for _, ev := range e.audit("cluster.ca.rotate") {
		if ev.Outcome == "ok" {
			ok++
		}
	}
	require.Equal(t, 1, ok, "the rotation is audited")

	// A second rotation during the overlap is refused.
	require.Equal(t, http.StatusOK, e.stepUp(http.MethodPost, rotate).Status)
	r = e.do(http.MethodPost, rotate, map[string]any{})
	require.Equal(t, http.StatusConflict, r.Status, "%v", r.Body)
	require.Equal(t, "ca_rotation_in_progress", r.code())

	// Retire (no nodes hold old-root certificates): one root left.
	require.Equal(t, http.StatusOK, e.stepUp(http.MethodPost, retire).Status)
	r = e.do(http.MethodPost, retire, map[string]any{})
	require.Equal(t, http.StatusOK, r.Status, "%v", r.Body)
	require.Equal(t, false, r.Body["overlap"])
	ca, _ = e.d.FSM.ClusterCA(c.ID)
	st, _ := e.d.FSM.CAKeyStatusOf(c.ID, oldKey)
	require.Equal(t, fsm.CAKeyRetired, st)
	ok = 0
	for _, ev := range e.audit("cluster.ca.retire") {
		if ev.Outcome == "ok" {
			ok++
		}
	}
	require.Equal(t, 1, ok, "the retirement is audited")
	// New join tokens pin the new root.
	got, err := e.d.Auth.GetCluster(ctx, "rot")
	require.NoError(t, err)
	require.Equal(t, ca.Current.KeyID, got.CAKeyID)
	require.Equal(t, ca.Current.CertDER, got.CACertDER)

	r = e.do(http.MethodGet, "/v1/clusters/rot/ca", nil)
	require.Equal(t, http.StatusOK, r.Status, "%v", r.Body)
	require.Len(t, r.Body["roots"].([]any), 2, "the retired root stays listed")
}
