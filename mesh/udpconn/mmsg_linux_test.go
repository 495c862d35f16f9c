//go:build linux && (amd64 || arm64)

package udpconn

import (
	"fmt"
	"net"
	"net/netip"
	"testing"
)

// TestMmsgReader: the recvmmsg reader returns every datagram of a batch with
// its length and its sender's address, over IPv4, IPv6 and a dual-stack
// socket receiving from an IPv4 sender (the mapped address comes back
// unmapped, as the other read paths return it); and a read with its source
// decoded allocates nothing.
func TestMmsgReader(t *testing.T) {
	for _, tc := range []struct{ listen, send, dial string }{
		{"127.0.0.1:0", "127.0.0.1:0", ""},
		{"[::1]:0", "[::1]:0", ""},
		{"[::]:0", "127.0.0.1:0", "127.0.0.1"}, // dual stack
	} {
		t.Run(tc.listen+"<-"+tc.send, func(t *testing.T) {
			listen := func(addr string) *net.UDPConn {
				ap := netip.MustParseAddrPort(addr)
				c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(ap))
				if err != nil {
					if ap.Addr().Is6() {
						t.Skipf("no IPv6 here: %s: %v", addr, err) // an optional family, not a dependency
					}
					t.Fatal(err)
				}
				return c
			}
			rx := listen(tc.listen)
			defer rx.Close()
			tx := listen(tc.send)
			defer tx.Close()
			to := rx.LocalAddr().(*net.UDPAddr).AddrPort()
			if tc.dial != "" {
				to = netip.AddrPortFrom(netip.MustParseAddr(tc.dial), to.Port())
			}
			bufs := make([][]byte, 8)
			for i := range bufs {
				bufs[i] = make([]byte, 2048)
			}
			r, err := newMmsgReader(rx, bufs, false)
			if err != nil {
				t.Fatal(err)
			}
			want := tx.LocalAddr().(*net.UDPAddr).AddrPort()
			want = netip.AddrPortFrom(want.Addr().Unmap(), want.Port())
			for i := range 5 {
				if _, err := tx.WriteToUDPAddrPort([]byte(fmt.Sprintf("datagram %d", i)+string(make([]byte, i*100))), to); err != nil {
					t.Fatal(err)
				}
			}
			got := 0
			for got < 5 {
				n, err := r.read()
				if err != nil {
					t.Fatal(err)
				}
				for i := range n {
					p := bufs[i][:r.size(i)]
					if wantP := fmt.Sprintf("datagram %d", got); string(p[:len(wantP)]) != wantP || len(p) != len(wantP)+got*100 {
						t.Fatalf("datagram %d: %q (%d bytes)", got, p[:min(len(p), 12)], len(p))
					}
					if f := r.from(i); f != want {
						t.Fatalf("from %v, want %v", f, want)
					}
					got++
				}
			}
			msg := []byte("x")
			allocs := testing.AllocsPerRun(200, func() {
				if _, err := tx.WriteToUDPAddrPort(msg, to); err != nil {
					t.Fatal(err)
				}
				if n, err := r.read(); err != nil || n != 1 || r.from(0) != want {
					t.Fatalf("read %d %v from %v", n, err, r.from(0))
				}
			})
			if allocs != 0 {
				t.Fatalf("%.1f allocations per datagram read", allocs)
			}
		})
	}
}
