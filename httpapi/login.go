package httpapi

// Admin authentication routes (docs/admin-security.md):
//
//	POST /v1/auth/login                 password (+ totp_code | recovery_code) → session cookie or token
//	POST /v1/auth/logout                end the session
//	GET  /v1/auth/me                    the session's account, limits and CSRF token
//	POST /v1/auth/setup/begin           setup secret → TOTP enrollment (secret, otpauth URI, QR PNG)
//	POST /v1/auth/setup/complete        setup secret + password + TOTP code → recovery codes + session
//	POST /v1/auth/step-up               fresh TOTP code → single-use grant for one high-risk request
//	POST /v1/auth/recovery-codes        TOTP code → a new set of recovery codes
//	GET  /v1/auth/devices               the account's trusted devices
//	POST /v1/auth/devices               mark this browser trusted (second factor must be recent)
//	POST /v1/auth/devices/{id}/revoke   end trust in a device
//	GET  /v1/admin/users                list platform accounts
//	POST /v1/admin/users                create an account (owners; step-up) → one-time setup secret
//	POST /v1/admin/users/{id}/disable   disable an account (owners; step-up)
//	POST /v1/admin/users/{id}/enable    re-enable an account (owners; step-up)

import (
	"encoding/base64"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/rap-fabric/core/authn"
	"github.com/rap-fabric/core/authority"
	"github.com/rap-fabric/core/httpapi/console"
	"github.com/rap-fabric/core/store"
)

// adminRoutes registers the authentication and account routes and mounts the
// console under /console/.
func (s *Server) adminRoutes(r *mux.Router) {
	public := func(name, method, path string, h handlerFunc) {
		r.Handle(path, s.wrap(name, s.authGuard(h))).Methods(method)
	}
	owner := func(name, method, path string, h ownerHandler) {
		r.Handle(path, s.wrap(name, s.ownerAuth(h))).Methods(method)
	}

	public("auth.login", http.MethodPost, "/v1/auth/login", s.login)
	public("auth.setup.begin", http.MethodPost, "/v1/auth/setup/begin", s.setupBegin)
	public("auth.setup.complete", http.MethodPost, "/v1/auth/setup/complete", s.setupComplete)
	owner("auth.logout", http.MethodPost, "/v1/auth/logout", s.logout)
	owner("auth.me", http.MethodGet, "/v1/auth/me", s.me)
	owner("auth.stepup", http.MethodPost, "/v1/auth/step-up", s.stepUp)
	owner("auth.recovery", http.MethodPost, "/v1/auth/recovery-codes", s.recoveryCodes)
	owner("auth.devices.list", http.MethodGet, "/v1/auth/devices", s.listDevices)
	owner("auth.devices.trust", http.MethodPost, "/v1/auth/devices", s.trustDevice)
	owner("auth.devices.revoke", http.MethodPost, "/v1/auth/devices/{id}/revoke", s.revokeDevice)
	owner("admin.users.list", http.MethodGet, "/v1/admin/users", s.listUsers)
	owner("admin.users.create", http.MethodPost, "/v1/admin/users", s.createUser)
	owner("admin.users.disable", http.MethodPost, "/v1/admin/users/{id}/disable", s.setUserDisabled(true))
	owner("admin.users.enable", http.MethodPost, "/v1/admin/users/{id}/enable", s.setUserDisabled(false))

	if s.a != nil {
		c := console.New(console.Options{Authority: s.a, VPN: s.vpn, Auth: consoleAuth{s}, Status: s.consoleStatus, Logger: s.log})
		r.PathPrefix("/console/").Handler(s.wrapHTTP("console", c))
		r.Path("/console").Handler(http.RedirectHandler("/console/", http.StatusFound))
	}
}

// wrapHTTP adds metrics and security headers to a plain handler.
func (s *Server) wrapHTTP(name string, h http.Handler) http.Handler {
	return s.wrap(name, func(w http.ResponseWriter, r *http.Request) error {
		h.ServeHTTP(w, r)
		return nil
	})
}

