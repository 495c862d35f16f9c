package fsm

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestAESGCMSealer(t *testing.T) {
	kek := bytes.Repeat([]byte{7}, 32)
	s, err := NewAESGCMSealer(kek, nil)
	require.NoError(t, err)
	aad := CAKeyAAD("c1", "k1")
	sealed, err := s.Seal([]byte("private key"), aad)
	require.NoError(t, err)
	require.NotContains(t, string(sealed), "private key")
	pt, err := s.Open(sealed, aad)
	require.NoError(t, err)
	require.Equal(t, "private key", string(pt))

	_, err = s.Open(sealed, CAKeyAAD("c2", "k1"))
	require.Error(t, err, "a blob moved to another cluster must not open")
	flipped := append([]byte(nil), sealed...)
	flipped[len(flipped)-1] ^= 1
	_, err = s.Open(flipped, aad)
	require.Error(t, err)

	other, err := NewAESGCMSealer(bytes.Repeat([]byte{8}, 32), nil)
	require.NoError(t, err)
	_, err = other.Open(sealed, aad)
	require.Error(t, err)

	plain, err := NoopSealer{}.Seal([]byte("x"), aad)
	require.NoError(t, err)
	_, err = s.Open(plain, aad)
	require.ErrorIs(t, err, ErrSealedFormat)
	_, err = NoopSealer{}.Open(sealed, aad)
	require.ErrorIs(t, err, ErrSealedFormat)
	got, err := NoopSealer{}.Open(plain, aad)
	require.NoError(t, err)
	require.Equal(t, "x", string(got))

	// Deterministic nonce source: same input, same output.
	s1, _ := NewAESGCMSealer(kek, bytes.NewReader(make([]byte, 12)))
	s2, _ := NewAESGCMSealer(kek, bytes.NewReader(make([]byte, 12)))
	a, _ := s1.Seal([]byte("k"), aad)
	b, _ := s2.Seal([]byte("k"), aad)
	require.Equal(t, a, b)
	_, err = s1.Seal([]byte("k"), aad)
	require.Error(t, err, "exhausted nonce source")

	_, err = NewAESGCMSealer(make([]byte, 16), nil)
	require.ErrorIs(t, err, ErrKEK)
}

func TestParseKEK(t *testing.T) {
	kek := bytes.Repeat([]byte{0xab}, 32)
	for _, s := range []string{hex.EncodeToString(kek), base64.StdEncoding.EncodeToString(kek) + "\n",
		base64.RawURLEncoding.EncodeToString(kek)} {
		got, err := ParseKEK(s)
		require.NoError(t, err, s)
		require.Equal(t, kek, got)
	}
	for _, s := range []string{"", "zz", base64.StdEncoding.EncodeToString(kek[:16])} {
		_, err := ParseKEK(s)
		require.ErrorIs(t, err, ErrKEK, s)
	}
}
