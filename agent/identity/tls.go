package identity

import (
	"bytes"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"time"
)

// ClientTLSOptions configure ClientTLSConfig, the agent's mTLS client
// configuration after enrollment.
type ClientTLSOptions struct {
	// Keys hold the identity key matching CertPEM.
	Keys *Keys
	// CertPEM is the node certificate issued by the cluster CA.
	CertPEM []byte
	// CAPEM is the stored cluster CA certificate; it is the only root.
	CAPEM []byte
	// CAPin is the pin from the join token; CAPEM must match it, and every
	// verified server chain must end in a CA with this pin.
	CAPin string
	// ServerName overrides the name verified in the server certificate;
	// empty means the host being dialled (crypto/tls's default).
	ServerName string
	// Now is the clock for certificate validity; nil means time.Now.
	Now func() time.Time
}

// ClientTLSConfig builds the agent's TLS 1.3 client configuration: it
// presents the node certificate with the Ed25519 identity key, trusts only the
// stored CA, and additionally checks in VerifyConnection that the verified
// chain ends in a CA whose SPKI matches the pin (so a CA file swapped on disk
// is not trusted).
func ClientTLSConfig(opts ClientTLSOptions) (*tls.Config, error) {
	if opts.Keys == nil {
		return nil, fmt.Errorf("%w: no keys", ErrInvalidKey)
	}
	digest, err := ParsePin(opts.CAPin)
	if err != nil {
		return nil, err
	}
	ca, err := ParseCertificatePEM(opts.CAPEM)
	if err != nil {
		return nil, fmt.Errorf("CA: %w", err)
	}
	if !MatchesPin(ca, digest) {
		return nil, fmt.Errorf("%w: stored CA has pin %s, expected %s", ErrPinMismatch, CAPin(ca), opts.CAPin)
	}
	leaf, err := ParseCertificatePEM(opts.CertPEM)
	if err != nil {
		return nil, fmt.Errorf("node certificate: %w", err)
	}
	if pub, ok := leaf.PublicKey.(ed25519.PublicKey); !ok || !pub.Equal(opts.Keys.SigningPublic()) {
		return nil, fmt.Errorf("%w: node certificate does not certify the identity key", ErrCertificateRejected)
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		Certificates: []tls.Certificate{{
			Certificate: [][]byte{leaf.Raw},
			PrivateKey:  opts.Keys.Signing,
			Leaf:        leaf,
		}},
		RootCAs:    roots,
		ServerName: opts.ServerName,
		Time:       now,
		VerifyConnection: func(cs tls.ConnectionState) error {
			for _, chain := range cs.VerifiedChains {
				if len(chain) > 0 && MatchesPin(chain[len(chain)-1], digest) {
					return nil
				}
			}
			return fmt.Errorf("%w: server chain does not end in the pinned CA", ErrPinMismatch)
		},
	}, nil
}

// EnrollmentTLSOptions configure EnrollmentTLSConfig.
type EnrollmentTLSOptions struct {
	// CAPin is the pin from the join token.
	CAPin string
	// ServerName is the name the server certificate must carry; empty means
	// the name crypto/tls reports for the connection (the dialled host). If
	// neither is known the handshake fails.
	ServerName string
	// Now is the clock for certificate validity; nil means time.Now.
	Now func() time.Time
}

// EnrollmentTLSConfig builds the TLS client configuration used before the
// agent has the CA (join request and approval polling). It sets
// InsecureSkipVerify only to replace crypto/tls's verification with its own
// in VerifyConnection: the server must present its full chain including the
// CA certificate; the CA is the presented certificate whose SPKI matches the
// pin (and that is a CA), and the leaf must chain to it, be valid at Now, carry
// server-auth usage and match the server name. A server that sends only its
// leaf cannot be verified and is refused. No client certificate is sent.
func EnrollmentTLSConfig(opts EnrollmentTLSOptions) (*tls.Config, error) {
	digest, err := ParsePin(opts.CAPin)
	if err != nil {
		return nil, err
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		ServerName: opts.ServerName,
		// Verification is done by VerifyConnection below, against the pin.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			name := opts.ServerName
			if name == "" {
				name = cs.ServerName
			}
			return VerifyPinnedChain(cs.PeerCertificates, digest, name, now())
		},
	}, nil
}

// VerifyPinnedChain verifies a presented server chain (leaf first) against a
// pin digest from ParsePin: some presented certificate other than the leaf
// must be a CA whose SPKI matches the pin, and the leaf must chain to it at
// now, with server-auth usage, for serverName (required).
func VerifyPinnedChain(chain []*x509.Certificate, digest []byte, serverName string, now time.Time) error {
	if len(chain) < 2 {
		return fmt.Errorf("%w: server presented %d certificate(s); it must send its chain including the CA", ErrPinMismatch, len(chain))
	}
	if serverName == "" {
		return fmt.Errorf("%w: no server name to verify", ErrCertificateRejected)
	}
	var ca *x509.Certificate
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		if ca == nil && c.IsCA && MatchesPin(c, digest) {
			ca = c
			continue
		}
		inter.AddCert(c)
	}
	if ca == nil || bytes.Equal(chain[0].Raw, ca.Raw) {
		return fmt.Errorf("%w: no presented CA certificate matches the pin", ErrPinMismatch)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	if _, err := chain[0].Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		CurrentTime:   now,
		DNSName:       serverName,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}); err != nil {
		return fmt.Errorf("%w: %w", ErrCertificateRejected, err)
	}
	return nil
}
