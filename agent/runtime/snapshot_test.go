package runtime

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"encoding/pem"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/agent/identity"
	"github.com/rap-fabric/core/agent/state"
	"github.com/rap-fabric/core/agentapi"
	"github.com/rap-fabric/core/domain"
	"github.com/rap-fabric/core/pki"
	"github.com/rap-fabric/core/snapshot"
)

const (
	tCluster = "c1"
	tNode    = "n1"
)

// testClock is an injected, settable clock.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *testClock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

// testCA is one cluster CA key with its certificate.
type testCA struct {
	key  ed25519.PrivateKey
	der  []byte
	cert *x509.Certificate
}

func newTestCA(t *testing.T, now time.Time) testCA {
	key, der, err := pki.NewCA(nil, tCluster, now.Add(-time.Hour), 365*24*time.Hour)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return testCA{key: key, der: der, cert: cert}
}

func (c testCA) pub() ed25519.PublicKey { return c.key.Public().(ed25519.PublicKey) }

func pemCert(der []byte) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// fakeCA is a tiny fake of the authority's /v1/agent/ca over pinned TLS
// (the only authority call the offer path makes: on an unknown key).
type fakeCA struct {
	srv *httptest.Server
	mu  sync.Mutex
	ans trustedCAWire
	hit int
	// renew, when set, answers POST /v1/agent/certificate (caroots_test.go).
	renew func(agentapi.RenewRequest) (agentapi.RenewedCert, error)
}

func newFakeCA(t *testing.T, tlsCA testCA, now time.Time) *fakeCA {
	f := &fakeCA{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+pathCA, func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
			http.Error(w, `{"error":{"code":"unauthenticated","message":"no client certificate"}}`, http.StatusUnauthorized)
			return
		}
		f.mu.Lock()
		f.hit++
		ans := f.ans
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(ans)
	})
	mux.HandleFunc("POST "+pathRenew, func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		renew := f.renew
		f.mu.Unlock()
		var req agentapi.RenewRequest
		if renew == nil || json.NewDecoder(r.Body).Decode(&req) != nil {
			http.Error(w, `{"error":{"code":"not_found","message":"no renewal here"}}`, http.StatusNotFound)
			return
		}
		rc, err := renew(req)
		if err != nil {
			http.Error(w, `{"error":{"code":"internal","message":"renewal failed"}}`, http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(rc)
	})
	srvPub, srvKey, err := ed25519.GenerateKey(nil)
	require.NoError(t, err)
	der, err := pki.IssueServerCert(nil, tlsCA.key, tlsCA.der, srvPub, nil, []net.IP{net.ParseIP("127.0.0.1")}, now, 24*time.Hour)
	require.NoError(t, err)
	f.srv = httptest.NewUnstartedServer(mux)
	f.srv.TLS = &tls.Config{MinVersion: tls.VersionTLS13, ClientAuth: tls.RequireAnyClientCert,
		Certificates: []tls.Certificate{{Certificate: [][]byte{der, tlsCA.der}, PrivateKey: srvKey}}}
	f.srv.StartTLS()
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeCA) set(current []testCA, rotated ...testCA) {
	var a trustedCAWire
	a.ClusterID = tCluster
	for _, c := range current {
		a.Keys = append(a.Keys, agentapi.CAKey{KeyID: snapshot.KeyID(c.pub()), PublicKey: c.pub()})
	}
	for _, c := range rotated {
		a.Rotated = append(a.Rotated, agentapi.CAKey{KeyID: snapshot.KeyID(c.pub())})
	}
	if len(current) > 0 {
		a.CACert = current[0].der
	}
	f.mu.Lock()
	f.ans = a
	f.mu.Unlock()
}

func (f *fakeCA) hits() int { f.mu.Lock(); defer f.mu.Unlock(); return f.hit }

// snapFixture is one node's state file, identity and fake authority.
type snapFixture struct {
	t     *testing.T
	path  string
	clock *testClock
	ca    testCA
	fake  *fakeCA
	st    *state.Store
	m     *member
	// reasons are the refusal reasons seen by refused.
	reasons map[string]bool
}

