package fsm

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
)

// Sealer protects CA private keys at rest in the replicated FSM state. The
// leader seals a private key before proposing CreateClusterCA/RotateClusterCA
// (sealing uses randomness, so it never happens inside Apply); whoever needs
// the key to sign opens it. Every authority node must be configured with the
// same key-encryption key (KEK).
//
// Implementations are safe for concurrent use. aad binds the sealed blob to its
// context (use CAKeyAAD) so a blob cannot be moved to another cluster or key id.
type Sealer interface {
	// Seal encrypts plaintext. The result is self-describing (format byte).
	Seal(plaintext, aad []byte) ([]byte, error)
	// Open reverses Seal. It fails with ErrSealedFormat for blobs this Sealer
	// did not produce, and with an error when aad or the blob was altered.
	Open(sealed, aad []byte) ([]byte, error)
}

// Format bytes of sealed blobs.
const (
	sealedPlain     byte = 0x00
	sealedAES256GCM byte = 0x01
)

// CAKeyAAD is the additional authenticated data for a cluster CA private key.
func CAKeyAAD(clusterID, keyID string) []byte {
	return []byte("rap-fabric/ca-key/v1\x00" + clusterID + "\x00" + keyID)
}

// GossipKeyAAD is the additional authenticated data for a cluster gossip
// key (memberlist key of one gossip pool).
func GossipKeyAAD(clusterID, pool, keyID string) []byte {
	return []byte("rap-fabric/gossip-key/v1\x00" + clusterID + "\x00" + pool + "\x00" + keyID)
}

// NoopSealer stores key material in the clear (format byte 0x00 + plaintext).
// Use it only where no KEK is configured; the operator documentation says so.
type NoopSealer struct{}

// Seal implements Sealer.
func (NoopSealer) Seal(plaintext, _ []byte) ([]byte, error) {
	return append([]byte{sealedPlain}, plaintext...), nil
}

// Open implements Sealer.
func (NoopSealer) Open(sealed, _ []byte) ([]byte, error) {
	if len(sealed) == 0 || sealed[0] != sealedPlain {
		return nil, ErrSealedFormat
	}
	return append([]byte(nil), sealed[1:]...), nil
}

// AESGCMSealer seals with AES-256-GCM under a 32-byte KEK: format byte 0x01,
// 12-byte random nonce, ciphertext+tag. It refuses to Open plaintext (0x00)
// blobs, so a KEK-configured cluster never silently uses an unsealed key.
type AESGCMSealer struct {
	aead cipher.AEAD
	rand io.Reader
}

// NewAESGCMSealer returns a sealer keyed by kek (exactly 32 bytes). rnd is the
// nonce source; nil means crypto/rand.
func NewAESGCMSealer(kek []byte, rnd io.Reader) (*AESGCMSealer, error) {
	if len(kek) != 32 {
		return nil, fmt.Errorf("%w: need 32 bytes, got %d", ErrKEK, len(kek))
	}
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKEK, err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKEK, err)
	}
	if rnd == nil {
		rnd = rand.Reader
	}
	return &AESGCMSealer{aead: aead, rand: rnd}, nil
}

// Seal implements Sealer.
func (s *AESGCMSealer) Seal(plaintext, aad []byte) ([]byte, error) {
	ns := s.aead.NonceSize()
	out := make([]byte, 1+ns, 1+ns+len(plaintext)+s.aead.Overhead())
	out[0] = sealedAES256GCM
	if _, err := io.ReadFull(s.rand, out[1:]); err != nil {
		return nil, fmt.Errorf("fsm: seal nonce: %w", err)
	}
	return s.aead.Seal(out, out[1:1+ns], plaintext, aad), nil
}

// Open implements Sealer.
func (s *AESGCMSealer) Open(sealed, aad []byte) ([]byte, error) {
	ns := s.aead.NonceSize()
	if len(sealed) < 1+ns+s.aead.Overhead() || sealed[0] != sealedAES256GCM {
		return nil, ErrSealedFormat
	}
	pt, err := s.aead.Open(nil, sealed[1:1+ns], sealed[1+ns:], aad)
	if err != nil {
		return nil, fmt.Errorf("fsm: open sealed key: %w", err)
	}
	return pt, nil
}

// ParseKEK decodes a 32-byte key-encryption key written as 64 hex digits or as
// standard/URL base64 (padded or not), surrounding whitespace ignored — the
// form it takes in a key file or an environment variable.
func ParseKEK(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if len(s) == 64 {
		if b, err := hex.DecodeString(s); err == nil {
			return b, nil
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			if len(b) != 32 {
				return nil, fmt.Errorf("%w: need 32 bytes, got %d", ErrKEK, len(b))
			}
			return b, nil
		}
	}
	return nil, fmt.Errorf("%w: not hex or base64", ErrKEK)
}
