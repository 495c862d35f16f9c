package adminingress

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rap-fabric/core/apiclient"
)

// maxForwardBody bounds a forwarded request body (the authorities refuse
// more anyway).
const maxForwardBody = 1 << 20

// forwardedRequestHeaders pass from the browser to the authorities: the
// admin's own credential (Authorization, Cookie), the CSRF evidence the
// authorities check, and content negotiation. Nothing else.
var forwardedRequestHeaders = []string{"Authorization", "Cookie", "Content-Type", "Accept", "Idempotency-Key", "X-CSRF-Token", "X-RAP-Request",
	"Origin", "Referer", "Sec-Fetch-Site", "User-Agent"}

// forwardedResponseHeaders pass back to the browser.
var forwardedResponseHeaders = []string{"Content-Type", "Set-Cookie", "Retry-After", "Cache-Control", "Content-Disposition", "X-Content-Type-Options"}

// forwarder sends requests to the authorities without a client
// certificate: the node's identity never stands in for the admin.
type forwarder struct {
	f  Forwarding
	hc *http.Client

	mu      sync.Mutex
	pref    string
	cluster string
}

// newForwarder builds the forwarder of f; current, when not nil, is asked
// for the pins at each handshake (they move with a cluster CA rotation).
func newForwarder(f Forwarding, current func() Forwarding, timeout time.Duration) (*forwarder, error) {
	if len(f.Authorities) == 0 {
		return nil, errors.New("adminingress: no authority to forward to")
	}
	pinsOf := func(f Forwarding) []string {
		return append(slices.DeleteFunc([]string{f.CAPin}, func(p string) bool { return p == "" }), f.CAPins...)
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS13, ServerName: f.ServerName}
	if pins := pinsOf(f); len(pins) > 0 {
		tc.InsecureSkipVerify = true //nolint:gosec // verified in VerifyConnection against the pinned cluster CA roots
		tc.VerifyConnection = func(cs tls.ConnectionState) error {
			use := pins
			if current != nil {
				if p := pinsOf(current()); len(p) > 0 {
					use = p
				}
			}
			return apiclient.VerifyPinnedChainAny(cs.PeerCertificates, use)
		}
	}
	tr := &http.Transport{TLSClientConfig: tc, DialContext: (&net.Dialer{Timeout: 3 * time.Second}).DialContext,
		TLSHandshakeTimeout: 5 * time.Second, MaxIdleConnsPerHost: 8, IdleConnTimeout: 90 * time.Second}
	return &forwarder{f: f, hc: &http.Client{Transport: tr, Timeout: timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}, nil
}

func (fw *forwarder) close() { fw.hc.CloseIdleConnections() }

func (fw *forwarder) setCluster(id string) {
	fw.mu.Lock()
	fw.cluster = id
	fw.mu.Unlock()
}

func (fw *forwarder) clusterID() string {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	return fw.cluster
}

func (fw *forwarder) order() []string {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	out := []string{}
	if fw.pref != "" {
		out = append(out, fw.pref)
	}
	for _, a := range fw.f.Authorities {
		if a = hostPort(a); a != fw.pref && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

// hostPort strips the scheme an authority address may carry.
func hostPort(a string) string { return strings.TrimSuffix(strings.TrimPrefix(a, "https://"), "/") }

// do sends one request to the authorities, starting with the one that last
// answered. A not_leader answer is followed to the leader it names (at most
// 3 hops): a follower refuses a write (and a step-up) before it takes
// anything, so the same request, body and step-up grant are sent on. A
// transport error moves on to the next authority only when the request
// cannot have reached the previous one: a safe method, or nothing of the
// request was written. A write whose fate is unknown is answered 502, never
// sent twice. The caller closes the response body.
func (fw *forwarder) do(ctx context.Context, in *http.Request, method, pathQuery string, body []byte, extra map[string]string) (*http.Response, error) {
	servers := fw.order()
	hops := 0
	var lastErr error
	for i := 0; i < len(servers); i++ {
		addr := servers[i]
		req, err := http.NewRequestWithContext(ctx, method, "https://"+addr+pathQuery, bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		for _, h := range forwardedRequestHeaders {
			for _, v := range in.Header.Values(h) {
				req.Header.Add(h, v)
			}
		}
		for k, v := range extra {
			req.Header.Set(k, v)
		}
		// The authorities check browser origins against the host the
		// browser sent: this endpoint's.
		req.Host = in.Host
		var wrote atomic.Bool
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
			WroteHeaderField: func(string, []string) { wrote.Store(true) },
			WroteRequest:     func(httptrace.WroteRequestInfo) { wrote.Store(true) },
		}))
		resp, err := fw.hc.Do(req)
		if err != nil {
			lastErr = err
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if wrote.Load() && !safeMethod(method) {
				return nil, fmt.Errorf("forwarding to %s: the request may have been applied: %w", addr, err)
			}
			continue
		}
		if resp.StatusCode == http.StatusMisdirectedRequest && hops < 3 {
			data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
			var eb struct {
				Error struct {
					Code    string         `json:"code"`
					Details map[string]any `json:"details"`
				} `json:"error"`
			}
			if json.Unmarshal(data, &eb) == nil && eb.Error.Code == "not_leader" {
				if l, _ := eb.Error.Details["leader_api_addr"].(string); hostPort(l) != "" && hostPort(l) != addr {
					l = hostPort(l)
					hops++
					servers = append(servers[:i+1], append([]string{l}, servers[i+1:]...)...)
					continue
				}
			}
			resp.Body = io.NopCloser(bytes.NewReader(data))
			return resp, nil
		}
		fw.mu.Lock()
		fw.pref = addr
		fw.mu.Unlock()
		return resp, nil
	}
	if lastErr == nil {
		lastErr = errors.New("no authority answered")
	}
	return nil, fmt.Errorf("forwarding to the authorities: %w", lastErr)
}

// safeMethod reports whether m changes nothing on the authorities.
func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}
