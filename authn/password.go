package authn

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"golang.org/x/crypto/argon2"
)

// Argon2Params are the Argon2id cost parameters. They are encoded into every
// hash, so changing them only affects new hashes; NeedsRehash tells when an old
// hash should be upgraded at the next successful login.
type Argon2Params struct {
	Memory  uint32 // KiB; at least 8*Threads
	Time    uint32 // passes; at least 1
	Threads uint8  // lanes; at least 1
	SaltLen uint32 // bytes; at least 16
	KeyLen  uint32 // bytes; at least 16
}

// Upper bounds accepted when decoding a stored hash, so a tampered row cannot
// make a verification allocate gigabytes or run for minutes.
const (
	maxArgon2Memory  = 1 << 20 // 1 GiB in KiB
	maxArgon2Time    = 16
	maxArgon2SaltLen = 64
	maxArgon2KeyLen  = 64
)

// DefaultArgon2Params returns the production parameters: m=64 MiB, t=1, p=2,
// 16-byte salt, 32-byte key (above the OWASP minimum of m=46 MiB, t=1;
// BenchmarkPasswordVerifyDefault prints the cost on the host). Verification
// concurrency is bounded by PasswordHasherOptions.MaxConcurrent, so peak memory
// is MaxConcurrent*64 MiB.
func DefaultArgon2Params() Argon2Params {
	return Argon2Params{Memory: 64 * 1024, Time: 1, Threads: 2, SaltLen: 16, KeyLen: 32}
}

// FastInsecureArgon2Params returns a very cheap parameter set (m=64 KiB, t=1,
// p=1) for tests only. Never configure it in production.
func FastInsecureArgon2Params() Argon2Params {
	return Argon2Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}
}

// Validate reports the first unsafe or inconsistent field.
func (p Argon2Params) Validate() error {
	switch {
	case p.Threads < 1:
		return fmt.Errorf("%w: argon2 Threads must be >= 1", ErrInvalidConfig)
	case p.Memory < 8*uint32(p.Threads):
		return fmt.Errorf("%w: argon2 Memory (%d KiB) must be >= 8*Threads", ErrInvalidConfig, p.Memory)
	case p.Memory > maxArgon2Memory:
		return fmt.Errorf("%w: argon2 Memory (%d KiB) above 1 GiB", ErrInvalidConfig, p.Memory)
	case p.Time < 1 || p.Time > maxArgon2Time:
		return fmt.Errorf("%w: argon2 Time must be in [1,%d]", ErrInvalidConfig, maxArgon2Time)
	case p.SaltLen < 16 || p.SaltLen > maxArgon2SaltLen:
		return fmt.Errorf("%w: argon2 SaltLen must be in [16,%d]", ErrInvalidConfig, maxArgon2SaltLen)
	case p.KeyLen < 16 || p.KeyLen > maxArgon2KeyLen:
		return fmt.Errorf("%w: argon2 KeyLen must be in [16,%d]", ErrInvalidConfig, maxArgon2KeyLen)
	}
	return nil
}

// PasswordHasherOptions configures NewPasswordHasher. Zero fields take defaults.
type PasswordHasherOptions struct {
	Params           Argon2Params // zero: DefaultArgon2Params
	Rand             io.Reader    // salt source; nil: crypto/rand
	MaxConcurrent    int          // simultaneous hash computations; 0: 2
	MaxPasswordBytes int          // longer passwords are refused; 0: 1024
}

// PasswordHasher hashes and verifies Argon2id passwords in the PHC string
// format $argon2id$v=19$m=<KiB>,t=<n>,p=<n>$<salt b64>$<key b64> (standard
// base64 without padding). It is safe for concurrent use and bounds how many
// hashes run at once (each costs Params.Memory).
type PasswordHasher struct {
	params Argon2Params
	rand   io.Reader
	sem    chan struct{}
	maxPw  int

	dummyOnce sync.Once
	dummy     string
}

// NewPasswordHasher validates opts and returns a hasher.
func NewPasswordHasher(opts PasswordHasherOptions) (*PasswordHasher, error) {
	if opts.Params == (Argon2Params{}) {
		opts.Params = DefaultArgon2Params()
	}
	if err := opts.Params.Validate(); err != nil {
		return nil, err
	}
	if opts.Rand == nil {
		opts.Rand = rand.Reader
	}
	if opts.MaxConcurrent <= 0 {
		opts.MaxConcurrent = 2
	}
	if opts.MaxPasswordBytes <= 0 {
		opts.MaxPasswordBytes = 1024
	}
	return &PasswordHasher{
		params: opts.Params,
		rand:   opts.Rand,
		sem:    make(chan struct{}, opts.MaxConcurrent),
		maxPw:  opts.MaxPasswordBytes,
	}, nil
}

// Params returns the parameters new hashes are made with.
func (h *PasswordHasher) Params() Argon2Params { return h.params }

