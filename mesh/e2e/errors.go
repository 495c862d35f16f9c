package e2e

import "errors"

// Errors of the package, wrapped with detail; match with errors.Is. Errors
// from HandleFrame say why a frame was dropped and are informational.
var (
	// ErrConfig means the Config is invalid.
	ErrConfig = errors.New("e2e: invalid config")
	// ErrMalformed means a frame could not be parsed.
	ErrMalformed = errors.New("e2e: malformed frame")
	// ErrTTLExpired means a frame reached TTL zero and was dropped.
	ErrTTLExpired = errors.New("e2e: ttl expired")
	// ErrNoRoute means the router has no route to the destination.
	ErrNoRoute = errors.New("e2e: no route")
	// ErrPolicy means policy forbids reaching or relaying for a node.
	ErrPolicy = errors.New("e2e: forbidden by policy")
	// ErrUnknownPeer means the peer directory has no key for the node.
	ErrUnknownPeer = errors.New("e2e: unknown peer")
	// ErrHandshake means a handshake message failed Noise processing.
	ErrHandshake = errors.New("e2e: handshake failed")
	// ErrUnauthorized means the initiator's static key is not the one the
	// directory lists for the claimed source.
	ErrUnauthorized = errors.New("e2e: peer key mismatch")
	// ErrReplay means a duplicate or stale counter or initiation.
	ErrReplay = errors.New("e2e: replay")
	// ErrDecrypt means a frame failed authentication.
	ErrDecrypt = errors.New("e2e: decryption failed")
	// ErrNoSession means no flow matches the frame.
	ErrNoSession = errors.New("e2e: no such flow")
	// ErrClosed means the Conn or Forwarder is closed.
	ErrClosed = errors.New("e2e: closed")
	// ErrQueueFull means a bounded queue overflowed; the message was dropped.
	ErrQueueFull = errors.New("e2e: queue full")
	// ErrHandshakeTimeout means the destination never answered.
	ErrHandshakeTimeout = errors.New("e2e: handshake timed out")
	// ErrExpired means the flow used up its counters; dial again.
	ErrExpired = errors.New("e2e: flow expired")
	// ErrTooLarge means the message does not fit in one frame.
	ErrTooLarge = errors.New("e2e: message too large")
)
