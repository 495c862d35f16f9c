package wire

import (
	"bytes"
	"errors"
	"testing"
)

func TestParseTable(t *testing.T) {
	data := AppendHeader(nil, Header{Type: TypeData, Receiver: 0xdeadbeef, Counter: 42})
	data = append(data, bytes.Repeat([]byte{7}, TagLen+3)...)
	keep := AppendHeader(nil, Header{Type: TypeKeepalive, Receiver: 1, Counter: 2})
	keep = append(keep, make([]byte, TagLen)...)
	keepLong := append(append([]byte(nil), keep...), 0)
	init := AppendInitiationPrefix(nil, 77)
	init = append(init, make([]byte, InitiationNoiseLen+MACLen)...)
	resp := AppendResponsePrefix(nil, 5, 6)
	resp = append(resp, make([]byte, ResponseNoiseLen+MACLen)...)

	tests := []struct {
		name    string
		in      []byte
		wantErr error
		check   func(t *testing.T, p Packet)
	}{
		{"empty", nil, ErrShort, nil},
		{"zero type", make([]byte, 40), ErrType, nil},
		{"unknown type", append([]byte{9}, make([]byte, 40)...), ErrType, nil},
		{"short data", data[:MinDataLen-1], ErrShort, nil},
		{"data", data, nil, func(t *testing.T, p Packet) {
			if p.Type != TypeData || p.Receiver != 0xdeadbeef || p.Counter != 42 || len(p.Body) != TagLen+3 {
				t.Fatalf("got %+v", p)
			}
		}},
		{"keepalive", keep, nil, func(t *testing.T, p Packet) {
			if p.Type != TypeKeepalive || p.Receiver != 1 || p.Counter != 2 {
				t.Fatalf("got %+v", p)
			}
		}},
		{"keepalive with data", keepLong, ErrLength, nil},
		{"initiation", init, nil, func(t *testing.T, p Packet) {
			if p.Sender != 77 || len(p.Body) != InitiationNoiseLen || len(p.MAC) != MACLen {
				t.Fatalf("got %+v", p)
			}
		}},
		{"initiation short", init[:len(init)-1], ErrLength, nil},
		{"response", resp, nil, func(t *testing.T, p Packet) {
			if p.Sender != 5 || p.Receiver != 6 || len(p.Body) != ResponseNoiseLen || len(p.MAC) != MACLen {
				t.Fatalf("got %+v", p)
			}
		}},
		{"response long", append(append([]byte(nil), resp...), 1), ErrLength, nil},
		{"too long", append([]byte{byte(TypeData)}, make([]byte, MaxPacketLen)...), ErrTooLong, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Parse(tc.in)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if tc.check != nil {
				tc.check(t, p)
			}
		})
	}
}

func TestReceiverIndex(t *testing.T) {
	data := append(AppendHeader(nil, Header{Type: TypeData, Receiver: 9, Counter: 1}), make([]byte, TagLen)...)
	resp := append(AppendResponsePrefix(nil, 5, 6), make([]byte, ResponseNoiseLen+MACLen)...)
	init := append(AppendInitiationPrefix(nil, 5), make([]byte, InitiationNoiseLen+MACLen)...)
	for _, tc := range []struct {
		in   []byte
		idx  uint32
		isOK bool
	}{{data, 9, true}, {resp, 6, true}, {init, 0, false}, {nil, 0, false}, {data[:5], 0, false}} {
		idx, ok := ReceiverIndex(tc.in)
		if idx != tc.idx || ok != tc.isOK {
			t.Errorf("ReceiverIndex(%x) = %d,%v want %d,%v", tc.in, idx, ok, tc.idx, tc.isOK)
		}
	}
}

func TestTimestampOrder(t *testing.T) {
	a := TAI64N(1_700_000_000, 5)
	b := TAI64N(1_700_000_000, 6)
	c := TAI64N(1_700_000_001, 0)
	if !b.After(a) || !c.After(b) || a.After(a) || a.After(c) {
		t.Fatal("TAI64N order does not follow time order")
	}
}

func TestParseAndAppendDoNotAllocate(t *testing.T) {
	buf := make([]byte, 0, 1500)
	payload := make([]byte, 1400+TagLen)
	allocs := testing.AllocsPerRun(200, func() {
		b := AppendHeader(buf[:0], Header{Type: TypeData, Receiver: 3, Counter: 99})
		b = append(b, payload...)
		if _, err := Parse(b); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("allocs per parse+append = %v, want 0", allocs)
	}
}

// FuzzParse checks that Parse never panics, that accepted packets respect the
// layout, and that a data header round-trips through AppendHeader.
func FuzzParse(f *testing.F) {
	f.Add([]byte{})
	f.Add(append(AppendHeader(nil, Header{Type: TypeData, Receiver: 1, Counter: 2}), make([]byte, TagLen+10)...))
	f.Add(append(AppendInitiationPrefix(nil, 5), make([]byte, InitiationNoiseLen+MACLen)...))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Parse(b)
		if err != nil {
			return
		}
		switch p.Type {
		case TypeData, TypeKeepalive:
			if len(p.Body) < TagLen {
				t.Fatalf("accepted data body of %d bytes", len(p.Body))
			}
			again := AppendHeader(nil, Header{Type: p.Type, Receiver: p.Receiver, Counter: p.Counter})
			if !bytes.Equal(again, b[:HeaderLen]) {
				t.Fatalf("header round trip: %x != %x", again, b[:HeaderLen])
			}
		case TypeInitiation:
			if len(b) != InitiationLen || len(p.MAC) != MACLen {
				t.Fatal("bad initiation accepted")
			}
		case TypeResponse:
			if len(b) != ResponseLen || len(p.MAC) != MACLen {
				t.Fatal("bad response accepted")
			}
		default:
			t.Fatalf("accepted type %v", p.Type)
		}
	})
}