// authGuard protects the unauthenticated auth routes: no cross-site posts,
// JSON only (HTML forms cannot send it), bounded bodies.
func (s *Server) authGuard(h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if r.ContentLength > MaxBodyBytes {
			return authority.Errf(authority.CodeTooLarge, "request body exceeds %d bytes", MaxBodyBytes)
		}
		if err := crossSite(r); err != nil {
			s.writeAuthnError(w, r, err)
			return nil
		}
		if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
			s.writeAuthnError(w, r, authn.ErrUnsupportedMediaType)
			return nil
		}
		// An Origin, when sent, must be this authority itself.
		if o := r.Header.Get("Origin"); o != "" && o != "https://"+r.Host {
			s.writeAuthnError(w, r, authn.ErrCSRF)
			return nil
		}
		return h(w, r)
	}
}

// LoginRequest is the body of POST /v1/auth/login.
type LoginRequest struct {
	Username     string `json:"username"`
	Password     string `json:"password"`
	TOTPCode     string `json:"totp_code,omitempty"`
	RecoveryCode string `json:"recovery_code,omitempty"`
	// Token asks for the session token in the body (CLI) instead of a cookie.
	Token bool `json:"token,omitempty"`
}

// LoginResponse answers a successful login or setup.
type LoginResponse struct {
	User             AdminUser         `json:"user"`
	SessionToken     string            `json:"session_token,omitempty"`
	ExpiresAt        time.Time         `json:"expires_at"`
	IdleTimeout      string            `json:"idle_timeout"`
	Trusted          bool              `json:"trusted_session"`
	UsedRecoveryCode bool              `json:"used_recovery_code,omitempty"`
	RecoveryCodes    []string          `json:"recovery_codes,omitempty"`
	Risk             map[string]string `json:"risk,omitempty"`
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) error {
	var b LoginRequest
	if err := decodeJSON(w, r, &b); err != nil {
		return err
	}
	ad := s.a.Admin()
	res, err := ad.DoLogin(r.Context(), authority.LoginAttempt{Device: deviceLabel(r), LoginRequest: authn.LoginRequest{
		Username: b.Username, Password: b.Password, TOTPCode: b.TOTPCode, RecoveryCode: b.RecoveryCode,
		DeviceToken: deviceToken(r), Source: sourceIP(r)}})
	if err != nil {
		s.writeAuthnError(w, r, err)
		return nil
	}
	u, err := ad.User(r.Context(), res.User.ID)
	if err != nil {
		return err
	}
	out := LoginResponse{User: newAdminUser(u), ExpiresAt: res.Session.ExpiresAt, IdleTimeout: res.Session.IdleTimeout.String(), Trusted: res.Session.Trusted,
		UsedRecoveryCode: res.UsedRecoveryCode, Risk: res.Decision.RiskMap()}
	if b.Token {
		out.SessionToken = res.Token
	} else {
		setSessionCookie(w, res.Token, res.Session.ExpiresAt)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

type setupBody struct {
	Username    string `json:"username"`
	SetupSecret string `json:"setup_secret"`
	Password    string `json:"password,omitempty"`
	TOTPCode    string `json:"totp_code,omitempty"`
	Token       bool   `json:"token,omitempty"`
}

// SetupEnrollment answers POST /v1/auth/setup/begin.
type SetupEnrollment struct {
	Secret     string `json:"totp_secret"`
	OTPAuthURI string `json:"otpauth_uri"`
	QRPNG      string `json:"qr_png_base64"`
}

func (s *Server) setupBegin(w http.ResponseWriter, r *http.Request) error {
	var b setupBody
	if err := decodeJSON(w, r, &b); err != nil {
		return err
	}
	if err := s.a.Admin().Limiter.Allow(r.Context(), b.Username, sourceIP(r)); err != nil {
		s.writeAuthnError(w, r, err)
		return nil
	}
	en, err := s.a.Admin().BeginSetup(r.Context(), b.Username, b.SetupSecret)
	if err != nil {
		_ = s.a.Admin().Limiter.Failure(r.Context(), b.Username, sourceIP(r))
		return err
	}
	writeJSON(w, http.StatusOK, SetupEnrollment{Secret: en.Secret, OTPAuthURI: en.URI, QRPNG: base64.StdEncoding.EncodeToString(en.QRPNG)})
	return nil
}

func (s *Server) setupComplete(w http.ResponseWriter, r *http.Request) error {
	var b setupBody
	if err := decodeJSON(w, r, &b); err != nil {
		return err
	}
	ad := s.a.Admin()
	if err := ad.Limiter.Allow(r.Context(), b.Username, sourceIP(r)); err != nil {
		s.writeAuthnError(w, r, err)
		return nil
	}
	res, err := ad.CompleteSetup(r.Context(), b.Username, b.SetupSecret, b.Password, b.TOTPCode, sourceIP(r))
	if err != nil {
		if authority.CodeOf(err) == authority.CodeUnauthorized {
			_ = ad.Limiter.Failure(r.Context(), b.Username, sourceIP(r))
		}
		return err
	}
	u, err := ad.User(r.Context(), res.Login.User.ID)
	if err != nil {
		return err
	}
	out := LoginResponse{User: newAdminUser(u), ExpiresAt: res.Login.Session.ExpiresAt, IdleTimeout: res.Login.Session.IdleTimeout.String(), RecoveryCodes: res.RecoveryCodes}
	if b.Token {
		out.SessionToken = res.Login.Token
	} else {
		setSessionCookie(w, res.Login.Token, res.Login.Session.ExpiresAt)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// needSession returns the session principal or an error for token callers.
func needSession(r *http.Request) (authority.Principal, error) {
	p, ok := principalFrom(r.Context())
	if !ok {
		return p, authority.Errf(authority.CodeForbidden, "this route needs a user session (log in), not an owner API token")
	}
	return p, nil
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request, actor authority.Actor) error {
	p, err := needSession(r)
	if err != nil {
		return err
	}
	tok, _ := sessionToken(r)
	if err := s.a.Admin().Logout(r.Context(), p, tok); err != nil {
		return err
	}
	_ = s.a.Audit(r.Context(), authority.Op{Action: "auth.logout", Actor: actor, TargetKind: "user", TargetID: p.User.ID}, "ok")
	clearCookie(w, authn.SessionCookieName)
	writeJSON(w, http.StatusOK, map[string]any{"logged_out": true})
	return nil
}

// Me answers GET /v1/auth/me.
type Me struct {
	User                AdminUser  `json:"user"`
	ExpiresAt           time.Time  `json:"expires_at"`
	IdleTimeout         string     `json:"idle_timeout"`
	MFAAt               *time.Time `json:"mfa_at"`
	TrustedSession      bool       `json:"trusted_session"`
	CSRFToken           string     `json:"csrf_token,omitempty"`
	RecoveryCodesLeft   int        `json:"recovery_codes_left"`
	OwnerTokensDisabled bool       `json:"owner_tokens_disabled"`
}

func (s *Server) me(w http.ResponseWriter, r *http.Request, _ authority.Actor) error {
	p, err := needSession(r)
	if err != nil {
		return err
	}
	ad := s.a.Admin()
	out := Me{User: newAdminUser(p.User), ExpiresAt: p.Session.ExpiresAt, IdleTimeout: p.Session.IdleTimeout.String(), TrustedSession: p.Session.Trusted}
	if !p.Session.MFAAt.IsZero() {
		t := p.Session.MFAAt
		out.MFAAt = &t
	}
	if _, cookie := sessionToken(r); cookie {
		out.CSRFToken = s.CSRFToken(r, p)
	}
	out.RecoveryCodesLeft, _ = ad.RecoveryCodesLeft(r.Context(), p.User.ID)
	out.OwnerTokensDisabled, _ = ad.OwnerTokensDisabled(r.Context())
	writeJSON(w, http.StatusOK, out)
	return nil
}

type stepUpBody struct {
	Method   string `json:"method"`
	Path     string `json:"path"`
	TOTPCode string `json:"totp_code"`
}

// StepUpGrant answers POST /v1/auth/step-up.
type StepUpGrant struct {
	Action    string    `json:"action"`
	Method    string    `json:"method"`
	Path      string    `json:"path"`
	ExpiresAt time.Time `json:"expires_at"`
}

// resolveHighRisk finds the high-risk action of method + path by matching the
// router, so the client names the request it is about to make and the server
// decides which action that is.
func (s *Server) resolveHighRisk(method, path string) (authn.Action, string, error) {
	u, err := url.Parse(path)
	if err != nil || u.Path == "" || !strings.HasPrefix(u.Path, "/v1/") || u.RawQuery != "" || u.Host != "" {
		return "", "", authority.Errf(authority.CodeInvalid, "path must be an API path such as /v1/join-requests/ID/approve")
	}
	req := &http.Request{Method: strings.ToUpper(method), URL: &url.URL{Path: u.Path}, Header: http.Header{}}
	var m mux.RouteMatch
	if !s.router.Match(req, &m) || m.MatchErr != nil || m.Route == nil {
		return "", "", authority.Errf(authority.CodeInvalid, "no such route: %s %s", method, u.Path)
	}
	tpl, err := m.Route.GetPathTemplate()
	if err != nil {
		return "", "", authority.Errf(authority.CodeInvalid, "no such route")
	}
	a, ok := highRiskRoutes[req.Method+" "+tpl]
	if !ok {
		return "", "", authority.Errf(authority.CodeInvalid, "%s %s is not a high-risk action; it needs no step-up", req.Method, tpl)
	}
	return a, u.Path, nil
}

func (s *Server) stepUp(w http.ResponseWriter, r *http.Request, actor authority.Actor) error {
	p, err := needSession(r)
	if err != nil {
		return err
	}
	var b stepUpBody
	if err := decodeJSON(w, r, &b); err != nil {
		return err
	}
	action, path, err := s.resolveHighRisk(b.Method, b.Path)
	if err != nil {
		return err
	}
	// The action runs on the leader only. A follower refuses before it reads
	// the code, so a console open on a follower does not spend the code on a
	// request it cannot execute (the answer names the leader).
	if err := s.a.CheckLeader(); err != nil {
		return err
	}
	g, err := s.a.Admin().GrantStepUp(r.Context(), p, actor, action, path, b.TOTPCode)
	if err != nil {
		s.writeAuthnError(w, r, err)
		return nil
	}
	writeJSON(w, http.StatusOK, StepUpGrant{Action: string(g.Action), Method: strings.ToUpper(b.Method), Path: g.Target, ExpiresAt: g.ExpiresAt})
	return nil
}

type codeBody struct {
	TOTPCode string `json:"totp_code"`
}

func (s *Server) recoveryCodes(w http.ResponseWriter, r *http.Request, actor authority.Actor) error {
	p, err := needSession(r)
	if err != nil {
		return err
	}
	var b codeBody
	if err := decodeJSON(w, r, &b); err != nil {
		return err
	}
	codes, err := s.a.Admin().RegenerateRecoveryCodes(r.Context(), p, actor, b.TOTPCode)
	if err != nil {
		s.writeAuthnError(w, r, err)
		return nil
	}
	writeJSON(w, http.StatusOK, map[string]any{"recovery_codes": codes})
	return nil
}

// DeviceView is a trusted device in API answers (never its token).
type DeviceView struct {
	ID         string    `json:"id"`
	Label      string    `json:"label"`
	CreatedAt  time.Time `json:"created_at"`
	LastUsedAt time.Time `json:"last_used_at"`
	ExpiresAt  time.Time `json:"expires_at"`
	Revoked    bool      `json:"revoked"`
	Networks   []string  `json:"networks"`
}

func deviceView(d authn.TrustedDevice) DeviceView {
	v := DeviceView{ID: d.ID.String()[:16], Label: d.Label, CreatedAt: d.CreatedAt, LastUsedAt: d.LastUsedAt, ExpiresAt: d.ExpiresAt, Revoked: !d.RevokedAt.IsZero(), Networks: []string{}}
	for _, n := range d.Networks {
		v.Networks = append(v.Networks, n.String())
	}
	return v
}

func (s *Server) listDevices(w http.ResponseWriter, r *http.Request, _ authority.Actor) error {
	p, err := needSession(r)
	if err != nil {
		return err
	}
	ds, err := s.a.Admin().Devices.List(r.Context(), p.User.ID)
	if err != nil {
		return err
	}
	out := []DeviceView{}
	for _, d := range ds {
		out = append(out, deviceView(d))
	}
	writeJSON(w, http.StatusOK, List[DeviceView]{Items: out})
	return nil
}

type trustBody struct {
	Label string `json:"label"`
}

func (s *Server) trustDevice(w http.ResponseWriter, r *http.Request, actor authority.Actor) error {
	p, err := needSession(r)
	if err != nil {
		return err
	}
	var b trustBody
	if err := decodeJSON(w, r, &b); err != nil {
		return err
	}
	tok, d, err := s.a.Admin().TrustDevice(r.Context(), p, actor, b.Label, sourceIP(r))
	if err != nil {
		return err
	}
	http.SetCookie(w, authn.NewSecureCookie(authn.DeviceCookieName, tok, d.ExpiresAt))
	writeJSON(w, http.StatusCreated, deviceView(d))
	return nil
}

func (s *Server) revokeDevice(w http.ResponseWriter, r *http.Request, actor authority.Actor) error {
	p, err := needSession(r)
	if err != nil {
		return err
	}
	if err := s.a.Admin().RevokeDevice(r.Context(), p, actor, mux.Vars(r)["id"]); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"revoked": true})
	return nil
}

func (s *Server) listUsers(w http.ResponseWriter, r *http.Request, _ authority.Actor) error {
	pg, err := page(r)
	if err != nil {
		return err
	}
	us, err := s.a.Admin().Users(r.Context(), pg)
	if err != nil {
		return err
	}
	out, _ := many(newAdminUser)(us, nil)
	writeJSON(w, http.StatusOK, listOf(out, pg))
	return nil
}

// requireOwner refuses platform admins (owners manage accounts). Owner API
// tokens carry the owner role.
func requireOwner(r *http.Request) error {
	if p, ok := principalFrom(r.Context()); ok && p.User.Role != store.RolePlatformOwner {
		return authority.Errf(authority.CodeForbidden, "only platform owners manage accounts")
	}
	return nil
}

type createUserBody struct {
	Name string `json:"name"`
	Role string `json:"role"`
}

// CreatedUser answers POST /v1/admin/users: the one-time setup secret is shown once.
type CreatedUser struct {
	User        AdminUser `json:"user"`
	SetupSecret string    `json:"setup_secret"`
}

func (s *Server) createUser(w http.ResponseWriter, r *http.Request, actor authority.Actor) error {
	if err := requireOwner(r); err != nil {
		return err
	}
	var b createUserBody
	if err := decodeJSON(w, r, &b); err != nil {
		return err
	}
	u, secret, err := s.a.Admin().CreateUser(r.Context(), actor, b.Name, b.Role)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, CreatedUser{User: newAdminUser(u), SetupSecret: secret})
	return nil
}

func (s *Server) setUserDisabled(disabled bool) ownerHandler {
	return func(w http.ResponseWriter, r *http.Request, actor authority.Actor) error {
		if err := requireOwner(r); err != nil {
			return err
		}
		id := mux.Vars(r)["id"]
		if p, ok := principalFrom(r.Context()); ok && p.User.ID == id && disabled {
			return authority.Errf(authority.CodeInvalid, "you cannot disable your own account")
		}
		u, err := s.a.Admin().SetUserDisabled(r.Context(), actor, id, disabled)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, newAdminUser(u))
		return nil
	}
}

