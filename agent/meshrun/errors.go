package meshrun

import "errors"

// Errors of the package, recognized with errors.Is.
var (
	// ErrConfig: missing or malformed configuration.
	ErrConfig = errors.New("meshrun: invalid configuration")
	// ErrUnknownNode: the destination is not in the signed peer directory.
	ErrUnknownNode = errors.New("meshrun: node not in the peer directory")
	// ErrClosed: the node was closed.
	ErrClosed = errors.New("meshrun: closed")
)
