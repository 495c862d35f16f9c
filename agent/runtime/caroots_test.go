package runtime

import (
	"bytes"
	"context"
	"crypto/x509"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/agent/identity"
	"github.com/rap-fabric/core/agentapi"
	"github.com/rap-fabric/core/pki"
	"github.com/rap-fabric/core/snapshot"
)

// caRoots lists active as the active root and previous as previous ones,
// as the authority's snapshots carry them.
func caRoots(active testCA, previous ...testCA) []snapshot.CARoot {
	out := []snapshot.CARoot{{KeyID: snapshot.KeyID(active.pub()), Status: snapshot.CARootActive, Certificate: active.der}}
	for _, p := range previous {
		out = append(out, snapshot.CARoot{KeyID: snapshot.KeyID(p.pub()), Status: snapshot.CARootPrevious, Certificate: p.der})
	}
	return out
}

func (f *snapFixture) storedRoots() []string {
	id, err := f.st.Identity(tCluster)
	require.NoError(f.t, err)
	var out []string
	for _, r := range id.CARoots {
		out = append(out, r.KeyID)
	}
	return out
}

// TestCAPinsMoveWithVerifiedSnapshots drives a node through a cluster CA
// rotation on its snapshot path: ca_roots in a snapshot it cannot verify
// (signed by an unpinned key, or tampered with) and ca_roots that drop the
// key that signed them change nothing; the overlap snapshot (signed by the
// old root, naming the new one active) moves the pins — persisted, both
// roots accepted for snapshots and in the API clients' chains — and asks
// for an early renewal, which names the pinned roots and accepts a
// certificate of the new root (one of an unpinned root is refused); the
// retirement snapshot (signed by the new root, naming it alone) drops the
// old root, also after a restart.
func TestCAPinsMoveWithVerifiedSnapshots(t *testing.T) {
	f := newSnapFixture(t)
	ctx := context.Background()
	log := hclog.NewNullLogger()
	old := f.ca
	newCA := newTestCA(t, f.clock.Now())
	evil := newTestCA(t, f.clock.Now())
	oldID, newID := snapshot.KeyID(old.pub()), snapshot.KeyID(newCA.pub())
	require.Equal(t, []string{identity.CAPin(old.cert)}, f.m.pins(), "before any ca_roots: the join pin")
	f.m.sn() // the snapshot loop's state, as the loop starts it

	// Unverified roots are ignored: signed by a key the node does not pin
	// (a root vouching for itself) …
	s := f.build(tNode, 1, time.Hour)
	s.Body.CARoots = caRoots(evil)
	f.refused(wire(t, s, evil.key), 1, snapshot.ReasonUnknownKey)
	// … or by the pinned root but tampered with.
	s = f.build(tNode, 2, time.Hour)
	s.Body.CARoots = caRoots(evil, old)
	raw := wire(t, s, old.key)
	i := bytes.Index(raw, []byte(`"version":2`))
	require.Positive(t, i)
	raw[i+len(`"version":`)] = '3'
	f.refused(raw, 3, snapshot.ReasonBadSignature)
	require.Empty(t, f.storedRoots())
	require.Equal(t, []string{identity.CAPin(old.cert)}, f.m.pins())
	// A verified snapshot whose roots leave out the key that signed it:
	// applied, the pins stay.
	s = f.build(tNode, 3, time.Hour)
	s.Body.CARoots = caRoots(evil)
	require.True(t, f.offer(wire(t, s, old.key), 3))
	require.Empty(t, f.storedRoots())
	require.False(t, f.m.earlyRenewal())
	_, trusted := f.m.trustedKeys()[snapshot.KeyID(evil.pub())]
	require.False(t, trusted)

	// The overlap: signed by the old root, the new one active.
	s = f.build(tNode, 4, time.Hour)
	s.Body.CARoots = caRoots(newCA, old)
	require.True(t, f.offer(wire(t, s, old.key), 4))
	require.Equal(t, []string{newID, oldID}, f.storedRoots(), "persisted, the active root first")
	require.ElementsMatch(t, []string{identity.CAPin(old.cert), identity.CAPin(newCA.cert)}, f.m.pins())
	require.Contains(t, f.m.trustedKeys(), oldID)
	require.Contains(t, f.m.trustedKeys(), newID)
	require.True(t, f.m.earlyRenewal(), "the certificate is of the old root: renew early")
	// A snapshot of the new root verifies without asking the authority.
	hits := f.fake.hits()
	s = f.build(tNode, 5, time.Hour)
	s.Body.CARoots = caRoots(newCA, old)
	require.True(t, f.offer(wire(t, s, newCA.key), 5))
	require.Equal(t, hits, f.fake.hits())

	issue := func(ca testCA) func(agentapi.RenewRequest) (agentapi.RenewedCert, error) {
		return func(agentapi.RenewRequest) (agentapi.RenewedCert, error) {
			der, serial, err := pki.IssueNodeCert(nil, ca.key, ca.der, pki.NodeCertRequest{ClusterID: tCluster, NodeID: tNode, NodeName: "edge",
				PublicKey: f.m.keys.SigningPublic(), NotBefore: f.clock.Now(), Lifetime: 30 * 24 * time.Hour})
			return agentapi.RenewedCert{Serial: serial, Certificate: der, CACert: ca.der}, err
		}
	}
	// An authority that still issues from the old root: the renewal is
	// kept, the early renewal is not repeated for this root.
	f.fake.mu.Lock()
	f.fake.renew = issue(old)
	f.fake.mu.Unlock()
	require.NoError(t, f.m.renew(ctx))
	f.m.renewedEarly(log)
	require.False(t, f.m.earlyRenewal())
	s = f.build(tNode, 6, time.Hour)
	s.Body.CARoots = caRoots(newCA, old)
	require.True(t, f.offer(wire(t, s, newCA.key), 6))
	require.False(t, f.m.earlyRenewal(), "not asked again for the same root")

	// The renewal names the pinned roots; a certificate of the new root
	// is accepted and stored.
	var named []string
	f.fake.mu.Lock()
	f.fake.renew = func(r agentapi.RenewRequest) (agentapi.RenewedCert, error) {
		named = r.TrustedRoots
		return issue(newCA)(r)
	}
	f.fake.mu.Unlock()
	require.NoError(t, f.m.renew(ctx))
	require.ElementsMatch(t, []string{newID, oldID}, named)
	require.NoError(t, f.m.cert.CheckSignatureFrom(newCA.cert))
	id, err := f.st.Identity(tCluster)
	require.NoError(t, err)
	stored, err := identity.ParseCertificatePEM([]byte(id.CertificatePEM))
	require.NoError(t, err)
	require.NoError(t, stored.CheckSignatureFrom(newCA.cert), "the new-root certificate is persisted")
	// One of a root the node does not pin is refused.
	f.fake.mu.Lock()
	f.fake.renew = issue(evil)
	f.fake.mu.Unlock()
	require.ErrorIs(t, f.m.renew(ctx), ErrBadEnrollment)
	require.NoError(t, f.m.cert.CheckSignatureFrom(newCA.cert), "the good certificate is kept")

	// Retirement: the new root alone; the old one is no longer pinned.
	s = f.build(tNode, 7, time.Hour)
	s.Body.CARoots = caRoots(newCA)
	require.True(t, f.offer(wire(t, s, newCA.key), 7))
	require.Equal(t, []string{newID}, f.storedRoots())
	require.Equal(t, []string{identity.CAPin(newCA.cert)}, f.m.pins())
	f.refused(wire(t, f.build(tNode, 8, time.Hour), old.key), 8, snapshot.ReasonUnknownKey)
	pool := f.m.rootPool()
	_, err = f.m.cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	require.NoError(t, err, "peers' new-root certificates verify")

	// A restart keeps the pins from the state file.
	f.restart()
	require.Equal(t, []string{identity.CAPin(newCA.cert)}, f.m.pins())
	require.Equal(t, uint64(7), f.status().AppliedVersion)
	f.refused(wire(t, f.build(tNode, 9, time.Hour), old.key), 9, snapshot.ReasonUnknownKey)
	require.True(t, f.offer(wire(t, f.build(tNode, 10, time.Hour), newCA.key), 10))
}