func newSnapFixture(t *testing.T) *snapFixture {
	now := time.Now().UTC().Truncate(time.Second) // real certificates are checked against the wall clock too
	f := &snapFixture{t: t, path: filepath.Join(t.TempDir(), "state.db"), clock: &testClock{now: now}, reasons: map[string]bool{}}
	f.ca = newTestCA(t, now)
	f.fake = newFakeCA(t, f.ca, now)
	f.fake.set([]testCA{f.ca})
	keys, err := identity.GenerateKeys(bytes.NewReader(bytes.Repeat([]byte{7}, 64)))
	require.NoError(t, err)
	certDER, _, err := pki.IssueNodeCert(nil, f.ca.key, f.ca.der, pki.NodeCertRequest{ClusterID: tCluster, NodeID: tNode, NodeName: "edge",
		PublicKey: keys.SigningPublic(), NotBefore: now, Lifetime: 30 * 24 * time.Hour})
	require.NoError(t, err)
	st, err := state.Open(f.path, state.Options{Clock: f.clock})
	require.NoError(t, err)
	require.NoError(t, st.PutIdentity(tCluster, state.Identity{NodeID: tNode, ClusterID: tCluster, SigningKey: keys.Signing, NoiseKey: keys.NoisePrivateBytes(),
		CertificatePEM: pemCert(certDER), CAPEM: pemCert(f.ca.der), CAPin: identity.CAPin(f.ca.cert), AuthorityURLs: []string{f.fake.srv.Listener.Addr().String()}}))
	require.NoError(t, st.PutMembership(tCluster, state.Membership{ClusterID: tCluster, NodeID: tNode, Status: domain.MembershipActive}))
	require.NoError(t, st.Close())
	f.open()
	return f
}

// open opens the state file and builds the membership as `run` does.
func (f *snapFixture) open() {
	st, err := state.Open(f.path, state.Options{Clock: f.clock})
	require.NoError(f.t, err)
	a := NewAgent(st, RunOptions{Now: f.clock.Now, RequestTimeout: 5 * time.Second, Logger: hclog.NewNullLogger(), Mesh: MeshOptions{Disabled: true}})
	id, err := st.Identity(tCluster)
	require.NoError(f.t, err)
	m, err := newMember(a, tCluster, id)
	require.NoError(f.t, err)
	f.st, f.m = st, m
	f.t.Cleanup(func() { _ = st.Close() })
}

// restart closes the state file (as a killed agent would leave it) and
// reopens it with a fresh membership that restores the stored snapshot, as
// the snapshot loop does first.
func (f *snapFixture) restart() {
	f.m.mu.Lock()
	f.m.client.Close()
	f.m.mu.Unlock()
	require.NoError(f.t, f.st.Close())
	f.open()
	f.m.restoreSnapshot(hclog.NewNullLogger())
}

// build returns a base snapshot of version v for node, valid for ttl from
// the fixture's clock.
func (f *snapFixture) build(node string, v uint64, ttl time.Duration) snapshot.Snapshot {
	now := f.clock.Now()
	return snapshot.Snapshot{ClusterID: tCluster, NodeID: node, Version: v, Epoch: 1, IssuedAt: now, ExpiresAt: now.Add(ttl), Scope: []string{snapshot.ScopeBase},
		Body: snapshot.Body{Self: snapshot.Identity{NodeID: node, IdentityStatus: domain.IdentityActive},
			Membership: snapshot.Membership{ClusterID: tCluster, Status: domain.MembershipActive}}}
}

func wire(t *testing.T, s snapshot.Snapshot, key ed25519.PrivateKey) []byte {
	signed, err := snapshot.Sign(s, key, 0)
	require.NoError(t, err)
	raw, err := signed.MarshalBinary()
	require.NoError(t, err)
	return raw
}

