package adminingress

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/agentapi"
	"github.com/rap-fabric/core/apiclient"
	"github.com/rap-fabric/core/uimanifest"
)

var t0 = time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)

func selfSigned(t *testing.T, from, to time.Time) *tls.Certificate {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "admin"}, NotBefore: from, NotAfter: to,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &k.PublicKey, k)
	require.NoError(t, err)
	leaf, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k, Leaf: leaf}
}

func goodObservation(t *testing.T) Observation {
	return Observation{
		SnapshotVersion: 7, SnapshotExpires: t0.Add(time.Hour), SnapshotRoles: []string{"admin-ingress", "core-mesh"},
		LastHeartbeatAck: t0.Add(-time.Second),
		Certificate:      selfSigned(t, t0.Add(-time.Hour), t0.Add(time.Hour)).Leaf,
		Grant:            &agentapi.AdminIngress{ClusterID: "c", Healthy: true, AuthorityState: "normal", RequiredRoles: []string{"core-mesh"}, MissingRoles: []string{}},
		GrantAt:          t0.Add(-time.Second),
	}
}

func codes(us []Unmet) []string {
	out := []string{}
	for _, u := range us {
		out = append(out, u.Code)
	}
	return out
}

// TestEvaluate: every precondition of the spec's Admin Endpoint Placement,
// one at a time, names its own reason; all together serve.
func TestEvaluate(t *testing.T) {
	l := Limits{HeartbeatMaxAge: 5 * time.Second, GrantMaxAge: 6 * time.Second}
	require.Empty(t, Evaluate(t0, goodObservation(t), l))

	refused := func(reason string) error {
		return &apiclient.Error{Status: 403, Code: "admin_ingress_refused", Message: "no", Details: map[string]any{"reason": reason}}
	}
	cases := map[string]struct {
		mut  func(o *Observation)
		at   time.Time
		want []string
	}{
		"role removed":        {mut: func(o *Observation) { o.GrantErr = refused(agentapi.AdminIngressRefusedNoRole) }, want: []string{ReasonRoleNotAssigned}},
		"storage node":        {mut: func(o *Observation) { o.GrantErr = refused(agentapi.AdminIngressRefusedStorage) }, want: []string{ReasonStorageNode}},
		"membership inactive": {mut: func(o *Observation) { o.GrantErr = refused(agentapi.AdminIngressRefusedMembership) }, want: []string{ReasonRefused}},
		"authority down":      {mut: func(o *Observation) { o.GrantErr = errors.New("dial tcp: refused") }, want: []string{ReasonAuthorityUnreachable}},
		"never asked":         {mut: func(o *Observation) { o.Grant = nil }, want: []string{ReasonStarting}},
		"old answer":          {mut: func(o *Observation) { o.GrantAt = t0.Add(-time.Minute) }, want: []string{ReasonAuthorityUnreachable}},
		"fenced":              {mut: func(o *Observation) { o.Grant.Healthy, o.Grant.AuthorityState = false, "fenced" }, want: []string{ReasonAuthorityUnhealthy}},
		"coverage":            {mut: func(o *Observation) { o.Grant.MissingRoles = []string{"core-mesh"} }, want: []string{ReasonRoleCoverage}},
		"bad manifest":        {mut: func(o *Observation) { o.ManifestErr = errors.New("bad") }, want: []string{ReasonManifestInvalid}},
		"no snapshot":         {mut: func(o *Observation) { o.SnapshotVersion = 0 }, want: []string{ReasonSnapshotMissing}},
		"snapshot expired":    {at: t0.Add(2 * time.Hour), mut: func(o *Observation) { o.LastHeartbeatAck, o.GrantAt = t0.Add(2*time.Hour), t0.Add(2*time.Hour) }, want: []string{ReasonSnapshotExpired, ReasonTLSInvalid}},
		"snapshot lacks role": {mut: func(o *Observation) { o.SnapshotRoles = []string{"core-mesh"} }, want: []string{ReasonSnapshotRole}},
		"no certificate":      {mut: func(o *Observation) { o.Certificate, o.CertificateErr = nil, errors.New("none") }, want: []string{ReasonTLSInvalid}},
		"certificate not yet": {mut: func(o *Observation) { o.Certificate = selfSigned(t, t0.Add(time.Hour), t0.Add(2*time.Hour)).Leaf }, want: []string{ReasonTLSInvalid}},
		"heartbeat lapsed":    {at: t0.Add(5 * time.Second), mut: func(o *Observation) { o.GrantAt = t0.Add(5 * time.Second) }, want: []string{ReasonHeartbeatStale}},
		"no heartbeat yet":    {mut: func(o *Observation) { o.LastHeartbeatAck = time.Time{} }, want: []string{ReasonHeartbeatStale}},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			o := goodObservation(t)
			g := *o.Grant
			o.Grant = &g
			c.mut(&o)
			at := t0
			if !c.at.IsZero() {
				at = c.at
			}
			got := Evaluate(at, o, l)
			require.Equal(t, c.want, codes(got))
			for _, u := range got {
				require.NotEmpty(t, u.Detail)
			}
		})
	}
}

