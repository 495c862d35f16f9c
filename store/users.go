package store

// Platform admin accounts and their authentication state (migration
// 006_admin.sql). AdminStore implements the storage interfaces of the authn
// package (users, MFA, sessions, trusted devices, lockouts, step-up grants)
// with the atomic operations its contracts demand; see docs/admin-security.md §9.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rap-fabric/core/authn"
)

// Platform roles of an admin account.
const (
	RolePlatformOwner = "platform_owner"
	RolePlatformAdmin = "platform_admin"
	RoleNone          = "none"
)

// SecretSealer protects TOTP secrets at rest (fsm.Sealer satisfies it).
type SecretSealer interface {
	Seal(plaintext, additionalData []byte) ([]byte, error)
	Open(sealed, additionalData []byte) ([]byte, error)
}

// AdminUser is one platform admin account.
type AdminUser struct {
	ID             string     `json:"id"`
	Name           string     `json:"name"`
	Role           string     `json:"role"`
	OrganizationID *string    `json:"organization_id,omitempty"`
	Disabled       bool       `json:"disabled"`
	MFAEnrolled    bool       `json:"mfa_enrolled"`
	SetupPending   bool       `json:"setup_pending"`
	CreatedAt      time.Time  `json:"created_at"`
	EnrolledAt     *time.Time `json:"mfa_enrolled_at,omitempty"`
	PasswordHash   string     `json:"-"`

	// OrgRole is org_admin or org_member for organization accounts (nil for
	// platform accounts).
	OrgRole *string `json:"org_role,omitempty"`
}

// Organization reports whether the account is an organization account.
func (u AdminUser) Organization() bool { return u.OrganizationID != nil && u.OrgRole != nil }

// Platform reports whether the account holds a platform role.
func (u AdminUser) Platform() bool {
	return u.Role == RolePlatformOwner || u.Role == RolePlatformAdmin
}

// AdminStore is the PostgreSQL implementation of the authn store interfaces.
type AdminStore struct {
	db     *DB
	sealer SecretSealer
}

// NewAdminStore returns the admin store over db; sealer protects TOTP secrets.
func NewAdminStore(db *DB, sealer SecretSealer) *AdminStore {
	return &AdminStore{db: db, sealer: sealer}
}

var (
	_ authn.UserStore    = (*AdminStore)(nil)
	_ authn.MFAStore     = (*AdminStore)(nil)
	_ authn.SessionStore = (*AdminStore)(nil)
	_ authn.DeviceStore  = (*AdminStore)(nil)
	_ authn.LockoutStore = (*AdminStore)(nil)
	_ authn.StepUpStore  = (*AdminStore)(nil)
)

const adminUserCols = `u.id::text, u.name, u.platform_role, u.organization_id::text, u.org_role, u.disabled, u.password_hash, u.created_at,
	(m.sealed_secret IS NOT NULL), m.enrolled_at, (u.setup_secret_hash IS NOT NULL)`

func scanAdminUser(row scanner) (AdminUser, error) {
	var u AdminUser
	err := row.Scan(&u.ID, &u.Name, &u.Role, &u.OrganizationID, &u.OrgRole, &u.Disabled, &u.PasswordHash, &u.CreatedAt, &u.MFAEnrolled, &u.EnrolledAt, &u.SetupPending)
	return u, mapErr(err)
}

// InsertAdminUser creates an account (inside the caller's transaction). The
// password hash may be empty (set during setup); setupHash is the SHA-256 of
// the one-time setup secret.
func InsertAdminUser(ctx context.Context, q Querier, id, name, role string, orgID *string, passwordHash string, setupHash []byte, setupExpires time.Time) error {
	var exp *time.Time
	if setupHash != nil {
		exp = &setupExpires
	}
	_, err := q.Exec(ctx, `INSERT INTO admin_users (id, name, platform_role, organization_id, password_hash, setup_secret_hash, setup_expires_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`, id, name, role, orgID, passwordHash, setupHash, exp)
	if err != nil {
		return mapErr(err)
	}
	_, err = q.Exec(ctx, `INSERT INTO admin_mfa (user_id) VALUES ($1)`, id)
	return mapErr(err)
}

// AdminUserByName returns the account with name.
func AdminUserByName(ctx context.Context, q Querier, name string) (AdminUser, error) {
	return scanAdminUser(q.QueryRow(ctx, `SELECT `+adminUserCols+` FROM admin_users u LEFT JOIN admin_mfa m ON m.user_id = u.id WHERE u.name = $1`, name))
}

// AdminUserByID returns the account with id.
func AdminUserByID(ctx context.Context, q Querier, id string) (AdminUser, error) {
	return scanAdminUser(q.QueryRow(ctx, `SELECT `+adminUserCols+` FROM admin_users u LEFT JOIN admin_mfa m ON m.user_id = u.id WHERE u.id = rap_uuid($1)`, id))
}

// ListAdminUsers lists accounts by name.
func ListAdminUsers(ctx context.Context, q Querier, p Page) ([]AdminUser, error) {
	l, o := p.norm()
	return collect(ctx, q, scanAdminUser, `SELECT `+adminUserCols+` FROM admin_users u LEFT JOIN admin_mfa m ON m.user_id = u.id ORDER BY u.name LIMIT $1 OFFSET $2`, l, o)
}

// CountAdminUsers counts accounts with role ("" for all).
func CountAdminUsers(ctx context.Context, q Querier, role string) (int, error) {
	var n int
	err := q.QueryRow(ctx, `SELECT count(*) FROM admin_users WHERE ($1 = '' OR platform_role = $1)`, role).Scan(&n)
	return n, mapErr(err)
}

// AnyOwnerHasMFA reports whether an enabled platform owner has a confirmed
// TOTP secret (from then on owner API tokens stop working).
func AnyOwnerHasMFA(ctx context.Context, q Querier) (bool, error) {
	var ok bool
	err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM admin_users u JOIN admin_mfa m ON m.user_id = u.id
		WHERE u.platform_role = 'platform_owner' AND NOT u.disabled AND m.sealed_secret IS NOT NULL)`).Scan(&ok)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P01" {
		// The account tables (006_admin.sql) do not exist yet, so no owner
		// can have MFA: owner API tokens still work, as before accounts.
		return false, nil
	}
	return ok, mapErr(err)
}

// TakeSetupSecret checks the one-time setup secret hash of a user and, when it
// matches and has not expired, clears it (single use) and returns the user id.
func TakeSetupSecret(ctx context.Context, q Querier, name string, hash []byte, now time.Time) (string, error) {
	var id string
	err := q.QueryRow(ctx, `UPDATE admin_users SET setup_secret_hash = NULL, setup_expires_at = NULL, updated_at = now()
		WHERE name = $1 AND setup_secret_hash = $2 AND setup_expires_at > $3 AND NOT disabled RETURNING id::text`, name, hash, now).Scan(&id)
	return id, mapErr(err)
}

// CheckSetupSecret reports whether the setup secret hash matches without using it.
func CheckSetupSecret(ctx context.Context, q Querier, name string, hash []byte, now time.Time) (string, error) {
	var id string
	err := q.QueryRow(ctx, `SELECT id::text FROM admin_users WHERE name = $1 AND setup_secret_hash = $2 AND setup_expires_at > $3 AND NOT disabled`, name, hash, now).Scan(&id)
	return id, mapErr(err)
}

// SetAdminUserStatus enables or disables an account.
func SetAdminUserStatus(ctx context.Context, q Querier, id string, disabled bool) error {
	tag, err := q.Exec(ctx, `UPDATE admin_users SET disabled = $2, updated_at = now() WHERE id = $1`, id, disabled)
	if err == nil && tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return mapErr(err)
}

// SetPendingTOTP stores a sealed, not yet confirmed TOTP secret.
func (s *AdminStore) SetPendingTOTP(ctx context.Context, userID, secret string) error {
	sealed, err := s.sealer.Seal([]byte(secret), []byte("rap-totp\x00"+userID))
	if err != nil {
		return err
	}
	_, err = s.db.Pool.Exec(ctx, `UPDATE admin_mfa SET pending_secret = $2 WHERE user_id = $1`, userID, sealed)
	return mapErr(err)
}

// PendingTOTP returns the enrollment secret in progress.
func (s *AdminStore) PendingTOTP(ctx context.Context, userID string) (string, error) {
	var sealed []byte
	if err := s.db.Pool.QueryRow(ctx, `SELECT pending_secret FROM admin_mfa WHERE user_id = $1`, userID).Scan(&sealed); err != nil {
		return "", mapErr(err)
	}
	if sealed == nil {
		return "", ErrNotFound
	}
	p, err := s.sealer.Open(sealed, []byte("rap-totp\x00"+userID))
	return string(p), err
}

// --- authn.UserStore

// unusableHash is a well-formed Argon2id hash (default parameters) whose key is
// all zeros: finding a password for it is infeasible.
const unusableHash = "$argon2id$v=19$m=65536,t=1,p=2$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"

// UserByName implements authn.UserStore.
func (s *AdminStore) UserByName(ctx context.Context, name string) (authn.User, error) {
	u, err := AdminUserByName(ctx, s.db.Pool, name)
	if errors.Is(err, ErrNotFound) {
		return authn.User{}, authn.ErrNotFound
	}
	if err != nil {
		return authn.User{}, err
	}
	// An account whose setup is not finished has no usable password: it gets a
	// hash no password matches (same work as a real one) and counts as disabled.
	hash := u.PasswordHash
	if hash == "" {
		hash = unusableHash
	}
	// Organization accounts log in under the platform rules (second factor
	// always required, no login without an enrolled factor).
	return authn.User{ID: u.ID, Name: u.Name, PasswordHash: hash, Platform: u.Platform() || u.OrganizationID != nil, Disabled: u.Disabled || u.PasswordHash == ""}, nil
}

// SetPasswordHash implements authn.UserStore.
func (s *AdminStore) SetPasswordHash(ctx context.Context, userID, encoded string) error {
	_, err := s.db.Pool.Exec(ctx, `UPDATE admin_users SET password_hash = $2, updated_at = now() WHERE id = $1`, userID, encoded)
	return mapErr(err)
}

// --- authn.MFAStore

// TOTPSecret implements authn.MFAStore.
func (s *AdminStore) TOTPSecret(ctx context.Context, userID string) (string, error) {
	var sealed []byte
	err := s.db.Pool.QueryRow(ctx, `SELECT sealed_secret FROM admin_mfa WHERE user_id = $1`, userID).Scan(&sealed)
	if errNoRows(err) || (err == nil && sealed == nil) {
		return "", authn.ErrMFANotEnrolled
	}
	if err != nil {
		return "", mapErr(err)
	}
	p, err := s.sealer.Open(sealed, []byte("rap-totp\x00"+userID))
	if err != nil {
		return "", fmt.Errorf("store: opening TOTP secret: %w", err)
	}
	return string(p), nil
}

// SaveTOTP implements authn.MFAStore.
func (s *AdminStore) SaveTOTP(ctx context.Context, userID, secret string, lastStep int64) error {
	sealed, err := s.sealer.Seal([]byte(secret), []byte("rap-totp\x00"+userID))
	if err != nil {
		return err
	}
	_, err = s.db.Pool.Exec(ctx, `INSERT INTO admin_mfa (user_id, sealed_secret, last_step, enrolled_at) VALUES ($1, $2, $3, now())
		ON CONFLICT (user_id) DO UPDATE SET sealed_secret = $2, last_step = $3, enrolled_at = now(), pending_secret = NULL`, userID, sealed, lastStep)
	return mapErr(err)
}

// AdvanceTOTPStep implements authn.MFAStore (compare-and-set).
func (s *AdminStore) AdvanceTOTPStep(ctx context.Context, userID string, step int64) (bool, error) {
	tag, err := s.db.Pool.Exec(ctx, `UPDATE admin_mfa SET last_step = $2 WHERE user_id = $1 AND last_step < $2`, userID, step)
	if err != nil {
		return false, mapErr(err)
	}
	return tag.RowsAffected() == 1, nil
}

// ReplaceRecoveryCodes implements authn.MFAStore.
func (s *AdminStore) ReplaceRecoveryCodes(ctx context.Context, userID string, hashes []authn.TokenHash) error {
	return s.db.Tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM admin_recovery_codes WHERE user_id = $1`, userID); err != nil {
			return err
		}
		for _, h := range hashes {
			if _, err := tx.Exec(ctx, `INSERT INTO admin_recovery_codes (user_id, hash) VALUES ($1, $2)`, userID, h[:]); err != nil {
				return err
			}
		}
		return nil
	})
}

