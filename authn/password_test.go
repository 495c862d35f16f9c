package authn

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func testHasher(t *testing.T) *PasswordHasher {
	t.Helper()
	h, err := NewPasswordHasher(PasswordHasherOptions{Params: FastInsecureArgon2Params(), Rand: seededRand(1)})
	require.NoError(t, err)
	return h
}

func TestPasswordRoundTrip(t *testing.T) {
	h := testHasher(t)
	enc, err := h.Hash(ctx, "correct horse battery staple")
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(enc, "$argon2id$v=19$m=64,t=1,p=1$"), enc)

	tests := []struct {
		name     string
		password string
		want     error
	}{
		{"right", "correct horse battery staple", nil},
		{"wrong", "correct horse battery stapl", ErrBadCredentials},
		{"empty", "", ErrBadCredentials},
		{"case", "Correct horse battery staple", ErrBadCredentials},
		{"too long", strings.Repeat("a", 5000), ErrBadCredentials},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := h.Verify(ctx, enc, tc.password)
			if tc.want == nil {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, tc.want)
			}
		})
	}

	enc2, err := h.Hash(ctx, "correct horse battery staple")
	require.NoError(t, err)
	require.NotEqual(t, enc, enc2, "salts must differ")
}

func TestPasswordHashRefusesBadPasswords(t *testing.T) {
	h := testHasher(t)
	for _, pw := range []string{"", strings.Repeat("x", 1025)} {
		_, err := h.Hash(ctx, pw)
		require.ErrorIs(t, err, ErrInvalidPassword)
	}
}

func TestPasswordNeedsRehash(t *testing.T) {
	cheap := testHasher(t)
	enc, err := cheap.Hash(ctx, "pw-123456789")
	require.NoError(t, err)
	require.False(t, cheap.NeedsRehash(enc))

	stronger := FastInsecureArgon2Params()
	stronger.Time = 2
	h2, err := NewPasswordHasher(PasswordHasherOptions{Params: stronger})
	require.NoError(t, err)
	require.True(t, h2.NeedsRehash(enc))
	require.NoError(t, h2.Verify(ctx, enc, "pw-123456789"), "old params still verify")
	require.True(t, h2.NeedsRehash("garbage"))
}

func TestPasswordInvalidHashes(t *testing.T) {
	h := testHasher(t)
	salt := "AAAAAAAAAAAAAAAAAAAAAA"                     // 16 bytes
	key := "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" // 32 bytes
	for _, enc := range []string{
		"",
		"$argon2i$v=19$m=64,t=1,p=1$" + salt + "$" + key,
		"$argon2id$v=16$m=64,t=1,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=64,t=1$" + salt + "$" + key,
		"$argon2id$v=19$m=4194304,t=1,p=1$" + salt + "$" + key, // 4 GiB: refused
		"$argon2id$v=19$m=64,t=99,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=64,t=1,p=1$AAAA$" + key, // salt too short
		"$argon2id$v=19$m=64,t=1,p=1$" + salt + "$!!",
		"$argon2id$v=19$m=64,t=1,p=1,x=2$" + salt + "$" + key,
	} {
		err := h.Verify(ctx, enc, "pw")
		require.ErrorIs(t, err, ErrInvalidHash, "%q", enc)
	}
}

func TestPasswordVerifyDummy(t *testing.T) {
	h := testHasher(t)
	require.True(t, errors.Is(h.VerifyDummy(ctx, "anything"), ErrBadCredentials))
	require.True(t, errors.Is(h.VerifyDummy(ctx, "rap-dummy"), ErrBadCredentials))
}

func TestArgon2ParamsValidate(t *testing.T) {
	require.NoError(t, DefaultArgon2Params().Validate())
	require.NoError(t, FastInsecureArgon2Params().Validate())
	bad := DefaultArgon2Params()
	bad.Memory = 8
	require.ErrorIs(t, bad.Validate(), ErrInvalidConfig)
	bad = DefaultArgon2Params()
	bad.SaltLen = 8
	require.ErrorIs(t, bad.Validate(), ErrInvalidConfig)
}

func TestTokens(t *testing.T) {
	tok, h, err := NewToken(seededRand(3), TokenSession)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(tok, "raps_"))
	got, err := ParseToken(TokenSession, tok)
	require.NoError(t, err)
	require.True(t, got.Equal(h))
	require.Equal(t, HashToken(tok), h)

	_, err = ParseToken(TokenDevice, tok)
	require.ErrorIs(t, err, ErrInvalidToken, "kind is checked")
	_, err = ParseToken(TokenSession, tok[:len(tok)-1])
	require.ErrorIs(t, err, ErrInvalidToken)
	_, err = ParseToken(TokenSession, tok[:len(tok)-1]+"*")
	require.ErrorIs(t, err, ErrInvalidToken)

	tok2, _, err := NewToken(nil, TokenSession)
	require.NoError(t, err)
	require.NotEqual(t, tok, tok2)
	require.True(t, ConstantTimeEqual([]byte("abc"), []byte("abc")))
	require.False(t, ConstantTimeEqual([]byte("abc"), []byte("abd")))
}
