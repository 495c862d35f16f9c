package httpapi_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/httpapi"
	"github.com/rap-fabric/core/internal/openapigen"
)

// TestOpenAPIMatchesRoutes keeps docs/openapi.json in step with the router:
// every route is documented and every documented operation exists.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	data, err := os.ReadFile("../docs/openapi.json")
	require.NoError(t, err)
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	require.NoError(t, json.Unmarshal(data, &doc))
	require.True(t, strings.HasPrefix(doc.OpenAPI, "3."))
	documented := map[string]bool{}
	for p, ops := range doc.Paths {
		for m := range ops {
			documented[strings.ToUpper(m)+" "+p] = true
		}
	}
	s := httpapi.New(httpapi.Options{})
	routed := map[string]bool{}
	for _, r := range s.Routes() {
		routed[r.Method+" "+r.Path] = true
	}
	var missing, extra []string
	for k := range routed {
		if !documented[k] {
			missing = append(missing, k)
		}
	}
	for k := range documented {
		if !routed[k] {
			extra = append(extra, k)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	require.Empty(t, missing, "routes missing from docs/openapi.json")
	require.Empty(t, extra, "docs/openapi.json documents routes that do not exist")
}

// TestOpenAPIServedCopyIsTheDoc: GET /v1/openapi.json serves exactly
// docs/openapi.json (the embedded copy is regenerated with it).
func TestOpenAPIServedCopyIsTheDoc(t *testing.T) {
	want, err := os.ReadFile("../docs/openapi.json")
	require.NoError(t, err)
	s := httpapi.New(httpapi.Options{})
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/openapi.json", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	require.Equal(t, "application/json", rec.Header().Get("Content-Type"))
	require.Equal(t, string(want), rec.Body.String(), "run python3 scripts/openapi.py")
}

// TestOpenAPISchemasFromGoTypes: docs/openapi.json carries exactly the
// request and response schemas internal/openapigen derives from the Go types
// the handlers decode and answer (a new or changed field, or a new route,
// without regenerating fails here), and every route has a typed success
// response (except those openapigen.Exempt names with a reason).
func TestOpenAPISchemasFromGoTypes(t *testing.T) {
	a, err := openapigen.Analyze("..")
	require.NoError(t, err)
	doc, err := os.ReadFile("../docs/openapi.json")
	require.NoError(t, err)
	out, err := a.Enrich(doc)
	require.NoError(t, err)
	require.Equal(t, string(out), string(doc), "docs/openapi.json is stale: run python3 scripts/openapi.py")
	require.Empty(t, a.Undocumented(out), "routes without a typed response schema")
	for _, r := range httpapi.New(httpapi.Options{}).Routes() {
		if _, exempt := openapigen.Exempt[r.Method+" "+r.Path]; exempt {
			continue
		}
		op, ok := a.Lookup(r.Method, r.Path)
		require.True(t, ok, "%s %s: registration not understood by openapigen", r.Method, r.Path)
		require.NotNil(t, op.Response, "%s %s: no answered type found", r.Method, r.Path)
	}
}
