package httpapi

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/rap-fabric/core/agentapi"
	"github.com/rap-fabric/core/authority"
	"github.com/rap-fabric/core/pki"
)

// PlatformCA is the FSM "cluster" id of the platform CA that signs the owner
// API's server certificates. Agents name the cluster they want in TLS (SNI):
// agentapi.ServerNameForPin before enrollment, agentapi.ServerNameForCluster
// after; any other name gets the platform certificate (owner API).
const PlatformCA = "platform"

// ServerNameForPin returns the TLS server name an enrolling agent uses.
func ServerNameForPin(pin string) string { return agentapi.ServerNameForPin(pin) }

// ServerNameForCluster returns the TLS server name an enrolled agent uses.
func ServerNameForCluster(clusterID string) string { return agentapi.ServerNameForCluster(clusterID) }

// clusterForServerName resolves an SNI name to a cluster id ("" when none).
func (s *Server) clusterForServerName(name string) string {
	if id := agentapi.ClusterOf(name); id != "" {
		if _, ok := s.a.FSM().ClusterCA(id); ok {
			return id
		}
		return ""
	}
	prefix := agentapi.PinPrefixOf(name)
	if prefix == "" {
		return ""
	}
	for _, id := range s.a.FSM().Clusters() {
		ca, _ := s.a.FSM().ClusterCA(id)
		for _, k := range ca.Trusted() {
			if pin, err := pki.PinDER(k.CertDER); err == nil && strings.HasPrefix(strings.TrimPrefix(pin, "sha256:"), prefix) {
				return id
			}
		}
	}
	return ""
}

// TLSConfig returns the server TLS configuration: per-SNI certificates signed by
// the cluster (or platform) CA from the replicated state, and optional client
// certificates that, when presented, must verify as unrevoked node certificates
// during the handshake — a revoked node is refused at its next handshake.
func (s *Server) TLSConfig(hosts []string) *tls.Config {
	cc := &certCache{s: s, hosts: hosts, certs: map[string]*tls.Certificate{}}
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		// HTTP/2 first: an agent's heartbeat stream, long poll and other
		// requests share one connection (see apiclient.New).
		NextProtos:     []string{"h2", "http/1.1"},
		GetCertificate: cc.get,
		ClientAuth:     tls.RequestClientCert,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return nil
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			if _, err := s.a.AuthenticateNode(ctx, cs.PeerCertificates[0], ""); err != nil && authority.CodeOf(err) != authority.CodeCARetired {
				return errors.New("client certificate refused")
			}
			// A genuine certificate of a retired CA root passes the
			// handshake so that the route refuses it with code ca_retired.
			return nil
		},
	}
}

type certCache struct {
	s     *Server
	hosts []string
	mu    sync.Mutex
	key   *ecdsa.PrivateKey
	certs map[string]*tls.Certificate // by CA id and signing key id
}

func (c *certCache) get(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	caID := c.s.clusterForServerName(hello.ServerName)
	if caID == "" {
		caID = PlatformCA
	}
	caKey, caDER, caKID, err := c.s.a.CASigner(caID)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		if caID != PlatformCA {
			return nil, err
		}
		return c.selfSigned()
	}
	// Keyed by the signing root too: when a CA rotation retires the old
	// root, new handshakes get a certificate of the new one at once.
	ck := caID + "|" + caKID
	if cert, ok := c.certs[ck]; ok && time.Until(cert.Leaf.NotAfter) > time.Hour {
		return cert, nil
	}
	if c.key == nil {
		// ECDSA P-256 leaves work for every client (browsers included), under
		// both the Ed25519 cluster CAs and the ECDSA platform CA.
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		c.key = k
	}
	names := append([]string{"localhost", "rap-authority"}, c.hosts...)
	if caID != PlatformCA {
		names = append(names, ServerNameForCluster(caID))
		if pin, err := pki.PinDER(caDER); err == nil {
			names = append(names, ServerNameForPin(pin))
		}
	}
	var dns []string
	var ips []net.IP
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			ips = append(ips, ip)
		} else {
			dns = append(dns, n)
		}
	}
	ips = append(ips, net.IPv4(127, 0, 0, 1), net.IPv6loopback)
	der, err := pki.IssueServerCert(rand.Reader, caKey, caDER, &c.key.PublicKey, dns, ips, time.Now(), 7*24*time.Hour)
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	cert := &tls.Certificate{Certificate: [][]byte{der, caDER}, PrivateKey: c.key, Leaf: leaf}
	c.certs[ck] = cert
	return cert, nil
}

// selfSigned serves before the platform CA exists (a fresh authority that has
// not yet replicated the group's state). Clients that pin the platform CA will
// refuse it, as they should.
func (c *certCache) selfSigned() (*tls.Certificate, error) {
	if cert, ok := c.certs["self"]; ok {
		return cert, nil
	}
	caKey, caDER, err := pki.NewCA(rand.Reader, "unbootstrapped", time.Now(), 24*time.Hour)
	if err != nil {
		return nil, err
	}
	leaf, _ := x509.ParseCertificate(caDER)
	cert := &tls.Certificate{Certificate: [][]byte{caDER}, PrivateKey: caKey, Leaf: leaf}
	c.certs["self"] = cert
	return cert, nil
}
