package integration

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/agent/identity"
	"github.com/rap-fabric/core/agent/state"
	"github.com/rap-fabric/core/internal/authtest"
	"github.com/rap-fabric/core/snapshot"
)

// runPlain starts `rap-node-agent run` without a mesh, with a loopback
// config-storage endpoint and the given capability.
func (a *meshAgent) runPlain(capability string) {
	a.cmd = exec.Command(filepath.Join(a.bin, "rap-node-agent"), a.args("run", "--interval", "300ms", "--desired-every", "600ms",
		"--request-timeout", "1s", "--log-level", "debug", "--snapshot-wait", "2s", "--no-mesh", "--storage-listen", "127.0.0.1:0",
		"--capability", capability)...)
	a.out = &syncBuf{}
	a.cmd.Stdout, a.cmd.Stderr = a.out, a.out
	require.NoError(a.t, a.cmd.Start())
	cmd, out, t := a.cmd, a.out, a.t
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
		if t.Failed() {
			t.Logf("--- agent %s output:\n%s", a.name, out.String())
		}
	})
}

// statusTable runs `rap-node-agent status` (the table an operator reads).
func (a *meshAgent) statusTable() string {
	out, _ := exec.Command(filepath.Join(a.bin, "rap-node-agent"), a.args("status")...).CombinedOutput()
	return string(out)
}

type nodeSnapshotView struct {
	Status struct {
		DesiredVersion uint64 `json:"desired_version"`
	} `json:"status"`
	Snapshot *snapshot.Snapshot `json:"snapshot"`
}

// servedSnapshot asks a config-storage endpoint, as the node whose (stopped)
// agent keeps its identity in statePath, for that node's snapshot. It
// returns the served version (0 when the storage node has nothing newer than
// after) and the served bytes (the envelope the storage node holds).
func servedSnapshot(statePath, endpoint string, after uint64) (uint64, []byte, error) {
	st, err := state.Open(statePath, state.Options{LockTimeout: time.Second})
	if err != nil {
		return 0, nil, err
	}
	cs, err := st.Memberships()
	if err != nil || len(cs) != 1 {
		st.Close()
		return 0, nil, fmt.Errorf("memberships %v: %v", cs, err)
	}
	id, err := st.Identity(cs[0])
	st.Close()
	if err != nil {
		return 0, nil, err
	}
	cert, err := identity.ParseCertificatePEM([]byte(id.CertificatePEM))
	if err != nil {
		return 0, nil, err
	}
	ca, err := identity.ParseCertificatePEM([]byte(id.CAPEM))
	if err != nil {
		return 0, nil, err
	}
	keys, err := identity.LoadKeys(id.SigningKey, id.NoiseKey)
	if err != nil {
		return 0, nil, err
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	tc := &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true, //nolint:gosec // the chain is checked below
		Certificates: []tls.Certificate{{Certificate: [][]byte{cert.Raw}, PrivateKey: keys.Signing, Leaf: cert}},
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			c, err := x509.ParseCertificate(raw[0])
			if err != nil {
				return err
			}
			_, err = c.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
			return err
		}}
	hc := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{TLSClientConfig: tc}}
	defer hc.CloseIdleConnections()
	resp, err := hc.Get(fmt.Sprintf("https://%s/v1/storage/snapshot?after_version=%d", strings.TrimPrefix(endpoint, "https://"), after))
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNoContent {
		return 0, nil, nil
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return 0, nil, fmt.Errorf("%s: %s", resp.Status, body)
	}
	var w struct {
		Version  uint64 `json:"version"`
		Snapshot []byte `json:"snapshot"`
	}
	if err := json.Unmarshal(body, &w); err != nil {
		return 0, nil, err
	}
	return w.Version, w.Snapshot, nil
}