// TestNextCARoots: the checks on a verified snapshot's ca_roots before they
// become pins.
func TestNextCARoots(t *testing.T) {
	now := time.Now()
	a, b := newTestCA(t, now), newTestCA(t, now)
	aID, bID := snapshot.KeyID(a.pub()), snapshot.KeyID(b.pub())
	got, err := nextCARoots(tCluster, aID, caRoots(b, a))
	require.NoError(t, err)
	require.Len(t, got, 2)
	require.Equal(t, bID, got[0].KeyID)
	require.True(t, got[0].Active)
	require.False(t, got[1].Active)

	otherKey, otherDER, err := pki.NewCA(nil, "another-cluster", now, time.Hour)
	require.NoError(t, err)
	otherCert, err := x509.ParseCertificate(otherDER)
	require.NoError(t, err)
	other := testCA{key: otherKey, der: otherDER, cert: otherCert}
	leaf, _, err := pki.IssueNodeCert(nil, a.key, a.der, pki.NodeCertRequest{ClusterID: tCluster, NodeID: tNode, NodeName: "x", PublicKey: b.pub(),
		NotBefore: now, Lifetime: time.Hour})
	require.NoError(t, err)
	for name, roots := range map[string][]snapshot.CARoot{
		"none":               nil,
		"signer not listed":  caRoots(b),
		"two active":         {caRoots(a)[0], caRoots(b)[0]},
		"no active":          {{KeyID: aID, Status: snapshot.CARootPrevious, Certificate: a.der}},
		"unknown status":     {{KeyID: aID, Status: "retired", Certificate: a.der}},
		"wrong key id":       {{KeyID: bID, Status: snapshot.CARootActive, Certificate: a.der}},
		"duplicate":          append(caRoots(a), snapshot.CARoot{KeyID: aID, Status: snapshot.CARootPrevious, Certificate: a.der}),
		"not a certificate":  {{KeyID: aID, Status: snapshot.CARootActive, Certificate: []byte("junk")}},
		"another cluster":    caRoots(other, a),
		"a node certificate": {caRoots(a)[0], {KeyID: bID, Status: snapshot.CARootPrevious, Certificate: leaf}},
	} {
		_, err := nextCARoots(tCluster, aID, roots)
		require.ErrorIs(t, err, errCARoots, name)
	}
}
