package authn

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
)

// User is what the login flow needs to know about an account.
type User struct {
	ID           string
	Name         string // login name
	PasswordHash string // PHC Argon2id string
	Platform     bool   // holds a platform owner/admin role: MFA always required
	Disabled     bool
}

// UserStore looks users up for login. Implementations must be safe for
// concurrent use.
type UserStore interface {
	// UserByName returns the user with login name, or an error wrapping ErrNotFound.
	UserByName(ctx context.Context, name string) (User, error)
	// SetPasswordHash replaces the stored hash (upgrade after NeedsRehash, or a
	// password change).
	SetPasswordHash(ctx context.Context, userID, encoded string) error
}

// AuthenticatorOptions wires the pieces of a login together. All are required.
type AuthenticatorOptions struct {
	Users    UserStore
	Hasher   *PasswordHasher
	MFA      *MFA
	Devices  *Devices
	Sessions *Sessions
	Limiter  *LoginLimiter
	Clock    Clock // nil: SystemClock
}

// Authenticator runs the password + second-factor login.
type Authenticator struct {
	o AuthenticatorOptions
}

// NewAuthenticator checks that every dependency is present.
func NewAuthenticator(o AuthenticatorOptions) (*Authenticator, error) {
	if o.Users == nil || o.Hasher == nil || o.MFA == nil || o.Devices == nil || o.Sessions == nil || o.Limiter == nil {
		return nil, fmt.Errorf("%w: authenticator needs users, hasher, MFA, devices, sessions and limiter", ErrInvalidConfig)
	}
	if o.Clock == nil {
		o.Clock = SystemClock()
	}
	return &Authenticator{o: o}, nil
}

// maxUsernameBytes bounds user names before they become limiter keys.
const maxUsernameBytes = 256

// LoginRequest is one login attempt. The flow is stateless: a client that got
// ErrMFARequired repeats the request with TOTPCode (or RecoveryCode) set.
type LoginRequest struct {
	Username     string
	Password     string
	TOTPCode     string
	RecoveryCode string
	DeviceToken  string     // trusted-device cookie, if any
	Source       netip.Addr // client address as seen by the authority
}

// LoginResult describes a successful login. The caller sets the session
// cookie from Token and writes an audit event with Decision.RiskMap().
type LoginResult struct {
	User             User
	Token            string // session token (cookie value); shown once
	Session          Session
	Decision         Decision
	UsedRecoveryCode bool    // the user should re-enroll TOTP and regenerate codes
	Warnings         []error // non-fatal follow-up failures (hash upgrade, device network)
}

// Login authenticates req. In order: rate limit/lockout (ErrRateLimited,
// ErrLockedOut), password (ErrBadCredentials, also for unknown or disabled
// users, with equal work), risk decision (AssessLogin), refusal of platform
// users without MFA (ErrMFANotEnrolled), second factor (ErrMFARequired when
// absent; ErrBadSecondFactor / ErrTOTPReplay when wrong). Every failed
// credential counts towards lockout. On success the password hash is upgraded
// if its parameters are outdated, the device learns the network, and a session
// is created.
func (a *Authenticator) Login(ctx context.Context, req LoginRequest) (LoginResult, error) {
	o := a.o
	if len(req.Username) > maxUsernameBytes || req.Username == "" {
		return LoginResult{}, ErrBadCredentials
	}
	if err := o.Limiter.Allow(ctx, req.Username, req.Source); err != nil {
		return LoginResult{}, err
	}
	fail := func(cause error) (LoginResult, error) {
		if err := o.Limiter.Failure(ctx, req.Username, req.Source); err != nil {
			return LoginResult{}, errors.Join(cause, err)
		}
		return LoginResult{}, cause
	}
	u, err := o.Users.UserByName(ctx, req.Username)
	if errors.Is(err, ErrNotFound) {
		if err := o.Hasher.VerifyDummy(ctx, req.Password); !errors.Is(err, ErrBadCredentials) {
			return LoginResult{}, err
		}
		return fail(ErrBadCredentials)
	}
	if err != nil {
		return LoginResult{}, fmt.Errorf("authn: loading user: %w", err)
	}
	if err := o.Hasher.Verify(ctx, u.PasswordHash, req.Password); err != nil {
		if errors.Is(err, ErrBadCredentials) {
			return fail(ErrBadCredentials)
		}
		return LoginResult{}, err
	}
	if u.Disabled {
		return fail(ErrBadCredentials)
	}
	enrolled, err := o.MFA.Enrolled(ctx, u.ID)
	if err != nil {
		return LoginResult{}, err
	}
	dev, err := o.Devices.Lookup(ctx, req.DeviceToken, u.ID)
	if err != nil {
		return LoginResult{}, err
	}
	dec := AssessLogin(RiskInput{Platform: u.Platform, MFAEnrolled: enrolled, Device: dev, Source: req.Source})
	if dec.EnrollmentRequired {
		return LoginResult{}, fmt.Errorf("%w: platform roles require MFA", ErrMFANotEnrolled)
	}
	res := LoginResult{User: u, Decision: dec}
	ns := NewSession{UserID: u.ID, Source: req.Source}
	if dec.SecondFactor {
		switch {
		case req.TOTPCode != "":
			err = o.MFA.VerifyTOTP(ctx, u.ID, req.TOTPCode)
		case req.RecoveryCode != "":
			err = o.MFA.VerifyRecoveryCode(ctx, u.ID, req.RecoveryCode)
			res.UsedRecoveryCode = err == nil
		default:
			return LoginResult{}, ErrMFARequired
		}
		if errors.Is(err, ErrBadSecondFactor) || errors.Is(err, ErrTOTPReplay) {
			return fail(err)
		}
		if err != nil {
			return LoginResult{}, err
		}
		ns.MFAAt = o.Clock.Now()
	}
	if err := o.Limiter.Success(ctx, req.Username); err != nil {
		res.Warnings = append(res.Warnings, err)
	}
	if o.Hasher.NeedsRehash(u.PasswordHash) {
		if h, err := o.Hasher.Hash(ctx, req.Password); err != nil {
			res.Warnings = append(res.Warnings, err)
		} else if err := o.Users.SetPasswordHash(ctx, u.ID, h); err != nil {
			res.Warnings = append(res.Warnings, err)
		} else {
			res.User.PasswordHash = h
		}
	}
	if dev != nil {
		ns.DeviceID = dev.ID
		// Refresh LastUsedAt; a new network becomes known only through a
		// verified second factor.
		if dec.KnownNetwork || !ns.MFAAt.IsZero() {
			if err := o.Devices.Remember(ctx, dev.ID, req.Source); err != nil {
				res.Warnings = append(res.Warnings, err)
			}
		}
	}
	ns.Trusted = dec.Trusted()
	tok, s, err := o.Sessions.Create(ctx, ns)
	if err != nil {
		return LoginResult{}, err
	}
	res.Token, res.Session = tok, s
	return res, nil
}
