package daemon_test

import (
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/apiclient"
	"github.com/rap-fabric/core/authority"
	"github.com/rap-fabric/core/daemon"
	"github.com/rap-fabric/core/httpapi"
	"github.com/rap-fabric/core/internal/authtest"
	"github.com/rap-fabric/core/jointoken"
	"github.com/rap-fabric/core/pki"
)

// fakeAgent is the enrollment side of a node agent, enough to drive the API.
type fakeAgent struct {
	name     string
	host     string
	priv     ed25519.PrivateKey
	noisePub []byte
	poll     []byte
	cert     []byte
	caCert   []byte
	nodeID   string
	cluster  string
}

func newFakeAgent(name, host string) *fakeAgent {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	nk, _ := ecdh.X25519().GenerateKey(rand.Reader)
	poll := make([]byte, 32)
	_, _ = rand.Read(poll)
	h := sha256.Sum256([]byte(host))
	return &fakeAgent{name: name, host: hex.EncodeToString(h[:]), priv: priv, noisePub: nk.PublicKey().Bytes(), poll: poll}
}

func (a *fakeAgent) joinBody(token string) map[string]any {
	return map[string]any{"token": token, "node_name": a.name, "host_fingerprint": a.host, "public_key": []byte(a.priv.Public().(ed25519.PublicKey)),
		"noise_public_key": a.noisePub, "facts": map[string]any{"os": "linux", "cpus": 2}, "capabilities": []string{"can_route_mesh", "can_accept_node_ingress"},
		"requested_roles": []string{"relay-node"}, "poll_secret": a.poll}
}

// enrollClient talks to the authorities as an unenrolled agent: it verifies the
// server against the cluster CA pin and names the cluster by that pin.
func enrollClient(t *testing.T, g *authtest.Group, pin string) *apiclient.Client {
	var addrs []string
	for _, d := range g.DS {
		if d != nil {
			addrs = append(addrs, d.APIAddr())
		}
	}
	c, err := apiclient.New(apiclient.Options{Servers: addrs, CAPin: pin, ServerName: httpapi.ServerNameForPin(pin)})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c
}

// nodeClient talks as an enrolled node with its certificate (mTLS).
func nodeClient(t *testing.T, g *authtest.Group, a *fakeAgent) *apiclient.Client {
	var addrs []string
	for _, d := range g.DS {
		if d != nil {
			addrs = append(addrs, d.APIAddr())
		}
	}
	pin, err := pki.PinDER(a.caCert)
	require.NoError(t, err)
	c, err := apiclient.New(apiclient.Options{Servers: addrs, CAPin: pin, ServerName: httpapi.ServerNameForCluster(a.cluster),
		Certificate: &tls.Certificate{Certificate: [][]byte{a.cert}, PrivateKey: a.priv}})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c
}

