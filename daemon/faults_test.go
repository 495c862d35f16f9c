package daemon_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/authority"
	"github.com/rap-fabric/core/internal/authtest"
	"github.com/rap-fabric/core/pki"
)

// cutProxy forwards TCP to PostgreSQL and can cut the path as a PostgreSQL
// crash does: every open connection is closed and new ones are closed at
// once, until heal.
type cutProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	cut    bool
	conns  map[net.Conn]bool
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &cutProxy{ln: ln, target: target, conns: map[net.Conn]bool{}}
	t.Cleanup(func() { _ = ln.Close(); p.sever(false) })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	return p
}

func (p *cutProxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cut {
		return false
	}
	for _, c := range cs {
		p.conns[c] = true
	}
	return true
}

// sever closes every connection; down says whether new ones are refused.
func (p *cutProxy) sever(down bool) {
	p.mu.Lock()
	p.cut = down
	for c := range p.conns {
		_ = c.Close()
	}
	p.conns = map[net.Conn]bool{}
	p.mu.Unlock()
}

func (p *cutProxy) serve(c net.Conn) {
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		_ = c.Close()
		return
	}
	if !p.track(c, s) {
		_ = c.Close()
		_ = s.Close()
		return
	}
	pipe := func(dst, src net.Conn) {
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		_ = dst.Close()
		_ = src.Close()
	}
	go pipe(s, c)
	pipe(c, s)
}

// TestPostgresDownIsUnavailableForEveryCredential (defect: requests
// authenticated by a session got 500 internal while PostgreSQL was down):
// with PostgreSQL gone, reads and writes authenticated by an owner API token,
// an agent certificate and a cookie session all answer 503 unavailable; once
// it is back they work again without a restart.
func TestPostgresDownIsUnavailableForEveryCredential(t *testing.T) {
	var proxy *cutProxy
	g := authtest.NewWithDB(t, 1, func(_ int, dbURL string) string {
		u, err := url.Parse(dbURL)
		require.NoError(t, err)
		proxy = newCutProxy(t, u.Host)
		u.Host = proxy.ln.Addr().String()
		return u.String()
	})
	e := newAPIEnvIn(t, g)
	type call struct {
		method, path, body string
	}
	ownerCalls := []call{{http.MethodGet, "/v1/clusters", ""}, {http.MethodGet, "/v1/clusters/east", ""}, {http.MethodGet, "/v1/nodes", ""},
		{http.MethodPost, "/v1/clusters", `{"name":"during","slug":"during"}`}, {http.MethodPost, "/v1/clusters/east/groups", `{"name":"g1"}`},
		{http.MethodPost, "/v1/join-tokens", `{"cluster":"east","max_uses":1}`}}
	agentCalls := []call{{http.MethodGet, "/v1/agent/whoami", ""}, {http.MethodGet, "/v1/agent/desired", ""}, {http.MethodGet, "/v1/agent/ca", ""},
		{http.MethodPost, "/v1/agent/certificate", `{}`}}
	down := func(cred credential, calls []call) {
		proxy.sever(true)
		for _, c := range calls {
			var body []byte
			ct := ""
			if c.body != "" {
				body, ct = []byte(c.body), "application/json"
			}
			var a answer
			for i := 0; i < 2; i++ { // the first may meet a pooled connection as it breaks
				a = e.serve(cred, c.method, c.path, body, ct, nil)
			}
			require.Equal(t, http.StatusServiceUnavailable, a.status, "%s %s %s while PostgreSQL is down: %s", cred.name, c.method, c.path, a.body)
			require.Equal(t, "unavailable", a.code, "%s %s %s", cred.name, c.method, c.path)
		}
		proxy.sever(false)
		g.Eventually(20*time.Second, "the database is back", func() bool {
			return e.serve(cred, calls[0].method, calls[0].path, nil, "", nil).status == http.StatusOK
		})
	}
	down(e.ownerToken(), ownerCalls)
	down(e.agentCert(), agentCalls)
	e.enableSession()
	down(e.session(), append(ownerCalls, call{http.MethodGet, "/v1/auth/me", ""}))
	requireNoPanics(t, e)
}

