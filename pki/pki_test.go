package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"math/big"
	"net"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// t0 is the injected "now" of every test: nothing here reads the clock.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func parse(t *testing.T, der []byte) *x509.Certificate {
	t.Helper()
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("parse certificate: %v", err)
	}
	return c
}

func newNodeKey(t *testing.T) ed25519.PublicKey {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

type testCA struct {
	key crypto.Signer
	der []byte
}

func newClusterCA(t *testing.T, clusterID string, now time.Time, lifetime time.Duration) testCA {
	t.Helper()
	k, der, err := NewCA(nil, clusterID, now, lifetime)
	if err != nil {
		t.Fatalf("NewCA: %v", err)
	}
	return testCA{k, der}
}

func newPlatformCA(t *testing.T, now time.Time, lifetime time.Duration) testCA {
	t.Helper()
	k, der, err := NewECDSACA(nil, "platform", now, lifetime)
	if err != nil {
		t.Fatalf("NewECDSACA: %v", err)
	}
	return testCA{k, der}
}

func TestCAs(t *testing.T) {
	const life = 10 * 365 * 24 * time.Hour
	tests := []struct {
		name    string
		make    func() (crypto.Signer, []byte, error)
		algo    x509.PublicKeyAlgorithm
		wantURI string
		wantCN  string
	}{
		{"cluster CA (Ed25519)", func() (crypto.Signer, []byte, error) { return NewCA(nil, "c1", t0, life) },
			x509.Ed25519, "rap://c1/ca", "RAP cluster CA c1"},
		{"platform CA (ECDSA P-256)", func() (crypto.Signer, []byte, error) { return NewECDSACA(nil, "platform", t0, life) },
			x509.ECDSA, "", "RAP platform CA"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			key, der, err := tc.make()
			if err != nil {
				t.Fatal(err)
			}
			ca := parse(t, der)
			if !ca.IsCA || !ca.BasicConstraintsValid || !ca.MaxPathLenZero || ca.MaxPathLen != 0 {
				t.Errorf("CA constraints: IsCA %v valid %v maxPathLen %d zero %v; want a CA that signs only leaves",
					ca.IsCA, ca.BasicConstraintsValid, ca.MaxPathLen, ca.MaxPathLenZero)
			}
			if ca.KeyUsage&x509.KeyUsageCertSign == 0 {
				t.Errorf("key usage %b lacks CertSign", ca.KeyUsage)
			}
			if ca.PublicKeyAlgorithm != tc.algo {
				t.Errorf("algorithm %v, want %v", ca.PublicKeyAlgorithm, tc.algo)
			}
			if ca.Subject.CommonName != tc.wantCN {
				t.Errorf("CN %q, want %q", ca.Subject.CommonName, tc.wantCN)
			}
			if !ca.NotBefore.Equal(t0.Add(-5*time.Minute)) || !ca.NotAfter.Equal(t0.Add(life)) {
				t.Errorf("validity [%v, %v], want [%v, %v]", ca.NotBefore, ca.NotAfter, t0.Add(-5*time.Minute), t0.Add(life))
			}
			if err := ca.CheckSignatureFrom(ca); err != nil {
				t.Errorf("not self-signed: %v", err)
			}
			var uris []string
			for _, u := range ca.URIs {
				uris = append(uris, u.String())
			}
			if tc.wantURI == "" && len(uris) != 0 || tc.wantURI != "" && !slices.Equal(uris, []string{tc.wantURI}) {
				t.Errorf("URIs %v, want %q", uris, tc.wantURI)
			}
			if !publicKeyEqual(key.Public(), ca.PublicKey) {
				t.Errorf("returned private key does not match the certificate")
			}
			if ca.SerialNumber.Sign() <= 0 {
				t.Errorf("serial %v is not positive", ca.SerialNumber)
			}
		})
	}
}

func publicKeyEqual(a, b crypto.PublicKey) bool {
	e, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && e.Equal(b)
}

