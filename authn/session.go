package authn

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"time"
)

// Session is the stored form of a browser session. The session token itself is
// never stored; ID is its hash.
type Session struct {
	ID          TokenHash     // SHA-256 of the session token
	UserID      string        // owner
	CreatedAt   time.Time     // login time
	LastSeenAt  time.Time     // last validated request (written at most every TouchInterval)
	MFAAt       time.Time     // when the second factor was last verified; zero: never in this session
	DeviceID    TokenHash     // trusted device used at login; zero: none
	SourceNet   netip.Prefix  // /24 (IPv4) or /64 (IPv6) of the login address
	Trusted     bool          // trusted device from a known network (longer idle limit)
	IdleTimeout time.Duration // idle limit fixed at creation
	ExpiresAt   time.Time     // absolute limit fixed at creation
}

// MFAFresh reports whether the second factor was verified within d before now.
func (s Session) MFAFresh(now time.Time, d time.Duration) bool {
	return !s.MFAAt.IsZero() && !now.Before(s.MFAAt) && now.Sub(s.MFAAt) <= d
}

// expiry returns a non-nil error when s is no longer valid at now.
func (s Session) expiry(now time.Time) error {
	if !now.Before(s.ExpiresAt) {
		return fmt.Errorf("%w: absolute limit reached at %s", ErrSessionExpired, s.ExpiresAt.UTC().Format(time.RFC3339))
	}
	if now.Sub(s.LastSeenAt) >= s.IdleTimeout {
		return fmt.Errorf("%w: idle for %s", ErrSessionExpired, now.Sub(s.LastSeenAt).Truncate(time.Second))
	}
	return nil
}

// SessionStore persists sessions by ID. Implementations must be safe for
// concurrent use.
type SessionStore interface {
	// CreateSession inserts s; IDs are random, so a collision is an error.
	CreateSession(ctx context.Context, s Session) error
	// Session returns the session with id or an error wrapping ErrNotFound.
	Session(ctx context.Context, id TokenHash) (Session, error)
	// TouchSession sets LastSeenAt to at if at is later than the stored value.
	// A missing session is not an error.
	TouchSession(ctx context.Context, id TokenHash, at time.Time) error
	// DeleteSession removes the session; a missing session is not an error.
	DeleteSession(ctx context.Context, id TokenHash) error
	// DeleteUserSessions removes every session of userID and returns how many.
	DeleteUserSessions(ctx context.Context, userID string) (int, error)
}

// SessionConfig sets session lifetimes. Use DefaultSessionConfig and adjust.
type SessionConfig struct {
	IdleTimeout            time.Duration // default 30 min
	AbsoluteTimeout        time.Duration // default 12 h
	TrustedIdleTimeout     time.Duration // trusted device on a known network; default 2 h
	TrustedAbsoluteTimeout time.Duration // trusted device on a known network; default 12 h
	TouchInterval          time.Duration // min gap between LastSeenAt writes; default 1 min
	// AllowNetworkChange, when false (the default), ends a session whose request
	// comes from outside the /24 or /64 it was created in.
	AllowNetworkChange bool
}

// DefaultSessionConfig returns 30 min idle / 12 h absolute, trusted devices 2 h
// idle / 12 h absolute, 1 min touch interval, sessions bound to their network.
func DefaultSessionConfig() SessionConfig {
	return SessionConfig{
		IdleTimeout: 30 * time.Minute, AbsoluteTimeout: 12 * time.Hour,
		TrustedIdleTimeout: 2 * time.Hour, TrustedAbsoluteTimeout: 12 * time.Hour,
		TouchInterval: time.Minute,
	}
}

// Validate names the first inconsistent field.
func (c SessionConfig) Validate() error {
	switch {
	case c.IdleTimeout <= 0 || c.TrustedIdleTimeout <= 0:
		return fmt.Errorf("%w: session idle timeouts must be > 0", ErrInvalidConfig)
	case c.IdleTimeout > c.AbsoluteTimeout:
		return fmt.Errorf("%w: IdleTimeout exceeds AbsoluteTimeout", ErrInvalidConfig)
	case c.TrustedIdleTimeout > c.TrustedAbsoluteTimeout:
		return fmt.Errorf("%w: TrustedIdleTimeout exceeds TrustedAbsoluteTimeout", ErrInvalidConfig)
	case c.TouchInterval < 0 || c.TouchInterval >= c.IdleTimeout:
		return fmt.Errorf("%w: TouchInterval must be in [0, IdleTimeout)", ErrInvalidConfig)
	}
	return nil
}

// SessionsOptions configures NewSessions.
type SessionsOptions struct {
	Config SessionConfig // zero value: DefaultSessionConfig
	Store  SessionStore  // required
	Clock  Clock         // nil: SystemClock
	Rand   io.Reader     // nil: crypto/rand
}

