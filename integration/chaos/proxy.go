package chaos

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// The fault proxy stands in for netem, which this kernel lacks.
//
// TCPProxy forwards byte streams (Raft runs over TLS over TCP) and delays each
// chunk it reads by Delay ± Jitter. Bytes of one direction are never
// reordered or duplicated — a TCP stream cannot carry either without
// corrupting TLS; TCP itself removes duplicate segments and reorders
// segments below the proxy. Chunks are released in order, so jitter shows up
// as bursts. Segment duplication on a TCP link is done with nftables dup
// instead (Network.SetDuplication).
//
// UDPProxy forwards datagrams and can delay, drop, duplicate and reorder them;
// it is meant for UDP links (the mesh data plane).

// LinkFaults are the faults a proxy applies.
type LinkFaults struct {
	// Delay is added to every chunk or datagram, in each direction.
	Delay time.Duration
	// Jitter spreads the delay uniformly over Delay ± Jitter.
	Jitter time.Duration
	// LossPct drops that percentage of datagrams (UDP only).
	LossPct int
	// DupPct sends that percentage of datagrams twice (UDP only).
	DupPct int
	// ReorderPct holds that percentage of datagrams back until the next one
	// has been sent (UDP only).
	ReorderPct int
}

// ProxyStats count what a proxy did.
type ProxyStats struct {
	Conns, Chunks, Bytes, Dropped, Duplicated, Reordered uint64
}

type lockedRand struct {
	mu sync.Mutex
	r  *rand.Rand
}

func (l *lockedRand) intn(n int) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.IntN(n)
}

func (l *lockedRand) delay(f LinkFaults) time.Duration {
	d := f.Delay
	if f.Jitter > 0 {
		l.mu.Lock()
		d += time.Duration(l.r.Int64N(int64(2*f.Jitter)+1)) - f.Jitter
		l.mu.Unlock()
	}
	if d < 0 {
		d = 0
	}
	return d
}

// TCPProxy is a fault-injecting TCP forwarder.
type TCPProxy struct {
	ln     net.Listener
	target string
	dial   func(ctx context.Context, network, addr string) (net.Conn, error)
	rng    *lockedRand
	faults atomic.Pointer[LinkFaults]

	mu     sync.Mutex
	conns  map[net.Conn]bool
	closed bool
	wg     sync.WaitGroup
	stats  struct{ conns, chunks, bytes atomic.Uint64 }
}

// NewTCPProxy forwards connections accepted on ln to target, dialled with
// dial. rng drives the jitter (seed it to replay a run).
func NewTCPProxy(ln net.Listener, target string, dial func(ctx context.Context, network, addr string) (net.Conn, error), rng *rand.Rand) *TCPProxy {
	p := &TCPProxy{ln: ln, target: target, dial: dial, rng: &lockedRand{r: rng}, conns: map[net.Conn]bool{}}
	p.faults.Store(&LinkFaults{})
	p.wg.Add(1)
	go p.accept()
	return p
}

// Addr is the listening address.
func (p *TCPProxy) Addr() string { return p.ln.Addr().String() }

// Set replaces the faults; chunks read from now on use them.
func (p *TCPProxy) Set(f LinkFaults) { p.faults.Store(&f) }

// Stats returns counters.
func (p *TCPProxy) Stats() ProxyStats {
	return ProxyStats{Conns: p.stats.conns.Load(), Chunks: p.stats.chunks.Load(), Bytes: p.stats.bytes.Load()}
}

// Close stops accepting and closes every forwarded connection.
func (p *TCPProxy) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	_ = p.ln.Close()
	p.wg.Wait()
}

func (p *TCPProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		_ = c.Close()
		return false
	}
	p.conns[c] = true
	return true
}

func (p *TCPProxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	_ = c.Close()
}

func (p *TCPProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.track(c) {
			return
		}
		p.stats.conns.Add(1)
		p.wg.Add(1)
		go p.serve(c)
	}
}

func (p *TCPProxy) serve(c net.Conn) {
	defer p.wg.Done()
	defer p.untrack(c)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	up, err := p.dial(ctx, "tcp", p.target)
	cancel()
	if err != nil {
		return
	}
	if !p.track(up) {
		return
	}
	defer p.untrack(up)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.pipe(up, c) }()
	go func() { defer wg.Done(); p.pipe(c, up) }()
	wg.Wait()
}

type chunk struct {
	data []byte
	due  time.Time
}

// pipe copies src to dst, releasing each chunk at its due time, in order.
func (p *TCPProxy) pipe(dst, src net.Conn) {
	q := make(chan chunk, 4096)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ch := range q {
			if d := time.Until(ch.due); d > 0 {
				time.Sleep(d)
			}
			if _, err := dst.Write(ch.data); err != nil {
				for range q { //nolint:revive // drain so the reader is not blocked
				}
				return
			}
		}
	}()
	var last time.Time
	var rerr error
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			f := p.faults.Load()
			due := time.Now().Add(p.rng.delay(*f))
			if due.Before(last) {
				due = last // keep the byte order of the stream
			}
			last = due
			p.stats.chunks.Add(1)
			p.stats.bytes.Add(uint64(n))
			q <- chunk{data: append([]byte(nil), buf[:n]...), due: due}
		}
		if err != nil {
			rerr = err
			break
		}
	}
	close(q)
	<-done
	// EOF: half-close towards dst so its peer sees EOF too; the other
	// direction goes on. Any other error (reset, closed): both sides go.
	if tc, ok := dst.(interface{ CloseWrite() error }); ok && errors.Is(rerr, io.EOF) {
		_ = tc.CloseWrite()
		return
	}
	_ = dst.Close()
	_ = src.Close()
}

