package channel

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"math"
	"net/netip"
	"time"
)

// Timers are the protocol's time and count limits (WireGuard's values by
// default). A zero field means "use the default"; PersistentKeepalive < 0
// disables idle keepalives.
type Timers struct {
	// RekeyAfterTime: the initiator of a session starts a new handshake once
	// the session is this old (default 120 s).
	RekeyAfterTime time.Duration
	// RejectAfterTime: a session is unusable in both directions once this old
	// (default 180 s).
	RejectAfterTime time.Duration
	// RekeyAfterMessages: a new handshake starts once this many packets were
	// sent on a session (default 2^60).
	RekeyAfterMessages uint64
	// RejectAfterMessages: a session refuses counters at or above this
	// (default 2^64 - 2^13 - 1).
	RejectAfterMessages uint64
	// RekeyTimeout is the first handshake retry delay; each further attempt
	// doubles it up to MaxBackoff, plus up to 1/8 random jitter (default 5 s).
	RekeyTimeout time.Duration
	// MaxBackoff caps the retry delay (default 60 s).
	MaxBackoff time.Duration
	// RekeyAttemptTime: a non-persistent peer gives up handshaking after this
	// long (default 90 s); persistent peers retry forever.
	RekeyAttemptTime time.Duration
	// KeepaliveTimeout: after receiving data and sending nothing for this
	// long, a keepalive is sent; after sending data and hearing nothing for
	// KeepaliveTimeout+RekeyTimeout a new handshake starts (default 10 s).
	KeepaliveTimeout time.Duration
	// PersistentKeepalive: persistent peers get a keepalive after this much
	// send idleness, keeping NAT bindings and liveness fresh (default 25 s).
	PersistentKeepalive time.Duration
}

// DefaultTimers returns WireGuard's protocol constants.
func DefaultTimers() Timers {
	return Timers{
		RekeyAfterTime:      120 * time.Second,
		RejectAfterTime:     180 * time.Second,
		RekeyAfterMessages:  1 << 60,
		RejectAfterMessages: math.MaxUint64 - (1 << 13),
		RekeyTimeout:        5 * time.Second,
		MaxBackoff:          60 * time.Second,
		RekeyAttemptTime:    90 * time.Second,
		KeepaliveTimeout:    10 * time.Second,
		PersistentKeepalive: 25 * time.Second,
	}
}

// Config configures an Endpoint. DefaultConfig fills everything but the
// identity and callbacks; NewEndpoint fills zero fields with defaults too.
type Config struct {
	// ClusterID is bound into the Noise prologue and the handshake MAC key:
	// endpoints of different clusters never complete a handshake. Required.
	ClusterID string
	// PrivateKey is this node's X25519 static private key. Required.
	PrivateKey Key
	// Clock returns the current time. Default time.Now.
	Clock func() time.Time
	// Rand supplies ephemeral keys, session indices and jitter. It is only
	// read under the Endpoint's control lock. Default crypto/rand.Reader.
	Rand io.Reader
	// Send transmits a packet. pkt is valid only during the call. Send is
	// called with the Endpoint's control lock held: it must not block for
	// long and must not call back into the Endpoint. Required.
	Send func(pkt []byte, to netip.AddrPort)
	// SendBatch, if set, transmits several data packets to one address at
	// once (Endpoint.SendBatch; udpconn.Conn.WriteBatch sends them with
	// sendmmsg and UDP GSO). The packets are valid only during the call; it
	// is called without the control lock. Nil: SendBatch calls Send per
	// packet.
	SendBatch func(pkts [][]byte, to netip.AddrPort)
	// Deliver receives decrypted payloads. payload aliases the buffer passed
	// to HandlePacket and is valid only during the call. May be nil.
	Deliver func(peer Key, payload []byte)
	// Authorize decides whether a remote static key may hold a channel (the
	// caller checks the signed peer directory and the revocation list). It
	// is called on every inbound initiation after the Noise message
	// authenticated, and before every outbound initiation. Required.
	Authorize func(remoteStatic []byte) error
	// Observer receives lifecycle events, synchronously and with the control
	// lock held: it must not block or call back into the Endpoint. May be nil.
	Observer func(Event)
	// IndexPrefix is the top byte of every session index this endpoint
	// allocates, so one socket can demultiplex several endpoints.
	IndexPrefix uint8
	// Timers are the rekey, reject, retry and keepalive limits.
	Timers Timers
	// PerSourceHandshakes limits initiations per source IP, checked before
	// any public-key work (default 20/s, burst 20).
	PerSourceHandshakes RateLimit
	// PerPeerHandshakes limits initiations per remote static key, checked
	// after the Noise message authenticated (default 2/s, burst 10).
	PerPeerHandshakes RateLimit
	// GlobalHandshakes bounds the total initiation processing rate, so a
	// flood from many spoofed sources stays CPU-bounded (default 2000/s,
	// burst 2000).
	GlobalHandshakes RateLimit
	// MaxLimiterEntries bounds each limiter's table (default 4096).
	MaxLimiterEntries int
}

