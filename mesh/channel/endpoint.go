package channel

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flynn/noise"
	"github.com/rap-fabric/core/mesh/wire"
)

// peer is the per-remote-static-key state. Fields under "control" are guarded
// by Endpoint.mu; the atomics are touched by the data path.
type peer struct {
	key    Key
	macKey [32]byte // mac1 key for messages we send to this peer
	addr   atomic.Pointer[netip.AddrPort]
	cur    atomic.Pointer[session] // session used for sending

	// control
	persistent bool
	closed     bool
	state      State
	prev, next *session
	hs         *noise.HandshakeState
	hsIndex    uint32
	hsStarted  time.Time
	retryAt    time.Time
	attempts   int
	lastTS     wire.Timestamp // newest accepted initiation timestamp
	haveTS     bool

	// data path, Unix nanoseconds; 0 means unset
	lastSent      atomic.Int64
	sentSinceRecv atomic.Int64 // first data send not yet answered
	recvSinceSend atomic.Int64 // first data receive not yet answered
	hsPending     atomic.Bool
}

// setAddr stores a copy of a; the copy keeps callers' arguments on the stack.
func (p *peer) setAddr(a netip.AddrPort) {
	c := a
	p.addr.Store(&c)
}

// Endpoint is one node's set of channels in one cluster. Its methods are safe
// for concurrent use. It performs no I/O and starts no goroutines.
type Endpoint struct {
	cfg      Config
	t        Timers
	static   noise.DHKey
	pub      Key
	macKey   [32]byte // mac1 key for messages addressed to us
	prologue []byte
	pool     sync.Pool
	batches  sync.Pool // *sealBatch

	// tableMu guards the lookup maps read by the data path. It is a leaf lock:
	// it may be taken while holding mu, never the other way around.
	tableMu  sync.RWMutex
	sessions map[uint32]*session
	byKey    map[Key]*peer

	// mu guards control-plane state.
	mu        sync.Mutex
	closed    bool
	peers     []*peer // insertion order, for deterministic Tick
	pending   map[uint32]*peer
	revoked   map[Key]struct{}
	perSource *limiter[netip.Addr]
	perPeer   *limiter[Key]
	global    bucket
	lastTSNs  int64
	ctlBuf    [wire.InitiationLen + 64]byte

	counters [nCounters]atomic.Uint64
}

// NewEndpoint validates cfg (after filling defaults) and creates an Endpoint.
func NewEndpoint(cfg Config) (*Endpoint, error) {
	cfg.fillDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	pub, err := PublicKey(cfg.PrivateKey)
	if err != nil {
		return nil, err
	}
	e := &Endpoint{
		cfg:       cfg,
		t:         cfg.Timers,
		static:    noise.DHKey{Private: append([]byte(nil), cfg.PrivateKey[:]...), Public: append([]byte(nil), pub[:]...)},
		pub:       pub,
		macKey:    macKey(cfg.ClusterID, pub),
		prologue:  prologue(cfg.ClusterID),
		sessions:  make(map[uint32]*session),
		byKey:     make(map[Key]*peer),
		pending:   make(map[uint32]*peer),
		revoked:   make(map[Key]struct{}),
		perSource: newLimiter[netip.Addr](cfg.PerSourceHandshakes, cfg.MaxLimiterEntries),
		perPeer:   newLimiter[Key](cfg.PerPeerHandshakes, cfg.MaxLimiterEntries),
		global:    bucket{tokens: cfg.GlobalHandshakes.Burst, last: cfg.Clock()},
	}
	e.pool.New = func() any { b := make([]byte, 0, wire.MaxPacketLen); return &b }
	e.batches.New = func() any { return &sealBatch{} }
	return e, nil
}

// PublicKey returns this endpoint's static public key.
func (e *Endpoint) PublicKey() Key { return e.pub }

