package daemon_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/agentapi"
	"github.com/rap-fabric/core/apiclient"
	"github.com/rap-fabric/core/authn"
	"github.com/rap-fabric/core/authority"
	"github.com/rap-fabric/core/daemon"
	"github.com/rap-fabric/core/internal/authtest"
)

// scrapeResult is one scrape of a metrics listener.
type scrapeResult map[string]*dto.MetricFamily

// scrape GETs the authority's loopback metrics listener and parses it.
func scrape(t *testing.T, d *daemon.Daemon) scrapeResult {
	t.Helper()
	require.NotEmpty(t, d.MetricsAddr(), "the metrics listener runs")
	resp, err := http.Get("http://" + d.MetricsAddr() + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	return mfs
}

// value returns the value of the series of family name whose labels include
// want (a counter, gauge, or a histogram's sample count); 0 when absent.
func (s scrapeResult) value(name string, want ...string) float64 {
	mf, ok := s[name]
	if !ok {
		return 0
	}
	total := 0.0
	for _, m := range mf.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		match := true
		for i := 0; i+1 < len(want); i += 2 {
			if labels[want[i]] != want[i+1] {
				match = false
			}
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			total += m.GetCounter().GetValue()
		case m.Gauge != nil:
			total += m.GetGauge().GetValue()
		case m.Histogram != nil:
			total += float64(m.GetHistogram().GetSampleCount())
		case m.Untyped != nil:
			total += m.GetUntyped().GetValue()
		}
	}
	return total
}

func metricsConfig(_ int, c *daemon.Config) {
	c.Admin = authority.AdminOptions{Argon2: authn.FastInsecureArgon2Params()}
	c.MetricsListen = "127.0.0.1:0"
	c.MetricsToken = "scrape-secret-for-tests"
	c.DebugListen = "127.0.0.1:0"
}

// apiMetrics GETs /metrics on the authority's API listener (TLS) with an
// optional bearer token and returns the status and body.
func apiMetrics(t *testing.T, d *daemon.Daemon, token string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13}}} //nolint:gosec // a scraper
	defer c.CloseIdleConnections()
	req, err := http.NewRequest(http.MethodGet, "https://"+d.APIAddr()+"/metrics", nil)
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 64<<10)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp.StatusCode, b.String()
}

// TestMetricsNotPublicOnTheAPIListener: /metrics on the API listener refuses
// a request without credentials or with a wrong token (401); the scrape
// token opens it; without a configured token nothing does (403).
func TestMetricsNotPublicOnTheAPIListener(t *testing.T) {
	g := authtest.NewWithConfig(t, 1, metricsConfig)
	l := g.Leader(10 * time.Second)
	code, body := apiMetrics(t, l, "")
	require.Equal(t, http.StatusUnauthorized, code, body)
	require.NotContains(t, body, "rap_raft_term")
	code, body = apiMetrics(t, l, "wrong-token")
	require.Equal(t, http.StatusUnauthorized, code, body)
	require.NotContains(t, body, "rap_raft_term")
	code, _ = apiMetrics(t, l, g.Token)
	require.Equal(t, http.StatusUnauthorized, code, "an owner API token is not a scrape token")
	code, body = apiMetrics(t, l, "scrape-secret-for-tests")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, "rap_raft_term")

	// pprof on the loopback debug listener, and only there.
	resp, err := http.Get("http://" + l.DebugAddr() + "/debug/pprof/goroutine?debug=1")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13}}} //nolint:gosec // a probe
	resp, err = c.Get("https://" + l.APIAddr() + "/debug/pprof/")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNotFound, resp.StatusCode, "the API listener serves no pprof")
	c.CloseIdleConnections()

	// Without a scrape token configured, no credential opens it.
	g2 := authtest.New(t, 1)
	l2 := g2.Leader(10 * time.Second)
	require.Empty(t, l2.MetricsAddr(), "no metrics listener unless configured")
	for _, tok := range []string{"", g2.Token, "scrape-secret-for-tests"} {
		code, _ = apiMetrics(t, l2, tok)
		require.Contains(t, []int{http.StatusForbidden}, code, "token %q", tok)
	}

	// A metrics or debug listener on a non-loopback address is refused.
	for _, bad := range []daemon.Config{{MetricsListen: "0.0.0.0:0"}, {DebugListen: ":6060"}} {
		bad.NodeID, bad.DataDir, bad.DatabaseURL, bad.RaftBind, bad.APIListen = "x", t.TempDir(), "postgres://x", "127.0.0.1:0", "127.0.0.1:0"
		require.ErrorContains(t, bad.Validate(), "not a loopback address")
	}
}

