// Package jointoken defines the join token format shared by the authority (which
// makes and checks tokens) and the node agent (which presents them).
//
// A token reads rapjt.<id>.<secret>: id is 16 hex characters (the lookup key,
// not secret), secret is 32 random bytes in unpadded base64url. The authority
// stores only Hash(id, secret); Check compares in constant time. The CA pin the
// agent uses to verify the authority travels beside the token (as kubeadm's
// discovery hash does). Pure: no I/O.
package jointoken

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"
	"strings"
)

// Prefix starts every join token.
const Prefix = "rapjt"

// ErrMalformed is returned for a string that is not a join token.
var ErrMalformed = errors.New("jointoken: malformed token")

// Token is a parsed join token. Secret must never be logged or stored.
type Token struct {
	ID     string
	Secret []byte
}

// String renders the token; treat the result as a secret.
func (t Token) String() string {
	return Prefix + "." + t.ID + "." + base64.RawURLEncoding.EncodeToString(t.Secret)
}

// New makes a random token. rnd may be nil for crypto/rand.
func New(rnd io.Reader) (Token, error) {
	if rnd == nil {
		rnd = rand.Reader
	}
	var id [8]byte
	secret := make([]byte, 32)
	if _, err := io.ReadFull(rnd, id[:]); err != nil {
		return Token{}, err
	}
	if _, err := io.ReadFull(rnd, secret); err != nil {
		return Token{}, err
	}
	return Token{ID: hex.EncodeToString(id[:]), Secret: secret}, nil
}

// Parse reads a token string. It never echoes the input in its error.
func Parse(s string) (Token, error) {
	parts := strings.Split(strings.TrimSpace(s), ".")
	if len(parts) != 3 || parts[0] != Prefix || len(parts[1]) != 16 || len(parts[2]) != 43 {
		return Token{}, ErrMalformed
	}
	if _, err := hex.DecodeString(parts[1]); err != nil || strings.ToLower(parts[1]) != parts[1] {
		return Token{}, ErrMalformed
	}
	secret, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || len(secret) != 32 {
		return Token{}, ErrMalformed
	}
	return Token{ID: parts[1], Secret: secret}, nil
}

// Hash is what the authority stores for a token: SHA-256 over a domain label,
// the id and the secret. The secret has 256 bits of entropy, so a fast hash is
// enough; what matters is that the database never holds the secret.
func Hash(t Token) []byte {
	h := sha256.New()
	h.Write([]byte("rap-join-token-v1\x00"))
	h.Write([]byte(t.ID))
	h.Write([]byte{0})
	h.Write(t.Secret)
	return h.Sum(nil)
}

// Check reports whether t matches the stored hash, in constant time.
func Check(t Token, stored []byte) bool {
	return subtle.ConstantTimeCompare(Hash(t), stored) == 1
}
