package netsim

import (
	"net/netip"
	"slices"
	"testing"
	"time"
)

var (
	addrA = netip.MustParseAddrPort("198.18.0.1:51820")
	addrB = netip.MustParseAddrPort("198.18.0.2:51820")
	start = time.Unix(1_700_000_000, 0)
)

// run sends 200 numbered datagrams A→B under cfg and returns what B received.
func run(seed uint64, cfg LinkConfig) ([]byte, Stats) {
	n := New(seed, start)
	var got []byte
	n.Attach(addrB, func(pkt []byte, from netip.AddrPort) { got = append(got, pkt[0]) })
	n.SetDefault(cfg)
	send := n.Sender(addrA)
	for i := range 200 {
		send([]byte{byte(i)}, addrB)
		n.Advance(time.Millisecond)
	}
	n.Advance(time.Second)
	return got, n.Stats()
}

func TestFaults(t *testing.T) {
	tests := []struct {
		name  string
		cfg   LinkConfig
		check func(t *testing.T, got []byte, s Stats)
	}{
		{"perfect", LinkConfig{}, func(t *testing.T, got []byte, s Stats) {
			if len(got) != 200 || !slices.IsSorted(got) || s.Delivered != 200 {
				t.Fatalf("got %d in order=%v", len(got), slices.IsSorted(got))
			}
		}},
		{"loss", LinkConfig{Loss: 0.3}, func(t *testing.T, got []byte, s Stats) {
			if s.Dropped < 30 || s.Dropped > 90 || int(s.Delivered) != len(got) {
				t.Fatalf("dropped %d of 200, delivered %d", s.Dropped, len(got))
			}
		}},
		{"duplicate", LinkConfig{Duplicate: 0.2}, func(t *testing.T, got []byte, s Stats) {
			if s.Duplicated == 0 || len(got) != 200+int(s.Duplicated) {
				t.Fatalf("duplicated %d, received %d", s.Duplicated, len(got))
			}
		}},
		{"reorder", LinkConfig{Delay: time.Millisecond, Reorder: 0.2, ReorderDelay: 5 * time.Millisecond}, func(t *testing.T, got []byte, s Stats) {
			if len(got) != 200 || slices.IsSorted(got) || s.Reordered == 0 {
				t.Fatalf("expected all 200 out of order, got %d sorted=%v", len(got), slices.IsSorted(got))
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, s := run(7, tc.cfg)
			tc.check(t, got, s)
		})
	}
}

func TestDeterministic(t *testing.T) {
	cfg := LinkConfig{Loss: 0.1, Duplicate: 0.1, Jitter: 3 * time.Millisecond, Reorder: 0.1, ReorderDelay: 4 * time.Millisecond}
	a, _ := run(42, cfg)
	b, _ := run(42, cfg)
	c, _ := run(43, cfg)
	if !slices.Equal(a, b) {
		t.Fatal("same seed gave different deliveries")
	}
	if slices.Equal(a, c) {
		t.Fatal("different seeds gave identical deliveries")
	}
}

func TestPartitionAndHeal(t *testing.T) {
	n := New(1, start)
	var got int
	n.Attach(addrB, func([]byte, netip.AddrPort) { got++ })
	n.SetDefault(LinkConfig{Delay: 10 * time.Millisecond})
	n.Send(addrA, addrB, []byte{1}) // in flight when the partition starts
	n.Partition(addrA, addrB)
	n.Send(addrA, addrB, []byte{2})
	n.Advance(time.Second)
	if got != 0 || n.Stats().Blocked != 2 {
		t.Fatalf("partition leaked: got %d, stats %+v", got, n.Stats())
	}
	n.Heal(addrA, addrB)
	n.Send(addrA, addrB, []byte{3})
	n.Advance(time.Second)
	if got != 1 {
		t.Fatalf("after heal got %d, want 1", got)
	}
	if !n.Now().Equal(start.Add(2 * time.Second)) {
		t.Fatalf("clock = %v", n.Now())
	}
}
