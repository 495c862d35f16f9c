package authn

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func newLimiter(t *testing.T, clk *fakeClock, cfg LimiterConfig) *LoginLimiter {
	t.Helper()
	l, err := NewLoginLimiter(LimiterOptions{Config: cfg, Store: NewMemStore(nil), Clock: clk})
	require.NoError(t, err)
	return l
}

func TestLockoutAndUnlock(t *testing.T) {
	clk := newFakeClock()
	l := newLimiter(t, clk, DefaultLimiterConfig())
	src := addr("198.51.100.7")
	for i := range 5 {
		require.NoError(t, l.Allow(ctx, "alice", src), "attempt %d", i+1)
		require.NoError(t, l.Failure(ctx, "alice", src))
		clk.Advance(15 * time.Second) // slower than the bucket refill
	}
	err := l.Allow(ctx, "alice", src)
	require.ErrorIs(t, err, ErrLockedOut)
	var re *RetryError
	require.True(t, errors.As(err, &re))
	require.Equal(t, "user", re.Key)
	require.InDelta(t, (15 * time.Minute).Seconds(), re.RetryAfter.Seconds(), 20)

	// Another source does not help: the lock is per user.
	require.ErrorIs(t, l.Allow(ctx, "alice", addr("203.0.113.1")), ErrLockedOut)
	// Another user from the same source is fine.
	require.NoError(t, l.Allow(ctx, "bob", src))

	clk.Advance(14 * time.Minute)
	require.ErrorIs(t, l.Allow(ctx, "alice", src), ErrLockedOut)
	clk.Advance(time.Minute)
	require.NoError(t, l.Allow(ctx, "alice", src), "unlocked after the period")
}

func TestFailureWindowAndSuccessReset(t *testing.T) {
	clk := newFakeClock()
	l := newLimiter(t, clk, DefaultLimiterConfig())
	src := addr("198.51.100.7")
	fail := func(n int) {
		for range n {
			require.NoError(t, l.Allow(ctx, "alice", src))
			require.NoError(t, l.Failure(ctx, "alice", src))
			clk.Advance(15 * time.Second)
		}
	}
	fail(4)
	require.NoError(t, l.Success(ctx, "alice"))
	fail(4)
	require.NoError(t, l.Allow(ctx, "alice", src), "success reset the count")

	clk.Advance(16 * time.Minute) // window passes
	fail(4)
	require.NoError(t, l.Allow(ctx, "alice", src), "old failures aged out")
	fail(1)
	require.ErrorIs(t, l.Allow(ctx, "alice", src), ErrLockedOut)
}

func TestRateLimitBuckets(t *testing.T) {
	clk := newFakeClock()
	cfg := DefaultLimiterConfig()
	l := newLimiter(t, clk, cfg)
	src := addr("198.51.100.7")
	for i := range cfg.UserBurst {
		require.NoError(t, l.Allow(ctx, "alice", src), "burst %d", i)
	}
	err := l.Allow(ctx, "alice", src)
	require.ErrorIs(t, err, ErrRateLimited)
	var re *RetryError
	require.True(t, errors.As(err, &re))
	require.Equal(t, "user", re.Key)
	clk.Advance(12 * time.Second) // 5/min refills one token
	require.NoError(t, l.Allow(ctx, "alice", src))

	// Per-source bucket: many users from one address.
	clk2 := newFakeClock()
	l2 := newLimiter(t, clk2, cfg)
	for i := range cfg.SourceBurst {
		require.NoError(t, l2.Allow(ctx, "user"+string(rune('a'+i)), src))
	}
	err = l2.Allow(ctx, "zed", src)
	require.ErrorIs(t, err, ErrRateLimited)
	require.True(t, errors.As(err, &re))
	require.Equal(t, "source", re.Key)
	// Same /64 is the same IPv6 source; another /64 is not.
	for i := range cfg.SourceBurst {
		require.NoError(t, l2.Allow(ctx, "v6user"+string(rune('a'+i)), addr("2001:db8:1:1::"+string(rune('1'+i%9)))))
	}
	require.ErrorIs(t, l2.Allow(ctx, "v6zed", addr("2001:db8:1:1:ffff::1")), ErrRateLimited)
	require.NoError(t, l2.Allow(ctx, "v6zed", addr("2001:db8:1:2::1")))
}

func TestSourceLockout(t *testing.T) {
	clk := newFakeClock()
	cfg := DefaultLimiterConfig()
	cfg.MaxSourceFailures = 3
	cfg.SourceBurst = 100
	l := newLimiter(t, clk, cfg)
	src := addr("198.51.100.7")
	for _, u := range []string{"a", "b", "c"} {
		require.NoError(t, l.Allow(ctx, u, src))
		require.NoError(t, l.Failure(ctx, u, src))
	}
	err := l.Allow(ctx, "d", src)
	require.ErrorIs(t, err, ErrLockedOut)
	var re *RetryError
	require.True(t, errors.As(err, &re))
	require.Equal(t, "source", re.Key)
	require.NoError(t, l.Allow(ctx, "d", addr("198.51.100.8")))
}

func TestLimiterBoundedMemory(t *testing.T) {
	clk := newFakeClock()
	cfg := DefaultLimiterConfig()
	cfg.MaxTrackedKeys = 50
	l := newLimiter(t, clk, cfg)
	for i := range 500 {
		_ = l.Allow(ctx, "u"+string(rune(0x4e00+i)), addr("2001:db8::1"))
	}
	l.mu.Lock()
	n := len(l.buckets)
	l.mu.Unlock()
	require.LessOrEqual(t, n, 51)
}
