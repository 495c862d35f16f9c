package channel

import "fmt"

// State is a peer's channel lifecycle state.
type State int

// Lifecycle: Idle → Handshaking → Established → Rekeying → Established …;
// any state → Closed on ClosePeer/RevokePeer/Close. A failed handshake goes
// back to Handshaking with exponential backoff (persistent peers) or to Idle.
const (
	// StateIdle: no session and no handshake in flight.
	StateIdle State = iota
	// StateHandshaking: no usable session; a handshake is in flight or
	// waiting for its backoff retry.
	StateHandshaking
	// StateEstablished: a usable session and no handshake in flight.
	StateEstablished
	// StateRekeying: a usable session and a new handshake in flight.
	StateRekeying
	// StateClosed: closed or revoked; holds no sessions.
	StateClosed
)

// String returns the lower-case name of s.
func (s State) String() string {
	switch s {
	case StateIdle:
		return "idle"
	case StateHandshaking:
		return "handshaking"
	case StateEstablished:
		return "established"
	case StateRekeying:
		return "rekeying"
	case StateClosed:
		return "closed"
	}
	return fmt.Sprintf("state(%d)", int(s))
}

// EventKind says what an Event reports.
type EventKind int

// Event kinds.
const (
	// EventState: the peer moved to Event.State.
	EventState EventKind = iota + 1
	// EventSessionEstablished: a handshake completed (either role).
	EventSessionEstablished
	// EventHandshakeRefused: an authenticated initiation from Event.Peer was
	// refused; Event.Err says why (replay, unauthorized, revoked, rate).
	EventHandshakeRefused
	// EventHandshakeGaveUp: a non-persistent peer stopped retrying.
	EventHandshakeGaveUp
)

// Event is a lifecycle observation passed to Config.Observer.
type Event struct {
	Kind  EventKind
	Peer  Key
	State State
	Err   error
}

// PeerOptions describe a peer added with AddPeer.
type PeerOptions struct {
	// Persistent peers are kept connected: handshakes start without traffic,
	// retry forever with backoff, and idle keepalives are sent.
	Persistent bool
}

// CloseReport says what ClosePeer or RevokePeer tore down.
type CloseReport struct {
	Peer Key
	// Known is false if the endpoint had no state for the peer.
	Known bool
	// Previous is the state before closing.
	Previous State
	// Sessions is the number of sessions closed (current, previous, next).
	Sessions int
	// HandshakeCancelled is true if a handshake was in flight.
	HandshakeCancelled bool
}

// Stats are cumulative counters, safe to read at any time.
type Stats struct {
	InitiationsSent     uint64
	ResponsesSent       uint64
	HandshakesCompleted uint64 // as initiator
	HandshakesResponded uint64 // as responder
	RefusedReplay       uint64 // replayed/stale initiation timestamps
	RefusedUnauthorized uint64
	RefusedRevoked      uint64
	RateLimited         uint64
	BadMAC              uint64
	HandshakeFailed     uint64 // Noise processing failures
	Malformed           uint64
	UnknownIndex        uint64
	ReplayDropped       uint64 // data packets refused by the replay window
	DecryptFailed       uint64
	Expired             uint64
	Delivered           uint64 // data packets delivered
	KeepalivesReceived  uint64
	KeepalivesSent      uint64
	SessionsEstablished uint64 // both roles, after confirmation
	SessionsClosed      uint64
}
