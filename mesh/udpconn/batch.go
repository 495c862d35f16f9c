package udpconn

// Batched socket I/O: recvmmsg / sendmmsg through golang.org/x/net/ipv4 and
// ipv6 (ReadBatch / WriteBatch); on systems without them x/net reads and
// writes one datagram per call.

import (
	"errors"
	"io"
	"net"
	"net/netip"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// batchConn is what ipv4.PacketConn and ipv6.PacketConn share (their Message
// types are the same type).
type batchConn interface {
	ReadBatch(ms []ipv4.Message, flags int) (int, error)
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
}

func newBatchConn(u *net.UDPConn) batchConn {
	if la, ok := u.LocalAddr().(*net.UDPAddr); ok && la.IP.To4() == nil && len(la.IP) == net.IPv6len {
		return ipv6.NewPacketConn(u)
	}
	return ipv4.NewPacketConn(u)
}

// xnetReadsOnly makes every read loop use x/net (tests of that path on
// Linux).
var xnetReadsOnly bool

// maxDatagram is the largest UDP payload: the buffer size a reader needs
// for coalesced reads (UDP_GRO).
const maxDatagram = 65535

// errNoFastWrite: this destination or socket takes the portable write path.
var errNoFastWrite = errors.New("udpconn: destination needs the portable write path")

// batchReader reads a batch of datagrams into its caller's buffers.
type batchReader interface {
	read() (int, error)
	size(i int) int            // length of datagram i of the last read
	segment(i int) int         // its segment size when coalesced (UDP_GRO), else 0
	from(i int) netip.AddrPort // its source
}

// xnetReader reads batches through x/net's ReadBatch (one *net.UDPAddr
// allocated per datagram).
type xnetReader struct {
	bc batchConn
	ms []ipv4.Message
}

func (x *xnetReader) read() (int, error) {
	for i := range x.ms {
		x.ms[i].Addr = nil
	}
	return x.bc.ReadBatch(x.ms, 0)
}
func (x *xnetReader) size(i int) int            { return x.ms[i].N }
func (x *xnetReader) segment(int) int           { return 0 }
func (x *xnetReader) from(i int) netip.AddrPort { return addrPort(x.ms[i].Addr) }

// readBatches is the read loop with batched reads: each reader owns Batch
// buffers, reused for every batch (a handler's packet is valid only during
// its call). On 64-bit Linux it calls recvmmsg itself and allocates nothing
// per datagram (mmsg_linux.go), with UDP_GRO unless Options.DisableOffload
// (a coalesced read is split into its datagrams here); elsewhere x/net
// reads.
func (c *Conn) readBatches() {
	bufs := make([][]byte, c.opts.Batch)
	for i := range bufs {
		bufs[i] = make([]byte, c.opts.BufferSize)
	}
	var r batchReader
	if m, err := newMmsgReader(c.udp, bufs, c.gro); err == nil && !xnetReadsOnly {
		r = m
	} else {
		ms := make([]ipv4.Message, len(bufs))
		for i := range ms {
			ms[i].Buffers = [][]byte{bufs[i]}
		}
		r = &xnetReader{bc: c.batch, ms: ms}
	}
	for {
		n, err := r.read()
		if err != nil {
			if c.closed.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			c.readErrors.Add(1)
			c.report(err)
			continue
		}
		for i := range n {
			p, from := bufs[i][:r.size(i)], r.from(i)
			seg := r.segment(i)
			if seg <= 0 || seg >= len(p) {
				c.received.Add(1)
				c.Dispatch(p, from)
				continue
			}
			c.groReads.Add(1)
			for len(p) > 0 {
				k := min(seg, len(p))
				c.received.Add(1)
				c.Dispatch(p[:k:k], from)
				p = p[k:]
			}
		}
	}
}

func addrPort(a net.Addr) netip.AddrPort {
	if ua, ok := a.(*net.UDPAddr); ok {
		ap := ua.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	return netip.AddrPort{}
}

// WriteBatch writes every packet of pkts to `to`, as few system calls as the
// socket allows: on a *net.UDPConn sendmmsg, on 64-bit Linux with runs of
// equal-sized packets sent as one message each through UDP GSO
// (gso_linux.go; Options.DisableOffload turns it off); one WriteTo each on
// other sockets. It returns how many were written and the first error.
func (c *Conn) WriteBatch(pkts [][]byte, to netip.AddrPort) (int, error) {
	if n, err := c.writeFast(pkts, to); err != errNoFastWrite {
		if err != nil && !c.closed.Load() {
			c.writeErrors.Add(1)
		}
		return n, err
	}
	if c.batch == nil {
		for i, p := range pkts {
			if err := c.WriteTo(p, to); err != nil {
				return i, err
			}
		}
		return len(pkts), nil
	}
	mp, _ := c.msgs.Get().(*[]ipv4.Message)
	if mp == nil {
		mp = new([]ipv4.Message)
	}
	ms := *mp
	if cap(ms) < len(pkts) {
		ms = make([]ipv4.Message, len(pkts))
	}
	ms = ms[:len(pkts)]
	addr := net.UDPAddrFromAddrPort(to)
	for i, p := range pkts {
		if cap(ms[i].Buffers) == 0 {
			ms[i].Buffers = make([][]byte, 1)
		}
		ms[i].Buffers = ms[i].Buffers[:1]
		ms[i].Buffers[0] = p
		ms[i].Addr = addr
	}
	sent := 0
	var err error
	for sent < len(ms) {
		var n int
		n, err = c.batch.WriteBatch(ms[sent:], 0)
		sent += n
		if err == nil && n == 0 {
			err = io.ErrShortWrite
		}
		if err != nil {
			break
		}
	}
	for i := range ms {
		ms[i].Buffers[0], ms[i].Addr = nil, nil
	}
	*mp = ms
	c.msgs.Put(mp)
	if err != nil && !c.closed.Load() {
		c.writeErrors.Add(1)
	}
	return sent, err
}
