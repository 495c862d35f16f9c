package snapshot

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"io"
	"math/rand"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func smallState() *State { return genState(rand.New(rand.NewSource(7)), 40, 3) }

func mustSigned(t testing.TB, x *Index, node string, v uint64, key ed25519.PrivateKey) Signed {
	t.Helper()
	s, err := x.Build(node, opts(v))
	require.NoError(t, err)
	sg, err := Sign(s, key, 0)
	require.NoError(t, err)
	return sg
}

func TestVerifyReasons(t *testing.T) {
	current, rotated := testKey(1), testKey(2)
	x, err := NewIndex(smallState(), DefaultConfig())
	require.NoError(t, err)
	nodes := x.Nodes()
	me, other := nodes[0], nodes[1]
	good := mustSigned(t, x, me, 10, current)
	expect := Expect{ClusterID: "c1", NodeID: me, AppliedVersion: 5, Now: t0.Add(time.Minute),
		TrustedKeys: TrustedKeys(current.Public().(ed25519.PublicKey))}

	flip := func(b []byte, i int) []byte { c := bytes.Clone(b); c[i] ^= 0x01; return c }
	withPayload := func(p []byte) Signed { s := good; s.Payload = p; return s }

	otherCluster := func() Signed {
		s, err := x.Build(me, opts(10))
		require.NoError(t, err)
		s.ClusterID = "c2"
		sg, err := Sign(s, current, 0)
		require.NoError(t, err)
		return sg
	}
	// a payload that is signed but not a snapshot
	garbage := func() Signed {
		sig, err := current.Sign(nil, []byte(`{"format":1}`), signOpts)
		require.NoError(t, err)
		return Signed{Payload: []byte(`{"format":1}`), KeyID: good.KeyID, Signature: sig}
	}
	// rotated key claiming the current key's id
	impostor := func() Signed {
		s := mustSigned(t, x, me, 10, rotated)
		s.KeyID = good.KeyID
		return s
	}

	cases := []struct {
		name   string
		signed Signed
		mod    func(e *Expect)
		want   error
	}{
		{"valid", good, nil, nil},
		{"tampered payload byte", withPayload(flip(good.Payload, len(good.Payload)/2)), nil, ErrBadSignature},
		{"tampered first byte", withPayload(flip(good.Payload, 0)), nil, ErrBadSignature},
		{"tampered signature", Signed{good.Payload, good.KeyID, flip(good.Signature, 5)}, nil, ErrBadSignature},
		{"signature by another key under this id", impostor(), nil, ErrBadSignature},
		{"truncated signature", Signed{good.Payload, good.KeyID, good.Signature[:63]}, nil, ErrMalformed},
		{"empty payload", withPayload(nil), nil, ErrMalformed},
		{"signed garbage", garbage(), nil, ErrMalformed},
		{"rotated-out key", mustSigned(t, x, me, 10, rotated), nil, ErrUnknownKey},
		{"no trusted keys", good, func(e *Expect) { e.TrustedKeys = nil }, ErrUnknownKey},
		{"wrong cluster (snapshot)", otherCluster(), nil, ErrWrongCluster},
		{"wrong cluster (verifier)", good, func(e *Expect) { e.ClusterID = "c2" }, ErrWrongCluster},
		{"another node's snapshot", mustSigned(t, x, other, 10, current), nil, ErrWrongNode},
		{"older version", good, func(e *Expect) { e.AppliedVersion = 11 }, ErrStaleVersion},
		{"equal version", good, func(e *Expect) { e.AppliedVersion = 10 }, ErrStaleVersion},
		{"newer by one", good, func(e *Expect) { e.AppliedVersion = 9 }, nil},
		{"expired", good, func(e *Expect) { e.Now = t0.Add(2 * time.Hour) }, ErrExpired},
		{"expires exactly now", good, func(e *Expect) { e.Now = t0.Add(time.Hour) }, ErrExpired},
		{"not yet valid", good, func(e *Expect) { e.Now = t0.Add(-time.Hour) }, ErrNotYetValid},
		{"within clock skew", good, func(e *Expect) { e.Now = t0.Add(-time.Minute) }, nil},
		{"too large", good, func(e *Expect) { e.MaxSize = int64(len(good.Payload) - 1) }, ErrTooLarge},
	}
	seen := map[string]string{}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := expect
			if tc.mod != nil {
				tc.mod(&e)
			}
			s, err := Verify(tc.signed, e)
			if tc.want == nil {
				require.NoError(t, err)
				require.Equal(t, me, s.NodeID)
				require.Equal(t, uint64(10), s.Version)
				require.Equal(t, ReasonOK, Reason(err))
				return
			}
			require.ErrorIs(t, err, tc.want)
			var ve *VerifyError
			require.True(t, errors.As(err, &ve))
			code := Reason(err)
			require.NotEqual(t, ReasonOther, code)
			if prev, ok := seen[code]; ok {
				require.Equal(t, prev, tc.want.Error(), "two sentinels share reason %s", code)
			}
			seen[code] = tc.want.Error()
		})
	}
	require.Len(t, seen, 9, "every sentinel has its own reason")
	require.Equal(t, ReasonOther, Reason(io.EOF))
}

