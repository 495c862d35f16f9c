package httpapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/rap-fabric/core/authority"
)

// scrapeTokenHash returns the SHA-256 of a scrape token (nil for none); only
// the hash is kept in memory after start.
func scrapeTokenHash(token string) []byte {
	if token == "" {
		return nil
	}
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// scrapeAuth guards /metrics on the API listener: it needs the configured
// scrape token as a bearer token. Without a configured token every request
// is refused: the metrics are served on the loopback metrics listener.
func (s *Server) scrapeAuth(next http.Handler) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if s.scrapeHash == nil {
			return authority.Errf(authority.CodeForbidden, "metrics are not served on the API listener: scrape the loopback metrics listener (--metrics-listen) or configure a scrape token (--metrics-token-file)")
		}
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		got := sha256.Sum256([]byte(tok))
		if !ok || subtle.ConstantTimeCompare(got[:], s.scrapeHash) != 1 {
			return authority.Errf(authority.CodeUnauthorized, "metrics need the scrape token: Authorization: Bearer <token>")
		}
		next.ServeHTTP(w, r)
		return nil
	}
}

// MetricsHandler serves the registry without authentication, for the
// daemon's loopback metrics listener.
func (s *Server) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{})
}
