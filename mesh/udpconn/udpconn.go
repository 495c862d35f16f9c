// Package udpconn adapts a net.PacketConn to mesh endpoints: a read loop with
// pooled buffers that demultiplexes datagrams by receiver index (the top byte
// of the index names the endpoint, see channel.Config.IndexPrefix) and hands
// initiations to the endpoint whose handshake MAC they carry; plus a Send
// method in the shape channel.Config.Send expects.
//
// It owns the socket's goroutines and nothing else: no cryptography, no
// session state, no policy. The socket is injected (New); ListenUDP is an
// optional convenience for tests and simple mains. The mesh never calls
// net.ListenUDP on its own behalf.
package udpconn

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/rap-fabric/core/mesh/wire"
)

// Handler consumes datagrams; channel.Endpoint implements it.
type Handler interface {
	// HandlePacket processes one datagram. pkt is a pooled buffer, valid only
	// during the call; the handler may modify it. Called concurrently from
	// every reader goroutine. The error is informational.
	HandlePacket(pkt []byte, from netip.AddrPort) error
	// AcceptsInitiation reports, cheaply and without side effects, whether a
	// handshake initiation is addressed to this handler.
	AcceptsInitiation(pkt []byte) bool
}

// Options configure a Conn. Zero values mean defaults.
type Options struct {
	// Readers is the number of read goroutines (default 1).
	Readers int
	// BufferSize is the size of pooled read buffers (default 65536).
	BufferSize int
	// Batch is how many datagrams one read system call may return on a
	// *net.UDPConn (recvmmsg: called directly, without an allocation per
	// datagram, on 64-bit Linux; through golang.org/x/net/ipv4|ipv6
	// ReadBatch elsewhere), each reader keeping Batch buffers of
	// BufferSize; 0 means 16, 1 reads one datagram per call. Other sockets
	// read one datagram per call.
	Batch int
	// DisableOffload turns off UDP segmentation offloads: by default, on
	// 64-bit Linux, WriteBatch sends runs of equal-sized packets with
	// UDP_SEGMENT (GSO) and batched readers ask for coalesced reads
	// (UDP_GRO), where the kernel has them.
	DisableOffload bool
	// OnError observes read and write errors other than the socket closing.
	OnError func(error)
}

// Stats count what the read loop did.
type Stats struct {
	Received    uint64 // datagrams read
	Unclaimed   uint64 // no handler for the index / initiation
	ReadErrors  uint64
	WriteErrors uint64
	// GSOSends counts messages WriteBatch sent as several datagrams
	// (UDP_SEGMENT); GROReads counts reads the kernel coalesced from
	// several datagrams (UDP_GRO).
	GSOSends uint64
	GROReads uint64
}

// ErrPrefixInUse means another handler is attached at that index prefix.
var ErrPrefixInUse = errors.New("udpconn: index prefix in use")

type table struct {
	byPrefix [256]Handler
	list     []Handler
}

// Conn is a demultiplexing adapter over one packet socket.
type Conn struct {
	pc   net.PacketConn
	udp  *net.UDPConn // non-nil when pc is a *net.UDPConn (allocation-free I/O)
	opts Options
	pool sync.Pool

	mu      sync.Mutex // serializes Attach/Detach/Start/Close
	tab     atomic.Pointer[table]
	started bool
	closed  atomic.Bool
	wg      sync.WaitGroup

	received, unclaimed, readErrors, writeErrors atomic.Uint64
	gsoSends, groReads                           atomic.Uint64

	batch     batchConn // nil unless udp is set
	msgs      sync.Pool // *[]ipv4.Message for WriteBatch
	sock      *sockInfo // nil unless WriteBatch has its own sendmmsg
	writers   sync.Pool // *mmsgWriter
	gsoOff    atomic.Bool
	gsoEinval atomic.Int32 // GSO sends refused with EINVAL (gso_linux.go)
	gro       bool         // UDP_GRO is on: set by Start before the readers run
}

// New wraps pc. Call Attach, then Start; Close stops the readers and closes pc.
func New(pc net.PacketConn, opts Options) *Conn {
	if opts.Readers <= 0 {
		opts.Readers = 1
	}
	if opts.BufferSize <= 0 {
		opts.BufferSize = 65536
	}
	if opts.Batch <= 0 {
		opts.Batch = 16
	}
	c := &Conn{pc: pc, opts: opts}
	c.udp, _ = pc.(*net.UDPConn)
	if c.udp != nil {
		c.batch = newBatchConn(c.udp)
		if si, err := probeSocket(c.udp); err == nil {
			c.sock = si
		}
	}
	c.pool.New = func() any { b := make([]byte, opts.BufferSize); return &b }
	c.tab.Store(&table{})
	return c
}

// ListenUDP is an optional convenience: it opens a UDP socket on addr (for
// example "127.0.0.1:0") and wraps it.
func ListenUDP(addr string, opts Options) (*Conn, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return nil, fmt.Errorf("udpconn: %w", err)
	}
	pc, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(ap))
	if err != nil {
		return nil, fmt.Errorf("udpconn: %w", err)
	}
	return New(pc, opts), nil
}

// Attach routes datagrams whose receiver index has top byte prefix to h, and
// offers it initiations.
func (c *Conn) Attach(prefix uint8, h Handler) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.tab.Load()
	if old.byPrefix[prefix] != nil {
		return fmt.Errorf("%w: %d", ErrPrefixInUse, prefix)
	}
	n := &table{byPrefix: old.byPrefix, list: append(append([]Handler(nil), old.list...), h)}
	n.byPrefix[prefix] = h
	c.tab.Store(n)
	return nil
}