// UDPProxy is a fault-injecting UDP forwarder for one client at a time: it
// forwards datagrams from the last client address to target and the answers
// back.
type UDPProxy struct {
	front  net.PacketConn // clients talk to this
	back   net.PacketConn // talks to target
	target net.Addr
	rng    *lockedRand
	faults atomic.Pointer[LinkFaults]

	mu     sync.Mutex
	client net.Addr
	held   map[bool]*heldDatagram // per direction: a datagram held back for reordering
	closed bool
	wg     sync.WaitGroup
	timers sync.WaitGroup
	stats  struct{ chunks, bytes, dropped, duplicated, reordered atomic.Uint64 }
}

// reorderHold is how long a held-back datagram waits for a successor.
const reorderHold = 50 * time.Millisecond

type heldDatagram struct {
	data []byte
	to   net.Addr
	conn net.PacketConn
}

// NewUDPProxy forwards datagrams arriving at front to target through back.
func NewUDPProxy(front, back net.PacketConn, target net.Addr, rng *rand.Rand) *UDPProxy {
	p := &UDPProxy{front: front, back: back, target: target, rng: &lockedRand{r: rng}, held: map[bool]*heldDatagram{}}
	p.faults.Store(&LinkFaults{})
	p.wg.Add(2)
	go p.loop(true)
	go p.loop(false)
	return p
}

// Addr is the address clients send to.
func (p *UDPProxy) Addr() string { return p.front.LocalAddr().String() }

// Set replaces the faults.
func (p *UDPProxy) Set(f LinkFaults) { p.faults.Store(&f) }

// Stats returns counters.
func (p *UDPProxy) Stats() ProxyStats {
	return ProxyStats{Chunks: p.stats.chunks.Load(), Bytes: p.stats.bytes.Load(), Dropped: p.stats.dropped.Load(),
		Duplicated: p.stats.duplicated.Load(), Reordered: p.stats.reordered.Load()}
}

// Close stops forwarding.
func (p *UDPProxy) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.mu.Unlock()
	_ = p.front.Close()
	_ = p.back.Close()
	p.wg.Wait()
	p.timers.Wait()
}

func (p *UDPProxy) loop(forward bool) {
	defer p.wg.Done()
	src := p.front
	if !forward {
		src = p.back
	}
	buf := make([]byte, 64<<10)
	for {
		n, from, err := src.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		data := append([]byte(nil), buf[:n]...)
		var out net.PacketConn
		var to net.Addr
		if forward {
			p.mu.Lock()
			p.client = from
			p.mu.Unlock()
			out, to = p.back, p.target
		} else {
			p.mu.Lock()
			to = p.client
			p.mu.Unlock()
			if to == nil {
				continue
			}
			out = p.front
		}
		p.stats.chunks.Add(1)
		p.stats.bytes.Add(uint64(n))
		p.deliver(forward, data, out, to)
	}
}

func (p *UDPProxy) deliver(dir bool, data []byte, out net.PacketConn, to net.Addr) {
	f := *p.faults.Load()
	if f.LossPct > 0 && p.rng.intn(100) < f.LossPct {
		p.stats.dropped.Add(1)
		return
	}
	copies := 1
	if f.DupPct > 0 && p.rng.intn(100) < f.DupPct {
		copies = 2
		p.stats.duplicated.Add(1)
	}
	p.mu.Lock()
	held := p.held[dir]
	if f.ReorderPct > 0 && held == nil && p.rng.intn(100) < f.ReorderPct {
		// Hold this one back; it goes out right after the next datagram, or
		// on its own after reorderHold when no other follows.
		hd := &heldDatagram{data: data, to: to, conn: out}
		p.held[dir] = hd
		p.mu.Unlock()
		p.stats.reordered.Add(1)
		p.timers.Add(1)
		time.AfterFunc(reorderHold+p.rng.delay(f), func() {
			defer p.timers.Done()
			p.mu.Lock()
			still := p.held[dir] == hd
			if still {
				p.held[dir] = nil
			}
			p.mu.Unlock()
			if still {
				_, _ = hd.conn.WriteTo(hd.data, hd.to)
			}
		})
		return
	}
	p.held[dir] = nil
	p.mu.Unlock()
	send := []heldDatagram{}
	for i := 0; i < copies; i++ {
		send = append(send, heldDatagram{data: data, to: to, conn: out})
	}
	if held != nil {
		send = append(send, *held)
	}
	p.timers.Add(1)
	time.AfterFunc(p.rng.delay(f), func() {
		defer p.timers.Done()
		for _, d := range send {
			_, _ = d.conn.WriteTo(d.data, d.to)
		}
	})
}