func TestIssueNodeCert(t *testing.T) {
	ca := newClusterCA(t, "c1", t0, 365*24*time.Hour)
	pub := newNodeKey(t)
	req := NodeCertRequest{ClusterID: "c1", NodeID: "n-7", NodeName: "edge", PublicKey: pub, NotBefore: t0, Lifetime: 30 * 24 * time.Hour}
	der, serial, err := IssueNodeCert(nil, ca.key, ca.der, req)
	if err != nil {
		t.Fatal(err)
	}
	c := parse(t, der)

	if err := c.CheckSignatureFrom(parse(t, ca.der)); err != nil {
		t.Errorf("not signed by the CA: %v", err)
	}
	if c.IsCA {
		t.Errorf("node certificate is a CA")
	}
	if c.KeyUsage != x509.KeyUsageDigitalSignature {
		t.Errorf("key usage %b, want DigitalSignature only", c.KeyUsage)
	}
	if !slices.Equal(c.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) {
		t.Errorf("ext key usage %v, want client auth only", c.ExtKeyUsage)
	}
	if !c.NotBefore.Equal(t0.Add(-time.Minute)) || !c.NotAfter.Equal(t0.Add(30*24*time.Hour)) {
		t.Errorf("validity [%v, %v], want [%v, %v]", c.NotBefore, c.NotAfter, t0.Add(-time.Minute), t0.Add(30*24*time.Hour))
	}
	if len(c.URIs) != 1 || c.URIs[0].String() != "rap://c1/node/n-7" {
		t.Errorf("URIs %v, want [rap://c1/node/n-7]", c.URIs)
	}
	if c.Subject.CommonName != "n-7" || !slices.Equal(c.Subject.OrganizationalUnit, []string{NodeOU}) || !slices.Equal(c.Subject.Organization, []string{"c1"}) {
		t.Errorf("subject %v", c.Subject)
	}
	if serial != hex.EncodeToString(c.SerialNumber.Bytes()) {
		t.Errorf("returned serial %s, certificate serial %x", serial, c.SerialNumber)
	}
	if got, ok := c.PublicKey.(ed25519.PublicKey); !ok || !got.Equal(pub) {
		t.Errorf("certificate key is not the node's key")
	}

	id, err := VerifyNodeCert(c, ca.der, "c1", t0)
	if err != nil {
		t.Fatalf("VerifyNodeCert: %v", err)
	}
	want := NodeIdentity{ClusterID: "c1", NodeID: "n-7", Serial: serial, NotAfter: c.NotAfter, PublicKey: pub}
	if id.ClusterID != want.ClusterID || id.NodeID != want.NodeID || id.Serial != want.Serial || !id.NotAfter.Equal(want.NotAfter) || !id.PublicKey.Equal(want.PublicKey) {
		t.Errorf("identity %+v, want %+v", id, want)
	}

	// Two issues for the same request get different serials.
	_, serial2, err := IssueNodeCert(nil, ca.key, ca.der, req)
	if err != nil {
		t.Fatal(err)
	}
	if serial2 == serial {
		t.Errorf("two certificates share serial %s", serial)
	}
}

func TestIssueNodeCertRefusesBadInput(t *testing.T) {
	ca := newClusterCA(t, "c1", t0, 365*24*time.Hour)
	good := NodeCertRequest{ClusterID: "c1", NodeID: "n1", PublicKey: newNodeKey(t), NotBefore: t0, Lifetime: time.Hour}
	tests := []struct {
		name  string
		caDER []byte
		req   func(r NodeCertRequest) NodeCertRequest
	}{
		{"short public key", ca.der, func(r NodeCertRequest) NodeCertRequest { r.PublicKey = r.PublicKey[:31]; return r }},
		{"no public key", ca.der, func(r NodeCertRequest) NodeCertRequest { r.PublicKey = nil; return r }},
		{"CA is not DER", []byte("not a certificate"), func(r NodeCertRequest) NodeCertRequest { return r }},
		{"CA truncated", ca.der[:len(ca.der)/2], func(r NodeCertRequest) NodeCertRequest { return r }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			der, serial, err := IssueNodeCert(nil, ca.key, tc.caDER, tc.req(good))
			if err == nil || der != nil || serial != "" {
				t.Fatalf("IssueNodeCert = (%d bytes, %q, %v), want an error and nothing issued", len(der), serial, err)
			}
		})
	}
}

