package authority

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/fsm"
	"github.com/rap-fabric/core/pki"
	"github.com/rap-fabric/core/store"
)

// caEnv is one cluster with one member in a migrated database and a
// standalone FSM the test applies cluster CA commands to.
type caEnv struct {
	t       *testing.T
	db      *store.DB
	f       *fsm.FSM
	cluster string
	nodes   []string
	now     time.Time
	idx     uint64
}

func newCAEnv(t *testing.T) *caEnv {
	db, _, cluster, nodes := hbDB(t, 1)
	return &caEnv{t: t, db: db, f: fsm.New(fsm.Options{}), cluster: cluster, nodes: nodes, now: time.Now()}
}

// apply applies c as the next Raft log entry.
func (e *caEnv) apply(c fsm.Command) {
	e.t.Helper()
	data, err := fsm.Encode("", c)
	require.NoError(e.t, err)
	e.idx++
	require.NoError(e.t, e.f.Apply(&raft.Log{Index: e.idx, Term: 1, Type: raft.LogCommand, Data: data}).(fsm.Result).Err)
}

// newRoot makes a cluster CA root valid from an hour ago for a day.
func (e *caEnv) newRoot() (ed25519.PrivateKey, []byte, string) {
	priv, der, err := pki.NewCA(rand.Reader, e.cluster, e.now.Add(-time.Hour), 24*time.Hour)
	require.NoError(e.t, err)
	return priv, der, keyID(priv.Public().(ed25519.PublicKey))
}