// TestMetricsMoveWithTheWorkload scrapes the loopback listener before and
// after writes, joins, an approval, a failed login and heartbeats, and checks
// that the series move: Go/process/build info, Raft internals through the
// go-metrics bridge, fenced mutation latency by result, enrollments, pending
// joins, nodes by health, snapshot builds and lag, heartbeat ingest and
// flush, audit head, certificate expiry, pgx pool, API requests with numeric
// codes. The whole scrape is promlint clean.
func TestMetricsMoveWithTheWorkload(t *testing.T) {
	g := authtest.NewWithConfig(t, 1, metricsConfig)
	l := g.Leader(10 * time.Second)
	before := scrape(t, l)
	for _, name := range []string{"go_goroutines", "go_memstats_alloc_bytes", "process_resident_memory_bytes", "go_build_info", "rap_raft_term"} {
		require.Contains(t, before, name)
	}

	// Writes and a join: a cluster, a token, an approved agent (apiEnv).
	e := newAPIEnvIn(t, g)
	owner := g.Client(l)
	ctx := context.Background()
	// A second join request, left pending.
	tok := mkToken(t, owner, "east", 1)
	pendingAgent := newFakeAgent("edge-2", "host-edge-2")
	var st joinStatus
	require.NoError(t, enrollClient(t, g, tok.CAPin).Do(ctx, http.MethodPost, "/v1/agent/join", pendingAgent.joinBody(tok.Token), &st, nil))
	// A failed login.
	bad, _ := json.Marshal(map[string]any{"username": "nobody", "password": "not the password", "totp_code": "000000"})
	require.Equal(t, http.StatusUnauthorized, e.serve(anonymous(), http.MethodPost, "/v1/auth/login", bad, "application/json", nil).status)
	// Heartbeats from the approved agent.
	for i := 1; i <= 5; i++ {
		hb, _ := json.Marshal(agentapi.Heartbeat{Seq: int64(i), SentAt: time.Now(), AgentVersion: "test", State: "normal"})
		a := e.serve(e.agentCert(), http.MethodPost, agentapi.PathHeartbeat, hb, "application/json", nil)
		require.Equal(t, http.StatusOK, a.status, a.body)
	}

	var after scrapeResult
	g.Eventually(15*time.Second, "heartbeats flushed, audit chained, state read again", func() bool {
		after = scrape(t, l)
		return after.value("rap_heartbeats_flushed_total") >= 5 &&
			after.value("rap_audit_head_sequence") > before.value("rap_audit_head_sequence") &&
			after.value("rap_join_requests_pending", "cluster", "east") == 1 &&
			after.value("rap_nodes", "cluster", "east", "health", "healthy") == 1
	})
	moved := func(name string, labels ...string) {
		t.Helper()
		require.Greater(t, after.value(name, labels...), before.value(name, labels...), "%s %v moves", name, labels)
	}
	moved("rap_fenced_mutation_duration_seconds", "result", "ok")
	require.Equal(t, 1.0, after.value("rap_enrollments_total", "result", "approved"))
	moved("rap_login_failures_total")
	require.Equal(t, 5.0, after.value("rap_heartbeats_ingested_total")-before.value("rap_heartbeats_ingested_total"))
	moved("rap_heartbeat_flush_duration_seconds")
	moved("rap_snapshot_build_duration_seconds")
	moved("rap_pg_pool_acquires_total")
	moved("rap_api_requests_total", "route", "clusters.create", "code", "201")
	moved("rap_api_requests_total", "route", "auth.login", "code", "401")
	moved("raft_apply_total")
	moved("raft_commit_time_seconds")
	moved("raft_fsm_apply_seconds")
	require.Equal(t, 1.0, after.value("rap_state_metrics_up"))
	expiry := after.value("rap_node_certificate_earliest_expiry_seconds")
	require.False(t, math.IsInf(expiry, 1), "an approved node has a certificate")
	require.Greater(t, expiry, 0.0)
	require.Contains(t, after, "rap_snapshot_lagging_nodes")
	require.Contains(t, after, "rap_snapshot_rebuild_queue_depth")
	require.GreaterOrEqual(t, after.value("rap_node_roles"), 0.0)

	// The agent reports the snapshot version it applied: the lag closes.
	var snap struct {
		Items []struct {
			DesiredVersion uint64 `json:"desired_version"`
		} `json:"items"`
	}
	require.NoError(t, owner.Do(ctx, http.MethodGet, "/v1/clusters/east/snapshots", nil, &snap, nil))
	require.NotEmpty(t, snap.Items)
	if after.value("rap_snapshot_lagging_nodes", "cluster", "east") > 0 {
		hb, _ := json.Marshal(agentapi.Heartbeat{Seq: 6, SentAt: time.Now(), AgentVersion: "test", State: "normal", AppliedVersion: int64(snap.Items[0].DesiredVersion)})
		require.Equal(t, http.StatusOK, e.serve(e.agentCert(), http.MethodPost, agentapi.PathHeartbeat, hb, "application/json", nil).status)
		g.Eventually(15*time.Second, "the snapshot lag closes", func() bool {
			return scrape(t, l).value("rap_snapshot_lagging_nodes", "cluster", "east") == 0
		})
	}

	// Approving the pending request moves pending down and approvals up.
	require.NoError(t, owner.Do(ctx, http.MethodPost, "/v1/join-requests/"+st.RequestID+"/approve", nil, nil, nil))
	g.Eventually(10*time.Second, "pending joins drop", func() bool {
		s := scrape(t, l)
		return s.value("rap_join_requests_pending", "cluster", "east") == 0 && s.value("rap_enrollments_total", "result", "approved") == 2
	})

	// Step-up: a wrong code, and a high-risk action without a grant, are
	// counted (a session needs an owner with TOTP: the owner API token ends).
	before = scrape(t, l)
	e.enableSession()
	wrong, _ := json.Marshal(map[string]any{"method": "POST", "path": "/v1/join-requests/" + st.RequestID + "/reject", "totp_code": "000000"})
	a := e.serve(e.session(), http.MethodPost, "/v1/auth/step-up", wrong, "application/json", nil)
	require.GreaterOrEqual(t, a.status, 400, a.body)
	a = e.serve(e.session(), http.MethodPost, "/v1/clusters/east/nodes/"+e.agent.nodeID+"/revoke", []byte(`{"reason":"test"}`), "application/json", nil)
	require.Equal(t, "step_up_required", a.code, a.body)
	after = scrape(t, l)
	require.Equal(t, 1.0, after.value("rap_step_up_failures_total", "reason", "missing")-before.value("rap_step_up_failures_total", "reason", "missing"))
	require.Greater(t, after.value("rap_step_up_failures_total"), before.value("rap_step_up_failures_total", "reason", "missing"), "the wrong code is counted too")

	// Every code label is numeric; the whole scrape is promlint clean.
	for _, m := range after["rap_api_requests_total"].GetMetric() {
		for _, lp := range m.GetLabel() {
			if lp.GetName() == "code" {
				require.Regexp(t, `^[1-5][0-9][0-9]$`, lp.GetValue())
			}
		}
	}
	var all []*dto.MetricFamily
	for _, mf := range scrape(t, l) {
		all = append(all, mf)
	}
	problems, err := promlint.NewWithMetricFamilies(all).Lint()
	require.NoError(t, err)
	require.Empty(t, problems, "promlint")
}

