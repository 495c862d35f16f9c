package authn

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// MemStore implements UserStore, MFAStore, SessionStore, DeviceStore,
// LockoutStore and StepUpStore in memory, with the same atomicity the
// interfaces demand (one mutex). It is meant for tests and single-process
// development; state is lost on exit. Returned values are copies.
type MemStore struct {
	mu        sync.Mutex
	users     map[string]User // by name
	mfa       map[string]*memMFA
	sessions  map[TokenHash]Session
	devices   map[TokenHash]TrustedDevice
	lockouts  map[string]LockoutState
	stepups   map[stepKey]StepUpGrant
	stepClock func() time.Time
}

type memMFA struct {
	secret   string
	lastStep int64
	recovery map[TokenHash]bool // hash -> used
}

type stepKey struct {
	session TokenHash
	action  Action
	target  string
}

// NewMemStore returns an empty store. now, if not nil, is used to drop expired
// step-up grants opportunistically in PutStepUp.
func NewMemStore(now func() time.Time) *MemStore {
	return &MemStore{
		users: map[string]User{}, mfa: map[string]*memMFA{}, sessions: map[TokenHash]Session{},
		devices: map[TokenHash]TrustedDevice{}, lockouts: map[string]LockoutState{},
		stepups: map[stepKey]StepUpGrant{}, stepClock: now,
	}
}

// PutUser inserts or replaces a user (keyed by Name).
func (m *MemStore) PutUser(u User) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.users[u.Name] = u
}

// UserByName implements UserStore.
func (m *MemStore) UserByName(_ context.Context, name string) (User, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	u, ok := m.users[name]
	if !ok {
		return User{}, fmt.Errorf("user %q: %w", name, ErrNotFound)
	}
	return u, nil
}

// SetPasswordHash implements UserStore.
func (m *MemStore) SetPasswordHash(_ context.Context, userID, encoded string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for n, u := range m.users {
		if u.ID == userID {
			u.PasswordHash = encoded
			m.users[n] = u
			return nil
		}
	}
	return fmt.Errorf("user id %q: %w", userID, ErrNotFound)
}

// TOTPSecret implements MFAStore.
func (m *MemStore) TOTPSecret(_ context.Context, userID string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.mfa[userID]
	if !ok || r.secret == "" {
		return "", ErrMFANotEnrolled
	}
	return r.secret, nil
}

func (m *MemStore) mfaLocked(userID string) *memMFA {
	r, ok := m.mfa[userID]
	if !ok {
		r = &memMFA{recovery: map[TokenHash]bool{}}
		m.mfa[userID] = r
	}
	return r
}

// SaveTOTP implements MFAStore.
func (m *MemStore) SaveTOTP(_ context.Context, userID, secret string, lastStep int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.mfaLocked(userID)
	r.secret, r.lastStep = secret, lastStep
	return nil
}

// AdvanceTOTPStep implements MFAStore.
func (m *MemStore) AdvanceTOTPStep(_ context.Context, userID string, step int64) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.mfa[userID]
	if !ok || r.secret == "" {
		return false, ErrMFANotEnrolled
	}
	if step <= r.lastStep {
		return false, nil
	}
	r.lastStep = step
	return true, nil
}

// ReplaceRecoveryCodes implements MFAStore.
func (m *MemStore) ReplaceRecoveryCodes(_ context.Context, userID string, hashes []TokenHash) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.mfaLocked(userID)
	r.recovery = make(map[TokenHash]bool, len(hashes))
	for _, h := range hashes {
		r.recovery[h] = false
	}
	return nil
}

// ConsumeRecoveryCode implements MFAStore.
func (m *MemStore) ConsumeRecoveryCode(_ context.Context, userID string, h TokenHash) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.mfa[userID]
	if !ok {
		return false, nil
	}
	used, exists := r.recovery[h]
	if !exists || used {
		return false, nil
	}
	r.recovery[h] = true
	return true, nil
}

// CreateSession implements SessionStore.
func (m *MemStore) CreateSession(_ context.Context, s Session) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, dup := m.sessions[s.ID]; dup {
		return fmt.Errorf("authn: duplicate session id")
	}
	m.sessions[s.ID] = s
	return nil
}

// Session implements SessionStore.
func (m *MemStore) Session(_ context.Context, id TokenHash) (Session, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.sessions[id]
	if !ok {
		return Session{}, ErrNotFound
	}
	return s, nil
}

// TouchSession implements SessionStore.
func (m *MemStore) TouchSession(_ context.Context, id TokenHash, at time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s, ok := m.sessions[id]; ok && at.After(s.LastSeenAt) {
		s.LastSeenAt = at
		m.sessions[id] = s
	}
	return nil
}

