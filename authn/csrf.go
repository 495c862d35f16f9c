package authn

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// CSRFConfig configures cross-site request checks for cookie-authenticated
// routes. Bearer-token API routes do not need them (browsers never attach an
// Authorization header on their own) but passing them through is harmless.
type CSRFConfig struct {
	// AllowedOrigins are the exact origins of the console, e.g.
	// "https://admin.example.net". Required.
	AllowedOrigins []string
	// Key is the HMAC key for session-bound tokens, at least 32 bytes. Required.
	Key []byte
	// TokenHeader carries the session-bound token; default "X-CSRF-Token".
	TokenHeader string
	// CustomHeader is a non-simple header whose mere presence proves the request
	// was made by script from an allowed origin (a cross-origin page would need
	// a CORS preflight, which this service never approves); default
	// "X-RAP-Request".
	CustomHeader string
}

// CSRF checks state-changing requests. Create it with NewCSRF.
type CSRF struct {
	origins map[string]bool
	key     []byte
	tokenH  string
	customH string
}

// NewCSRF validates cfg and returns a checker.
func NewCSRF(cfg CSRFConfig) (*CSRF, error) {
	if len(cfg.Key) < 32 {
		return nil, fmt.Errorf("%w: CSRF key must be >= 32 bytes", ErrInvalidConfig)
	}
	if len(cfg.AllowedOrigins) == 0 {
		return nil, fmt.Errorf("%w: CSRF needs at least one allowed origin", ErrInvalidConfig)
	}
	c := &CSRF{origins: map[string]bool{}, key: append([]byte(nil), cfg.Key...), tokenH: cfg.TokenHeader, customH: cfg.CustomHeader}
	if c.tokenH == "" {
		c.tokenH = "X-CSRF-Token"
	}
	if c.customH == "" {
		c.customH = "X-RAP-Request"
	}
	for _, o := range cfg.AllowedOrigins {
		n, ok := normalizeOrigin(o)
		if !ok {
			return nil, fmt.Errorf("%w: bad allowed origin %q (want scheme://host[:port])", ErrInvalidConfig, o)
		}
		c.origins[n] = true
	}
	return c, nil
}

// normalizeOrigin returns "scheme://host[:port]" lowercased with the default
// port removed, or false if s is not a bare http(s) origin.
func normalizeOrigin(s string) (string, bool) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return "", false
	}
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if (u.Scheme == "https" && port == "443") || (u.Scheme == "http" && port == "80") {
		port = ""
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" {
		host += ":" + port
	}
	return u.Scheme + "://" + host, true
}

// Token returns the CSRF token bound to a session: base64url(HMAC-SHA256(key,
// "rap-csrf" || session id)). The console receives it with the session and
// echoes it in TokenHeader.
func (c *CSRF) Token(session TokenHash) string {
	m := hmac.New(sha256.New, c.key)
	m.Write([]byte("rap-csrf\x00"))
	m.Write(session[:])
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// SafeMethod reports whether m is GET, HEAD or OPTIONS: methods that never
// change state and so skip CSRF checks. Routers must refuse state changes on
// them (405).
func SafeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// Check decides whether r may change state. Safe methods always pass. Other
// methods are refused (ErrCSRF) when
//   - Sec-Fetch-Site is present and is not "same-origin" or "none";
//   - Origin is present and is "null" or not an allowed origin;
//   - neither Origin nor Sec-Fetch-Site is present and Referer names another origin;
//   - TokenHeader is present but is not the token of session (zero session: no
//     token can match);
//   - neither a valid TokenHeader nor CustomHeader is present.
func (c *CSRF) Check(r *http.Request, session TokenHash) error {
	if SafeMethod(r.Method) {
		return nil
	}
	sfs := r.Header.Get("Sec-Fetch-Site")
	if sfs != "" && sfs != "same-origin" && sfs != "none" {
		return fmt.Errorf("%w: Sec-Fetch-Site %q", ErrCSRF, sfs)
	}
	origin := r.Header.Get("Origin")
	if origin != "" {
		n, ok := normalizeOrigin(origin)
		if !ok || !c.origins[n] {
			return fmt.Errorf("%w: origin %q not allowed", ErrCSRF, origin)
		}
	} else if sfs == "" {
		if ref := r.Header.Get("Referer"); ref != "" {
			u, err := url.Parse(ref)
			if err != nil {
				return fmt.Errorf("%w: unparsable referer", ErrCSRF)
			}
			n, ok := normalizeOrigin(u.Scheme + "://" + u.Host)
			if !ok || !c.origins[n] {
				return fmt.Errorf("%w: referer origin not allowed", ErrCSRF)
			}
		}
	}
	if vals, ok := r.Header[http.CanonicalHeaderKey(c.tokenH)]; ok {
		want := c.Token(session)
		if session.IsZero() || len(vals) != 1 || !ConstantTimeEqual([]byte(vals[0]), []byte(want)) {
			return fmt.Errorf("%w: bad CSRF token", ErrCSRF)
		}
		return nil
	}
	if r.Header.Get(c.customH) != "" {
		return nil
	}
	return fmt.Errorf("%w: missing CSRF token or %s header", ErrCSRF, c.customH)
}

// Middleware wraps next with Check. session extracts the request's session id
// (zero/false when the request has no session cookie, e.g. the login form).
// Refusals are answered 403 {"error":"csrf"} and never reach next.
func (c *CSRF) Middleware(session func(*http.Request) (TokenHash, bool), next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var id TokenHash
		if session != nil {
			if s, ok := session(r); ok {
				id = s
			}
		}
		if err := c.Check(r, id); err != nil {
			WriteError(w, err)
			return
		}
		next.ServeHTTP(w, r)
	})
}