// TestMetricsCountNoQuorum: a fenced write refused for lack of a quorum is
// counted under result no_quorum (or not_leader once the isolated leader
// stepped down).
func TestMetricsCountNoQuorum(t *testing.T) {
	g := authtest.NewWithConfig(t, 3, metricsConfig)
	l := g.Leader(10 * time.Second)
	before := scrape(t, l)
	g.Isolate(l)
	only, err := apiclient.New(apiclient.Options{Servers: []string{l.APIAddr()}, Token: g.Token, CAPin: g.Pin, MaxRedirects: -1})
	require.NoError(t, err)
	defer only.Close()
	err = only.Do(context.Background(), http.MethodPost, "/v1/organizations", map[string]any{"name": "minority", "slug": "minority"}, nil, nil)
	require.Error(t, err)
	s := scrape(t, l)
	refused := s.value("rap_fenced_mutation_duration_seconds", "result", "no_quorum") + s.value("rap_fenced_mutation_duration_seconds", "result", "not_leader")
	require.Equal(t, 1.0, refused, "code %s", apiCode(err))
	require.Equal(t, before.value("rap_fenced_mutation_duration_seconds", "result", "ok"), s.value("rap_fenced_mutation_duration_seconds", "result", "ok"),
		"nothing committed on the isolated leader")
}
