package apiclient

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rap-fabric/core/pki"
)

// testCA is a platform CA as the authority has one.
type testCA struct {
	key crypto.Signer
	der []byte
	pin string
}

func newCA(t *testing.T) testCA {
	t.Helper()
	k, der, err := pki.NewECDSACA(nil, "platform", time.Now(), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pin, err := pki.PinDER(der)
	if err != nil {
		t.Fatal(err)
	}
	return testCA{k, der, pin}
}

// serverCert issues a loopback server certificate under ca, presented as
// chain (the authority presents [leaf, CA]).
func serverCert(t *testing.T, ca testCA, chain func(leaf []byte) [][]byte) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := pki.IssueServerCert(nil, ca.key, ca.der, &key.PublicKey, []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)}, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if chain == nil {
		return tls.Certificate{Certificate: [][]byte{leaf, ca.der}, PrivateKey: key}
	}
	return tls.Certificate{Certificate: chain(leaf), PrivateKey: key}
}

// request is what a test server received.
type request struct {
	Method, Path, Body, Auth, Idem, ContentType string
	ClientURIs                                  []string
}

// server is a real TLS HTTP server on loopback that records every request
// and answers with its reply function.
type server struct {
	addr  string
	srv   *httptest.Server
	mu    sync.Mutex
	reqs  []request
	reply func(w http.ResponseWriter, r *http.Request)
}

func startServer(t *testing.T, cert tls.Certificate, reply func(w http.ResponseWriter, r *http.Request)) *server {
	t.Helper()
	s := &server{reply: reply}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rq := request{Method: r.Method, Path: r.URL.Path, Body: string(body), Auth: r.Header.Get("Authorization"),
			Idem: r.Header.Get("Idempotency-Key"), ContentType: r.Header.Get("Content-Type")}
		if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
			for _, u := range r.TLS.PeerCertificates[0].URIs {
				rq.ClientURIs = append(rq.ClientURIs, u.String())
			}
		}
		s.mu.Lock()
		s.reqs = append(s.reqs, rq)
		s.mu.Unlock()
		s.reply(w, r)
	}))
	s.srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, ClientAuth: tls.RequestClientCert}
	// Refused handshakes are the point of some tests; keep them out of the log.
	s.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	s.srv.StartTLS()
	t.Cleanup(s.srv.Close)
	s.addr = strings.TrimPrefix(s.srv.URL, "https://")
	return s
}

func (s *server) requests() []request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]request(nil), s.reqs...)
}

// ok answers 200 with {"served_by": name}.
func ok(name string) func(w http.ResponseWriter, r *http.Request) {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"served_by": name})
	}
}

// apiError answers in the API's error shape.
func apiError(status int, code string, details map[string]any) func(w http.ResponseWriter, r *http.Request) {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"code": code, "message": code + " from test server", "details": details}})
	}
}

// notLeader answers as a follower that knows the leader's API address.
func notLeader(leader func() string) func(w http.ResponseWriter, r *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		apiError(http.StatusMisdirectedRequest, "not_leader", map[string]any{"leader_id": "a-1", "leader_api_addr": leader()})(w, r)
	}
}

// deadAddr is a loopback address nothing listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func newClient(t *testing.T, o Options) *Client {
	t.Helper()
	if o.Timeout == 0 {
		o.Timeout = 10 * time.Second
	}
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

type result struct {
	ServedBy string `json:"served_by"`
}

var body = map[string]string{"name": "Edge", "slug": "edge"}

const wantBody = `{"name":"Edge","slug":"edge"}`

func do(t *testing.T, c *Client) (result, error) {
	t.Helper()
	var out result
	err := c.Do(context.Background(), http.MethodPost, "/v1/clusters", body, &out, map[string]string{"Idempotency-Key": "k-1"})
	return out, err
}

func TestNewNeedsAServer(t *testing.T) {
	if _, err := New(Options{}); err == nil {
		t.Fatal("New accepted options without servers")
	}
}

// TestNewRefusesMalformedPin: a mistyped pin is the caller's error, reported
// at once, not a mismatch against every server.
func TestNewRefusesMalformedPin(t *testing.T) {
	good := newCA(t).pin
	for _, pin := range []string{"sha256:abc", "md5:" + good[7:], good[7:], "sha256:" + strings.Repeat("g", 64), good + "0"} {
		if c, err := New(Options{Servers: []string{"127.0.0.1:1"}, CAPin: pin}); !errors.Is(err, pki.ErrBadPin) || c != nil {
			t.Errorf("New with pin %q = %v, %v; want pki.ErrBadPin", pin, c, err)
		}
	}
	if c, err := New(Options{Servers: []string{"127.0.0.1:1"}, CAPin: "sha256:" + strings.ToUpper(good[7:])}); err != nil {
		t.Errorf("upper-case hex pin refused: %v", err)
	} else {
		c.Close()
	}
}

