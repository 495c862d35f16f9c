package authn

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// SourceNetwork returns the network a source address is judged by: the /24 for
// IPv4 (IPv4-mapped IPv6 is unmapped first) and the /64 for IPv6. Zones are
// dropped. An invalid address yields the zero Prefix.
func SourceNetwork(a netip.Addr) netip.Prefix {
	if !a.IsValid() {
		return netip.Prefix{}
	}
	a = a.Unmap().WithZone("")
	bits := 64
	if a.Is4() {
		bits = 24
	}
	p, _ := a.Prefix(bits)
	return p
}

// TrustedDevice is a browser that completed MFA and was registered by its user
// as trusted. The device holds a random token in a cookie; ID is its hash.
type TrustedDevice struct {
	ID         TokenHash
	UserID     string         // the only user the device is trusted for
	Label      string         // user-chosen name, for listing and revocation
	CreatedAt  time.Time      //
	LastUsedAt time.Time      // last login that presented the device
	ExpiresAt  time.Time      // trust ends here even if never revoked
	RevokedAt  time.Time      // zero: not revoked
	Networks   []netip.Prefix // source networks that completed MFA with this device, oldest first
}

// HasNetwork reports whether p is one of the device's known networks.
func (d TrustedDevice) HasNetwork(p netip.Prefix) bool { return slices.Contains(d.Networks, p) }

// activeFor reports whether d may be treated as trusted for userID at now.
func (d TrustedDevice) activeFor(userID string, now time.Time) bool {
	return d.UserID == userID && d.RevokedAt.IsZero() && now.Before(d.ExpiresAt)
}

// DeviceStore persists trusted devices. Implementations must be safe for
// concurrent use.
type DeviceStore interface {
	// AddDevice inserts d.
	AddDevice(ctx context.Context, d TrustedDevice) error
	// Device returns the device with id or an error wrapping ErrNotFound.
	Device(ctx context.Context, id TokenHash) (TrustedDevice, error)
	// AddDeviceNetwork appends net to the device's networks if absent, keeping
	// at most max (dropping the oldest), and sets LastUsedAt to at.
	AddDeviceNetwork(ctx context.Context, id TokenHash, net netip.Prefix, max int, at time.Time) error
	// RevokeDevice sets RevokedAt on one device of userID (ErrNotFound if the
	// device does not exist or belongs to someone else).
	RevokeDevice(ctx context.Context, userID string, id TokenHash, at time.Time) error
	// RevokeUserDevices revokes every device of userID.
	RevokeUserDevices(ctx context.Context, userID string, at time.Time) error
	// UserDevices lists userID's devices, revoked ones included.
	UserDevices(ctx context.Context, userID string) ([]TrustedDevice, error)
}

// DevicesOptions configures NewDevices.
type DevicesOptions struct {
	Store       DeviceStore   // required
	Clock       Clock         // nil: SystemClock
	Rand        io.Reader     // nil: crypto/rand
	TTL         time.Duration // trust lifetime; 0: 30 days
	MaxNetworks int           // known networks remembered per device; 0: 8
}

// Devices registers, looks up and revokes trusted devices.
type Devices struct {
	store  DeviceStore
	clock  Clock
	rand   io.Reader
	ttl    time.Duration
	maxNet int
}

// NewDevices validates opts and returns a device registry.
func NewDevices(opts DevicesOptions) (*Devices, error) {
	if opts.Store == nil {
		return nil, fmt.Errorf("%w: device store is nil", ErrInvalidConfig)
	}
	if opts.Clock == nil {
		opts.Clock = SystemClock()
	}
	if opts.Rand == nil {
		opts.Rand = rand.Reader
	}
	if opts.TTL == 0 {
		opts.TTL = 30 * 24 * time.Hour
	}
	if opts.MaxNetworks == 0 {
		opts.MaxNetworks = 8
	}
	if opts.TTL < 0 || opts.MaxNetworks < 1 {
		return nil, fmt.Errorf("%w: device TTL and MaxNetworks must be positive", ErrInvalidConfig)
	}
	return &Devices{store: opts.Store, clock: opts.Clock, rand: opts.Rand, ttl: opts.TTL, maxNet: opts.MaxNetworks}, nil
}

// Register marks the caller's browser as trusted for userID and returns the
// device token to set as a cookie. Call it only within a session whose second
// factor was just verified (Session.MFAFresh); the login network becomes the
// device's first known network.
func (d *Devices) Register(ctx context.Context, userID, label string, source netip.Addr) (string, TrustedDevice, error) {
	tok, id, err := NewToken(d.rand, TokenDevice)
	if err != nil {
		return "", TrustedDevice{}, err
	}
	now := d.clock.Now()
	dev := TrustedDevice{ID: id, UserID: userID, Label: label, CreatedAt: now, LastUsedAt: now, ExpiresAt: now.Add(d.ttl)}
	if n := SourceNetwork(source); n.IsValid() {
		dev.Networks = []netip.Prefix{n}
	}
	if err := d.store.AddDevice(ctx, dev); err != nil {
		return "", TrustedDevice{}, fmt.Errorf("authn: storing device: %w", err)
	}
	return tok, dev, nil
}