// handshakeRefusal connects to an authority with a's certificate over bare
// TLS and returns the error of the handshake and first read ("" when the
// server accepted it and answered).
func handshakeRefusal(t *testing.T, g *authtest.Group, a *fakeAgent) string {
	t.Helper()
	var addr string
	for _, d := range g.DS {
		if d != nil {
			addr = d.APIAddr()
			break
		}
	}
	c, err := tls.Dial("tcp", addr, &tls.Config{
		ServerName: httpapi.ServerNameForCluster(a.cluster), InsecureSkipVerify: true, //nolint:gosec // only the refusal is checked
		Certificates: []tls.Certificate{{Certificate: [][]byte{a.cert}, PrivateKey: a.priv}},
		NextProtos:   []string{"http/1.1"},
	})
	if err != nil {
		return err.Error()
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("GET /v1/agent/whoami HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		return err.Error()
	}
	if _, err := c.Read(make([]byte, 1)); err != nil {
		return err.Error()
	}
	return ""
}

type joinStatus struct {
	RequestID   string `json:"request_id"`
	ClusterID   string `json:"cluster_id"`
	Status      string `json:"status"`
	NodeID      string `json:"node_id"`
	Certificate []byte `json:"certificate"`
	CACert      []byte `json:"ca_certificate"`
	Reason      string `json:"reason"`
}

type tokenResp struct {
	ID    string `json:"id"`
	Token string `json:"token"`
	CAPin string `json:"ca_pin"`
}

func mkCluster(t *testing.T, c *apiclient.Client, slug string) (id, pin string) {
	out, err := authtest.CreateCluster(context.Background(), c, slug)
	require.NoError(t, err)
	return out["id"].(string), out["ca_pin"].(string)
}

func mkToken(t *testing.T, c *apiclient.Client, cluster string, uses int) tokenResp {
	var tr tokenResp
	require.NoError(t, c.Do(context.Background(), http.MethodPost, "/v1/join-tokens", map[string]any{"cluster": cluster, "max_uses": uses, "description": "test"}, &tr, nil))
	require.True(t, strings.HasPrefix(tr.Token, "rapjt."))
	return tr
}

func TestEnrollmentFlowOverHTTP(t *testing.T) {
	g := authtest.New(t, 3)
	ctx := context.Background()
	g.Leader(10 * time.Second)
	owner := g.Client(g.DS...)
	east, eastPin := mkCluster(t, owner, "east")
	west, westPin := mkCluster(t, owner, "west")
	require.NotEqual(t, eastPin, westPin, "clusters never share a CA")
	tok := mkToken(t, owner, "east", 1)

	// The agent sends its join request, verifying the authority by the CA pin.
	ag := newFakeAgent("edge-1", "host-1")
	var st joinStatus
	require.NoError(t, enrollClient(t, g, eastPin).Do(ctx, http.MethodPost, "/v1/agent/join", ag.joinBody(tok.Token), &st, nil))
	require.Equal(t, "pending", st.Status)
	require.Equal(t, east, st.ClusterID)

	// Review shows the facts and the capability check for the requested role.
	var jr map[string]any
	require.NoError(t, owner.Do(ctx, http.MethodGet, "/v1/join-requests/"+st.RequestID, nil, &jr, nil))
	require.Equal(t, "pending", jr["status"])
	require.Equal(t, map[string]any{"os": "linux", "cpus": float64(2)}, jr["reported_facts"])
	require.Equal(t, map[string]any{"relay-node": []any{}}, jr["role_missing_capabilities"])
	require.NotContains(t, jr, "poll_secret_hash")

	// Polling before approval: still pending; a wrong poll secret learns nothing.
	require.NoError(t, enrollClient(t, g, eastPin).Do(ctx, http.MethodPost, "/v1/agent/join/"+st.RequestID+"/poll", map[string]any{"poll_secret": ag.poll}, &st, nil))
	require.Equal(t, "pending", st.Status)
	err := enrollClient(t, g, eastPin).Do(ctx, http.MethodPost, "/v1/agent/join/"+st.RequestID+"/poll", map[string]any{"poll_secret": make([]byte, 32)}, nil, nil)
	require.Equal(t, "not_found", apiCode(err))

	// Approve (through any authority: the client follows not_leader).
	var ap map[string]any
	require.NoError(t, owner.Do(ctx, http.MethodPost, "/v1/join-requests/"+st.RequestID+"/approve", nil, &ap, nil))
	require.NotEmpty(t, ap["node_id"])
	// Approving twice fails cleanly and creates nothing twice.
	err = owner.Do(ctx, http.MethodPost, "/v1/join-requests/"+st.RequestID+"/approve", nil, nil, nil)
	require.Equal(t, "conflict", apiCode(err))

	require.NoError(t, enrollClient(t, g, eastPin).Do(ctx, http.MethodPost, "/v1/agent/join/"+st.RequestID+"/poll", map[string]any{"poll_secret": ag.poll}, &st, nil))
	require.Equal(t, "approved", st.Status)
	ag.cert, ag.caCert, ag.nodeID, ag.cluster = st.Certificate, st.CACert, st.NodeID, st.ClusterID
	cert, err := x509.ParseCertificate(ag.cert)
	require.NoError(t, err)
	id, err := pki.VerifyNodeCert(cert, ag.caCert, east, time.Now())
	require.NoError(t, err)
	require.Equal(t, ag.nodeID, id.NodeID)
	require.Equal(t, "rap://"+east+"/node/"+ag.nodeID, cert.URIs[0].String())
	require.Less(t, time.Until(cert.NotAfter), 25*time.Hour, "short-lived certificate")

	// mTLS as the node works on agent routes...
	nc := nodeClient(t, g, ag)
	var who map[string]any
	require.NoError(t, nc.Do(ctx, http.MethodGet, "/v1/agent/whoami", nil, &who, nil))
	require.Equal(t, ag.nodeID, who["node_id"])
	// ...and never on owner routes, even with a valid owner token beside it.
	withOwner, err := apiclient.New(apiclient.Options{Servers: []string{g.DS[0].APIAddr()}, Token: g.Token, CAPin: eastPin, ServerName: httpapi.ServerNameForCluster(east),
		Certificate: &tls.Certificate{Certificate: [][]byte{ag.cert}, PrivateKey: ag.priv}, MaxRedirects: -1})
	require.NoError(t, err)
	err = withOwner.Do(ctx, http.MethodGet, "/v1/clusters", nil, nil, nil)
	require.Equal(t, "forbidden", apiCode(err))

	// Renewal over mTLS issues a new certificate.
	var rn struct {
		Serial      string `json:"serial"`
		Certificate []byte `json:"certificate"`
	}
	require.NoError(t, nc.Do(ctx, http.MethodPost, "/v1/agent/certificate", map[string]any{}, &rn, nil))
	require.NotEqual(t, id.Serial, rn.Serial)

	// Key rotation: new keys get a certificate; the old identity's certificates
	// stop working at once.
	_, newPriv, _ := ed25519.GenerateKey(rand.Reader)
	nk, _ := ecdh.X25519().GenerateKey(rand.Reader)
	require.NoError(t, nc.Do(ctx, http.MethodPost, "/v1/agent/certificate", map[string]any{"public_key": []byte(newPriv.Public().(ed25519.PublicKey)), "noise_public_key": nk.PublicKey().Bytes()}, &rn, nil))
	oldCert, oldPriv := ag.cert, ag.priv
	ag.cert, ag.priv = rn.Certificate, newPriv
	rotated := nodeClient(t, g, ag)
	require.NoError(t, rotated.Do(ctx, http.MethodGet, "/v1/agent/whoami", nil, &who, nil))
	require.Equal(t, ag.nodeID, who["node_id"])
	stale, err := apiclient.New(apiclient.Options{Servers: []string{g.DS[0].APIAddr()}, CAPin: eastPin, ServerName: httpapi.ServerNameForCluster(east),
		Certificate: &tls.Certificate{Certificate: [][]byte{oldCert}, PrivateKey: oldPriv}})
	require.NoError(t, err)
	require.Error(t, stale.Do(ctx, http.MethodGet, "/v1/agent/whoami", nil, nil, nil), "the rotated-away certificate is refused")

	// The same host enrolls into a second cluster: same physical node, isolated
	// membership and identity.
	ag2 := newFakeAgent("edge-1", "host-1")
	tokW := mkToken(t, owner, "west", 1)
	var st2 joinStatus
	require.NoError(t, enrollClient(t, g, westPin).Do(ctx, http.MethodPost, "/v1/agent/join", ag2.joinBody(tokW.Token), &st2, nil))
	require.NoError(t, owner.Do(ctx, http.MethodPost, "/v1/join-requests/"+st2.RequestID+"/approve", nil, &ap, nil))
	require.Equal(t, ag.nodeID, ap["node_id"], "the same host is one physical node")
	require.Equal(t, west, ap["cluster_id"])

	// Revoke in east: refused at the next TLS handshake, listed for snapshots,
	// west untouched.
	var m map[string]any
	require.NoError(t, owner.Do(ctx, http.MethodPost, "/v1/clusters/east/nodes/"+ag.nodeID+"/revoke", map[string]any{"reason": "test"}, &m, nil))
	require.Equal(t, "revoked", m["membership_status"])
	fresh := nodeClient(t, g, ag)
	err = fresh.Do(ctx, http.MethodGet, "/v1/agent/whoami", nil, nil, nil)
	require.Error(t, err)
	// Over HTTP/2 the client's error may only say that the connection could
	// not be established; a bare TLS connection shows the server's refusal.
	require.Contains(t, handshakeRefusal(t, g, ag), "tls", "refused in the handshake: %v", err)
	var revs struct{ Items []map[string]any }
	require.NoError(t, owner.Do(ctx, http.MethodGet, "/v1/clusters/east/revocations", nil, &revs, nil))
	require.Len(t, revs.Items, 2, "both the rotated-away and the current identity are listed")
	for _, r := range revs.Items {
		require.Equal(t, ag.nodeID, r["node_id"])
	}
	var node struct {
		Memberships []map[string]any `json:"memberships"`
	}
	require.NoError(t, owner.Do(ctx, http.MethodGet, "/v1/nodes/"+ag.nodeID, nil, &node, nil))
	status := map[string]string{}
	for _, ms := range node.Memberships {
		status[ms["cluster_id"].(string)] = ms["membership_status"].(string)
	}
	require.Equal(t, map[string]string{east: "revoked", west: "active"}, status)

	// Every step is audited with actor and outcome.
	var aud struct{ Items []map[string]any }
	require.NoError(t, owner.Do(ctx, http.MethodGet, "/v1/audit?limit=500", nil, &aud, nil))
	seen := map[string]bool{}
	for _, e := range aud.Items {
		seen[e["action"].(string)+"/"+e["outcome"].(string)] = true
		if e["action"] == "join_request.approve" && e["outcome"] == "ok" {
			risk, _ := e["risk"].(map[string]any)
			require.Equal(t, "owner_api_token", risk["credential"], "mutations carry the request's risk signals")
			require.NotEmpty(t, e["source_addr"])
		}
	}
	for _, want := range []string{"cluster.create/ok", "join_token.create/ok", "join_request.receive/ok", "join_request.approve/ok", "join_request.approve/failed",
		"certificate.issue/ok", "certificate.renew/ok", "node.revoke/ok", "certificate.revoke/ok"} {
		require.True(t, seen[want], "audit has %s (have %v)", want, seen)
	}
	cp, err := g.Leader(10*time.Second).Auth.CheckpointAudit(ctx, authority.Actor{ID: "test", Kind: "system"})
	require.NoError(t, err)
	res, err := g.DS[0].Auth.VerifyAudit(ctx, &cp)
	require.NoError(t, err)
	require.True(t, res.OK(), "audit chain verifies: %v", res.Break)
}

// E1: many concurrent join requests on one token with max_uses = 3.
func TestE1ConcurrentJoinsConsumeExactlyMaxUses(t *testing.T) {
	g := authtest.New(t, 3)
	ctx := context.Background()
	g.Leader(10 * time.Second)
	owner := g.Client(g.DS...)
	_, pin := mkCluster(t, owner, "east")
	tok := mkToken(t, owner, "east", 3)
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[string]int{}
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			ag := newFakeAgent(fmt.Sprintf("n%d", i), fmt.Sprintf("h%d", i))
			var err error
			for try := 0; try < 50; try++ { // as an agent would: retry while the group is busy or electing (up to ~10 s)
				err = enrollClient(t, g, pin).Do(ctx, http.MethodPost, "/v1/agent/join", ag.joinBody(tok.Token), nil, nil)
				if c := apiCode(err); c != "no_quorum" && c != "unavailable" {
					break
				}
				time.Sleep(200 * time.Millisecond)
			}
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				codes["ok"]++
			} else {
				codes[apiCode(err)]++
			}
		}(i)
	}
	wg.Wait()
	require.Equal(t, 3, codes["ok"], "codes: %v", codes)
	require.Equal(t, 50, codes["ok"]+codes["token_invalid"]+codes["rate_limited"], "codes: %v", codes)
	var n int
	require.NoError(t, g.DS[0].DB.Pool.QueryRow(ctx, `SELECT count(*) FROM node_join_requests`).Scan(&n))
	require.Equal(t, 3, n)
	require.NoError(t, g.DS[0].DB.Pool.QueryRow(ctx, `SELECT used_count FROM node_join_tokens WHERE id = $1`, tok.ID).Scan(&n))
	require.Equal(t, 3, n)
}

