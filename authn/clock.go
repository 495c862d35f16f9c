package authn

import "time"

// Clock supplies the current time. Every expiry, lockout and TOTP step in this
// package is computed from a Clock so tests can move time explicitly.
type Clock interface {
	// Now returns the current time. It must be safe for concurrent use.
	Now() time.Time
}

// SystemClock returns the wall clock.
func SystemClock() Clock { return systemClock{} }

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }
