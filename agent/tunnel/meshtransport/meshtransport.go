package meshtransport

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rap-fabric/core/mesh/e2e"
)

// ServicePrefix starts the e2e service name of every VPN connection.
const ServicePrefix = "vpn/"

// Service returns the e2e service name of a connection.
func Service(connectionID string) string { return ServicePrefix + connectionID }

// Errors of the package; match with errors.Is.
var (
	// ErrConfig means the Config is invalid.
	ErrConfig = errors.New("meshtransport: invalid config")
	// ErrNoPeer means there is no peer to send to yet: no exit set, or no
	// connector has opened a flow to this exit.
	ErrNoPeer = errors.New("meshtransport: no peer")
	// ErrClosed means the transport was closed.
	ErrClosed = errors.New("meshtransport: closed")
)

// Mesh is what the transport needs from the node's mesh; agent/meshrun's
// Node implements it.
type Mesh interface {
	DialService(dst, service string) (*e2e.Conn, error)
	HandleService(service string, h e2e.Handler)
	UnhandleService(service string)
}

// Config configures a transport.
type Config struct {
	// ConnectionID names the connection (service "vpn/<id>"). Required.
	ConnectionID string
	// MaxPacket is the largest packet carried (default 1500; the tunnel's
	// MTU is enough). Larger received packets are dropped.
	MaxPacket int
	// Queue is the number of received packets buffered for Recv (default 1024).
	Queue int
	// IdleRedial (connector): when nothing arrived from the exit for this
	// long while packets are being sent, the flow is dialled again — the
	// exit may have restarted and lost it (default 5 s).
	IdleRedial time.Duration
	// Clock defaults to time.Now.
	Clock func() time.Time
}

func (c *Config) validate() error {
	if c.ConnectionID == "" {
		return fmt.Errorf("%w: connection id is required", ErrConfig)
	}
	if c.MaxPacket <= 0 {
		c.MaxPacket = 1500
	}
	if c.MaxPacket > e2e.MaxFrameLen-1024 {
		return fmt.Errorf("%w: max packet %d too large", ErrConfig, c.MaxPacket)
	}
	if c.Queue <= 0 {
		c.Queue = 1024
	}
	if c.IdleRedial <= 0 {
		c.IdleRedial = 5 * time.Second
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	return nil
}

// Stats count what a transport dropped on receive.
type Stats struct {
	// DroppedQueue: the ring was full. DroppedTooLarge: a packet exceeded
	// MaxPacket. DroppedUnauthorized (exit): a flow from a node that is not
	// a connector of the connection. Redials (connector): flows dialled
	// again.
	DroppedQueue, DroppedTooLarge, DroppedUnauthorized, Redials uint64
}

// ring hands received packets from the mesh goroutine to Recv through
// preallocated buffers.
type ring struct {
	recv       atomic.Pointer[func([]byte)]
	free, full chan []byte
	last       []byte
	done       chan struct{}
	once       sync.Once
	max        int
	queue      atomic.Uint64
	tooLarge   atomic.Uint64
}

func newRing(n, size int) *ring {
	r := &ring{free: make(chan []byte, n), full: make(chan []byte, n), done: make(chan struct{}), max: size}
	for range n {
		r.free <- make([]byte, 0, size)
	}
	return r
}

// push hands msg to the receiver when one is set, else copies it into a
// free buffer; it never blocks.
func (r *ring) push(msg []byte) {
	if len(msg) > r.max {
		r.tooLarge.Add(1)
		return
	}
	if fn := r.recv.Load(); fn != nil {
		(*fn)(msg)
		return
	}
	select {
	case b := <-r.free:
		b = append(b[:0], msg...)
		select {
		case r.full <- b:
		default:
			r.free <- b
			r.queue.Add(1)
		}
	default:
		r.queue.Add(1)
	}
}

// pop returns the next packet; the previous one's buffer is recycled.
func (r *ring) pop(ctx context.Context) ([]byte, error) {
	if r.last != nil {
		r.free <- r.last
		r.last = nil
	}
	select {
	case <-r.done:
		return nil, ErrClosed
	default:
	}
	select {
	case b := <-r.full:
		r.last = b
		return b, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-r.done:
		return nil, ErrClosed
	}
}

func (r *ring) close() { r.once.Do(func() { close(r.done) }) }

func (r *ring) setReceiver(fn func(pkt []byte)) {
	if fn == nil {
		r.recv.Store(nil)
		return
	}
	r.recv.Store(&fn)
}

// Connector is the connector end: it dials the exit's service and follows
// the exit as the lease moves (SetExit). Implements tunnel.Transport.
type Connector struct {
	m       Mesh
	cfg     Config
	service string
	r       *ring
	redials atomic.Uint64
	recvAt  atomic.Int64 // unix nanos of the last packet from the exit

	mu       sync.Mutex
	exit     string
	conn     *e2e.Conn
	dialedAt time.Time
	closed   bool
}

// NewConnector returns the connector end of cfg.ConnectionID. exit may be
// empty until the lease holder is known: Send then fails with ErrNoPeer.
func NewConnector(m Mesh, cfg Config, exit string) (*Connector, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if m == nil {
		return nil, fmt.Errorf("%w: mesh is required", ErrConfig)
	}
	return &Connector{m: m, cfg: cfg, service: Service(cfg.ConnectionID), r: newRing(cfg.Queue, cfg.MaxPacket), exit: exit}, nil
}

// SetExit points the connector at the node now holding the connection's
// lease; the flow to the previous exit is closed and the next Send dials
// the new one. Empty means no exit (Send fails with ErrNoPeer).
func (c *Connector) SetExit(node string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if node == c.exit {
		return
	}
	c.exit = node
	c.dropLocked()
}

// Exit returns the node the connector sends to.
func (c *Connector) Exit() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.exit
}