// TestVerifyNodeCert: a node certificate is accepted only inside its validity
// window, under its own cluster's CA, and only when it is a node client
// certificate. Time is injected; nothing sleeps.
func TestVerifyNodeCert(t *testing.T) {
	const nodeLife = 24 * time.Hour
	ca := newClusterCA(t, "c1", t0, 365*24*time.Hour)
	otherCA := newClusterCA(t, "c1", t0, 365*24*time.Hour) // same cluster id, different key
	c2CA := newClusterCA(t, "c2", t0, 365*24*time.Hour)
	shortCA := newClusterCA(t, "c1", t0, time.Hour) // expires before the node certificate does
	platform := newPlatformCA(t, t0, 365*24*time.Hour)

	issue := func(ca testCA, cluster string) *x509.Certificate {
		der, _, err := IssueNodeCert(nil, ca.key, ca.der, NodeCertRequest{ClusterID: cluster, NodeID: "n1", PublicKey: newNodeKey(t), NotBefore: t0, Lifetime: nodeLife})
		if err != nil {
			t.Fatal(err)
		}
		return parse(t, der)
	}
	node := issue(ca, "c1")
	// A certificate of another cluster signed by this cluster's CA: the URI
	// must agree with the cluster the caller expects.
	foreignURI := issue(ca, "c2")
	shortNode := issue(shortCA, "c1")
	serverKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	serverDER, err := IssueServerCert(nil, ca.key, ca.der, &serverKey.PublicKey, []string{"localhost"}, nil, t0, nodeLife)
	if err != nil {
		t.Fatal(err)
	}
	memberDER, err := IssueMemberCert(nil, platform.key, platform.der, "m1", &serverKey.PublicKey, t0, nodeLife)
	if err != nil {
		t.Fatal(err)
	}

	expired := func(err error) bool {
		var ie x509.CertificateInvalidError
		return errors.As(err, &ie) && ie.Reason == x509.Expired
	}
	unknownAuthority := func(err error) bool {
		var ue x509.UnknownAuthorityError
		return errors.As(err, &ue)
	}
	wrongUsage := func(err error) bool {
		var ie x509.CertificateInvalidError
		return errors.As(err, &ie) && ie.Reason == x509.IncompatibleUsage
	}
	notNode := func(err error) bool { return errors.Is(err, ErrNotNodeCert) }

	tests := []struct {
		name    string
		cert    *x509.Certificate
		caDER   []byte
		cluster string
		now     time.Time
		wantErr func(error) bool // nil: accepted
	}{
		{"at issue", node, ca.der, "c1", t0, nil},
		{"within the minute of back-dating", node, ca.der, "c1", t0.Add(-59 * time.Second), nil},
		{"last second of validity", node, ca.der, "c1", t0.Add(nodeLife), nil},
		{"not yet valid", node, ca.der, "c1", t0.Add(-2 * time.Minute), expired},
		{"expired", node, ca.der, "c1", t0.Add(nodeLife + time.Second), expired},
		{"long expired", node, ca.der, "c1", t0.Add(400 * 24 * time.Hour), expired},
		{"CA expired before the node certificate", shortNode, shortCA.der, "c1", t0.Add(2 * time.Hour), expired},
		{"another CA of the same cluster id", node, otherCA.der, "c1", t0, unknownAuthority},
		{"another cluster's CA", node, c2CA.der, "c1", t0, unknownAuthority},
		{"platform CA", node, platform.der, "c1", t0, unknownAuthority},
		{"expected cluster differs", node, ca.der, "c2", t0, notNode},
		{"URI names another cluster", foreignURI, ca.der, "c1", t0, notNode},
		{"server certificate", parse(t, serverDER), ca.der, "c1", t0, wrongUsage},
		{"member certificate", parse(t, memberDER), platform.der, "c1", t0, notNode},
		{"CA is not DER", node, []byte{0x30, 0x03, 0x02, 0x01}, "c1", t0, func(err error) bool { return err != nil }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id, err := VerifyNodeCert(tc.cert, tc.caDER, tc.cluster, tc.now)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if id.ClusterID != tc.cluster || id.NodeID != "n1" {
					t.Errorf("identity %+v", id)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted as %+v, want refusal", id)
			}
			if !tc.wantErr(err) {
				t.Errorf("refused with %v (%T), not the expected reason", err, errors.Unwrap(err))
			}
			if id.ClusterID != "" || id.NodeID != "" || id.PublicKey != nil {
				t.Errorf("refusal returned identity %+v", id)
			}
		})
	}
}

