package routing

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestMessageRoundTrip(t *testing.T) {
	es := []Entry{{Dst: "a", Seq: 1, Metric: 2, Hops: 3}, {Dst: strings.Repeat("z", MaxIDLen), Seq: 0xFFFFFFFF, Metric: Infinity}}
	b := EncodeUpdate(nil, es)
	m, err := Decode(b)
	if err != nil || m.Kind != KindUpdate || !reflect.DeepEqual(m.Entries, es) {
		t.Fatalf("%+v %v", m, err)
	}
	q := SeqRequest{Dst: "node-7", Seq: 9, HopLimit: 16}
	m, err = Decode(EncodeSeqRequest(nil, q))
	if err != nil || m.Kind != KindSeqRequest || m.Request != q {
		t.Fatalf("%+v %v", m, err)
	}
}

func TestDecodeRejects(t *testing.T) {
	good := EncodeUpdate(nil, []Entry{{Dst: "a", Seq: 1, Metric: 2, Hops: 3}})
	bad := [][]byte{
		nil, {Magic}, {Magic, version}, {'X', version, 1, 0, 0}, {Magic, 9, 1, 0, 0},
		{Magic, version, 7}, {Magic, version, 1, 0},
		append(bytes.Clone(good), 0),                      // trailing
		good[:len(good)-1],                                // truncated id
		{Magic, version, 1, 0xFF, 0xFF},                   // count cannot fit
		{Magic, version, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0}, // empty id
		{Magic, version, 2, 0, 0, 0, 1, 16, 0},            // request empty id
		{Magic, version, 2, 0, 0, 0, 1, 16, 2, 'a'},       // request truncated
	}
	for i, b := range bad {
		if _, err := Decode(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("case %d: err = %v", i, err)
		}
	}
}

// FuzzDecodeAdvert: Decode never panics, and whatever it accepts re-encodes
// to the same bytes (the format is canonical).
func FuzzDecodeAdvert(f *testing.F) {
	f.Add(EncodeUpdate(nil, []Entry{{Dst: "n01", Seq: 4, Metric: 12, Hops: 2}, {Dst: "n02", Seq: 1, Metric: Infinity}}))
	f.Add(EncodeSeqRequest(nil, SeqRequest{Dst: "n03", Seq: 5, HopLimit: 16}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("unwrapped error %v", err)
			}
			return
		}
		var re []byte
		switch m.Kind {
		case KindUpdate:
			re = EncodeUpdate(nil, m.Entries)
		case KindSeqRequest:
			re = EncodeSeqRequest(nil, m.Request)
		default:
			t.Fatalf("kind %d accepted", m.Kind)
		}
		if !bytes.Equal(re, b) {
			t.Fatalf("re-encoding differs:\n%x\n%x", b, re)
		}
	})
}
