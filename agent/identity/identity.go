// Package identity owns the node agent's key material and certificate
// handling: it generates the Ed25519 identity key and the X25519 Noise static
// key on the host, derives the public material a join request carries,
// verifies the node certificate the authority returns, computes and checks
// kubeadm-style CA pins, and builds the agent's TLS client configurations.
//
// It performs no network or disk I/O and never sends private keys anywhere;
// storing them is agent/state's job. Time and randomness are injected.
package identity

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/rap-fabric/core/domain"
)

// Sentinel errors; every error of this package wraps one of them.
var (
	// ErrInvalidKey means key material has the wrong size or encoding.
	ErrInvalidKey = errors.New("invalid key material")
	// ErrInvalidCertificate means a certificate or PEM block does not parse
	// or does not have the shape a node/CA certificate must have.
	ErrInvalidCertificate = errors.New("invalid certificate")
	// ErrCertificateRejected means a well-formed certificate failed
	// verification: wrong chain, expired, wrong identity URI or key.
	ErrCertificateRejected = errors.New("certificate rejected")
	// ErrInvalidPin means a CA pin is not "sha256:<64 hex digits>".
	ErrInvalidPin = errors.New("invalid CA pin")
	// ErrPinMismatch means no certificate matched the expected CA pin.
	ErrPinMismatch = errors.New("CA pin mismatch")
)

// Keys is the node's private key material for one cluster membership.
type Keys struct {
	// Signing is the Ed25519 identity key; its public half is bound into the
	// node certificate.
	Signing ed25519.PrivateKey
	// Noise is the X25519 static key of the mesh (Noise_IK_25519).
	Noise *ecdh.PrivateKey
}

// GenerateKeys creates a fresh identity key and Noise static key, reading 64
// bytes of seed material from rnd (nil means crypto/rand). Each key is derived
// from its own 32-byte seed, so an injected reader gives reproducible keys in
// tests while crypto/rand gives independent secrets in production.
func GenerateKeys(rnd io.Reader) (*Keys, error) {
	if rnd == nil {
		rnd = rand.Reader
	}
	var seed [64]byte
	if _, err := io.ReadFull(rnd, seed[:]); err != nil {
		return nil, fmt.Errorf("%w: read randomness: %w", ErrInvalidKey, err)
	}
	defer clear(seed[:])
	return LoadKeys(ed25519.NewKeyFromSeed(seed[:32]), seed[32:])
}

// LoadKeys rebuilds Keys from stored bytes: a 64-byte Ed25519 private key and
// a 32-byte X25519 private key (as agent/state stores them).
func LoadKeys(signing []byte, noise []byte) (*Keys, error) {
	if len(signing) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("%w: signing key is %d bytes, want %d", ErrInvalidKey, len(signing), ed25519.PrivateKeySize)
	}
	sk := ed25519.PrivateKey(bytes.Clone(signing))
	// The stored public half must match the seed (catches a damaged record).
	if !bytes.Equal(ed25519.NewKeyFromSeed(sk.Seed()), sk) {
		return nil, fmt.Errorf("%w: signing key public half does not match its seed", ErrInvalidKey)
	}
	nk, err := ecdh.X25519().NewPrivateKey(noise)
	if err != nil {
		return nil, fmt.Errorf("%w: noise key: %w", ErrInvalidKey, err)
	}
	return &Keys{Signing: sk, Noise: nk}, nil
}

// SigningPublic returns the Ed25519 public key.
func (k *Keys) SigningPublic() ed25519.PublicKey {
	return k.Signing.Public().(ed25519.PublicKey)
}

// NoisePublic returns the 32-byte X25519 public key.
func (k *Keys) NoisePublic() []byte { return k.Noise.PublicKey().Bytes() }

// NoisePrivateBytes returns the 32-byte X25519 private key for storage.
func (k *Keys) NoisePrivateBytes() []byte { return k.Noise.Bytes() }

// Fingerprint returns hex(sha256(Ed25519 public key)), the short form an
// operator compares when approving a join request.
func Fingerprint(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:])
}

// PublicMaterial is what a join request sends about the node's keys. Keys are
// standard base64 of the raw 32-byte public keys.
type PublicMaterial struct {
	IdentityPublicKey string `json:"identity_public_key"`
	NoisePublicKey    string `json:"noise_public_key"`
	Fingerprint       string `json:"fingerprint"`
}

// Public returns the public material of k.
func (k *Keys) Public() PublicMaterial {
	pub := k.SigningPublic()
	return PublicMaterial{
		IdentityPublicKey: base64.StdEncoding.EncodeToString(pub),
		NoisePublicKey:    base64.StdEncoding.EncodeToString(k.NoisePublic()),
		Fingerprint:       Fingerprint(pub),
	}
}

// Decode parses and checks public material (the authority side of a join
// request): both keys must be 32 bytes, the Noise key a usable X25519 point
// encoding, and the fingerprint, if present, must match.
func (p PublicMaterial) Decode() (ed25519.PublicKey, *ecdh.PublicKey, error) {
	id, err := base64.StdEncoding.DecodeString(p.IdentityPublicKey)
	if err != nil || len(id) != ed25519.PublicKeySize {
		return nil, nil, fmt.Errorf("%w: identity public key must be base64 of %d bytes", ErrInvalidKey, ed25519.PublicKeySize)
	}
	nb, err := base64.StdEncoding.DecodeString(p.NoisePublicKey)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: noise public key is not base64", ErrInvalidKey)
	}
	nk, err := ecdh.X25519().NewPublicKey(nb)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: noise public key: %w", ErrInvalidKey, err)
	}
	if p.Fingerprint != "" && subtle.ConstantTimeCompare([]byte(p.Fingerprint), []byte(Fingerprint(id))) != 1 {
		return nil, nil, fmt.Errorf("%w: fingerprint does not match the identity key", ErrInvalidKey)
	}
	return ed25519.PublicKey(id), nk, nil
}