func TestPin(t *testing.T) {
	a := newClusterCA(t, "c1", t0, time.Hour)
	b := newPlatformCA(t, t0, time.Hour)
	ca := parse(t, a.der)

	pin := Pin(ca)
	sum := sha256.Sum256(ca.RawSubjectPublicKeyInfo)
	if want := "sha256:" + hex.EncodeToString(sum[:]); pin != want {
		t.Fatalf("Pin = %s, want %s", pin, want)
	}
	if err := ValidatePin(pin); err != nil {
		t.Errorf("ValidatePin(Pin(ca)) = %v", err)
	}
	if p, err := PinDER(a.der); err != nil || p != pin {
		t.Errorf("PinDER = %q, %v; want %q", p, err, pin)
	}
	if _, err := PinDER([]byte("garbage")); err == nil {
		t.Errorf("PinDER accepted garbage")
	}

	// The pin covers the key, not the certificate: a CA certificate re-issued
	// for the same key (new serial, subject and validity) keeps its pin.
	reissued := parse(t, selfSign(t, a.key, "renewed", t0.Add(24*time.Hour)))
	if Pin(reissued) != pin {
		t.Errorf("re-issued CA for the same key has pin %s, want %s", Pin(reissued), pin)
	}

	tests := []struct {
		name string
		pin  string
		want error
	}{
		{"right pin", pin, nil},
		{"right pin in upper-case hex", "sha256:" + strings.ToUpper(strings.TrimPrefix(pin, "sha256:")), nil},
		{"another CA's pin", Pin(parse(t, b.der)), ErrPinMismatch},
		{"one digit changed", pin[:len(pin)-1] + flipHex(pin[len(pin)-1]), ErrPinMismatch},
		{"empty", "", ErrBadPin},
		{"no algorithm prefix", strings.TrimPrefix(pin, "sha256:"), ErrBadPin},
		{"other algorithm", "sha512:" + strings.TrimPrefix(pin, "sha256:"), ErrBadPin},
		{"upper-case prefix", "SHA256:" + strings.TrimPrefix(pin, "sha256:"), ErrBadPin},
		{"truncated", pin[:len(pin)-2], ErrBadPin},
		{"too long", pin + "00", ErrBadPin},
		{"not hex, right length", "sha256:" + strings.Repeat("z", 64), ErrBadPin},
		{"hex with a space", "sha256: " + strings.TrimPrefix(pin, "sha256:")[1:], ErrBadPin},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckPin(ca, tc.pin)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("CheckPin(%q) = %v, want %v", tc.pin, err, tc.want)
			}
		})
	}
}

func flipHex(c byte) string {
	if c == '0' {
		return "1"
	}
	return "0"
}

