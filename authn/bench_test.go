package authn

import (
	"crypto/sha256"
	"testing"
)

// BenchmarkPasswordVerifyDefault measures one Argon2id verification with the
// production parameters (m=64 MiB, t=1, p=2): the per-login CPU and memory cost
// the limiter and MaxConcurrent must bound.
func BenchmarkPasswordVerifyDefault(b *testing.B) {
	h, err := NewPasswordHasher(PasswordHasherOptions{})
	if err != nil {
		b.Fatal(err)
	}
	enc, err := h.Hash(ctx, "benchmark-password")
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		if err := h.Verify(ctx, enc, "benchmark-password"); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(DefaultArgon2Params().Memory)/1024, "MiB/op")
}

// BenchmarkBaselineTokenHash is the baseline: resolving a session token (one
// SHA-256), what every authenticated request costs instead.
func BenchmarkBaselineTokenHash(b *testing.B) {
	tok, _, err := NewToken(nil, TokenSession)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		_ = sha256.Sum256([]byte(tok))
	}
}
