package chaos

import "errors"

// Sentinel errors of the harness. Callers wrap them with %w.
var (
	// ErrNotRoot: the harness needs root (network namespaces, nftables).
	ErrNotRoot = errors.New("chaos: not running as root")
	// ErrNoNamespaces: network namespaces, veth or bridges cannot be created here.
	ErrNoNamespaces = errors.New("chaos: network namespaces unavailable")
	// ErrTimeout: an awaited condition did not hold before its deadline.
	ErrTimeout = errors.New("chaos: timed out")
	// ErrLeftovers: teardown found namespaces or processes left behind.
	ErrLeftovers = errors.New("chaos: resources left behind")
	// ErrBootstrap: the first authority did not print its bootstrap line.
	ErrBootstrap = errors.New("chaos: bootstrap failed")
)

// DialError marks a failure to connect (nothing was sent).
type DialError struct{ Err error }

// Error implements error.
func (e *DialError) Error() string { return "dial: " + e.Err.Error() }

// Unwrap returns the cause.
func (e *DialError) Unwrap() error { return e.Err }