// AddPeer registers a peer to dial at addr. It calls Config.Authorize first.
// Adding a known peer updates its address and options. A persistent peer is
// dialled at the next Tick; others when traffic is sent (or Connect).
func (e *Endpoint) AddPeer(key Key, addr netip.AddrPort, opts PeerOptions) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return ErrClosed
	}
	if err := e.authorizeLocked(key); err != nil {
		return err
	}
	p := e.peerLocked(key, true)
	if addr.IsValid() {
		p.setAddr(addr)
	}
	p.persistent = opts.Persistent
	if p.closed {
		p.closed = false
		e.refreshLocked(p, e.cfg.Clock())
	}
	return nil
}

// Connect starts a handshake with a known peer now unless one is in flight.
func (e *Endpoint) Connect(key Key) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return ErrClosed
	}
	p := e.peerLocked(key, false)
	if p == nil {
		return ErrUnknownPeer
	}
	if p.hs != nil {
		return nil
	}
	return e.initiateLocked(p, e.cfg.Clock())
}

// PeerState returns the lifecycle state of a peer; StateIdle for unknown keys.
func (e *Endpoint) PeerState(key Key) State {
	e.mu.Lock()
	defer e.mu.Unlock()
	if p := e.peerLocked(key, false); p != nil {
		return p.state
	}
	return StateIdle
}

// PeerAddr returns the peer's current address (it follows authenticated
// packets, so a roaming peer is tracked).
func (e *Endpoint) PeerAddr(key Key) (netip.AddrPort, bool) {
	e.tableMu.RLock()
	p := e.byKey[key]
	e.tableMu.RUnlock()
	if p == nil {
		return netip.AddrPort{}, false
	}
	a := p.addr.Load()
	if a == nil {
		return netip.AddrPort{}, false
	}
	return *a, true
}

// Peers returns the keys of all known peers in insertion order.
func (e *Endpoint) Peers() []Key {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]Key, 0, len(e.peers))
	for _, p := range e.peers {
		out = append(out, p.key)
	}
	return out
}

// AcceptsInitiation reports whether pkt is an initiation addressed to this
// endpoint (its mac1 verifies under this endpoint's key and cluster). It costs
// one BLAKE2s and no public-key work; socket adapters use it to pick among
// several endpoints.
func (e *Endpoint) AcceptsInitiation(pkt []byte) bool {
	return len(pkt) == wire.InitiationLen && wire.Type(pkt[0]) == wire.TypeInitiation && checkMAC(&e.macKey, pkt)
}

// HandlePacket processes one received datagram from `from`. The Endpoint may
// decrypt in place, so pkt is modified; it is not retained after return.
// Data payloads go to Config.Deliver; handshake replies leave through
// Config.Send. The returned error explains a drop and is informational only.
// HandlePacket never panics on arbitrary input.
func (e *Endpoint) HandlePacket(pkt []byte, from netip.AddrPort) error {
	if len(pkt) == 0 {
		e.count(cMalformed)
		return ErrMalformed
	}
	switch wire.Type(pkt[0]) {
	case wire.TypeData, wire.TypeKeepalive:
		return e.handleData(pkt, from)
	case wire.TypeInitiation:
		return e.handleInitiation(pkt, from)
	case wire.TypeResponse:
		return e.handleResponse(pkt, from)
	}
	e.count(cMalformed)
	return fmt.Errorf("%w: type %d", ErrMalformed, pkt[0])
}

