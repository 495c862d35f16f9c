package authority

// Platform admin accounts and their security (docs/admin-security.md): the
// authority wires the authn components (Argon2id, TOTP, recovery codes,
// sessions, trusted devices, login limiter, step-up) to the PostgreSQL admin
// store and writes every login, step-up and refusal to the hash-chained audit
// log with its risk signals.

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"io"
	"net/netip"
	"regexp"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rap-fabric/core/authn"
	"github.com/rap-fabric/core/store"
)

// AdminOptions tune the admin security components. Zero values take the
// defaults of the authn package.
type AdminOptions struct {
	// Argon2 parameters for new password hashes; zero: authn.DefaultArgon2Params.
	Argon2 authn.Argon2Params
	// Sessions lifetimes; zero: authn.DefaultSessionConfig.
	Sessions authn.SessionConfig
	// Limiter config; zero: authn.DefaultLimiterConfig.
	Limiter authn.LimiterConfig
	// StepUpTTL is the lifetime of a step-up grant; 0: 5 min.
	StepUpTTL time.Duration
	// SetupTTL is how long a one-time setup secret stays valid; 0: 72 h.
	SetupTTL time.Duration
	// DeviceTrustWindow is how recent the second factor must be to mark a
	// device trusted; 0: 10 min.
	DeviceTrustWindow time.Duration
	// Clock drives TOTP, sessions, lockouts and grants; nil: the authority's clock.
	Clock func() time.Time
}

// Admin is the platform admin security service of one authority process.
type Admin struct {
	a        *Authority
	opts     AdminOptions
	Store    *store.AdminStore
	Hasher   *authn.PasswordHasher
	MFA      *authn.MFA
	Devices  *authn.Devices
	Sessions *authn.Sessions
	Limiter  *authn.LoginLimiter
	Login    *authn.Authenticator
	StepUp   *authn.StepUp
	// CSRFKey keys the session-bound CSRF tokens of this process.
	CSRFKey []byte
}

type authnClock struct{ now func() time.Time }

func (c authnClock) Now() time.Time { return c.now() }

// newAdmin builds the admin service of a (New calls it with Config.Admin).
func newAdmin(a *Authority, o AdminOptions) (*Admin, error) {
	if o.SetupTTL == 0 {
		o.SetupTTL = 72 * time.Hour
	}
	if o.DeviceTrustWindow == 0 {
		o.DeviceTrustWindow = 10 * time.Minute
	}
	if o.Clock == nil {
		o.Clock = a.cfg.Clock
	}
	clock := authnClock{now: o.Clock}
	st := store.NewAdminStore(a.db, a.cfg.Sealer)
	ad := &Admin{a: a, opts: o, Store: st}
	var err error
	if ad.Hasher, err = authn.NewPasswordHasher(authn.PasswordHasherOptions{Params: o.Argon2, Rand: a.cfg.Rand}); err != nil {
		return nil, err
	}
	if ad.MFA, err = authn.NewMFA(authn.MFAOptions{Store: st, Clock: clock, Rand: a.cfg.Rand}); err != nil {
		return nil, err
	}
	if ad.Devices, err = authn.NewDevices(authn.DevicesOptions{Store: st, Clock: clock, Rand: a.cfg.Rand}); err != nil {
		return nil, err
	}
	if ad.Sessions, err = authn.NewSessions(authn.SessionsOptions{Config: o.Sessions, Store: st, Clock: clock, Rand: a.cfg.Rand}); err != nil {
		return nil, err
	}
	if ad.Limiter, err = authn.NewLoginLimiter(authn.LimiterOptions{Config: o.Limiter, Store: st, Clock: clock}); err != nil {
		return nil, err
	}
	if ad.Login, err = authn.NewAuthenticator(authn.AuthenticatorOptions{Users: st, Hasher: ad.Hasher, MFA: ad.MFA, Devices: ad.Devices,
		Sessions: ad.Sessions, Limiter: ad.Limiter, Clock: clock}); err != nil {
		return nil, err
	}
	if ad.StepUp, err = authn.NewStepUp(authn.StepUpOptions{Verifier: ad.MFA, Store: st, Lockouts: st, Clock: clock, TTL: o.StepUpTTL}); err != nil {
		return nil, err
	}
	ad.CSRFKey = make([]byte, 32)
	if _, err := io.ReadFull(rand.Reader, ad.CSRFKey); err != nil {
		return nil, err
	}
	return ad, nil
}

