package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rap-fabric/core/agent/runtime"
	"github.com/rap-fabric/core/authority"
	"github.com/rap-fabric/core/internal/authtest"
	"github.com/rap-fabric/core/release"
)

// markers records when each expected output line of the launcher (and the
// agents it runs) first arrives.
type markers struct {
	mu   sync.Mutex
	at   map[string]time.Time
	want []string
	buf  bytes.Buffer
}

func (m *markers) scan(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line, now := sc.Text(), time.Now()
		m.mu.Lock()
		m.buf.WriteString(line + "\n")
		for _, w := range m.want {
			if _, seen := m.at[w]; !seen && strings.Contains(line, w) {
				m.at[w] = now
			}
		}
		m.mu.Unlock()
	}
}

func (m *markers) get(w string) (time.Time, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.at[w]
	return t, ok
}

// BenchmarkAgentUpdate measures one agent self-update end to end with real
// processes (publish excluded): an authority (in process, real PostgreSQL),
// rap-node-agent-launcher running rap-node-agent 1.0.0 (built with
// -ldflags -X), a rollout of 2.0.0 (canary 100 %). The clock starts when the
// rollout is started and the phases are read off the agent's and the
// launcher's log lines as they arrive: snapshot → release verified
// (detect), download + verify, stage (slot rename, records), switch (agent
// exit → launcher starts 2.0.0), first heartbeat acknowledged by an
// authority → promoted (health). Beside it, in the same run, the raw download
// time of the same artifact (from memory over TLS on loopback). It runs one
// update whatever b.N is. Run:
//
//	export DATABASE_URL=$(scripts/pg.sh url)
//	go test -run '^$' -bench BenchmarkAgentUpdate -benchtime 1x ./bench/
func BenchmarkAgentUpdate(b *testing.B) {
	must := func(err error) {
		b.Helper()
		if err != nil {
			b.Fatal(err)
		}
	}
	dir := b.TempDir()
	for _, bl := range [][]string{
		{"-o", dir + "/rap-node-agent-launcher", "../cmd/rap-node-agent-launcher"},
		{"-ldflags", "-X main.version=1.0.0", "-o", dir + "/agent-1.0.0", "../cmd/rap-node-agent"},
		{"-ldflags", "-X main.version=2.0.0", "-o", dir + "/agent-2.0.0", "../cmd/rap-node-agent"},
	} {
		cmd := exec.Command("go", append([]string{"build"}, bl...)...)
		cmd.Stderr = os.Stderr
		must(cmd.Run())
	}
	g := authtest.New(b, 1)
	g.Leader(10 * time.Second)
	owner := g.Client(g.DS...)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Second)

	// Release trust and 2.0.0 published (not measured).
	must(owner.Do(ctx, http.MethodPut, "/v1/releases/roots", authority.SetRootsRequest{Threshold: 1, Keys: [][]byte{benchKey(1).Public().(ed25519.PublicKey)}, Reason: "bench"}, nil, nil))
	ks, err := release.NewKeySetEnvelope(release.KeySet{Version: 1, SigningKeys: []release.SigningKey{{Public: benchKey(2).Public().(ed25519.PublicKey)}}, IssuedAt: now.Add(-time.Minute), ExpiresAt: now.Add(time.Hour)})
	must(err)
	ks, err = release.Sign(ks, benchKey(1))
	must(err)
	must(owner.Do(ctx, http.MethodPost, "/v1/releases/key-sets", ks, nil, nil))
	body, err := os.ReadFile(filepath.Join(dir, "agent-2.0.0"))
	must(err)
	sum := sha256.Sum256(body)
	art := release.Artifact{OS: goruntime.GOOS, Arch: goruntime.GOARCH, SHA256: hex.EncodeToString(sum[:]), Size: int64(len(body))}
	me, err := release.NewManifestEnvelope(release.Manifest{Product: release.ProductNodeAgent, Version: "2.0.0", Channels: []release.Channel{release.ChannelCandidate},
		Artifacts: []release.Artifact{art}, Provenance: release.Provenance{SourceRevision: "bench", BuildTime: now}, IssuedAt: now.Add(-time.Minute), ExpiresAt: now.Add(time.Hour)})
	must(err)
	me, err = release.Sign(me, benchKey(2))
	must(err)
	must(owner.Do(ctx, http.MethodPost, "/v1/releases", me, nil, nil))
	for off := 0; off < len(body); off += authority.DefaultReleaseChunkSize {
		end := min(off+authority.DefaultReleaseChunkSize, len(body))
		must(owner.Do(ctx, http.MethodPut, fmt.Sprintf("/v1/releases/artifacts/%s/chunks/%d", art.SHA256, off), map[string]any{"data": body[off:end]}, nil, nil))
	}

	// An agent 1.0.0 enrolled and running under the launcher.
	c, err := authtest.CreateCluster(ctx, owner, "bench-upd")
	must(err)
	pin := c["ca_pin"].(string)
	var tok struct {
		Token string `json:"token"`
	}
	must(owner.Do(ctx, http.MethodPost, "/v1/join-tokens", map[string]any{"cluster": "bench-upd", "max_uses": 1, "auto_approve": true, "allowed_roles": []string{"relay-node"}, "description": "bench"}, &tok, nil))
	statePath := filepath.Join(dir, "state", "state.db")
	sock := filepath.Join(dir, "state", "agent.sock")
	out, err := exec.Command(filepath.Join(dir, "agent-1.0.0"), "enroll", "--authority", g.DS[0].APIAddr(), "--token", tok.Token, "--ca-pin", pin,
		"--state", statePath, "--name", "bench-upd", "--machine-id-file", writeMachineID(b, dir), "--poll-interval", "100ms").CombinedOutput()
	if err != nil {
		b.Fatalf("enroll: %v\n%s", err, out)
	}
	mk := &markers{at: map[string]time.Time{}, want: []string{
		"release verified; downloading the artifact", "artifact fetched and verified", "asking the launcher to switch",
		"agent started: version=2.0.0", "new agent version healthy; promoted"}}
	cmd := exec.Command(filepath.Join(dir, "rap-node-agent-launcher"), "--slots", filepath.Join(dir, "slots"), "--state", statePath, "--status-socket", sock,
		"--deadline", "60s", "--install", "1.0.0="+filepath.Join(dir, "agent-1.0.0"), "--",
		"--interval", "300ms", "--desired-every", "300ms", "--request-timeout", "2s", "--no-mesh", "--no-vpn", "--snapshot-wait", "1s")
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	must(cmd.Start())
	go mk.scan(pr)
	b.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		pw.Close()
		if b.Failed() {
			mk.mu.Lock()
			b.Logf("--- launcher output:\n%s", mk.buf.String())
			mk.mu.Unlock()
		}
	})
	poll := func(what string, limit time.Duration, cond func() bool) {
		for deadline := time.Now().Add(limit); !cond(); time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				b.Fatalf("timed out waiting: %s", what)
			}
		}
	}
	running := func(version string) bool {
		r, err := runtime.ReadStatus(ctx, sock)
		if err != nil || r.AgentVersion != version {
			return false
		}
		for _, m := range r.Memberships {
			if m.HeartbeatsAcked > 0 && m.Snapshot != nil {
				return true
			}
		}
		return false
	}
	poll("1.0.0 heartbeating with a snapshot", 60*time.Second, func() bool { return running("1.0.0") })

	// Baseline: the same bytes from memory over TLS on loopback.
	raw := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		_, _ = io.Copy(w, bytes.NewReader(body))
	}))
	raw.EnableHTTP2 = false
	raw.StartTLS()
	defer raw.Close()
	rawStart := time.Now()
	resp, err := raw.Client().Get(raw.URL)
	must(err)
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	must(err)
	rawDownload := time.Since(rawStart)

	b.ResetTimer()
	t0 := time.Now()
	must(owner.Do(ctx, http.MethodPost, "/v1/clusters/bench-upd/rollouts", map[string]any{"product": release.ProductNodeAgent, "version": "2.0.0",
		"canary_percent": 100, "soak_seconds": 0, "update_deadline_seconds": 3600}, nil, nil))
	poll("2.0.0 promoted", 120*time.Second, func() bool { _, ok := mk.get("new agent version healthy; promoted"); return ok })
	b.StopTimer()
	ts := []time.Time{t0}
	for _, w := range mk.want {
		t, ok := mk.get(w)
		if !ok {
			b.Fatalf("no %q line", w)
		}
		ts = append(ts, t)
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(ts[1].Sub(ts[0])), "detect_verify_ms")
	b.ReportMetric(ms(ts[2].Sub(ts[1])), "download_verify_ms")
	b.ReportMetric(ms(ts[3].Sub(ts[2])), "stage_ms")
	b.ReportMetric(ms(ts[4].Sub(ts[3])), "switch_ms")
	b.ReportMetric(ms(ts[5].Sub(ts[4])), "first_healthy_heartbeat_ms")
	b.ReportMetric(ms(ts[5].Sub(ts[0])), "end_to_end_ms")
	b.ReportMetric(ms(rawDownload), "raw_download_ms")
	b.ReportMetric(float64(len(body))/(1<<20), "artifact_MiB")
}
