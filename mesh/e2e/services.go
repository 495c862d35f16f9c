package e2e

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	"github.com/rap-fabric/core/mesh/qos"
)

// EchoService is the service name of the synthetic echo service.
const EchoService = "echo"

const probeService = "probe"

// ServeEcho registers the synthetic echo service on f: every message of a
// flow dialled with DialService(dst, EchoService) is sent back unchanged.
func ServeEcho(f *Forwarder) {
	f.Handle(EchoService, func(c *Conn, msg []byte) { _ = c.Send(msg) })
}

// ProbeResult is what a probe measured.
type ProbeResult struct {
	// Path is the forward path: source, relays in order, destination.
	Path []string
	// Reverse is the path of the reply: destination, relays, source.
	Reverse []string
	// SetupRTT is the round trip of the first probe, including the
	// end-to-end handshake; RTT is that of the second, on the open flow.
	SetupRTT, RTT time.Duration
}

// ProbeOp is a probe in progress (see StartProbe).
type ProbeOp struct {
	mu     sync.Mutex
	res    ProbeResult
	err    error
	done   chan struct{}
	once   sync.Once
	c      *Conn
	sentAt time.Time
	n      int
}

// Done is closed when the probe finished.
func (p *ProbeOp) Done() <-chan struct{} { return p.done }

// Result returns the outcome once Done is closed.
func (p *ProbeOp) Result() (ProbeResult, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.res, p.err
}

func (p *ProbeOp) finish(err error) {
	p.mu.Lock()
	if p.err == nil {
		p.err = err
	}
	p.mu.Unlock()
	p.once.Do(func() { close(p.done) })
}

// Cancel abandons the probe.
func (p *ProbeOp) Cancel() {
	_ = p.c.Close()
	p.finish(fmt.Errorf("%w: probe cancelled", ErrClosed))
}

// StartProbe sends two probes to dst over a flow whose frames record the
// relays they cross; the destination's built-in probe service echoes each
// probe with the forward path it observed. It does not block: the result
// arrives when the caller's link layer delivers the replies (Done). The
// recorded path is a diagnostic written in clear by relays; it is not
// authenticated.
func (f *Forwarder) StartProbe(dst string) (*ProbeOp, error) {
	c, err := f.dial(dst, probeService, true, classFlags(qos.Interactive))
	if err != nil {
		return nil, err
	}
	op := &ProbeOp{done: make(chan struct{}), c: c}
	c.mu.Lock()
	c.onItem = func(it item) { op.onReply(f, it) }
	c.mu.Unlock()
	op.mu.Lock()
	op.sentAt = f.cfg.Clock()
	op.n = 1
	op.mu.Unlock()
	if err := c.Send(binary.BigEndian.AppendUint32(nil, 1)); err != nil {
		_ = c.Close()
		return nil, err
	}
	return op, nil
}

func (op *ProbeOp) onReply(f *Forwarder, it item) {
	if len(it.msg) < 4 {
		return
	}
	now := f.cfg.Clock()
	op.mu.Lock()
	if int(binary.BigEndian.Uint32(it.msg)) != op.n {
		op.mu.Unlock()
		return
	}
	rtt := now.Sub(op.sentAt)
	if op.n == 1 {
		op.res.SetupRTT = rtt
		op.n, op.sentAt = 2, now
		op.mu.Unlock()
		if err := op.c.Send(binary.BigEndian.AppendUint32(nil, 2)); err != nil {
			op.finish(err)
		}
		return
	}
	op.res.RTT = rtt
	fwd, _ := decodeIDs(it.msg[4:])
	op.res.Path = append(append([]string{f.cfg.Self}, fwd...), op.c.remote)
	op.res.Reverse = append(append([]string{op.c.remote}, it.route...), f.cfg.Self)
	op.mu.Unlock()
	_ = op.c.Close()
	op.finish(nil)
}

// Probe runs StartProbe and waits for the result or ctx. It needs the link
// layer to make progress on other goroutines.
func (f *Forwarder) Probe(ctx context.Context, dst string) (ProbeResult, error) {
	op, err := f.StartProbe(dst)
	if err != nil {
		return ProbeResult{}, err
	}
	select {
	case <-op.Done():
		return op.Result()
	case <-ctx.Done():
		op.Cancel()
		return ProbeResult{}, ctx.Err()
	}
}

// serveProbe answers a probe with its number and the forward route record.
func (f *Forwarder) serveProbe(c *Conn, msg []byte) {
	if len(msg) < 4 {
		return
	}
	c.mu.Lock()
	route := c.lastRoute
	c.mu.Unlock()
	_ = c.Send(encodeIDs(append([]byte(nil), msg[:4]...), route))
}

func encodeIDs(dst []byte, ids []string) []byte {
	dst = append(dst, byte(len(ids)))
	for _, id := range ids {
		dst = append(dst, byte(len(id)))
		dst = append(dst, id...)
	}
	return dst
}

func decodeIDs(b []byte) ([]string, bool) {
	if len(b) < 1 {
		return nil, false
	}
	n := int(b[0])
	off := 1
	out := make([]string, 0, n)
	for range n {
		id, next, ok := readID(b, off)
		if !ok {
			return out, false
		}
		out = append(out, id)
		off = next
	}
	return out, true
}