// Now returns the admin clock.
func (ad *Admin) Now() time.Time { return ad.opts.Clock() }

var userNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._@-]{0,63}$`)

func setupHash(secret string) []byte {
	h := sha256.Sum256([]byte("rap-admin-setup-v1\x00" + secret))
	return h[:]
}

func (ad *Admin) newSetupSecret() (string, error) {
	b := make([]byte, 24)
	if _, err := io.ReadFull(ad.a.cfg.Rand, b); err != nil {
		return "", err
	}
	return "raps_setup_" + base64.RawURLEncoding.EncodeToString(b), nil
}

// AuditRisk appends an audit event that carries risk signals (logins,
// step-ups, refused high-risk attempts) in its own transaction.
func (a *Authority) AuditRisk(ctx context.Context, op Op, outcome string, risk map[string]string) error {
	var rm map[string]any
	if len(risk) > 0 {
		rm = map[string]any{}
		for k, v := range risk {
			rm[k] = v
		}
	}
	return a.db.Tx(ctx, func(tx pgx.Tx) error { return a.appendAudit(ctx, tx, op, outcome, 0, rm) })
}

// BootstrapOwner creates the first platform owner and returns a one-time setup
// secret (valid SetupTTL) with which the owner sets a password and enrolls TOTP.
// It refuses once any platform owner exists. It writes the database directly
// (the account tables are not fenced), so `rap-authority bootstrap-owner` works
// before the group runs; the event is audited.
func (ad *Admin) BootstrapOwner(ctx context.Context, name string) (AdminAccount, string, error) {
	if !userNameRE.MatchString(name) {
		return AdminAccount{}, "", Errf(CodeInvalid, "user name must match %s", userNameRE)
	}
	secret, err := ad.newSetupSecret()
	if err != nil {
		return AdminAccount{}, "", err
	}
	id := store.NewID()
	err = ad.a.db.Tx(ctx, func(tx pgx.Tx) error {
		// Serialize bootstrap attempts.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(1380012103)`); err != nil {
			return err
		}
		n, err := store.CountAdminUsers(ctx, tx, store.RolePlatformOwner)
		if err != nil {
			return err
		}
		if n > 0 {
			return Errf(CodeConflict, "a platform owner already exists; owners add further accounts in the console")
		}
		if err := store.InsertAdminUser(ctx, tx, id, name, store.RolePlatformOwner, nil, "", setupHash(secret), ad.Now().Add(ad.opts.SetupTTL)); err != nil {
			return err
		}
		return ad.a.appendAudit(ctx, tx, Op{Action: "user.bootstrap_owner", Actor: Actor{ID: "system", Kind: "system"}, TargetKind: "user", TargetID: id,
			Details: map[string]any{"name": name}}, "ok", 0, nil)
	})
	if err != nil {
		return AdminAccount{}, "", adminErr(err)
	}
	u, err := ad.User(ctx, id)
	return u, secret, err
}

// AdminAccount is a platform admin account as the API shows it.
type AdminAccount = store.AdminUser

// User returns an account by id.
func (ad *Admin) User(ctx context.Context, id string) (AdminAccount, error) {
	u, err := store.AdminUserByID(ctx, ad.a.db.Pool, id)
	return u, adminErr(err)
}

// Users lists accounts.
func (ad *Admin) Users(ctx context.Context, p store.Page) ([]AdminAccount, error) {
	us, err := store.ListAdminUsers(ctx, ad.a.db.Pool, p)
	return us, adminErr(err)
}

