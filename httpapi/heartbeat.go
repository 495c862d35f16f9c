package httpapi

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rap-fabric/core/agentapi"
	"github.com/rap-fabric/core/authority"
)

// Heartbeat routes:
//
//	POST /v1/agent/heartbeat             node (mTLS): one heartbeat; any authority takes it (not fenced)
//	POST /v1/agent/heartbeat/stream      node (mTLS): newline-delimited heartbeats, one reply line each (heartbeat_stream.go)
//	GET  /v1/agent/desired               node (mTLS): the membership's active role assignments
//	POST /v1/agent/certificate/status    public: good / revoked / expired of a node certificate
//	GET  /v1/nodes/{id}/heartbeat        owner: latest heartbeat per cluster, health derived now
//	GET  /v1/nodes/{id}/heartbeats       owner: history, newest first (?cluster, ?limit, ?offset)
//
// POST /v1/agent/heartbeat is the hot route (every agent, every few seconds):
// Handler serves it before the router's walk over every route, through
// wrapHot (wrap's metrics, headers and errors, with the request deadline only
// where the route can wait: the certificate check on a cache miss), reading
// the body into a pooled buffer.
func (s *Server) heartbeatRoutes(r *mux.Router) {
	r.Handle(agentapi.PathHeartbeat, s.wrapHot("agent.heartbeat", s.heartbeatAuth(s.agentHeartbeat))).Methods(http.MethodPost).Name(heartbeatRoute)
	r.Handle(agentapi.PathHeartbeatStream, s.wrapStream(heartbeatStreamRoute, s.heartbeatAuth(s.agentHeartbeatStream))).Methods(http.MethodPost)
	r.Handle(agentapi.PathDesired, s.wrap("agent.desired", s.nodeAuth(s.agentDesired))).Methods(http.MethodGet)
	r.Handle(agentapi.PathCertStatus, s.wrap("agent.certificate.status", s.agentCertStatus)).Methods(http.MethodPost)
	r.Handle("/v1/nodes/{id}/heartbeat", s.wrap("nodes.heartbeat", s.ownerAuth(s.nodeHeartbeat))).Methods(http.MethodGet)
	r.Handle("/v1/nodes/{id}/heartbeats", s.wrap("nodes.heartbeats", s.ownerAuth(s.nodeHeartbeats))).Methods(http.MethodGet)
}

// heartbeatRoute names the router's POST /v1/agent/heartbeat route.
const heartbeatRoute = "agent.heartbeat"

// withHotRoutes serves POST /v1/agent/heartbeat with the handler the router
// holds for it, without walking every route first, and everything else
// through the router. The router would pick the same handler: the path is
// clean and matched exactly, and the handler reads no route variables
// (TestHeartbeatFastPathMatchesTheRouter checks the router's choice).
func withHotRoutes(router *mux.Router) http.Handler {
	rt := router.Get(heartbeatRoute)
	if rt == nil {
		return router
	}
	hb := rt.GetHandler()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == agentapi.PathHeartbeat {
			hb.ServeHTTP(w, r)
			return
		}
		router.ServeHTTP(w, r)
	})
}

// wrapHot is wrap for a route that needs no request deadline of its own (the
// handler bounds whatever may wait) and keeps the metric series it touches
// instead of looking them up by label at every request: the same series, the
// same values, created on first use as with wrap.
func (s *Server) wrapHot(name string, h handlerFunc) http.Handler {
	var latency atomic.Pointer[prometheus.Observer]
	var codes [600]atomic.Pointer[prometheus.Counter]
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, code: 200}
		sw.Header().Set("X-Content-Type-Options", "nosniff")
		if err := checkMediaType(r); err != nil {
			s.writeError(sw, r, err)
		} else if err := h(sw, r); err != nil {
			s.writeError(sw, r, err)
		}
		if sw.code > 0 && sw.code < len(codes) {
			c := codes[sw.code].Load()
			if c == nil {
				cc := s.requests.WithLabelValues(name, strconv.Itoa(sw.code))
				c = &cc
				codes[sw.code].Store(c)
			}
			(*c).Inc()
		} else {
			s.requests.WithLabelValues(name, strconv.Itoa(sw.code)).Inc()
		}
		o := latency.Load()
		if o == nil {
			oo := s.latency.WithLabelValues(name)
			o = &oo
			latency.Store(o)
		}
		(*o).Observe(time.Since(start).Seconds())
	})
}

