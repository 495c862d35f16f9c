package e2e

import (
	"testing"

	"golang.org/x/crypto/chacha20poly1305"
)

// BenchmarkEchoDirectVsRelay measures one 64-byte echo round trip (seal,
// route, open at each end, echo back) over the synchronous in-memory link
// layer: direct neighbours versus one relay in between (the relay only
// parses, decrements the TTL and looks up the next hop). "direct" is the
// baseline.
func BenchmarkEchoDirectVsRelay(b *testing.B) {
	for _, tc := range []struct {
		name   string
		routes map[string]staticRoutes
	}{
		{"direct", map[string]staticRoutes{"s": {"d": "d"}, "d": {"s": "s"}}},
		{"one-relay", map[string]staticRoutes{"s": {"d": "r"}, "r": {"d": "d", "s": "s"}, "d": {"s": "r"}}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			l := newLinks(b, tc.routes, nil)
			c, err := l.f["s"].DialService("d", EchoService)
			if err != nil {
				b.Fatal(err)
			}
			l.pump()
			msg := make([]byte, 64)
			for range 5000 { // warm up (heap, caches) so the order of sub-benchmarks does not matter
				_ = c.Send(msg)
				l.pump()
				c.TryRecv()
			}
			b.ReportAllocs()
			for b.Loop() {
				if err := c.Send(msg); err != nil {
					b.Fatal(err)
				}
				l.pump()
				if _, ok := c.TryRecv(); !ok {
					b.Fatal("no echo")
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/echo")
		})
	}
}

// BenchmarkE2ESeal seals a 1 KiB payload into a full e2e frame (header,
// counter, ChaCha20-Poly1305 with the header as AD) against a plain
// ChaCha20-Poly1305 Seal of the same payload as the baseline.
func BenchmarkE2ESeal(b *testing.B) {
	payload := make([]byte, 1024)
	key := make([]byte, 32)
	b.Run("e2e-frame", func(b *testing.B) {
		s, err := newSession([32]byte{1}, [32]byte{2})
		if err != nil {
			b.Fatal(err)
		}
		buf := make([]byte, 0, 2048)
		b.SetBytes(int64(len(payload)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.seal(buf[:0], TypeData, FlagFromInitiator, 7, "node-source-01", "node-dest-0001", 16, payload); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("baseline-chacha20poly1305", func(b *testing.B) {
		aead, _ := chacha20poly1305.New(key)
		nonce := make([]byte, 12)
		buf := make([]byte, 0, 2048)
		b.SetBytes(int64(len(payload)))
		b.ReportAllocs()
		for b.Loop() {
			_ = aead.Seal(buf[:0], nonce, payload, nil)
		}
	})
}
