package tunnel

import "errors"

// Errors of the package, wrapped with detail; match with errors.Is.
var (
	// ErrConfig means the Config is invalid.
	ErrConfig = errors.New("tunnel: invalid config")
	// ErrSetup means the interface, its routes or its nftables rules could
	// not be created; nothing of the attempt is left behind.
	ErrSetup = errors.New("tunnel: setup failed")
	// ErrStopped means the Tunnel was stopped.
	ErrStopped = errors.New("tunnel: stopped")
)
