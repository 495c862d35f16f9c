package httpapi

import (
	"net"
	"net/http"
	"strings"

	"github.com/rap-fabric/core/authority"
)

func sourceAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// ownerAuth admits platform owner/admin credentials only. A request that
// presents a node certificate is refused outright: agent certificates are
// role-bound to agent routes.
func (s *Server) ownerAuth(h func(w http.ResponseWriter, r *http.Request, actor authority.Actor) error) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
			return authority.Errf(authority.CodeForbidden, "node certificates cannot call owner routes")
		}
		authz := r.Header.Get("Authorization")
		if !strings.HasPrefix(authz, "Bearer ") {
			return authority.Errf(authority.CodeUnauthorized, "owner routes need an Authorization: Bearer credential")
		}
		actor, _, err := s.a.CheckOwnerToken(r.Context(), strings.TrimPrefix(authz, "Bearer "))
		if err != nil {
			_ = s.a.Audit(r.Context(), authority.Op{Action: "auth.refuse", Actor: authority.Actor{ID: "anonymous", Kind: "user", SourceAddr: sourceAddr(r)},
				Details: map[string]any{"route": r.URL.Path}}, "denied")
			return authority.Errf(authority.CodeUnauthorized, "invalid credential")
		}
		actor.SourceAddr = sourceAddr(r)
		return h(w, r, actor)
	}
}

// nodeAuth admits a verified, unrevoked node certificate only.
func (s *Server) nodeAuth(h func(w http.ResponseWriter, r *http.Request, node authority.NodePrincipal) error) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
			return authority.Errf(authority.CodeUnauthorized, "agent routes need a node client certificate (mTLS)")
		}
		p, err := s.a.AuthenticateNode(r.Context(), r.TLS.PeerCertificates[0], sourceAddr(r))
		if err != nil {
			return err
		}
		return h(w, r, p)
	}
}
