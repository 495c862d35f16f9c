package daemon

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/rap-fabric/core/fsm"
	"github.com/rap-fabric/core/pki"
)

// The Raft transport runs over mutual TLS. Each authority holds a member key
// (generated locally, kept in its data dir) and a member certificate issued by
// the platform CA when it joins; a connection is accepted only from a peer
// presenting a valid member certificate of the same platform CA. Node
// certificates (cluster CAs) and anything else are refused in the handshake.

const (
	memberKeyFile  = "member.key"
	memberCertFile = "member.crt"
	platformCAFile = "platform-ca.crt"
)

// memberTLS holds this authority's member identity and what it trusts.
type memberTLS struct {
	dir   string
	state *fsm.FSM
	key   ed25519.PrivateKey

	mu   sync.RWMutex
	cert []byte // DER, nil until issued
	ca   []byte // platform CA DER known from the data dir, nil until joined
}

func loadMemberTLS(dir string, state *fsm.FSM) (*memberTLS, error) {
	m := &memberTLS{dir: dir, state: state}
	kp := filepath.Join(dir, memberKeyFile)
	seed, err := os.ReadFile(kp)
	switch {
	case errors.Is(err, os.ErrNotExist):
		seed = make([]byte, ed25519.SeedSize)
		if _, err := rand.Read(seed); err != nil {
			return nil, err
		}
		if err := os.WriteFile(kp, seed, 0o600); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, err
	case len(seed) != ed25519.SeedSize:
		return nil, fmt.Errorf("daemon: %s is not an Ed25519 seed", kp)
	}
	m.key = ed25519.NewKeyFromSeed(seed)
	if b, err := os.ReadFile(filepath.Join(dir, memberCertFile)); err == nil {
		m.cert = b
	}
	if b, err := os.ReadFile(filepath.Join(dir, platformCAFile)); err == nil {
		m.ca = b
	}
	return m, nil
}

// MemberKey returns the Raft member public key kept in dir, creating it when
// absent.
func MemberKey(dir string) (ed25519.PublicKey, error) {
	m, err := loadMemberTLS(dir, nil)
	if err != nil {
		return nil, err
	}
	return m.PublicKey(), nil
}

// PublicKey is the member key's public half (sent when joining).
func (m *memberTLS) PublicKey() ed25519.PublicKey { return m.key.Public().(ed25519.PublicKey) }

// install stores an issued member certificate and the platform CA.
func (m *memberTLS) install(cert, ca []byte) error {
	if _, err := x509.ParseCertificate(cert); err != nil {
		return fmt.Errorf("daemon: member certificate: %w", err)
	}
	if err := os.WriteFile(filepath.Join(m.dir, memberCertFile), cert, 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(m.dir, platformCAFile), ca, 0o600); err != nil {
		return err
	}
	m.mu.Lock()
	m.cert, m.ca = cert, ca
	m.mu.Unlock()
	return nil
}

func (m *memberTLS) has() bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.cert != nil
}

func (m *memberTLS) certificate() (*tls.Certificate, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.cert == nil {
		return nil, errors.New("daemon: this authority has no member certificate yet (not joined)")
	}
	return &tls.Certificate{Certificate: [][]byte{m.cert}, PrivateKey: m.key}, nil
}

// trusted returns the platform CA certificates a peer may chain to: every key
// in the replicated state (current and rotated) and the one from the data dir.
func (m *memberTLS) trusted() [][]byte {
	var out [][]byte
	if m.state == nil {
		return nil
	}
	if ca, ok := m.state.ClusterCA("platform"); ok {
		out = append(out, ca.Current.CertDER)
		for _, k := range ca.History {
			out = append(out, k.CertDER)
		}
	}
	m.mu.RLock()
	if m.ca != nil {
		out = append(out, m.ca)
	}
	m.mu.RUnlock()
	return out
}

func (m *memberTLS) verify(rawCerts [][]byte, _ [][]*x509.Certificate) error {
	if len(rawCerts) == 0 {
		return errors.New("raft transport: peer presented no certificate")
	}
	cert, err := x509.ParseCertificate(rawCerts[0])
	if err != nil {
		return err
	}
	_, err = pki.VerifyMemberCert(cert, m.trusted(), time.Now())
	return err
}

func (m *memberTLS) serverConfig() *tls.Config {
	return &tls.Config{
		MinVersion:            tls.VersionTLS13,
		GetCertificate:        func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return m.certificate() },
		ClientAuth:            tls.RequireAnyClientCert,
		VerifyPeerCertificate: m.verify,
	}
}

func (m *memberTLS) clientConfig() *tls.Config {
	return &tls.Config{
		MinVersion:            tls.VersionTLS13,
		InsecureSkipVerify:    true, //nolint:gosec // verified by VerifyPeerCertificate against the platform CA
		GetClientCertificate:  func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return m.certificate() },
		VerifyPeerCertificate: m.verify,
	}
}

// tlsLayer wraps a raft.StreamLayer with mutual TLS.
type tlsLayer struct {
	inner raft.StreamLayer
	m     *memberTLS
}

// Accept returns the TLS server side without handshaking: the handshake runs
// on raft's first read in the connection's own goroutine, so a stalled or
// hostile client never blocks the accept loop, and a refused certificate just
// fails that connection's reads.
func (l *tlsLayer) Accept() (net.Conn, error) {
	c, err := l.inner.Accept()
	if err != nil {
		return nil, err
	}
	return tls.Server(c, l.m.serverConfig()), nil
}

func (l *tlsLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	c, err := l.inner.Dial(address, timeout)
	if err != nil {
		return nil, err
	}
	tc := tls.Client(c, l.m.clientConfig())
	_ = tc.SetDeadline(time.Now().Add(timeout))
	if err := tc.Handshake(); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("raft transport TLS to %s: %w", address, err)
	}
	_ = tc.SetDeadline(time.Time{})
	return tc, nil
}

func (l *tlsLayer) Close() error   { return l.inner.Close() }
func (l *tlsLayer) Addr() net.Addr { return l.inner.Addr() }

// tcpLayer is a plain TCP raft.StreamLayer advertising a given address.
type tcpLayer struct {
	ln  net.Listener
	adv net.Addr
}

func newTCPLayer(bind, advertise string) (*tcpLayer, error) {
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, err
	}
	l := &tcpLayer{ln: ln, adv: ln.Addr()}
	if advertise != "" {
		a, err := net.ResolveTCPAddr("tcp", advertise)
		if err != nil {
			_ = ln.Close()
			return nil, err
		}
		l.adv = a
	} else if ip := ln.Addr().(*net.TCPAddr).IP; ip.IsUnspecified() {
		_ = ln.Close()
		return nil, fmt.Errorf("daemon: --raft-advertise is required when --raft-bind %s has no concrete IP", bind)
	}
	return l, nil
}

func (l *tcpLayer) Accept() (net.Conn, error) { return l.ln.Accept() }
func (l *tcpLayer) Close() error              { return l.ln.Close() }
func (l *tcpLayer) Addr() net.Addr            { return l.adv }
func (l *tcpLayer) Dial(a raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return net.DialTimeout("tcp", string(a), timeout)
}