func TestDoSendsRequestAndDecodesAnswer(t *testing.T) {
	ca := newCA(t)
	s := startServer(t, serverCert(t, ca, nil), ok("s1"))
	c := newClient(t, Options{Servers: []string{s.addr}, CAPin: ca.pin, Token: "owner-secret"})

	out, err := do(t, c)
	if err != nil || out.ServedBy != "s1" {
		t.Fatalf("Do = %+v, %v; want an answer from s1", out, err)
	}
	reqs := s.requests()
	want := request{Method: "POST", Path: "/v1/clusters", Body: wantBody, Auth: "Bearer owner-secret", Idem: "k-1", ContentType: "application/json"}
	if len(reqs) != 1 || fmt.Sprint(reqs[0]) != fmt.Sprint(want) {
		t.Fatalf("server received %+v, want [%+v]", reqs, want)
	}

	// A GET has no body and no Content-Type; an "https://" prefix on the
	// address is accepted.
	c2 := newClient(t, Options{Servers: []string{"https://" + s.addr}, CAPin: ca.pin})
	if err := c2.Do(context.Background(), http.MethodGet, "/v1/status", nil, nil, nil); err != nil {
		t.Fatal(err)
	}
	reqs = s.requests()
	if got := reqs[len(reqs)-1]; got.Method != "GET" || got.Body != "" || got.ContentType != "" || got.Auth != "" {
		t.Errorf("GET arrived as %+v", got)
	}
}

func TestAPIErrorsAreTyped(t *testing.T) {
	ca := newCA(t)
	tests := []struct {
		name       string
		reply      func(w http.ResponseWriter, r *http.Request)
		wantStatus int
		wantCode   string
	}{
		{"API error", apiError(http.StatusBadRequest, "invalid_argument", map[string]any{"field": "slug"}), 400, "invalid_argument"},
		{"non-JSON error", func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "bad gateway", http.StatusBadGateway) }, 502, "http_502"},
		{"JSON without code", func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusTeapot)
			_, _ = w.Write([]byte(`{"error":{}}`))
		}, 418, "http_418"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := startServer(t, serverCert(t, ca, nil), tc.reply)
			c := newClient(t, Options{Servers: []string{s.addr}, CAPin: ca.pin})
			_, err := do(t, c)
			var ae *Error
			if !errors.As(err, &ae) || ae.Status != tc.wantStatus || ae.Code != tc.wantCode {
				t.Fatalf("Do = %v; want *Error %d %s", err, tc.wantStatus, tc.wantCode)
			}
			if tc.wantCode == "invalid_argument" && ae.Details["field"] != "slug" {
				t.Errorf("details %v lost", ae.Details)
			}
		})
	}
}

