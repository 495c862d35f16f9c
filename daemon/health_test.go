package daemon_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/apiclient"
	"github.com/rap-fabric/core/internal/authtest"
)

// TestHealthReportsThePostgresSide: GET /v1/health answers ok with the
// PostgreSQL server it reaches; with PostgreSQL unreachable it answers 503
// unavailable within its probe deadline, the health document in
// details.health; once PostgreSQL is back it is ok again without a restart.
func TestHealthReportsThePostgresSide(t *testing.T) {
	var proxy *freezeProxy
	g := authtest.NewWithDB(t, 1, func(i int, dbURL string) string {
		u, err := url.Parse(dbURL)
		require.NoError(t, err)
		proxy = newFreezeProxy(t, u.Host)
		u.Host = proxy.ln.Addr().String()
		return u.String()
	})
	ctx := context.Background()
	l := g.Leader(10 * time.Second)
	c, err := apiclient.New(apiclient.Options{Servers: []string{l.APIAddr()}, CAPin: g.Pin, MaxRedirects: -1, Timeout: 10 * time.Second})
	require.NoError(t, err)
	t.Cleanup(c.Close)

	type health struct {
		Status           string   `json:"status"`
		Problems         []string `json:"problems"`
		NodeID           string   `json:"node_id"`
		DatabaseServer   string   `json:"database_server"`
		DatabaseWritable bool     `json:"database_writable"`
		Database         struct {
			Reachable bool   `json:"reachable"`
			Error     string `json:"error"`
			Primary   struct {
				Server struct {
					Addr string `json:"addr"`
				} `json:"server"`
			} `json:"primary"`
		} `json:"database"`
	}
	var h health
	g.Eventually(10*time.Second, "healthy", func() bool {
		h = health{}
		return c.Do(ctx, http.MethodGet, "/v1/health", nil, &h, nil) == nil && h.Status == "ok"
	})
	require.Empty(t, h.Problems)
	require.True(t, h.DatabaseWritable)
	require.NotEmpty(t, h.DatabaseServer)
	require.Equal(t, h.DatabaseServer, h.Database.Primary.Server.Addr)

	proxy.freeze()
	start := time.Now()
	err = c.Do(ctx, http.MethodGet, "/v1/health", nil, nil, nil)
	took := time.Since(start)
	proxy.thaw()
	var ae *apiclient.Error
	require.True(t, errors.As(err, &ae), "a typed error, got %v", err)
	require.Equal(t, "unavailable", ae.Code)
	require.Equal(t, http.StatusServiceUnavailable, ae.Status)
	require.Less(t, took, 4*time.Second, "answered within the probe deadline")
	doc, _ := ae.Details["health"].(map[string]any)
	require.Equal(t, "unavailable", doc["status"])
	require.Contains(t, doc["problems"], "PostgreSQL unreachable (unavailable)")

	g.Eventually(15*time.Second, "healthy again", func() bool {
		h = health{}
		return c.Do(ctx, http.MethodGet, "/v1/health", nil, &h, nil) == nil && h.Status == "ok"
	})
}