// Lookup returns the trusted device behind token if it exists, belongs to
// userID, is not revoked and not expired; otherwise nil (an unknown device).
// Only store failures are errors: a bad device cookie never blocks a login, it
// only removes the trust.
func (d *Devices) Lookup(ctx context.Context, token, userID string) (*TrustedDevice, error) {
	if token == "" {
		return nil, nil
	}
	id, err := ParseToken(TokenDevice, token)
	if err != nil {
		return nil, nil
	}
	dev, err := d.store.Device(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("authn: loading device: %w", err)
	}
	if !dev.activeFor(userID, d.clock.Now()) {
		return nil, nil
	}
	return &dev, nil
}

// Remember records that the device completed MFA from source's network.
func (d *Devices) Remember(ctx context.Context, id TokenHash, source netip.Addr) error {
	return d.store.AddDeviceNetwork(ctx, id, SourceNetwork(source), d.maxNet, d.clock.Now())
}

// Revoke ends trust in one of userID's devices.
func (d *Devices) Revoke(ctx context.Context, userID string, id TokenHash) error {
	return d.store.RevokeDevice(ctx, userID, id, d.clock.Now())
}

// RevokeAll ends trust in all of userID's devices (MFA reset, compromise).
func (d *Devices) RevokeAll(ctx context.Context, userID string) error {
	return d.store.RevokeUserDevices(ctx, userID, d.clock.Now())
}

// List returns userID's devices.
func (d *Devices) List(ctx context.Context, userID string) ([]TrustedDevice, error) {
	return d.store.UserDevices(ctx, userID)
}

// RiskInput is what the login risk decision looks at.
type RiskInput struct {
	Platform    bool           // user holds a platform role (owner/admin)
	MFAEnrolled bool           // user has a confirmed TOTP secret
	Device      *TrustedDevice // from Devices.Lookup; nil: unknown device
	Source      netip.Addr     // login address
}

// Decision is the outcome of AssessLogin.
type Decision struct {
	SecondFactor       bool     // the login must present a TOTP or recovery code
	EnrollmentRequired bool     // policy needs MFA but the user has none: refuse
	DeviceTrusted      bool     // an active trusted device of this user was presented
	KnownNetwork       bool     // the device has completed MFA from this /24 or /64 before
	Reasons            []string // short tokens for the audit risk map
}

// Trusted reports whether the login counts as low-risk: trusted device on a
// known network. It selects the longer session limits; it never removes the
// second factor for platform roles.
func (d Decision) Trusted() bool { return d.DeviceTrusted && d.KnownNetwork }

// RiskMap renders the decision for an audit event's risk field.
func (d Decision) RiskMap() map[string]string {
	m := map[string]string{
		"device":  "unknown",
		"network": "new",
		"mfa":     "not-required",
	}
	if d.DeviceTrusted {
		m["device"] = "trusted"
	}
	if d.KnownNetwork {
		m["network"] = "known"
	}
	if d.SecondFactor {
		m["mfa"] = "required"
	}
	if len(d.Reasons) > 0 {
		m["reasons"] = strings.Join(d.Reasons, ",")
	}
	return m
}

// AssessLogin decides how much a login must prove (see docs/admin-security.md):
//
//   - platform roles: the second factor is always required; without an enrolled
//     factor the login is refused (EnrollmentRequired);
//   - other users with MFA enrolled: the second factor is required unless a
//     trusted device is presented from one of its known networks;
//   - an unknown device or a new source network never lowers the requirement.
//
// Trust only ever relaxes friction (session length, non-platform MFA); it
// never relaxes step-up for high-risk actions.
func AssessLogin(in RiskInput) Decision {
	var d Decision
	if in.Device != nil {
		d.DeviceTrusted = true
		d.KnownNetwork = in.Device.HasNetwork(SourceNetwork(in.Source))
		if !d.KnownNetwork {
			d.Reasons = append(d.Reasons, "new-network")
		}
	} else {
		d.Reasons = append(d.Reasons, "unknown-device")
	}
	switch {
	case in.Platform && !in.MFAEnrolled:
		d.EnrollmentRequired = true
		d.Reasons = append(d.Reasons, "platform-role-without-mfa")
	case in.Platform:
		d.SecondFactor = true
		d.Reasons = append(d.Reasons, "platform-role")
	case in.MFAEnrolled && !d.Trusted():
		d.SecondFactor = true
	}
	return d
}
