package bench

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rap-fabric/core/agent/runtime"
	"github.com/rap-fabric/core/agent/state"
	"github.com/rap-fabric/core/agent/updater"
	"github.com/rap-fabric/core/apiclient"
	"github.com/rap-fabric/core/authority"
	"github.com/rap-fabric/core/domain"
	"github.com/rap-fabric/core/httpapi"
	"github.com/rap-fabric/core/internal/authtest"
	"github.com/rap-fabric/core/pki"
	"github.com/rap-fabric/core/release"
)

func benchKey(n byte) ed25519.PrivateKey {
	seed := make([]byte, ed25519.SeedSize)
	seed[0], seed[1] = n, 0xbe
	return ed25519.NewKeyFromSeed(seed)
}

// BenchmarkArtifactServing measures version storage on one in-process
// authority with real PostgreSQL: an 8 MiB artifact uploaded by the owner in
// 512 KiB chunks (publish phase, informational), downloaded by an enrolled
// agent over mTLS (streamed from PostgreSQL chunk by chunk), and downloaded
// + verified + written into a version slot as the agent's update does
// (updater.Slots.Stage) — beside the baseline measured in the same run: the
// same bytes served from memory by a plain TLS server on loopback (the
// artifact's raw download time). It runs a fixed number of downloads
// whatever b.N is and reports MB/s. The same downloads from an update-cache
// node (an in-process agent runtime holding the role, which mirrored the
// artifact) are reported beside the authority's. Run:
//
//	export DATABASE_URL=$(scripts/pg.sh url)
//	go test -run '^$' -bench BenchmarkArtifactServing -benchtime 1x ./bench/
func BenchmarkArtifactServing(b *testing.B) {
	const size = 8 << 20
	const downloads = 8
	g := authtest.New(b, 1)
	g.Leader(10 * time.Second)
	owner := g.Client(g.DS...)
	ctx := context.Background()
	body := make([]byte, size)
	_, _ = rand.Read(body)
	sum := sha256.Sum256(body)
	art := release.Artifact{OS: "linux", Arch: "amd64", SHA256: hex.EncodeToString(sum[:]), Size: size}
	now := time.Now().UTC().Truncate(time.Second)
	must := func(err error) {
		if err != nil {
			b.Fatal(err)
		}
	}
	must(owner.Do(ctx, http.MethodPut, "/v1/releases/roots", authority.SetRootsRequest{Threshold: 1, Keys: [][]byte{benchKey(1).Public().(ed25519.PublicKey)}, Reason: "bench"}, nil, nil))
	ks, err := release.NewKeySetEnvelope(release.KeySet{Version: 1, SigningKeys: []release.SigningKey{{Public: benchKey(2).Public().(ed25519.PublicKey)}}, IssuedAt: now.Add(-time.Minute), ExpiresAt: now.Add(time.Hour)})
	must(err)
	ks, err = release.Sign(ks, benchKey(1))
	must(err)
	must(owner.Do(ctx, http.MethodPost, "/v1/releases/key-sets", ks, nil, nil))
	me, err := release.NewManifestEnvelope(release.Manifest{Product: release.ProductNodeAgent, Version: "9.9.9", Channels: []release.Channel{release.ChannelCandidate},
		Artifacts: []release.Artifact{art}, Provenance: release.Provenance{SourceRevision: "bench", BuildTime: now}, IssuedAt: now.Add(-time.Minute), ExpiresAt: now.Add(time.Hour)})
	must(err)
	me, err = release.Sign(me, benchKey(2))
	must(err)
	must(owner.Do(ctx, http.MethodPost, "/v1/releases", me, nil, nil))
	upStart := time.Now()
	for off := 0; off < size; off += authority.DefaultReleaseChunkSize {
		must(owner.Do(ctx, http.MethodPut, fmt.Sprintf("/v1/releases/artifacts/%s/chunks/%d", art.SHA256, off), map[string]any{"data": body[off : off+authority.DefaultReleaseChunkSize]}, nil, nil))
	}
	upload := time.Since(upStart)

	// An enrolled node (auto-approving token) for the mTLS downloads.
	c, err := authtest.CreateCluster(ctx, owner, "bench-rel")
	must(err)
	pin := c["ca_pin"].(string)
	var tok struct {
		Token string `json:"token"`
	}
	must(owner.Do(ctx, http.MethodPost, "/v1/join-tokens", map[string]any{"cluster": "bench-rel", "max_uses": 2, "auto_approve": true, "allowed_roles": []string{"relay-node"}, "description": "bench"}, &tok, nil))
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	nk, _ := ecdh.X25519().GenerateKey(rand.Reader)
	poll := make([]byte, 32)
	_, _ = rand.Read(poll)
	ec, err := apiclient.New(apiclient.Options{Servers: []string{g.DS[0].APIAddr()}, CAPin: pin, ServerName: httpapi.ServerNameForPin(pin)})
	must(err)
	var st struct {
		ClusterID   string `json:"cluster_id"`
		Certificate []byte `json:"certificate"`
		CACert      []byte `json:"ca_certificate"`
	}
	must(ec.Do(ctx, http.MethodPost, "/v1/agent/join", map[string]any{"token": tok.Token, "node_name": "bench", "host_fingerprint": hex.EncodeToString(sum[:]),
		"public_key": []byte(priv.Public().(ed25519.PublicKey)), "noise_public_key": nk.PublicKey().Bytes(), "capabilities": []string{"can_route_mesh"}, "poll_secret": poll}, &st, nil))
	ec.Close()
	cpin, err := pki.PinDER(st.CACert)
	must(err)
	tc := &tls.Config{MinVersion: tls.VersionTLS13, ServerName: httpapi.ServerNameForCluster(st.ClusterID), InsecureSkipVerify: true, //nolint:gosec // pinned below
		VerifyConnection: func(cs tls.ConnectionState) error { return apiclient.VerifyPinnedChain(cs.PeerCertificates, cpin) },
		Certificates:     []tls.Certificate{{Certificate: [][]byte{st.Certificate}, PrivateKey: priv}}}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tc}}
	defer hc.CloseIdleConnections()
	fromAuthority := func() (io.ReadCloser, error) {
		resp, err := hc.Get("https://" + g.DS[0].APIAddr() + "/v1/agent/releases/artifacts/" + art.SHA256)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			return nil, fmt.Errorf("status %s", resp.Status)
		}
		return resp.Body, nil
	}

	// An update-cache node: an in-process agent runtime holding the role,
	// mirroring the release once a rollout names it, serving it over mTLS.
	fromCache := startUpdateCache(b, g, owner, pin, tok.Token, art.SHA256, st.CACert, st.Certificate, priv)

	// Baseline: the same bytes from memory over TLS on loopback.
	raw := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(size))
		_, _ = io.Copy(w, bytes.NewReader(body))
	}))
	raw.EnableHTTP2 = false
	raw.StartTLS()
	defer raw.Close()
	rc := raw.Client()
	fromMemory := func() (io.ReadCloser, error) {
		resp, err := rc.Get(raw.URL)
		if err != nil {
			return nil, err
		}
		return resp.Body, nil
	}

	measure := func(open func() (io.ReadCloser, error), sink func(io.Reader) error) float64 {
		start := time.Now()
		for range downloads {
			r, err := open()
			must(err)
			must(sink(r))
			r.Close()
		}
		return float64(downloads*size) / (1 << 20) / time.Since(start).Seconds()
	}
	discard := func(r io.Reader) error {
		d := release.NewDigester(art)
		if _, err := io.Copy(d, r); err != nil {
			return err
		}
		return d.Verify()
	}
	b.ResetTimer()
	rawRate := measure(fromMemory, discard)
	authRate := measure(fromAuthority, discard)
	cacheRate := measure(fromCache, discard)
	i := 0
	stageRate := measure(fromAuthority, func(r io.Reader) error {
		i++
		return updater.Slots{Dir: b.TempDir()}.Stage(fmt.Sprintf("9.9.%d", i), art, r)
	})
	b.StopTimer()
	b.ReportMetric(rawRate, "raw_tls_MBps")
	b.ReportMetric(authRate, "authority_mtls_MBps")
	b.ReportMetric(cacheRate, "update_cache_mtls_MBps")
	b.ReportMetric(stageRate, "download_verify_stage_MBps")
	b.ReportMetric(float64(size)/(1<<20)/upload.Seconds(), "owner_upload_MBps")
}

