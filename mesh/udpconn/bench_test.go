package udpconn

import (
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/ipv4"

	"github.com/rap-fabric/core/mesh/channel"
)

const benchPayload = 1400

// rxCounter records deliveries and the time of the last one.
type rxCounter struct {
	n    atomic.Uint64
	last atomic.Int64
}

func (r *rxCounter) hit() {
	r.n.Add(1)
	r.last.Store(time.Now().UnixNano())
}

// drain waits until want datagrams arrived or arrivals stopped for 200 ms.
func (r *rxCounter) drain(want uint64) {
	prev, still := r.n.Load(), time.Now()
	for r.n.Load() < want && time.Since(still) < 200*time.Millisecond {
		time.Sleep(time.Millisecond)
		if cur := r.n.Load(); cur != prev {
			prev, still = cur, time.Now()
		}
	}
}

// report prints received datagrams/s and MB/s over start → last arrival, and
// the loss seen by the receiver.
func (r *rxCounter) report(b *testing.B, start time.Time) {
	got := r.n.Load()
	elapsed := time.Unix(0, r.last.Load()).Sub(start).Seconds()
	if got == 0 || elapsed <= 0 {
		b.ReportMetric(0, "datagrams/s")
		return
	}
	b.ReportMetric(float64(got)/elapsed, "datagrams/s")
	b.ReportMetric(float64(got)*benchPayload/elapsed/1e6, "MB/s")
	b.ReportMetric(100*(1-float64(got)/float64(b.N)), "loss-%")
}

func rawSocket(b *testing.B) *net.UDPConn {
	pc, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		b.Fatal(err)
	}
	_ = pc.SetReadBuffer(8 << 20)
	_ = pc.SetWriteBuffer(8 << 20)
	return pc
}

// BenchmarkRawUDPLoopback is the baseline: 1400-byte datagrams, one sender
// goroutine, one receiver goroutine, plain sockets.
func BenchmarkRawUDPLoopback(b *testing.B) {
	rx, tx := rawSocket(b), rawSocket(b)
	defer tx.Close()
	to := rx.LocalAddr().(*net.UDPAddr).AddrPort()
	var rc rxCounter
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 65536)
		for {
			if _, _, err := rx.ReadFromUDPAddrPort(buf); err != nil {
				return
			}
			rc.hit()
		}
	}()
	payload := make([]byte, benchPayload)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		if _, err := tx.WriteToUDPAddrPort(payload, to); err != nil {
			b.Fatal(err)
		}
	}
	rc.drain(uint64(b.N))
	b.StopTimer()
	rc.report(b, start)
	_ = rx.Close()
	<-done
}

// BenchmarkNoiseChannelLoopback is the same traffic through an established
// channel: Seal on the sender, udpconn's read loop, demux, replay window,
// decrypt and Deliver on the receiver.
func BenchmarkNoiseChannelLoopback(b *testing.B) {
	ca, err := ListenUDP("127.0.0.1:0", Options{})
	if err != nil {
		b.Fatal(err)
	}
	cb, err := ListenUDP("127.0.0.1:0", Options{})
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []*Conn{ca, cb} {
		_ = c.udp.SetReadBuffer(8 << 20)
		_ = c.udp.SetWriteBuffer(8 << 20)
	}
	var rc rxCounter
	a := newUDPNode(b, ca, "bench", 0, nil)
	bn := newUDPNode(b, cb, "bench", 0, func(channel.Key, []byte) { rc.hit() })
	ca.Start()
	cb.Start()
	defer ca.Close()
	defer cb.Close()
	ticker(b, a.ep, bn.ep)
	establish(b, a, bn)
	key := bn.ep.PublicKey()
	payload := make([]byte, benchPayload)
	buf := make([]byte, 0, 2048)
	rc.n.Store(0)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		pkt, to, err := a.ep.Seal(buf[:0], key, payload)
		if err != nil {
			b.Fatal(err)
		}
		if err := ca.WriteTo(pkt, to); err != nil {
			b.Fatal(err)
		}
	}
	rc.drain(uint64(b.N))
	b.StopTimer()
	rc.report(b, start)
}

// BenchmarkBatchedNoiseVsRawUDP compares, in one run and with the same
// batching, raw UDP and Noise channel traffic of 1400-byte datagrams over
// loopback: the sender writes batches of 32 with WriteBatch (sendmmsg), the
// receiver reads batches of 16 (recvmmsg); the Noise sender seals each
// datagram first and the Noise receiver runs udpconn's read loop, demux,
// replay window and decryption. Phases alternate raw, Noise, Noise, raw so
// that drift in the machine's load falls on both.
//
// Sub-benchmark sendmmsg sends one datagram per message and reads without
// UDP_GRO (Options.DisableOffload); gso sends runs of the batch as UDP_SEGMENT
// messages and reads them coalesced (UDP_GRO) where the kernel has both, on
// both sides alike.
func BenchmarkBatchedNoiseVsRawUDP(b *testing.B) {
	b.Run("sendmmsg", func(b *testing.B) { benchNoiseVsRaw(b, Options{DisableOffload: true}) })
	b.Run("gso", func(b *testing.B) { benchNoiseVsRaw(b, Options{}) })
}