// TestCertificateStatus (defect: the route panicked for every good
// certificate): good, revoked, expired, unknown and foreign-CA certificates
// each get their status; garbage is a typed 400.
func TestCertificateStatus(t *testing.T) {
	e := newAPIEnv(t)
	ctx := context.Background()
	owner := e.g.Client(e.l)
	status := func(der []byte) (int, map[string]any) {
		body, _ := json.Marshal(map[string]any{"certificate": der})
		a := e.serve(anonymous(), http.MethodPost, "/v1/agent/certificate/status", body, "application/json", nil)
		var out map[string]any
		_ = json.Unmarshal([]byte(a.body), &out)
		return a.status, out
	}
	code, st := status(e.agent.cert)
	require.Equal(t, http.StatusOK, code, "%v", st)
	require.Equal(t, "good", st["status"])
	require.Equal(t, e.agent.nodeID, st["node_id"])

	// Revoked: a second node, revoked by the owner.
	var cl map[string]any
	require.NoError(t, owner.Do(ctx, http.MethodGet, "/v1/clusters/east", nil, &cl, nil))
	pin := cl["ca_pin"].(string)
	bad := enrollAgent(t, e.g, owner, pin, "east", "edge-2")
	require.NoError(t, owner.Do(ctx, http.MethodPost, "/v1/clusters/east/nodes/"+bad.nodeID+"/revoke", map[string]any{"reason": "test"}, nil, nil))
	code, st = status(bad.cert)
	require.Equal(t, http.StatusOK, code, "%v", st)
	require.Equal(t, "revoked", st["status"])

	// Expired: the good certificate, judged by an authority whose clock is
	// past its NotAfter (same Raft state, same database).
	cert, err := x509.ParseCertificate(e.agent.cert)
	require.NoError(t, err)
	later, err := authority.New(authority.Config{Clock: func() time.Time { return cert.NotAfter.Add(time.Minute) }}, nil, e.l.FSM, e.l.DB)
	require.NoError(t, err)
	res, err := later.CertificateStatus(ctx, e.agent.cert)
	require.NoError(t, err)
	require.Equal(t, authority.CertExpired, res.Status)

	// Foreign CA: a certificate naming this cluster and node, signed by
	// another CA; and one of a cluster no authority knows.
	clusterID := cl["id"].(string)
	for _, cid := range []string{clusterID, "00000000-0000-4000-8000-000000000001"} {
		caKey, caDER, err := pki.NewCA(rand.Reader, cid, time.Now(), time.Hour)
		require.NoError(t, err)
		pub, _, _ := ed25519.GenerateKey(rand.Reader)
		der, _, err := pki.IssueNodeCert(rand.Reader, caKey, caDER, pki.NodeCertRequest{ClusterID: cid, NodeID: e.agent.nodeID, NodeName: "forged", PublicKey: pub,
			NotBefore: time.Now().Add(-time.Minute), Lifetime: time.Hour})
		require.NoError(t, err)
		code, st = status(der)
		require.Equal(t, http.StatusOK, code, "%v", st)
		require.Equal(t, "unknown", st["status"], "cluster %s", cid)
	}

	// Not a certificate at all.
	for _, der := range [][]byte{nil, {}, []byte("garbage"), e.agent.caCert} {
		code, st = status(der)
		require.Equal(t, http.StatusBadRequest, code, "%v", st)
	}
	requireNoPanics(t, e)
}

// TestIdempotencyKeyReusedWithAnotherRequest (defect: a reused key with a
// different body answered 201 with the first request's object): the same key
// with the same request returns the stored response; with a different body or
// path it is refused with 422 idempotency_key_reused and nothing is created.
func TestIdempotencyKeyReusedWithAnotherRequest(t *testing.T) {
	e := newAPIEnv(t)
	ctx := context.Background()
	owner := e.ownerToken()
	key := map[string]string{"Idempotency-Key": "create-west"}
	first := e.serve(owner, http.MethodPost, "/v1/clusters", []byte(`{"name":"West","slug":"west"}`), "application/json", key)
	require.Equal(t, http.StatusCreated, first.status, first.body)
	again := e.serve(owner, http.MethodPost, "/v1/clusters", []byte(`{"name":"West","slug":"west"}`), "application/json", key)
	require.Equal(t, http.StatusCreated, again.status, again.body)
	var a, b map[string]any
	require.NoError(t, json.Unmarshal([]byte(first.body), &a))
	require.NoError(t, json.Unmarshal([]byte(again.body), &b))
	require.Equal(t, a["id"], b["id"], "the same request gets the stored response")

	other := e.serve(owner, http.MethodPost, "/v1/clusters", []byte(`{"name":"North","slug":"north"}`), "application/json", key)
	require.Equal(t, http.StatusUnprocessableEntity, other.status, other.body)
	require.Equal(t, "idempotency_key_reused", other.code)
	var n int
	require.NoError(t, e.l.DB.Pool.QueryRow(ctx, `SELECT count(*) FROM clusters WHERE slug = 'north'`).Scan(&n))
	require.Zero(t, n, "the second object is never created")
	require.NoError(t, e.l.DB.Pool.QueryRow(ctx, `SELECT count(*) FROM clusters WHERE slug = 'west'`).Scan(&n))
	require.Equal(t, 1, n)

	// The same key on another path of the same action: refused too.
	dk := map[string]string{"Idempotency-Key": "disable-1"}
	require.Equal(t, http.StatusOK, e.serve(owner, http.MethodPost, "/v1/clusters/west/disable", nil, "", dk).status)
	d2 := e.serve(owner, http.MethodPost, "/v1/clusters/east/disable", nil, "", dk)
	require.Equal(t, http.StatusUnprocessableEntity, d2.status, d2.body)
	require.Equal(t, "idempotency_key_reused", d2.code)
	var east map[string]any
	require.NoError(t, e.g.Client(e.l).Do(ctx, http.MethodGet, "/v1/clusters/east", nil, &east, nil))
	require.Equal(t, "active", east["status"], "east was never disabled")

	// Keys are refused when not printable ASCII.
	bad := e.serve(owner, http.MethodPost, "/v1/clusters", []byte(`{"name":"X","slug":"x"}`), "application/json", map[string]string{"Idempotency-Key": "k\x7f"})
	require.Equal(t, http.StatusBadRequest, bad.status, bad.body)
	require.Equal(t, "invalid_argument", bad.code)
}