// TestAgentFetchesFromConfigStorageWhenAuthoritiesAreDown runs two real
// agent processes against three in-process authorities and PostgreSQL: s
// holds the config-storage role and serves on --storage-listen, o is an
// ordinary node that gets the core-mesh role (so its snapshot carries the
// cluster's gossip key and a peer directory). Both apply their snapshots
// (o's lists s). o is killed; the operator re-signs the cluster's snapshots
// (no new assignment: same content, a newer version) and s caches o's new
// one, sealed to o's X25519 key: the bytes s holds contain neither the
// gossip key nor any peer endpoint nor o's own. Every authority
// stops. o, started again, runs on its stored snapshot, finds no authority,
// fetches the newer snapshot from s, verifies and applies it (status: "from
// config-storage") and keeps running degraded.
func TestAgentFetchesFromConfigStorageWhenAuthoritiesAreDown(t *testing.T) {
	bin := binaries(t)
	g := authtest.New(t, 3)
	ctx := context.Background()
	g.Leader(10 * time.Second)
	owner := g.Client(g.DS...)
	ci, token := mkClusterTokenN(t, owner, "store", 2)
	c := struct{ ID, CAPin string }{ci.id, ci.pin}
	tok := struct{ Token string }{token}
	addrs := apiAddrs(g)
	mk := func(name string) *meshAgent {
		ag := &meshAgent{agentProc: &agentProc{t: t, bin: bin, state: filepath.Join(t.TempDir(), "state.db")}, name: name}
		ag.node = enrollAs(t, ag, g, owner, addrs, "store", tok.Token, c.CAPin)
		return ag
	}
	s, o := mk("store-s"), mk("store-o")
	s.runPlain("can_run_config_storage")
	o.runPlain("can_route_mesh")

	// 1. The config-storage role, through the owner API (retried until the
	// heartbeat carrying the capability is stored).
	g.Eventually(15*time.Second, "config-storage assigned to s", func() bool {
		err := owner.Do(ctx, http.MethodPost, "/v1/clusters/store/nodes/"+s.node+"/roles", map[string]any{"role": "config-storage"}, nil, nil)
		return err == nil
	})
	g.Eventually(15*time.Second, "core-mesh assigned to o", func() bool {
		err := owner.Do(ctx, http.MethodPost, "/v1/clusters/store/nodes/"+o.node+"/roles", map[string]any{"role": "core-mesh"}, nil, nil)
		return err == nil
	})

	// 2. Both applied their snapshots: s serves o's; o's lists s with the
	// endpoint s advertises.
	var storageEP string
	g.Eventually(20*time.Second, "s serving as config-storage node", func() bool {
		m := s.member(c.ID)
		if m.Snapshot == nil || m.Snapshot.StorageEndpoint == "" || m.Snapshot.Serving < 1 || !slices.Contains(m.Snapshot.Scope, snapshot.ScopeConfigStorage) {
			return false
		}
		storageEP = m.Snapshot.StorageEndpoint
		return true
	})
	var applied uint64
	g.Eventually(20*time.Second, "o applied a snapshot that lists s", func() bool {
		var v nodeSnapshotView
		if owner.Do(ctx, http.MethodGet, "/v1/clusters/store/nodes/"+o.node+"/snapshot", nil, &v, nil) != nil || v.Snapshot == nil {
			return false
		}
		lists := slices.ContainsFunc(v.Snapshot.Body.ConfigStorage, func(e snapshot.StorageEndpoint) bool {
			return e.NodeID == s.node && slices.Contains(e.Endpoints, "https://"+storageEP)
		})
		m := o.member(c.ID)
		applied = v.Snapshot.Version
		return lists && m.Snapshot != nil && m.Snapshot.AppliedVersion == v.Snapshot.Version
	})
	g.Eventually(20*time.Second, "s applied its newest snapshot", func() bool {
		r := snapRows(owner, "store")[s.node]
		m := s.member(c.ID)
		return m.Snapshot != nil && r.DesiredVersion > 0 && m.Snapshot.AppliedVersion == r.DesiredVersion
	})

	// 3. o is killed. The operator re-signs every snapshot of the cluster
	// (nothing is assigned: same content, newer version); s caches o's.
	o.stop(syscall.SIGKILL)
	var rb struct {
		Version uint64   `json:"version"`
		Nodes   []string `json:"nodes"`
	}
	require.NoError(t, owner.Do(ctx, http.MethodPost, "/v1/clusters/store/snapshots/rebuild", map[string]any{"force": true}, &rb, nil))
	require.Contains(t, rb.Nodes, o.node)
	require.Greater(t, rb.Version, applied)
	var lastErr error
	defer func() {
		if t.Failed() {
			t.Logf("last config-storage query error: %v", lastErr)
		}
	}()
	var served []byte
	g.Eventually(20*time.Second, "s serves o's re-signed snapshot", func() bool {
		v, raw, err := servedSnapshot(o.state, storageEP, applied)
		lastErr, served = err, raw
		return err == nil && v == rb.Version
	})

	// What s holds for o is sealed: none of o's gossip key, peer endpoints
	// or own endpoints is in it, though o's snapshot carries all three.
	var plain nodeSnapshotView
	require.NoError(t, owner.Do(ctx, http.MethodGet, "/v1/clusters/store/nodes/"+o.node+"/snapshot", nil, &plain, nil))
	require.NotNil(t, plain.Snapshot)
	require.Equal(t, rb.Version, plain.Snapshot.Version)
	body := plain.Snapshot.Body
	require.NotNil(t, body.GossipKey, "o (core-mesh) has the gossip key")
	require.NotEmpty(t, body.Peers, "o (core-mesh) has a peer directory")
	require.True(t, snapshot.IsSealed(served), "s serves a sealed envelope")
	secrets := [][]byte{body.GossipKey.Key, []byte(base64.StdEncoding.EncodeToString(body.GossipKey.Key)), []byte(`"gossip_key"`), []byte(`"peers"`)}
	for _, p := range body.Peers {
		for _, e := range p.Endpoints {
			secrets = append(secrets, []byte(e))
		}
	}
	for _, e := range body.Self.Endpoints {
		secrets = append(secrets, []byte(e))
	}
	for _, sec := range secrets {
		require.False(t, bytes.Contains(served, sec), "the config-storage node holds %q in clear", sec)
	}

	// 4. Every authority stops.
	for i, d := range g.DS {
		require.NoError(t, d.Close())
		g.DS[i] = nil
	}

	// 5. o starts again with no authority: it runs on its stored snapshot,
	// then fetches the newer one from s, and keeps running degraded.
	o.runPlain("can_route_mesh")
	g.Eventually(30*time.Second, "o applied its snapshot from the config-storage node", func() bool {
		m := o.member(c.ID)
		return m.Snapshot != nil && m.Snapshot.Source == "config-storage" && m.Snapshot.AppliedVersion == rb.Version
	})
	g.Eventually(15*time.Second, "o degraded and running", func() bool {
		m := o.member(c.ID)
		return m.Mode == "degraded" && m.Running
	})
	table := o.statusTable()
	require.Contains(t, table, fmt.Sprintf("snapshot: v%d from config-storage", rb.Version), table)
	require.Contains(t, o.out.String(), "running on the stored snapshot")
	require.Nil(t, o.cmd.ProcessState, "o keeps running")
	m := o.member(c.ID)
	require.Zero(t, m.Snapshot.Rejected, "nothing refused: %s", m.Snapshot.LastRejectDetail)
	require.False(t, m.Snapshot.Stale)

	// s keeps serving, degraded, too.
	g.Eventually(15*time.Second, "s degraded and serving", func() bool {
		m := s.member(c.ID)
		return m.Mode == "degraded" && m.Running && m.Snapshot != nil && m.Snapshot.Serving >= 1
	})
	require.Nil(t, s.cmd.ProcessState)
}
