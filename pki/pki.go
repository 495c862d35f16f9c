// Package pki makes and checks the X.509 material of the fabric: a cluster CA
// (Ed25519), node certificates with the identity URI SAN
// rap://<cluster-id>/node/<node-id>, authority server certificates, and the CA
// pin a join token carries (kubeadm's discovery hash: SHA-256 over the CA's
// SubjectPublicKeyInfo).
//
// It is pure: time and randomness come from the caller, and it performs no I/O.
// It never stores keys; callers decide where a private key may live (the CA key
// only in the authority's replicated state, node keys only on their host).
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/url"
	"strings"
	"time"
)

// Errors returned by the verifiers.
var (
	// ErrPinMismatch: the presented CA does not match the expected pin.
	ErrPinMismatch = errors.New("pki: CA pin mismatch")
	// ErrNotNodeCert: the certificate carries no node identity URI.
	ErrNotNodeCert = errors.New("pki: not a node certificate")
	// ErrBadPin: a pin string is malformed.
	ErrBadPin = errors.New("pki: malformed pin")
)

// ExtKeyUsage markers: node certificates are client certificates for agent
// routes only; they carry no server usage and are never accepted elsewhere.
const (
	// NodeOU marks node certificates.
	NodeOU = "rap-node"
	// ServerOU marks authority server certificates.
	ServerOU = "rap-authority"
)

// NewCA creates a self-signed Ed25519 CA certificate for clusterID, valid from
// now for lifetime. rnd may be nil for crypto/rand.
func NewCA(rnd io.Reader, clusterID string, now time.Time, lifetime time.Duration) (ed25519.PrivateKey, []byte, error) {
	if rnd == nil {
		rnd = rand.Reader
	}
	pub, priv, err := ed25519.GenerateKey(rnd)
	if err != nil {
		return nil, nil, err
	}
	serial, err := randSerial(rnd)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "RAP cluster CA " + clusterID, Organization: []string{"RAP Fabric"}},
		NotBefore:             now.Add(-5 * time.Minute),
		NotAfter:              now.Add(lifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	if u, err := url.Parse("rap://" + clusterID + "/ca"); err == nil {
		tmpl.URIs = []*url.URL{u}
	}
	der, err := x509.CreateCertificate(rnd, tmpl, tmpl, pub, priv)
	if err != nil {
		return nil, nil, err
	}
	return priv, der, nil
}

// Pin returns the pin of a certificate: "sha256:" + hex(SHA-256(SPKI DER)).
func Pin(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// PinDER is Pin over a DER-encoded certificate.
func PinDER(der []byte) (string, error) {
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return "", err
	}
	return Pin(c), nil
}

// ValidatePin returns ErrBadPin unless pin is "sha256:" followed by 64 hex
// digits (either case), the form Pin produces.
func ValidatePin(pin string) error {
	h, ok := strings.CutPrefix(pin, "sha256:")
	if !ok || len(h) != 64 {
		return ErrBadPin
	}
	if _, err := hex.DecodeString(h); err != nil {
		return ErrBadPin
	}
	return nil
}

// CheckPin reports whether cert matches pin, in constant time. A malformed pin
// is ErrBadPin, a well-formed one that does not match ErrPinMismatch.
func CheckPin(cert *x509.Certificate, pin string) error {
	if err := ValidatePin(pin); err != nil {
		return err
	}
	if subtle.ConstantTimeCompare([]byte(Pin(cert)), []byte(strings.ToLower(pin))) != 1 {
		return ErrPinMismatch
	}
	return nil
}

// NodeCertRequest describes a node certificate to issue.
type NodeCertRequest struct {
	ClusterID string
	NodeID    string
	NodeName  string
	PublicKey ed25519.PublicKey
	NotBefore time.Time
	Lifetime  time.Duration
}

// IssueNodeCert signs a client certificate for a node identity key. It returns
// the DER bytes and the serial (hex).
func IssueNodeCert(rnd io.Reader, caKey crypto.Signer, caDER []byte, r NodeCertRequest) ([]byte, string, error) {
	if rnd == nil {
		rnd = rand.Reader
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, "", fmt.Errorf("pki: parse CA: %w", err)
	}
	if len(r.PublicKey) != ed25519.PublicKeySize {
		return nil, "", fmt.Errorf("pki: node public key must be %d bytes", ed25519.PublicKeySize)
	}
	serial, err := randSerial(rnd)
	if err != nil {
		return nil, "", err
	}
	u, err := url.Parse(NodeURI(r.ClusterID, r.NodeID))
	if err != nil {
		return nil, "", err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: r.NodeID, OrganizationalUnit: []string{NodeOU}, Organization: []string{r.ClusterID}},
		NotBefore:    r.NotBefore.Add(-time.Minute),
		NotAfter:     r.NotBefore.Add(r.Lifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		URIs:         []*url.URL{u},
	}
	der, err := x509.CreateCertificate(rnd, tmpl, ca, r.PublicKey, caKey)
	if err != nil {
		return nil, "", err
	}
	return der, hex.EncodeToString(serial.Bytes()), nil
}

// IssueServerCert signs a short-lived server certificate for an authority under
// a cluster CA, for the DNS names and IPs given.
func IssueServerCert(rnd io.Reader, caKey crypto.Signer, caDER []byte, pub crypto.PublicKey, names []string, ips []net.IP, now time.Time, lifetime time.Duration) ([]byte, error) {
	if rnd == nil {
		rnd = rand.Reader
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, fmt.Errorf("pki: parse CA: %w", err)
	}
	serial, err := randSerial(rnd)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "rap-authority", OrganizationalUnit: []string{ServerOU}},
		NotBefore:    now.Add(-5 * time.Minute),
		NotAfter:     now.Add(lifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     names,
		IPAddresses:  ips,
	}
	return x509.CreateCertificate(rnd, tmpl, ca, pub, caKey)
}