func (h *PasswordHasher) acquire(ctx context.Context) error {
	select {
	case h.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (h *PasswordHasher) release() { <-h.sem }

// Hash returns the encoded Argon2id hash of password with a fresh random salt.
// It fails with ErrInvalidPassword for an empty or over-long password.
func (h *PasswordHasher) Hash(ctx context.Context, password string) (string, error) {
	if password == "" || len(password) > h.maxPw {
		return "", fmt.Errorf("%w: length must be 1..%d bytes", ErrInvalidPassword, h.maxPw)
	}
	salt := make([]byte, h.params.SaltLen)
	if _, err := io.ReadFull(h.rand, salt); err != nil {
		return "", fmt.Errorf("authn: reading salt: %w", err)
	}
	if err := h.acquire(ctx); err != nil {
		return "", err
	}
	defer h.release()
	key := argon2.IDKey([]byte(password), salt, h.params.Time, h.params.Memory, h.params.Threads, h.params.KeyLen)
	return encodeArgon2(h.params, salt, key), nil
}

// Verify checks password against an encoded hash in constant time with respect
// to the key bytes. It returns nil on a match, ErrBadCredentials on a mismatch
// (or an over-long password) and ErrInvalidHash when encoded is unusable.
func (h *PasswordHasher) Verify(ctx context.Context, encoded, password string) error {
	p, salt, want, err := ParseArgon2Hash(encoded)
	if err != nil {
		return err
	}
	if len(password) > h.maxPw {
		return ErrBadCredentials
	}
	if err := h.acquire(ctx); err != nil {
		return err
	}
	defer h.release()
	got := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, uint32(len(want)))
	if subtle.ConstantTimeCompare(got, want) != 1 {
		return ErrBadCredentials
	}
	return nil
}

// VerifyDummy spends the same work as Verify against a throwaway hash and
// always returns ErrBadCredentials. Call it for unknown users so response time
// does not reveal whether an account exists.
func (h *PasswordHasher) VerifyDummy(ctx context.Context, password string) error {
	h.dummyOnce.Do(func() {
		salt := make([]byte, h.params.SaltLen)
		key := argon2.IDKey([]byte("rap-dummy"), salt, h.params.Time, h.params.Memory, h.params.Threads, h.params.KeyLen)
		h.dummy = encodeArgon2(h.params, salt, key)
	})
	// Even if password happens to match the dummy, the answer is the same.
	if err := h.Verify(ctx, h.dummy, password); err != nil && !errors.Is(err, ErrBadCredentials) {
		return err
	}
	return ErrBadCredentials
}

// NeedsRehash reports whether encoded was made with parameters other than the
// hasher's (or cannot be parsed), so it should be replaced after the next
// successful Verify.
func (h *PasswordHasher) NeedsRehash(encoded string) bool {
	p, salt, key, err := ParseArgon2Hash(encoded)
	if err != nil {
		return true
	}
	p.SaltLen, p.KeyLen = uint32(len(salt)), uint32(len(key))
	return p != h.params
}

var b64 = base64.RawStdEncoding

func encodeArgon2(p Argon2Params, salt, key []byte) string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.Memory, p.Time, p.Threads, b64.EncodeToString(salt), b64.EncodeToString(key))
}

// ParseArgon2Hash decodes a PHC-format Argon2id string. The returned params
// have SaltLen and KeyLen set from the decoded lengths. Parameters outside the
// safe bounds are refused with ErrInvalidHash.
func ParseArgon2Hash(encoded string) (Argon2Params, []byte, []byte, error) {
	var p Argon2Params
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return p, nil, nil, fmt.Errorf("%w: not a PHC argon2id string", ErrInvalidHash)
	}
	var v int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &v); err != nil || v != argon2.Version {
		return p, nil, nil, fmt.Errorf("%w: unsupported version %q", ErrInvalidHash, parts[2])
	}
	var threads uint32
	n, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.Memory, &p.Time, &threads)
	if err != nil || n != 3 || threads == 0 || threads > 255 ||
		fmt.Sprintf("m=%d,t=%d,p=%d", p.Memory, p.Time, threads) != parts[3] {
		return p, nil, nil, fmt.Errorf("%w: bad parameters %q", ErrInvalidHash, parts[3])
	}
	p.Threads = uint8(threads)
	salt, err := b64.DecodeString(parts[4])
	if err != nil {
		return p, nil, nil, fmt.Errorf("%w: bad salt encoding", ErrInvalidHash)
	}
	key, err := b64.DecodeString(parts[5])
	if err != nil {
		return p, nil, nil, fmt.Errorf("%w: bad key encoding", ErrInvalidHash)
	}
	p.SaltLen, p.KeyLen = uint32(len(salt)), uint32(len(key))
	if err := p.Validate(); err != nil {
		return p, nil, nil, fmt.Errorf("%w: %v", ErrInvalidHash, err)
	}
	return p, salt, key, nil
}
