package wire

import "errors"

// Errors returned by the parsers. Callers match them with errors.Is; messages
// may carry detail wrapped around them.
var (
	// ErrShort means the packet is shorter than its type requires.
	ErrShort = errors.New("wire: packet too short")
	// ErrTooLong means the packet exceeds MaxPacketLen.
	ErrTooLong = errors.New("wire: packet too long")
	// ErrLength means a fixed-size message has the wrong length.
	ErrLength = errors.New("wire: wrong length")
	// ErrType means the type byte is unknown or not allowed here.
	ErrType = errors.New("wire: unknown packet type")
)