func (e *Endpoint) handleData(pkt []byte, from netip.AddrPort) error {
	h, err := wire.ParseHeader(pkt)
	if err != nil {
		e.count(cMalformed)
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	e.tableMu.RLock()
	s := e.sessions[h.Receiver]
	e.tableMu.RUnlock()
	if s == nil {
		e.count(cUnknownIndex)
		return ErrUnknownIndex
	}
	now := e.cfg.Clock()
	pt, err := s.open(pkt, h, now, &e.t)
	if err != nil {
		switch {
		case errors.Is(err, ErrReplay):
			e.count(cReplayDropped)
		case errors.Is(err, ErrDecrypt):
			e.count(cDecryptFailed)
		default:
			e.count(cExpired)
		}
		return err
	}
	p := s.peer
	p.sentSinceRecv.Store(0)
	if a := p.addr.Load(); a == nil || *a != from {
		p.setAddr(from) // roaming: follow authenticated packets only
	}
	if !s.confirmed.Load() {
		e.confirm(s, now)
	}
	if s.closed.Load() {
		e.count(cExpired)
		return ErrExpired // revoked while we were decrypting
	}
	if h.Type == wire.TypeKeepalive {
		e.count(cKeepalivesReceived)
		return nil
	}
	p.recvSinceSend.CompareAndSwap(0, now.UnixNano())
	e.count(cDelivered)
	if e.cfg.Deliver != nil {
		e.cfg.Deliver(p.key, pt)
	}
	return nil
}

// confirm promotes a responder-side session once the initiator used it.
func (e *Endpoint) confirm(s *session, now time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	p := s.peer
	if s.closed.Load() || s.confirmed.Load() || p.next != s {
		return
	}
	s.confirmed.Store(true)
	p.next = nil
	if old := p.prev; old != nil {
		e.closeSessionLocked(old)
	}
	p.prev = p.cur.Load()
	p.cur.Store(s)
	e.count(cSessionsEstablished)
	e.refreshLocked(p, now)
}

func (e *Endpoint) handleInitiation(pkt []byte, from netip.AddrPort) error {
	msg, err := wire.Parse(pkt)
	if err != nil {
		e.count(cMalformed)
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if !checkMAC(&e.macKey, pkt) {
		e.count(cBadMAC)
		return ErrBadMAC
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return ErrClosed
	}
	now := e.cfg.Clock()
	if !e.perSource.allow(from.Addr(), now) || !e.global.take(e.cfg.GlobalHandshakes, now) {
		e.count(cRateLimited)
		return fmt.Errorf("%w: source %v", ErrRateLimited, from.Addr())
	}
	hs, err := e.newHandshake(false, nil)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrHandshake, err)
	}
	var tsBuf [wire.TimestampLen]byte
	payload, _, _, err := hs.ReadMessage(tsBuf[:0], msg.Body)
	if err != nil || len(payload) != wire.TimestampLen {
		e.count(cHandshakeFailed)
		return fmt.Errorf("%w: initiation: %v", ErrHandshake, err)
	}
	key, err := KeyFromBytes(hs.PeerStatic())
	if err != nil {
		e.count(cHandshakeFailed)
		return fmt.Errorf("%w: %w", ErrHandshake, err)
	}
	ts := wire.Timestamp(payload)
	if err := e.authorizeLocked(key); err != nil {
		e.refuse(key, err)
		return err
	}
	p := e.peerLocked(key, false)
	if p != nil && p.haveTS && !ts.After(p.lastTS) {
		err := fmt.Errorf("%w: from %v", ErrReplayedInitiation, key)
		e.refuse(key, err)
		return err
	}
	if !e.perPeer.allow(key, now) {
		err := fmt.Errorf("%w: peer %v", ErrRateLimited, key)
		e.refuse(key, err)
		return err
	}
	if p == nil {
		p = e.peerLocked(key, true)
	}
	if p.closed { // closed (not revoked) peers may come back
		p.closed = false
	}
	p.lastTS, p.haveTS = ts, true
	p.setAddr(from)

	idx, err := e.allocIndexLocked()
	if err != nil {
		return err
	}
	out := wire.AppendResponsePrefix(e.ctlBuf[:0], idx, msg.Sender)
	out, cs1, cs2, err := hs.WriteMessage(out, nil)
	if err != nil || cs1 == nil {
		e.count(cHandshakeFailed)
		return fmt.Errorf("%w: response: %v", ErrHandshake, err)
	}
	s, err := newSession(p, idx, msg.Sender, cs2.UnsafeKey(), cs1.UnsafeKey(), now, false)
	if err != nil {
		return err
	}
	if p.next != nil {
		e.closeSessionLocked(p.next)
	}
	p.next = s
	e.tableMu.Lock()
	e.sessions[idx] = s
	e.tableMu.Unlock()
	out = appendMAC(&p.macKey, out)
	e.count(cHandshakesResponded)
	e.count(cResponsesSent)
	e.cfg.Send(out, from)
	e.emit(Event{Kind: EventSessionEstablished, Peer: key, State: p.state})
	e.refreshLocked(p, now)
	return nil
}