// offer feeds raw to the agent's apply path (what a long poll or a
// config-storage fetch does with what it received).
func (f *snapFixture) offer(raw []byte, hint uint64) bool {
	return f.m.offer(context.Background(), raw, hint, "authority", hclog.NewNullLogger())
}

func (f *snapFixture) status() SnapshotStatus {
	s := f.m.snapshotStatus()
	require.NotNil(f.t, s)
	return *s
}

// refused offers raw and checks that it is refused with reason, that the
// rejected count grew by one and that the last good snapshot is kept.
func (f *snapFixture) refused(raw []byte, hint uint64, reason string) {
	f.t.Helper()
	before := f.status()
	applied, err := f.st.AppliedVersion(tCluster)
	require.NoError(f.t, err)
	require.False(f.t, f.offer(raw, hint), "offer must be refused (%s)", reason)
	st := f.status()
	require.Equal(f.t, reason, st.LastRejectReason, "detail: %s", st.LastRejectDetail)
	f.reasons[st.LastRejectReason] = true
	require.Equal(f.t, before.Rejected+1, st.Rejected)
	require.Equal(f.t, before.AppliedVersion, st.AppliedVersion, "the last good snapshot is kept")
	after, err := f.st.AppliedVersion(tCluster)
	require.NoError(f.t, err)
	require.Equal(f.t, applied, after, "nothing refused is persisted")
}

