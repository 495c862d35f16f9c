package httpapi

// The outermost layer of the API, in front of every route (the heartbeat fast
// path included):
//
//   - recovery: a panicking handler is logged once with its stack, counted in
//     rap_api_panics_total and answered 500 internal with a request id (or, if
//     the response had begun, its connection is aborted);
//   - input: the path and the query must be valid UTF-8 without NUL bytes, and
//     an Idempotency-Key printable ASCII (400 invalid_argument otherwise): such
//     values never reach PostgreSQL, which refuses them in text;
//   - media type (checkMediaType, run by wrap and wrapHot for every route,
//     before any credential is looked at): a request with a body on a write
//     method must declare Content-Type application/json (415
//     unsupported_media_type otherwise), which an HTML form cannot send;
//   - idempotency: a write carrying an Idempotency-Key gets a fingerprint of
//     its method, path, query and body, which authority.Fenced stores with the
//     response and compares on a retry (422 idempotency_key_reused when they
//     differ).

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"runtime/debug"
	"strings"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rap-fabric/core/authority"
)

// newPanicCounter registers the counter of recovered handler panics.
func newPanicCounter(reg *prometheus.Registry) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "rap_api_panics_total", Help: "API handler panics recovered (each answered 500 internal)."})
	reg.MustRegister(c)
	return c
}

// guard wraps next with recovery, input checks and the Idempotency-Key
// fingerprint.
func (s *Server) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gw := &guardWriter{ResponseWriter: w}
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler { //nolint:errorlint // the sentinel is compared by identity
					panic(v)
				}
				s.recovered(gw, r, v)
			}
		}()
		if err := checkInput(r); err != nil {
			s.writeError(gw, r, err)
			return
		}
		if r.Header.Get("Idempotency-Key") != "" && writeMethod(r.Method) {
			h, err := fingerprint(r)
			if err != nil {
				s.writeError(gw, r, err)
				return
			}
			r = r.WithContext(authority.WithRequestHash(r.Context(), h))
		}
		next.ServeHTTP(gw, r)
	})
}

// recovered logs a recovered panic once, counts it and answers 500 internal
// with a request id the log line carries too.
func (s *Server) recovered(w *guardWriter, r *http.Request, v any) {
	id := requestID()
	s.panics.Inc()
	s.log.Error("handler panic recovered", "request_id", id, "method", r.Method, "path", strings.ToValidUTF8(r.URL.Path, "?"),
		"panic", fmt.Sprint(v), "stack", string(debug.Stack()))
	if w.wrote {
		// Part of a response went out: a clean error is impossible, so end the
		// connection (net/http does not log ErrAbortHandler again).
		panic(http.ErrAbortHandler)
	}
	writeJSON(w, http.StatusInternalServerError, ErrorBody{Error: ErrorDetail{Code: string(authority.CodeInternal),
		Message: "internal error (request " + id + ")", Details: map[string]any{"request_id": id}}})
}

func requestID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// guardWriter records whether the response has begun.
type guardWriter struct {
	http.ResponseWriter
	wrote bool
}

func (w *guardWriter) WriteHeader(code int) {
	w.wrote = true
	w.ResponseWriter.WriteHeader(code)
}

func (w *guardWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *guardWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// cleanText reports whether s is valid UTF-8 without NUL bytes.
func cleanText(s string) bool { return utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 }

// checkInput refuses a path or query that is not valid UTF-8 or holds a NUL
// (decoded: %00 and %FF count), and an Idempotency-Key that is not printable
// ASCII.
func checkInput(r *http.Request) error {
	if !cleanText(r.URL.Path) {
		return authority.Errf(authority.CodeInvalid, "the request path must be valid UTF-8 without NUL bytes")
	}
	if r.URL.RawQuery != "" {
		q, err := url.ParseQuery(r.URL.RawQuery)
		if err != nil {
			return authority.Errf(authority.CodeInvalid, "malformed query string")
		}
		for k, vs := range q {
			if !cleanText(k) {
				return authority.Errf(authority.CodeInvalid, "query parameter names must be valid UTF-8 without NUL bytes")
			}
			for _, v := range vs {
				if !cleanText(v) {
					return authority.Errf(authority.CodeInvalid, "query parameter %q must be valid UTF-8 without NUL bytes", k)
				}
			}
		}
	}
	if k := r.Header.Get("Idempotency-Key"); k != "" {
		for i := 0; i < len(k); i++ {
			if k[i] < 0x20 || k[i] > 0x7e {
				return authority.Errf(authority.CodeInvalid, "Idempotency-Key must be printable ASCII")
			}
		}
	}
	return nil
}

func writeMethod(m string) bool {
	switch m {
	case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
		return true
	}
	return false
}

// checkMediaType refuses a write whose body is not declared JSON: a declared
// Content-Type must be application/json (parameters such as charset allowed);
// without one, the body must be empty.
func checkMediaType(r *http.Request) error {
	if !writeMethod(r.Method) {
		return nil
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if ct == "application/json" {
			return nil // what every client sends: no parsing on the hot route
		}
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			return authority.Errf(codeUnsupportedMedia, "Content-Type must be application/json")
		}
		return nil
	}
	if r.ContentLength == 0 || r.Body == nil || r.Body == http.NoBody {
		return nil
	}
	// Unknown length (chunked) or a declared one: look at the first byte.
	var one [1]byte
	n, _ := io.ReadFull(r.Body, one[:])
	if n == 0 {
		return nil
	}
	return authority.Errf(codeUnsupportedMedia, "a request body needs Content-Type: application/json")
}

// fingerprint hashes the method, path, query and body of r (restoring the
// body for the handler). A body beyond MaxBodyBytes is left for the handler's
// own limit to refuse.
func fingerprint(r *http.Request) (string, error) {
	h := sha256.New()
	h.Write([]byte(r.Method + "\x00" + r.URL.Path + "\x00" + r.URL.RawQuery + "\x00"))
	if r.Body != nil && r.Body != http.NoBody {
		buf, err := io.ReadAll(io.LimitReader(r.Body, MaxBodyBytes+1))
		if err != nil {
			return "", authority.Errf(authority.CodeInvalid, "could not read the request body")
		}
		h.Write(buf)
		r.Body = readCloser{io.MultiReader(bytes.NewReader(buf), r.Body), r.Body}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

type readCloser struct {
	io.Reader
	io.Closer
}
