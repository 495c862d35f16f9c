// Package apiclient is the HTTP client of the authority JSON API used by rapctl,
// the node agent and tests. It verifies the server against a pinned CA, follows
// not_leader answers to the leader, fails over between the authorities it
// knows, and returns API errors as *Error with the machine-readable code.
//
// It imports nothing of the authority side (no database, no Raft), so the agent
// binary stays free of them.
package apiclient

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rap-fabric/core/pki"
)

// Error is an API error response.
type Error struct {
	Status  int            `json:"-"`
	Code    string         `json:"code"`
	Message string         `json:"message"`
	Details map[string]any `json:"details,omitempty"`
}

// Error implements error.
func (e *Error) Error() string { return fmt.Sprintf("%s (%d): %s", e.Code, e.Status, e.Message) }

// ErrUnreachable is returned when no authority answered.
var ErrUnreachable = errors.New("apiclient: no authority reachable")

// Options configure a Client.
type Options struct {
	// Servers are authority API addresses (host:port), tried in order.
	Servers []string
	// Token is the owner bearer credential (owner routes only).
	Token string
	// CAPin pins the CA that must sign the server certificate ("sha256:…").
	CAPin string
	// CAPins are more pinned CAs, any of which may sign the server
	// certificate instead (a cluster CA rotation's overlap).
	CAPins []string
	// ServerName is the TLS server name to send (SNI); "" means the host.
	ServerName string
	// Certificate is the client certificate (agent routes).
	Certificate *tls.Certificate
	// Timeout bounds one HTTP exchange; 0 means 10 s.
	Timeout time.Duration
	// MaxRedirects bounds not_leader hops; 0 means 3, a negative value means
	// a not_leader answer is returned, not followed.
	MaxRedirects int
}

// Client talks to the authority group.
type Client struct {
	opts Options
	hc   *http.Client
	// sc shares hc's transport without the overall timeout (streams).
	sc *http.Client
	// last is shared with the clients made by WithTimeout.
	last *lastServer
}

// lastServer is the server that answered last, tried first next time.
type lastServer struct {
	mu   sync.Mutex
	pref string
}

// New builds a client.
func New(o Options) (*Client, error) {
	if len(o.Servers) == 0 {
		return nil, errors.New("apiclient: at least one server address is needed")
	}
	if o.Timeout == 0 {
		o.Timeout = 10 * time.Second
	}
	if o.MaxRedirects == 0 {
		o.MaxRedirects = 3
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS13, ServerName: o.ServerName}
	var pins []string
	for _, p := range append([]string{o.CAPin}, o.CAPins...) {
		if p == "" {
			continue
		}
		if err := pki.ValidatePin(p); err != nil {
			return nil, fmt.Errorf("apiclient: CA pin %q: %w", p, err)
		}
		pins = append(pins, p)
	}
	if len(pins) > 0 {
		// The chain is checked here against the pinned CA instead of the system
		// roots: the server must present [leaf, CA] with CA matching a pin.
		tc.InsecureSkipVerify = true //nolint:gosec // verified in VerifyConnection
		tc.VerifyConnection = func(cs tls.ConnectionState) error { return VerifyPinnedChainAny(cs.PeerCertificates, pins) }
	}
	if o.Certificate != nil {
		cert := *o.Certificate
		tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
	}
	// HTTP/2 when the authority offers it (every authority since
	// 2026-12-06; HTTP/1.1 otherwise): the heartbeat stream, the snapshot
	// long poll and every other request of an agent share one TCP + TLS
	// connection per authority instead of one each, which halves the
	// sockets and the per-connection memory on both sides at fleet scale.
	// One connection carries every request, so a connection that stops
	// answering must be found and dropped: a PING goes out after
	// SendPingTimeout without a frame and the connection closes when its
	// answer is PingTimeout late (HTTP/1.1 dropped a timed-out request's
	// connection by itself).
	tr := &http.Transport{TLSClientConfig: tc, DialContext: (&net.Dialer{Timeout: 3 * time.Second}).DialContext,
		TLSHandshakeTimeout: 5 * time.Second, MaxIdleConnsPerHost: 16, IdleConnTimeout: 90 * time.Second,
		ExpectContinueTimeout: 2 * time.Second, // streams only (OpenStream sends Expect: 100-continue)
		ForceAttemptHTTP2:     true,
		HTTP2:                 &http.HTTP2Config{SendPingTimeout: 10 * time.Second, PingTimeout: 5 * time.Second}}
	return &Client{opts: o, hc: &http.Client{Transport: tr, Timeout: o.Timeout}, sc: &http.Client{Transport: tr}, last: &lastServer{}}, nil
}