// E2 and E3: bad tokens are refused and rate limited, secrets never stored or
// logged; replays create nothing twice; a minority approves nothing.
func TestE2E3BadTokensReplaysAndMinority(t *testing.T) {
	g := authtest.New(t, 3)
	ctx := context.Background()
	l := g.Leader(10 * time.Second)
	owner := g.Client(g.DS...)
	_, eastPin := mkCluster(t, owner, "east")
	_, westPin := mkCluster(t, owner, "west")
	join := func(pin, token string, ag *fakeAgent) error {
		return enrollClient(t, g, pin).Do(ctx, http.MethodPost, "/v1/agent/join", ag.joinBody(token), nil, nil)
	}

	expired := mkToken(t, owner, "east", 5)
	require.NoError(t, l.DB.Fenced(ctx, l.Auth.FenceEpoch(), func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE node_join_tokens SET created_at = now() - interval '2 hours', expires_at = now() - interval '1 hour' WHERE id = $1`, expired.ID)
		return err
	}))
	require.Equal(t, "token_invalid", apiCode(join(eastPin, expired.Token, newFakeAgent("a", "a"))), "expired")

	revoked := mkToken(t, owner, "east", 5)
	require.NoError(t, owner.Do(ctx, http.MethodPost, "/v1/join-tokens/"+revoked.ID+"/revoke", nil, nil, nil))
	require.Equal(t, "token_invalid", apiCode(join(eastPin, revoked.Token, newFakeAgent("b", "b"))), "revoked")

	good := mkToken(t, owner, "east", 5)
	require.Equal(t, "token_invalid", apiCode(join(westPin, good.Token, newFakeAgent("c", "c"))), "wrong cluster")
	require.Equal(t, "token_invalid", apiCode(join(eastPin, "rapjt.not-a-token", newFakeAgent("d", "d"))), "malformed")

	// Malformed input other than the token: a clear 400.
	bad := newFakeAgent("e", "e")
	body := bad.joinBody(good.Token)
	body["public_key"] = []byte("short")
	err := enrollClient(t, g, eastPin).Do(ctx, http.MethodPost, "/v1/agent/join", body, nil, nil)
	require.Equal(t, "invalid_argument", apiCode(err))

	// E3: a resent identical request returns the same request; another poll
	// secret for the same key is a conflict; one row either way.
	good2 := mkToken(t, owner, "east", 5)
	ag := newFakeAgent("replay", "replay")
	var s1, s2 joinStatus
	ec := enrollClient(t, g, eastPin)
	require.NoError(t, ec.Do(ctx, http.MethodPost, "/v1/agent/join", ag.joinBody(good2.Token), &s1, nil))
	require.NoError(t, ec.Do(ctx, http.MethodPost, "/v1/agent/join", ag.joinBody(good2.Token), &s2, nil))
	require.Equal(t, s1.RequestID, s2.RequestID)
	ag.poll = make([]byte, 32)
	require.Equal(t, "conflict", apiCode(ec.Do(ctx, http.MethodPost, "/v1/agent/join", ag.joinBody(good2.Token), nil, nil)))
	var rows, used int
	require.NoError(t, l.DB.Pool.QueryRow(ctx, `SELECT count(*) FROM node_join_requests WHERE node_name = 'replay'`).Scan(&rows))
	require.Equal(t, 1, rows)
	require.NoError(t, l.DB.Pool.QueryRow(ctx, `SELECT used_count FROM node_join_tokens WHERE id = $1`, good2.ID).Scan(&used))
	require.Equal(t, 1, used, "the resent request used the token once")

	// Reject, then approving the rejected request fails cleanly.
	require.NoError(t, owner.Do(ctx, http.MethodPost, "/v1/join-requests/"+s1.RequestID+"/reject", map[string]any{"reason": "unknown host"}, nil, nil))
	require.Equal(t, "conflict", apiCode(owner.Do(ctx, http.MethodPost, "/v1/join-requests/"+s1.RequestID+"/approve", nil, nil, nil)))

	// Approval on a minority authority: no_quorum, nothing written.
	ag3 := newFakeAgent("minority", "minority")
	var s3 joinStatus
	require.NoError(t, ec.Do(ctx, http.MethodPost, "/v1/agent/join", ag3.joinBody(good2.Token), &s3, nil))
	l = g.Leader(5 * time.Second)
	g.Isolate(l)
	onlyOld, err := apiclient.New(apiclient.Options{Servers: []string{l.APIAddr()}, Token: g.Token, CAPin: g.Pin, MaxRedirects: -1})
	require.NoError(t, err)
	err = onlyOld.Do(ctx, http.MethodPost, "/v1/join-requests/"+s3.RequestID+"/approve", nil, nil, nil)
	require.Contains(t, []string{"no_quorum", "not_leader"}, apiCode(err), "err=%v", err)
	var status string
	require.NoError(t, l.DB.Pool.QueryRow(ctx, `SELECT status FROM node_join_requests WHERE id = $1`, s3.RequestID).Scan(&status))
	require.Equal(t, "pending", status)
	g.Heal()
	nl := g.Leader(10 * time.Second)
	g.Eventually(10*time.Second, "one leader after heal", func() bool {
		for _, d := range g.DS {
			if d != nl && d.Raft.IsLeader() {
				return false
			}
		}
		return true
	})

	// Brute force (last: it blocks this source): wrong secrets for a known
	// token id get rate limited.
	parsed, err := jointoken.Parse(good.Token)
	require.NoError(t, err)
	var last string
	for i := 0; i < 15; i++ {
		guess := jointoken.Token{ID: parsed.ID, Secret: make([]byte, 32)}
		guess.Secret[0] = byte(i)
		last = apiCode(join(eastPin, guess.String(), newFakeAgent(fmt.Sprintf("bf%d", i), "bf")))
	}
	require.Equal(t, "rate_limited", last)
	// The attack did not consume the token.
	require.NoError(t, l.DB.Pool.QueryRow(ctx, `SELECT used_count FROM node_join_tokens WHERE id = $1`, good.ID).Scan(&used))
	require.Zero(t, used)

	// No plaintext token secret anywhere in the database or the logs.
	secrets := []string{}
	for _, tk := range []tokenResp{expired, revoked, good, good2} {
		p, err := jointoken.Parse(tk.Token)
		require.NoError(t, err)
		secrets = append(secrets, tk.Token, base64.RawURLEncoding.EncodeToString(p.Secret), hex.EncodeToString(p.Secret), base64.StdEncoding.EncodeToString(p.Secret))
	}
	dump := dumpDatabase(t, l)
	logs := g.Logs.String()
	for _, s := range secrets {
		require.NotContains(t, dump, s, "database holds a token secret")
		require.NotContains(t, logs, s, "logs hold a token secret")
	}
	require.NotContains(t, logs, g.Token)
}

// dumpDatabase renders every row of every table as text.
func dumpDatabase(t *testing.T, d *daemon.Daemon) string {
	ctx := context.Background()
	rows, err := d.DB.Pool.Query(ctx, `SELECT tablename FROM pg_tables WHERE schemaname = 'public'`)
	require.NoError(t, err)
	var tables []string
	for rows.Next() {
		var n string
		require.NoError(t, rows.Scan(&n))
		tables = append(tables, n)
	}
	rows.Close()
	var b strings.Builder
	for _, tb := range tables {
		r, err := d.DB.Pool.Query(ctx, `SELECT row_to_json(x)::text FROM `+pgx.Identifier{tb}.Sanitize()+` x`)
		require.NoError(t, err)
		for r.Next() {
			var s string
			require.NoError(t, r.Scan(&s))
			b.WriteString(s)
			b.WriteByte('\n')
		}
		r.Close()
	}
	require.Greater(t, b.Len(), 1000)
	return b.String()
}