// TestFailover: a server that is down, or that answers no_quorum or
// unavailable (nothing was written), is skipped for the next one; the request
// arrives there whole, and the server that answered is tried first next time.
// Any other answer is final: the next server is not asked.
func TestFailover(t *testing.T) {
	ca := newCA(t)
	tests := []struct {
		name     string
		first    func(w http.ResponseWriter, r *http.Request) // nil: nothing listens
		failover bool
		wantCode string // when not failing over
	}{
		{name: "first server down", first: nil, failover: true},
		{name: "first server in a minority (no_quorum)", first: apiError(http.StatusServiceUnavailable, "no_quorum", nil), failover: true},
		{name: "first server's database unavailable", first: apiError(http.StatusServiceUnavailable, "unavailable", nil), failover: true},
		{name: "invalid_argument is final", first: apiError(http.StatusBadRequest, "invalid_argument", nil), wantCode: "invalid_argument"},
		{name: "stale_epoch is final", first: apiError(http.StatusServiceUnavailable, "stale_epoch", nil), wantCode: "stale_epoch"},
		{name: "unknown_outcome is final (the write may have happened)", first: apiError(http.StatusGatewayTimeout, "unknown_outcome", nil), wantCode: "unknown_outcome"},
		{name: "not_leader without a leader address is final", first: apiError(http.StatusMisdirectedRequest, "not_leader", map[string]any{"leader_api_addr": ""}), wantCode: "not_leader"},
		{name: "unauthorized is final", first: apiError(http.StatusUnauthorized, "unauthorized", nil), wantCode: "unauthorized"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var first *server
			firstAddr := deadAddr(t)
			if tc.first != nil {
				first = startServer(t, serverCert(t, ca, nil), tc.first)
				firstAddr = first.addr
			}
			second := startServer(t, serverCert(t, ca, nil), ok("second"))
			c := newClient(t, Options{Servers: []string{firstAddr, second.addr}, CAPin: ca.pin})

			out, err := do(t, c)
			if !tc.failover {
				var ae *Error
				if !errors.As(err, &ae) || ae.Code != tc.wantCode {
					t.Fatalf("Do = %+v, %v; want the first server's %s", out, err, tc.wantCode)
				}
				if n := len(second.requests()); n != 0 {
					t.Fatalf("second server got %d requests after a final answer", n)
				}
				return
			}
			if err != nil || out.ServedBy != "second" {
				t.Fatalf("Do = %+v, %v; want the second server's answer", out, err)
			}
			if reqs := second.requests(); len(reqs) != 1 || reqs[0].Body != wantBody || reqs[0].Idem != "k-1" {
				t.Fatalf("second server received %+v, want the whole request once", reqs)
			}
			firstCount := 0
			if first != nil {
				firstCount = len(first.requests())
			}
			// The next call goes straight to the server that answered.
			if out, err := do(t, c); err != nil || out.ServedBy != "second" {
				t.Fatalf("second Do = %+v, %v", out, err)
			}
			if first != nil && len(first.requests()) != firstCount {
				t.Errorf("first server asked again after the second one answered")
			}
			if n := len(second.requests()); n != 2 {
				t.Errorf("second server got %d requests, want 2", n)
			}
		})
	}
}

func TestAllServersRefuse(t *testing.T) {
	ca := newCA(t)
	t.Run("all down", func(t *testing.T) {
		c := newClient(t, Options{Servers: []string{deadAddr(t), deadAddr(t)}, CAPin: ca.pin})
		_, err := do(t, c)
		if !errors.Is(err, ErrUnreachable) {
			t.Fatalf("Do = %v, want ErrUnreachable", err)
		}
		var ae *Error
		if errors.As(err, &ae) {
			t.Fatalf("unreachable servers produced an API error %v", ae)
		}
	})
	t.Run("all in a minority", func(t *testing.T) {
		a := startServer(t, serverCert(t, ca, nil), apiError(http.StatusServiceUnavailable, "no_quorum", nil))
		b := startServer(t, serverCert(t, ca, nil), apiError(http.StatusServiceUnavailable, "no_quorum", nil))
		c := newClient(t, Options{Servers: []string{a.addr, b.addr}, CAPin: ca.pin})
		_, err := do(t, c)
		var ae *Error
		if !errors.As(err, &ae) || ae.Code != "no_quorum" || ae.Status != http.StatusServiceUnavailable {
			t.Fatalf("Do = %v, want the last server's no_quorum", err)
		}
		if len(a.requests()) != 1 || len(b.requests()) != 1 {
			t.Fatalf("requests: a %d, b %d; want one each", len(a.requests()), len(b.requests()))
		}
	})
	t.Run("context cancelled", func(t *testing.T) {
		s := startServer(t, serverCert(t, ca, nil), ok("s"))
		c := newClient(t, Options{Servers: []string{s.addr}, CAPin: ca.pin})
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := c.Do(ctx, http.MethodGet, "/v1/status", nil, nil, nil); !errors.Is(err, context.Canceled) {
			t.Fatalf("Do = %v, want context.Canceled", err)
		}
	})
}

// TestNotLeaderFollowed: a follower's 421 not_leader names the leader's API
// address; the client sends the same request there, even when that address
// is not in its server list, and prefers the leader afterwards.
func TestNotLeaderFollowed(t *testing.T) {
	ca := newCA(t)
	leader := startServer(t, serverCert(t, ca, nil), ok("leader"))
	follower := startServer(t, serverCert(t, ca, nil), notLeader(func() string { return leader.addr }))
	c := newClient(t, Options{Servers: []string{follower.addr}, CAPin: ca.pin})

	out, err := do(t, c)
	if err != nil || out.ServedBy != "leader" {
		t.Fatalf("Do = %+v, %v; want the leader's answer", out, err)
	}
	if n := len(follower.requests()); n != 1 {
		t.Errorf("follower got %d requests, want 1", n)
	}
	if reqs := leader.requests(); len(reqs) != 1 || reqs[0].Body != wantBody || reqs[0].Idem != "k-1" {
		t.Fatalf("leader received %+v, want the whole request once", reqs)
	}
	if out, err := do(t, c); err != nil || out.ServedBy != "leader" {
		t.Fatalf("second Do = %+v, %v", out, err)
	}
	if n := len(follower.requests()); n != 1 {
		t.Errorf("follower asked again after the leader answered (%d requests)", n)
	}
}