// NodeIdentity is what a verified node certificate says.
type NodeIdentity struct {
	ClusterID string
	NodeID    string
	Serial    string
	NotAfter  time.Time
	PublicKey ed25519.PublicKey
}

// NodeURI returns the identity URI of a node certificate.
func NodeURI(clusterID, nodeID string) string {
	return "rap://" + clusterID + "/node/" + nodeID
}

// ParseNodeURI extracts cluster and node ids from an identity URI.
func ParseNodeURI(u *url.URL) (clusterID, nodeID string, err error) {
	if u == nil || u.Scheme != "rap" || u.Host == "" {
		return "", "", ErrNotNodeCert
	}
	parts := strings.Split(strings.TrimPrefix(u.Path, "/"), "/")
	if len(parts) != 2 || parts[0] != "node" || parts[1] == "" {
		return "", "", ErrNotNodeCert
	}
	return u.Host, parts[1], nil
}

// NodeIdentityOf reads the identity of a node certificate without verifying it.
func NodeIdentityOf(cert *x509.Certificate) (NodeIdentity, error) {
	if len(cert.URIs) != 1 || len(cert.Subject.OrganizationalUnit) != 1 || cert.Subject.OrganizationalUnit[0] != NodeOU {
		return NodeIdentity{}, ErrNotNodeCert
	}
	c, n, err := ParseNodeURI(cert.URIs[0])
	if err != nil {
		return NodeIdentity{}, err
	}
	pub, _ := cert.PublicKey.(ed25519.PublicKey)
	return NodeIdentity{ClusterID: c, NodeID: n, Serial: hex.EncodeToString(cert.SerialNumber.Bytes()), NotAfter: cert.NotAfter, PublicKey: pub}, nil
}

// VerifyNodeCert checks that cert chains to the CA in caDER at now, is a client
// certificate and carries a node identity URI for that CA's cluster.
func VerifyNodeCert(cert *x509.Certificate, caDER []byte, clusterID string, now time.Time) (NodeIdentity, error) {
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return NodeIdentity{}, fmt.Errorf("pki: parse CA: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return NodeIdentity{}, fmt.Errorf("pki: node certificate: %w", err)
	}
	id, err := NodeIdentityOf(cert)
	if err != nil {
		return NodeIdentity{}, err
	}
	if id.ClusterID != clusterID {
		return NodeIdentity{}, fmt.Errorf("%w: certificate is for cluster %s", ErrNotNodeCert, id.ClusterID)
	}
	return id, nil
}

func randSerial(rnd io.Reader) (*big.Int, error) {
	limit := new(big.Int).Lsh(big.NewInt(1), 127)
	s, err := rand.Int(rnd, limit)
	if err != nil {
		return nil, err
	}
	return s.Add(s, big.NewInt(1)), nil
}

// MemberOU marks authority member certificates: the only certificates the Raft
// transport accepts. Node certificates (NodeOU, signed by cluster CAs) never
// open it.
const MemberOU = "rap-authority-member"

// IssueMemberCert signs a certificate for an authority member's Raft transport
// key under the platform CA. It is both a TLS server and client certificate.
func IssueMemberCert(rnd io.Reader, caKey crypto.Signer, caDER []byte, memberID string, pub crypto.PublicKey, now time.Time, lifetime time.Duration) ([]byte, error) {
	if rnd == nil {
		rnd = rand.Reader
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, fmt.Errorf("pki: parse CA: %w", err)
	}
	serial, err := randSerial(rnd)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: memberID, OrganizationalUnit: []string{MemberOU}},
		NotBefore:    now.Add(-5 * time.Minute),
		NotAfter:     now.Add(lifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:     []string{memberID},
	}
	return x509.CreateCertificate(rnd, tmpl, ca, pub, caKey)
}

// VerifyMemberCert checks that cert is an authority member certificate issued
// by one of the CAs in caDERs, valid at now, and returns the member id.
func VerifyMemberCert(cert *x509.Certificate, caDERs [][]byte, now time.Time) (string, error) {
	if len(cert.Subject.OrganizationalUnit) != 1 || cert.Subject.OrganizationalUnit[0] != MemberOU {
		return "", errors.New("pki: not an authority member certificate")
	}
	var lastErr error = errors.New("pki: no trusted platform CA")
	for _, der := range caDERs {
		ca, err := x509.ParseCertificate(der)
		if err != nil {
			lastErr = err
			continue
		}
		pool := x509.NewCertPool()
		pool.AddCert(ca)
		if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
			lastErr = err
			continue
		}
		return cert.Subject.CommonName, nil
	}
	return "", fmt.Errorf("pki: member certificate: %w", lastErr)
}

// NewECDSACA creates a self-signed ECDSA P-256 CA. The platform CA uses it:
// browsers (the console) do not accept Ed25519 certificate chains, while
// cluster CAs, used only by Go agents, stay Ed25519.
func NewECDSACA(rnd io.Reader, name string, now time.Time, lifetime time.Duration) (*ecdsa.PrivateKey, []byte, error) {
	if rnd == nil {
		rnd = rand.Reader
	}
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rnd)
	if err != nil {
		return nil, nil, err
	}
	serial, err := randSerial(rnd)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "RAP " + name + " CA", Organization: []string{"RAP Fabric"}},
		NotBefore:             now.Add(-5 * time.Minute),
		NotAfter:              now.Add(lifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rnd, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		return nil, nil, err
	}
	return priv, der, nil
}
