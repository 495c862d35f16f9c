package integration

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/agent/runtime"
	"github.com/rap-fabric/core/apiclient"
	"github.com/rap-fabric/core/authority"
	"github.com/rap-fabric/core/internal/authtest"
	"github.com/rap-fabric/core/release"
	"github.com/rap-fabric/core/store"
)

func rootKey(n byte) ed25519.PrivateKey {
	seed := make([]byte, ed25519.SeedSize)
	seed[0], seed[1] = n, 0x19
	return ed25519.NewKeyFromSeed(seed)
}

// publishBinary publishes rap-node-agent@version with binary as this
// platform's artifact (signed by key 10) and uploads it in chunks.
func publishBinary(t *testing.T, owner *apiclient.Client, version, binary string) {
	publishProduct(t, owner, release.ProductNodeAgent, version, binary)
}

// publishProduct publishes product@version (the agent or a service type)
// with binary as this platform's artifact; edit may change the manifest
// before it is signed (migration metadata).
func publishProduct(t *testing.T, owner *apiclient.Client, product, version, binary string, edit ...func(*release.Manifest)) {
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Second)
	a := artifactOf(t, binary)
	a.OS, a.Arch = goruntime.GOOS, goruntime.GOARCH
	m := release.Manifest{Product: product, Version: version, Channels: []release.Channel{release.ChannelCandidate},
		Artifacts: []release.Artifact{a}, Provenance: release.Provenance{SourceRevision: "test-" + version, BuildTime: now},
		IssuedAt: now.Add(-time.Minute), ExpiresAt: now.Add(24 * time.Hour)}
	for _, f := range edit {
		f(&m)
	}
	env, err := release.NewManifestEnvelope(m)
	require.NoError(t, err)
	env, err = release.Sign(env, rootKey(10))
	require.NoError(t, err)
	require.NoError(t, owner.Do(ctx, http.MethodPost, "/v1/releases", env, nil, nil))
	b, err := os.ReadFile(binary)
	require.NoError(t, err)
	for off := 0; off < len(b); off += authority.DefaultReleaseChunkSize {
		end := min(off+authority.DefaultReleaseChunkSize, len(b))
		require.NoError(t, owner.Do(ctx, http.MethodPut, fmt.Sprintf("/v1/releases/artifacts/%s/chunks/%d", a.SHA256, off), map[string]any{"data": b[off:end]}, nil, nil))
	}
}

