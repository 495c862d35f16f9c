package identity

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/domain"
)

var t0 = time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)

type testCA struct {
	cert *x509.Certificate
	key  ed25519.PrivateKey
	pem  []byte
}

func newCA(t *testing.T, name string) *testCA {
	t.Helper()
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             t0.Add(-time.Hour),
		NotAfter:              t0.Add(365 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return &testCA{cert: cert, key: key, pem: pemOf(der)}
}

func pemOf(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func (ca *testCA) issue(t *testing.T, tmpl *x509.Certificate, pub crypto.PublicKey) (*x509.Certificate, []byte) {
	t.Helper()
	if tmpl.SerialNumber == nil {
		tmpl.SerialNumber = big.NewInt(time.Now().UnixNano())
	}
	if tmpl.NotBefore.IsZero() {
		tmpl.NotBefore = t0.Add(-time.Minute)
		tmpl.NotAfter = t0.Add(24 * time.Hour)
	}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	require.NoError(t, err)
	c, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return c, pemOf(der)
}

func (ca *testCA) nodeCert(t *testing.T, cluster, node string, pub ed25519.PublicKey) []byte {
	t.Helper()
	u, err := url.Parse(domain.NodeURI(cluster, node))
	require.NoError(t, err)
	_, p := ca.issue(t, &x509.Certificate{Subject: pkix.Name{CommonName: node}, URIs: []*url.URL{u},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, pub)
	return p
}

// serverCert returns a TLS server certificate for localhost signed by ca,
// presenting [leaf, CA] when withCA is set.
func (ca *testCA) serverCert(t *testing.T, withCA bool) tls.Certificate {
	t.Helper()
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	leaf, _ := ca.issue(t, &x509.Certificate{Subject: pkix.Name{CommonName: "authority"},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, pub)
	chain := [][]byte{leaf.Raw}
	if withCA {
		chain = append(chain, ca.cert.Raw)
	}
	return tls.Certificate{Certificate: chain, PrivateKey: key, Leaf: leaf}
}

// handshake runs a TLS handshake over an in-memory pipe and returns the
// client's error and the server's view of the connection.
func handshake(t *testing.T, client, server *tls.Config) (tls.ConnectionState, error) {
	t.Helper()
	c, s := net.Pipe()
	defer c.Close()
	defer s.Close()
	type res struct {
		st  tls.ConnectionState
		err error
	}
	done := make(chan res, 1)
	go func() {
		sc := tls.Server(s, server)
		err := sc.Handshake()
		if err == nil {
			// TLS 1.3 client certificate verification completes when the
			// server reads the client's Finished; force it.
			buf := make([]byte, 1)
			_, err = sc.Read(buf)
		}
		done <- res{sc.ConnectionState(), err}
		s.Close()
	}()
	cc := tls.Client(c, client)
	err := cc.Handshake()
	if err == nil {
		_, err = cc.Write([]byte{1})
	}
	c.Close()
	select {
	case r := <-done:
		return r.st, err
	case <-time.After(10 * time.Second):
		t.Fatal("server handshake did not finish")
		return tls.ConnectionState{}, nil
	}
}

func TestGenerateKeysDeterministicWithInjectedRandom(t *testing.T) {
	seed := bytes.Repeat([]byte{0x42}, 64)
	a, err := GenerateKeys(bytes.NewReader(seed))
	require.NoError(t, err)
	b, err := GenerateKeys(bytes.NewReader(seed))
	require.NoError(t, err)
	require.Equal(t, a.Signing, b.Signing)
	require.Equal(t, a.NoisePublic(), b.NoisePublic())

	c, err := GenerateKeys(nil)
	require.NoError(t, err)
	require.NotEqual(t, a.Signing, c.Signing)
	require.Len(t, c.NoisePublic(), 32)
	require.Len(t, c.NoisePrivateBytes(), 32)
	require.NotEqual(t, c.Signing.Seed(), c.NoisePrivateBytes(), "keys must come from independent seeds")

	_, err = GenerateKeys(bytes.NewReader(make([]byte, 10)))
	require.ErrorIs(t, err, ErrInvalidKey)
}

func TestLoadKeysRoundTripAndRejectsDamage(t *testing.T) {
	k, err := GenerateKeys(nil)
	require.NoError(t, err)
	l, err := LoadKeys(k.Signing, k.NoisePrivateBytes())
	require.NoError(t, err)
	require.Equal(t, k.Public(), l.Public())

	bad := bytes.Clone(k.Signing)
	bad[40] ^= 1
	_, err = LoadKeys(bad, k.NoisePrivateBytes())
	require.ErrorIs(t, err, ErrInvalidKey)
	_, err = LoadKeys(k.Signing[:32], k.NoisePrivateBytes())
	require.ErrorIs(t, err, ErrInvalidKey)
	_, err = LoadKeys(k.Signing, []byte{1, 2})
	require.ErrorIs(t, err, ErrInvalidKey)
}

func TestPublicMaterial(t *testing.T) {
	k, err := GenerateKeys(nil)
	require.NoError(t, err)
	pm := k.Public()
	require.Len(t, pm.Fingerprint, 64)
	require.Equal(t, Fingerprint(k.SigningPublic()), pm.Fingerprint)

	id, nk, err := pm.Decode()
	require.NoError(t, err)
	require.True(t, id.Equal(k.SigningPublic()))
	require.Equal(t, k.NoisePublic(), nk.Bytes())

	wrong := pm
	wrong.Fingerprint = strings.Repeat("0", 64)
	_, _, err = wrong.Decode()
	require.ErrorIs(t, err, ErrInvalidKey)
	wrong = pm
	wrong.IdentityPublicKey = "AAAA"
	_, _, err = wrong.Decode()
	require.ErrorIs(t, err, ErrInvalidKey)
	wrong = pm
	wrong.NoisePublicKey = "!!"
	_, _, err = wrong.Decode()
	require.ErrorIs(t, err, ErrInvalidKey)
}

func TestCAPin(t *testing.T) {
	ca := newCA(t, "ca")
	pin := CAPin(ca.cert)
	require.True(t, strings.HasPrefix(pin, "sha256:"))
	require.Len(t, pin, len("sha256:")+64)
	d, err := ParsePin(pin)
	require.NoError(t, err)
	require.True(t, MatchesPin(ca.cert, d))
	d2, err := ParsePin(strings.ToUpper(pin[:7]) + strings.ToUpper(pin[7:]))
	require.ErrorIs(t, err, ErrInvalidPin) // prefix is case-sensitive
	require.Nil(t, d2)
	d3, err := ParsePin("sha256:" + strings.ToUpper(pin[7:]))
	require.NoError(t, err)
	require.Equal(t, d, d3)
	require.False(t, MatchesPin(newCA(t, "other").cert, d))
	for _, bad := range []string{"", "sha256:", "sha256:zz", "md5:" + pin[7:], pin + "00"} {
		_, err := ParsePin(bad)
		require.ErrorIs(t, err, ErrInvalidPin, bad)
	}
}

func TestVerifyNodeCertificate(t *testing.T) {
	ca := newCA(t, "cluster-ca")
	k, err := GenerateKeys(nil)
	require.NoError(t, err)
	good := ca.nodeCert(t, "c1", "n1", k.SigningPublic())
	opts := NodeCertOptions{CA: ca.cert, ClusterID: "c1", NodeID: "n1", PublicKey: k.SigningPublic(), Now: t0}

	cert, err := VerifyNodeCertificate(good, opts)
	require.NoError(t, err)
	cl, node, err := ParseNodeURI(cert.URIs[0])
	require.NoError(t, err)
	require.Equal(t, [2]string{"c1", "n1"}, [2]string{cl, node})

	reject := func(name string, certPEM []byte, o NodeCertOptions, target error) {
		t.Helper()
		_, err := VerifyNodeCertificate(certPEM, o)
		require.ErrorIs(t, err, target, name)
	}
	o := opts
	o.Now = t0.Add(48 * time.Hour)
	reject("expired", good, o, ErrCertificateRejected)
	o.Now = t0.Add(-2 * time.Hour)
	reject("not yet valid", good, o, ErrCertificateRejected)
	o = opts
	o.Now = time.Time{}
	reject("no time", good, o, ErrCertificateRejected)
	o = opts
	o.CA = newCA(t, "other-ca").cert
	reject("other CA", good, o, ErrCertificateRejected)
	o = opts
	o.NodeID = "n2"
	reject("other node", good, o, ErrCertificateRejected)
	o = opts
	o.ClusterID = "c2"
	reject("other cluster", good, o, ErrCertificateRejected)
	other, err := GenerateKeys(nil)
	require.NoError(t, err)
	o = opts
	o.PublicKey = other.SigningPublic()
	reject("other key", good, o, ErrCertificateRejected)

	u1, _ := url.Parse(domain.NodeURI("c1", "n1"))
	u2, _ := url.Parse(domain.NodeURI("c1", "n9"))
	_, twoURIs := ca.issue(t, &x509.Certificate{URIs: []*url.URL{u1, u2},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, k.SigningPublic())
	reject("two URIs", twoURIs, opts, ErrCertificateRejected)
	_, serverOnly := ca.issue(t, &x509.Certificate{URIs: []*url.URL{u1},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, k.SigningPublic())
	reject("server-auth only", serverOnly, opts, ErrCertificateRejected)
	reject("garbage", []byte("not pem"), opts, ErrInvalidCertificate)
	reject("two certs", append(bytes.Clone(good), ca.pem...), opts, ErrInvalidCertificate)

	for _, bad := range []string{"https://c1/node/n1", "rap://c1/nodes/n1", "rap:///node/n1", "rap://c1/node/", "rap://c1/node/a/b"} {
		u, err := url.Parse(bad)
		require.NoError(t, err)
		_, _, err = ParseNodeURI(u)
		require.ErrorIs(t, err, ErrCertificateRejected, bad)
	}
}

func TestEnrollmentTLSPinsPresentedCA(t *testing.T) {
	ca := newCA(t, "cluster-ca")
	pin := CAPin(ca.cert)
	now := func() time.Time { return t0 }
	server := &tls.Config{Certificates: []tls.Certificate{ca.serverCert(t, true)}, Time: now}

	cfg, err := EnrollmentTLSConfig(EnrollmentTLSOptions{CAPin: pin, ServerName: "localhost", Now: now})
	require.NoError(t, err)
	_, err = handshake(t, cfg, server)
	require.NoError(t, err)

	// Wrong pin.
	bad, err := EnrollmentTLSConfig(EnrollmentTLSOptions{CAPin: CAPin(newCA(t, "x").cert), ServerName: "localhost", Now: now})
	require.NoError(t, err)
	_, err = handshake(t, bad, server)
	require.ErrorIs(t, err, ErrPinMismatch)

	// Server omits the CA from its chain: nothing to pin.
	leafOnly := &tls.Config{Certificates: []tls.Certificate{ca.serverCert(t, false)}, Time: now}
	_, err = handshake(t, cfg, leafOnly)
	require.ErrorIs(t, err, ErrPinMismatch)

	// An impostor CA that presents the real CA certificate next to a leaf it
	// signed itself: the leaf does not chain to the pinned CA.
	imp := newCA(t, "cluster-ca")
	impCert := imp.serverCert(t, false)
	impCert.Certificate = append(impCert.Certificate, ca.cert.Raw)
	_, err = handshake(t, cfg, &tls.Config{Certificates: []tls.Certificate{impCert}, Time: now})
	require.ErrorIs(t, err, ErrCertificateRejected)

	// Expired at the injected time.
	late, err := EnrollmentTLSConfig(EnrollmentTLSOptions{CAPin: pin, ServerName: "localhost",
		Now: func() time.Time { return t0.Add(72 * time.Hour) }})
	require.NoError(t, err)
	_, err = handshake(t, late, server)
	require.ErrorIs(t, err, ErrCertificateRejected)

	// Wrong host name.
	wrongName, err := EnrollmentTLSConfig(EnrollmentTLSOptions{CAPin: pin, ServerName: "evil.example", Now: now})
	require.NoError(t, err)
	_, err = handshake(t, wrongName, server)
	require.ErrorIs(t, err, ErrCertificateRejected)

	// No server name at all.
	noName, err := EnrollmentTLSConfig(EnrollmentTLSOptions{CAPin: pin, Now: now})
	require.NoError(t, err)
	_, err = handshake(t, noName, server)
	require.ErrorIs(t, err, ErrCertificateRejected)

	_, err = EnrollmentTLSConfig(EnrollmentTLSOptions{CAPin: "nope"})
	require.ErrorIs(t, err, ErrInvalidPin)
}

func TestClientTLSMutualAuth(t *testing.T) {
	ca := newCA(t, "cluster-ca")
	k, err := GenerateKeys(nil)
	require.NoError(t, err)
	nodePEM := ca.nodeCert(t, "c1", "n1", k.SigningPublic())
	now := func() time.Time { return t0 }
	clientCAs := x509.NewCertPool()
	clientCAs.AddCert(ca.cert)
	server := &tls.Config{
		Certificates: []tls.Certificate{ca.serverCert(t, true)},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    clientCAs,
		Time:         now,
	}
	opts := ClientTLSOptions{Keys: k, CertPEM: nodePEM, CAPEM: ca.pem, CAPin: CAPin(ca.cert), ServerName: "localhost", Now: now}
	cfg, err := ClientTLSConfig(opts)
	require.NoError(t, err)
	require.Equal(t, uint16(tls.VersionTLS13), cfg.MinVersion)
	st, err := handshake(t, cfg, server)
	require.NoError(t, err)
	require.NotEmpty(t, st.PeerCertificates)
	require.Equal(t, domain.NodeURI("c1", "n1"), st.PeerCertificates[0].URIs[0].String())

	// A server whose certificate comes from another CA is refused.
	other := newCA(t, "other")
	_, err = handshake(t, cfg, &tls.Config{Certificates: []tls.Certificate{other.serverCert(t, true)}, Time: now})
	require.Error(t, err)

	// Build-time checks.
	o := opts
	o.CAPin = CAPin(other.cert)
	_, err = ClientTLSConfig(o)
	require.ErrorIs(t, err, ErrPinMismatch)
	o = opts
	o.Keys, _ = GenerateKeys(nil)
	_, err = ClientTLSConfig(o)
	require.ErrorIs(t, err, ErrCertificateRejected)
	o = opts
	o.CAPEM = []byte("junk")
	_, err = ClientTLSConfig(o)
	require.ErrorIs(t, err, ErrInvalidCertificate)
	o = opts
	o.Keys = nil
	_, err = ClientTLSConfig(o)
	require.ErrorIs(t, err, ErrInvalidKey)
}
