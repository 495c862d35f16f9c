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
