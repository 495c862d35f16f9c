package authn

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"time"
)

// LockoutState is the failure record of one key ("user:<id>", "src:<addr>",
// "stepup:<id>"). The zero value means no recent failures.
type LockoutState struct {
	Failures     int       // failures since WindowStart
	WindowStart  time.Time // first failure of the current window
	LockedUntil  time.Time // refused until then; zero: not locked
	LastFailure  time.Time // most recent failure
	TotalLocks   int       // how many times the key has been locked (for alerting)
	LastLockedAt time.Time // when the current/last lock started
}

// LockoutStore keeps lockout state where every authority process sees it, so a
// locked-out user cannot simply try another authority. Implementations must be
// safe for concurrent use.
type LockoutStore interface {
	// Lockout returns the state for key (the zero value if none).
	Lockout(ctx context.Context, key string) (LockoutState, error)
	// UpdateLockout atomically replaces the state of key with fn(current) and
	// returns the new state (SQL: SELECT ... FOR UPDATE, then UPSERT, in one
	// transaction). fn is pure and may be called more than once on retry.
	UpdateLockout(ctx context.Context, key string, fn func(LockoutState) LockoutState) (LockoutState, error)
	// ClearLockout deletes the state of key.
	ClearLockout(ctx context.Context, key string) error
}

// LimiterConfig configures login rate limiting and lockout.
type LimiterConfig struct {
	// Token buckets (per authority process): attempts per second and burst.
	UserRate, SourceRate   float64 // default 5/min per user, 20/min per source
	UserBurst, SourceBurst int     // default 5 and 20
	// Lockout (shared through LockoutStore): MaxUserFailures failures for one
	// user, or MaxSourceFailures from one source, within FailureWindow lock that
	// key for LockoutDuration.
	MaxUserFailures   int           // default 5
	MaxSourceFailures int           // default 50
	FailureWindow     time.Duration // default 15 min
	LockoutDuration   time.Duration // default 15 min
	// MaxTrackedKeys bounds the in-memory bucket table; when full, buckets that
	// have refilled completely are dropped first. Default 100000.
	MaxTrackedKeys int
}

// DefaultLimiterConfig returns the defaults listed on LimiterConfig.
func DefaultLimiterConfig() LimiterConfig {
	return LimiterConfig{
		UserRate: 5.0 / 60, UserBurst: 5, SourceRate: 20.0 / 60, SourceBurst: 20,
		MaxUserFailures: 5, MaxSourceFailures: 50,
		FailureWindow: 15 * time.Minute, LockoutDuration: 15 * time.Minute,
		MaxTrackedKeys: 100000,
	}
}

// Validate names the first unusable field.
func (c LimiterConfig) Validate() error {
	switch {
	case c.UserRate <= 0 || c.SourceRate <= 0 || c.UserBurst < 1 || c.SourceBurst < 1:
		return fmt.Errorf("%w: limiter rates and bursts must be positive", ErrInvalidConfig)
	case c.MaxUserFailures < 1 || c.MaxSourceFailures < 1:
		return fmt.Errorf("%w: limiter failure thresholds must be >= 1", ErrInvalidConfig)
	case c.FailureWindow <= 0 || c.LockoutDuration <= 0:
		return fmt.Errorf("%w: FailureWindow and LockoutDuration must be > 0", ErrInvalidConfig)
	case c.MaxTrackedKeys < 1:
		return fmt.Errorf("%w: MaxTrackedKeys must be >= 1", ErrInvalidConfig)
	}
	return nil
}

// LimiterOptions configures NewLoginLimiter.
type LimiterOptions struct {
	Config LimiterConfig // zero value: DefaultLimiterConfig
	Store  LockoutStore  // required
	Clock  Clock         // nil: SystemClock
}