// DeleteSession implements SessionStore.
func (m *MemStore) DeleteSession(_ context.Context, id TokenHash) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.sessions, id)
	return nil
}

// DeleteUserSessions implements SessionStore.
func (m *MemStore) DeleteUserSessions(_ context.Context, userID string) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for id, s := range m.sessions {
		if s.UserID == userID {
			delete(m.sessions, id)
			n++
		}
	}
	return n, nil
}

func cloneDevice(d TrustedDevice) TrustedDevice {
	d.Networks = slices.Clone(d.Networks)
	return d
}

// AddDevice implements DeviceStore.
func (m *MemStore) AddDevice(_ context.Context, d TrustedDevice) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, dup := m.devices[d.ID]; dup {
		return fmt.Errorf("authn: duplicate device id")
	}
	m.devices[d.ID] = cloneDevice(d)
	return nil
}

// Device implements DeviceStore.
func (m *MemStore) Device(_ context.Context, id TokenHash) (TrustedDevice, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, ok := m.devices[id]
	if !ok {
		return TrustedDevice{}, ErrNotFound
	}
	return cloneDevice(d), nil
}

// AddDeviceNetwork implements DeviceStore.
func (m *MemStore) AddDeviceNetwork(_ context.Context, id TokenHash, net netip.Prefix, max int, at time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, ok := m.devices[id]
	if !ok {
		return ErrNotFound
	}
	if net.IsValid() && !slices.Contains(d.Networks, net) {
		d.Networks = append(d.Networks, net)
		if len(d.Networks) > max {
			d.Networks = slices.Clone(d.Networks[len(d.Networks)-max:])
		}
	}
	d.LastUsedAt = at
	m.devices[id] = d
	return nil
}

// RevokeDevice implements DeviceStore.
func (m *MemStore) RevokeDevice(_ context.Context, userID string, id TokenHash, at time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, ok := m.devices[id]
	if !ok || d.UserID != userID {
		return ErrNotFound
	}
	if d.RevokedAt.IsZero() {
		d.RevokedAt = at
		m.devices[id] = d
	}
	return nil
}

// RevokeUserDevices implements DeviceStore.
func (m *MemStore) RevokeUserDevices(_ context.Context, userID string, at time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for id, d := range m.devices {
		if d.UserID == userID && d.RevokedAt.IsZero() {
			d.RevokedAt = at
			m.devices[id] = d
		}
	}
	return nil
}

// UserDevices implements DeviceStore.
func (m *MemStore) UserDevices(_ context.Context, userID string) ([]TrustedDevice, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []TrustedDevice
	for _, d := range m.devices {
		if d.UserID == userID {
			out = append(out, cloneDevice(d))
		}
	}
	slices.SortFunc(out, func(a, b TrustedDevice) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return out, nil
}

// Lockout implements LockoutStore.
func (m *MemStore) Lockout(_ context.Context, key string) (LockoutState, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lockouts[key], nil
}

// UpdateLockout implements LockoutStore.
func (m *MemStore) UpdateLockout(_ context.Context, key string, fn func(LockoutState) LockoutState) (LockoutState, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := fn(m.lockouts[key])
	m.lockouts[key] = s
	return s, nil
}

// ClearLockout implements LockoutStore.
func (m *MemStore) ClearLockout(_ context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.lockouts, key)
	return nil
}

// PutStepUp implements StepUpStore.
func (m *MemStore) PutStepUp(_ context.Context, g StepUpGrant) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stepClock != nil {
		now := m.stepClock()
		for k, old := range m.stepups {
			if !now.Before(old.ExpiresAt) {
				delete(m.stepups, k)
			}
		}
	}
	m.stepups[stepKey{g.SessionID, g.Action, g.Target}] = g
	return nil
}

// TakeStepUp implements StepUpStore.
func (m *MemStore) TakeStepUp(_ context.Context, session TokenHash, action Action, target string) (StepUpGrant, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := stepKey{session, action, target}
	g, ok := m.stepups[k]
	if !ok {
		return StepUpGrant{}, ErrNotFound
	}
	delete(m.stepups, k)
	return g, nil
}

// DeleteSessionStepUps implements StepUpStore.
func (m *MemStore) DeleteSessionStepUps(_ context.Context, session TokenHash) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k := range m.stepups {
		if k.session == session {
			delete(m.stepups, k)
		}
	}
	return nil
}

// Compile-time checks that MemStore satisfies every store interface.
var (
	_ UserStore    = (*MemStore)(nil)
	_ MFAStore     = (*MemStore)(nil)
	_ SessionStore = (*MemStore)(nil)
	_ DeviceStore  = (*MemStore)(nil)
	_ LockoutStore = (*MemStore)(nil)
	_ StepUpStore  = (*MemStore)(nil)
)