// DefaultConfig returns a Config with every default filled; the caller sets
// ClusterID, PrivateKey, Send, Deliver and Authorize.
func DefaultConfig() Config {
	return Config{
		Clock:               time.Now,
		Rand:                rand.Reader,
		Timers:              DefaultTimers(),
		PerSourceHandshakes: RateLimit{Rate: 20, Burst: 20},
		PerPeerHandshakes:   RateLimit{Rate: 2, Burst: 10},
		GlobalHandshakes:    RateLimit{Rate: 2000, Burst: 2000},
		MaxLimiterEntries:   4096,
	}
}

func (c *Config) fillDefaults() {
	d := DefaultConfig()
	if c.Clock == nil {
		c.Clock = d.Clock
	}
	if c.Rand == nil {
		c.Rand = d.Rand
	}
	t, dt := &c.Timers, d.Timers
	setDur := func(v *time.Duration, def time.Duration) {
		if *v == 0 {
			*v = def
		}
	}
	setDur(&t.RekeyAfterTime, dt.RekeyAfterTime)
	setDur(&t.RejectAfterTime, dt.RejectAfterTime)
	setDur(&t.RekeyTimeout, dt.RekeyTimeout)
	setDur(&t.MaxBackoff, dt.MaxBackoff)
	setDur(&t.RekeyAttemptTime, dt.RekeyAttemptTime)
	setDur(&t.KeepaliveTimeout, dt.KeepaliveTimeout)
	setDur(&t.PersistentKeepalive, dt.PersistentKeepalive)
	if t.RekeyAfterMessages == 0 {
		t.RekeyAfterMessages = dt.RekeyAfterMessages
	}
	if t.RejectAfterMessages == 0 {
		t.RejectAfterMessages = dt.RejectAfterMessages
	}
	if c.PerSourceHandshakes == (RateLimit{}) {
		c.PerSourceHandshakes = d.PerSourceHandshakes
	}
	if c.PerPeerHandshakes == (RateLimit{}) {
		c.PerPeerHandshakes = d.PerPeerHandshakes
	}
	if c.GlobalHandshakes == (RateLimit{}) {
		c.GlobalHandshakes = d.GlobalHandshakes
	}
	if c.MaxLimiterEntries == 0 {
		c.MaxLimiterEntries = d.MaxLimiterEntries
	}
}

// Validate reports every missing or conflicting field, naming them.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if c.ClusterID == "" {
		bad("ClusterID is empty")
	}
	if c.PrivateKey.IsZero() {
		bad("PrivateKey is zero")
	}
	if c.Send == nil {
		bad("Send is nil")
	}
	if c.Authorize == nil {
		bad("Authorize is nil")
	}
	if c.Clock == nil || c.Rand == nil {
		bad("Clock and Rand must be set (NewEndpoint fills them)")
	}
	t := c.Timers
	if t.RekeyAfterTime >= t.RejectAfterTime {
		bad("Timers.RekeyAfterTime (%v) must be below Timers.RejectAfterTime (%v)", t.RekeyAfterTime, t.RejectAfterTime)
	}
	if t.RekeyAfterMessages >= t.RejectAfterMessages {
		bad("Timers.RekeyAfterMessages must be below Timers.RejectAfterMessages")
	}
	if t.RejectAfterMessages > math.MaxUint64-(1<<13) {
		bad("Timers.RejectAfterMessages must leave headroom below 2^64")
	}
	if t.RekeyTimeout <= 0 || t.MaxBackoff < t.RekeyTimeout {
		bad("Timers.RekeyTimeout must be positive and Timers.MaxBackoff at least RekeyTimeout")
	}
	if t.KeepaliveTimeout <= 0 || t.RekeyAttemptTime <= 0 {
		bad("Timers.KeepaliveTimeout and Timers.RekeyAttemptTime must be positive")
	}
	for name, r := range map[string]RateLimit{"PerSourceHandshakes": c.PerSourceHandshakes, "PerPeerHandshakes": c.PerPeerHandshakes, "GlobalHandshakes": c.GlobalHandshakes} {
		if !r.unlimited() && (r.Rate <= 0 || r.Burst < 1) {
			bad("%s needs Rate > 0 and Burst >= 1", name)
		}
	}
	if c.MaxLimiterEntries < 1 {
		bad("MaxLimiterEntries must be positive")
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrConfig, errors.Join(errs...))
	}
	return nil
}