func (c *Connector) dropLocked() {
	if c.conn != nil {
		old := c.conn
		c.conn = nil
		old.SetHandler(nil)
		go old.Close() // sends an authenticated close; never on the packet path
	}
}

// current returns the flow to the exit, dialling when there is none, the
// last one closed, or the exit has been silent for IdleRedial.
func (c *Connector) current() (*e2e.Conn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.closed:
		return nil, ErrClosed
	case c.exit == "":
		return nil, ErrNoPeer
	}
	if c.conn != nil && c.conn.Err() == nil {
		now := c.cfg.Clock()
		last := time.Unix(0, c.recvAt.Load())
		if now.Sub(c.dialedAt) < c.cfg.IdleRedial || now.Sub(last) < c.cfg.IdleRedial {
			return c.conn, nil
		}
	}
	if c.conn != nil {
		c.redials.Add(1)
	}
	c.dropLocked()
	conn, err := c.m.DialService(c.exit, c.service)
	if err != nil {
		return nil, err
	}
	conn.SetHandler(func(from *e2e.Conn, msg []byte) {
		c.recvAt.Store(c.cfg.Clock().UnixNano())
		c.r.push(msg)
	})
	c.conn, c.dialedAt = conn, c.cfg.Clock()
	return conn, nil
}

// Send seals pkt for the exit.
func (c *Connector) Send(pkt []byte) error {
	conn, err := c.current()
	if err != nil {
		return err
	}
	return conn.Send(pkt)
}

// Recv returns the next packet from the exit (valid until the next Recv).
func (c *Connector) Recv(ctx context.Context) ([]byte, error) { return c.r.pop(ctx) }

// SetReceiver makes fn receive packets from the exit on the mesh's receive
// goroutine (pkt valid only during the call; fn must not block) instead of
// Recv: no copy and no goroutine hand-off per packet. nil restores Recv.
func (c *Connector) SetReceiver(fn func(pkt []byte)) { c.r.setReceiver(fn) }

// Stats returns the counters.
func (c *Connector) Stats() Stats {
	return Stats{DroppedQueue: c.r.queue.Load(), DroppedTooLarge: c.r.tooLarge.Load(), Redials: c.redials.Load()}
}

// Close closes the flow; Recv returns ErrClosed.
func (c *Connector) Close() error {
	c.mu.Lock()
	c.closed = true
	c.dropLocked()
	c.mu.Unlock()
	c.r.close()
	return nil
}

// Exit is the exit end: it serves the connection's service for the
// connectors of the connection. Several connectors may carry it at once:
// a reply goes to the flow its destination address was last seen coming
// from, else to the flow that delivered the last packet. Implements
// tunnel.Transport and tunnel.Receiver.
type Exit struct {
	m            Mesh
	cfg          Config
	service      string
	r            *ring
	unauthorized atomic.Uint64
	conn         atomic.Pointer[e2e.Conn] // flow of the last packet

	mu         sync.RWMutex
	connectors []string
	flows      map[*e2e.Conn]bool       // authorized flows
	bySrc      map[netip.Addr]*e2e.Conn // learned: client address → its flow
	closed     bool
}

// maxLearned bounds the learned address table; beyond it the table starts
// over (replies then go to the last flow until relearned).
const maxLearned = 4096

// NewExit registers the exit end of cfg.ConnectionID on m, accepting flows
// only from the given connector nodes.
func NewExit(m Mesh, cfg Config, connectors []string) (*Exit, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if m == nil {
		return nil, fmt.Errorf("%w: mesh is required", ErrConfig)
	}
	e := &Exit{m: m, cfg: cfg, service: Service(cfg.ConnectionID), r: newRing(cfg.Queue, cfg.MaxPacket), connectors: slices.Clone(connectors),
		flows: map[*e2e.Conn]bool{}, bySrc: map[netip.Addr]*e2e.Conn{}}
	m.HandleService(e.service, e.handle)
	return e, nil
}