// TestRolloutUpdatesRealAgent is the whole cycle with real processes: a
// release of rap-node-agent 2.0.0 is rolled out; the agent (1.0.0, under
// its launcher) finds it in its signed snapshot, verifies it against the
// root keys pinned there, downloads and stages it, exits for the switch;
// the launcher starts 2.0.0, which heartbeats and is promoted; the rollout
// completes. Then a broken 3.0.0 is rolled out: the canary rolls itself back
// to 2.0.0 within the deadline and the rollout halts.
func TestRolloutUpdatesRealAgent(t *testing.T) {
	bin := binaries(t)
	vers := agentVersions(t)
	g := authtest.New(t, 1)
	g.Leader(10 * time.Second)
	owner := g.Client(g.DS...)
	ctx := context.Background()

	now := time.Now().UTC().Truncate(time.Second)
	require.NoError(t, owner.Do(ctx, http.MethodPut, "/v1/releases/roots", authority.SetRootsRequest{Threshold: 2,
		Keys: [][]byte{rootKey(1).Public().(ed25519.PublicKey), rootKey(2).Public().(ed25519.PublicKey), rootKey(3).Public().(ed25519.PublicKey)}, Reason: "test"}, nil, nil))
	ks, err := release.NewKeySetEnvelope(release.KeySet{Version: 1, SigningKeys: []release.SigningKey{{Public: rootKey(10).Public().(ed25519.PublicKey)}},
		IssuedAt: now.Add(-time.Minute), ExpiresAt: now.Add(24 * time.Hour)})
	require.NoError(t, err)
	for _, k := range []byte{1, 3} {
		ks, err = release.Sign(ks, rootKey(k))
		require.NoError(t, err)
	}
	require.NoError(t, owner.Do(ctx, http.MethodPost, "/v1/releases/key-sets", ks, nil, nil))
	publishBinary(t, owner, "1.0.0", filepath.Join(vers, "agent-1.0.0"))
	publishBinary(t, owner, "2.0.0", filepath.Join(vers, "agent-2.0.0"))
	publishBinary(t, owner, "3.0.0", filepath.Join(vers, "agent-3.0.0"))
	publishBinary(t, owner, "2.1.0", filepath.Join(vers, "agent-2.1.0"))
	publishBinary(t, owner, "3.1.0", filepath.Join(vers, "agent-3.1.0"))

	cl, token := mkClusterToken(t, owner, "roll")
	dir := t.TempDir()
	machineID := filepath.Join(dir, "machine-id")
	require.NoError(t, os.WriteFile(machineID, []byte("abcdefabcdefabcdefabcdefabcdef02\n"), 0o644))
	ag := &agentProc{t: t, bin: bin, state: filepath.Join(dir, "state.db")}
	enroll(t, ag, g, owner, apiAddrs(g), "roll", token, cl.pin, machineID)
	l := &launcherProc{t: t, bin: vers, statePth: ag.state, socket: filepath.Join(dir, "agent.sock"), pidfile: filepath.Join(dir, "broken.pid"),
		args: []string{filepath.Join(dir, "slots"), "--install", "1.0.0=" + filepath.Join(vers, "agent-1.0.0"), "--",
			"--interval", "300ms", "--desired-every", "600ms", "--request-timeout", "2s", "--no-mesh", "--snapshot-wait", "2s"}}
	t0 := time.Now()
	l.start("20s")
	l.heartbeating(g, "1.0.0", t0)

	startN := func(version string, canary int) authority.RolloutView {
		var v authority.RolloutView
		require.NoError(t, owner.Do(ctx, http.MethodPost, "/v1/clusters/roll/rollouts", map[string]any{"product": release.ProductNodeAgent, "version": version,
			"canary_count": canary, "wave_percent": 100, "soak_seconds": 0, "failure_threshold": 1, "update_deadline_seconds": 90}, &v, nil))
		return v
	}
	start := func(version string) authority.RolloutView { return startN(version, 1) }
	wait := func(id, state string) authority.RolloutView {
		var v authority.RolloutView
		g.Eventually(90*time.Second, "rollout "+id+" "+state, func() bool {
			if owner.Do(ctx, http.MethodGet, "/v1/clusters/roll/rollouts/"+id, nil, &v, nil) != nil {
				return false
			}
			return v.State == state
		})
		return v
	}
	// 1.0.0 everywhere already: the agent reports it and the rollout
	// completes, making 1.0.0 the last known good.
	wait(start("1.0.0").ID, "completed")

	// 2.0.0: the agent updates itself.
	r2 := start("2.0.0")
	wait(r2.ID, "completed")
	l.heartbeating(g, "2.0.0", t0)
	var runs []store.UpdateRun
	require.NoError(t, owner.Do(ctx, http.MethodGet, "/v1/clusters/roll/nodes/"+r2.Waves[0].Nodes[0].NodeID+"/updates", nil, &runs, nil))
	require.Equal(t, "2.0.0", runs[0].CurrentVersion)

	// 3.0.0 is broken: the canary rolls back by itself, the rollout halts.
	r3 := start("3.0.0")
	v := wait(r3.ID, "halted")
	require.Equal(t, 0, v.CurrentWave)
	require.Equal(t, "failed", v.Waves[0].Nodes[0].Outcome)
	require.Contains(t, v.Waves[0].Nodes[0].LastFailure, "3.0.0 exited with status 3")
	t3 := time.Now()
	l.heartbeating(g, "2.0.0", t3)
	node := r3.Waves[0].Nodes[0].NodeID
	// The rollback is in the agent's heartbeat (update state, versions,
	// failure), as the API and the console show it.
	updateState(t, owner, node, "rolled_back 2.0.0 → 3.0.0", "3.0.0 exited with status 3")

	// Update-cache mirrors. A second node holds the update-cache role: it
	// mirrors the cluster's approved artifacts and serves them over mTLS.
	// Whoever serves the bytes, the updating agent verifies them against
	// the signed manifest.
	require.NoError(t, owner.Do(ctx, http.MethodPost, "/v1/clusters/roll/rollouts/"+r3.ID+"/rollback", map[string]string{"reason": "broken"}, nil, nil))
	cdir := filepath.Join(dir, "cache")
	require.NoError(t, os.MkdirAll(cdir, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(cdir, "machine-id"), []byte("abcdefabcdefabcdefabcdefabcdef03\n"), 0o644))
	cache := &agentProc{t: t, bin: bin, state: filepath.Join(cdir, "state.db")}
	cacheNode := enroll(t, cache, g, owner, apiAddrs(g), "roll", token, cl.pin, filepath.Join(cdir, "machine-id"))
	cache.start("--no-mesh", "--snapshot-wait", "2s", "--capability", "can_run_update_cache", "--update-cache-listen", "127.0.0.1:0")
	g.Eventually(30*time.Second, "the update-cache role assigned", func() bool {
		return owner.Do(ctx, http.MethodPost, "/v1/clusters/roll/nodes/"+cacheNode+"/roles", map[string]any{"role": "update-cache"}, nil, nil) == nil
	})
	cacheStatus := func() runtime.CacheStatus {
		if s := cache.member(cl.id).UpdateCache; s != nil {
			return *s
		}
		return runtime.CacheStatus{}
	}
	// mirrored waits until the cache fetched the artifact of version from
	// an authority and verified it, and returns the copy's path.
	mirrored := func(version string, before uint64) string {
		p := filepath.Join(cdir, "update-cache", cl.id, artifactOf(t, filepath.Join(vers, "agent-"+version)).SHA256)
		g.Eventually(60*time.Second, "the update-cache mirrors "+version, func() bool {
			_, err := os.Stat(p)
			return err == nil && cacheStatus().Mirrored > before
		})
		return p
	}

	// A byte flipped in the mirror's copy: refused, fetched elsewhere. The
	// updating agent is stopped while the mirror warms up, so it asks the
	// mirror first.
	l.stop(syscall.SIGTERM)
	m0 := cacheStatus().Mirrored
	startN("2.1.0", 2)
	copy21 := mirrored("2.1.0", m0)
	b, err := os.ReadFile(copy21)
	require.NoError(t, err)
	b[len(b)/2] ^= 0xff
	require.NoError(t, os.WriteFile(copy21, b, 0o600))
	served := cacheStatus().Served
	t4 := time.Now()
	l.start("20s")
	l.heartbeating(g, "2.1.0", t4)
	out := l.out.String()
	require.Contains(t, out, "artifact source refused; trying the next: source=\"update-cache "+cacheNode)
	require.Contains(t, out, "artifact does not match manifest")
	require.Contains(t, out, "artifact fetched and verified: source=authorities version=2.1.0")
	require.Greater(t, cacheStatus().Served, served, "the mirror was asked")
	updateState(t, owner, node, "running 2.1.0 (previous 2.0.0)", "")

	// Good bytes from the mirror are used. (3.1.0 never reports healthy:
	// the launcher rolls it back after staging it from the mirror.)
	l.stop(syscall.SIGTERM)
	var open struct {
		Items []store.Rollout `json:"items"`
	}
	require.NoError(t, owner.Do(ctx, http.MethodGet, "/v1/clusters/roll/rollouts", nil, &open, nil))
	require.NoError(t, owner.Do(ctx, http.MethodPost, "/v1/clusters/roll/rollouts/"+open.Items[0].ID+"/rollback", map[string]string{"reason": "next"}, nil, nil))
	m0 = cacheStatus().Mirrored
	startN("3.1.0", 2)
	mirrored("3.1.0", m0)
	t5 := time.Now()
	l.start("5s")
	g.Eventually(60*time.Second, "3.1.0 staged from the mirror", func() bool {
		return strings.Contains(l.out.String(), "artifact fetched and verified: source=\"update-cache "+cacheNode)
	})
	l.heartbeating(g, "2.1.0", t5)
	updateState(t, owner, node, "rolled_back 2.1.0 → 3.1.0", "")
}

// updateState waits until the node's latest heartbeat carries an update
// state starting with prefix and containing detail.
func updateState(t *testing.T, owner *apiclient.Client, node, prefix, detail string) {
	t.Helper()
	var got string
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		var l struct {
			Items []authority.NodeHeartbeat `json:"items"`
		}
		if owner.Do(context.Background(), http.MethodGet, "/v1/nodes/"+node+"/heartbeat", nil, &l, nil) == nil && len(l.Items) > 0 {
			got = l.Items[0].UpdateState
			if strings.HasPrefix(got, prefix) && strings.Contains(got, detail) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("update state of %s: want %q…%q, got %q", node, prefix, detail, got)
		}
	}
}