// ConsumeRecoveryCode implements authn.MFAStore (single use).
func (s *AdminStore) ConsumeRecoveryCode(ctx context.Context, userID string, h authn.TokenHash) (bool, error) {
	tag, err := s.db.Pool.Exec(ctx, `UPDATE admin_recovery_codes SET used_at = now() WHERE user_id = $1 AND hash = $2 AND used_at IS NULL`, userID, h[:])
	if err != nil {
		return false, mapErr(err)
	}
	return tag.RowsAffected() == 1, nil
}

// RecoveryCodesLeft counts the user's unused recovery codes.
func (s *AdminStore) RecoveryCodesLeft(ctx context.Context, userID string) (int, error) {
	var n int
	err := s.db.Pool.QueryRow(ctx, `SELECT count(*) FROM admin_recovery_codes WHERE user_id = $1 AND used_at IS NULL`, userID).Scan(&n)
	return n, mapErr(err)
}

// --- authn.SessionStore

func hashBytes(b []byte) authn.TokenHash {
	var h authn.TokenHash
	copy(h[:], b)
	return h
}

func zeroNil(h authn.TokenHash) []byte {
	if h.IsZero() {
		return nil
	}
	return h[:]
}

func prefixPtr(p netip.Prefix) *netip.Prefix {
	if !p.IsValid() {
		return nil
	}
	return &p
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// CreateSession implements authn.SessionStore.
func (s *AdminStore) CreateSession(ctx context.Context, x authn.Session) error {
	_, err := s.db.Pool.Exec(ctx, `INSERT INTO admin_sessions (id, user_id, created_at, last_seen_at, mfa_at, device_id, source_net, trusted, idle_timeout, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		x.ID[:], x.UserID, x.CreatedAt, x.LastSeenAt, timePtr(x.MFAAt), zeroNil(x.DeviceID), prefixPtr(x.SourceNet), x.Trusted, x.IdleTimeout, x.ExpiresAt)
	return mapErr(err)
}

// Session implements authn.SessionStore.
func (s *AdminStore) Session(ctx context.Context, id authn.TokenHash) (authn.Session, error) {
	var x authn.Session
	var sid, dev []byte
	var mfa *time.Time
	var src *netip.Prefix
	err := s.db.Pool.QueryRow(ctx, `SELECT id, user_id::text, created_at, last_seen_at, mfa_at, device_id, source_net, trusted, idle_timeout, expires_at
		FROM admin_sessions WHERE id = $1`, id[:]).Scan(&sid, &x.UserID, &x.CreatedAt, &x.LastSeenAt, &mfa, &dev, &src, &x.Trusted, &x.IdleTimeout, &x.ExpiresAt)
	if errNoRows(err) {
		return x, authn.ErrNotFound
	}
	if err != nil {
		return x, mapErr(err)
	}
	x.ID, x.DeviceID = hashBytes(sid), hashBytes(dev)
	if mfa != nil {
		x.MFAAt = *mfa
	}
	if src != nil {
		x.SourceNet = *src
	}
	return x, nil
}

// TouchSession implements authn.SessionStore.
func (s *AdminStore) TouchSession(ctx context.Context, id authn.TokenHash, at time.Time) error {
	_, err := s.db.Pool.Exec(ctx, `UPDATE admin_sessions SET last_seen_at = $2 WHERE id = $1 AND last_seen_at < $2`, id[:], at)
	return mapErr(err)
}

// DeleteSession implements authn.SessionStore.
func (s *AdminStore) DeleteSession(ctx context.Context, id authn.TokenHash) error {
	_, err := s.db.Pool.Exec(ctx, `DELETE FROM admin_sessions WHERE id = $1`, id[:])
	return mapErr(err)
}

// DeleteUserSessions implements authn.SessionStore.
func (s *AdminStore) DeleteUserSessions(ctx context.Context, userID string) (int, error) {
	tag, err := s.db.Pool.Exec(ctx, `DELETE FROM admin_sessions WHERE user_id = $1`, userID)
	if err != nil {
		return 0, mapErr(err)
	}
	return int(tag.RowsAffected()), nil
}

// --- authn.DeviceStore

const deviceCols = `id, user_id::text, label, created_at, last_used_at, expires_at, revoked_at, networks`

func scanDevice(row scanner) (authn.TrustedDevice, error) {
	var d authn.TrustedDevice
	var id []byte
	var rev *time.Time
	var nets []netip.Prefix
	if err := row.Scan(&id, &d.UserID, &d.Label, &d.CreatedAt, &d.LastUsedAt, &d.ExpiresAt, &rev, &nets); err != nil {
		if errNoRows(err) {
			return d, authn.ErrNotFound
		}
		return d, mapErr(err)
	}
	d.ID = hashBytes(id)
	if rev != nil {
		d.RevokedAt = *rev
	}
	d.Networks = nets
	return d, nil
}

// AddDevice implements authn.DeviceStore.
func (s *AdminStore) AddDevice(ctx context.Context, d authn.TrustedDevice) error {
	nets := d.Networks
	if nets == nil {
		nets = []netip.Prefix{}
	}
	_, err := s.db.Pool.Exec(ctx, `INSERT INTO admin_devices (id, user_id, label, created_at, last_used_at, expires_at, networks) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		d.ID[:], d.UserID, d.Label, d.CreatedAt, d.LastUsedAt, d.ExpiresAt, nets)
	return mapErr(err)
}

// Device implements authn.DeviceStore.
func (s *AdminStore) Device(ctx context.Context, id authn.TokenHash) (authn.TrustedDevice, error) {
	return scanDevice(s.db.Pool.QueryRow(ctx, `SELECT `+deviceCols+` FROM admin_devices WHERE id = $1`, id[:]))
}

// AddDeviceNetwork implements authn.DeviceStore (row lock, keep the newest max).
func (s *AdminStore) AddDeviceNetwork(ctx context.Context, id authn.TokenHash, n netip.Prefix, max int, at time.Time) error {
	return s.db.Tx(ctx, func(tx pgx.Tx) error {
		d, err := scanDevice(tx.QueryRow(ctx, `SELECT `+deviceCols+` FROM admin_devices WHERE id = $1 FOR UPDATE`, id[:]))
		if err != nil {
			return err
		}
		nets := d.Networks
		if !d.HasNetwork(n) && n.IsValid() {
			nets = append(nets, n)
		}
		if len(nets) > max {
			nets = nets[len(nets)-max:]
		}
		_, err = tx.Exec(ctx, `UPDATE admin_devices SET networks = $2, last_used_at = $3 WHERE id = $1`, id[:], nets, at)
		return err
	})
}

// RevokeDevice implements authn.DeviceStore.
func (s *AdminStore) RevokeDevice(ctx context.Context, userID string, id authn.TokenHash, at time.Time) error {
	tag, err := s.db.Pool.Exec(ctx, `UPDATE admin_devices SET revoked_at = COALESCE(revoked_at, $3) WHERE id = $1 AND user_id = $2`, id[:], userID, at)
	if err != nil {
		return mapErr(err)
	}
	if tag.RowsAffected() == 0 {
		return authn.ErrNotFound
	}
	return nil
}

// RevokeUserDevices implements authn.DeviceStore.
func (s *AdminStore) RevokeUserDevices(ctx context.Context, userID string, at time.Time) error {
	_, err := s.db.Pool.Exec(ctx, `UPDATE admin_devices SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL`, userID, at)
	return mapErr(err)
}

// UserDevices implements authn.DeviceStore.
func (s *AdminStore) UserDevices(ctx context.Context, userID string) ([]authn.TrustedDevice, error) {
	return collect(ctx, s.db.Pool, scanDevice, `SELECT `+deviceCols+` FROM admin_devices WHERE user_id = $1 ORDER BY created_at`, userID)
}

// --- authn.LockoutStore

// Lockout implements authn.LockoutStore.
func (s *AdminStore) Lockout(ctx context.Context, key string) (authn.LockoutState, error) {
	var st authn.LockoutState
	var raw []byte
	err := s.db.Pool.QueryRow(ctx, `SELECT state FROM admin_lockouts WHERE key = $1`, key).Scan(&raw)
	if errNoRows(err) {
		return st, nil
	}
	if err != nil {
		return st, mapErr(err)
	}
	return st, json.Unmarshal(raw, &st)
}

// UpdateLockout implements authn.LockoutStore (row lock + upsert in one transaction).
func (s *AdminStore) UpdateLockout(ctx context.Context, key string, fn func(authn.LockoutState) authn.LockoutState) (authn.LockoutState, error) {
	var out authn.LockoutState
	err := s.db.Tx(ctx, func(tx pgx.Tx) error {
		// Make sure the row exists so FOR UPDATE has something to lock.
		if _, err := tx.Exec(ctx, `INSERT INTO admin_lockouts (key, state) VALUES ($1, '{}') ON CONFLICT (key) DO NOTHING`, key); err != nil {
			return err
		}
		var raw []byte
		if err := tx.QueryRow(ctx, `SELECT state FROM admin_lockouts WHERE key = $1 FOR UPDATE`, key).Scan(&raw); err != nil {
			return err
		}
		var cur authn.LockoutState
		if err := json.Unmarshal(raw, &cur); err != nil {
			return err
		}
		out = fn(cur)
		b, err := json.Marshal(out)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE admin_lockouts SET state = $2, updated_at = now() WHERE key = $1`, key, b)
		return err
	})
	return out, err
}

// ClearLockout implements authn.LockoutStore.
func (s *AdminStore) ClearLockout(ctx context.Context, key string) error {
	_, err := s.db.Pool.Exec(ctx, `DELETE FROM admin_lockouts WHERE key = $1`, key)
	return mapErr(err)
}

// --- authn.StepUpStore

// PutStepUp implements authn.StepUpStore.
func (s *AdminStore) PutStepUp(ctx context.Context, g authn.StepUpGrant) error {
	_, err := s.db.Pool.Exec(ctx, `INSERT INTO admin_step_up_grants (session_id, action, target, user_id, issued_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (session_id, action, target) DO UPDATE SET user_id = $4, issued_at = $5, expires_at = $6`,
		g.SessionID[:], string(g.Action), g.Target, g.UserID, g.IssuedAt, g.ExpiresAt)
	if err != nil {
		return mapErr(err)
	}
	_, err = s.db.Pool.Exec(ctx, `DELETE FROM admin_step_up_grants WHERE expires_at < $1`, g.IssuedAt.Add(-time.Hour))
	return mapErr(err)
}

// TakeStepUp implements authn.StepUpStore (DELETE … RETURNING: single use).
func (s *AdminStore) TakeStepUp(ctx context.Context, session authn.TokenHash, action authn.Action, target string) (authn.StepUpGrant, error) {
	var g authn.StepUpGrant
	var sid []byte
	var act string
	err := s.db.Pool.QueryRow(ctx, `DELETE FROM admin_step_up_grants WHERE session_id = $1 AND action = $2 AND target = $3
		RETURNING session_id, action, target, user_id::text, issued_at, expires_at`, session[:], string(action), target).
		Scan(&sid, &act, &g.Target, &g.UserID, &g.IssuedAt, &g.ExpiresAt)
	if errNoRows(err) {
		return g, authn.ErrNotFound
	}
	if err != nil {
		return g, mapErr(err)
	}
	g.SessionID, g.Action = hashBytes(sid), authn.Action(act)
	return g, nil
}

// DeleteSessionStepUps implements authn.StepUpStore.
func (s *AdminStore) DeleteSessionStepUps(ctx context.Context, session authn.TokenHash) error {
	_, err := s.db.Pool.Exec(ctx, `DELETE FROM admin_step_up_grants WHERE session_id = $1`, session[:])
	return mapErr(err)
}