func (e *Endpoint) handleResponse(pkt []byte, from netip.AddrPort) error {
	msg, err := wire.Parse(pkt)
	if err != nil {
		e.count(cMalformed)
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if !checkMAC(&e.macKey, pkt) {
		e.count(cBadMAC)
		return ErrBadMAC
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return ErrClosed
	}
	p := e.pending[msg.Receiver]
	if p == nil || p.hs == nil || p.hsIndex != msg.Receiver {
		e.count(cUnknownIndex)
		return ErrUnknownIndex
	}
	_, cs1, cs2, err := p.hs.ReadMessage(nil, msg.Body)
	if err != nil || cs1 == nil {
		e.count(cHandshakeFailed)
		return fmt.Errorf("%w: response: %v", ErrHandshake, err)
	}
	now := e.cfg.Clock()
	s, err := newSession(p, msg.Receiver, msg.Sender, cs1.UnsafeKey(), cs2.UnsafeKey(), now, true)
	if err != nil {
		return err
	}
	delete(e.pending, p.hsIndex)
	p.hs, p.hsIndex, p.attempts, p.retryAt = nil, 0, 0, time.Time{}
	p.hsPending.Store(false)
	p.setAddr(from)
	e.tableMu.Lock()
	e.sessions[s.localIndex] = s
	e.tableMu.Unlock()
	if old := p.prev; old != nil {
		e.closeSessionLocked(old)
	}
	p.prev = p.cur.Load()
	p.cur.Store(s)
	e.count(cHandshakesCompleted)
	e.count(cSessionsEstablished)
	e.emit(Event{Kind: EventSessionEstablished, Peer: p.key})
	e.refreshLocked(p, now)
	// Confirm the session to the responder at once.
	e.sendKeepaliveLocked(p, s, now)
	return nil
}

// Seal encrypts plaintext for peer and appends the packet to dst, returning it
// and the address to send it to. With cap(dst)-len(dst) >= HeaderLen +
// len(plaintext) + TagLen it does not allocate. If no session is usable it
// starts a handshake (unless one is in flight) and returns ErrNoSession.
func (e *Endpoint) Seal(dst []byte, peerKey Key, plaintext []byte) ([]byte, netip.AddrPort, error) {
	if len(plaintext) > wire.MaxPacketLen-wire.MinDataLen {
		return dst, netip.AddrPort{}, ErrTooLarge
	}
	e.tableMu.RLock()
	p := e.byKey[peerKey]
	e.tableMu.RUnlock()
	if p == nil {
		return dst, netip.AddrPort{}, ErrUnknownPeer
	}
	now := e.cfg.Clock()
	s := p.cur.Load()
	if !s.usable(now, &e.t) {
		e.kick(p, now)
		return dst, netip.AddrPort{}, ErrNoSession
	}
	out, n, err := s.seal(dst, wire.TypeData, plaintext, &e.t)
	if err != nil {
		e.kick(p, now)
		return dst, netip.AddrPort{}, ErrNoSession
	}
	if (s.initiator && now.Sub(s.created) >= e.t.RekeyAfterTime) || n >= e.t.RekeyAfterMessages {
		e.kick(p, now)
	}
	ns := now.UnixNano()
	p.lastSent.Store(ns)
	p.recvSinceSend.Store(0)
	p.sentSinceRecv.CompareAndSwap(0, ns)
	a := p.addr.Load()
	if a == nil {
		return dst, netip.AddrPort{}, ErrNoAddress
	}
	return out, *a, nil
}

// Send seals plaintext into a pooled buffer and passes it to Config.Send.
func (e *Endpoint) Send(peerKey Key, plaintext []byte) error {
	bp := e.pool.Get().(*[]byte)
	pkt, to, err := e.Seal((*bp)[:0], peerKey, plaintext)
	if err == nil {
		e.cfg.Send(pkt, to)
	}
	e.pool.Put(bp)
	return err
}

// SendBatch seals every plaintext of plaintexts for peerKey, in order, and
// passes them to Config.SendBatch in one call (to Config.Send one by one
// without it). It returns how many were sealed and sent, and the error
// that stopped the rest (as Send's: no session yet, unknown peer, …).
func (e *Endpoint) SendBatch(peerKey Key, plaintexts [][]byte) (int, error) {
	if len(plaintexts) == 0 {
		return 0, nil
	}
	if e.cfg.SendBatch == nil || len(plaintexts) == 1 {
		for i, p := range plaintexts {
			if err := e.Send(peerKey, p); err != nil {
				return i, err
			}
		}
		return len(plaintexts), nil
	}
	bb := e.batches.Get().(*sealBatch)
	defer e.batches.Put(bb)
	var to netip.AddrPort
	var err error
	n, sealed := 0, 0 // pending in bb, sealed in all
	for _, p := range plaintexts {
		if n == len(bb.bufs) {
			bb.bufs = append(bb.bufs, make([]byte, 0, wire.MaxPacketLen))
			bb.pkts = append(bb.pkts, nil)
		}
		var pkt []byte
		var dst netip.AddrPort
		if pkt, dst, err = e.Seal(bb.bufs[n][:0], peerKey, p); err != nil {
			break
		}
		if n > 0 && dst != to {
			// The peer roamed mid-batch: send what was sealed for the old
			// address, and start over with this packet (its buffer moves
			// to slot 0).
			e.cfg.SendBatch(bb.pkts[:n], to)
			bb.bufs[0], bb.bufs[n] = bb.bufs[n], bb.bufs[0]
			n = 0
		}
		bb.pkts[n], to = pkt, dst
		n++
		sealed++
	}
	if n > 0 {
		e.cfg.SendBatch(bb.pkts[:n], to)
	}
	clear(bb.pkts)
	return sealed, err
}

// sealBatch is SendBatch's pooled packet buffers.
type sealBatch struct {
	bufs [][]byte
	pkts [][]byte
}

// kick starts a handshake from the data path unless one is in flight.
func (e *Endpoint) kick(p *peer, now time.Time) {
	if p.hsPending.Load() {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed || p.closed || p.hs != nil {
		return
	}
	if n := p.next; n.usable(now, &e.t) && now.Sub(n.created) < e.t.RekeyTimeout {
		return // we just answered a handshake; wait for its confirmation
	}
	_ = e.initiateLocked(p, now)
}

// Tick advances timers: expiry, handshake retries with backoff, rekeys,
// dead-peer detection and keepalives. Call it every few hundred milliseconds.
func (e *Endpoint) Tick() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return
	}
	now := e.cfg.Clock()
	for _, p := range e.peers {
		if p.closed {
			continue
		}
		e.tickPeerLocked(p, now)
		e.refreshLocked(p, now)
	}
}

