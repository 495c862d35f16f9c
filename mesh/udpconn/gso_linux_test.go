//go:build linux && (amd64 || arm64)

package udpconn

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rap-fabric/core/mesh/wire"
)

// capture is a Handler that keeps a copy of every datagram, then scribbles
// over the rest of the slice's capacity (a handler may modify its packet:
// that must not reach the next datagram of a coalesced read).
type capture struct {
	mu  sync.Mutex
	got [][]byte
}

func (c *capture) HandlePacket(pkt []byte, _ netip.AddrPort) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.got = append(c.got, append([]byte(nil), pkt...))
	rest := pkt[len(pkt):cap(pkt)]
	for i := range rest {
		rest[i] = 0xFF
	}
	return nil
}
func (c *capture) AcceptsInitiation([]byte) bool { return false }

func (c *capture) wait(t *testing.T, n int) [][]byte {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		k := len(c.got)
		c.mu.Unlock()
		if k >= n {
			break
		}
		time.Sleep(time.Millisecond)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.got) != n {
		t.Fatalf("received %d datagrams, want %d", len(c.got), n)
	}
	return c.got
}

// gsoPackets builds data datagrams for index prefix 7, numbered i in their
// header, of the given sizes.
func gsoPackets(sizes []int) [][]byte {
	pkts := make([][]byte, len(sizes))
	for i, n := range sizes {
		p := make([]byte, n)
		p[0] = byte(wire.TypeData)
		binary.BigEndian.PutUint32(p[1:5], 7<<24|uint32(i))
		for k := 5; k < n; k++ {
			p[k] = byte(i + k)
		}
		pkts[i] = p
	}
	return pkts
}

// gsoSizes mixes runs of equal sizes, a shorter datagram ending a run, a
// longer one starting the next, a run longer than the kernel's 64 segments,
// and runs that reach the 65,507-byte bound.
func gsoSizes() []int {
	var s []int
	for range 5 {
		s = append(s, 1200)
	}
	s = append(s, 300, 1400, 1400, 1400, 64, 64)
	for range 70 {
		s = append(s, wire.MinDataLen)
	}
	for range 50 {
		s = append(s, 1432)
	}
	s = append(s, 9000, 9000, 9000, 9000, 9000, 9000, 9000, 9000, 100)
	return s
}

// TestGSOWriteBatch: WriteBatch sends runs of equal-sized datagrams as UDP
// GSO messages, and every datagram arrives intact, once and in order: at a
// Conn that reads them coalesced (UDP_GRO) and splits them, and at a plain
// socket that gets them one by one (the kernel segments). Over IPv4, IPv6
// and a dual-stack socket sending to an IPv4 address. A handler writing
// past its datagram does not touch the next one, and a batch allocates
// nothing.
func TestGSOWriteBatch(t *testing.T) {
	for _, tc := range []struct{ listen, send, dial string }{
		{"127.0.0.1:0", "127.0.0.1:0", ""},
		{"[::1]:0", "[::1]:0", ""},
		{"127.0.0.1:0", "[::]:0", "127.0.0.1"},
	} {
		t.Run(tc.listen+"<-"+tc.send, func(t *testing.T) {
			rx, err := ListenUDP(tc.listen, Options{Batch: 8})
			if err != nil {
				if tc.listen[0] == '[' {
					t.Skipf("no IPv6 here: %v", err) // an optional family, not a dependency
				}
				t.Fatal(err)
			}
			defer rx.Close()
			_ = rx.udp.SetReadBuffer(4 << 20) // the batch is 157 kB in one go
			tx, err := ListenUDP(tc.send, Options{})
			if err != nil {
				if tc.send[0] == '[' {
					t.Skipf("no IPv6 here: %v", err)
				}
				t.Fatal(err)
			}
			defer tx.Close()
			if tx.sock == nil || !tx.sock.gso {
				t.Fatal("the kernel here has UDP_SEGMENT (4.18+) but the Conn did not find it")
			}
			var c capture
			if err := rx.Attach(7, &c); err != nil {
				t.Fatal(err)
			}
			rx.Start()
			plain, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(tc.listen)))
			if err != nil {
				t.Fatal(err)
			}
			defer plain.Close()
			to, plainTo := rx.LocalAddr(), plain.LocalAddr().(*net.UDPAddr).AddrPort()
			if tc.dial != "" {
				to = netip.AddrPortFrom(netip.MustParseAddr(tc.dial), to.Port())
				plainTo = netip.AddrPortFrom(netip.MustParseAddr(tc.dial), plainTo.Port())
			}

			pkts := gsoPackets(gsoSizes())
			if n, err := tx.WriteBatch(pkts, to); err != nil || n != len(pkts) {
				t.Fatalf("WriteBatch wrote %d of %d: %v", n, len(pkts), err)
			}
			got := c.wait(t, len(pkts))
			for i := range pkts {
				if !bytes.Equal(got[i], pkts[i]) {
					t.Fatalf("datagram %d: %d bytes, want %d (%x…)", i, len(got[i]), len(pkts[i]), got[i][:min(9, len(got[i]))])
				}
			}
			st, rs := tx.Stats(), rx.Stats()
			if st.GSOSends == 0 || rs.GROReads == 0 {
				t.Fatalf("GSO messages %d, coalesced reads %d: the offloads were not used", st.GSOSends, rs.GROReads)
			}
			if st.GSOSends >= uint64(len(pkts))/4 {
				t.Fatalf("%d GSO messages for %d datagrams", st.GSOSends, len(pkts))
			}

			// A socket without UDP_GRO gets every datagram on its own (in
			// chunks that fit its default receive buffer).
			buf := make([]byte, 65536)
			_ = plain.SetReadDeadline(time.Now().Add(5 * time.Second))
			gso := tx.Stats().GSOSends
			for i := 0; i < len(pkts); i += 16 {
				chunk := pkts[i:min(i+16, len(pkts))]
				if n, err := tx.WriteBatch(chunk, plainTo); err != nil || n != len(chunk) {
					t.Fatalf("WriteBatch wrote %d of %d: %v", n, len(chunk), err)
				}
				for k := range chunk {
					n, _, err := plain.ReadFromUDPAddrPort(buf)
					if err != nil {
						t.Fatalf("datagram %d: %v", i+k, err)
					}
					if !bytes.Equal(buf[:n], chunk[k]) {
						t.Fatalf("plain socket, datagram %d: %d bytes, want %d", i+k, n, len(chunk[k]))
					}
				}
			}
			if tx.Stats().GSOSends == gso {
				t.Fatal("no GSO message to the plain socket")
			}

			small := gsoPackets([]int{100, 100, 100, 100})
			allocs := testing.AllocsPerRun(100, func() {
				if n, err := tx.WriteBatch(small, plainTo); err != nil || n != len(small) {
					t.Fatalf("WriteBatch wrote %d: %v", n, err)
				}
			})
			if allocs != 0 && !raceEnabled {
				t.Fatalf("%.1f allocations per WriteBatch", allocs)
			}
		})
	}
}

