package httpapi

import (
	_ "embed" // the served OpenAPI document
	"net/http"

	"github.com/gorilla/mux"
)

// openAPIDoc is docs/openapi.json as generated (scripts/openapi.py writes
// both copies; TestOpenAPIServedCopyIsTheDoc keeps them identical).
//
//go:embed openapi.json
var openAPIDoc []byte

func (s *Server) openAPIRoutes(r *mux.Router) {
	r.Handle("/v1/openapi.json", s.wrap("openapi", func(w http.ResponseWriter, _ *http.Request) error {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-cache")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(openAPIDoc)
		return nil
	})).Methods(http.MethodGet)
}
