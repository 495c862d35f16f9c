// Package authn owns the pure logic of platform-admin access security: Argon2id
// password hashes, TOTP second factor with replay protection and recovery codes,
// opaque tokens stored only as SHA-256 hashes, sessions with idle and absolute
// expiry, trusted devices and the login risk decision, login rate limiting and
// lockout, step-up grants for high-risk actions, CSRF checks for cookie sessions,
// and small HTTP guards (body limit, bounded JSON decoding, error to status).
//
// It must not talk to a database, the network or the wall clock directly.
// Storage sits behind the small interfaces declared here (UserStore, MFAStore,
// SessionStore, DeviceStore, LockoutStore, StepUpStore); the PostgreSQL side
// implements them elsewhere and MemStore implements all of them in memory with
// the same atomicity contracts. Time comes from a Clock and randomness from an
// io.Reader, both injectable. The package never stores a plaintext password,
// token, recovery code or device secret; it does keep TOTP secrets retrievable
// (they must be encrypted at rest by the store).
//
// Design notes: docs/admin-security.md.
package authn
