package e2e

import (
	"bytes"
	"context"
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flynn/noise"
	"github.com/rap-fabric/core/mesh/channel"
	"github.com/rap-fabric/core/mesh/qos"
	"github.com/rap-fabric/core/mesh/routing"
	"github.com/rap-fabric/core/mesh/wire"
	"golang.org/x/crypto/chacha20poly1305"
)

var suite = noise.NewCipherSuite(noise.DH25519, noise.CipherChaChaPoly, noise.HashBLAKE2s)

// rejectAfter bounds the counters of one flow.
const rejectAfter = 1 << 60

// prologue binds the handshake to the cluster, the "e2e" purpose and the
// routing header: a relay that rewrites src, dst or flow id breaks it.
func prologue(cluster, src, dst string, flow uint32) []byte {
	b := make([]byte, 0, 32+len(cluster)+len(src)+len(dst))
	b = append(b, "rap-fabric e2e v1\x00"...)
	b = append(b, cluster...)
	b = append(b, "\x00e2e\x00"...)
	b = append(b, src...)
	b = append(b, 0)
	b = append(b, dst...)
	b = append(b, 0)
	return binary.BigEndian.AppendUint32(b, flow)
}

// Routes is what the Forwarder needs from the routing engine;
// *routing.Router implements it.
type Routes interface {
	Lookup(dst string) (nextHop string, cost routing.Metric, hops int, err error)
}

// Handler serves messages of an accepted flow. msg is valid only during the
// call. It runs on the goroutine that called HandleFrame and must not block.
type Handler func(c *Conn, msg []byte)

// Config configures a Forwarder.
type Config struct {
	// Self and ClusterID identify this node.
	Self, ClusterID string
	// PrivateKey is this node's X25519 static key for end-to-end sessions.
	PrivateKey channel.Key
	// PeerKey returns a node's static public key from the signed peer
	// directory; nodes it does not know can neither be dialled nor accepted.
	PeerKey func(node string) (channel.Key, bool)
	// Routes chooses next hops (the node's routing.Router).
	Routes Routes
	// Policy decides whom this node talks to (AllowDestination) and for whom
	// it relays (AllowRelay). Defaults to routing.AllowAll.
	Policy routing.Policy
	// Send transmits a frame to a neighbour over its hop-by-hop link. The
	// Forwarder does not touch frame after the call.
	Send func(neighbour string, frame []byte) error
	// Clock defaults to time.Now; Rand is required (crypto/rand.Reader in
	// production).
	Clock func() time.Time
	Rand  io.Reader
	// TTL of frames this node originates (default 16).
	TTL uint8
	// HandshakeRetry and HandshakeAttempts govern initiation retransmits
	// (defaults 1 s and 5).
	HandshakeRetry    time.Duration
	HandshakeAttempts int
	// RecvQueue bounds each Conn's receive queue, PendingQueue the messages
	// queued before the handshake completes, AcceptQueue the flows waiting
	// for Accept (defaults 256, 64, 64).
	RecvQueue, PendingQueue, AcceptQueue int
}

// Stats count what a Forwarder did.
type Stats struct {
	Sent, Delivered, Forwarded                         uint64
	DroppedTTL, DroppedNoRoute, DroppedPolicy          uint64
	DroppedReplay, DroppedAuth, DroppedMalformed       uint64
	DroppedNoSession, DroppedQueue, HandshakesComplete uint64
}

type counters struct {
	sent, delivered, forwarded              atomic.Uint64
	ttl, noRoute, policy, replay, auth, bad atomic.Uint64
	noSession, queue, handshakes            atomic.Uint64
}

type connKey struct {
	peer      string
	flow      uint32
	initiator bool // we initiated
}

// Forwarder is one node's end-to-end endpoint and relay. Safe for
// concurrent use.
type Forwarder struct {
	cfg    Config
	static noise.DHKey

	mu       sync.Mutex
	conns    map[connKey]*Conn
	lastTS   map[string]wire.Timestamp
	lastTSNs int64
	handlers map[string]Handler
	acceptq  chan *Conn
	c        counters
}

