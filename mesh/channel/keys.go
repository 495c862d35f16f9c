package channel

import (
	"encoding/hex"
	"fmt"
	"io"

	"golang.org/x/crypto/curve25519"
)

// KeyLen is the length of X25519 keys.
const KeyLen = 32

// Key is an X25519 public or private key.
type Key [KeyLen]byte

// String returns the first 8 hex digits of the key, enough for logs.
func (k Key) String() string { return hex.EncodeToString(k[:4]) }

// IsZero reports whether k is all zeros.
func (k Key) IsZero() bool { return k == Key{} }

// KeyFromBytes copies a 32-byte slice into a Key.
func KeyFromBytes(b []byte) (Key, error) {
	var k Key
	if len(b) != KeyLen {
		return k, fmt.Errorf("%w: key is %d bytes, want %d", ErrConfig, len(b), KeyLen)
	}
	copy(k[:], b)
	return k, nil
}

// PublicKey derives the X25519 public key of priv.
func PublicKey(priv Key) (Key, error) {
	pub, err := curve25519.X25519(priv[:], curve25519.Basepoint)
	if err != nil {
		return Key{}, fmt.Errorf("%w: private key: %w", ErrConfig, err)
	}
	return KeyFromBytes(pub)
}

// GenerateKey creates an X25519 key pair from r.
func GenerateKey(r io.Reader) (priv, pub Key, err error) {
	if _, err = io.ReadFull(r, priv[:]); err != nil {
		return Key{}, Key{}, fmt.Errorf("channel: generate key: %w", err)
	}
	pub, err = PublicKey(priv)
	return priv, pub, err
}