// TestSnapshotVerificationOnTheAgent drives the agent's snapshot apply path
// (member.offer: verify, persist the version in bbolt, apply) with snapshots
// signed by a test CA key: v1 and v2 apply, a restart keeps v2 and refuses
// v1 and v2 again, and every kind of bad snapshot is refused with its own
// reason in the status while the last good one stays applied.
func TestSnapshotVerificationOnTheAgent(t *testing.T) {
	f := newSnapFixture(t)
	v1 := wire(t, f.build(tNode, 1, time.Hour), f.ca.key)
	v2 := wire(t, f.build(tNode, 2, time.Hour), f.ca.key)

	require.True(t, f.offer(v1, 1))
	require.True(t, f.offer(v2, 2))
	st := f.status()
	require.Equal(t, uint64(2), st.AppliedVersion)
	require.Equal(t, "authority", st.Source)
	require.Zero(t, st.Rejected)
	require.False(t, st.Stale)
	v, err := f.st.AppliedVersion(tCluster)
	require.NoError(t, err)
	require.Equal(t, uint64(2), v, "persisted before use")

	// Replays without a restart.
	f.refused(v1, 1, snapshot.ReasonStaleVersion)
	f.refused(v2, 2, snapshot.ReasonStaleVersion)

	// Restart: close and reopen the bbolt state; the stored snapshot is
	// current again and v1, v2 are refused as stale.
	f.restart()
	st = f.status()
	require.Equal(t, uint64(2), st.AppliedVersion)
	require.Equal(t, "state-file", st.Source)
	require.Zero(t, st.Rejected)
	f.refused(v1, 1, snapshot.ReasonStaleVersion)
	f.refused(v2, 2, snapshot.ReasonStaleVersion)

	// Another node's snapshot (valid signature, newer version).
	f.refused(wire(t, f.build("n2", 3, time.Hour), f.ca.key), 3, snapshot.ReasonWrongNode)

	// One tampered byte in the signed payload.
	good3 := wire(t, f.build(tNode, 3, time.Hour), f.ca.key)
	bad := bytes.Clone(good3)
	i := bytes.Index(bad, []byte(`"version":3`))
	require.Positive(t, i)
	bad[i+len(`"version":`)] = '4'
	f.refused(bad, 4, snapshot.ReasonBadSignature)

	// Truncated.
	f.refused(good3[:len(good3)-10], 3, snapshot.ReasonMalformed)

	// Oversized: a body above the limit, and a header that lies about a
	// 4 GiB payload behind a few bytes (refused before anything is
	// allocated for it).
	huge := f.build(tNode, 5, time.Hour)
	huge.Body.Self.Name = strings.Repeat("x", int(snapshot.DefaultMaxSize))
	payload, err := snapshot.Encode(huge)
	require.NoError(t, err)
	over, err := snapshot.Signed{Payload: payload, KeyID: snapshot.KeyID(f.ca.pub()), Signature: ed25519.Sign(f.ca.key, payload)}.MarshalBinary()
	require.NoError(t, err)
	f.refused(over, 5, snapshot.ReasonTooLarge)
	liar := bytes.Clone(good3[:len(good3)-len(mustSigned(t, good3).Payload)])
	binary.BigEndian.PutUint32(liar[len(liar)-4:], 0xFFFFFFF0)
	f.refused(append(liar, '{'), 6, snapshot.ReasonTooLarge)

	// Expired on arrival: refused, the last good one stays.
	f.refused(wire(t, f.build(tNode, 7, -time.Minute), f.ca.key), 7, snapshot.ReasonExpired)
	require.Equal(t, uint64(2), f.status().AppliedVersion)

	// Key rotation: the cluster moves to a new CA key. A snapshot signed by
	// it names an unknown key; the agent asks /v1/agent/ca, learns the new
	// key (the old one listed as rotated out) and applies it. The new CA
	// certificate is stored, so a restart still trusts it.
	newCA := newTestCA(t, f.clock.Now())
	f.fake.set([]testCA{newCA}, f.ca)
	require.True(t, f.offer(wire(t, f.build(tNode, 8, time.Hour), newCA.key), 8))
	require.Equal(t, 1, f.fake.hits())
	require.Equal(t, uint64(8), f.status().AppliedVersion)
	id, err := f.st.Identity(tCluster)
	require.NoError(t, err)
	require.Equal(t, pemCert(newCA.der), id.CAPEM, "the new CA certificate is stored")

	// A snapshot signed by the rotated-out key is refused (after asking the
	// authority once more: it still lists the key as rotated out).
	f.refused(wire(t, f.build(tNode, 9, time.Hour), f.ca.key), 9, snapshot.ReasonUnknownKey)
	require.Equal(t, 2, f.fake.hits())
	require.Contains(t, f.status().LastRejectDetail, snapshot.KeyID(f.ca.pub()))

	// After a restart the stored CA certificate is trusted without asking,
	// and the rotated-out key still is not (the authority is gone now).
	f.fake.srv.Close()
	f.restart()
	require.Equal(t, uint64(8), f.status().AppliedVersion)
	f.refused(wire(t, f.build(tNode, 9, time.Hour), f.ca.key), 9, snapshot.ReasonUnknownKey)
	require.True(t, f.offer(wire(t, f.build(tNode, 10, time.Hour), newCA.key), 10))

	// The applied snapshot expires: the node keeps running on it, marked
	// stale, and the status says so.
	f.clock.Set(f.clock.Now().Add(2 * time.Hour))
	f.m.checkStale(hclog.NewNullLogger())
	st = f.status()
	require.True(t, st.Stale)
	require.Equal(t, uint64(10), st.AppliedVersion, "last good kept")
	var buf bytes.Buffer
	writeSnapshotLine(&buf, &st)
	require.Contains(t, buf.String(), "STALE")
	require.Contains(t, buf.String(), "v10 from authority")
	require.Contains(t, buf.String(), "last refused: unknown_key")

	// Seven kinds of refusal, seven distinct reasons.
	require.Equal(t, map[string]bool{snapshot.ReasonStaleVersion: true, snapshot.ReasonWrongNode: true, snapshot.ReasonBadSignature: true,
		snapshot.ReasonMalformed: true, snapshot.ReasonTooLarge: true, snapshot.ReasonExpired: true, snapshot.ReasonUnknownKey: true}, f.reasons)
}

func mustSigned(t *testing.T, raw []byte) snapshot.Signed {
	s, err := snapshot.Unmarshal(raw, 0)
	require.NoError(t, err)
	return s
}