// New creates a Forwarder.
func New(cfg Config) (*Forwarder, error) {
	switch {
	case cfg.Self == "" || len(cfg.Self) > 255 || cfg.ClusterID == "":
		return nil, fmt.Errorf("%w: Self and ClusterID are required", ErrConfig)
	case cfg.PeerKey == nil || cfg.Routes == nil || cfg.Send == nil || cfg.Rand == nil:
		return nil, fmt.Errorf("%w: PeerKey, Routes, Send and Rand are required", ErrConfig)
	}
	if cfg.Policy == nil {
		cfg.Policy = routing.AllowAll{}
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.TTL == 0 {
		cfg.TTL = 16
	}
	if cfg.HandshakeRetry <= 0 {
		cfg.HandshakeRetry = time.Second
	}
	if cfg.HandshakeAttempts <= 0 {
		cfg.HandshakeAttempts = 5
	}
	if cfg.RecvQueue <= 0 {
		cfg.RecvQueue = 256
	}
	if cfg.PendingQueue <= 0 {
		cfg.PendingQueue = 64
	}
	if cfg.AcceptQueue <= 0 {
		cfg.AcceptQueue = 64
	}
	pub, err := channel.PublicKey(cfg.PrivateKey)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	f := &Forwarder{
		cfg:      cfg,
		static:   noise.DHKey{Private: cfg.PrivateKey[:], Public: pub[:]},
		conns:    make(map[connKey]*Conn),
		lastTS:   make(map[string]wire.Timestamp),
		handlers: make(map[string]Handler),
		acceptq:  make(chan *Conn, cfg.AcceptQueue),
	}
	f.handlers[probeService] = f.serveProbe
	return f, nil
}

// Handle registers h for flows dialled with service name service; such flows
// are not offered to Accept.
func (f *Forwarder) Handle(service string, h Handler) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.handlers[service] = h
}

// Unhandle removes the handler of service: later flows for it go to Accept.
// Flows already accepted keep their handler until they close.
func (f *Forwarder) Unhandle(service string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.handlers, service)
}

// Stats returns the counters.
func (f *Forwarder) Stats() Stats {
	c := &f.c
	return Stats{
		Sent: c.sent.Load(), Delivered: c.delivered.Load(), Forwarded: c.forwarded.Load(),
		DroppedTTL: c.ttl.Load(), DroppedNoRoute: c.noRoute.Load(), DroppedPolicy: c.policy.Load(),
		DroppedReplay: c.replay.Load(), DroppedAuth: c.auth.Load(), DroppedMalformed: c.bad.Load(),
		DroppedNoSession: c.noSession.Load(), DroppedQueue: c.queue.Load(), HandshakesComplete: c.handshakes.Load(),
	}
}

// Dial opens a flow to dst for a service adapter; messages arrive at the
// destination's Accept. The Conn is usable at once: messages sent before
// the handshake completes are queued.
func (f *Forwarder) Dial(dst string) (*Conn, error) { return f.DialService(dst, "") }

// DialService opens a flow to dst's service (see Handle). Its frames carry
// no QoS class (relays queue them as qos.Default).
func (f *Forwarder) DialService(dst, service string) (*Conn, error) {
	return f.dial(dst, service, service == probeService, 0)
}

// DialServiceClass opens a flow to dst's service whose frames, both ways,
// carry QoS class class: every hop queues them in that class.
func (f *Forwarder) DialServiceClass(dst, service string, class qos.Class) (*Conn, error) {
	return f.dial(dst, service, service == probeService, classFlags(class))
}

func (f *Forwarder) dial(dst, service string, record bool, class byte) (*Conn, error) {
	if dst == f.cfg.Self || dst == "" || len(dst) > 255 || len(service) > 1024 {
		return nil, fmt.Errorf("%w: bad destination %q", ErrConfig, dst)
	}
	if !f.cfg.Policy.AllowDestination(dst) {
		f.c.policy.Add(1)
		return nil, fmt.Errorf("%w: destination %q", ErrPolicy, dst)
	}
	key, ok := f.cfg.PeerKey(dst)
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownPeer, dst)
	}
	f.mu.Lock()
	var flow uint32
	for {
		var b [4]byte
		if _, err := io.ReadFull(f.cfg.Rand, b[:]); err != nil {
			f.mu.Unlock()
			return nil, fmt.Errorf("e2e: flow id: %w", err)
		}
		flow = binary.BigEndian.Uint32(b[:])
		if _, taken := f.conns[connKey{dst, flow, true}]; !taken {
			break
		}
	}
	hs, err := noise.NewHandshakeState(noise.Config{
		CipherSuite: suite, Random: f.cfg.Rand, Pattern: noise.HandshakeIK, Initiator: true,
		Prologue: prologue(f.cfg.ClusterID, f.cfg.Self, dst, flow), StaticKeypair: f.static, PeerStatic: key[:],
	})
	if err != nil {
		f.mu.Unlock()
		return nil, fmt.Errorf("%w: %w", ErrHandshake, err)
	}
	now := f.cfg.Clock()
	ns := max(now.UnixNano(), f.lastTSNs+1) // strictly increasing per node
	f.lastTSNs = ns
	ts := wire.TAI64N(ns/1e9, int32(ns%1e9))
	flags := FlagFromInitiator | class
	if record {
		flags |= FlagRecordRoute
	}
	frame, _ := appendHeader(nil, TypeInit, flags, flow, f.cfg.Self, dst)
	frame, _, _, err = hs.WriteMessage(frame, append(ts[:], service...))
	if err != nil {
		f.mu.Unlock()
		return nil, fmt.Errorf("%w: %w", ErrHandshake, err)
	}
	frame[ttlOff] = f.cfg.TTL
	c := f.newConn(dst, flow, true, service, record)
	c.class = class
	c.hs, c.initFrame, c.sentAt, c.attempts = hs, frame, now, 1
	f.conns[connKey{dst, flow, true}] = c
	f.mu.Unlock()
	_ = f.route(dst, bytes.Clone(frame)) // retried by Tick if there is no route yet
	return c, nil
}

