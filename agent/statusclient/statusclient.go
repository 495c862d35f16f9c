// Package statusclient is the client side of a node agent's local status
// socket (a 0600 unix socket next to the agent's state file): the paths, the
// request and response types of mesh ping, and a small client. The agent
// (agent/runtime) serves these types; rapctl and rap-node-agent use this
// package to talk to it.
//
// It imports only the standard library, so a CLI that links it does not link
// the agent's state store (bbolt), gossip (memberlist) or the mesh
// (cmd/rapctl/deps_test.go holds this).
package statusclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// Paths served on the status socket.
const (
	PathStatus     = "/v1/status"
	PathMesh       = "/v1/mesh"
	PathMeshPing   = "/v1/mesh/ping"
	PathMeshStream = "/v1/mesh/stream"
)

// ErrAgentNotRunning: the status socket does not answer.
var ErrAgentNotRunning = errors.New("agent is not running")

// PingRequest is the body of POST /v1/mesh/ping on the status socket.
type PingRequest struct {
	ClusterID string `json:"cluster_id,omitempty"`
	Node      string `json:"node"`
	// TimeoutMs bounds the ping; 0 means 5 s.
	TimeoutMs int `json:"timeout_ms,omitempty"`
}

// PingResult is a mesh ping through the running agent: from which node, the
// path taken there and back and the round-trip times.
type PingResult struct {
	ClusterID   string   `json:"cluster_id"`
	From        string   `json:"from"`
	Destination string   `json:"destination"`
	Path        []string `json:"path"`
	Reverse     []string `json:"reverse,omitempty"`
	SetupRTTMs  float64  `json:"setup_rtt_ms"`
	RTTMs       float64  `json:"rtt_ms"`
	EchoRTTMs   float64  `json:"echo_rtt_ms,omitempty"`
}

// HTTPClient returns an HTTP client that dials the unix socket (any host in
// the URL, e.g. "http://agent"+PathStatus).
func HTTPClient(socket string, timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", socket)
		}}}
}

// MeshPing asks the running agent behind the status socket to ping node over
// its mesh. An unreachable socket is ErrAgentNotRunning.
func MeshPing(ctx context.Context, socket string, req PingRequest) (PingResult, error) {
	hc := HTTPClient(socket, 30*time.Second)
	defer hc.CloseIdleConnections()
	body, _ := json.Marshal(req)
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://agent"+PathMeshPing, bytes.NewReader(body))
	if err != nil {
		return PingResult{}, err
	}
	resp, err := hc.Do(hr)
	if err != nil {
		return PingResult{}, fmt.Errorf("%w: %w", ErrAgentNotRunning, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return PingResult{}, fmt.Errorf("mesh ping: %s", strings.TrimSpace(string(data)))
	}
	var out PingResult
	err = json.Unmarshal(data, &out)
	return out, err
}

// Ping is `mesh ping` for the CLIs (rap-node-agent and rapctl): it asks the
// agent behind socket to ping node and prints the result to w (indented JSON
// with asJSON).
func Ping(socket, cluster, node string, timeout time.Duration, asJSON bool, w io.Writer) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout+5*time.Second)
	defer cancel()
	r, err := MeshPing(ctx, socket, PingRequest{ClusterID: cluster, Node: node, TimeoutMs: int(timeout.Milliseconds())})
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	WritePing(w, r)
	return nil
}

// WritePing prints a ping result for people.
func WritePing(w io.Writer, r PingResult) {
	fmt.Fprintf(w, "mesh ping %s → %s (cluster %s)\n", r.From, r.Destination, r.ClusterID)
	fmt.Fprintf(w, "  path:    %s\n", strings.Join(r.Path, " → "))
	if len(r.Reverse) > 0 {
		fmt.Fprintf(w, "  reverse: %s\n", strings.Join(r.Reverse, " → "))
	}
	fmt.Fprintf(w, "  rtt %.3f ms (first probe with e2e handshake %.3f ms, echo %.3f ms)\n", r.RTTMs, r.SetupRTTMs, r.EchoRTTMs)
}