// TestGSOFallback: where a GSO send fails (here: a socket with UDP checksums
// off, which the kernel refuses to segment, EINVAL), the batch still goes
// out whole, one datagram per message; after gsoRefusals such refusals the
// Conn sends without GSO. With DisableOffload neither offload is used.
func TestGSOFallback(t *testing.T) {
	rx, err := ListenUDP("127.0.0.1:0", Options{Batch: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	var c capture
	if err := rx.Attach(7, &c); err != nil {
		t.Fatal(err)
	}
	rx.Start()
	tx, err := ListenUDP("127.0.0.1:0", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	var serr error
	if err := tx.sock.rc.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_NO_CHECK, 1)
	}); err != nil || serr != nil {
		t.Fatal(err, serr)
	}
	pkts := gsoPackets([]int{500, 500, 500, 500, 500, 200})
	for round := range gsoRefusals + 1 {
		if n, err := tx.WriteBatch(pkts, rx.LocalAddr()); err != nil || n != len(pkts) {
			t.Fatalf("round %d: WriteBatch wrote %d of %d: %v", round, n, len(pkts), err)
		}
	}
	got := c.wait(t, (gsoRefusals+1)*len(pkts))
	for i, p := range got {
		if !bytes.Equal(p, pkts[i%len(pkts)]) {
			t.Fatalf("datagram %d differs", i)
		}
	}
	if st := tx.Stats(); st.GSOSends != 0 || !tx.gsoOff.Load() || st.WriteErrors != 0 {
		t.Fatalf("after a refused GSO send: %+v, GSO off %v", st, tx.gsoOff.Load())
	}

	off, err := ListenUDP("127.0.0.1:0", Options{Batch: 8, DisableOffload: true})
	if err != nil {
		t.Fatal(err)
	}
	defer off.Close()
	var oc capture
	if err := off.Attach(7, &oc); err != nil {
		t.Fatal(err)
	}
	off.Start()
	tx2, err := ListenUDP("127.0.0.1:0", Options{DisableOffload: true})
	if err != nil {
		t.Fatal(err)
	}
	defer tx2.Close()
	if n, err := tx2.WriteBatch(pkts, off.LocalAddr()); err != nil || n != len(pkts) {
		t.Fatalf("WriteBatch wrote %d: %v", n, err)
	}
	oc.wait(t, len(pkts))
	if st, rs := tx2.Stats(), off.Stats(); st.GSOSends != 0 || rs.GROReads != 0 {
		t.Fatalf("with DisableOffload: %d GSO messages, %d coalesced reads", st.GSOSends, rs.GROReads)
	}
}