func (e *Endpoint) tickPeerLocked(p *peer, now time.Time) {
	// Expire sessions.
	if s := p.cur.Load(); s != nil && !s.usable(now, &e.t) {
		e.closeSessionLocked(s)
		p.cur.Store(nil)
	}
	if s := p.prev; s != nil && !s.usable(now, &e.t) {
		e.closeSessionLocked(s)
		p.prev = nil
	}
	if s := p.next; s != nil && !s.usable(now, &e.t) {
		e.closeSessionLocked(s)
		p.next = nil
	}
	cur := p.cur.Load()

	if p.hs != nil {
		if !p.persistent && now.Sub(p.hsStarted) >= e.t.RekeyAttemptTime {
			e.cancelHandshakeLocked(p)
			p.attempts = 0
			e.emit(Event{Kind: EventHandshakeGaveUp, Peer: p.key})
			return
		}
		if !now.Before(p.retryAt) {
			_ = e.sendInitiationLocked(p, now)
		}
		return
	}

	need := false
	if cur == nil {
		need = p.persistent
	} else {
		age := now.Sub(cur.created)
		active := p.persistent || p.lastSent.Load() > cur.created.UnixNano()
		switch {
		case cur.initiator && age >= e.t.RekeyAfterTime && active:
			need = true
		case !cur.initiator && age >= e.t.RejectAfterTime-e.t.KeepaliveTimeout-e.t.RekeyTimeout && active:
			need = true // the initiator did not rekey in time
		case cur.sendCount.Load() >= e.t.RekeyAfterMessages:
			need = true
		}
	}
	if ssr := p.sentSinceRecv.Load(); ssr != 0 && now.Sub(time.Unix(0, ssr)) >= e.t.KeepaliveTimeout+e.t.RekeyTimeout {
		p.sentSinceRecv.Store(0)
		need = true // sent data, heard nothing back: the session may be dead
	}
	if need {
		_ = e.initiateLocked(p, now)
		return
	}
	if cur == nil {
		return
	}
	if rss := p.recvSinceSend.Load(); rss != 0 && now.Sub(time.Unix(0, rss)) >= e.t.KeepaliveTimeout {
		e.sendKeepaliveLocked(p, cur, now)
	} else if p.persistent && e.t.PersistentKeepalive > 0 && now.Sub(time.Unix(0, p.lastSent.Load())) >= e.t.PersistentKeepalive {
		e.sendKeepaliveLocked(p, cur, now)
	}
}