func benchNoiseVsRaw(b *testing.B, o Options) {
	const batch, readBatch = 32, 16
	o.Batch = readBatch
	// Raw: a receiver with its own recvmmsg loop that only counts (with
	// UDP_GRO coalesced reads count their datagrams).
	rawRx := rawSocket(b)
	rawTx := New(rawSocket(b), o)
	defer rawTx.Close()
	var raw rxCounter
	rawDone := make(chan struct{})
	go func() {
		defer close(rawDone)
		// The same recvmmsg reader as udpconn's read loop where there is
		// one (mmsg_linux.go), x/net's ReadBatch elsewhere.
		bufs := make([][]byte, readBatch)
		for i := range bufs {
			bufs[i] = make([]byte, 65536)
		}
		if r, err := newMmsgReader(rawRx, bufs, !o.DisableOffload && enableGRO(rawRx)); err == nil {
			for {
				n, err := r.read()
				if err != nil {
					return
				}
				for i := range n {
					if seg := r.segment(i); seg > 0 {
						for k := 0; k < r.size(i); k += seg {
							raw.hit()
						}
						continue
					}
					raw.hit()
				}
			}
		}
		bc := newBatchConn(rawRx)
		ms := make([]ipv4.Message, readBatch)
		for i := range ms {
			ms[i].Buffers = [][]byte{make([]byte, 65536)}
		}
		for {
			n, err := bc.ReadBatch(ms, 0)
			if err != nil {
				return
			}
			for range n {
				raw.hit()
			}
		}
	}()
	rawTo := rawRx.LocalAddr().(*net.UDPAddr).AddrPort()

	// Noise: two udpconn Conns with established channel endpoints.
	ca, err := ListenUDP("127.0.0.1:0", o)
	if err != nil {
		b.Fatal(err)
	}
	cb, err := ListenUDP("127.0.0.1:0", o)
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []*Conn{ca, cb} {
		_ = c.udp.SetReadBuffer(8 << 20)
		_ = c.udp.SetWriteBuffer(8 << 20)
	}
	var noise rxCounter
	a := newUDPNode(b, ca, "bench", 0, nil)
	bn := newUDPNode(b, cb, "bench", 0, func(channel.Key, []byte) { noise.hit() })
	ca.Start()
	cb.Start()
	defer ca.Close()
	defer cb.Close()
	ticker(b, a.ep, bn.ep)
	establish(b, a, bn)
	key := bn.ep.PublicKey()

	payload := make([]byte, benchPayload)
	rawPkts := make([][]byte, batch)
	for i := range rawPkts {
		rawPkts[i] = payload
	}
	bufs := make([][]byte, batch)
	for i := range bufs {
		bufs[i] = make([]byte, 0, 2048)
	}
	pkts := make([][]byte, batch)
	var took [2]time.Duration
	var got [2]uint64
	phase := func(noisy bool, n int) {
		rc := &raw
		if noisy {
			rc = &noise
		}
		rc.n.Store(0)
		start := time.Now()
		for sent := 0; sent < n; sent += batch {
			if !noisy {
				if _, err := rawTx.WriteBatch(rawPkts, rawTo); err != nil {
					b.Fatal(err)
				}
				continue
			}
			var to netip.AddrPort
			for i := range pkts {
				p, dst, err := a.ep.Seal(bufs[i][:0], key, payload)
				if err != nil {
					b.Fatal(err)
				}
				pkts[i], to = p, dst
			}
			if _, err := ca.WriteBatch(pkts, to); err != nil {
				b.Fatal(err)
			}
		}
		want := uint64((n + batch - 1) / batch * batch)
		rc.drain(want)
		i := 0
		if noisy {
			i = 1
		}
		took[i] += time.Unix(0, rc.last.Load()).Sub(start)
		got[i] += rc.n.Load()
	}
	n := max(b.N/2, 4*batch)
	b.ReportAllocs()
	b.ResetTimer()
	for _, noisy := range []bool{false, true, true, false} {
		phase(noisy, n)
	}
	b.StopTimer()
	_ = rawRx.Close()
	<-rawDone
	rate := func(i int) float64 {
		if took[i] <= 0 {
			return 0
		}
		return float64(got[i]) * benchPayload / took[i].Seconds() / 1e6
	}
	b.ReportMetric(rate(0), "raw_MB/s")
	b.ReportMetric(rate(1), "noise_MB/s")
	if rate(0) > 0 {
		b.ReportMetric(rate(1)/rate(0), "noise/raw")
	}
	sent := float64(2 * ((n + batch - 1) / batch * batch))
	b.ReportMetric(100*(1-float64(got[0])/sent), "raw_loss-%")
	b.ReportMetric(100*(1-float64(got[1])/sent), "noise_loss-%")
	// How much went through the offloads (0 with DisableOffload or where
	// the kernel lacks them).
	b.ReportMetric(float64(ca.Stats().GSOSends+rawTx.Stats().GSOSends)/sent, "gso_msgs/datagram")
	b.ReportMetric(float64(cb.Stats().GROReads)/sent*2, "noise_gro_reads/datagram")
}