// Accept returns the next inbound flow without a registered handler.
func (f *Forwarder) Accept(ctx context.Context) (*Conn, error) {
	select {
	case c := <-f.acceptq:
		return c, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Tick retransmits unanswered initiations and fails flows whose handshake
// timed out. Call it every few hundred milliseconds.
func (f *Forwarder) Tick() {
	now := f.cfg.Clock()
	type resend struct {
		dst   string
		frame []byte
	}
	var out []resend
	var failed []*Conn
	f.mu.Lock()
	for k, c := range f.conns {
		c.mu.Lock()
		if c.state == stateHandshaking && now.Sub(c.sentAt) >= f.cfg.HandshakeRetry {
			if c.attempts >= f.cfg.HandshakeAttempts {
				delete(f.conns, k)
				failed = append(failed, c)
			} else {
				c.attempts++
				c.sentAt = now
				out = append(out, resend{c.remote, bytes.Clone(c.initFrame)})
			}
		}
		c.mu.Unlock()
	}
	f.mu.Unlock()
	for _, c := range failed {
		c.fail(fmt.Errorf("%w: %s after %d attempts", ErrHandshakeTimeout, c.remote, f.cfg.HandshakeAttempts))
	}
	for _, r := range out {
		_ = f.route(r.dst, r.frame)
	}
}

// route sends a frame this node originates towards dst.
func (f *Forwarder) route(dst string, frame []byte) error {
	next, _, _, err := f.cfg.Routes.Lookup(dst)
	if err != nil || next == "" {
		f.c.noRoute.Add(1)
		return fmt.Errorf("%w to %q: %w", ErrNoRoute, dst, err)
	}
	f.c.sent.Add(1)
	return f.cfg.Send(next, frame)
}

// HandleFrame processes a frame received from neighbour from over its
// authenticated link. The Forwarder takes ownership of frame (it may modify
// it in place and pass it on). Frames for other nodes are relayed without
// being opened; frames for this node are authenticated, replay-checked and
// delivered.
func (f *Forwarder) HandleFrame(from string, frame []byte) error {
	p, err := parse(frame)
	if err != nil {
		f.c.bad.Add(1)
		return err
	}
	if p.Dst != f.cfg.Self {
		return f.relay(from, p, frame)
	}
	switch p.Type {
	case TypeInit:
		return f.handleInit(p, frame)
	case TypeResp:
		return f.handleResp(p, frame)
	default:
		return f.handleData(p, frame)
	}
}

// relay forwards a frame it cannot read: policy, TTL, next hop. Nothing
// else about the frame is inspected.
func (f *Forwarder) relay(from string, p parsed, frame []byte) error {
	pol := f.cfg.Policy
	if p.Src == f.cfg.Self || !pol.AllowRelay(p.Src, p.Dst) || !pol.AllowRelay(from, p.Dst) {
		f.c.policy.Add(1)
		return fmt.Errorf("%w: relay %s→%s from %s", ErrPolicy, p.Src, p.Dst, from)
	}
	if p.TTL <= 1 {
		f.c.ttl.Add(1)
		return fmt.Errorf("%w: %s→%s", ErrTTLExpired, p.Src, p.Dst)
	}
	next, _, _, err := f.cfg.Routes.Lookup(p.Dst)
	if err != nil || next == "" {
		f.c.noRoute.Add(1)
		return fmt.Errorf("%w to %q: %w", ErrNoRoute, p.Dst, err)
	}
	frame[ttlOff] = p.TTL - 1
	if p.Flags&FlagRecordRoute != 0 {
		frame = withRecord(frame, p, f.cfg.Self)
	}
	f.c.forwarded.Add(1)
	return f.cfg.Send(next, frame)
}

func (f *Forwarder) handleInit(p parsed, frame []byte) error {
	if p.Flags&FlagFromInitiator == 0 {
		f.c.bad.Add(1)
		return fmt.Errorf("%w: init without initiator flag", ErrMalformed)
	}
	body := frame[p.bodyOff:]
	k := connKey{p.Src, p.Flow, false}
	f.mu.Lock()
	if c := f.conns[k]; c != nil && bytes.Equal(c.initBody, body) {
		resp := bytes.Clone(c.respFrame) // retransmitted initiation: answer again
		f.mu.Unlock()
		return f.route(p.Src, resp)
	}
	f.mu.Unlock()
	if !f.cfg.Policy.AllowDestination(p.Src) {
		f.c.policy.Add(1)
		return fmt.Errorf("%w: source %q", ErrPolicy, p.Src)
	}
	key, ok := f.cfg.PeerKey(p.Src)
	if !ok {
		f.c.auth.Add(1)
		return fmt.Errorf("%w: %q", ErrUnknownPeer, p.Src)
	}
	hs, err := noise.NewHandshakeState(noise.Config{
		CipherSuite: suite, Random: f.cfg.Rand, Pattern: noise.HandshakeIK,
		Prologue: prologue(f.cfg.ClusterID, p.Src, p.Dst, p.Flow), StaticKeypair: f.static,
	})
	if err != nil {
		return fmt.Errorf("%w: %w", ErrHandshake, err)
	}
	payload, _, _, err := hs.ReadMessage(nil, body)
	if err != nil {
		f.c.auth.Add(1)
		return fmt.Errorf("%w: %w", ErrHandshake, err)
	}
	if !bytes.Equal(hs.PeerStatic(), key[:]) {
		f.c.auth.Add(1)
		return fmt.Errorf("%w: %q", ErrUnauthorized, p.Src)
	}
	if len(payload) < wire.TimestampLen {
		f.c.bad.Add(1)
		return fmt.Errorf("%w: init payload", ErrMalformed)
	}
	var ts wire.Timestamp
	copy(ts[:], payload)
	service := string(payload[wire.TimestampLen:])
	resp, _ := appendHeader(nil, TypeResp, p.Flags&(FlagRecordRoute|FlagClassMask), p.Flow, f.cfg.Self, p.Src)
	resp, cs1, cs2, err := hs.WriteMessage(resp, nil)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrHandshake, err)
	}
	resp[ttlOff] = f.cfg.TTL
	s, err := newSession(cs2.UnsafeKey(), cs1.UnsafeKey())
	if err != nil {
		return err
	}
	f.mu.Lock()
	if last, ok := f.lastTS[p.Src]; ok && !ts.After(last) {
		f.mu.Unlock()
		f.c.replay.Add(1)
		return fmt.Errorf("%w: initiation from %q", ErrReplay, p.Src)
	}
	f.lastTS[p.Src] = ts
	c := f.newConn(p.Src, p.Flow, false, service, p.Flags&FlagRecordRoute != 0)
	c.class = classFlags(p.Class)
	if p.Flags&FlagClassMask == 0 {
		c.class = 0 // an initiator without classes: answer without one
	}
	c.state, c.sess = stateEstablished, s
	c.initBody, c.respFrame = bytes.Clone(body), resp
	c.handler = f.handlers[service]
	old := f.conns[k]
	f.conns[k] = c
	f.mu.Unlock()
	f.c.handshakes.Add(1)
	if old != nil {
		old.fail(ErrClosed)
	}
	if c.handler == nil {
		select {
		case f.acceptq <- c:
		default:
			f.mu.Lock()
			delete(f.conns, k)
			f.mu.Unlock()
			f.c.queue.Add(1)
			return fmt.Errorf("%w: accept backlog", ErrQueueFull)
		}
	}
	return f.route(p.Src, bytes.Clone(resp))
}

