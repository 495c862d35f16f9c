package routing

import "errors"

// Errors of the package; they are wrapped with detail, match with errors.Is.
var (
	// ErrConfig means the Config is invalid.
	ErrConfig = errors.New("routing: invalid config")
	// ErrMalformed means a routing message could not be decoded.
	ErrMalformed = errors.New("routing: malformed message")
	// ErrNoRoute means there is no usable route to the destination.
	ErrNoRoute = errors.New("routing: no route")
	// ErrUnknownNeighbour means a message came from a node that is not an
	// up neighbour of this router; it was ignored.
	ErrUnknownNeighbour = errors.New("routing: message from unknown or down neighbour")
	// ErrTableFull means a destination was ignored because the table holds
	// Config.MaxDestinations entries.
	ErrTableFull = errors.New("routing: route table full")
)