// LoginLimiter throttles credential attempts per user and per source and locks
// keys out after repeated failures. Check Allow before verifying anything,
// then report the outcome with Failure or Success.
type LoginLimiter struct {
	cfg   LimiterConfig
	store LockoutStore
	clock Clock

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

// NewLoginLimiter validates opts and returns a limiter.
func NewLoginLimiter(opts LimiterOptions) (*LoginLimiter, error) {
	if opts.Config == (LimiterConfig{}) {
		opts.Config = DefaultLimiterConfig()
	}
	if err := opts.Config.Validate(); err != nil {
		return nil, err
	}
	if opts.Store == nil {
		return nil, fmt.Errorf("%w: lockout store is nil", ErrInvalidConfig)
	}
	if opts.Clock == nil {
		opts.Clock = SystemClock()
	}
	return &LoginLimiter{cfg: opts.Config, store: opts.Store, clock: opts.Clock, buckets: map[string]*bucket{}}, nil
}

// SourceKey returns the limiter key of a source address: the address itself
// for IPv4, the /64 for IPv6 (one subscriber usually holds a whole /64).
func SourceKey(a netip.Addr) string {
	a = a.Unmap().WithZone("")
	if a.Is6() {
		p, _ := a.Prefix(64)
		return "src:" + p.String()
	}
	return "src:" + a.String()
}

// UserKey returns the limiter key of a user name (as typed, so unknown users
// are throttled too).
func UserKey(user string) string { return "user:" + user }

// Allow admits one attempt for user from source, or refuses it with a
// RetryError wrapping ErrLockedOut (a lock is active for the user or source)
// or ErrRateLimited (a bucket is empty). A refused attempt consumes nothing.
func (l *LoginLimiter) Allow(ctx context.Context, user string, source netip.Addr) error {
	now := l.clock.Now()
	uk, sk := UserKey(user), SourceKey(source)
	for _, k := range []struct{ key, name string }{{uk, "user"}, {sk, "source"}} {
		st, err := l.store.Lockout(ctx, k.key)
		if err != nil {
			return fmt.Errorf("authn: reading lockout: %w", err)
		}
		if now.Before(st.LockedUntil) {
			return retryErr(ErrLockedOut, k.name, st.LockedUntil.Sub(now))
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	ub := l.bucketLocked(uk, float64(l.cfg.UserBurst), now)
	sb := l.bucketLocked(sk, float64(l.cfg.SourceBurst), now)
	l.refill(ub, l.cfg.UserRate, float64(l.cfg.UserBurst), now)
	l.refill(sb, l.cfg.SourceRate, float64(l.cfg.SourceBurst), now)
	if ub.tokens < 1 {
		return retryErr(ErrRateLimited, "user", secondsDur((1-ub.tokens)/l.cfg.UserRate))
	}
	if sb.tokens < 1 {
		return retryErr(ErrRateLimited, "source", secondsDur((1-sb.tokens)/l.cfg.SourceRate))
	}
	ub.tokens--
	sb.tokens--
	return nil
}

func secondsDur(s float64) time.Duration { return time.Duration(s*float64(time.Second)) + time.Second }

func (l *LoginLimiter) refill(b *bucket, rate, burst float64, now time.Time) {
	if el := now.Sub(b.last).Seconds(); el > 0 {
		b.tokens = min(burst, b.tokens+el*rate)
	}
	b.last = now
}

func (l *LoginLimiter) bucketLocked(key string, burst float64, now time.Time) *bucket {
	if b, ok := l.buckets[key]; ok {
		return b
	}
	if len(l.buckets) >= l.cfg.MaxTrackedKeys {
		l.evictLocked(now)
	}
	b := &bucket{tokens: burst, last: now}
	l.buckets[key] = b
	return b
}

// evictLocked drops buckets that would be full by now (they carry no state);
// if none are, it drops an arbitrary half, which errs towards letting attempts
// through rather than growing without bound (lockouts still apply).
func (l *LoginLimiter) evictLocked(now time.Time) {
	full := max(l.cfg.UserBurst, l.cfg.SourceBurst)
	slowest := min(l.cfg.UserRate, l.cfg.SourceRate)
	for k, b := range l.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*slowest >= float64(full) {
			delete(l.buckets, k)
		}
	}
	if len(l.buckets) < l.cfg.MaxTrackedKeys {
		return
	}
	n := len(l.buckets) / 2
	for k := range l.buckets {
		if n == 0 {
			break
		}
		delete(l.buckets, k)
		n--
	}
}

// Failure records a failed attempt (bad password, bad or replayed second
// factor, unknown user) against both the user and the source, locking either
// once its threshold is reached within the window.
func (l *LoginLimiter) Failure(ctx context.Context, user string, source netip.Addr) error {
	now := l.clock.Now()
	if _, err := l.store.UpdateLockout(ctx, UserKey(user), failureFn(now, l.cfg.MaxUserFailures, l.cfg.FailureWindow, l.cfg.LockoutDuration)); err != nil {
		return fmt.Errorf("authn: recording failure: %w", err)
	}
	if _, err := l.store.UpdateLockout(ctx, SourceKey(source), failureFn(now, l.cfg.MaxSourceFailures, l.cfg.FailureWindow, l.cfg.LockoutDuration)); err != nil {
		return fmt.Errorf("authn: recording failure: %w", err)
	}
	return nil
}

// Success clears the user's failure count. The source's count is kept, so a
// sprayer who knows one password cannot reset the source limit with it.
func (l *LoginLimiter) Success(ctx context.Context, user string) error {
	return l.store.ClearLockout(ctx, UserKey(user))
}

// failureFn returns the state transition of one failure at now.
func failureFn(now time.Time, maxFailures int, window, lockFor time.Duration) func(LockoutState) LockoutState {
	return func(s LockoutState) LockoutState {
		if now.Before(s.LockedUntil) {
			s.LastFailure = now // already locked: a failure does not extend it
			return s
		}
		if s.WindowStart.IsZero() || now.Sub(s.WindowStart) >= window {
			s.Failures, s.WindowStart = 0, now
		}
		s.Failures++
		s.LastFailure = now
		if s.Failures >= maxFailures {
			s.LockedUntil = now.Add(lockFor)
			s.LastLockedAt = now
			s.TotalLocks++
			s.Failures, s.WindowStart = 0, time.Time{}
		}
		return s
	}
}
