package channel

import (
	"crypto/cipher"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rap-fabric/core/mesh/wire"
	"golang.org/x/crypto/chacha20poly1305"
)

// session is one established key pair. Everything but the counters, the
// replay window and the flags is immutable after creation, so the data path
// reads it without the endpoint's lock.
type session struct {
	peer        *peer
	localIndex  uint32
	remoteIndex uint32
	send, recv  cipher.AEAD
	created     time.Time
	initiator   bool

	confirmed atomic.Bool // responder: peer proved it has the keys
	closed    atomic.Bool
	sendCount atomic.Uint64 // next counter to use

	mu     sync.Mutex
	window ReplayWindow
}

func newSession(p *peer, local, remote uint32, sendKey, recvKey [32]byte, now time.Time, initiator bool) (*session, error) {
	s, err := chacha20poly1305.New(sendKey[:])
	if err != nil {
		return nil, fmt.Errorf("%w: send key: %w", ErrHandshake, err)
	}
	r, err := chacha20poly1305.New(recvKey[:])
	if err != nil {
		return nil, fmt.Errorf("%w: recv key: %w", ErrHandshake, err)
	}
	ses := &session{peer: p, localIndex: local, remoteIndex: remote, send: s, recv: r, created: now, initiator: initiator}
	ses.confirmed.Store(initiator)
	return ses, nil
}

// usable reports whether the session may still carry packets at now.
func (s *session) usable(now time.Time, t *Timers) bool {
	return s != nil && !s.closed.Load() && now.Sub(s.created) < t.RejectAfterTime &&
		s.sendCount.Load() < t.RejectAfterMessages
}

// seal appends `header | ciphertext` to dst. plaintext may alias
// dst[len(dst)+HeaderLen:] exactly (in-place encryption).
func (s *session) seal(dst []byte, typ wire.Type, plaintext []byte, t *Timers) ([]byte, uint64, error) {
	n := s.sendCount.Add(1) - 1
	if n >= t.RejectAfterMessages {
		return dst, n, ErrExpired
	}
	start := len(dst)
	dst = wire.AppendHeader(dst, wire.Header{Type: typ, Receiver: s.remoteIndex, Counter: n})
	hdr := dst[start:]
	out := s.send.Seal(dst, hdr[wire.NonceOffset:wire.NonceOffset+wire.NonceLen], plaintext, hdr)
	return out, n, nil
}

// open authenticates and decrypts a data/keepalive packet in place. The replay
// window is checked before decryption and advanced only after it succeeded.
func (s *session) open(pkt []byte, h wire.Header, now time.Time, t *Timers) ([]byte, error) {
	if h.Counter >= t.RejectAfterMessages || now.Sub(s.created) >= t.RejectAfterTime || s.closed.Load() {
		return nil, ErrExpired
	}
	s.mu.Lock()
	ok := s.window.Check(h.Counter)
	s.mu.Unlock()
	if !ok {
		return nil, ErrReplay
	}
	ct := pkt[wire.HeaderLen:]
	pt, err := s.recv.Open(ct[:0], pkt[wire.NonceOffset:wire.NonceOffset+wire.NonceLen], ct, pkt[:wire.HeaderLen])
	if err != nil {
		return nil, ErrDecrypt
	}
	s.mu.Lock()
	ok = s.window.Accept(h.Counter)
	s.mu.Unlock()
	if !ok {
		return nil, ErrReplay
	}
	return pt, nil
}