// CreateUser adds a platform account (fenced, audited) and returns its
// one-time setup secret. Only owners may create accounts (checked by the caller).
func (ad *Admin) CreateUser(ctx context.Context, actor Actor, name, role string) (AdminAccount, string, error) {
	if !userNameRE.MatchString(name) {
		return AdminAccount{}, "", Errf(CodeInvalid, "user name must match %s", userNameRE)
	}
	if role != store.RolePlatformOwner && role != store.RolePlatformAdmin {
		return AdminAccount{}, "", Errf(CodeInvalid, "role must be platform_owner or platform_admin")
	}
	secret, err := ad.newSetupSecret()
	if err != nil {
		return AdminAccount{}, "", err
	}
	id := store.NewID()
	_, err = Fenced(ctx, ad.a, Op{Action: "user.create", Actor: actor, TargetKind: "user", TargetID: id, Details: map[string]any{"name": name, "role": role}},
		func(tx pgx.Tx) (bool, error) {
			return true, store.InsertAdminUser(ctx, tx, id, name, role, nil, "", setupHash(secret), ad.Now().Add(ad.opts.SetupTTL))
		})
	if err != nil {
		return AdminAccount{}, "", err
	}
	u, err := ad.User(ctx, id)
	return u, secret, err
}

// SetUserDisabled disables or re-enables an account (fenced, audited); a
// disabled account loses its sessions and trusted devices.
func (ad *Admin) SetUserDisabled(ctx context.Context, actor Actor, id string, disabled bool) (AdminAccount, error) {
	action := "user.enable"
	if disabled {
		action = "user.disable"
	}
	_, err := Fenced(ctx, ad.a, Op{Action: action, Actor: actor, TargetKind: "user", TargetID: id}, func(tx pgx.Tx) (bool, error) {
		return true, store.SetAdminUserStatus(ctx, tx, id, disabled)
	})
	if err != nil {
		return AdminAccount{}, err
	}
	if disabled {
		if _, err := ad.Sessions.RevokeUser(ctx, id); err != nil {
			return AdminAccount{}, adminErr(err)
		}
		if err := ad.Devices.RevokeAll(ctx, id); err != nil {
			return AdminAccount{}, adminErr(err)
		}
	}
	return ad.User(ctx, id)
}

// OwnerTokensDisabled reports whether owner API tokens have stopped working:
// they are a bootstrap credential, refused once any owner has MFA.
func (ad *Admin) OwnerTokensDisabled(ctx context.Context) (bool, error) {
	ok, err := store.AnyOwnerHasMFA(ctx, ad.a.db.Pool)
	return ok, adminErr(err)
}

// BeginSetup checks a one-time setup secret (without using it) and starts TOTP
// enrollment: the returned secret, otpauth URI and QR code are shown once.
func (ad *Admin) BeginSetup(ctx context.Context, name, setupSecret string) (*authn.Enrollment, error) {
	id, err := store.CheckSetupSecret(ctx, ad.a.db.Pool, name, setupHash(setupSecret), ad.Now())
	if err != nil {
		return nil, Errf(CodeUnauthorized, "unknown user or invalid or expired setup secret")
	}
	en, err := ad.MFA.BeginEnrollment(name)
	if err != nil {
		return nil, err
	}
	if err := ad.Store.SetPendingTOTP(ctx, id, en.Secret); err != nil {
		return nil, adminErr(err)
	}
	return en, nil
}

// SetupResult is the outcome of CompleteSetup: recovery codes (shown once) and
// a logged-in session.
type SetupResult struct {
	RecoveryCodes []string
	Login         authn.LoginResult
}

