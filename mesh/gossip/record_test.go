package gossip

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

func maxRecord() Record {
	eps := make([]netip.AddrPort, MaxEndpoints)
	for i := range eps {
		eps[i] = netip.MustParseAddrPort("[2001:db8::1]:51820")
	}
	return Record{
		ClusterID: strings.Repeat("c", MaxIDLen), NodeID: strings.Repeat("n", MaxIDLen),
		Region: strings.Repeat("r", MaxRegionLen), Load: 1, Incarnation: ^uint64(0), Endpoints: eps,
	}
}

func TestRecordRoundTripAndSize(t *testing.T) {
	k := key("n1")
	for _, r := range []Record{
		{ClusterID: "c1", NodeID: "n1", Endpoints: []netip.AddrPort{netip.MustParseAddrPort("10.1.2.3:51820"), netip.MustParseAddrPort("[2001:db8::2]:9")}, Region: "eu-west", Load: 0.4321, Incarnation: 1700000000123456789},
		{ClusterID: "c", NodeID: "n"},
		maxRecord(),
	} {
		b, err := EncodeRecord(r, k)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) > MaxRecordLen || MaxRecordLen > 512 {
			t.Fatalf("record %d bytes (max %d, memberlist 512)", len(b), MaxRecordLen)
		}
		got, err := VerifyRecord(b, k.Public().(ed25519.PublicKey))
		if err != nil {
			t.Fatal(err)
		}
		if got.ClusterID != r.ClusterID || got.NodeID != r.NodeID || got.Region != r.Region ||
			got.Incarnation != r.Incarnation || len(got.Endpoints) != len(r.Endpoints) || got.Load-r.Load > 1e-4 || r.Load-got.Load > 1e-4 {
			t.Errorf("round trip %+v → %+v", r, got)
		}
		for i := range r.Endpoints {
			if got.Endpoints[i] != r.Endpoints[i] {
				t.Errorf("endpoint %d: %v → %v", i, r.Endpoints[i], got.Endpoints[i])
			}
		}
	}
	if b, _ := EncodeRecord(maxRecord(), k); len(b) != MaxRecordLen {
		t.Errorf("max record %d bytes, MaxRecordLen %d", len(b), MaxRecordLen)
	}
}

func TestRecordRejects(t *testing.T) {
	k := key("n1")
	b, _ := EncodeRecord(Record{ClusterID: "c1", NodeID: "n1", Incarnation: 7}, k)
	if _, err := VerifyRecord(b, key("other").Public().(ed25519.PublicKey)); !errors.Is(err, ErrBadSignature) {
		t.Errorf("wrong key: %v", err)
	}
	flipped := bytes.Clone(b)
	flipped[5] ^= 1
	if _, err := VerifyRecord(flipped, k.Public().(ed25519.PublicKey)); err == nil {
		t.Error("tampered record verified")
	}
	for name, in := range map[string][]byte{
		"empty": nil, "short": b[:10], "trailing": append(bytes.Clone(b[:len(b)-64]), append([]byte{0}, b[len(b)-64:]...)...),
		"oversized": make([]byte, MaxRecordLen+1), "bad magic": append([]byte{'X'}, b[1:]...),
	} {
		if _, _, _, err := DecodeRecord(in); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
	bad := []Record{
		{ClusterID: "", NodeID: "n"}, {ClusterID: "c", NodeID: strings.Repeat("n", MaxIDLen+1)},
		{ClusterID: "c", NodeID: "n", Load: 1.5}, {ClusterID: "c", NodeID: "n", Endpoints: []netip.AddrPort{{}}},
	}
	for _, r := range bad {
		if _, err := EncodeRecord(r, k); !errors.Is(err, ErrMalformed) {
			t.Errorf("%+v encoded: %v", r, err)
		}
	}
}

func FuzzDecodeRecord(f *testing.F) {
	b, _ := EncodeRecord(Record{ClusterID: "c1", NodeID: "n1", Endpoints: []netip.AddrPort{netip.MustParseAddrPort("10.0.0.1:1")}}, key("n1"))
	f.Add(b)
	f.Add([]byte{recordMagic, recordVersion, 255})
	f.Fuzz(func(t *testing.T, in []byte) {
		r, body, sig, err := DecodeRecord(in)
		if err != nil {
			return
		}
		if len(body)+len(sig) != len(in) || r.validate() != nil {
			t.Fatalf("decoded inconsistent record %+v", r)
		}
		// Whatever decodes re-encodes to a record that decodes to the same
		// value (one canonical value for every accepted input).
		again, err := EncodeRecord(r, key(r.NodeID))
		if err != nil {
			t.Fatalf("decoded record does not re-encode: %v (%+v)", err, r)
		}
		r2, _, _, err := DecodeRecord(again)
		if err != nil || !reflect.DeepEqual(r, r2) {
			t.Fatalf("round trip changed the record: %+v -> %+v (%v)", r, r2, err)
		}
	})
}
