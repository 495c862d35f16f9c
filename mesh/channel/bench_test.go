package channel

import (
	"math"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/curve25519"
)

// benchPair is two endpoints wired back to back through slices, no network.
type benchPair struct {
	a, b         *Endpoint
	aAddr, bAddr netip.AddrPort
	fromA, fromB [][]byte
}

func newBenchPair(tb testing.TB) *benchPair {
	bp := &benchPair{aAddr: netip.MustParseAddrPort("198.18.2.1:1"), bAddr: netip.MustParseAddrPort("198.18.2.2:1")}
	unlimited := RateLimit{Rate: math.Inf(1)}
	mk := func(name string, sink *[][]byte) *Endpoint {
		r := seededRand(3, name)
		priv, _, _ := GenerateKey(r)
		ep, err := NewEndpoint(Config{
			ClusterID: "bench", PrivateKey: priv, Rand: r,
			Send:                func(p []byte, _ netip.AddrPort) { *sink = append(*sink, append([]byte(nil), p...)) },
			Authorize:           func([]byte) error { return nil },
			PerSourceHandshakes: unlimited, PerPeerHandshakes: unlimited, GlobalHandshakes: unlimited,
		})
		if err != nil {
			tb.Fatal(err)
		}
		return ep
	}
	bp.a, bp.b = mk("a", &bp.fromA), mk("b", &bp.fromB)
	if err := bp.a.AddPeer(bp.b.PublicKey(), bp.bAddr, PeerOptions{}); err != nil {
		tb.Fatal(err)
	}
	return bp
}

// handshake runs one complete handshake including the confirming keepalive.
func (bp *benchPair) handshake(tb testing.TB) {
	bp.fromA, bp.fromB = bp.fromA[:0], bp.fromB[:0]
	bp.a.cancelTestHandshake(bp.b.PublicKey())
	if err := bp.a.Connect(bp.b.PublicKey()); err != nil {
		tb.Fatal(err)
	}
	if err := bp.b.HandlePacket(bp.fromA[0], bp.aAddr); err != nil {
		tb.Fatal(err)
	}
	if err := bp.a.HandlePacket(bp.fromB[0], bp.bAddr); err != nil {
		tb.Fatal(err)
	}
	if err := bp.b.HandlePacket(bp.fromA[1], bp.aAddr); err != nil {
		tb.Fatal(err)
	}
}

// BenchmarkChaChaPolyBaseline1400 is the raw AEAD seal+open the data path is
// built on, for comparison with BenchmarkSealOpen1400.
func BenchmarkChaChaPolyBaseline1400(b *testing.B) {
	aead, _ := chacha20poly1305.New(make([]byte, 32))
	pt := make([]byte, 1400)
	buf := make([]byte, 0, 1500)
	nonce := make([]byte, 12)
	b.SetBytes(1400)
	b.ReportAllocs()
	for b.Loop() {
		ct := aead.Seal(buf[:0], nonce, pt, nil)
		if _, err := aead.Open(ct[:0], nonce, ct, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSealOpen1400 measures Seal on one endpoint and HandlePacket
// (replay check, decrypt, window update, deliver) on the other. 0 allocs/op.
func BenchmarkSealOpen1400(b *testing.B) {
	bp := newBenchPair(b)
	bp.handshake(b)
	payload := make([]byte, 1400)
	buf := make([]byte, 0, 1500)
	b.SetBytes(1400)
	b.ReportAllocs()
	for b.Loop() {
		pkt, _, err := bp.a.Seal(buf[:0], bp.b.PublicKey(), payload)
		if err != nil {
			b.Fatal(err)
		}
		if err := bp.b.HandlePacket(pkt, bp.aAddr); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkX25519Baseline is one X25519 scalar multiplication; a Noise IK
// handshake costs about 4 on the initiator and 5 on the responder (including
// ephemeral key generation).
func BenchmarkX25519Baseline(b *testing.B) {
	priv := make([]byte, 32)
	priv[0] = 1
	pub, _ := curve25519.X25519(priv, curve25519.Basepoint)
	for b.Loop() {
		if _, err := curve25519.X25519(priv, pub); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHandshake is a complete handshake, both sides, one goroutine.
func BenchmarkHandshake(b *testing.B) {
	bp := newBenchPair(b)
	b.ReportAllocs()
	for b.Loop() {
		bp.handshake(b)
	}
}

// BenchmarkResponderHandshakes measures the responder alone on pre-built
// initiations (each with a newer timestamp), reporting handshakes/s on one core.
func BenchmarkResponderHandshakes(b *testing.B) {
	bp := newBenchPair(b)
	inits := make([][]byte, 0, b.N)
	for range b.N {
		bp.fromA = bp.fromA[:0]
		bp.a.cancelTestHandshake(bp.b.PublicKey())
		if err := bp.a.Connect(bp.b.PublicKey()); err != nil {
			b.Fatal(err)
		}
		inits = append(inits, bp.fromA[0])
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		bp.fromB = bp.fromB[:0]
		if err := bp.b.HandlePacket(inits[i], bp.aAddr); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "handshakes/s")
}