func (f *Forwarder) handleResp(p parsed, frame []byte) error {
	f.mu.Lock()
	c := f.conns[connKey{p.Src, p.Flow, true}]
	f.mu.Unlock()
	if c == nil {
		f.c.noSession.Add(1)
		return fmt.Errorf("%w: response %s/%d", ErrNoSession, p.Src, p.Flow)
	}
	c.mu.Lock()
	if c.state != stateHandshaking {
		c.mu.Unlock()
		f.c.replay.Add(1)
		return fmt.Errorf("%w: duplicate response", ErrReplay)
	}
	_, cs1, cs2, err := c.hs.ReadMessage(nil, frame[p.bodyOff:])
	if err != nil || cs1 == nil {
		c.mu.Unlock()
		f.c.auth.Add(1)
		return fmt.Errorf("%w: response: %v", ErrHandshake, err)
	}
	s, err := newSession(cs1.UnsafeKey(), cs2.UnsafeKey())
	if err != nil {
		c.mu.Unlock()
		return err
	}
	c.sess, c.state, c.hs = s, stateEstablished, nil
	pending := c.pending
	c.pending = nil
	c.mu.Unlock()
	f.c.handshakes.Add(1)
	for _, m := range pending {
		_ = c.Send(m)
	}
	return nil
}