// SetConnectors replaces the nodes allowed to send into the connection;
// flows of nodes no longer listed stop being heard or answered.
func (e *Exit) SetConnectors(nodes []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.connectors = slices.Clone(nodes)
	for c := range e.flows {
		if !slices.Contains(nodes, c.Remote()) {
			delete(e.flows, c)
		}
	}
	for a, c := range e.bySrc {
		if !e.flows[c] {
			delete(e.bySrc, a)
		}
	}
	if c := e.conn.Load(); c != nil && !e.flows[c] {
		e.conn.CompareAndSwap(c, nil)
	}
}

// authorize admits a new flow from a listed connector.
func (e *Exit) authorize(c *e2e.Conn) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed || !slices.Contains(e.connectors, c.Remote()) {
		return false
	}
	for f := range e.flows { // forget closed flows (redials)
		if f.Err() != nil {
			delete(e.flows, f)
		}
	}
	e.flows[c] = true
	return true
}

func (e *Exit) handle(c *e2e.Conn, msg []byte) {
	e.mu.RLock()
	known := e.flows[c]
	e.mu.RUnlock()
	if !known && !e.authorize(c) {
		e.unauthorized.Add(1)
		return
	}
	if e.conn.Load() != c {
		e.conn.Store(c)
	}
	if src, ok := srcAddr(msg); ok {
		e.mu.RLock()
		cur := e.bySrc[src]
		e.mu.RUnlock()
		if cur != c {
			e.mu.Lock()
			if len(e.bySrc) >= maxLearned {
				clear(e.bySrc)
			}
			if e.flows[c] {
				e.bySrc[src] = c
			}
			e.mu.Unlock()
		}
	}
	e.r.push(msg)
}

// Send seals pkt for the connector its destination was last seen behind,
// else for the connector of the last packet.
func (e *Exit) Send(pkt []byte) error {
	var c *e2e.Conn
	if dst, ok := dstAddr(pkt); ok {
		e.mu.RLock()
		c = e.bySrc[dst]
		e.mu.RUnlock()
	}
	if c == nil || c.Err() != nil {
		c = e.conn.Load()
	}
	if c == nil {
		return ErrNoPeer
	}
	err := c.Send(pkt)
	if errors.Is(err, e2e.ErrClosed) {
		e.conn.CompareAndSwap(c, nil)
	}
	return err
}

// Recv returns the next packet from a connector (valid until the next Recv).
func (e *Exit) Recv(ctx context.Context) ([]byte, error) { return e.r.pop(ctx) }

// SetReceiver makes fn receive packets from connectors on the mesh's
// receive goroutine (pkt valid only during the call; fn must not block)
// instead of Recv. nil restores Recv.
func (e *Exit) SetReceiver(fn func(pkt []byte)) { e.r.setReceiver(fn) }

// Stats returns the counters.
func (e *Exit) Stats() Stats {
	return Stats{DroppedQueue: e.r.queue.Load(), DroppedTooLarge: e.r.tooLarge.Load(), DroppedUnauthorized: e.unauthorized.Load()}
}

// Close stops serving the connection: the service is unregistered and its
// flows closed (each connector hears an authenticated close and dials
// again on its next packet); Recv returns ErrClosed.
func (e *Exit) Close() error {
	e.mu.Lock()
	e.closed = true
	flows := e.flows
	e.flows, e.bySrc = map[*e2e.Conn]bool{}, map[netip.Addr]*e2e.Conn{}
	e.mu.Unlock()
	e.m.UnhandleService(e.service)
	e.conn.Store(nil)
	for c := range flows {
		_ = c.Close()
	}
	e.r.close()
	return nil
}

// srcAddr and dstAddr read an IP packet's addresses without allocating.
func srcAddr(pkt []byte) (netip.Addr, bool) {
	switch {
	case len(pkt) >= 20 && pkt[0]>>4 == 4:
		return netip.AddrFrom4([4]byte(pkt[12:16])), true
	case len(pkt) >= 40 && pkt[0]>>4 == 6:
		return netip.AddrFrom16([16]byte(pkt[8:24])), true
	}
	return netip.Addr{}, false
}

func dstAddr(pkt []byte) (netip.Addr, bool) {
	switch {
	case len(pkt) >= 20 && pkt[0]>>4 == 4:
		return netip.AddrFrom4([4]byte(pkt[16:20])), true
	case len(pkt) >= 40 && pkt[0]>>4 == 6:
		return netip.AddrFrom16([16]byte(pkt[24:40])), true
	}
	return netip.Addr{}, false
}