// WithTimeout returns a client like c whose exchanges are bounded by d
// instead (e.g. a long poll), sharing c's connections and its last
// answering server: over HTTP/2 both go over one connection per authority.
// Closing either closes the idle connections of both.
func (c *Client) WithTimeout(d time.Duration) *Client {
	o := c.opts
	o.Timeout = d
	return &Client{opts: o, hc: &http.Client{Transport: c.hc.Transport, Timeout: d}, sc: c.sc, last: c.last}
}

// VerifyPinnedChain checks that chain[0] is signed by a CA certificate in the
// chain whose pin is pin.
func VerifyPinnedChain(chain []*x509.Certificate, pin string) error {
	return VerifyPinnedChainAny(chain, []string{pin})
}

// VerifyPinnedChainAny checks that chain[0] is signed by a CA certificate in
// the chain whose pin is one of pins.
func VerifyPinnedChainAny(chain []*x509.Certificate, pins []string) error {
	if len(chain) < 2 {
		return errors.New("apiclient: server did not present its CA certificate")
	}
	for _, ca := range chain[1:] {
		if !slices.ContainsFunc(pins, func(pin string) bool { return pki.CheckPin(ca, pin) == nil }) {
			continue
		}
		pool := x509.NewCertPool()
		pool.AddCert(ca)
		if _, err := chain[0].Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			return fmt.Errorf("apiclient: server certificate: %w", err)
		}
		return nil
	}
	return pki.ErrPinMismatch
}

// Close releases idle connections.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

// Do sends a JSON request and decodes a JSON response into out (when not nil).
// headers may carry an Idempotency-Key. A not_leader answer is followed to the
// leader; a transport error moves on to the next server.
func (c *Client) Do(ctx context.Context, method, path string, body, out any, headers map[string]string) error {
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return err
		}
	}
	servers := c.order()
	var lastErr error = ErrUnreachable
	hops := 0
	for i := 0; i < len(servers); i++ {
		addr := servers[i]
		err := c.once(ctx, addr, method, path, payload, out, headers)
		var ae *Error
		if errors.As(err, &ae) && ae.Code == "not_leader" && hops < c.opts.MaxRedirects {
			if leader, _ := ae.Details["leader_api_addr"].(string); leader != "" && leader != addr {
				hops++
				servers = append(servers[:i+1], append([]string{leader}, servers[i+1:]...)...)
				lastErr = err
				continue
			}
		}
		if err == nil {
			c.last.mu.Lock()
			c.last.pref = addr
			c.last.mu.Unlock()
			return nil
		}
		if errors.As(err, &ae) {
			// no_quorum and unavailable mean nothing was written: another
			// authority may be on the majority side of a partition.
			if (ae.Code == "no_quorum" || ae.Code == "unavailable") && i+1 < len(servers) {
				lastErr = err
				continue
			}
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		lastErr = fmt.Errorf("%w: %s: %w", ErrUnreachable, addr, err)
	}
	return lastErr
}

func (c *Client) order() []string {
	c.last.mu.Lock()
	pref := c.last.pref
	c.last.mu.Unlock()
	out := make([]string, 0, len(c.opts.Servers)+1)
	if pref != "" {
		out = append(out, pref)
	}
	for _, s := range c.opts.Servers {
		if s != pref {
			out = append(out, s)
		}
	}
	return out
}

func (c *Client) once(ctx context.Context, addr, method, path string, payload []byte, out any, headers map[string]string) error {
	var rd io.Reader
	if payload != nil {
		rd = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, "https://"+strings.TrimPrefix(addr, "https://")+path, rd)
	if err != nil {
		return err
	}
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.opts.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.opts.Token)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		var eb struct {
			Error Error `json:"error"`
		}
		if json.Unmarshal(data, &eb) != nil || eb.Error.Code == "" {
			return &Error{Status: resp.StatusCode, Code: "http_" + fmt.Sprint(resp.StatusCode), Message: strings.TrimSpace(string(data))}
		}
		eb.Error.Status = resp.StatusCode
		return &eb.Error
	}
	if out != nil && len(data) > 0 {
		return json.Unmarshal(data, out)
	}
	return nil
}