func (f *Forwarder) handleData(p parsed, frame []byte) error {
	f.mu.Lock()
	c := f.conns[connKey{p.Src, p.Flow, p.Flags&FlagFromInitiator == 0}]
	f.mu.Unlock()
	if c == nil {
		f.c.noSession.Add(1)
		return fmt.Errorf("%w: %s/%d", ErrNoSession, p.Src, p.Flow)
	}
	c.mu.Lock()
	s := c.sess
	c.mu.Unlock()
	if s == nil {
		f.c.noSession.Add(1)
		return fmt.Errorf("%w: flow not established", ErrNoSession)
	}
	pt, err := s.open(frame, p)
	if err != nil {
		if errors.Is(err, ErrReplay) {
			f.c.replay.Add(1)
		} else {
			f.c.auth.Add(1)
		}
		return err
	}
	if p.Type == TypeClose {
		f.forget(c)
		c.fail(ErrClosed)
		return nil
	}
	f.c.delivered.Add(1)
	return c.deliver(pt, p.Route)
}

func (f *Forwarder) forget(c *Conn) {
	f.mu.Lock()
	k := connKey{c.remote, c.flow, c.initiator}
	if f.conns[k] == c {
		delete(f.conns, k)
	}
	f.mu.Unlock()
}

// session holds one flow's keys, counters and replay window.
type session struct {
	send, recv cipher.AEAD
	sendCount  atomic.Uint64
	mu         sync.Mutex
	window     channel.ReplayWindow
}

func newSession(sendKey, recvKey [32]byte) (*session, error) {
	s, err := chacha20poly1305.New(sendKey[:])
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrHandshake, err)
	}
	r, err := chacha20poly1305.New(recvKey[:])
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrHandshake, err)
	}
	return &session{send: s, recv: r}, nil
}

// seal appends a whole frame carrying plaintext to dst.
func (s *session) seal(dst []byte, t Type, flags byte, flow uint32, src, to string, ttl uint8, plaintext []byte) ([]byte, error) {
	n := s.sendCount.Add(1) - 1
	if n >= rejectAfter {
		return dst, ErrExpired
	}
	start := len(dst)
	dst, adEnd := appendHeader(dst, t, flags, flow, src, to)
	dst = binary.BigEndian.AppendUint64(dst, n)
	var nonce [12]byte
	binary.BigEndian.PutUint64(nonce[4:], n)
	dst = s.send.Seal(dst, nonce[:], plaintext, dst[start:start+adEnd])
	dst[start+ttlOff] = ttl
	return dst, nil
}

// open authenticates and decrypts a data/close frame in place. The replay
// window is checked before and advanced only after authentication.
func (s *session) open(frame []byte, p parsed) ([]byte, error) {
	body := frame[p.bodyOff:]
	if len(body) < counterLen+tagLen {
		return nil, fmt.Errorf("%w: short body", ErrMalformed)
	}
	n := binary.BigEndian.Uint64(body)
	s.mu.Lock()
	ok := s.window.Check(n)
	s.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("%w: counter %d", ErrReplay, n)
	}
	var nonce [12]byte
	binary.BigEndian.PutUint64(nonce[4:], n)
	ttl := frame[ttlOff]
	frame[ttlOff] = 0
	ct := body[counterLen:]
	pt, err := s.recv.Open(ct[:0], nonce[:], ct, frame[:p.adEnd])
	frame[ttlOff] = ttl
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDecrypt, err)
	}
	s.mu.Lock()
	ok = s.window.Accept(n)
	s.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("%w: counter %d", ErrReplay, n)
	}
	return pt, nil
}
