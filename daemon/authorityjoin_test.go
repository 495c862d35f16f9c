package daemon_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/internal/authtest"
)

// TestAuthorityJoinTokenOnlyJoins: an authority join token is refused on
// every route of the router (listed from it) except the two join routes —
// 403 forbidden before anything runs, audited — and its secret is stored as
// a hash only.
func TestAuthorityJoinTokenOnlyJoins(t *testing.T) {
	g := authtest.New(t, 1)
	l := g.Leader(10 * time.Second)
	ctx := context.Background()
	var tok struct {
		ID    string `json:"id"`
		Token string `json:"token"`
	}
	require.NoError(t, g.Client(l).Do(ctx, http.MethodPost, "/v1/authority/join-tokens", map[string]any{"ttl_seconds": 600}, &tok, nil))
	require.True(t, strings.HasPrefix(tok.Token, "rapmj."))
	h := l.API.Handler()
	walked := 0
	for _, rt := range apiRoutes(t, l) {
		if rt.Method == http.MethodPost && (rt.Path == "/v1/authority/members/certificate" || rt.Path == "/v1/authority/members") {
			continue
		}
		send := func(bearer string) *httptest.ResponseRecorder {
			req := httptest.NewRequest(rt.Method, fill(rt.Path, "x"), strings.NewReader("{}"))
			req.Header.Set("Content-Type", "application/json")
			if bearer != "" {
				req.Header.Set("Authorization", "Bearer "+bearer)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			return rec
		}
		rec := send(tok.Token)
		if rec.Code < 400 {
			// Only a public route (which answers anyone) may succeed.
			if anon := send(""); anon.Code >= 400 {
				t.Errorf("%s %s answered %d with an authority join token: %s", rt.Method, rt.Path, rec.Code, rec.Body.String())
			}
			continue
		}
		var eb struct {
			Error struct {
				Code string `json:"code"`
			} `json:"error"`
		}
		_ = json.Unmarshal(rec.Body.Bytes(), &eb)
		// Owner routes refuse it as such; public and agent routes never look
		// at a bearer credential.
		// A route that refuses everyone alike (GET /metrics without a scrape
		// token configured) is not refusing the join token.
		if eb.Error.Code == "forbidden" {
			if anon := send(""); anon.Code == rec.Code && anon.Body.String() == rec.Body.String() {
				continue
			}
			walked++
		}
	}
	require.Greater(t, walked, 50, "owner routes refused the token")
	var n int
	require.NoError(t, l.DB.Pool.QueryRow(ctx, `SELECT count(*) FROM cluster_audit_events WHERE action = 'auth.refuse' AND details->>'reason' = 'authority_join_token_elsewhere'`).Scan(&n))
	require.Equal(t, walked, n, "every refusal audited")
	var stored []byte
	require.NoError(t, l.DB.Pool.QueryRow(ctx, `SELECT secret_hash FROM authority_join_tokens WHERE id = $1`, tok.ID).Scan(&stored))
	require.Len(t, stored, 32)
	require.NotContains(t, string(stored), tok.Token[strings.LastIndex(tok.Token, ".")+1:])
}
