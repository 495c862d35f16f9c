package link

import "errors"

// Errors returned by the Manager; match them with errors.Is.
var (
	// ErrConfig means the Config is invalid; the message names the fields.
	ErrConfig = errors.New("link: invalid config")
	// ErrDirectory means a directory is malformed (duplicate ids or keys,
	// missing cluster id, zero key).
	ErrDirectory = errors.New("link: invalid directory")
	// ErrStaleDirectory means a directory older than the current one was
	// offered; it is ignored.
	ErrStaleDirectory = errors.New("link: stale directory version")
	// ErrNotInDirectory means a noise key or node id is not in the current
	// directory (returned to channel.Authorize, and by Send).
	ErrNotInDirectory = errors.New("link: peer not in directory")
	// ErrRevoked means the peer is revoked by the directory.
	ErrRevoked = errors.New("link: peer revoked")
	// ErrTooManyClusters means all 255 endpoint index prefixes are in use.
	ErrTooManyClusters = errors.New("link: too many clusters")
	// ErrTooLarge means a payload does not fit in one packet.
	ErrTooLarge = errors.New("link: payload too large")
	// ErrClosed means the Manager was closed.
	ErrClosed = errors.New("link: manager closed")
)
