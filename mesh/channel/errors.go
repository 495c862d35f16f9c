package channel

import "errors"

// Errors returned by the Endpoint. They are wrapped with detail; match them
// with errors.Is. HandlePacket's errors describe why a packet was dropped and
// are informational: a dropped packet never changes session state.
var (
	// ErrClosed means the Endpoint was closed.
	ErrClosed = errors.New("channel: endpoint closed")
	// ErrMalformed means the packet could not be parsed.
	ErrMalformed = errors.New("channel: malformed packet")
	// ErrBadMAC means a handshake message failed its mac1 check (wrong
	// cluster, wrong responder key, or junk); no public-key work was done.
	ErrBadMAC = errors.New("channel: handshake mac mismatch")
	// ErrHandshake means a handshake message failed Noise processing.
	ErrHandshake = errors.New("channel: handshake failed")
	// ErrReplayedInitiation means an initiation carried a timestamp not newer
	// than the last one accepted from the same static key.
	ErrReplayedInitiation = errors.New("channel: replayed or stale initiation")
	// ErrUnauthorized means Config.Authorize refused the remote static key.
	ErrUnauthorized = errors.New("channel: peer not authorized")
	// ErrRevoked means the peer was revoked on this endpoint.
	ErrRevoked = errors.New("channel: peer revoked")
	// ErrRateLimited means a handshake was dropped by a rate limit.
	ErrRateLimited = errors.New("channel: handshake rate limited")
	// ErrUnknownIndex means no session or pending handshake has that index.
	ErrUnknownIndex = errors.New("channel: unknown receiver index")
	// ErrReplay means a data packet's counter is a duplicate or too old.
	ErrReplay = errors.New("channel: replayed counter")
	// ErrDecrypt means a data packet failed authentication.
	ErrDecrypt = errors.New("channel: decryption failed")
	// ErrExpired means the session is past RejectAfterTime or its counter
	// reached RejectAfterMessages.
	ErrExpired = errors.New("channel: session expired")
	// ErrNoSession means there is no usable session yet; a handshake has
	// been started if none was in flight. Retry later.
	ErrNoSession = errors.New("channel: no established session")
	// ErrUnknownPeer means the key was never added and never connected.
	ErrUnknownPeer = errors.New("channel: unknown peer")
	// ErrNoAddress means the peer has no known address to dial.
	ErrNoAddress = errors.New("channel: peer has no address")
	// ErrTooLarge means the plaintext does not fit in one packet.
	ErrTooLarge = errors.New("channel: payload too large")
	// ErrConfig means the Config is invalid; the message names the fields.
	ErrConfig = errors.New("channel: invalid config")
)