// issue has the root (key, caDER) certify a fresh key for the cluster's
// first member, valid from a minute ago for an hour.
func (e *caEnv) issue(key ed25519.PrivateKey, caDER []byte) *x509.Certificate {
	e.t.Helper()
	nodePub, _, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(e.t, err)
	der, _, err := pki.IssueNodeCert(rand.Reader, key, caDER, pki.NodeCertRequest{ClusterID: e.cluster, NodeID: e.nodes[0], NodeName: "n0",
		PublicKey: nodePub, NotBefore: e.now.Add(-time.Minute), Lifetime: time.Hour})
	require.NoError(e.t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(e.t, err)
	return cert
}

// TestRetiredRootRefusedAndUncached: a node certificate of a cluster CA root
// verifies (with its issuing key id) during the overlap; once the root is
// retired the full check refuses it with ca_retired, a cached
// authentication of it is no longer served, and dropRetiredAuth removes it.
func TestRetiredRootRefusedAndUncached(t *testing.T) {
	e := newCAEnv(t)
	db, f, cluster, now, apply, newRoot := e.db, e.f, e.cluster, e.now, e.apply, e.newRoot
	nodes := e.nodes
	oldKey, oldDER, oldID := newRoot()
	apply(fsm.CreateClusterCA{ClusterID: cluster, KeyID: oldID, PublicKey: oldKey.Public().(ed25519.PublicKey), SealedPrivateKey: []byte("sealed"), CertDER: oldDER, At: now})
	a, err := New(Config{NodeID: "a1"}, nil, f, db)
	require.NoError(t, err)
	h := NewHeartbeats(a, HeartbeatConfig{AuthCacheTTL: time.Hour}, nil)
	cert := e.issue(oldKey, oldDER)

	kid, err := a.verifyNodeCertRoots(cert, cluster)
	require.NoError(t, err)
	require.Equal(t, oldID, kid)

	// Rotate: the old root stays trusted (overlap).
	newKey, newDER, newID := newRoot()
	apply(fsm.RotateClusterCA{ClusterID: cluster, KeyID: newID, PublicKey: newKey.Public().(ed25519.PublicKey), SealedPrivateKey: []byte("sealed"), CertDER: newDER, At: now})
	kid, err = a.verifyNodeCertRoots(cert, cluster)
	require.NoError(t, err)
	require.Equal(t, oldID, kid)
	ca, _ := f.ClusterCA(cluster)
	roots := a.caRoots(cluster)
	require.Len(t, roots, 2)
	require.Equal(t, oldID, ca.Publishing().KeyID)

	// A cached authentication of the old-root certificate.
	key := sha256.Sum256(cert.Raw)
	h.auth[key] = &authEntry{p: NodePrincipal{ClusterID: cluster, NodeID: nodes[0], Serial: "01", CAKeyID: oldID}, notAfter: cert.NotAfter, checked: now}
	_, ok := h.CachedPrincipal(cert, "192.0.2.1:1")
	require.True(t, ok, "served from the cache during the overlap")

	// Retire the old root.
	apply(fsm.RetireClusterCA{ClusterID: cluster, KeyID: oldID, At: now})
	_, err = a.verifyNodeCertRoots(cert, cluster)
	require.Equal(t, CodeCARetired, CodeOf(err))
	_, err = a.AuthenticateNode(context.Background(), cert, "")
	require.Equal(t, CodeCARetired, CodeOf(err))
	_, ok = h.CachedPrincipal(cert, "192.0.2.1:1")
	require.False(t, ok, "a retired root's cached authentication is not served")
	_, err = h.Authenticate(context.Background(), cert, "192.0.2.1:1")
	require.Equal(t, CodeCARetired, CodeOf(err))
	h.auth[key] = &authEntry{p: NodePrincipal{ClusterID: cluster, NodeID: nodes[0], Serial: "01", CAKeyID: oldID}, notAfter: cert.NotAfter, checked: now}
	h.dropRetiredAuth()
	require.Empty(t, h.auth)
	require.Len(t, a.caRoots(cluster), 1)
	require.Equal(t, newID, a.caRoots(cluster)[0].KeyID)
}

// TestRenewalIssuingRoot: outside a rotation every renewal comes from the
// one root; during the overlap a renewal is issued by the new (current)
// root only for a node that names it among its pinned roots (it moved its
// pins from a signed snapshot), by the publishing (old) root otherwise;
// after retirement by the new root.
func TestRenewalIssuingRoot(t *testing.T) {
	e := newCAEnv(t)
	db, f, cluster, now, apply, newRoot := e.db, e.f, e.cluster, e.now, e.apply, e.newRoot
	oldKey, oldDER, oldID := newRoot()
	apply(fsm.CreateClusterCA{ClusterID: cluster, KeyID: oldID, PublicKey: oldKey.Public().(ed25519.PublicKey), SealedPrivateKey: []byte("sealed"), CertDER: oldDER, At: now})
	a, err := New(Config{NodeID: "a1"}, nil, f, db)
	require.NoError(t, err)
	require.False(t, a.issuingRootFor(cluster, nil), "publishing = current: either way the one root")
	require.True(t, a.issuingRootFor(cluster, []string{oldID}))

	newKey, newDER, newID := newRoot()
	apply(fsm.RotateClusterCA{ClusterID: cluster, KeyID: newID, PublicKey: newKey.Public().(ed25519.PublicKey), SealedPrivateKey: []byte("sealed"), CertDER: newDER, At: now})
	require.False(t, a.issuingRootFor(cluster, nil), "an agent that names no roots gets the old root it pins")
	require.False(t, a.issuingRootFor(cluster, []string{oldID}), "nor one that pins only the old root")
	require.True(t, a.issuingRootFor(cluster, []string{newID, oldID}), "one that moved its pins gets the new root")
	require.False(t, a.issuingRootFor("no-such-cluster", []string{newID}))

	apply(fsm.RetireClusterCA{ClusterID: cluster, KeyID: oldID, At: now})
	ca, _ := f.ClusterCA(cluster)
	require.Equal(t, newID, ca.Publishing().KeyID, "after retirement the new root publishes and issues")
	require.True(t, a.issuingRootFor(cluster, []string{newID}))
}

// TestNodeCertChainRemembered: a node certificate's chain is verified once
// per root and then remembered: repeated authentications run no chain check;
// a root that did not sign it is remembered as such after a rotation; the
// root's retirement is still refused at once (status is read every time); a
// certificate past its end is refused although it verified before; a
// certificate of a foreign CA is refused, and so is a changed copy of a good
// certificate (another hash).
func TestNodeCertChainRemembered(t *testing.T) {
	e := newCAEnv(t)
	db, f, cluster, now, apply, newRoot := e.db, e.f, e.cluster, e.now, e.apply, e.newRoot
	clock := now
	oldKey, oldDER, oldID := newRoot()
	apply(fsm.CreateClusterCA{ClusterID: cluster, KeyID: oldID, PublicKey: oldKey.Public().(ed25519.PublicKey), SealedPrivateKey: []byte("sealed"), CertDER: oldDER, At: now})
	a, err := New(Config{NodeID: "a1", Clock: func() time.Time { return clock }}, nil, f, db)
	require.NoError(t, err)
	issue := e.issue
	verifies := func() int64 {
		a.chains.mu.RLock()
		defer a.chains.mu.RUnlock()
		return a.chains.verifies
	}
	cert := issue(oldKey, oldDER)
	for range 3 {
		kid, err := a.verifyNodeCertRoots(cert, cluster)
		require.NoError(t, err)
		require.Equal(t, oldID, kid)
	}
	require.EqualValues(t, 1, verifies(), "one chain check for three authentications")

	// After a rotation the new (current) root is tried first: it did not
	// sign the certificate, which is remembered too.
	newKey, newDER, newID := newRoot()
	apply(fsm.RotateClusterCA{ClusterID: cluster, KeyID: newID, PublicKey: newKey.Public().(ed25519.PublicKey), SealedPrivateKey: []byte("sealed"), CertDER: newDER, At: now})
	for range 3 {
		kid, err := a.verifyNodeCertRoots(cert, cluster)
		require.NoError(t, err)
		require.Equal(t, oldID, kid)
	}
	require.EqualValues(t, 2, verifies())

	// A foreign CA's certificate, and a good certificate with one byte of
	// its signature changed: refused, each a chain check of its own.
	foreignKey, foreignDER, _ := newRoot()
	_, err = a.verifyNodeCertRoots(issue(foreignKey, foreignDER), cluster)
	require.Equal(t, CodeUnauthorized, CodeOf(err))
	forged := issue(newKey, newDER)
	raw := append([]byte(nil), forged.Raw...)
	raw[len(raw)-1] ^= 1
	forgedCert, err := x509.ParseCertificate(raw)
	require.NoError(t, err)
	_, err = a.verifyNodeCertRoots(forgedCert, cluster)
	require.Equal(t, CodeUnauthorized, CodeOf(err))
	before := verifies()
	_, err = a.verifyNodeCertRoots(forgedCert, cluster)
	require.Equal(t, CodeUnauthorized, CodeOf(err))
	require.Equal(t, before, verifies(), "a root that did not sign it is remembered")

	// Retirement is read from the state every time.
	apply(fsm.RetireClusterCA{ClusterID: cluster, KeyID: oldID, At: now})
	_, err = a.verifyNodeCertRoots(cert, cluster)
	require.Equal(t, CodeCARetired, CodeOf(err))

	// Past the certificate's end: refused although it verified before.
	good := issue(newKey, newDER)
	_, err = a.verifyNodeCertRoots(good, cluster)
	require.NoError(t, err)
	clock = now.Add(2 * time.Hour)
	_, err = a.verifyNodeCertRoots(good, cluster)
	require.Equal(t, CodeUnauthorized, CodeOf(err))
}
