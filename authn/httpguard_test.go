package authn

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/stretchr/testify/require"
)

func nested(depth int) string {
	return strings.Repeat(`{"a":`, depth) + "1" + strings.Repeat("}", depth)
}

func TestDecodeJSON(t *testing.T) {
	type body struct {
		Name string `json:"name"`
		N    int    `json:"n"`
	}
	tests := []struct {
		name string
		in   string
		opts DecodeOptions
		want error
	}{
		{"ok", `{"name":"x","n":2}`, DecodeOptions{}, nil},
		{"unknown field allowed", `{"name":"x","extra":1}`, DecodeOptions{}, nil},
		{"unknown field refused", `{"name":"x","extra":1}`, DecodeOptions{DisallowUnknownFields: true}, ErrBadJSON},
		{"trailing data", `{"name":"x"} {"name":"y"}`, DecodeOptions{}, ErrBadJSON},
		{"not JSON", `name=x`, DecodeOptions{}, ErrBadJSON},
		{"empty", ``, DecodeOptions{}, ErrBadJSON},
		{"wrong type", `{"n":"two"}`, DecodeOptions{}, ErrBadJSON},
		{"too big", `{"name":"` + strings.Repeat("x", 100) + `"}`, DecodeOptions{MaxBytes: 64}, ErrBodyTooLarge},
		{"brackets inside strings do not count", `{"name":"` + strings.Repeat("[{", 100) + `"}`, DecodeOptions{MaxDepth: 2}, nil},
		{"escaped quote inside string", `{"name":"\"[[[[[[","n":1}`, DecodeOptions{MaxDepth: 2}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b body
			err := DecodeJSON(strings.NewReader(tc.in), &b, tc.opts)
			if tc.want == nil {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, tc.want)
			}
		})
	}
}

func TestDecodeJSONDepth(t *testing.T) {
	var v any
	require.NoError(t, DecodeJSON(strings.NewReader(nested(32)), &v, DecodeOptions{}))
	err := DecodeJSON(strings.NewReader(nested(33)), &v, DecodeOptions{})
	require.ErrorIs(t, err, ErrTooDeep)
	require.Equal(t, http.StatusBadRequest, StatusCode(err))

	// A 100k-deep array bomb is refused by the scan, not by the decoder.
	bomb := strings.Repeat("[", 100000) + strings.Repeat("]", 100000)
	require.ErrorIs(t, DecodeJSON(strings.NewReader(bomb), &v, DecodeOptions{}), ErrTooDeep)
	require.ErrorIs(t, DecodeJSON(strings.NewReader(`[[[`), &v, DecodeOptions{MaxDepth: 2}), ErrTooDeep)

	require.ErrorIs(t, DecodeJSON(iotest.ErrReader(io.ErrUnexpectedEOF), &v, DecodeOptions{}), ErrBadJSON)
}

// adminAPI is a miniature admin route set wired the way the API layer is meant
// to: a method-routed mux (405 for wrong methods), LimitBody, CSRF, JSON decode.
func adminAPI(t *testing.T) (http.Handler, *CSRF, TokenHash) {
	c := newCSRF(t)
	sess := HashToken("raps_console")
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/nodes/{id}/approve", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Note string `json:"note"`
		}
		if err := DecodeRequestJSON(w, r, &req, DecodeOptions{DisallowUnknownFields: true}); err != nil {
			WriteError(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	h := LimitBody(DefaultMaxBodyBytes, c.Middleware(func(*http.Request) (TokenHash, bool) { return sess, true }, mux))
	return h, c, sess
}

// TestC1 covers TESTING.md C1: cross-origin POST 403, state change via GET 405,
// 10 MiB body 413, deeply nested JSON 400.
func TestC1(t *testing.T) {
	h, c, sess := adminAPI(t)
	tenMiB := `{"note":"` + strings.Repeat("x", 10<<20) + `"}`
	tests := []struct {
		name     string
		method   string
		body     io.Reader
		origin   string
		chunked  bool
		wantCode int
		wantErr  string
	}{
		{"same-origin POST", "POST", strings.NewReader(`{"note":"ok"}`), "https://admin.example.net", false, 204, ""},
		{"cross-origin POST", "POST", strings.NewReader(`{"note":"ok"}`), "https://evil.example", false, 403, "csrf"},
		{"state change via GET", "GET", nil, "https://admin.example.net", false, 405, ""},
		{"10 MiB body (Content-Length)", "POST", strings.NewReader(tenMiB), "https://admin.example.net", false, 413, "body_too_large"},
		{"10 MiB body (chunked)", "POST", strings.NewReader(tenMiB), "https://admin.example.net", true, 413, "body_too_large"},
		{"deeply nested JSON", "POST", strings.NewReader(nested(1000)), "https://admin.example.net", false, 400, "json_too_deep"},
		{"unknown field", "POST", strings.NewReader(`{"note":"x","approve_all":true}`), "https://admin.example.net", false, 400, "bad_json"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, "https://admin.example.net/api/nodes/n1/approve", tc.body)
			if tc.chunked {
				r.ContentLength = -1
				r.Body = io.NopCloser(r.Body) // hide the length
			}
			r.Header.Set("Origin", tc.origin)
			r.Header.Set("Content-Type", "application/json")
			r.Header.Set("X-CSRF-Token", c.Token(sess))
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			require.Equal(t, tc.wantCode, w.Code, w.Body.String())
			if tc.wantErr != "" {
				require.JSONEq(t, `{"error":"`+tc.wantErr+`"}`, w.Body.String())
			}
		})
	}
}

func TestDecodeRequestJSONContentType(t *testing.T) {
	var v map[string]any
	r := httptest.NewRequest("POST", "/x", bytes.NewReader([]byte(`{}`)))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	err := DecodeRequestJSON(httptest.NewRecorder(), r, &v, DecodeOptions{})
	require.ErrorIs(t, err, ErrUnsupportedMediaType)
	require.Equal(t, http.StatusUnsupportedMediaType, StatusCode(err))

	r = httptest.NewRequest("POST", "/x", bytes.NewReader([]byte(`{"a":1}`)))
	r.Header.Set("Content-Type", "application/json; charset=utf-8")
	require.NoError(t, DecodeRequestJSON(httptest.NewRecorder(), r, &v, DecodeOptions{}))
}

func TestStatusMapping(t *testing.T) {
	for err, want := range map[error]int{
		ErrBadCredentials: 401, ErrMFARequired: 401, ErrTOTPReplay: 401, ErrSessionExpired: 401,
		ErrLockedOut: 429, ErrRateLimited: 429, ErrStepUpRequired: 403, ErrCSRF: 403,
		ErrBodyTooLarge: 413, ErrTooDeep: 400, ErrBadJSON: 400, io.EOF: 500,
	} {
		require.Equal(t, want, StatusCode(err), err.Error())
	}
	w := httptest.NewRecorder()
	WriteError(w, retryErr(ErrLockedOut, "user", 90_500_000_000))
	require.Equal(t, 429, w.Code)
	require.Equal(t, "90", w.Header().Get("Retry-After"))
	require.JSONEq(t, `{"error":"locked_out"}`, w.Body.String())
}

func TestNewSecureCookie(t *testing.T) {
	c := NewSecureCookie(SessionCookieName, "raps_x", time.Time{})
	require.NoError(t, c.Valid())
	s := c.String()
	for _, want := range []string{"__Host-rap_session=raps_x", "Path=/", "HttpOnly", "Secure", "SameSite=Strict"} {
		require.Contains(t, s, want)
	}
}