// ParseCertificatePEM parses exactly one PEM "CERTIFICATE" block.
func ParseCertificatePEM(data []byte) (*x509.Certificate, error) {
	certs, err := ParseCertificatesPEM(data)
	if err != nil {
		return nil, err
	}
	if len(certs) != 1 {
		return nil, fmt.Errorf("%w: want one certificate, got %d", ErrInvalidCertificate, len(certs))
	}
	return certs[0], nil
}

// ParseCertificatesPEM parses one or more PEM "CERTIFICATE" blocks; anything
// else in the input is an error.
func ParseCertificatesPEM(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("%w: unexpected PEM block %q", ErrInvalidCertificate, block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidCertificate, err)
		}
		out = append(out, c)
	}
	if len(bytes.TrimSpace(rest)) != 0 || len(out) == 0 {
		return nil, fmt.Errorf("%w: no PEM certificate or trailing garbage", ErrInvalidCertificate)
	}
	return out, nil
}

// CAPin returns the kubeadm-style pin of a CA certificate:
// "sha256:" + hex(sha256(SubjectPublicKeyInfo DER)).
func CAPin(ca *x509.Certificate) string {
	sum := sha256.Sum256(ca.RawSubjectPublicKeyInfo)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// ParsePin checks the format of a pin and returns its 32-byte digest.
// The hex part is accepted in either case.
func ParsePin(pin string) ([]byte, error) {
	h, ok := strings.CutPrefix(pin, "sha256:")
	if !ok {
		return nil, fmt.Errorf("%w: %q lacks the sha256: prefix", ErrInvalidPin, pin)
	}
	d, err := hex.DecodeString(h)
	if err != nil || len(d) != sha256.Size {
		return nil, fmt.Errorf("%w: want sha256:<64 hex digits>", ErrInvalidPin)
	}
	return d, nil
}

// MatchesPin reports in constant time whether cert's SPKI has the digest of a
// pin parsed by ParsePin.
func MatchesPin(cert *x509.Certificate, digest []byte) bool {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return subtle.ConstantTimeCompare(sum[:], digest) == 1
}

// NodeCertOptions say what VerifyNodeCertificate expects.
type NodeCertOptions struct {
	// CA is the cluster CA certificate the node certificate must chain to.
	CA *x509.Certificate
	// ClusterID and NodeID form the required URI SAN rap://<cluster>/node/<node>.
	ClusterID, NodeID string
	// PublicKey is the node's own Ed25519 identity public key; the
	// certificate must certify exactly this key.
	PublicKey ed25519.PublicKey
	// Now is the verification time; required (no hidden clock).
	Now time.Time
}

// VerifyNodeCertificate parses a node certificate returned by the authority
// and checks that it chains to opts.CA at opts.Now (with client-auth usage, or
// no extended key usage), that its only URI SAN is
// rap://<cluster>/node/<node>, and that it certifies opts.PublicKey.
func VerifyNodeCertificate(certPEM []byte, opts NodeCertOptions) (*x509.Certificate, error) {
	switch {
	case opts.CA == nil:
		return nil, fmt.Errorf("%w: no CA given", ErrCertificateRejected)
	case opts.Now.IsZero():
		return nil, fmt.Errorf("%w: no verification time given", ErrCertificateRejected)
	case len(opts.PublicKey) != ed25519.PublicKeySize:
		return nil, fmt.Errorf("%w: expected public key missing", ErrInvalidKey)
	}
	cert, err := ParseCertificatePEM(certPEM)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	roots.AddCert(opts.CA)
	if _, err := cert.Verify(x509.VerifyOptions{
		Roots:       roots,
		CurrentTime: opts.Now,
		KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCertificateRejected, err)
	}
	want := domain.NodeURI(opts.ClusterID, opts.NodeID)
	if len(cert.URIs) != 1 || cert.URIs[0].String() != want {
		return nil, fmt.Errorf("%w: URI SANs %v, want exactly %s", ErrCertificateRejected, uriStrings(cert.URIs), want)
	}
	pub, ok := cert.PublicKey.(ed25519.PublicKey)
	if !ok || !pub.Equal(opts.PublicKey) {
		return nil, fmt.Errorf("%w: certificate does not certify this node's identity key", ErrCertificateRejected)
	}
	return cert, nil
}

// ParseNodeURI splits a rap://<cluster>/node/<node> identity URI.
func ParseNodeURI(u *url.URL) (clusterID, nodeID string, err error) {
	rest, ok := strings.CutPrefix(u.Path, "/node/")
	if u.Scheme != "rap" || u.Host == "" || !ok || rest == "" || strings.Contains(rest, "/") ||
		u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", "", fmt.Errorf("%w: %q is not rap://<cluster>/node/<node>", ErrCertificateRejected, u.String())
	}
	return u.Host, rest, nil
}

func uriStrings(us []*url.URL) []string {
	out := make([]string, len(us))
	for i, u := range us {
		out[i] = u.String()
	}
	return out
}
