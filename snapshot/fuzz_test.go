package snapshot

import (
	"bytes"
	"crypto/ed25519"
	"testing"
	"time"
)

// fuzzWire is a valid envelope for node "rdp1" of tableState, version 5,
// signed with testKey(1). The seed corpus in testdata/fuzz/FuzzDecodeVerify
// holds it and mutations of it.
func fuzzWire(tb testing.TB) []byte {
	x, err := NewIndex(tableState(), DefaultConfig())
	if err != nil {
		tb.Fatal(err)
	}
	s, err := x.Build("rdp1", opts(5))
	if err != nil {
		tb.Fatal(err)
	}
	sg, err := Sign(s, testKey(1), 0)
	if err != nil {
		tb.Fatal(err)
	}
	w, err := sg.MarshalBinary()
	if err != nil {
		tb.Fatal(err)
	}
	return w
}

// FuzzDecodeVerify feeds arbitrary bytes to Decode and Verify: they must
// never panic, must return only verification sentinels, and anything they
// accept must satisfy every expectation.
func FuzzDecodeVerify(f *testing.F) {
	f.Add(fuzzWire(f))
	f.Add([]byte{})
	f.Add([]byte("RAPS"))
	trusted := TrustedKeys(testKey(1).Public().(ed25519.PublicKey))
	now := t0.Add(time.Minute)
	f.Fuzz(func(t *testing.T, data []byte) {
		sg, err := Unmarshal(data, 64<<10)
		if err != nil {
			if r := Reason(err); r != ReasonMalformed && r != ReasonTooLarge {
				t.Fatalf("decode reason %q: %v", r, err)
			}
			return
		}
		s, err := Verify(sg, Expect{ClusterID: "c1", NodeID: "rdp1", AppliedVersion: 4, Now: now, TrustedKeys: trusted})
		if err != nil {
			if Reason(err) == ReasonOther {
				t.Fatalf("verify: untyped error %v", err)
			}
			return
		}
		if s.ClusterID != "c1" || s.NodeID != "rdp1" || s.Version <= 4 || !now.Before(s.ExpiresAt) {
			t.Fatalf("accepted a snapshot that violates expectations: %+v", s)
		}
		if _, err := Encode(s); err != nil {
			t.Fatalf("accepted snapshot does not re-encode: %v", err)
		}
	})
}

// FuzzDecodeSnapshotPayload: whatever DecodeSnapshot accepts has every time
// in UTC (one value on every machine, whatever its zone) and re-encodes to a
// payload that decodes to a snapshot with the same canonical encoding.
// Seeds live in testdata/fuzz/FuzzDecodeSnapshotPayload.
func FuzzDecodeSnapshotPayload(f *testing.F) {
	sg, err := Unmarshal(fuzzWire(f), 0)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sg.Payload)
	f.Fuzz(func(t *testing.T, payload []byte) {
		s, err := DecodeSnapshot(payload)
		if err != nil {
			return
		}
		if s.IssuedAt.Location() != time.UTC || s.ExpiresAt.Location() != time.UTC {
			t.Fatalf("decoded times not in UTC: %v %v", s.IssuedAt, s.ExpiresAt)
		}
		again, err := Encode(s)
		if err != nil {
			return // e.g. a year JSON cannot carry once converted to UTC
		}
		s2, err := DecodeSnapshot(again)
		if err != nil {
			t.Fatalf("re-encoded payload does not decode: %v", err)
		}
		if !s.IssuedAt.Equal(s2.IssuedAt) || s.IssuedAt != s2.IssuedAt || s.ExpiresAt != s2.ExpiresAt {
			t.Fatalf("times changed in the round trip: %v %v -> %v %v", s.IssuedAt, s.ExpiresAt, s2.IssuedAt, s2.ExpiresAt)
		}
		third, err := Encode(s2)
		if err != nil || !bytes.Equal(again, third) {
			t.Fatalf("encoding not canonical: %q -> %q (%v)", again, third, err)
		}
	})
}
