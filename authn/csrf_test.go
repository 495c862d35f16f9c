package authn

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func newCSRF(t *testing.T) *CSRF {
	t.Helper()
	c, err := NewCSRF(CSRFConfig{
		AllowedOrigins: []string{"https://admin.example.net:443", "http://localhost:8080"},
		Key:            []byte("0123456789abcdef0123456789abcdef"),
	})
	require.NoError(t, err)
	return c
}

func TestCSRFCheck(t *testing.T) {
	c := newCSRF(t)
	sess := HashToken("raps_session")
	tok := c.Token(sess)
	tests := []struct {
		name    string
		method  string
		headers map[string]string
		session TokenHash
		ok      bool
	}{
		{"GET cross-site is safe", "GET", map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}, sess, true},
		{"HEAD", "HEAD", nil, sess, true},
		{"OPTIONS", "OPTIONS", nil, sess, true},
		{"cross-origin POST", "POST", map[string]string{"Origin": "https://evil.example", "X-RAP-Request": "1"}, sess, false},
		{"cross-origin POST with token", "POST", map[string]string{"Origin": "https://evil.example", "X-CSRF-Token": tok}, sess, false},
		{"Sec-Fetch-Site cross-site", "POST", map[string]string{"Sec-Fetch-Site": "cross-site", "X-CSRF-Token": tok}, sess, false},
		{"Sec-Fetch-Site same-site", "DELETE", map[string]string{"Sec-Fetch-Site": "same-site", "X-RAP-Request": "1"}, sess, false},
		{"null origin", "POST", map[string]string{"Origin": "null", "X-RAP-Request": "1"}, sess, false},
		{"same-origin POST with token", "POST", map[string]string{"Origin": "https://admin.example.net", "Sec-Fetch-Site": "same-origin", "X-CSRF-Token": tok}, sess, true},
		{"same-origin POST with custom header", "PUT", map[string]string{"Origin": "https://ADMIN.example.net", "X-RAP-Request": "1"}, sess, true},
		{"explicit default port", "POST", map[string]string{"Origin": "https://admin.example.net:443", "X-RAP-Request": "1"}, sess, true},
		{"other port", "POST", map[string]string{"Origin": "https://admin.example.net:8443", "X-RAP-Request": "1"}, sess, false},
		{"scheme downgrade", "POST", map[string]string{"Origin": "http://admin.example.net", "X-RAP-Request": "1"}, sess, false},
		{"second allowed origin", "PATCH", map[string]string{"Origin": "http://localhost:8080", "X-RAP-Request": "1"}, sess, true},
		{"Sec-Fetch-Site none (typed URL)", "POST", map[string]string{"Sec-Fetch-Site": "none", "X-CSRF-Token": tok}, sess, true},
		{"same origin but no token or header", "POST", map[string]string{"Origin": "https://admin.example.net", "Sec-Fetch-Site": "same-origin"}, sess, false},
		{"wrong token", "POST", map[string]string{"Origin": "https://admin.example.net", "X-CSRF-Token": c.Token(HashToken("raps_other")), "X-RAP-Request": "1"}, sess, false},
		{"token without session", "POST", map[string]string{"X-CSRF-Token": c.Token(TokenHash{})}, TokenHash{}, false},
		{"no browser headers, custom header", "POST", map[string]string{"X-RAP-Request": "1"}, TokenHash{}, true},
		{"no browser headers, nothing", "POST", nil, TokenHash{}, false},
		{"referer from elsewhere", "POST", map[string]string{"Referer": "https://evil.example/page", "X-RAP-Request": "1"}, sess, false},
		{"referer from console", "POST", map[string]string{"Referer": "https://admin.example.net/nodes", "X-RAP-Request": "1"}, sess, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, "https://admin.example.net/api/x", nil)
			for k, v := range tc.headers {
				r.Header.Set(k, v)
			}
			err := c.Check(r, tc.session)
			if tc.ok {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, ErrCSRF)
				require.Equal(t, http.StatusForbidden, StatusCode(err))
			}
		})
	}
}

func TestCSRFMiddleware(t *testing.T) {
	c := newCSRF(t)
	sess := HashToken("raps_s")
	reached := 0
	h := c.Middleware(func(*http.Request) (TokenHash, bool) { return sess, true },
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { reached++; w.WriteHeader(http.StatusNoContent) }))

	r := httptest.NewRequest("POST", "/api/nodes/approve", strings.NewReader("{}"))
	r.Header.Set("Origin", "https://evil.example")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	require.Equal(t, http.StatusForbidden, w.Code)
	require.JSONEq(t, `{"error":"csrf"}`, w.Body.String())
	require.Zero(t, reached)

	r = httptest.NewRequest("POST", "/api/nodes/approve", strings.NewReader("{}"))
	r.Header.Set("Origin", "https://admin.example.net")
	r.Header.Set("X-CSRF-Token", c.Token(sess))
	w = httptest.NewRecorder()
	h.ServeHTTP(w, r)
	require.Equal(t, http.StatusNoContent, w.Code)
	require.Equal(t, 1, reached)
}

func TestCSRFConfig(t *testing.T) {
	_, err := NewCSRF(CSRFConfig{AllowedOrigins: []string{"https://a"}, Key: []byte("short")})
	require.ErrorIs(t, err, ErrInvalidConfig)
	_, err = NewCSRF(CSRFConfig{Key: make([]byte, 32)})
	require.ErrorIs(t, err, ErrInvalidConfig)
	_, err = NewCSRF(CSRFConfig{AllowedOrigins: []string{"https://a/path"}, Key: make([]byte, 32)})
	require.ErrorIs(t, err, ErrInvalidConfig)
}
