// Package loopback serves operator-only HTTP endpoints (Prometheus metrics,
// pprof) on listeners that accept loopback addresses only: 127.0.0.0/8, ::1
// or "localhost". An address on another interface, or without a host
// (":9464", which listens on every interface), is refused before anything
// listens. Reaching them from elsewhere is a deliberate act (an SSH tunnel, a
// local Prometheus agent), never an accident of configuration.
//
// The package owns listening and the pprof mux; it never decides what a
// metrics registry holds.
package loopback

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// ErrNotLoopback is returned for an address that is not a loopback address.
var ErrNotLoopback = errors.New("loopback: address is not a loopback address")

// Check reports whether addr ("host:port") names a loopback host.
func Check(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("loopback: %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("%w: %q (use 127.0.0.1:<port> or [::1]:<port>)", ErrNotLoopback, addr)
}

// Server is one loopback HTTP server.
type Server struct {
	ln  net.Listener
	srv *http.Server
	err chan error
}

// Listen checks addr, listens on it and serves h until Close.
func Listen(addr string, h http.Handler) (*Server, error) {
	if err := Check(addr); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &Server{ln: ln, err: make(chan error, 1),
		srv: &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 60 * time.Second}}
	go func() { s.err <- s.srv.Serve(ln) }()
	return s, nil
}

// Addr returns the address it listens on (with the port chosen for ":0").
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops the server (open requests get up to 2 s to finish).
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	<-s.err
	return err
}

// Pprof returns a mux with the net/http/pprof handlers under /debug/pprof/.
func Pprof() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}
