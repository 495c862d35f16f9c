package adminingress

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/rap-fabric/core/agentapi"
	"github.com/rap-fabric/core/uimanifest"
)

// Source is the membership the endpoint serves, as the agent runtime sees
// it. The endpoint never stores what it returns.
type Source interface {
	// Observe returns the local part of an observation: the applied signed
	// snapshot and the last heartbeat acknowledgement.
	Observe() Observation
	// Grant asks the authorities GET /v1/agent/admin-ingress with the
	// node's certificate (mTLS).
	Grant(ctx context.Context) (agentapi.AdminIngress, error)
	// NodeCertificate is the node's current identity certificate and key
	// (with the cluster CA as the chain's second certificate), used when
	// no certificate file is configured.
	NodeCertificate() (*tls.Certificate, error)
	// Forwarding names the authorities and how to verify them.
	Forwarding() Forwarding
}

// Forwarding is where the endpoint forwards requests: the authorities' API
// addresses (host:port), the cluster CA pin their certificates must chain
// to, and the TLS server name to send.
type Forwarding struct {
	Authorities []string
	CAPin       string
	// CAPins are more pinned cluster CA roots, any of which may sign the
	// authorities' certificates (a CA rotation's overlap).
	CAPins     []string
	ServerName string
}

// Options configure an Endpoint.
type Options struct {
	// Listen is the TCP address of the HTTPS listener (required).
	Listen string
	// CertFile and KeyFile are a PEM certificate (chain) and key; empty:
	// the node's identity certificate.
	CertFile, KeyFile string
	// Every is how often the preconditions are checked; 0 means 2 s.
	Every time.Duration
	// Limits bound observation ages; zero fields mean 15 s (heartbeat) and
	// 3 × Every (grant).
	Limits Limits
	// RequestTimeout bounds one forwarded exchange; 0 means 10 s.
	RequestTimeout time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger; nil means a null logger.
	Logger hclog.Logger
}

// Status is the endpoint's state as the agent's status shows it.
type Status struct {
	Listen    string    `json:"listen"`
	Serving   bool      `json:"serving"`
	Since     time.Time `json:"since,omitzero"`
	CheckedAt time.Time `json:"checked_at,omitzero"`
	ClusterID string    `json:"cluster_id,omitempty"`
	Unmet     []Unmet   `json:"unmet,omitempty"`
}

// Endpoint is a Cluster Admin Endpoint.
type Endpoint struct {
	src Source
	o   Options
	log hclog.Logger
	fw  *forwarder

	mu       sync.Mutex
	st       Status
	grant    *agentapi.AdminIngress
	grantAt  time.Time
	grantErr error
	manifest *uimanifest.Manifest
	manErr   error
	fileCert *tls.Certificate
	cert     *tls.Certificate
	certErr  error
	ln       net.Listener
}

// New builds an endpoint (it does not listen yet; see Run).
func New(src Source, o Options) (*Endpoint, error) {
	if o.Listen == "" {
		return nil, errors.New("adminingress: a listen address is required")
	}
	if (o.CertFile == "") != (o.KeyFile == "") {
		return nil, errors.New("adminingress: give both a certificate file and a key file, or neither (the node identity is used)")
	}
	if o.Every <= 0 {
		o.Every = 2 * time.Second
	}
	if o.Limits.HeartbeatMaxAge <= 0 {
		o.Limits.HeartbeatMaxAge = 15 * time.Second
	}
	if o.Limits.GrantMaxAge <= 0 {
		o.Limits.GrantMaxAge = 3 * o.Every
	}
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = 10 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
	e := &Endpoint{src: src, o: o, log: o.Logger.Named("admin-endpoint")}
	if o.CertFile != "" {
		c, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("adminingress: %w", err)
		}
		e.fileCert = &c
	}
	fw, err := newForwarder(src.Forwarding(), src.Forwarding, o.RequestTimeout)
	if err != nil {
		return nil, err
	}
	e.fw = fw
	e.st = Status{Listen: o.Listen, Unmet: []Unmet{{Code: ReasonStarting, Detail: "the preconditions have not been checked yet"}}}
	return e, nil
}

// Status returns the endpoint's current state.
func (e *Endpoint) Status() Status {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.st
	s.Unmet = append([]Unmet(nil), s.Unmet...)
	return s
}

