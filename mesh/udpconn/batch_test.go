package udpconn

import (
	"fmt"
	"net/netip"
	"sort"
	"testing"
)

// TestBatchedReadsAndWrites: datagrams written with WriteBatch (sendmmsg) and
// read with batched reads (recvmmsg) reach the channel intact, each once,
// with the sender's address; with Batch 1 (one datagram per call) the same;
// and through x/net's ReadBatch (the path of platforms without udpconn's own
// recvmmsg). Over IPv4 and, where the machine has it, IPv6 loopback.
func TestBatchedReadsAndWrites(t *testing.T) {
	for _, tc := range []struct {
		addr  string
		batch int
		xnet  bool // x/net's ReadBatch instead of udpconn's recvmmsg
	}{{"127.0.0.1:0", 8, false}, {"127.0.0.1:0", 1, false}, {"[::1]:0", 8, false}, {"127.0.0.1:0", 8, true}, {"[::1]:0", 8, true}} {
		t.Run(fmt.Sprintf("%s/batch=%d/xnet=%v", tc.addr, tc.batch, tc.xnet), func(t *testing.T) {
			xnetReadsOnly = tc.xnet
			t.Cleanup(func() { xnetReadsOnly = false })
			ca, err := ListenUDP(tc.addr, Options{Batch: tc.batch})
			if err != nil {
				if tc.addr[0] == '[' {
					t.Skipf("no IPv6 loopback: %v", err) // an optional family, not a dependency
				}
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = ca.Close() })
			cb, err := ListenUDP(tc.addr, Options{Batch: tc.batch})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = cb.Close() })
			a := newUDPNode(t, ca, "c1", 0, nil)
			b := newUDPNode(t, cb, "c1", 0, nil)
			ca.Start()
			cb.Start()
			ticker(t, a.ep, b.ep)
			establish(t, a, b)
			received := cb.Stats().Received
			const n = 100
			var to netip.AddrPort
			var want []string
			for chunk := 0; chunk < n; chunk += 10 {
				pkts := make([][]byte, 0, 10)
				for i := chunk; i < chunk+10; i++ {
					msg := fmt.Sprintf("m-%03d", i)
					want = append(want, msg)
					pkt, dst, err := a.ep.Seal(nil, b.ep.PublicKey(), []byte(msg))
					if err != nil {
						t.Fatal(err)
					}
					to = dst
					pkts = append(pkts, pkt)
				}
				if w, err := ca.WriteBatch(pkts, to); err != nil || w != len(pkts) {
					t.Fatalf("WriteBatch wrote %d of %d: %v", w, len(pkts), err)
				}
			}
			if to != cb.LocalAddr() {
				t.Fatalf("sealed for %v, socket at %v", to, cb.LocalAddr())
			}
			var got []string
			for _, p := range recvN(t, b.got, n) {
				got = append(got, string(p))
			}
			sort.Strings(got)
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("delivered %v", got)
			}
			if d := cb.Stats().Received - received; d < n {
				t.Fatalf("read loop counted %d datagrams, want >= %d", d, n)
			}
		})
	}
}