func selfSign(t *testing.T, key crypto.Signer, cn string, now time.Time) []byte {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(42), Subject: pkix.Name{CommonName: cn}, NotBefore: now, NotAfter: now.Add(time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestNodeURI(t *testing.T) {
	for _, tc := range []struct{ cluster, node string }{
		{"c1", "n1"},
		{"0b8f5c3e-1d2a-4c5b-9e7f-aa11bb22cc33", "5f0e9d8c-7b6a-4f3e-8d2c-1b0a99887766"},
	} {
		s := NodeURI(tc.cluster, tc.node)
		if want := "rap://" + tc.cluster + "/node/" + tc.node; s != want {
			t.Errorf("NodeURI = %s, want %s", s, want)
		}
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		c, n, err := ParseNodeURI(u)
		if err != nil || c != tc.cluster || n != tc.node {
			t.Errorf("ParseNodeURI(%s) = %q, %q, %v; want the ids back", s, c, n, err)
		}
	}

	bad := []string{
		"https://c1/node/n1",
		"RAP+x://c1/node/n1",
		"rap:///node/n1",
		"rap://c1",
		"rap://c1/",
		"rap://c1/ca",
		"rap://c1/node",
		"rap://c1/node/",
		"rap://c1/node/n1/extra",
		"rap://c1/nodes/n1",
		"rap://c1/member/n1",
		"rap:c1/node/n1",
		"rap://c1//node/n1",
	}
	for _, s := range bad {
		t.Run(s, func(t *testing.T) {
			u, err := url.Parse(s)
			if err != nil {
				t.Fatalf("url.Parse: %v", err)
			}
			c, n, err := ParseNodeURI(u)
			if !errors.Is(err, ErrNotNodeCert) || c != "" || n != "" {
				t.Fatalf("ParseNodeURI(%s) = %q, %q, %v; want ErrNotNodeCert", s, c, n, err)
			}
		})
	}
	if _, _, err := ParseNodeURI(nil); !errors.Is(err, ErrNotNodeCert) {
		t.Errorf("ParseNodeURI(nil) = %v, want ErrNotNodeCert", err)
	}
}

// TestNodeIdentityOf: the identity is read only from a certificate with exactly
// one node URI and the node OU.
func TestNodeIdentityOf(t *testing.T) {
	ca := newClusterCA(t, "c1", t0, time.Hour)
	pub := newNodeKey(t)
	der, serial, err := IssueNodeCert(nil, ca.key, ca.der, NodeCertRequest{ClusterID: "c1", NodeID: "n1", PublicKey: pub, NotBefore: t0, Lifetime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	node := parse(t, der)
	id, err := NodeIdentityOf(node)
	if err != nil || id.ClusterID != "c1" || id.NodeID != "n1" || id.Serial != serial || !id.PublicKey.Equal(pub) {
		t.Fatalf("NodeIdentityOf = %+v, %v", id, err)
	}

	mutate := func(f func(c *x509.Certificate)) *x509.Certificate {
		c := *node
		c.URIs = slices.Clone(node.URIs)
		c.Subject.OrganizationalUnit = slices.Clone(node.Subject.OrganizationalUnit)
		f(&c)
		return &c
	}
	other, _ := url.Parse("rap://c1/node/n2")
	caURI, _ := url.Parse("rap://c1/ca")
	for _, tc := range []struct {
		name string
		cert *x509.Certificate
	}{
		{"no URI", mutate(func(c *x509.Certificate) { c.URIs = nil })},
		{"two URIs", mutate(func(c *x509.Certificate) { c.URIs = append(c.URIs, other) })},
		{"CA URI", mutate(func(c *x509.Certificate) { c.URIs = []*url.URL{caURI} })},
		{"server OU", mutate(func(c *x509.Certificate) { c.Subject.OrganizationalUnit = []string{ServerOU} })},
		{"no OU", mutate(func(c *x509.Certificate) { c.Subject.OrganizationalUnit = nil })},
		{"two OUs", mutate(func(c *x509.Certificate) { c.Subject.OrganizationalUnit = []string{NodeOU, ServerOU} })},
		{"CA certificate", parse(t, ca.der)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if id, err := NodeIdentityOf(tc.cert); !errors.Is(err, ErrNotNodeCert) {
				t.Fatalf("NodeIdentityOf = %+v, %v; want ErrNotNodeCert", id, err)
			}
		})
	}
}

func TestIssueServerCert(t *testing.T) {
	const life = 7 * 24 * time.Hour
	for _, tc := range []struct {
		name string
		ca   testCA
	}{
		{"under a cluster CA", newClusterCA(t, "c1", t0, 365*24*time.Hour)},
		{"under the platform CA", newPlatformCA(t, t0, 365*24*time.Hour)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			der, err := IssueServerCert(nil, tc.ca.key, tc.ca.der, &key.PublicKey, []string{"localhost", "rap-authority"}, []net.IP{net.IPv4(127, 0, 0, 1)}, t0, life)
			if err != nil {
				t.Fatal(err)
			}
			c := parse(t, der)
			if !slices.Equal(c.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}) || c.KeyUsage != x509.KeyUsageDigitalSignature {
				t.Errorf("usages: key %b ext %v, want DigitalSignature and server auth only", c.KeyUsage, c.ExtKeyUsage)
			}
			if !slices.Equal(c.Subject.OrganizationalUnit, []string{ServerOU}) {
				t.Errorf("OU %v, want [%s]", c.Subject.OrganizationalUnit, ServerOU)
			}
			roots := x509.NewCertPool()
			roots.AddCert(parse(t, tc.ca.der))
			verify := func(name string, now time.Time, usage x509.ExtKeyUsage) error {
				_, err := c.Verify(x509.VerifyOptions{Roots: roots, DNSName: name, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{usage}})
				return err
			}
			for _, ok := range []struct {
				name string
				now  time.Time
			}{{"localhost", t0}, {"rap-authority", t0.Add(life)}, {"127.0.0.1", t0.Add(-4 * time.Minute)}} {
				if err := verify(ok.name, ok.now, x509.ExtKeyUsageServerAuth); err != nil {
					t.Errorf("%s at %v: %v", ok.name, ok.now, err)
				}
			}
			var host x509.HostnameError
			if err := verify("evil.example", t0, x509.ExtKeyUsageServerAuth); !errors.As(err, &host) {
				t.Errorf("unlisted name: %v, want a hostname error", err)
			}
			var inv x509.CertificateInvalidError
			if err := verify("localhost", t0.Add(life+time.Second), x509.ExtKeyUsageServerAuth); !errors.As(err, &inv) || inv.Reason != x509.Expired {
				t.Errorf("after expiry: %v, want expired", err)
			}
			if err := verify("localhost", t0.Add(-6*time.Minute), x509.ExtKeyUsageServerAuth); !errors.As(err, &inv) || inv.Reason != x509.Expired {
				t.Errorf("before validity: %v, want expired", err)
			}
			if err := verify("localhost", t0, x509.ExtKeyUsageClientAuth); !errors.As(err, &inv) || inv.Reason != x509.IncompatibleUsage {
				t.Errorf("as a client certificate: %v, want incompatible usage", err)
			}
		})
	}
	if _, err := IssueServerCert(nil, newPlatformCA(t, t0, time.Hour).key, []byte("x"), nil, nil, nil, t0, time.Hour); err == nil {
		t.Errorf("IssueServerCert accepted a CA that is not DER")
	}
}

// TestMemberCert: member certificates open the Raft transport only when issued
// by a trusted platform CA, inside their validity window, with the member OU.
func TestMemberCert(t *testing.T) {
	const life = 30 * 24 * time.Hour
	platform := newPlatformCA(t, t0, 365*24*time.Hour)
	rotated := newPlatformCA(t, t0, 365*24*time.Hour)
	cluster := newClusterCA(t, "c1", t0, 365*24*time.Hour)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := IssueMemberCert(nil, platform.key, platform.der, "auth-2", &key.PublicKey, t0, life)
	if err != nil {
		t.Fatal(err)
	}
	member := parse(t, der)
	if !slices.Equal(member.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}) {
		t.Errorf("ext key usage %v, want server and client auth", member.ExtKeyUsage)
	}
	if !slices.Equal(member.DNSNames, []string{"auth-2"}) {
		t.Errorf("DNS names %v", member.DNSNames)
	}
	nodeDER, _, err := IssueNodeCert(nil, cluster.key, cluster.der, NodeCertRequest{ClusterID: "c1", NodeID: "n1", PublicKey: newNodeKey(t), NotBefore: t0, Lifetime: life})
	if err != nil {
		t.Fatal(err)
	}
	// A node certificate dressed up with the member OU is still not issued by
	// a platform CA.
	nodeAsMember := *parse(t, nodeDER)
	nodeAsMember.Subject.OrganizationalUnit = []string{MemberOU}

	tests := []struct {
		name   string
		cert   *x509.Certificate
		cas    [][]byte
		now    time.Time
		wantOK bool
	}{
		{"trusted CA", member, [][]byte{platform.der}, t0, true},
		{"trusted CA after a rotated one", member, [][]byte{rotated.der, platform.der}, t0, true},
		{"unparseable CA before the trusted one", member, [][]byte{[]byte("junk"), platform.der}, t0, true},
		{"last valid second", member, [][]byte{platform.der}, t0.Add(life), true},
		{"expired", member, [][]byte{platform.der}, t0.Add(life + time.Second), false},
		{"not yet valid", member, [][]byte{platform.der}, t0.Add(-6 * time.Minute), false},
		{"only a rotated-out CA", member, [][]byte{rotated.der}, t0, false},
		{"no CA", member, nil, t0, false},
		{"node certificate", parse(t, nodeDER), [][]byte{platform.der, cluster.der}, t0, false},
		{"node certificate with member OU", &nodeAsMember, [][]byte{platform.der}, t0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id, err := VerifyMemberCert(tc.cert, tc.cas, tc.now)
			if tc.wantOK != (err == nil) {
				t.Fatalf("VerifyMemberCert = %q, %v; want ok=%v", id, err, tc.wantOK)
			}
			if tc.wantOK && id != "auth-2" {
				t.Errorf("member id %q, want auth-2", id)
			}
			if !tc.wantOK && id != "" {
				t.Errorf("refusal returned member id %q", id)
			}
		})
	}
}