// fakeSource is a membership for the endpoint's unit tests.
type fakeSource struct {
	mu    sync.Mutex
	obs   Observation
	grant agentapi.AdminIngress
	err   error
	cert  *tls.Certificate
}

func (f *fakeSource) Observe() Observation { f.mu.Lock(); defer f.mu.Unlock(); return f.obs }
func (f *fakeSource) Grant(context.Context) (agentapi.AdminIngress, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.grant, f.err
}
func (f *fakeSource) NodeCertificate() (*tls.Certificate, error) { return f.cert, nil }
func (f *fakeSource) Forwarding() Forwarding                     { return Forwarding{Authorities: []string{"127.0.0.1:1"}} }

// TestEndpointGoesDownWithTheReason: with an injected clock, the endpoint
// serves while everything holds and answers 503 with the reason once the
// heartbeat lapses or the role is refused; it comes back when they hold
// again. Agent routes are never forwarded.
func TestEndpointGoesDownWithTheReason(t *testing.T) {
	var mu sync.Mutex
	now := t0
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	obs := goodObservation(t)
	src := &fakeSource{obs: obs, grant: *obs.Grant, cert: selfSigned(t, t0.Add(-time.Hour), t0.Add(time.Hour))}
	src.grant.Manifest = uimanifest.ClusterAdminJSON()
	e, err := New(src, Options{Listen: "127.0.0.1:0", Now: clock, Limits: Limits{HeartbeatMaxAge: 5 * time.Second, GrantMaxAge: time.Minute}})
	require.NoError(t, err)
	h := e.Handler()
	get := func(path string) (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "https://admin.example"+path, nil))
		b, _ := io.ReadAll(rec.Body)
		return rec.Code, string(b)
	}
	code, body := get("/")
	require.Equal(t, http.StatusServiceUnavailable, code, "down until checked")
	require.Contains(t, body, ReasonStarting)

	st := e.Check(context.Background())
	require.True(t, st.Serving, "%v", st.Unmet)
	code, body = get("/")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, `href="/ui/groups"`)
	code, _ = get(agentapi.PathSnapshot)
	require.Equal(t, http.StatusForbidden, code, "agent routes are never forwarded")

	// The heartbeat lapses: down, with the reason on the page and in Status.
	mu.Lock()
	now = t0.Add(10 * time.Second)
	mu.Unlock()
	st = e.Check(context.Background())
	require.False(t, st.Serving)
	require.Equal(t, []string{ReasonHeartbeatStale}, codes(st.Unmet))
	code, body = get("/ui/groups")
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.True(t, strings.Contains(body, ReasonHeartbeatStale), body)

	// Heartbeat back, role removed.
	src.mu.Lock()
	src.obs.LastHeartbeatAck = now
	src.err = &apiclient.Error{Status: 403, Code: "admin_ingress_refused", Message: "no role", Details: map[string]any{"reason": agentapi.AdminIngressRefusedNoRole}}
	src.mu.Unlock()
	st = e.Check(context.Background())
	require.Equal(t, []string{ReasonRoleNotAssigned}, codes(st.Unmet))
	_, body = get("/")
	require.Contains(t, body, ReasonRoleNotAssigned)

	// Role back: up again.
	src.mu.Lock()
	src.err = nil
	src.mu.Unlock()
	require.True(t, e.Check(context.Background()).Serving)
}
