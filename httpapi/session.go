package httpapi

// Browser and CLI sessions of platform admins: resolving the session cookie or
// bearer session token, CSRF checks for cookie sessions, cookies, and the
// error rendering of authentication failures (docs/admin-security.md §3, §6).

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/rap-fabric/core/authn"
	"github.com/rap-fabric/core/authority"
)

type principalKey struct{}

// principalFrom returns the session principal of an owner request, if it was
// authenticated by a session (not by an owner API token).
func principalFrom(ctx context.Context) (authority.Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(authority.Principal)
	return p, ok
}

// PrincipalFrom returns the session principal of a request authenticated by
// ownerAuth with a session (the console uses it).
func PrincipalFrom(r *http.Request) (authority.Principal, bool) { return principalFrom(r.Context()) }

func sourceIP(r *http.Request) netip.Addr {
	a, err := netip.ParseAddr(sourceAddr(r))
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}

// deviceLabel summarizes the client for the audit log: printable UTF-8 only,
// at most 80 bytes.
func deviceLabel(r *http.Request) string {
	ua := strings.ToValidUTF8(r.UserAgent(), "")
	ua = strings.Map(func(c rune) rune {
		if !unicode.IsPrint(c) {
			return -1
		}
		return c
	}, ua)
	if len(ua) > 80 {
		ua = strings.ToValidUTF8(ua[:80], "")
	}
	if ua == "" {
		return ""
	}
	return "ua:" + ua
}

// csrfCheckers caches one checker per Host (origin = https://Host). Bounded:
// beyond csrfCacheMax hosts a checker is built per request.
var (
	csrfMu       sync.Mutex
	csrfCheckers = map[string]*authn.CSRF{}
)

const csrfCacheMax = 32

// csrfFor returns the CSRF checker for the request's own origin: the console
// is served by every authority, each under its own address, and a page may
// only post to the authority that served it.
func (s *Server) csrfFor(r *http.Request) (*authn.CSRF, error) {
	key := string(s.a.Admin().CSRFKey) + "\x00" + r.Host
	csrfMu.Lock()
	c, ok := csrfCheckers[key]
	csrfMu.Unlock()
	if ok {
		return c, nil
	}
	c, err := authn.NewCSRF(authn.CSRFConfig{AllowedOrigins: []string{"https://" + r.Host}, Key: s.a.Admin().CSRFKey})
	if err != nil {
		return nil, err
	}
	csrfMu.Lock()
	if len(csrfCheckers) < csrfCacheMax {
		csrfCheckers[key] = c
	}
	csrfMu.Unlock()
	return c, nil
}

// CSRFToken returns the session-bound CSRF token for p (pages embed it).
func (s *Server) CSRFToken(r *http.Request, p authority.Principal) string {
	c, err := s.csrfFor(r)
	if err != nil {
		return ""
	}
	return c.Token(p.Session.ID)
}

// crossSite refuses state-changing requests a browser marks as coming from
// another site, whatever credential they carry.
func crossSite(r *http.Request) error {
	if authn.SafeMethod(r.Method) {
		return nil
	}
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
		return nil
	}
	return authn.ErrCSRF
}

// sessionToken returns the session token of the request: the session cookie,
// or a bearer token with the session prefix. fromCookie reports which.
func sessionToken(r *http.Request) (tok string, fromCookie bool) {
	if c, err := r.Cookie(authn.SessionCookieName); err == nil && c.Value != "" {
		return c.Value, true
	}
	if b, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && strings.HasPrefix(b, string(authn.TokenSession)) {
		return b, false
	}
	return "", false
}

// authenticateSession resolves the request's session (cookie or bearer) and,
// for cookie sessions, runs the CSRF checks on state-changing methods. ok is
// false when the request carries no session credential at all.
func (s *Server) authenticateSession(r *http.Request) (p authority.Principal, ok bool, err error) {
	tok, cookie := sessionToken(r)
	if tok == "" {
		return p, false, nil
	}
	p, err = s.a.Admin().Authenticate(r.Context(), tok, sourceIP(r))
	if err != nil {
		return p, true, err
	}
	if cookie && !authn.SafeMethod(r.Method) {
		c, cerr := s.csrfFor(r)
		if cerr != nil {
			return p, true, cerr
		}
		if cerr := c.Check(r, p.Session.ID); cerr != nil {
			return p, true, cerr
		}
	}
	return p, true, nil
}

// writeAuthnError renders an authn error in the API's error shape with the
// status authn maps it to (and Retry-After for rate limits and lockouts).
func (s *Server) writeAuthnError(w http.ResponseWriter, r *http.Request, err error) {
	var ae *authority.Error
	if errors.As(err, &ae) || authn.ErrorCode(err) == "internal" {
		s.writeError(w, r, err) // typed, or mapped there (database unavailable)
		return
	}
	var re *authn.RetryError
	if errors.As(err, &re) {
		w.Header().Set("Retry-After", strconv.Itoa(int(re.RetryAfter/time.Second)))
	}
	status := authn.StatusCode(err)
	code := authn.ErrorCode(err)
	msg := authnMessages[code]
	if status >= 500 {
		s.log.Error("authentication failed", "path", r.URL.Path, "error", err)
		msg = "internal error"
	}
	writeJSON(w, status, ErrorBody{Error: ErrorDetail{Code: code, Message: msg}})
}

var authnMessages = map[string]string{
	"bad_credentials":        "unknown user or wrong password",
	"mfa_required":           "a second factor is required: repeat the login with totp_code or recovery_code",
	"bad_second_factor":      "the second factor was not accepted",
	"totp_replay":            "this TOTP code was already used; wait for the next one",
	"session_expired":        "the session expired; log in again",
	"no_session":             "no valid session",
	"csrf":                   "cross-site request refused",
	"step_up_required":       "this action needs a fresh second factor",
	"mfa_not_enrolled":       "platform accounts must enroll TOTP first (finish the account setup)",
	"locked_out":             "too many failures; try again later",
	"rate_limited":           "too many attempts; slow down",
	"body_too_large":         "request body too large",
	"json_too_deep":          "JSON nested too deeply",
	"bad_json":               "malformed JSON body",
	"unsupported_media_type": "Content-Type must be application/json",
	"unknown_action":         "not a high-risk action",
	"invalid_password":       "password not acceptable",
}

func setSessionCookie(w http.ResponseWriter, token string, expires time.Time) {
	http.SetCookie(w, authn.NewSecureCookie(authn.SessionCookieName, token, expires))
}

func clearCookie(w http.ResponseWriter, name string) {
	c := authn.NewSecureCookie(name, "", time.Unix(1, 0))
	c.MaxAge = -1
	http.SetCookie(w, c)
}

func deviceToken(r *http.Request) string {
	if c, err := r.Cookie(authn.DeviceCookieName); err == nil {
		return c.Value
	}
	return ""
}