// Addr is the bound listener address ("" before Run listens).
func (e *Endpoint) Addr() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.ln == nil {
		return ""
	}
	return e.ln.Addr().String()
}

// Check runs one round: ask the authorities, look at the local state,
// evaluate, and switch serving on or off.
func (e *Endpoint) Check(ctx context.Context) Status {
	cctx, cancel := context.WithTimeout(ctx, e.o.RequestTimeout)
	g, err := e.src.Grant(cctx)
	cancel()
	now := e.o.Now()
	e.mu.Lock()
	if err == nil {
		m, merr := uimanifest.Decode(g.Manifest)
		e.grant, e.grantAt, e.grantErr, e.manErr = &g, now, nil, merr
		if merr == nil {
			e.manifest = m
		}
		e.fw.setCluster(g.ClusterID)
	} else {
		e.grantErr = err
	}
	e.mu.Unlock()
	e.refreshCert()

	obs := e.src.Observe()
	e.mu.Lock()
	obs.Grant, obs.GrantAt, obs.GrantErr, obs.ManifestErr = e.grant, e.grantAt, e.grantErr, e.manErr
	if e.cert != nil {
		obs.Certificate = e.cert.Leaf
	}
	obs.CertificateErr = e.certErr
	unmet := Evaluate(now, obs, e.o.Limits)
	was := e.st.Serving
	serving := len(unmet) == 0
	if serving != was || e.st.Since.IsZero() {
		e.st.Since = now
	}
	e.st.Serving, e.st.CheckedAt, e.st.Unmet = serving, now, unmet
	if e.grant != nil {
		e.st.ClusterID = e.grant.ClusterID
	}
	st := e.st
	e.mu.Unlock()
	switch {
	case serving && !was:
		e.log.Info("cluster admin endpoint is up", "listen", e.o.Listen)
	case !serving && was:
		e.log.Warn("cluster admin endpoint is down", "reasons", reasonList(unmet))
	}
	return st
}

func reasonList(us []Unmet) string {
	s := make([]string, len(us))
	for i, u := range us {
		s[i] = u.String()
	}
	return strings.Join(s, "; ")
}

func (e *Endpoint) refreshCert() {
	var c *tls.Certificate
	var err error
	if e.fileCert != nil {
		c = e.fileCert
	} else {
		c, err = e.src.NodeCertificate()
	}
	if err == nil && c != nil && c.Leaf == nil && len(c.Certificate) > 0 {
		cp := *c
		cp.Leaf, err = x509.ParseCertificate(cp.Certificate[0])
		c = &cp
	}
	e.mu.Lock()
	if err != nil || c == nil {
		e.cert, e.certErr = nil, err
	} else {
		e.cert, e.certErr = c, nil
	}
	e.mu.Unlock()
}

func (e *Endpoint) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cert == nil {
		return nil, errors.New("adminingress: no TLS certificate")
	}
	return e.cert, nil
}

// Run listens on Options.Listen and serves until ctx ends, checking the
// preconditions every Options.Every.
func (e *Endpoint) Run(ctx context.Context) error {
	e.refreshCert()
	ln, err := net.Listen("tcp", e.o.Listen)
	if err != nil {
		return fmt.Errorf("adminingress: %w", err)
	}
	e.mu.Lock()
	e.ln = ln
	e.st.Listen = ln.Addr().String()
	e.mu.Unlock()
	tc := &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: e.getCertificate}
	srv := &http.Server{Handler: e.Handler(), TLSConfig: tc, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 60 * time.Second, IdleTimeout: 2 * time.Minute, ErrorLog: e.log.StandardLogger(&hclog.StandardLoggerOptions{ForceLevel: hclog.Debug})}
	done := make(chan error, 1)
	go func() { done <- srv.ServeTLS(ln, "", "") }()
	e.log.Info("cluster admin endpoint listening (down until every precondition holds)", "listen", ln.Addr().String())
	t := time.NewTicker(e.o.Every)
	defer t.Stop()
	e.Check(ctx)
	for {
		select {
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = srv.Shutdown(sctx)
			cancel()
			e.fw.close()
			return nil
		case err := <-done:
			e.fw.close()
			return fmt.Errorf("adminingress: %w", err)
		case <-t.C:
			e.Check(ctx)
		}
	}
}