func TestWireRoundTripAndTruncation(t *testing.T) {
	key := testKey(1)
	x, err := NewIndex(smallState(), DefaultConfig())
	require.NoError(t, err)
	me := x.Nodes()[0]
	orig, err := x.Build(me, opts(10))
	require.NoError(t, err)
	sg, err := Sign(orig, key, 0)
	require.NoError(t, err)
	wire, err := sg.MarshalBinary()
	require.NoError(t, err)

	got, err := Unmarshal(wire, 0)
	require.NoError(t, err)
	require.Equal(t, sg, got)
	s, err := Verify(got, Expect{ClusterID: "c1", NodeID: me, Now: t0, TrustedKeys: TrustedKeys(key.Public().(ed25519.PublicKey))})
	require.NoError(t, err)
	require.Equal(t, orig, s, "decoded snapshot equals the built one")
	again, err := Encode(s)
	require.NoError(t, err)
	require.Equal(t, sg.Payload, again, "re-encoding a decoded snapshot gives the signed bytes")

	for _, cut := range []int{0, 3, 6, 10, 30, 90, len(wire) / 2, len(wire) - 1} {
		_, err := Unmarshal(wire[:cut], 0)
		require.ErrorIs(t, err, ErrMalformed, "cut at %d", cut)
	}
	_, err = Unmarshal(append(bytes.Clone(wire), 0), 0)
	require.ErrorIs(t, err, ErrMalformed, "trailing byte")
	bad := bytes.Clone(wire)
	bad[0] = 'X'
	_, err = Unmarshal(bad, 0)
	require.ErrorIs(t, err, ErrMalformed)
	_, err = Unmarshal(wire, int64(len(wire)-1))
	require.ErrorIs(t, err, ErrTooLarge)
	_, err = Unmarshal(wire, int64(len(wire)))
	require.NoError(t, err)
}

// endless yields an envelope prefix and then filler bytes forever, counting
// what it served.
type endless struct {
	prefix []byte
	served int64
	limit  int64 // stops (EOF) after this many bytes: 1 GiB
}

func (e *endless) Read(p []byte) (int, error) {
	if e.served >= e.limit {
		return 0, io.EOF
	}
	n := int64(len(p))
	if rem := e.limit - e.served; n > rem {
		n = rem
	}
	for i := int64(0); i < n; i++ {
		off := e.served + i
		if off < int64(len(e.prefix)) {
			p[i] = e.prefix[off]
		} else {
			p[i] = 'A'
		}
	}
	e.served += n
	return int(n), nil
}

func TestDecodeHugeInputStopsEarly(t *testing.T) {
	const gib = 1 << 30
	const limit = 1 << 20
	header := func(plen uint32) []byte {
		h := append([]byte("RAPS"), 1, 16)
		h = append(h, bytes.Repeat([]byte("k"), 16)...)
		h = append(h, 64)
		h = append(h, make([]byte, 64)...)
		return binary.BigEndian.AppendUint32(h, plen)
	}
	cases := []struct {
		name   string
		prefix []byte
		want   error
		max    int64
	}{
		// declares 4 GiB: refused after the header, nothing allocated
		{"declared huge", header(^uint32(0)), ErrTooLarge, 200},
		// declares exactly the limit and keeps streaming: refused at limit+1
		{"declared at limit then more", header(uint32(limit - 6 - 16 - 1 - 64 - 4)), ErrTooLarge, limit + 1},
		// garbage
		{"no magic", []byte("GET / HTTP/1.1\r\n"), ErrMalformed, 16},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := &endless{prefix: tc.prefix, limit: gib}
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			_, err := Decode(r, limit)
			runtime.ReadMemStats(&after)
			require.ErrorIs(t, err, tc.want)
			require.LessOrEqual(t, r.served, tc.max, "read far beyond the limit")
			require.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(4*limit), "allocated far beyond the limit")
		})
	}
}

func TestSignRefusesOversized(t *testing.T) {
	x, err := NewIndex(smallState(), DefaultConfig())
	require.NoError(t, err)
	s, err := x.Build(x.Nodes()[0], opts(1))
	require.NoError(t, err)
	_, err = Sign(s, testKey(1), 100)
	require.ErrorIs(t, err, ErrTooLarge)
	_, err = Sign(s, ed25519.PrivateKey{1, 2}, 0)
	require.ErrorIs(t, err, ErrInvalidOptions)
}

func TestKeyID(t *testing.T) {
	pub := testKey(1).Public().(ed25519.PublicKey)
	id := KeyID(pub)
	require.Len(t, id, 16)
	require.Equal(t, id, KeyID(pub))
	require.NotEqual(t, id, KeyID(testKey(2).Public().(ed25519.PublicKey)))
}
