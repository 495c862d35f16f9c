package authn

import (
	"context"
	"math/rand/v2"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// fakeClock is a manually advanced Clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	// 2026-03-01 12:00:00 UTC, aligned to a 30 s TOTP step.
	return &fakeClock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// seededRand returns a deterministic randomness source for tests.
func seededRand(seed uint64) *rand.ChaCha8 {
	var s [32]byte
	s[0] = byte(seed)
	s[1] = byte(seed >> 8)
	return rand.NewChaCha8(s)
}

var ctx = context.Background()

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

// enrolled creates an MFA over store, enrolls userID and returns the MFA and
// the secret. The enrollment consumes the current TOTP step.
func enrolled(t *testing.T, store *MemStore, clk *fakeClock, userID string) (*MFA, string) {
	t.Helper()
	m, err := NewMFA(MFAOptions{Store: store, Clock: clk, Rand: seededRand(7)})
	if err != nil {
		t.Fatal(err)
	}
	e, err := m.BeginEnrollment(userID + "@example.net")
	if err != nil {
		t.Fatal(err)
	}
	code, err := GenerateTOTPCode(e.Secret, clk.Now(), 30)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.ConfirmEnrollment(ctx, userID, e.Secret, code); err != nil {
		t.Fatal(err)
	}
	return m, e.Secret
}

func code(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	c, err := GenerateTOTPCode(secret, at, 30)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
