package daemon_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/internal/authtest"
)

// TestBadInputGetsTypedErrors: oversized and deeply nested bodies, unknown
// fields, state change via GET, unknown routes — each a clear typed error, and
// nothing written.
func TestBadInputGetsTypedErrors(t *testing.T) {
	g := authtest.New(t, 3)
	l := g.Leader(10 * time.Second)
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // test
	call := func(method, path string, body io.Reader) (int, string) {
		req, err := http.NewRequest(method, "https://"+l.APIAddr()+path, body)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+g.Token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var eb struct {
			Error struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		data, _ := io.ReadAll(resp.Body)
		_ = json.Unmarshal(data, &eb)
		return resp.StatusCode, eb.Error.Code
	}
	big := bytes.Repeat([]byte("a"), 10<<20)
	status, code := call(http.MethodPost, "/v1/clusters", bytes.NewReader(append(append([]byte(`{"name":"`), big...), '"', '}')))
	require.Equal(t, http.StatusRequestEntityTooLarge, status)
	require.Equal(t, "too_large", code)

	nested := strings.Repeat("[", 100) + strings.Repeat("]", 100)
	status, code = call(http.MethodPost, "/v1/clusters", strings.NewReader(`{"name":"x","region":`+nested+`}`))
	require.Equal(t, http.StatusBadRequest, status)
	require.Equal(t, "invalid_argument", code)

	status, code = call(http.MethodPost, "/v1/clusters", strings.NewReader(`{"name":"x","evil":true}`))
	require.Equal(t, http.StatusBadRequest, status)
	require.Equal(t, "invalid_argument", code)

	status, code = call(http.MethodPost, "/v1/clusters", strings.NewReader(`{"name":`))
	require.Equal(t, http.StatusBadRequest, status)

	status, code = call(http.MethodGet, "/v1/join-requests/00000000-0000-0000-0000-000000000000/approve", nil)
	require.Equal(t, http.StatusMethodNotAllowed, status)
	require.Equal(t, "method_not_allowed", code)

	status, code = call(http.MethodGet, "/v1/no-such-thing", nil)
	require.Equal(t, http.StatusNotFound, status)
	require.Equal(t, "route_not_found", code)

	status, code = call(http.MethodGet, "/v1/clusters?limit=100000", nil)
	require.Equal(t, http.StatusBadRequest, status)

	var n int
	require.NoError(t, l.DB.Pool.QueryRow(context.Background(), `SELECT count(*) FROM clusters`).Scan(&n))
	require.Zero(t, n, "no bad request wrote anything")
}

// TestAutoApproveOnlyWithBootstrapTokens: a platform-managed bootstrap token
// approves at once; an ordinary token (the default) leaves the request pending.
func TestAutoApproveOnlyWithBootstrapTokens(t *testing.T) {
	g := authtest.New(t, 3)
	ctx := context.Background()
	g.Leader(10 * time.Second)
	owner := g.Client(g.DS...)
	_, pin := mkCluster(t, owner, "east")
	plain := mkToken(t, owner, "east", 1)
	var st joinStatus
	require.NoError(t, enrollClient(t, g, pin).Do(ctx, http.MethodPost, "/v1/agent/join", newFakeAgent("a", "a").joinBody(plain.Token), &st, nil))
	require.Equal(t, "pending", st.Status)

	var boot tokenResp
	require.NoError(t, owner.Do(ctx, http.MethodPost, "/v1/join-tokens", map[string]any{"cluster": "east", "auto_approve": true, "allowed_roles": []string{"relay-node"}, "max_uses": 1}, &boot, nil))
	require.NoError(t, enrollClient(t, g, pin).Do(ctx, http.MethodPost, "/v1/agent/join", newFakeAgent("b", "b").joinBody(boot.Token), &st, nil))
	require.Equal(t, "approved", st.Status)
	require.NotEmpty(t, st.Certificate)
	var aud struct{ Items []map[string]any }
	require.NoError(t, owner.Do(ctx, http.MethodGet, "/v1/audit?action=join_request.approve", nil, &aud, nil))
	require.Len(t, aud.Items, 1)
	require.Equal(t, "bootstrap-token:"+boot.ID, aud.Items[0]["actor"])
}

// TestRemoveAuthorityMember: removing a member is fenced, audited and leaves a
// working two-member group.
func TestRemoveAuthorityMember(t *testing.T) {
	g := authtest.New(t, 3)
	ctx := context.Background()
	l := g.Leader(10 * time.Second)
	victim := g.Followers(l)[0]
	owner := g.Client(l)
	require.NoError(t, owner.Do(ctx, http.MethodDelete, "/v1/authority/members/"+victim.Node(), nil, nil, nil))
	require.NoError(t, victim.Close())
	g.DS[g.Index(victim)] = nil
	var st struct {
		Members []map[string]any `json:"members"`
	}
	require.NoError(t, owner.Do(ctx, http.MethodGet, "/v1/authority/status", nil, &st, nil))
	require.Len(t, st.Members, 2)
	_, err := authtest.CreateCluster(ctx, owner, "after-remove")
	require.NoError(t, err)
	var aud struct{ Items []map[string]any }
	require.NoError(t, owner.Do(ctx, http.MethodGet, "/v1/audit?action=authority.member.remove", nil, &aud, nil))
	require.Len(t, aud.Items, 1)
}

// TestIdempotencyKeyNeverAppliesTwice: a retried request with the same
// Idempotency-Key returns the first response and creates nothing twice, also
// when the retries run concurrently.
func TestIdempotencyKeyNeverAppliesTwice(t *testing.T) {
	g := authtest.New(t, 3)
	ctx := context.Background()
	l := g.Leader(10 * time.Second)
	owner := g.Client(g.DS...)
	hdr := map[string]string{"Idempotency-Key": "create-east-1"}
	type res struct {
		id  string
		err error
	}
	out := make(chan res, 4)
	for i := 0; i < 4; i++ {
		go func() {
			var c map[string]any
			err := owner.Do(ctx, http.MethodPost, "/v1/clusters", map[string]any{"name": "east"}, &c, hdr)
			id, _ := c["id"].(string)
			out <- res{id, err}
		}()
	}
	ids := map[string]bool{}
	for i := 0; i < 4; i++ {
		r := <-out
		require.NoError(t, r.err)
		ids[r.id] = true
	}
	require.Len(t, ids, 1, "every retry saw the same cluster")
	var n int
	require.NoError(t, l.DB.Pool.QueryRow(ctx, `SELECT count(*) FROM clusters`).Scan(&n))
	require.Equal(t, 1, n)
	require.NoError(t, l.DB.Pool.QueryRow(ctx, `SELECT count(*) FROM cluster_audit_events WHERE action = 'cluster.create' AND outcome = 'ok'`).Scan(&n))
	require.Equal(t, 1, n, "applied and audited once")
	// Another key creates nothing new either: the slug is taken.
	err := owner.Do(ctx, http.MethodPost, "/v1/clusters", map[string]any{"name": "east"}, nil, map[string]string{"Idempotency-Key": "other"})
	require.Equal(t, "conflict", apiCode(err))
}