// initiateLocked starts a fresh handshake series (attempt counter reset).
func (e *Endpoint) initiateLocked(p *peer, now time.Time) error {
	p.attempts = 0
	p.hsStarted = now
	return e.sendInitiationLocked(p, now)
}

// sendInitiationLocked sends one initiation with a fresh ephemeral key,
// timestamp and index, and schedules the retry with exponential backoff.
func (e *Endpoint) sendInitiationLocked(p *peer, now time.Time) error {
	if err := e.authorizeLocked(p.key); err != nil {
		e.cancelHandshakeLocked(p)
		return err
	}
	a := p.addr.Load()
	if a == nil || !a.IsValid() {
		e.cancelHandshakeLocked(p)
		return ErrNoAddress
	}
	if p.hsIndex != 0 {
		delete(e.pending, p.hsIndex)
	}
	hs, err := e.newHandshake(true, p.key[:])
	if err != nil {
		return fmt.Errorf("%w: %w", ErrHandshake, err)
	}
	idx, err := e.allocIndexLocked()
	if err != nil {
		return err
	}
	ts := e.nextTimestampLocked(now)
	out := wire.AppendInitiationPrefix(e.ctlBuf[:0], idx)
	out, _, _, err = hs.WriteMessage(out, ts[:])
	if err != nil {
		return fmt.Errorf("%w: %w", ErrHandshake, err)
	}
	out = appendMAC(&p.macKey, out)
	if p.hs == nil {
		p.hsStarted = now
	}
	p.hs, p.hsIndex = hs, idx
	p.hsPending.Store(true)
	e.pending[idx] = p
	p.attempts++
	delay := e.t.RekeyTimeout
	for i := 1; i < p.attempts && delay < e.t.MaxBackoff; i++ {
		delay *= 2
	}
	delay = min(delay, e.t.MaxBackoff)
	p.retryAt = now.Add(delay + e.jitterLocked(delay/8))
	e.count(cInitiationsSent)
	e.cfg.Send(out, *a)
	e.refreshLocked(p, now)
	return nil
}

func (e *Endpoint) cancelHandshakeLocked(p *peer) {
	if p.hsIndex != 0 {
		delete(e.pending, p.hsIndex)
	}
	p.hs, p.hsIndex, p.retryAt = nil, 0, time.Time{}
	p.hsPending.Store(false)
}

func (e *Endpoint) sendKeepaliveLocked(p *peer, s *session, now time.Time) {
	a := p.addr.Load()
	if a == nil {
		return
	}
	out, _, err := s.seal(e.ctlBuf[:0], wire.TypeKeepalive, nil, &e.t)
	if err != nil {
		return
	}
	p.lastSent.Store(now.UnixNano())
	p.recvSinceSend.Store(0)
	e.count(cKeepalivesSent)
	e.cfg.Send(out, *a)
}

