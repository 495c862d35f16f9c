package chaos

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/rap-fabric/core/apiclient"
)

// API is an owner-API client that connects from inside a host's namespace.
// It verifies servers against the pinned platform CA and follows not_leader
// answers like apiclient.Client; unlike it, it moves on to the next server
// after a no_quorum answer (a minority's refusal) instead of giving up. It
// reports which server answered and whether an earlier attempt may have
// reached a server (so the history can tell a definite failure from an
// unknown outcome).
type API struct {
	servers []string
	token   string
	hc      *http.Client

	mu   sync.Mutex
	pref string
}

// CallInfo describes how a call went.
type CallInfo struct {
	// Server is the API address that gave the final answer ("" when none did).
	Server string
	// Ambiguous is set when some attempt may have been delivered without an
	// answer (a transport error after the connection was made), so a later
	// refusal does not prove that nothing was done.
	Ambiguous bool
	// Refusals are definite refusals (server:code) that made the call move
	// on to another server.
	Refusals []string
}

// NewAPI builds a client on from's namespace for the given authority API
// addresses. timeout bounds one HTTP exchange.
func NewAPI(from *Host, servers []string, token, pin string, timeout time.Duration) *API {
	tc := &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true, //nolint:gosec // verified against the pin below
		VerifyConnection: func(cs tls.ConnectionState) error { return apiclient.VerifyPinnedChain(cs.PeerCertificates, pin) }}
	tr := &http.Transport{TLSClientConfig: tc, DialContext: from.DialContext, TLSHandshakeTimeout: 3 * time.Second,
		MaxIdleConnsPerHost: 16, IdleConnTimeout: 30 * time.Second, ResponseHeaderTimeout: timeout}
	return &API{servers: servers, token: token, hc: &http.Client{Transport: tr, Timeout: timeout}}
}

// Close drops idle connections.
func (a *API) Close() { a.hc.CloseIdleConnections() }

func (a *API) order() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := []string{}
	if a.pref != "" {
		out = append(out, a.pref)
	}
	for _, s := range a.servers {
		if s != a.pref {
			out = append(out, s)
		}
	}
	return out
}

// Do sends a JSON request. API errors are *apiclient.Error.
func (a *API) Do(ctx context.Context, method, path string, body, out any, headers map[string]string) (CallInfo, error) {
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return CallInfo{}, err
		}
	}
	var info CallInfo
	servers := a.order()
	var lastErr error = apiclient.ErrUnreachable
	hops := 0
	for i := 0; i < len(servers); i++ {
		addr := servers[i]
		err := a.once(ctx, addr, method, path, payload, out, headers)
		var ae *apiclient.Error
		if errors.As(err, &ae) {
			if ae.Code == "not_leader" && hops < 3 {
				if leader, _ := ae.Details["leader_api_addr"].(string); leader != "" && leader != addr {
					hops++
					servers = append(servers[:i+1], append([]string{leader}, servers[i+1:]...)...)
					lastErr = err
					continue
				}
			}
			if (ae.Code == "no_quorum" || ae.Code == "not_leader") && i+1 < len(servers) {
				// Definite refusals (nothing was written): a server cut off in a
				// minority answers no_quorum, so try the others, as a client
				// that wants availability would. apiclient returns here.
				info.Refusals = append(info.Refusals, addr+":"+ae.Code)
				info.Server = addr
				lastErr = err
				continue
			}
			info.Server = addr
			return info, err
		}
		if err == nil {
			a.mu.Lock()
			a.pref = addr
			a.mu.Unlock()
			info.Server = addr
			return info, nil
		}
		var de *DialError
		if !errors.As(err, &de) && method != http.MethodGet {
			info.Ambiguous = true
		}
		if ctx.Err() != nil {
			return info, ctx.Err()
		}
		if !errors.As(lastErr, &ae) {
			lastErr = fmt.Errorf("%w: %s: %w", apiclient.ErrUnreachable, addr, err)
		}
	}
	return info, lastErr
}

func (a *API) once(ctx context.Context, addr, method, path string, payload []byte, out any, headers map[string]string) error {
	var rd io.Reader
	if payload != nil {
		rd = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, "https://"+addr+path, rd)
	if err != nil {
		return err
	}
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		var eb struct {
			Error apiclient.Error `json:"error"`
		}
		if json.Unmarshal(data, &eb) != nil || eb.Error.Code == "" {
			return &apiclient.Error{Status: resp.StatusCode, Code: fmt.Sprintf("http_%d", resp.StatusCode), Message: strings.TrimSpace(string(data))}
		}
		eb.Error.Status = resp.StatusCode
		return &eb.Error
	}
	if out != nil && len(data) > 0 {
		return json.Unmarshal(data, out)
	}
	return nil
}
