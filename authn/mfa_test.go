package authn

import (
	"bytes"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestTOTPEnrollment(t *testing.T) {
	clk := newFakeClock()
	store := NewMemStore(nil)
	m, err := NewMFA(MFAOptions{Store: store, Clock: clk, Rand: seededRand(9), Config: TOTPConfig{Issuer: "RAP Test"}})
	require.NoError(t, err)
	e, err := m.BeginEnrollment("alice@example.net")
	require.NoError(t, err)

	u, err := url.Parse(e.URI)
	require.NoError(t, err)
	require.Equal(t, "otpauth", u.Scheme)
	require.Equal(t, "totp", u.Host)
	require.Equal(t, e.Secret, u.Query().Get("secret"))
	require.Equal(t, "RAP Test", u.Query().Get("issuer"))
	require.True(t, bytes.HasPrefix(e.QRPNG, []byte("\x89PNG\r\n\x1a\n")), "QR code is a PNG")

	on, err := m.Enrolled(ctx, "alice")
	require.NoError(t, err)
	require.False(t, on, "nothing stored before confirmation")

	_, err = m.ConfirmEnrollment(ctx, "alice", e.Secret, "000000x")
	require.ErrorIs(t, err, ErrBadSecondFactor)

	codes, err := m.ConfirmEnrollment(ctx, "alice", e.Secret, code(t, e.Secret, clk.Now()))
	require.NoError(t, err)
	require.Len(t, codes, 10)
	on, err = m.Enrolled(ctx, "alice")
	require.NoError(t, err)
	require.True(t, on)

	// The code that confirmed enrollment cannot be replayed at login.
	require.ErrorIs(t, m.VerifyTOTP(ctx, "alice", code(t, e.Secret, clk.Now())), ErrTOTPReplay)
	require.ErrorIs(t, m.VerifyTOTP(ctx, "bob", "123456"), ErrMFANotEnrolled)
}

func TestTOTPVerifyWindow(t *testing.T) {
	tests := []struct {
		name   string
		offset time.Duration // code generated at now+offset
		want   error
	}{
		{"current step", 0, nil},
		{"previous step (skew -1)", -30 * time.Second, nil},
		{"next step (skew +1)", 30 * time.Second, nil},
		{"two steps old", -60 * time.Second, ErrBadSecondFactor},
		{"two steps ahead", 60 * time.Second, ErrBadSecondFactor},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := newFakeClock()
			store := NewMemStore(nil)
			m, secret := enrolled(t, store, clk, "alice")
			clk.Advance(10 * time.Minute) // away from the enrollment step
			err := m.VerifyTOTP(ctx, "alice", code(t, secret, clk.Now().Add(tc.offset)))
			if tc.want == nil {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, tc.want)
			}
		})
	}
}

func TestTOTPBadInput(t *testing.T) {
	clk := newFakeClock()
	m, secret := enrolled(t, NewMemStore(nil), clk, "alice")
	clk.Advance(time.Minute)
	good := code(t, secret, clk.Now())
	wrong := []byte(good)
	wrong[0] = '0' + (wrong[0]-'0'+1)%10
	for _, c := range []string{"", "12345", "1234567", "abcdef", string(wrong)} {
		require.ErrorIs(t, m.VerifyTOTP(ctx, "alice", c), ErrBadSecondFactor, "%q", c)
	}
	require.NoError(t, m.VerifyTOTP(ctx, "alice", " "+good+" "), "surrounding spaces are trimmed")
}

func TestTOTPReplay(t *testing.T) {
	clk := newFakeClock()
	m, secret := enrolled(t, NewMemStore(nil), clk, "alice")
	clk.Advance(5 * time.Minute)

	c := code(t, secret, clk.Now())
	require.NoError(t, m.VerifyTOTP(ctx, "alice", c))
	require.ErrorIs(t, m.VerifyTOTP(ctx, "alice", c), ErrTOTPReplay, "same code twice")

	// Still inside the skew window 20 s later: still a replay.
	clk.Advance(20 * time.Second)
	require.ErrorIs(t, m.VerifyTOTP(ctx, "alice", c), ErrTOTPReplay)

	// An older (but in-window) step after a newer one is refused too.
	clk.Advance(40 * time.Second)
	newer := code(t, secret, clk.Now())
	older := code(t, secret, clk.Now().Add(-30*time.Second))
	require.NoError(t, m.VerifyTOTP(ctx, "alice", newer))
	require.ErrorIs(t, m.VerifyTOTP(ctx, "alice", older), ErrTOTPReplay)

	// The next step works.
	clk.Advance(30 * time.Second)
	require.NoError(t, m.VerifyTOTP(ctx, "alice", code(t, secret, clk.Now())))
}

func TestTOTPReplayIsPerUser(t *testing.T) {
	clk := newFakeClock()
	store := NewMemStore(nil)
	m, secret := enrolled(t, store, clk, "alice")
	// bob happens to share the secret (never in practice): his step record is his own.
	require.NoError(t, store.SaveTOTP(ctx, "bob", secret, 0))
	clk.Advance(time.Minute)
	c := code(t, secret, clk.Now())
	require.NoError(t, m.VerifyTOTP(ctx, "alice", c))
	require.NoError(t, m.VerifyTOTP(ctx, "bob", c))
}

func TestRecoveryCodes(t *testing.T) {
	clk := newFakeClock()
	store := NewMemStore(nil)
	m, _ := enrolled(t, store, clk, "alice")
	codes, err := m.RegenerateRecoveryCodes(ctx, "alice")
	require.NoError(t, err)
	require.Len(t, codes, 10)
	seen := map[string]bool{}
	for _, c := range codes {
		require.Len(t, c, 19)
		require.False(t, seen[c], "codes are distinct")
		seen[c] = true
	}

	// Single use, normalised input.
	require.NoError(t, m.VerifyRecoveryCode(ctx, "alice", strings.ToUpper(strings.ReplaceAll(codes[0], "-", " "))))
	require.ErrorIs(t, m.VerifyRecoveryCode(ctx, "alice", codes[0]), ErrBadSecondFactor, "second use")
	require.NoError(t, m.VerifyRecoveryCode(ctx, "alice", codes[1]))

	// Bound to the user.
	require.ErrorIs(t, m.VerifyRecoveryCode(ctx, "bob", codes[2]), ErrBadSecondFactor)
	require.ErrorIs(t, m.VerifyRecoveryCode(ctx, "alice", "aaaa-bbbb-cccc-dddd"), ErrBadSecondFactor)

	// Regeneration invalidates the old set.
	fresh, err := m.RegenerateRecoveryCodes(ctx, "alice")
	require.NoError(t, err)
	require.ErrorIs(t, m.VerifyRecoveryCode(ctx, "alice", codes[2]), ErrBadSecondFactor)
	require.NoError(t, m.VerifyRecoveryCode(ctx, "alice", fresh[2]))
}

func TestTOTPConfigValidate(t *testing.T) {
	require.NoError(t, TOTPConfig{}.Validate())
	require.ErrorIs(t, TOTPConfig{Skew: 5}.Validate(), ErrInvalidConfig)
	require.ErrorIs(t, TOTPConfig{SecretSize: 8}.Validate(), ErrInvalidConfig)
	_, err := NewMFA(MFAOptions{})
	require.ErrorIs(t, err, ErrInvalidConfig)
}
