package statusclient

import (
	"bytes"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestPingThroughTheSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "agent.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var got PingRequest
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+PathMeshPing, func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewDecoder(r.Body).Decode(&got)
		_ = json.NewEncoder(w).Encode(PingResult{ClusterID: "c1", From: "n1", Destination: got.Node, Path: []string{"n1", "r1", got.Node}, RTTMs: 1.5})
	})
	srv := &http.Server{Handler: mux}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	var out bytes.Buffer
	if err := Ping(sock, "c1", "n2", 2*time.Second, false, &out); err != nil {
		t.Fatal(err)
	}
	if got != (PingRequest{ClusterID: "c1", Node: "n2", TimeoutMs: 2000}) {
		t.Fatalf("request %+v", got)
	}
	if !strings.Contains(out.String(), "n1 → r1 → n2") || !strings.Contains(out.String(), "rtt 1.500 ms") {
		t.Fatalf("output %q", out.String())
	}
	out.Reset()
	if err := Ping(sock, "c1", "n2", time.Second, true, &out); err != nil {
		t.Fatal(err)
	}
	var r PingResult
	if err := json.Unmarshal(out.Bytes(), &r); err != nil || r.Destination != "n2" || len(r.Path) != 3 {
		t.Fatalf("json output %q: %v", out.String(), err)
	}
}

func TestPingWithoutAgent(t *testing.T) {
	err := Ping(filepath.Join(t.TempDir(), "none.sock"), "", "n2", time.Second, false, &bytes.Buffer{})
	if !errors.Is(err, ErrAgentNotRunning) {
		t.Fatalf("want ErrAgentNotRunning, got %v", err)
	}
}