// nextTimestampLocked returns a TAI64N label strictly later than the previous
// one, even if the injected clock stands still or steps back.
func (e *Endpoint) nextTimestampLocked(now time.Time) wire.Timestamp {
	n := now.UnixNano()
	if n <= e.lastTSNs {
		n = e.lastTSNs + 1
	}
	e.lastTSNs = n
	return wire.TAI64N(n/1e9, int32(n%1e9))
}

func (e *Endpoint) jitterLocked(max time.Duration) time.Duration {
	if max <= 0 {
		return 0
	}
	var b [8]byte
	if _, err := io.ReadFull(e.cfg.Rand, b[:]); err != nil {
		return 0
	}
	return time.Duration(binary.LittleEndian.Uint64(b[:]) % uint64(max))
}

func (e *Endpoint) allocIndexLocked() (uint32, error) {
	var b [4]byte
	for range 64 {
		if _, err := io.ReadFull(e.cfg.Rand, b[:]); err != nil {
			return 0, fmt.Errorf("%w: index: %w", ErrHandshake, err)
		}
		idx := uint32(e.cfg.IndexPrefix)<<24 | binary.BigEndian.Uint32(b[:])&0x00ffffff
		if idx == 0 {
			continue
		}
		e.tableMu.RLock()
		_, used := e.sessions[idx]
		e.tableMu.RUnlock()
		if _, pend := e.pending[idx]; !used && !pend {
			return idx, nil
		}
	}
	return 0, fmt.Errorf("%w: index space exhausted", ErrHandshake)
}

func (e *Endpoint) authorizeLocked(key Key) error {
	if _, ok := e.revoked[key]; ok {
		return fmt.Errorf("%w: %v", ErrRevoked, key)
	}
	if err := e.cfg.Authorize(key[:]); err != nil {
		return fmt.Errorf("%w: %v: %w", ErrUnauthorized, key, err)
	}
	return nil
}

func (e *Endpoint) refuse(key Key, err error) {
	switch {
	case errors.Is(err, ErrReplayedInitiation):
		e.count(cRefusedReplay)
	case errors.Is(err, ErrRevoked):
		e.count(cRefusedRevoked)
	case errors.Is(err, ErrUnauthorized):
		e.count(cRefusedUnauthorized)
	case errors.Is(err, ErrRateLimited):
		e.count(cRateLimited)
	}
	e.emit(Event{Kind: EventHandshakeRefused, Peer: key, Err: err})
}

// peerLocked finds (or with create, creates) the peer for key.
func (e *Endpoint) peerLocked(key Key, create bool) *peer {
	e.tableMu.RLock()
	p := e.byKey[key]
	e.tableMu.RUnlock()
	if p != nil || !create {
		return p
	}
	p = &peer{key: key, macKey: macKey(e.cfg.ClusterID, key)}
	e.peers = append(e.peers, p)
	e.tableMu.Lock()
	e.byKey[key] = p
	e.tableMu.Unlock()
	return p
}

func (e *Endpoint) closeSessionLocked(s *session) {
	if s == nil || s.closed.Swap(true) {
		return
	}
	e.tableMu.Lock()
	if e.sessions[s.localIndex] == s {
		delete(e.sessions, s.localIndex)
	}
	e.tableMu.Unlock()
	e.count(cSessionsClosed)
}

// refreshLocked derives the peer's state and reports a change.
func (e *Endpoint) refreshLocked(p *peer, now time.Time) {
	var st State
	switch {
	case p.closed:
		st = StateClosed
	case p.cur.Load().usable(now, &e.t):
		st = StateEstablished
		if p.hs != nil {
			st = StateRekeying
		}
	case p.hs != nil || p.next.usable(now, &e.t):
		st = StateHandshaking
	default:
		st = StateIdle
	}
	if st != p.state {
		p.state = st
		e.emit(Event{Kind: EventState, Peer: p.key, State: st})
	}
}