// TestNotLeaderHopsBounded: two servers that each name the other as leader
// (a stale view during an election) are followed at most MaxRedirects times.
func TestNotLeaderHopsBounded(t *testing.T) {
	ca := newCA(t)
	for _, tc := range []struct {
		maxRedirects, wantRequests int
	}{
		{-1, 1}, // negative: not_leader is not followed at all
		{0, 4},  // the default is 3 hops
		{1, 2},
		{5, 6},
	} {
		t.Run(fmt.Sprintf("MaxRedirects=%d", tc.maxRedirects), func(t *testing.T) {
			var a, b *server
			a = startServer(t, serverCert(t, ca, nil), notLeader(func() string { return b.addr }))
			b = startServer(t, serverCert(t, ca, nil), notLeader(func() string { return a.addr }))
			c := newClient(t, Options{Servers: []string{a.addr}, CAPin: ca.pin, MaxRedirects: tc.maxRedirects})
			_, err := do(t, c)
			var ae *Error
			if !errors.As(err, &ae) || ae.Code != "not_leader" || ae.Status != http.StatusMisdirectedRequest {
				t.Fatalf("Do = %v, want not_leader once the hops are used up", err)
			}
			if n := len(a.requests()) + len(b.requests()); n != tc.wantRequests {
				t.Fatalf("%d requests, want %d", n, tc.wantRequests)
			}
		})
	}
}

// TestNotLeaderToDownLeader: a named leader that does not answer is skipped
// for the remaining servers.
func TestNotLeaderToDownLeader(t *testing.T) {
	ca := newCA(t)
	dead := deadAddr(t)
	follower := startServer(t, serverCert(t, ca, nil), notLeader(func() string { return dead }))
	other := startServer(t, serverCert(t, ca, nil), ok("other"))
	c := newClient(t, Options{Servers: []string{follower.addr, other.addr}, CAPin: ca.pin})
	out, err := do(t, c)
	if err != nil || out.ServedBy != "other" {
		t.Fatalf("Do = %+v, %v; want the other server's answer", out, err)
	}
}

