package authn

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

type loginFixture struct {
	clk     *fakeClock
	store   *MemStore
	auth    *Authenticator
	devices *Devices
	hasher  *PasswordHasher
	secret  string
}

func newLoginFixture(t *testing.T) *loginFixture {
	t.Helper()
	clk := newFakeClock()
	store := NewMemStore(clk.Now)
	h := testHasher(t)
	m, secret := enrolled(t, store, clk, "u-alice")
	devices, err := NewDevices(DevicesOptions{Store: store, Clock: clk, Rand: seededRand(21)})
	require.NoError(t, err)
	sessions, err := NewSessions(SessionsOptions{Store: store, Clock: clk, Rand: seededRand(22)})
	require.NoError(t, err)
	limiter, err := NewLoginLimiter(LimiterOptions{Store: store, Clock: clk})
	require.NoError(t, err)
	auth, err := NewAuthenticator(AuthenticatorOptions{Users: store, Hasher: h, MFA: m, Devices: devices, Sessions: sessions, Limiter: limiter, Clock: clk})
	require.NoError(t, err)
	for _, u := range []User{
		{ID: "u-alice", Name: "alice", Platform: true},
		{ID: "u-bob", Name: "bob", Platform: true},   // platform, no MFA
		{ID: "u-carol", Name: "carol"},               // org admin, with MFA
		{ID: "u-dave", Name: "dave", Disabled: true}, //
	} {
		enc, err := h.Hash(ctx, u.Name+"-password")
		require.NoError(t, err)
		u.PasswordHash = enc
		store.PutUser(u)
	}
	require.NoError(t, store.SaveTOTP(ctx, "u-carol", secret, 0))
	clk.Advance(time.Minute)
	return &loginFixture{clk: clk, store: store, auth: auth, devices: devices, hasher: h, secret: secret}
}

func (f *loginFixture) code(t *testing.T) string { return code(t, f.secret, f.clk.Now()) }

func TestLoginPlatformAlwaysNeedsMFA(t *testing.T) {
	f := newLoginFixture(t)
	src := addr("198.51.100.7")
	_, err := f.auth.Login(ctx, LoginRequest{Username: "alice", Password: "alice-password", Source: src})
	require.ErrorIs(t, err, ErrMFARequired)

	c := f.code(t)
	res, err := f.auth.Login(ctx, LoginRequest{Username: "alice", Password: "alice-password", TOTPCode: c, Source: src})
	require.NoError(t, err)
	require.NotEmpty(t, res.Token)
	require.Equal(t, f.clk.Now(), res.Session.MFAAt)
	require.False(t, res.Session.Trusted)
	require.Equal(t, 30*time.Minute, res.Session.IdleTimeout)
	require.Equal(t, "unknown", res.Decision.RiskMap()["device"])

	// Replaying the same code (e.g. captured) fails even with the password.
	_, err = f.auth.Login(ctx, LoginRequest{Username: "alice", Password: "alice-password", TOTPCode: c, Source: src})
	require.ErrorIs(t, err, ErrTOTPReplay)

	// A trusted device on its known network still needs MFA but gets the
	// trusted session limits.
	devTok, _, err := f.devices.Register(ctx, "u-alice", "laptop", src)
	require.NoError(t, err)
	f.clk.Advance(30 * time.Second)
	_, err = f.auth.Login(ctx, LoginRequest{Username: "alice", Password: "alice-password", DeviceToken: devTok, Source: src})
	require.ErrorIs(t, err, ErrMFARequired)
	res, err = f.auth.Login(ctx, LoginRequest{Username: "alice", Password: "alice-password", TOTPCode: f.code(t), DeviceToken: devTok, Source: src})
	require.NoError(t, err)
	require.True(t, res.Session.Trusted)
	require.Equal(t, 2*time.Hour, res.Session.IdleTimeout)
	require.Equal(t, res.Session.DeviceID, HashToken(devTok))
}

func TestLoginRefusals(t *testing.T) {
	f := newLoginFixture(t)
	src := addr("198.51.100.7")
	tests := []struct {
		name string
		req  LoginRequest
		want error
	}{
		{"unknown user", LoginRequest{Username: "mallory", Password: "x"}, ErrBadCredentials},
		{"wrong password", LoginRequest{Username: "alice", Password: "nope"}, ErrBadCredentials},
		{"disabled user", LoginRequest{Username: "dave", Password: "dave-password"}, ErrBadCredentials},
		{"platform user without MFA", LoginRequest{Username: "bob", Password: "bob-password"}, ErrMFANotEnrolled},
		{"wrong TOTP", LoginRequest{Username: "alice", Password: "alice-password", TOTPCode: "000000"}, ErrBadSecondFactor},
		{"wrong recovery code", LoginRequest{Username: "alice", Password: "alice-password", RecoveryCode: "aaaa-aaaa-aaaa-aaaa"}, ErrBadSecondFactor},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.req.Source = src
			_, err := f.auth.Login(ctx, tc.req)
			require.ErrorIs(t, err, tc.want)
		})
	}
}