func (e *Endpoint) emit(ev Event) {
	if e.cfg.Observer != nil {
		e.cfg.Observer(ev)
	}
}

// ClosePeer tears down every session and handshake with key and forgets the
// peer. An authorized peer may handshake again later.
func (e *Endpoint) ClosePeer(key Key) CloseReport {
	e.mu.Lock()
	defer e.mu.Unlock()
	r := e.closePeerLocked(key)
	if p := e.peerLocked(key, false); p != nil {
		e.tableMu.Lock()
		delete(e.byKey, key)
		e.tableMu.Unlock()
		for i, q := range e.peers {
			if q == p {
				e.peers = append(e.peers[:i], e.peers[i+1:]...)
				break
			}
		}
	}
	return r
}

// RevokePeer tears down every session and handshake with key, and refuses
// all future handshakes with it (inbound and outbound) on this endpoint, even
// if Config.Authorize has not caught up yet. The peer stays visible in
// StateClosed.
func (e *Endpoint) RevokePeer(key Key) CloseReport {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.revoked[key] = struct{}{}
	return e.closePeerLocked(key)
}

func (e *Endpoint) closePeerLocked(key Key) CloseReport {
	r := CloseReport{Peer: key}
	p := e.peerLocked(key, false)
	if p == nil {
		return r
	}
	r.Known, r.Previous = true, p.state
	for _, s := range []*session{p.cur.Load(), p.prev, p.next} {
		if s != nil && !s.closed.Load() {
			e.closeSessionLocked(s)
			r.Sessions++
		}
	}
	p.cur.Store(nil)
	p.prev, p.next = nil, nil
	r.HandshakeCancelled = p.hs != nil
	e.cancelHandshakeLocked(p)
	p.attempts = 0
	p.closed = true
	e.refreshLocked(p, e.cfg.Clock())
	return r
}

// Close closes every peer; later calls fail with ErrClosed.
func (e *Endpoint) Close() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return
	}
	for _, p := range e.peers {
		e.closePeerLocked(p.key)
	}
	e.closed = true
}

type counter int

const (
	cInitiationsSent counter = iota
	cResponsesSent
	cHandshakesCompleted
	cHandshakesResponded
	cRefusedReplay
	cRefusedUnauthorized
	cRefusedRevoked
	cRateLimited
	cBadMAC
	cHandshakeFailed
	cMalformed
	cUnknownIndex
	cReplayDropped
	cDecryptFailed
	cExpired
	cDelivered
	cKeepalivesReceived
	cKeepalivesSent
	cSessionsEstablished
	cSessionsClosed
	nCounters
)

func (e *Endpoint) count(c counter) { e.counters[c].Add(1) }

// Stats returns a snapshot of the cumulative counters.
func (e *Endpoint) Stats() Stats {
	g := func(c counter) uint64 { return e.counters[c].Load() }
	return Stats{
		InitiationsSent:     g(cInitiationsSent),
		ResponsesSent:       g(cResponsesSent),
		HandshakesCompleted: g(cHandshakesCompleted),
		HandshakesResponded: g(cHandshakesResponded),
		RefusedReplay:       g(cRefusedReplay),
		RefusedUnauthorized: g(cRefusedUnauthorized),
		RefusedRevoked:      g(cRefusedRevoked),
		RateLimited:         g(cRateLimited),
		BadMAC:              g(cBadMAC),
		HandshakeFailed:     g(cHandshakeFailed),
		Malformed:           g(cMalformed),
		UnknownIndex:        g(cUnknownIndex),
		ReplayDropped:       g(cReplayDropped),
		DecryptFailed:       g(cDecryptFailed),
		Expired:             g(cExpired),
		Delivered:           g(cDelivered),
		KeepalivesReceived:  g(cKeepalivesReceived),
		KeepalivesSent:      g(cKeepalivesSent),
		SessionsEstablished: g(cSessionsEstablished),
		SessionsClosed:      g(cSessionsClosed),
	}
}