// heartbeatAuth authenticates the node with the ingest's certificate cache
// (no database round trip per heartbeat). A cache miss checks the certificate
// in the database within RequestTimeout.
func (s *Server) heartbeatAuth(h func(w http.ResponseWriter, r *http.Request, node authority.NodePrincipal) error) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
			return authority.Errf(authority.CodeUnauthorized, "agent routes need a node client certificate (mTLS)")
		}
		hb := s.a.Heartbeats()
		cert, source := r.TLS.PeerCertificates[0], sourceAddr(r)
		p, ok := hb.CachedPrincipal(cert, source)
		if !ok {
			ctx, cancel := context.WithTimeout(r.Context(), RequestTimeout)
			defer cancel()
			var err error
			if p, err = hb.Authenticate(ctx, cert, source); err != nil {
				return err
			}
		}
		return h(w, r, p)
	}
}

func (s *Server) agentHeartbeat(w http.ResponseWriter, r *http.Request, n authority.NodePrincipal) error {
	in, err := s.decodeHeartbeat(w, r)
	if err != nil {
		return err
	}
	ack, err := s.a.Heartbeats().Ingest(n, in)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, ack)
	return nil
}

// bodyBuffers hold request bodies of the heartbeat route. Only
// copies of their bytes outlive a request.
var bodyBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

const maxPooledBuffer = 64 << 10

func putBuffer(b *bytes.Buffer) {
	if b.Cap() <= maxPooledBuffer {
		b.Reset()
		bodyBuffers.Put(b)
	}
}

// SetLeanHeartbeatDecode turns the lean heartbeat decoder
// (heartbeat_decode.go) on (the default) or off, leaving encoding/json alone
// on the heartbeat routes: benchmarks measure both paths in one run.
func (s *Server) SetLeanHeartbeatDecode(on bool) { s.plainHeartbeatDecode.Store(!on) }

func (s *Server) decodeHeartbeat(w http.ResponseWriter, r *http.Request) (authority.HeartbeatInput, error) {
	return decodeHeartbeatBody(w, r, !s.plainHeartbeatDecode.Load())
}

// decodeHeartbeat is decodeJSON for a heartbeat, with the same limits, errors
// and result; the body is read into a pooled buffer and decoded by the lean
// decoder when it can.
func decodeHeartbeat(w http.ResponseWriter, r *http.Request) (authority.HeartbeatInput, error) {
	return decodeHeartbeatBody(w, r, true)
}

func decodeHeartbeatBody(w http.ResponseWriter, r *http.Request, lean bool) (authority.HeartbeatInput, error) {
	buf := bodyBuffers.Get().(*bytes.Buffer)
	defer putBuffer(buf)
	buf.Reset()
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, MaxBodyBytes)); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return authority.HeartbeatInput{}, authority.Errf(authority.CodeTooLarge, "request body exceeds %d bytes", MaxBodyBytes)
		}
		return authority.HeartbeatInput{}, authority.Errf(authority.CodeInvalid, "could not read the request body")
	}
	body := buf.Bytes()
	if len(bytes.TrimSpace(body)) == 0 {
		body = []byte("{}")
	}
	return decodeHeartbeatLine(body, lean)
}

// decodeHeartbeatLine decodes one heartbeat (bounded, not blank): the lean
// decoder when lean and it can, encoding/json otherwise; the same result and
// errors either way.
func decodeHeartbeatLine(body []byte, lean bool) (authority.HeartbeatInput, error) {
	if err := checkDepth(body, MaxJSONDepth); err != nil {
		return authority.HeartbeatInput{}, err
	}
	if lean {
		if in, ok := leanHeartbeat(body); ok {
			in.SentAt = in.SentAt.UTC()
			return in, nil
		}
	}
	// encoding/json copies every value it keeps (strings, json.RawMessage),
	// so nothing of the pooled buffer outlives the request.
	var in authority.HeartbeatInput
	err := decodeBody(body, &in)
	// One canonical value whatever offset the agent wrote: UTC.
	in.SentAt = in.SentAt.UTC()
	return in, err
}

func (s *Server) agentDesired(w http.ResponseWriter, r *http.Request, n authority.NodePrincipal) error {
	d, err := s.a.Desired(r.Context(), n)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, d)
	return nil
}

func (s *Server) agentCertStatus(w http.ResponseWriter, r *http.Request) error {
	var b agentapi.CertStatusRequest
	if err := decodeJSON(w, r, &b); err != nil {
		return err
	}
	st, err := s.a.CertificateStatus(r.Context(), b.Certificate)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}

func (s *Server) nodeHeartbeat(w http.ResponseWriter, r *http.Request, _ authority.Actor) error {
	hs, err := s.a.Heartbeats().LatestHeartbeats(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, List[authority.NodeHeartbeat]{Items: hs})
	return nil
}

func (s *Server) nodeHeartbeats(w http.ResponseWriter, r *http.Request, _ authority.Actor) error {
	p, err := page(r)
	if err != nil {
		return err
	}
	rows, err := s.a.Heartbeats().History(r.Context(), r.URL.Query().Get("cluster"), mux.Vars(r)["id"], p)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, listOf(rows, p))
	return nil
}
