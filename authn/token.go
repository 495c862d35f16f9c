package authn

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
)

// TokenKind is the prefix that names what an opaque token is for. The prefix
// makes leaked tokens recognisable to secret scanners and stops a token of one
// kind being accepted as another.
type TokenKind string

// Token kinds.
const (
	TokenSession TokenKind = "raps" // browser session cookie
	TokenDevice  TokenKind = "rapd" // trusted-device cookie
	TokenAPI     TokenKind = "rapa" // API bearer token
)

const tokenRandomBytes = 32

var tokenEnc = base64.RawURLEncoding

// TokenHash is the SHA-256 of a token's full string. Only hashes are stored;
// the plaintext is shown to its holder once. A zero TokenHash means "none".
type TokenHash [sha256.Size]byte

// String returns the hash in lowercase hex.
func (h TokenHash) String() string { return hex.EncodeToString(h[:]) }

// IsZero reports whether h is the zero value.
func (h TokenHash) IsZero() bool { return h == TokenHash{} }

// Equal compares two hashes in constant time.
func (h TokenHash) Equal(o TokenHash) bool { return ConstantTimeEqual(h[:], o[:]) }

// HashToken returns the SHA-256 of s. Tokens carry 256 random bits, so a fast
// unsalted hash is sufficient; it lets the store look a token up by hash.
func HashToken(s string) TokenHash { return sha256.Sum256([]byte(s)) }

// NewToken returns a fresh token "<kind>_<43 base64url chars>" (256 random
// bits from r, or crypto/rand when r is nil) and its hash.
func NewToken(r io.Reader, kind TokenKind) (string, TokenHash, error) {
	if r == nil {
		r = rand.Reader
	}
	b := make([]byte, tokenRandomBytes)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", TokenHash{}, fmt.Errorf("authn: reading token randomness: %w", err)
	}
	s := string(kind) + "_" + tokenEnc.EncodeToString(b)
	return s, HashToken(s), nil
}

// ParseToken checks that s is a well-formed token of kind and returns its hash.
// It fails with ErrInvalidToken otherwise; it does not say whether the token
// exists.
func ParseToken(kind TokenKind, s string) (TokenHash, error) {
	body, ok := strings.CutPrefix(s, string(kind)+"_")
	if !ok || len(body) != tokenEnc.EncodedLen(tokenRandomBytes) {
		return TokenHash{}, ErrInvalidToken
	}
	if _, err := tokenEnc.DecodeString(body); err != nil {
		return TokenHash{}, ErrInvalidToken
	}
	return HashToken(s), nil
}

// ConstantTimeEqual reports whether a and b are equal without leaking, through
// timing, where they first differ. Lengths are not secret.
func ConstantTimeEqual(a, b []byte) bool { return subtle.ConstantTimeCompare(a, b) == 1 }
