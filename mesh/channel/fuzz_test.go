package channel

import (
	"runtime"
	"slices"
	"testing"

	"github.com/rap-fabric/core/mesh/wire"
)

// FuzzEndpoint feeds arbitrary datagrams to an endpoint holding an
// established session: it must never panic, start goroutines, or break the
// live session.
func FuzzEndpoint(f *testing.F) {
	h := newHarness(f, 99)
	a, b := h.add("a", nil), h.add("b", nil)
	a.tap(true)
	h.connect(a, b, false)
	for _, p := range a.taps() {
		f.Add(slices.Clone(p)) // a real initiation and keepalive
	}
	sealed, _, err := a.ep.Seal(nil, b.pub, []byte("seed payload"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sealed)
	f.Add([]byte{})
	f.Add([]byte{byte(wire.TypeResponse)})
	f.Fuzz(func(t *testing.T, pkt []byte) {
		goroutines := runtime.NumGoroutine()
		_ = b.ep.HandlePacket(pkt, a.addr)
		_ = b.ep.HandlePacket(pkt, b.addr) // and from an unknown source
		b.ep.Tick()
		if g := runtime.NumGoroutine(); g > goroutines {
			t.Fatalf("goroutines %d -> %d", goroutines, g)
		}
		// The genuine flow still works (a fresh counter each time).
		before := len(b.received())
		p, _, err := a.ep.Seal(nil, b.pub, []byte("live"))
		if err != nil {
			return // a fuzzed packet may have legitimately triggered a rehandshake
		}
		if err := b.ep.HandlePacket(p, a.addr); err != nil {
			t.Fatalf("live packet refused after fuzz input: %v", err)
		}
		if len(b.received()) != before+1 {
			t.Fatal("live packet not delivered")
		}
	})
}