// Detach removes the handler at prefix.
func (c *Conn) Detach(prefix uint8) {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.tab.Load()
	h := old.byPrefix[prefix]
	if h == nil {
		return
	}
	n := &table{byPrefix: old.byPrefix}
	n.byPrefix[prefix] = nil
	for _, x := range old.list {
		if x != h {
			n.list = append(n.list, x)
		}
	}
	c.tab.Store(n)
}

// LocalAddr returns the socket's address.
func (c *Conn) LocalAddr() netip.AddrPort {
	if ua, ok := c.pc.LocalAddr().(*net.UDPAddr); ok {
		return ua.AddrPort()
	}
	ap, _ := netip.ParseAddrPort(c.pc.LocalAddr().String())
	return ap
}

// Start launches the reader goroutines once.
func (c *Conn) Start() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.started || c.closed.Load() {
		return
	}
	c.started = true
	// Coalesced reads only where every reader splits them: batched reads
	// through udpconn's own recvmmsg into buffers of a whole datagram.
	// Turned on here, before any reader runs, so that no read sees a
	// coalesced datagram without its segment size.
	if c.udp != nil && c.opts.Batch > 1 && !c.opts.DisableOffload && !xnetReadsOnly && c.opts.BufferSize >= maxDatagram {
		c.gro = enableGRO(c.udp)
	}
	for range c.opts.Readers {
		c.wg.Add(1)
		go c.readLoop()
	}
}

// Close closes the socket and waits for the readers to exit.
func (c *Conn) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	err := c.pc.Close()
	c.wg.Wait()
	return err
}

// Send writes pkt to `to`; errors go to Options.OnError. Its signature
// matches channel.Config.Send.
func (c *Conn) Send(pkt []byte, to netip.AddrPort) {
	if err := c.WriteTo(pkt, to); err != nil && !c.closed.Load() {
		c.writeErrors.Add(1)
		c.report(err)
	}
}

// SendBatch writes pkts to `to` with WriteBatch; errors go to
// Options.OnError. Its signature matches channel.Config.SendBatch.
func (c *Conn) SendBatch(pkts [][]byte, to netip.AddrPort) {
	if _, err := c.WriteBatch(pkts, to); err != nil && !c.closed.Load() {
		c.report(err)
	}
}

// WriteTo writes pkt to `to`, without allocating on a *net.UDPConn.
func (c *Conn) WriteTo(pkt []byte, to netip.AddrPort) error {
	var err error
	if c.udp != nil {
		_, err = c.udp.WriteToUDPAddrPort(pkt, to)
	} else {
		_, err = c.pc.WriteTo(pkt, net.UDPAddrFromAddrPort(to))
	}
	return err
}

// Stats returns the counters.
func (c *Conn) Stats() Stats {
	return Stats{
		Received: c.received.Load(), Unclaimed: c.unclaimed.Load(),
		ReadErrors: c.readErrors.Load(), WriteErrors: c.writeErrors.Load(),
		GSOSends: c.gsoSends.Load(), GROReads: c.groReads.Load(),
	}
}

func (c *Conn) report(err error) {
	if c.opts.OnError != nil {
		c.opts.OnError(err)
	}
}

func (c *Conn) readLoop() {
	defer c.wg.Done()
	if c.batch != nil && c.opts.Batch > 1 {
		c.readBatches()
		return
	}
	for {
		bp := c.pool.Get().(*[]byte)
		n, from, err := c.read(*bp)
		if err != nil {
			c.pool.Put(bp)
			if c.closed.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			c.readErrors.Add(1)
			c.report(err)
			continue
		}
		c.received.Add(1)
		c.Dispatch((*bp)[:n], from)
		c.pool.Put(bp)
	}
}

func (c *Conn) read(buf []byte) (int, netip.AddrPort, error) {
	if c.udp != nil {
		n, from, err := c.udp.ReadFromUDPAddrPort(buf)
		return n, netip.AddrPortFrom(from.Addr().Unmap(), from.Port()), err
	}
	n, addr, err := c.pc.ReadFrom(buf)
	if err != nil {
		return 0, netip.AddrPort{}, err
	}
	ap, perr := netip.ParseAddrPort(addr.String())
	if perr != nil {
		return 0, netip.AddrPort{}, fmt.Errorf("udpconn: source address %q: %w", addr, perr)
	}
	return n, ap, nil
}

// Dispatch routes one datagram as the read loop does. It is exported for
// callers with their own receive path (for example batch reads).
func (c *Conn) Dispatch(pkt []byte, from netip.AddrPort) {
	tab := c.tab.Load()
	if idx, ok := wire.ReceiverIndex(pkt); ok {
		if h := tab.byPrefix[idx>>24]; h != nil {
			_ = h.HandlePacket(pkt, from)
			return
		}
		c.unclaimed.Add(1)
		return
	}
	if len(pkt) > 0 && wire.Type(pkt[0]) == wire.TypeInitiation {
		for _, h := range tab.list {
			if h.AcceptsInitiation(pkt) {
				_ = h.HandlePacket(pkt, from)
				return
			}
		}
	}
	c.unclaimed.Add(1)
}