// TestCAPinRefusal: a server whose certificate does not chain to the pinned
// CA is refused during the TLS handshake, before any request (and its body or
// bearer token) is sent; a correctly pinned server later in the list answers.
func TestCAPinRefusal(t *testing.T) {
	pinned := newCA(t)
	other := newCA(t)
	nodeLeaf := func(t *testing.T) tls.Certificate {
		// A node client certificate: it chains to the pinned cluster CA
		// but carries no server usage.
		clusterKey, clusterDER, err := pki.NewCA(nil, "c1", time.Now(), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		pub, priv, _ := ed25519.GenerateKey(rand.Reader)
		der, _, err := pki.IssueNodeCert(nil, clusterKey, clusterDER, pki.NodeCertRequest{ClusterID: "c1", NodeID: "n1", PublicKey: pub, NotBefore: time.Now(), Lifetime: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		return tls.Certificate{Certificate: [][]byte{der, clusterDER}, PrivateKey: priv}
	}
	clusterPin := func(cert tls.Certificate) string {
		p, err := pki.PinDER(cert.Certificate[1])
		if err != nil {
			t.Fatal(err)
		}
		return p
	}

	tests := []struct {
		name    string
		cert    func(t *testing.T) tls.Certificate
		pin     func(cert tls.Certificate) string
		wantPin bool // error wraps pki.ErrPinMismatch
	}{
		{"another CA", func(t *testing.T) tls.Certificate { return serverCert(t, other, nil) },
			func(tls.Certificate) string { return pinned.pin }, true},
		{"leaf only, no CA presented", func(t *testing.T) tls.Certificate {
			return serverCert(t, pinned, func(leaf []byte) [][]byte { return [][]byte{leaf} })
		}, func(tls.Certificate) string { return pinned.pin }, false},
		{"pinned CA presented but leaf signed by another CA", func(t *testing.T) tls.Certificate {
			return serverCert(t, other, func(leaf []byte) [][]byte { return [][]byte{leaf, pinned.der} })
		}, func(tls.Certificate) string { return pinned.pin }, false},
		{"node client certificate under the pinned cluster CA", nodeLeaf, clusterPin, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cert := tc.cert(t)
			bad := startServer(t, cert, ok("impostor"))
			c := newClient(t, Options{Servers: []string{bad.addr}, CAPin: tc.pin(cert), Token: "owner-secret"})
			out, err := do(t, c)
			if err == nil {
				t.Fatalf("Do = %+v; want a refused server", out)
			}
			if !errors.Is(err, ErrUnreachable) {
				t.Errorf("Do = %v, want ErrUnreachable", err)
			}
			if tc.wantPin && !errors.Is(err, pki.ErrPinMismatch) {
				t.Errorf("Do = %v, want pki.ErrPinMismatch", err)
			}
			if reqs := bad.requests(); len(reqs) != 0 {
				t.Fatalf("refused server received %+v", reqs)
			}
		})
	}

	t.Run("impostor first, pinned server second", func(t *testing.T) {
		impostor := startServer(t, serverCert(t, other, nil), ok("impostor"))
		good := startServer(t, serverCert(t, pinned, nil), ok("good"))
		c := newClient(t, Options{Servers: []string{impostor.addr, good.addr}, CAPin: pinned.pin, Token: "owner-secret"})
		out, err := do(t, c)
		if err != nil || out.ServedBy != "good" {
			t.Fatalf("Do = %+v, %v; want the pinned server's answer", out, err)
		}
		if n := len(impostor.requests()); n != 0 {
			t.Fatalf("impostor received %d requests", n)
		}
	})
}

// TestVerifyPinnedChain covers the chain check on its own.
func TestVerifyPinnedChain(t *testing.T) {
	pinned := newCA(t)
	other := newCA(t)
	parse := func(der []byte) *x509.Certificate {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	leafOf := func(ca testCA) *x509.Certificate { return parse(serverCert(t, ca, nil).Certificate[0]) }
	goodLeaf := leafOf(pinned)
	tests := []struct {
		name  string
		chain []*x509.Certificate
		ok    bool
	}{
		{"leaf and pinned CA", []*x509.Certificate{goodLeaf, parse(pinned.der)}, true},
		{"pinned CA after an unrelated one", []*x509.Certificate{goodLeaf, parse(other.der), parse(pinned.der)}, true},
		{"empty", nil, false},
		{"leaf only", []*x509.Certificate{goodLeaf}, false},
		{"other CA", []*x509.Certificate{leafOf(other), parse(other.der)}, false},
		{"leaf of other CA with pinned CA", []*x509.Certificate{leafOf(other), parse(pinned.der)}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := VerifyPinnedChain(tc.chain, pinned.pin); (err == nil) != tc.ok {
				t.Fatalf("VerifyPinnedChain = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

// TestVerifyPinnedChainAny: with two pinned roots (a CA rotation's
// overlap) a chain of either is accepted, one of a third root is not, and
// no pin accepts nothing.
func TestVerifyPinnedChainAny(t *testing.T) {
	oldCA, newCA, other := newCA(t), newCA(t), newCA(t)
	chain := func(ca testCA) []*x509.Certificate {
		var out []*x509.Certificate
		for _, der := range serverCert(t, ca, nil).Certificate {
			c, err := x509.ParseCertificate(der)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, c)
		}
		return out
	}
	pins := []string{oldCA.pin, newCA.pin}
	for _, ca := range []testCA{oldCA, newCA} {
		if err := VerifyPinnedChainAny(chain(ca), pins); err != nil {
			t.Fatalf("a pinned root's chain refused: %v", err)
		}
	}
	if err := VerifyPinnedChainAny(chain(other), pins); err == nil {
		t.Fatal("an unpinned root's chain accepted")
	}
	if err := VerifyPinnedChainAny(chain(oldCA), nil); err == nil {
		t.Fatal("a chain accepted without pins")
	}
}

// TestClientCertificate: an agent's client certificate is presented to the
// server.
func TestClientCertificate(t *testing.T) {
	ca := newCA(t)
	s := startServer(t, serverCert(t, ca, nil), ok("s"))
	clusterKey, clusterDER, err := pki.NewCA(nil, "c1", time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	der, _, err := pki.IssueNodeCert(nil, clusterKey, clusterDER, pki.NodeCertRequest{ClusterID: "c1", NodeID: "n1", PublicKey: pub, NotBefore: time.Now(), Lifetime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	c := newClient(t, Options{Servers: []string{s.addr}, CAPin: ca.pin, Certificate: &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv}})
	if _, err := do(t, c); err != nil {
		t.Fatal(err)
	}
	if reqs := s.requests(); len(reqs) != 1 || fmt.Sprint(reqs[0].ClientURIs) != "[rap://c1/node/n1]" {
		t.Fatalf("server saw client URIs %+v, want the node identity", reqs)
	}
}
