package authn

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func newSessions(t *testing.T, clk *fakeClock, cfg SessionConfig) (*Sessions, *MemStore) {
	t.Helper()
	store := NewMemStore(nil)
	s, err := NewSessions(SessionsOptions{Config: cfg, Store: store, Clock: clk, Rand: seededRand(5)})
	require.NoError(t, err)
	return s, store
}

func TestSessionExpiry(t *testing.T) {
	src := addr("198.51.100.7")
	tests := []struct {
		name    string
		trusted bool
		steps   []time.Duration // activity: advance then validate
		want    error           // result of the last validation
	}{
		{"fresh", false, []time.Duration{0}, nil},
		{"active within idle", false, []time.Duration{29 * time.Minute, 29 * time.Minute, 29 * time.Minute}, nil},
		{"idle exactly 30 min", false, []time.Duration{30 * time.Minute}, ErrSessionExpired},
		{"idle 31 min", false, []time.Duration{31 * time.Minute}, ErrSessionExpired},
		{"trusted idle 90 min", true, []time.Duration{90 * time.Minute}, nil},
		{"trusted idle 2 h", true, []time.Duration{2 * time.Hour}, ErrSessionExpired},
		{"absolute limit despite activity", false, repeat(20*time.Minute, 36), ErrSessionExpired},
		{"just before absolute limit", false, append(repeat(20*time.Minute, 35), 19*time.Minute), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := newFakeClock()
			m, store := newSessions(t, clk, DefaultSessionConfig())
			tok, s, err := m.Create(ctx, NewSession{UserID: "u1", Source: src, Trusted: tc.trusted, MFAAt: clk.Now()})
			require.NoError(t, err)
			require.Equal(t, HashToken(tok), s.ID)
			var last error
			for _, d := range tc.steps {
				clk.Advance(d)
				_, last = m.Validate(ctx, tok, src)
				if last != nil {
					break
				}
			}
			if tc.want == nil {
				require.NoError(t, last)
				return
			}
			require.ErrorIs(t, last, tc.want)
			_, err = store.Session(ctx, s.ID)
			require.ErrorIs(t, err, ErrNotFound, "expired session is deleted")
			_, err = m.Validate(ctx, tok, src)
			require.ErrorIs(t, err, ErrNoSession)
		})
	}
}

func repeat(d time.Duration, n int) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = d
	}
	return out
}

func TestSessionNetworkBinding(t *testing.T) {
	clk := newFakeClock()
	m, _ := newSessions(t, clk, DefaultSessionConfig())
	tok, _, err := m.Create(ctx, NewSession{UserID: "u1", Source: addr("198.51.100.7")})
	require.NoError(t, err)
	_, err = m.Validate(ctx, tok, addr("198.51.100.200"))
	require.NoError(t, err, "same /24")
	_, err = m.Validate(ctx, tok, addr("::ffff:198.51.100.9"))
	require.NoError(t, err, "IPv4-mapped form of the same /24")
	_, err = m.Validate(ctx, tok, addr("203.0.113.1"))
	require.ErrorIs(t, err, ErrSessionExpired, "other network")
	_, err = m.Validate(ctx, tok, addr("198.51.100.7"))
	require.ErrorIs(t, err, ErrNoSession, "session was ended")

	cfg := DefaultSessionConfig()
	cfg.AllowNetworkChange = true
	m2, _ := newSessions(t, clk, cfg)
	tok, _, err = m2.Create(ctx, NewSession{UserID: "u1", Source: addr("2001:db8:1:2::5")})
	require.NoError(t, err)
	_, err = m2.Validate(ctx, tok, addr("203.0.113.1"))
	require.NoError(t, err)
}

func TestSessionTouchAndRevoke(t *testing.T) {
	clk := newFakeClock()
	m, store := newSessions(t, clk, DefaultSessionConfig())
	src := addr("2001:db8::1")
	tok, s, err := m.Create(ctx, NewSession{UserID: "u1", Source: src})
	require.NoError(t, err)
	clk.Advance(30 * time.Second)
	_, err = m.Validate(ctx, tok, src)
	require.NoError(t, err)
	got, err := store.Session(ctx, s.ID)
	require.NoError(t, err)
	require.Equal(t, s.LastSeenAt, got.LastSeenAt, "no write within TouchInterval")
	clk.Advance(time.Minute)
	v, err := m.Validate(ctx, tok, src)
	require.NoError(t, err)
	got, _ = store.Session(ctx, s.ID)
	require.Equal(t, clk.Now(), got.LastSeenAt)
	require.Equal(t, clk.Now(), v.LastSeenAt)

	_, err = m.Validate(ctx, "raps_garbage", src)
	require.ErrorIs(t, err, ErrNoSession)

	tok2, _, err := m.Create(ctx, NewSession{UserID: "u1", Source: src})
	require.NoError(t, err)
	require.NoError(t, m.Revoke(ctx, tok))
	_, err = m.Validate(ctx, tok, src)
	require.ErrorIs(t, err, ErrNoSession)
	n, err := m.RevokeUser(ctx, "u1")
	require.NoError(t, err)
	require.Equal(t, 1, n)
	_, err = m.Validate(ctx, tok2, src)
	require.ErrorIs(t, err, ErrNoSession)
}

func TestSessionMFAFresh(t *testing.T) {
	now := time.Unix(1000, 0)
	s := Session{MFAAt: now}
	require.True(t, s.MFAFresh(now.Add(4*time.Minute), 5*time.Minute))
	require.False(t, s.MFAFresh(now.Add(6*time.Minute), 5*time.Minute))
	require.False(t, Session{}.MFAFresh(now, time.Hour))
}

func TestSessionConfigValidate(t *testing.T) {
	require.NoError(t, DefaultSessionConfig().Validate())
	c := DefaultSessionConfig()
	c.IdleTimeout = 24 * time.Hour
	require.ErrorIs(t, c.Validate(), ErrInvalidConfig)
	_, err := NewSessions(SessionsOptions{})
	require.ErrorIs(t, err, ErrInvalidConfig)
}