// CompleteSetup finishes an account's setup: it uses the setup secret, sets the
// password, confirms the pending TOTP enrollment with code and logs the user in.
func (ad *Admin) CompleteSetup(ctx context.Context, name, setupSecret, password, code string, source netip.Addr) (SetupResult, error) {
	if len(password) < 12 || len(password) > 1024 {
		return SetupResult{}, Errf(CodeInvalid, "password must be 12 to 1024 characters")
	}
	id, err := store.CheckSetupSecret(ctx, ad.a.db.Pool, name, setupHash(setupSecret), ad.Now())
	if err != nil {
		return SetupResult{}, Errf(CodeUnauthorized, "unknown user or invalid or expired setup secret")
	}
	pending, err := ad.Store.PendingTOTP(ctx, id)
	if err != nil {
		return SetupResult{}, Errf(CodeInvalid, "start the setup first (TOTP enrollment)")
	}
	hash, err := ad.Hasher.Hash(ctx, password)
	if err != nil {
		return SetupResult{}, err
	}
	codes, err := ad.MFA.ConfirmEnrollment(ctx, id, pending, code)
	if err != nil {
		return SetupResult{}, Errf(CodeUnauthorized, "the TOTP code does not match the new secret")
	}
	if _, err := store.TakeSetupSecret(ctx, ad.a.db.Pool, name, setupHash(setupSecret), ad.Now()); err != nil {
		return SetupResult{}, Errf(CodeUnauthorized, "setup secret already used")
	}
	if err := ad.Store.SetPasswordHash(ctx, id, hash); err != nil {
		return SetupResult{}, adminErr(err)
	}
	setupOp := Op{Action: "user.setup", Actor: Actor{ID: id, Kind: "user", SourceAddr: source.String()}, TargetKind: "user", TargetID: id,
		Details: map[string]any{"name": name}}
	if u, err := ad.User(ctx, id); err == nil && u.OrganizationID != nil {
		setupOp.OrganizationID = *u.OrganizationID // also in the organization's own audit
	}
	_ = ad.a.AuditRisk(ctx, setupOp, "ok", map[string]string{"mfa": "enrolled"})
	s, tok, err := ad.createSession(ctx, id, source)
	if err != nil {
		return SetupResult{}, err
	}
	u, _ := ad.User(ctx, id)
	return SetupResult{RecoveryCodes: codes, Login: authn.LoginResult{User: authn.User{ID: id, Name: u.Name, Platform: u.Platform()}, Token: tok, Session: s}}, nil
}

func (ad *Admin) createSession(ctx context.Context, userID string, source netip.Addr) (authn.Session, string, error) {
	tok, s, err := ad.Sessions.Create(ctx, authn.NewSession{UserID: userID, Source: source, MFAAt: ad.Now()})
	if err != nil {
		return authn.Session{}, "", err
	}
	return s, tok, nil
}

// DemoEnroll sets a password and a TOTP secret directly (no setup secret). It
// exists for `make demo` and tests only; it prints nothing and returns the
// TOTP secret.
func (ad *Admin) DemoEnroll(ctx context.Context, name, password string) (string, error) {
	u, err := store.AdminUserByName(ctx, ad.a.db.Pool, name)
	if err != nil {
		return "", adminErr(err)
	}
	en, err := ad.MFA.BeginEnrollment(name)
	if err != nil {
		return "", err
	}
	hash, err := ad.Hasher.Hash(ctx, password)
	if err != nil {
		return "", err
	}
	if err := ad.Store.SaveTOTP(ctx, u.ID, en.Secret, 0); err != nil {
		return "", adminErr(err)
	}
	if _, err := ad.MFA.RegenerateRecoveryCodes(ctx, u.ID); err != nil {
		return "", err
	}
	if err := ad.Store.SetPasswordHash(ctx, u.ID, hash); err != nil {
		return "", adminErr(err)
	}
	if _, err := ad.a.db.Pool.Exec(ctx, `UPDATE admin_users SET setup_secret_hash = NULL, setup_expires_at = NULL WHERE id = $1`, u.ID); err != nil {
		return "", adminErr(err)
	}
	_ = ad.a.AuditRisk(ctx, Op{Action: "user.setup", Actor: Actor{ID: "system", Kind: "system"}, TargetKind: "user", TargetID: u.ID,
		Details: map[string]any{"name": name, "demo": true}}, "ok", map[string]string{"mfa": "enrolled"})
	return en.Secret, nil
}

// LoginAttempt is one login as the HTTP layer sees it.
type LoginAttempt struct {
	authn.LoginRequest
	Device string // user agent summary, for the audit log
}