// Sessions creates and validates sessions.
type Sessions struct {
	cfg   SessionConfig
	store SessionStore
	clock Clock
	rand  io.Reader
}

// NewSessions validates opts and returns a session manager.
func NewSessions(opts SessionsOptions) (*Sessions, error) {
	if opts.Config == (SessionConfig{}) {
		opts.Config = DefaultSessionConfig()
	}
	if err := opts.Config.Validate(); err != nil {
		return nil, err
	}
	if opts.Store == nil {
		return nil, fmt.Errorf("%w: session store is nil", ErrInvalidConfig)
	}
	if opts.Clock == nil {
		opts.Clock = SystemClock()
	}
	if opts.Rand == nil {
		opts.Rand = rand.Reader
	}
	return &Sessions{cfg: opts.Config, store: opts.Store, clock: opts.Clock, rand: opts.Rand}, nil
}

// NewSession describes a session to create after a successful login.
type NewSession struct {
	UserID   string
	DeviceID TokenHash  // trusted device presented at login; zero: none
	Source   netip.Addr // login address
	MFAAt    time.Time  // when the second factor was verified; zero: not verified
	Trusted  bool       // Decision.Trusted() of the login
}

// Create stores a new session and returns its token (for the cookie) and the
// stored record.
func (m *Sessions) Create(ctx context.Context, ns NewSession) (string, Session, error) {
	if ns.UserID == "" || !ns.Source.IsValid() {
		return "", Session{}, fmt.Errorf("%w: session needs a user and a source address", ErrInvalidConfig)
	}
	tok, id, err := NewToken(m.rand, TokenSession)
	if err != nil {
		return "", Session{}, err
	}
	now := m.clock.Now()
	idle, abs := m.cfg.IdleTimeout, m.cfg.AbsoluteTimeout
	if ns.Trusted {
		idle, abs = m.cfg.TrustedIdleTimeout, m.cfg.TrustedAbsoluteTimeout
	}
	s := Session{
		ID: id, UserID: ns.UserID, CreatedAt: now, LastSeenAt: now, MFAAt: ns.MFAAt,
		DeviceID: ns.DeviceID, SourceNet: SourceNetwork(ns.Source), Trusted: ns.Trusted,
		IdleTimeout: idle, ExpiresAt: now.Add(abs),
	}
	if err := m.store.CreateSession(ctx, s); err != nil {
		return "", Session{}, fmt.Errorf("authn: storing session: %w", err)
	}
	return tok, s, nil
}

// Validate resolves a session token presented from source. Expired sessions
// (idle or absolute) and sessions used from another network (unless
// AllowNetworkChange) are deleted and reported as ErrSessionExpired; unknown or
// malformed tokens as ErrNoSession. On success LastSeenAt is refreshed (at most
// once per TouchInterval) and the refreshed session is returned.
func (m *Sessions) Validate(ctx context.Context, token string, source netip.Addr) (Session, error) {
	id, err := ParseToken(TokenSession, token)
	if err != nil {
		return Session{}, ErrNoSession
	}
	s, err := m.store.Session(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return Session{}, ErrNoSession
	}
	if err != nil {
		return Session{}, fmt.Errorf("authn: loading session: %w", err)
	}
	now := m.clock.Now()
	verr := s.expiry(now)
	if verr == nil && !m.cfg.AllowNetworkChange && (!source.IsValid() || !s.SourceNet.Contains(source.Unmap().WithZone(""))) {
		verr = fmt.Errorf("%w: source network changed", ErrSessionExpired)
	}
	if verr != nil {
		if err := m.store.DeleteSession(ctx, id); err != nil {
			return Session{}, fmt.Errorf("authn: deleting expired session: %w", err)
		}
		return Session{}, verr
	}
	if now.Sub(s.LastSeenAt) >= m.cfg.TouchInterval {
		if err := m.store.TouchSession(ctx, id, now); err != nil {
			return Session{}, fmt.Errorf("authn: touching session: %w", err)
		}
		s.LastSeenAt = now
	}
	return s, nil
}

// Revoke deletes the session behind token (logout). Unknown tokens are ignored.
func (m *Sessions) Revoke(ctx context.Context, token string) error {
	id, err := ParseToken(TokenSession, token)
	if err != nil {
		return nil
	}
	return m.store.DeleteSession(ctx, id)
}

// RevokeUser deletes all sessions of userID (password change, MFA reset,
// account disable) and returns how many there were.
func (m *Sessions) RevokeUser(ctx context.Context, userID string) (int, error) {
	return m.store.DeleteUserSessions(ctx, userID)
}