// consoleAuth adapts the server's session handling for the console package.
type consoleAuth struct{ s *Server }

// Principal implements console.Auth: the request's session (cookie only).
func (c consoleAuth) Principal(r *http.Request) (authority.Principal, error) {
	ck, err := r.Cookie(authn.SessionCookieName)
	if err != nil || ck.Value == "" {
		return authority.Principal{}, authn.ErrNoSession
	}
	return c.s.a.Admin().Authenticate(r.Context(), ck.Value, sourceIP(r))
}

// CSRFToken implements console.Auth.
func (c consoleAuth) CSRFToken(r *http.Request, p authority.Principal) string {
	return c.s.CSRFToken(r, p)
}

func (s *Server) consoleStatus() console.Status {
	if s.status == nil {
		return console.Status{}
	}
	st := s.status.Status()
	cs := console.Status{NodeID: st.NodeID, State: st.State, LeaderID: st.LeaderID, LeaderAPIAddr: st.LeaderAPIAddr, Quorum: st.Quorum, Epoch: st.Epoch}
	cs.Term, cs.CommitIndex, cs.AppliedIndex = st.Term, st.CommitIndex, st.AppliedIndex
	cs.AgreedEpoch, cs.FenceEpoch, cs.FenceEpochHeld = st.AgreedEpoch, st.FenceEpoch, st.FenceEpochHeld
	if st.LastContact != nil {
		cs.LastContact = *st.LastContact
	}
	for _, m := range st.Members {
		cs.Members = append(cs.Members, console.Member{ID: m.ID, RaftAddr: m.RaftAddr, APIAddr: m.APIAddr, Suffrage: m.Suffrage, Healthy: m.Healthy})
	}
	return cs
}
