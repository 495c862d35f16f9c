package console

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/authn"
	"github.com/rap-fabric/core/authority"
)

type noSession struct{}

func (noSession) Principal(*http.Request) (authority.Principal, error) {
	return authority.Principal{}, authn.ErrNoSession
}
func (noSession) CSRFToken(*http.Request, authority.Principal) string { return "" }

func TestConsoleWithoutSession(t *testing.T) {
	h := New(Options{Auth: noSession{}, Status: func() Status { return Status{NodeID: "a1", Quorum: false} }})
	for _, page := range []string{"/console/", "/console/nodes", "/console/audit", "/console/nodes/x"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, page, nil))
		require.Equal(t, http.StatusSeeOther, rec.Code, page)
		require.True(t, strings.HasPrefix(rec.Header().Get("Location"), "/console/login?next="), page)
	}
	// Pages never change state: other methods are 405.
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/console/join-requests", strings.NewReader("x")))
	require.Equal(t, http.StatusMethodNotAllowed, rec.Code)
	// The login page renders with the read-only banner and strict headers.
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/console/login", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	require.Contains(t, rec.Body.String(), `id="readonly-banner"`)
	require.Contains(t, rec.Header().Get("Content-Security-Policy"), "script-src 'self'")
	require.NotContains(t, rec.Body.String(), "http://", "no external assets")
	// Embedded assets are served.
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/console/static/app.js", nil))
	require.Equal(t, http.StatusOK, rec.Code)
}