// startUpdateCache enrolls an in-process agent runtime with the
// update-cache role, rolls 9.9.9 out so that it mirrors the artifact, waits
// until it serves it and returns a download from it with the bench node's
// certificate (the cache checks it is a node of the cluster).
func startUpdateCache(b *testing.B, g *authtest.Group, owner *apiclient.Client, pin, token, sha string, caDER, cert []byte, key ed25519.PrivateKey) func() (io.ReadCloser, error) {
	ctx, cancel := context.WithCancel(context.Background())
	dir := b.TempDir()
	st, err := state.Open(filepath.Join(dir, "state.db"), state.Options{})
	if err != nil {
		b.Fatal(err)
	}
	caps := []domain.Capability{domain.CapRunUpdateCache}
	if _, err := runtime.Enroll(ctx, st, runtime.EnrollOptions{Authorities: []string{g.DS[0].APIAddr()}, Token: token, CAPin: pin, Name: "cache",
		Capabilities: caps, MachineIDPath: writeMachineID(b, dir), PollInterval: 100 * time.Millisecond}); err != nil {
		b.Fatal(err)
	}
	sock := filepath.Join(dir, "agent.sock")
	a := runtime.NewAgent(st, runtime.RunOptions{Interval: 300 * time.Millisecond, RequestTimeout: 5 * time.Second, StatusSocket: sock, Capabilities: caps,
		Snapshot: runtime.SnapshotOptions{Wait: 2 * time.Second}, Mesh: runtime.MeshOptions{Disabled: true}, VPN: runtime.VPNOptions{Disabled: true},
		Update: runtime.UpdateOptions{CacheListen: "127.0.0.1:0"}})
	done := make(chan struct{})
	go func() { defer close(done); _ = a.Run(ctx) }()
	b.Cleanup(func() { cancel(); <-done; st.Close() })
	var node string
	status := func() *runtime.MemberStatus {
		r, err := runtime.ReadStatus(ctx, sock)
		if err != nil || len(r.Memberships) == 0 {
			return nil
		}
		return &r.Memberships[0]
	}
	poll := func(what string, cond func() bool) {
		for deadline := time.Now().Add(60 * time.Second); !cond(); time.Sleep(100 * time.Millisecond) {
			if time.Now().After(deadline) {
				b.Fatalf("timed out waiting: %s", what)
			}
		}
	}
	poll("the cache agent running", func() bool {
		if m := status(); m != nil {
			node = m.NodeID
		}
		return node != ""
	})
	poll("the update-cache role", func() bool {
		return owner.Do(ctx, http.MethodPost, "/v1/clusters/bench-rel/nodes/"+node+"/roles", map[string]any{"role": "update-cache"}, nil, nil) == nil
	})
	if err := owner.Do(ctx, http.MethodPost, "/v1/clusters/bench-rel/rollouts", map[string]any{"product": release.ProductNodeAgent, "version": "9.9.9",
		"canary_percent": 100, "soak_seconds": 0, "update_deadline_seconds": 3600}, nil, nil); err != nil {
		b.Fatal(err)
	}
	var endpoint string
	poll("the cache mirrors the artifact", func() bool {
		m := status()
		if m == nil || m.UpdateCache == nil || m.UpdateCache.Artifacts == 0 {
			return false
		}
		endpoint = strings.TrimPrefix(m.UpdateCache.Endpoint, "update-cache+https://")
		return true
	})
	// The cache presents its node certificate (client-auth usage): checked
	// against the cluster CA as the agent does.
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		b.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	tc := &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true, //nolint:gosec // verified below
		VerifyConnection: func(cs tls.ConnectionState) error {
			_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
			return err
		},
		Certificates: []tls.Certificate{{Certificate: [][]byte{cert}, PrivateKey: key}}}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tc}}
	b.Cleanup(hc.CloseIdleConnections)
	return func() (io.ReadCloser, error) {
		resp, err := hc.Get("https://" + endpoint + "/v1/agent/releases/artifacts/" + sha)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			return nil, fmt.Errorf("status %s", resp.Status)
		}
		return resp.Body, nil
	}
}

func writeMachineID(b *testing.B, dir string) string {
	p := filepath.Join(dir, "machine-id")
	if err := os.WriteFile(p, []byte("0123456789abcdef0123456789abcdef\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	return p
}
