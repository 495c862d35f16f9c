package snapshot

import (
	"crypto/ed25519"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestVerifyCtxMatchesStdlib: verifyCtx (parsed keys kept) accepts exactly
// what crypto/ed25519's Ed25519ctx verify accepts: valid signatures, and
// every single-bit change of the message, the signature and the key, a
// non-canonical S (S+L), a key that is not a point, the wrong context and
// wrong lengths — each checked twice (parsed, then cached key).
func TestVerifyCtxMatchesStdlib(t *testing.T) {
	key := testKey(1)
	pub := key.Public().(ed25519.PublicKey)
	msg := []byte(`{"format":1,"cluster_id":"c1"}`)
	sig, err := key.Sign(nil, msg, signOpts)
	require.NoError(t, err)
	std := func(p, m, s []byte) bool { return ed25519.VerifyWithOptions(p, m, s, signOpts) == nil }
	check := func(what string, p, m, s []byte) {
		t.Helper()
		want := std(p, m, s)
		require.Equal(t, want, verifyCtx(p, m, s), what)
		require.Equal(t, want, verifyCtx(p, m, s), what+" (cached key)")
	}
	check("valid", pub, msg, sig)
	require.True(t, verifyCtx(pub, msg, sig))
	flip := func(b []byte, bit int) []byte {
		c := append([]byte(nil), b...)
		c[bit/8] ^= 1 << (bit % 8)
		return c
	}
	for bit := 0; bit < len(msg)*8; bit += 7 {
		check("message bit", pub, flip(msg, bit), sig)
	}
	for bit := 0; bit < 512; bit++ {
		check("signature bit", pub, msg, flip(sig, bit))
	}
	for bit := 0; bit < 256; bit++ {
		check("key bit", flip(pub, bit), msg, sig)
	}
	// S + L: the same point, a non-canonical scalar; refused by both.
	l := [32]byte{0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10}
	big := append([]byte(nil), sig...)
	carry := 0
	for i := 0; i < 32; i++ {
		v := int(big[32+i]) + int(l[i]) + carry
		big[32+i], carry = byte(v), v>>8
	}
	check("S+L", pub, msg, big)
	require.False(t, verifyCtx(pub, msg, big))
	// A y coordinate with no point (y = 2 is not on the curve).
	notPoint := make([]byte, 32)
	notPoint[0] = 2
	check("not a point", notPoint, msg, sig)
	// Plain Ed25519 (no context) and another context do not verify.
	plain := ed25519.Sign(key, msg)
	check("no context", pub, msg, plain)
	other, err := key.Sign(nil, msg, &ed25519.Options{Context: "other"})
	require.NoError(t, err)
	check("other context", pub, msg, other)
	require.False(t, verifyCtx(pub[:31], msg, sig))
	require.False(t, verifyCtx(pub, msg, sig[:63]))
}
