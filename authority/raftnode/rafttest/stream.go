// Package rafttest is test support for raftnode: a TCP stream layer whose links
// can be cut (Block/Heal) and a harness that runs N raftnode members on
// loopback with temp dirs, waits for a leader, partitions, heals, kills and
// restarts them from disk.
//
// Only tests and benchmarks import it; production code must not. It does not
// import package testing: the harness takes the small T interface, which
// *testing.T and *testing.B satisfy.
package rafttest

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// ErrBlocked is returned when dialing a peer whose link is blocked.
var ErrBlocked = errors.New("rafttest: link blocked")

// ErrClosed is returned by Accept after Close.
var ErrClosed = errors.New("rafttest: stream layer closed")

const magic = "RTST"

// StreamLayer is a raft.StreamLayer over real TCP that can cut the links to
// chosen peers. Each dialed connection starts with a small header naming the
// dialer's address, so the accepting side knows the peer too: blocking a peer
// on one side cuts the link in both directions.
type StreamLayer struct {
	ln   net.Listener
	self raft.ServerAddress

	acceptCh  chan net.Conn
	closeCh   chan struct{}
	closeOnce sync.Once

	mu      sync.Mutex
	blocked map[raft.ServerAddress]bool
	conns   map[*conn]struct{}
}

var _ raft.StreamLayer = (*StreamLayer)(nil)

// Listen starts a stream layer on addr ("127.0.0.1:0" picks a port).
func Listen(addr string) (*StreamLayer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return NewStreamLayer(ln), nil
}

// NewStreamLayer wraps an existing TCP listener; its address is advertised.
func NewStreamLayer(ln net.Listener) *StreamLayer {
	s := &StreamLayer{ln: ln, self: raft.ServerAddress(ln.Addr().String()),
		acceptCh: make(chan net.Conn), closeCh: make(chan struct{}),
		blocked: map[raft.ServerAddress]bool{}, conns: map[*conn]struct{}{}}
	go s.acceptLoop()
	return s
}

func (s *StreamLayer) acceptLoop() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		go s.handshake(c)
	}
}

func (s *StreamLayer) handshake(c net.Conn) {
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	hdr := make([]byte, len(magic)+1)
	if _, err := io.ReadFull(c, hdr); err != nil || string(hdr[:len(magic)]) != magic {
		_ = c.Close()
		return
	}
	peer := make([]byte, hdr[len(magic)])
	if _, err := io.ReadFull(c, peer); err != nil {
		_ = c.Close()
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	wc, ok := s.track(c, raft.ServerAddress(peer))
	if !ok {
		return
	}
	select {
	case s.acceptCh <- wc:
	case <-s.closeCh:
		_ = wc.Close()
	}
}

// track registers c unless its peer is blocked (then c is closed).
func (s *StreamLayer) track(c net.Conn, peer raft.ServerAddress) (*conn, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.blocked[peer] {
		_ = c.Close()
		return nil, false
	}
	wc := &conn{Conn: c, peer: peer, owner: s}
	s.conns[wc] = struct{}{}
	return wc, true
}

// Accept implements net.Listener.
func (s *StreamLayer) Accept() (net.Conn, error) {
	select {
	case c := <-s.acceptCh:
		return c, nil
	case <-s.closeCh:
		return nil, ErrClosed
	}
}

// Close implements net.Listener: it stops listening and closes every link.
func (s *StreamLayer) Close() error {
	var err error
	s.closeOnce.Do(func() {
		close(s.closeCh)
		err = s.ln.Close()
		s.mu.Lock()
		for c := range s.conns {
			_ = c.Conn.Close()
		}
		s.conns = map[*conn]struct{}{}
		s.mu.Unlock()
	})
	return err
}

// Addr implements net.Listener.
func (s *StreamLayer) Addr() net.Addr { return s.ln.Addr() }

// Dial implements raft.StreamLayer; it refuses blocked peers.
func (s *StreamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	if s.isBlocked(address) {
		return nil, fmt.Errorf("%w: %s -> %s", ErrBlocked, s.self, address)
	}
	c, err := net.DialTimeout("tcp", string(address), timeout)
	if err != nil {
		return nil, err
	}
	hdr := append([]byte(magic), byte(len(s.self)))
	hdr = append(hdr, s.self...)
	_ = c.SetWriteDeadline(time.Now().Add(timeout))
	if _, err := c.Write(hdr); err != nil {
		_ = c.Close()
		return nil, err
	}
	_ = c.SetWriteDeadline(time.Time{})
	wc, ok := s.track(c, address)
	if !ok {
		return nil, fmt.Errorf("%w: %s -> %s", ErrBlocked, s.self, address)
	}
	return wc, nil
}

func (s *StreamLayer) isBlocked(a raft.ServerAddress) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.blocked[a]
}

// Block cuts the links to peers: dials to them fail, connections from them
// are refused, and existing connections with them are closed.
func (s *StreamLayer) Block(peers ...raft.ServerAddress) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range peers {
		s.blocked[p] = true
	}
	for c := range s.conns {
		if s.blocked[c.peer] {
			_ = c.Conn.Close()
			delete(s.conns, c)
		}
	}
}

// Heal removes every block.
func (s *StreamLayer) Heal() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.blocked = map[raft.ServerAddress]bool{}
}

// conn is a tracked connection with a known peer.
type conn struct {
	net.Conn
	peer  raft.ServerAddress
	owner *StreamLayer
}

func (c *conn) Close() error {
	c.owner.mu.Lock()
	delete(c.owner.conns, c)
	c.owner.mu.Unlock()
	return c.Conn.Close()
}
