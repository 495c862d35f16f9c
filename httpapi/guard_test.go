package httpapi

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"
)

type lockedLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestRecoveryAnswersTypedInternalError: a panicking handler gets a typed 500
// internal with a request id, the panic is logged once with its stack and the
// same id, and counted; later requests are served normally.
func TestRecoveryAnswersTypedInternalError(t *testing.T) {
	logs := &lockedLog{}
	s := New(Options{Logger: hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Info})})
	h := s.guard(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/boom" {
			var m map[string]int
			m["x"]++ // a nil map write: a runtime panic
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/boom", nil))
	require.Equal(t, http.StatusInternalServerError, rec.Code)
	require.Equal(t, "application/json", rec.Header().Get("Content-Type"))
	var eb ErrorBody
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &eb))
	require.Equal(t, "internal", eb.Error.Code)
	id, _ := eb.Error.Details["request_id"].(string)
	require.Len(t, id, 16)
	require.Contains(t, eb.Error.Message, id)
	out := logs.String()
	require.Equal(t, 1, strings.Count(out, "handler panic recovered"), out)
	require.Contains(t, out, "request_id="+id)
	require.Contains(t, out, "goroutine ", "the stack is logged")
	require.Contains(t, out, "guard_test.go", "the stack names the panicking handler")
	require.NotContains(t, rec.Body.String(), "goroutine", "the stack never reaches the client")
	require.Equal(t, 1.0, panicCount(t, s))

	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/fine", nil))
	require.Equal(t, http.StatusNoContent, rec.Code)
	require.Equal(t, 1.0, panicCount(t, s))
}

// TestRecoveryAfterTheResponseBegan: a panic after the status line went out
// cannot become a clean error: the connection is aborted (the client sees a
// broken response, not a truncated success), logged and counted once.
func TestRecoveryAfterTheResponseBegan(t *testing.T) {
	logs := &lockedLog{}
	s := New(Options{Logger: hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Info})})
	srv := httptest.NewServer(s.guard(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte("partial"))
		panic("late failure")
	})))
	defer srv.Close()
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	require.NoError(t, err)
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	_, err = c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	require.NoError(t, err)
	// Either the buffered head never went out, or the body ends early: the
	// client sees a broken response either way, never a complete one.
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err == nil {
		_, err = io.ReadAll(res.Body)
	}
	require.Error(t, err, "the connection was aborted")
	require.Equal(t, 1.0, panicCount(t, s))
	require.Equal(t, 1, strings.Count(logs.String(), "handler panic recovered"))
}

// TestGuardRefusesBadPathsAndQueries covers the input checks in isolation.
func TestGuardRefusesBadPathsAndQueries(t *testing.T) {
	s := New(Options{})
	reached := false
	h := s.guard(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { reached = true }))
	for _, target := range []string{"/v1/nodes/%00", "/v1/nodes/%FF", "/v1/nodes?x=%00", "/v1/nodes?%FF=1", "/v1/nodes?x=%zz", "/v1/nodes?x=%C3%28"} {
		reached = false
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil))
		require.Equal(t, http.StatusBadRequest, rec.Code, target)
		require.Contains(t, rec.Body.String(), `"invalid_argument"`, target)
		require.False(t, reached, target)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/nodes/%C3%A9?q=%E2%82%AC", nil))
	require.True(t, reached, "valid UTF-8 passes")
}

// TestMediaTypeCheck covers checkMediaType's decisions.
func TestMediaTypeCheck(t *testing.T) {
	for _, c := range []struct {
		method, ct, body string
		ok               bool
	}{
		{http.MethodPost, "application/json", `{}`, true},
		{http.MethodPost, "Application/JSON; charset=utf-8", `{}`, true},
		{http.MethodPost, "", ``, true},
		{http.MethodDelete, "", ``, true},
		{http.MethodGet, "text/plain", `x`, true},
		{http.MethodPost, "", `{}`, false},
		{http.MethodPost, "text/plain", `{}`, false},
		{http.MethodPut, "application/x-www-form-urlencoded", `a=b`, false},
		{http.MethodPatch, "multipart/form-data; boundary=x", `{}`, false},
		{http.MethodPost, "application/json;;", `{}`, false},
		{http.MethodPost, "text/plain", ``, false},
	} {
		r := httptest.NewRequest(c.method, "/x", strings.NewReader(c.body))
		if c.body != "" {
			r.ContentLength = -1 // unknown length: the check looks at the body
		}
		if c.ct != "" {
			r.Header.Set("Content-Type", c.ct)
		}
		err := checkMediaType(r)
		require.Equal(t, c.ok, err == nil, "%+v: %v", c, err)
	}
}

func panicCount(t *testing.T, s *Server) float64 {
	t.Helper()
	mfs, err := s.Registry().Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == "rap_api_panics_total" {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatal("rap_api_panics_total is not registered")
	return 0
}
