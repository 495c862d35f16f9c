package daemon_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/apiclient"
	"github.com/rap-fabric/core/daemon"
	"github.com/rap-fabric/core/httpapi"
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

// probe is a load balancer: it GETs path on an authority's API listener
// (TLS without verification, as a health checker does) and decodes the
// health document (from details.health when the answer is an error).
func probe(t *testing.T, d *daemon.Daemon, path string) (int, httpapi.Health) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13}}} //nolint:gosec // a health probe
	defer c.CloseIdleConnections()
	resp, err := c.Get("https://" + d.APIAddr() + path)
	require.NoError(t, err)
	defer resp.Body.Close()
	var body struct {
		httpapi.Health
		Error *struct {
			Code    string `json:"code"`
			Details struct {
				Health httpapi.Health `json:"health"`
			} `json:"details"`
		} `json:"error"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body), path)
	if body.Error != nil {
		require.Equal(t, "unavailable", body.Error.Code, path)
		return resp.StatusCode, body.Error.Details.Health
	}
	return resp.StatusCode, body.Health
}

// TestHealthLeaderFollowerNoQuorum: /v1/health is 200 on the leader, 429 on a
// healthy follower (200 with ?standbyok), 503 on an authority cut off from
// its quorum; /livez stays 200 and /readyz 200 while PostgreSQL answers.
func TestHealthLeaderFollowerNoQuorum(t *testing.T) {
	g := authtest.New(t, 3)
	l := g.Leader(10 * time.Second)
	f := g.Followers(l)[0]
	g.Eventually(10*time.Second, "followers hear from the leader", func() bool {
		code, _ := probe(t, f, "/v1/health")
		return code == http.StatusTooManyRequests
	})

	code, h := probe(t, l, "/v1/health")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "ok", h.Status)
	require.Equal(t, "leader", h.Role)
	require.False(t, h.Standby)
	require.True(t, h.Quorum)
	require.True(t, h.Database.Reachable)
	require.Equal(t, h.AgreedEpoch, h.FenceEpochHeld)
	require.Equal(t, l.Node(), h.NodeID)

	code, h = probe(t, f, "/v1/health")
	require.Equal(t, http.StatusTooManyRequests, code)
	require.Equal(t, "ok", h.Status)
	require.True(t, h.Standby)
	require.Equal(t, "follower", h.Role)
	require.Equal(t, l.Node(), h.LeaderID)
	require.Equal(t, l.APIAddr(), h.LeaderAPIAddr)
	for _, q := range []string{"?standbyok", "?standbyok=true", "?standbyok=1"} {
		code, _ = probe(t, f, "/v1/health"+q)
		require.Equal(t, http.StatusOK, code, q)
	}
	code, _ = probe(t, f, "/v1/health?standbyok=false")
	require.Equal(t, http.StatusTooManyRequests, code)
	for _, d := range []*daemon.Daemon{l, f} {
		code, _ = probe(t, d, "/livez")
		require.Equal(t, http.StatusOK, code)
		code, h = probe(t, d, "/readyz")
		require.Equal(t, http.StatusOK, code)
		require.True(t, h.Database.Reachable)
	}

	// Cut the leader off: it loses its quorum and says so with 503.
	g.Isolate(l)
	g.Eventually(10*time.Second, "the isolated authority reports no quorum", func() bool {
		code, h := probe(t, l, "/v1/health?standbyok")
		return code == http.StatusServiceUnavailable && (h.Reason == "no_quorum" || h.Reason == "no_leader") && h.Status == "unavailable"
	})
	code, _ = probe(t, l, "/livez")
	require.Equal(t, http.StatusOK, code, "liveness does not depend on the quorum")
	code, _ = probe(t, l, "/readyz")
	require.Equal(t, http.StatusOK, code, "reads are still served without a quorum")
	// The majority elects a leader that answers 200.
	nl := g.LeaderAmong(10*time.Second, g.Followers(l)...)
	g.Eventually(10*time.Second, "the new leader is healthy", func() bool {
		code, _ := probe(t, nl, "/v1/health")
		return code == http.StatusOK
	})
	g.Heal()
	g.Eventually(15*time.Second, "the old leader is a healthy standby again", func() bool {
		code, _ := probe(t, l, "/v1/health")
		return code == http.StatusTooManyRequests
	})
}

// TestHealthPostgresDown: without PostgreSQL the leader answers 503 on
// /v1/health and /readyz (reason postgres) and 200 on /livez; it recovers
// without a restart.
func TestHealthPostgresDown(t *testing.T) {
	var proxy *cutProxy
	g := authtest.NewWithDB(t, 1, func(_ int, dbURL string) string {
		u, err := url.Parse(dbURL)
		require.NoError(t, err)
		proxy = newCutProxy(t, u.Host)
		u.Host = proxy.ln.Addr().String()
		return u.String()
	})
	l := g.Leader(10 * time.Second)
	code, _ := probe(t, l, "/v1/health")
	require.Equal(t, http.StatusOK, code)

	proxy.sever(true)
	for _, path := range []string{"/v1/health", "/v1/health?standbyok", "/readyz"} {
		var h httpapi.Health
		g.Eventually(10*time.Second, path+" reports PostgreSQL down", func() bool {
			code, h = probe(t, l, path)
			return code == http.StatusServiceUnavailable
		})
		require.False(t, h.Database.Reachable, path)
		require.Equal(t, "postgres", h.Reason, path)
		require.Equal(t, "unavailable", h.Status, path)
	}
	code, _ = probe(t, l, "/livez")
	require.Equal(t, http.StatusOK, code)

	proxy.sever(false)
	g.Eventually(20*time.Second, "healthy again without a restart", func() bool {
		code, _ := probe(t, l, "/v1/health")
		return code == http.StatusOK
	})
}