func TestLoginLockout(t *testing.T) {
	f := newLoginFixture(t)
	src := addr("198.51.100.7")
	for range 5 {
		_, err := f.auth.Login(ctx, LoginRequest{Username: "alice", Password: "guess", Source: src})
		require.ErrorIs(t, err, ErrBadCredentials)
		f.clk.Advance(15 * time.Second)
	}
	_, err := f.auth.Login(ctx, LoginRequest{Username: "alice", Password: "alice-password", TOTPCode: f.code(t), Source: src})
	require.ErrorIs(t, err, ErrLockedOut, "the right password does not bypass the lock")
	f.clk.Advance(15 * time.Minute)
	_, err = f.auth.Login(ctx, LoginRequest{Username: "alice", Password: "alice-password", TOTPCode: f.code(t), Source: src})
	require.NoError(t, err)
}

func TestLoginTrustedDeviceForNonPlatformUser(t *testing.T) {
	f := newLoginFixture(t)
	home, away := addr("198.51.100.7"), addr("2001:db8:9::1")
	devTok, _, err := f.devices.Register(ctx, "u-carol", "desk", home)
	require.NoError(t, err)

	res, err := f.auth.Login(ctx, LoginRequest{Username: "carol", Password: "carol-password", DeviceToken: devTok, Source: home})
	require.NoError(t, err, "trusted device on known network skips TOTP for a non-platform user")
	require.True(t, res.Session.MFAAt.IsZero())

	_, err = f.auth.Login(ctx, LoginRequest{Username: "carol", Password: "carol-password", DeviceToken: devTok, Source: away})
	require.ErrorIs(t, err, ErrMFARequired, "new network")
	_, err = f.auth.Login(ctx, LoginRequest{Username: "carol", Password: "carol-password", Source: home})
	require.ErrorIs(t, err, ErrMFARequired, "unknown device")
	// Another user's device cookie is an unknown device.
	_, err = f.auth.Login(ctx, LoginRequest{Username: "alice", Password: "alice-password", DeviceToken: devTok, Source: home, TOTPCode: f.code(t)})
	require.NoError(t, err)

	// After MFA from the new network, it becomes known.
	f.clk.Advance(30 * time.Second)
	_, err = f.auth.Login(ctx, LoginRequest{Username: "carol", Password: "carol-password", DeviceToken: devTok, Source: away, TOTPCode: f.code(t)})
	require.NoError(t, err)
	res, err = f.auth.Login(ctx, LoginRequest{Username: "carol", Password: "carol-password", DeviceToken: devTok, Source: away})
	require.NoError(t, err)
	require.True(t, res.Decision.Trusted())

	// Revoked device: MFA again.
	require.NoError(t, f.devices.RevokeAll(ctx, "u-carol"))
	_, err = f.auth.Login(ctx, LoginRequest{Username: "carol", Password: "carol-password", DeviceToken: devTok, Source: home})
	require.ErrorIs(t, err, ErrMFARequired)
}

func TestLoginRecoveryCodeAndRehash(t *testing.T) {
	f := newLoginFixture(t)
	src := addr("198.51.100.7")
	m, err := NewMFA(MFAOptions{Store: f.store, Clock: f.clk})
	require.NoError(t, err)
	codes, err := m.RegenerateRecoveryCodes(ctx, "u-alice")
	require.NoError(t, err)

	// Upgrade the hasher's params: the next login rewrites the stored hash.
	stronger := FastInsecureArgon2Params()
	stronger.Time = 2
	h2, err := NewPasswordHasher(PasswordHasherOptions{Params: stronger})
	require.NoError(t, err)
	f.auth.o.Hasher = h2

	res, err := f.auth.Login(ctx, LoginRequest{Username: "alice", Password: "alice-password", RecoveryCode: codes[0], Source: src})
	require.NoError(t, err)
	require.True(t, res.UsedRecoveryCode)
	require.Empty(t, res.Warnings)
	u, err := f.store.UserByName(ctx, "alice")
	require.NoError(t, err)
	require.False(t, h2.NeedsRehash(u.PasswordHash), "hash upgraded")
	require.NoError(t, h2.Verify(ctx, u.PasswordHash, "alice-password"))

	_, err = f.auth.Login(ctx, LoginRequest{Username: "alice", Password: "alice-password", RecoveryCode: codes[0], Source: src})
	require.ErrorIs(t, err, ErrBadSecondFactor, "recovery code is single use")
}

func TestLoginRefusesOversizedName(t *testing.T) {
	f := newLoginFixture(t)
	_, err := f.auth.Login(ctx, LoginRequest{Username: string(make([]byte, 300)), Password: "x", Source: addr("198.51.100.7")})
	require.ErrorIs(t, err, ErrBadCredentials)
	_, err = f.auth.Login(ctx, LoginRequest{Password: "x", Source: addr("198.51.100.7")})
	require.ErrorIs(t, err, ErrBadCredentials)
}