// DoLogin runs the password + second factor login and audits it (success and
// failure, with the risk decision). Errors are authn errors.
func (ad *Admin) DoLogin(ctx context.Context, req LoginAttempt) (authn.LoginResult, error) {
	res, err := ad.Login.Login(ctx, req.LoginRequest)
	actor := Actor{ID: "anonymous", Kind: "user", Device: req.Device, SourceAddr: req.Source.String()}
	if err == nil {
		actor.ID = res.User.ID
		risk := res.Decision.RiskMap()
		if res.UsedRecoveryCode {
			risk["recovery_code"] = "used"
		}
		op := Op{Action: "auth.login", Actor: actor, TargetKind: "user", TargetID: res.User.ID, Details: map[string]any{"name": req.Username}}
		if u, err := ad.User(ctx, res.User.ID); err == nil && u.OrganizationID != nil {
			op.OrganizationID = *u.OrganizationID // also in the organization's own audit
		}
		_ = ad.a.AuditRisk(ctx, op, "ok", risk)
		return res, nil
	}
	if errors.Is(err, authn.ErrMFARequired) {
		return res, err // the first half of a login; not a failure
	}
	outcome := "denied"
	details := map[string]any{"name": truncate(req.Username, 64), "reason": authn.ErrorCode(err)}
	ad.a.metrics.loginFailed(authn.ErrorCode(err))
	if authn.StatusCode(err) >= 500 {
		outcome = "failed"
	}
	_ = ad.a.AuditRisk(ctx, Op{Action: "auth.login", Actor: actor, TargetKind: "user", Details: details}, outcome, nil)
	return res, err
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// Principal is an authenticated session with its account.
type Principal struct {
	Session authn.Session
	User    AdminAccount
}

// Actor returns the audit actor of the principal at source.
func (p Principal) Actor(device, source string) Actor {
	if device == "" && !p.Session.DeviceID.IsZero() {
		device = "trusted:" + p.Session.DeviceID.String()[:12]
	}
	// Risk signals are read at request time; time.Now is the request's clock here.
	return Actor{ID: p.User.ID, Kind: "user", Device: device, SourceAddr: source, Risk: p.Risk(time.Now()), Role: p.User.Role}
}

// Risk returns the risk signals of the session for audit events.
func (p Principal) Risk(now time.Time) map[string]string {
	m := map[string]string{"device": "unknown", "session": "standard"}
	if !p.Session.DeviceID.IsZero() {
		m["device"] = "trusted"
	}
	if p.Session.Trusted {
		m["session"] = "trusted"
	}
	if p.Session.MFAFresh(now, 10*time.Minute) {
		m["mfa"] = "fresh"
	} else {
		m["mfa"] = "stale"
	}
	return m
}

// Authenticate validates a session token from source and loads its account.
// Disabled accounts are refused (ErrNoSession).
func (ad *Admin) Authenticate(ctx context.Context, token string, source netip.Addr) (Principal, error) {
	s, err := ad.Sessions.Validate(ctx, token, source)
	if err != nil {
		if authn.ErrorCode(err) == "internal" {
			// Not a verdict on the session: the lookup failed (PostgreSQL
			// down → unavailable).
			return Principal{}, asError(err)
		}
		return Principal{}, err
	}
	u, err := ad.User(ctx, s.UserID)
	if err != nil && CodeOf(err) != CodeNotFound {
		return Principal{}, asError(err)
	}
	if err != nil || u.Disabled || !u.Platform() {
		return Principal{}, authn.ErrNoSession
	}
	return Principal{Session: s, User: u}, nil
}

// Logout ends the session behind token and drops its step-up grants.
func (ad *Admin) Logout(ctx context.Context, p Principal, token string) error {
	_ = ad.StepUp.Forget(ctx, p.Session)
	return ad.Sessions.Revoke(ctx, token)
}

// GrantStepUp verifies a fresh TOTP code and grants one high-risk action on
// one target to the session (audited, with the outcome).
func (ad *Admin) GrantStepUp(ctx context.Context, p Principal, actor Actor, action authn.Action, target, code string) (authn.StepUpGrant, error) {
	g, err := ad.StepUp.Grant(ctx, p.Session, action, target, code)
	outcome, details := "ok", map[string]any{"action": string(action), "target": target}
	if err != nil {
		outcome = "denied"
		details["reason"] = authn.ErrorCode(err)
		ad.a.metrics.stepUpFailed(authn.ErrorCode(err))
	}
	_ = ad.a.AuditRisk(ctx, Op{Action: "auth.step_up", Actor: actor, TargetKind: "step_up", TargetID: string(action), Details: details}, outcome, p.Risk(ad.Now()))
	return g, err
}

// RequireStepUp consumes the session's grant for (action, target). Without
// one it audits the refused attempt and returns a step_up_required error.
func (ad *Admin) RequireStepUp(ctx context.Context, p Principal, actor Actor, action authn.Action, target string) error {
	err := ad.StepUp.Require(ctx, p.Session, action, target)
	if err == nil {
		return nil
	}
	if !errors.Is(err, authn.ErrStepUpRequired) {
		return err
	}
	risk := p.Risk(ad.Now())
	risk["step_up"] = "missing"
	ad.a.metrics.stepUpFailed("missing")
	_ = ad.a.AuditRisk(ctx, Op{Action: string(action), Actor: actor, TargetKind: "route", TargetID: target,
		Details: map[string]any{"error_code": string(CodeStepUp)}}, "denied", risk)
	return &Error{Code: CodeStepUp, Message: "this action needs a fresh second factor: POST /v1/auth/step-up first",
		Details: map[string]any{"action": string(action), "target": target}, Err: err}
}

// TrustDevice registers the caller's browser as trusted. The session's second
// factor must be recent.
func (ad *Admin) TrustDevice(ctx context.Context, p Principal, actor Actor, label string, source netip.Addr) (string, authn.TrustedDevice, error) {
	if !p.Session.MFAFresh(ad.Now(), ad.opts.DeviceTrustWindow) {
		return "", authn.TrustedDevice{}, Errf(CodeStepUp, "log in again with your second factor to trust this device")
	}
	if len(label) > 200 {
		return "", authn.TrustedDevice{}, Errf(CodeInvalid, "label must be at most 200 characters")
	}
	tok, d, err := ad.Devices.Register(ctx, p.User.ID, label, source)
	if err != nil {
		return "", authn.TrustedDevice{}, err
	}
	_ = ad.a.AuditRisk(ctx, Op{Action: "device.trust", Actor: actor, TargetKind: "device", TargetID: d.ID.String()[:16], Details: map[string]any{"label": label}}, "ok", p.Risk(ad.Now()))
	return tok, d, nil
}

// RevokeDevice ends trust in one of the principal's devices (id: hex prefix of
// the device hash as listed).
func (ad *Admin) RevokeDevice(ctx context.Context, p Principal, actor Actor, idPrefix string) error {
	ds, err := ad.Devices.List(ctx, p.User.ID)
	if err != nil {
		return err
	}
	for _, d := range ds {
		if len(idPrefix) >= 8 && len(d.ID.String()) >= len(idPrefix) && d.ID.String()[:len(idPrefix)] == idPrefix {
			if err := ad.Devices.Revoke(ctx, p.User.ID, d.ID); err != nil {
				return err
			}
			_ = ad.a.AuditRisk(ctx, Op{Action: "device.revoke", Actor: actor, TargetKind: "device", TargetID: idPrefix}, "ok", nil)
			return nil
		}
	}
	return Errf(CodeNotFound, "no such device")
}

// RegenerateRecoveryCodes replaces the principal's recovery codes after a live
// TOTP code (audited).
func (ad *Admin) RegenerateRecoveryCodes(ctx context.Context, p Principal, actor Actor, code string) ([]string, error) {
	if err := ad.MFA.VerifyTOTP(ctx, p.User.ID, code); err != nil {
		_ = ad.a.AuditRisk(ctx, Op{Action: "user.recovery_codes", Actor: actor, TargetKind: "user", TargetID: p.User.ID, Details: map[string]any{"reason": authn.ErrorCode(err)}}, "denied", nil)
		return nil, err
	}
	codes, err := ad.MFA.RegenerateRecoveryCodes(ctx, p.User.ID)
	if err != nil {
		return nil, err
	}
	_ = ad.a.AuditRisk(ctx, Op{Action: "user.recovery_codes", Actor: actor, TargetKind: "user", TargetID: p.User.ID}, "ok", nil)
	return codes, nil
}

// RecoveryCodesLeft counts a user's unused recovery codes.
func (ad *Admin) RecoveryCodesLeft(ctx context.Context, userID string) (int, error) {
	return ad.Store.RecoveryCodesLeft(ctx, userID)
}

// adminErr maps err to an *Error, keeping nil a nil error interface.
func adminErr(err error) error {
	if err == nil {
		return nil
	}
	return asError(err)
}
