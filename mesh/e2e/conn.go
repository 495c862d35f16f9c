package e2e

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/flynn/noise"

	"github.com/rap-fabric/core/mesh/qos"
)

type connState uint8

const (
	stateHandshaking connState = iota
	stateEstablished
	stateClosed
)

type item struct {
	msg   []byte
	route []string
}

// Conn is one end-to-end flow: a bidirectional, message-oriented, encrypted
// channel to one remote node. Delivery is best effort (a message in flight
// on a failed link is lost) but never duplicated and never readable or
// redirectable by relays. Safe for concurrent use.
type Conn struct {
	f         *Forwarder
	remote    string
	flow      uint32
	initiator bool
	service   string
	record    bool
	class     byte // the QoS class bits of the flags (FlagClassMask)

	mu        sync.Mutex
	state     connState
	sess      *session
	hs        *noise.HandshakeState
	initFrame []byte // initiator: for retransmission
	sentAt    time.Time
	attempts  int
	pending   [][]byte
	initBody  []byte // responder: to recognise a retransmitted initiation
	respFrame []byte
	handler   Handler
	err       error
	onItem    func(item) // internal initiator-side handler (probe)
	lastRoute []string   // route record of the last delivered frame

	recvq     chan item
	done      chan struct{}
	closeOnce sync.Once
}

func (f *Forwarder) newConn(remote string, flow uint32, initiator bool, service string, record bool) *Conn {
	return &Conn{
		f: f, remote: remote, flow: flow, initiator: initiator, service: service, record: record,
		recvq: make(chan item, f.cfg.RecvQueue), done: make(chan struct{}),
	}
}

// Remote returns the remote node id.
func (c *Conn) Remote() string { return c.remote }

// Flow returns the flow id.
func (c *Conn) Flow() uint32 { return c.flow }

// Service returns the service name the flow was dialled for.
func (c *Conn) Service() string { return c.service }

// Established reports whether the handshake has completed.
func (c *Conn) Established() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state == stateEstablished
}

// Err returns why the Conn closed, or nil while it is open.
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Send seals msg for the remote node and hands it to the next hop. Before
// the handshake completes it is queued (ErrQueueFull beyond PendingQueue).
// ErrNoRoute means the router has no route right now; the message is lost.
func (c *Conn) Send(msg []byte) error {
	if len(msg) > MaxFrameLen-600 {
		return fmt.Errorf("%w: %d bytes", ErrTooLarge, len(msg))
	}
	c.mu.Lock()
	switch c.state {
	case stateClosed:
		err := c.err
		c.mu.Unlock()
		return fmt.Errorf("%w: %w", ErrClosed, err)
	case stateHandshaking:
		defer c.mu.Unlock()
		if len(c.pending) >= c.f.cfg.PendingQueue {
			c.f.c.queue.Add(1)
			return fmt.Errorf("%w: %d messages pending handshake", ErrQueueFull, len(c.pending))
		}
		c.pending = append(c.pending, append([]byte(nil), msg...))
		return nil
	}
	s := c.sess
	c.mu.Unlock()
	return c.sendSealed(s, TypeData, msg)
}

// Class returns the flow's QoS class: the one it was dialled with, or for
// an accepted flow the one its initiation carried.
func (c *Conn) Class() qos.Class { return classOfFlags(c.class) }

func (c *Conn) flags() byte {
	fl := c.class
	if c.initiator {
		fl |= FlagFromInitiator
	}
	if c.record {
		fl |= FlagRecordRoute
	}
	return fl
}

func (c *Conn) sendSealed(s *session, t Type, msg []byte) error {
	f := c.f
	frame, err := s.seal(make([]byte, 0, 64+len(f.cfg.Self)+len(c.remote)+len(msg)), t, c.flags(), c.flow, f.cfg.Self, c.remote, f.cfg.TTL, msg)
	if err != nil {
		return err
	}
	return f.route(c.remote, frame)
}

// SetHandler makes h receive this flow's later messages on the goroutine
// that calls HandleFrame (msg valid only during the call, h must not block)
// instead of the receive queue: a dialled flow can then be served without a
// copy per message, as accepted flows with a registered Handle are. Messages
// already queued stay for Recv. A nil h restores queueing.
func (c *Conn) SetHandler(h Handler) {
	c.mu.Lock()
	c.handler = h
	c.mu.Unlock()
}

// Recv returns the next message, blocking until one arrives, the Conn
// closes (ErrClosed, after queued messages are drained) or ctx ends.
func (c *Conn) Recv(ctx context.Context) ([]byte, error) {
	select {
	case it := <-c.recvq:
		return it.msg, nil
	default:
	}
	select {
	case it := <-c.recvq:
		return it.msg, nil
	case <-c.done:
		select {
		case it := <-c.recvq:
			return it.msg, nil
		default:
		}
		return nil, fmt.Errorf("%w: %w", ErrClosed, c.Err())
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// TryRecv returns a queued message without blocking.
func (c *Conn) TryRecv() ([]byte, bool) {
	select {
	case it := <-c.recvq:
		return it.msg, true
	default:
		return nil, false
	}
}

// Close sends an authenticated close to the remote end (if established) and
// releases the flow.
func (c *Conn) Close() error {
	c.mu.Lock()
	s, st := c.sess, c.state
	c.mu.Unlock()
	var err error
	if st == stateEstablished && s != nil {
		err = c.sendSealed(s, TypeClose, nil)
	}
	c.f.forget(c)
	c.fail(ErrClosed)
	return err
}

// fail closes the Conn locally with cause err.
func (c *Conn) fail(err error) {
	c.mu.Lock()
	if c.state != stateClosed {
		c.state, c.err, c.hs, c.pending = stateClosed, err, nil, nil
	}
	c.mu.Unlock()
	c.closeOnce.Do(func() { close(c.done) })
}

// deliver hands a decrypted message to the handler or the receive queue.
func (c *Conn) deliver(pt []byte, route []string) error {
	c.mu.Lock()
	h, on := c.handler, c.onItem
	c.lastRoute = route
	c.mu.Unlock()
	switch {
	case on != nil:
		on(item{msg: pt, route: route})
		return nil
	case h != nil:
		h(c, pt)
		return nil
	}
	select {
	case c.recvq <- item{msg: append([]byte(nil), pt...), route: route}:
		return nil
	default:
		c.f.c.queue.Add(1)
		return fmt.Errorf("%w: receive queue", ErrQueueFull)
	}
}
