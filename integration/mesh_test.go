package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/agent/runtime"
	"github.com/rap-fabric/core/apiclient"
	"github.com/rap-fabric/core/daemon"
	"github.com/rap-fabric/core/internal/authtest"
	"github.com/rap-fabric/core/internal/testport"
)

// meshAgent is an agent process with mesh and snapshot flags.
type meshAgent struct {
	*agentProc
	name, node string
	extra      []string
}

func (a *meshAgent) run() {
	a.cmd = exec.Command(filepath.Join(a.bin, "rap-node-agent"), a.args("run", append([]string{"--interval", "300ms", "--desired-every", "600ms",
		"--request-timeout", "1s", "--log-level", "debug", "--snapshot-wait", "2s", "--mesh-listen", "127.0.0.1:0", "--storage-listen", "127.0.0.1:0",
		"--mesh-report-every", "500ms", "--capability", "can_route_mesh,can_accept_node_ingress"}, a.extra...)...)...)
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

func (a *meshAgent) mesh(ping string) (runtime.PingResult, error) {
	out, err := exec.Command(filepath.Join(a.bin, "rap-node-agent"), "mesh", "ping", ping, "--state", a.state, "-o", "json", "--timeout", "2s").CombinedOutput()
	if err != nil {
		return runtime.PingResult{}, fmt.Errorf("%v: %s", err, out)
	}
	var r runtime.PingResult
	err = json.Unmarshal(out, &r)
	return r, err
}

// enrollAs enrolls an agent with its own name and machine id and approves it.
func enrollAs(t *testing.T, a *meshAgent, g *authtest.Group, owner *apiclient.Client, addrs []string, slug, token, pin string) string {
	ctx := context.Background()
	mid := filepath.Join(filepath.Dir(a.state), "machine-id")
	require.NoError(t, os.WriteFile(mid, []byte(strings.Repeat(a.name[len(a.name)-1:], 32)+"\n"), 0o644))
	cmd := exec.Command(filepath.Join(a.bin, "rap-node-agent"), a.args("enroll", "--authority", strings.Join(addrs, ","), "--token", token, "--ca-pin", pin,
		"--name", a.name, "--machine-id-file", mid, "--capability", "can_route_mesh,can_accept_node_ingress", "--poll-interval", "200ms")...)
	out := &syncBuf{}
	cmd.Stdout, cmd.Stderr = out, out
	require.NoError(t, cmd.Start())
	defer func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	}()
	var reqID string
	g.Eventually(15*time.Second, "a pending join request of "+a.name, func() bool {
		var l struct {
			Items []struct {
				ID       string `json:"id"`
				NodeName string `json:"node_name"`
			} `json:"items"`
		}
		if owner.Do(ctx, http.MethodGet, "/v1/join-requests?cluster="+slug+"&status=pending", nil, &l, nil) != nil {
			return false
		}
		for _, it := range l.Items {
			if it.NodeName == a.name {
				reqID = it.ID
				return true
			}
		}
		return false
	})
	var ap struct {
		NodeID string `json:"node_id"`
	}
	require.NoError(t, owner.Do(ctx, http.MethodPost, "/v1/join-requests/"+reqID+"/approve", nil, &ap, nil))
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		require.NoError(t, err, out.String())
	case <-time.After(20 * time.Second):
		t.Fatalf("enroll did not finish:\n%s", out.String())
	}
	return ap.NodeID
}

type snapRow struct {
	NodeID         string `json:"node_id"`
	DesiredVersion uint64 `json:"desired_version"`
	AppliedVersion uint64 `json:"applied_version"`
}

func snapRows(owner *apiclient.Client, slug string) map[string]snapRow {
	var l struct {
		Items []snapRow `json:"items"`
	}
	if owner.Do(context.Background(), http.MethodGet, "/v1/clusters/"+slug+"/snapshots", nil, &l, nil) != nil {
		return nil
	}
	out := map[string]snapRow{}
	for _, r := range l.Items {
		out[r.NodeID] = r
	}
	return out
}

// TestAgentSnapshotsAndMesh runs three real agent processes against three
// in-process authorities: roles assigned through the owner API reach the
// agents as signed snapshots (applied version in status and in the
// authority's view, kept across a restart), the mesh comes up on loopback
// UDP, `rap-node-agent mesh ping` crosses a direct link and a relay (b and c
// are told never to link directly), the link inventory reaches
// /v1/clusters/{c}/links, a deny route intent between b and c stops their
// echo through the relay until it is deleted, and a revoked node is torn
// down by the others.
func TestAgentSnapshotsAndMesh(t *testing.T) {
	bin := binaries(t)
	g := authtest.New(t, 3)
	ctx := context.Background()
	g.Leader(10 * time.Second)
	owner := g.Client(g.DS...)
	var err error
	ci, token := mkClusterTokenN(t, owner, "mesh", 3)
	c := struct{ ID, CAPin string }{ci.id, ci.pin}
	tok := struct{ Token string }{token}
	addrs := apiAddrs(g)
	agents := map[string]*meshAgent{}
	for _, n := range []string{"a", "b", "c"} {
		dir := t.TempDir()
		ag := &meshAgent{agentProc: &agentProc{t: t, bin: bin, state: filepath.Join(dir, "state.db")}, name: "mesh-" + n}
		ag.node = enrollAs(t, ag, g, owner, addrs, "mesh", tok.Token, c.CAPin)
		agents[n] = ag
	}
	a, b, cc := agents["a"], agents["b"], agents["c"]
	b.extra = []string{"--mesh-no-direct", cc.node}
	cc.extra = []string{"--mesh-no-direct", b.node}
	// Loopback metrics listeners on the relay (a) and on b (agentmetrics_test.go).
	aMetrics, bMetrics := testport.Stable(t), testport.Stable(t)
	a.extra = append(a.extra, "--metrics-listen", aMetrics, "--debug-listen", "127.0.0.1:0", "--log-format", "json")
	b.extra = append(b.extra, "--metrics-listen", bMetrics)
	for _, ag := range agents {
		ag.run()
	}
	for _, ag := range agents {
		g.Eventually(15*time.Second, "heartbeats with capabilities of "+ag.name, func() bool { return ag.member(c.ID).HeartbeatsAcked > 0 })
	}

	// 1. Assign a role through the owner API → each agent applies the new
	// version, visible in its status and in the authority's view.
	for _, ag := range agents {
		var rv struct {
			SnapshotVersion uint64 `json:"snapshot_version"`
		}
		// Retried until the heartbeat that carries the capabilities is stored.
		g.Eventually(10*time.Second, "relay-node assigned to "+ag.name, func() bool {
			err := owner.Do(ctx, http.MethodPost, "/v1/clusters/mesh/nodes/"+ag.node+"/roles", map[string]any{"role": "relay-node"}, &rv, nil)
			if err != nil {
				t.Logf("assign to %s: %v", ag.name, err)
			}
			return err == nil
		})
	}
	for _, ag := range agents {
		g.Eventually(20*time.Second, "snapshot applied by "+ag.name, func() bool {
			m := ag.member(c.ID)
			r := snapRows(owner, "mesh")[ag.node]
			return m.Snapshot != nil && r.DesiredVersion > 0 && m.Snapshot.AppliedVersion == r.DesiredVersion && r.AppliedVersion == r.DesiredVersion &&
				slices.Contains(m.Snapshot.Scope, "mesh") && m.Snapshot.Peers == 2
		})
	}

	// 2. The mesh: endpoints advertised in facts reach the peer directories
	// (the endpoint change marks the cluster dirty), links come up.
	g.Eventually(30*time.Second, "a linked to b and c", func() bool {
		r := a.status()
		if len(r.Mesh) != 1 {
			return false
		}
		up := 0
		for _, l := range r.Mesh[0].Links {
			if l.State == "up" {
				up++
			}
		}
		return up == 2
	})
	var res runtime.PingResult
	var lastErr error
	defer func() {
		if t.Failed() {
			t.Logf("last ping error: %v; b status: %+v", lastErr, b.status().Mesh)
			if i := strings.Index(g.Logs.String(), "panic serving"); i >= 0 {
				t.Log(g.Logs.String()[i:min(len(g.Logs.String()), i+3000)])
			}
		}
	}()
	g.Eventually(20*time.Second, "b pings a directly", func() bool {
		res, err = b.mesh(a.node)
		lastErr = err
		return err == nil
	})
	_ = lastErr
	require.Equal(t, []string{b.node, a.node}, res.Path)
	require.Greater(t, res.RTTMs, 0.0)
	g.Eventually(20*time.Second, "b pings c through a", func() bool {
		res, err = b.mesh(cc.node)
		return err == nil && res.EchoRTTMs > 0
	})
	require.Equal(t, []string{b.node, a.node, cc.node}, res.Path, "b and c never link directly: the relay carries it")
	require.Greater(t, res.EchoRTTMs, 0.0)
	out, err := exec.Command(filepath.Join(bin, "rap-node-agent"), "mesh", "ping", cc.node, "--state", b.state).CombinedOutput()
	require.NoError(t, err, string(out))
	t.Logf("rap-node-agent mesh ping:\n%s", out)
	// The owner's CLI on b's host asks the same local agent.
	var viaCtl runtime.PingResult
	g.Eventually(20*time.Second, "rapctl mesh ping with an echo", func() bool {
		out, err = exec.Command(filepath.Join(bin, "rapctl"), "mesh", "ping", cc.node, "--state", b.state, "-o", "json").CombinedOutput()
		viaCtl = runtime.PingResult{}
		return err == nil && json.Unmarshal(out, &viaCtl) == nil && viaCtl.EchoRTTMs > 0
	})
	require.Equal(t, []string{b.node, a.node, cc.node}, viaCtl.Path, "rapctl mesh ping shows the relay path")
	require.Greater(t, viaCtl.EchoRTTMs, 0.0)
	// b's heartbeat carries that ping to the authorities: `rapctl mesh
	// pings` (GET /v1/clusters/mesh/pings) shows b's last ping with the
	// relay path the console's topology highlights.
	g.Eventually(20*time.Second, "b's last ping in /pings", func() bool {
		cmd := exec.Command(filepath.Join(bin, "rapctl"), "--server", g.DS[0].APIAddr(), "--token", g.Token, "--ca-pin", g.Pin,
			"mesh", "pings", "--cluster", "mesh", "--node", b.node, "-o", "json")
		out, err := cmd.CombinedOutput()
		if err != nil {
			lastErr = fmt.Errorf("%v: %s", err, out)
			return false
		}
		var l struct {
			Items []struct {
				NodeID      string   `json:"node_id"`
				Destination string   `json:"destination"`
				Path        []string `json:"path"`
				RTTMs       float64  `json:"rtt_ms"`
			} `json:"items"`
		}
		if json.Unmarshal(out, &l) != nil || len(l.Items) != 1 {
			lastErr = fmt.Errorf("pings: %s", out)
			return false
		}
		it := l.Items[0]
		return it.NodeID == b.node && it.Destination == cc.node && slices.Equal(it.Path, []string{b.node, a.node, cc.node}) && it.RTTMs > 0
	})
	out, err = exec.Command(filepath.Join(bin, "rapctl"), "mesh", "ping", "--state", b.state).CombinedOutput()
	require.Error(t, err, "no NODE is a usage error")
	require.Contains(t, string(out), "NODE")

	// The relay's metrics show links, handshakes and the frames it forwarded.
	requireAgentMeshMetrics(t, aMetrics, bMetrics, b.node, cc.node, func(what string, cond func() bool) { g.Eventually(20*time.Second, what, cond) })
	// a runs with --log-format json: every line it logged is a JSON object.
	requireJSONLogLines(t, a.out.String())

	// 3. The link inventory reaches the control plane.
	g.Eventually(15*time.Second, "link inventory", func() bool {
		var l struct {
			Items []struct {
				NodeID     string `json:"node_id"`
				PeerNodeID string `json:"peer_node_id"`
				State      string `json:"state"`
			} `json:"items"`
		}
		if err := owner.Do(ctx, http.MethodGet, "/v1/clusters/mesh/links?node="+a.node, nil, &l, nil); err != nil {
			lastErr = err
			return false
		}
		lastErr = fmt.Errorf("links %+v", l.Items)
		up := 0
		for _, it := range l.Items {
			if it.State == "up" {
				up++
			}
		}
		return up == 2
	})
	var routes struct {
		Items []struct {
			Destination string `json:"destination"`
			NextHop     string `json:"next_hop"`
		} `json:"items"`
	}
	g.Eventually(15*time.Second, "b's route to c via a in mesh_routes", func() bool {
		if owner.Do(ctx, http.MethodGet, "/v1/clusters/mesh/routes?node="+b.node, nil, &routes, nil) != nil {
			return false
		}
		for _, r := range routes.Items {
			if r.Destination == cc.node && r.NextHop == a.node {
				return true
			}
		}
		return false
	})

	// 3a. A deny intent between b and c (owner API, signed into every mesh
	// snapshot): once all three applied it, no echo crosses the relay from b
	// to c or back, while both still reach a; deleting it restores b ↔ c.
	applied := func() map[string]uint64 {
		out := map[string]uint64{}
		for n, ag := range agents {
			if m := ag.member(c.ID); m.Snapshot != nil {
				out[n] = m.Snapshot.AppliedVersion
			}
		}
		return out
	}
	waitApplied := func(what string, prev map[string]uint64) {
		for n, ag := range agents {
			g.Eventually(20*time.Second, what+" applied by "+ag.name, func() bool {
				m := ag.member(c.ID)
				r := snapRows(owner, "mesh")[ag.node]
				return m.Snapshot != nil && m.Snapshot.AppliedVersion > prev[n] && m.Snapshot.AppliedVersion == r.DesiredVersion
			})
		}
	}
	prev := applied()
	var intent map[string]any
	require.NoError(t, owner.Do(ctx, http.MethodPost, "/v1/clusters/mesh/route-intents",
		map[string]any{"name": "no-b-c", "source": "node:" + b.node, "destination": "node:" + cc.node, "action": "deny", "priority": 10}, &intent, nil))
	waitApplied("the deny intent", prev)
	g.Eventually(20*time.Second, "b and c still reach a", func() bool {
		_, e1 := b.mesh(a.node)
		_, e2 := cc.mesh(a.node)
		return e1 == nil && e2 == nil
	})
	for range 3 {
		r, err := b.mesh(cc.node)
		require.False(t, err == nil && r.EchoRTTMs > 0, "b reached c despite the deny intent: %+v", r)
		r, err = cc.mesh(b.node)
		require.False(t, err == nil && r.EchoRTTMs > 0, "c reached b despite the deny intent: %+v", r)
	}
	prev = applied()
	require.NoError(t, owner.Do(ctx, http.MethodDelete, "/v1/clusters/mesh/route-intents/"+intent["id"].(string), nil, nil, nil))
	waitApplied("the intent's removal", prev)
	g.Eventually(20*time.Second, "b pings c through a again", func() bool {
		res, err = b.mesh(cc.node)
		return err == nil && res.EchoRTTMs > 0
	})

	// 3b. The owner fences the cluster: the agents learn it from their next
	// signed snapshot and keep running on it.
	require.NoError(t, owner.Do(ctx, http.MethodPost, "/v1/clusters/mesh/partition/fence", map[string]any{"reason": "integration drill"}, nil, nil))
	g.Eventually(15*time.Second, "a learns the cluster is fenced", func() bool {
		m := a.member(c.ID)
		return m.Snapshot != nil && m.Snapshot.AuthorityState == "fenced"
	})
	out, err = exec.Command(filepath.Join(bin, "rap-node-agent"), a.args("status")...).CombinedOutput()
	require.NoError(t, err, string(out))
	require.Contains(t, string(out), "cluster partition state: fenced")
	_, err = b.mesh(cc.node)
	require.NoError(t, err, "a fenced cluster's mesh keeps working")

	// 4. Restart: the applied version is kept (persisted before use) and
	// nothing older is accepted.
	before := a.member(c.ID).Snapshot.AppliedVersion
	a.stop(syscall.SIGTERM)
	off := a.status()
	require.Equal(t, before, off.Memberships[0].AppliedVersion, "the state file holds the applied version")
	a.run()
	g.Eventually(15*time.Second, "a restarted on its stored snapshot", func() bool {
		m := a.member(c.ID)
		return m.Snapshot != nil && m.Snapshot.AppliedVersion >= before
	})
	require.Equal(t, "fenced", a.member(c.ID).Snapshot.AuthorityState, "the stored snapshot keeps the partition state")
	require.NoError(t, owner.Do(ctx, http.MethodPost, "/v1/clusters/mesh/partition/recover", map[string]any{"reason": "drill over"}, nil, nil))
	g.Eventually(15*time.Second, "a learns the cluster is normal again", func() bool {
		m := a.member(c.ID)
		return m.Snapshot != nil && m.Snapshot.AuthorityState == ""
	})

	// 5. Revoke c: a and b tear its links down; b no longer reaches it; the
	// cluster's gossip key is rotated, a and b move to the new key, and c's
	// gossip record is gone from a. The times from the revoke request to each
	// are measured (docs/mesh-gossip-and-links.md quotes them).
	gossipOf := func(ag *meshAgent) (key string, verified int, cUp bool) {
		r := ag.status()
		if len(r.Mesh) != 1 {
			return "", -1, false
		}
		for _, l := range r.Mesh[0].Links {
			cUp = cUp || (l.NodeID == cc.node && l.State == "up")
		}
		return r.Mesh[0].GossipDetail.KeyID, r.Mesh[0].GossipDetail.Verified, cUp
	}
	var oldKey string
	g.Eventually(30*time.Second, "a and b gossip on one key, with c verified at a", func() bool {
		ka, va, _ := gossipOf(a)
		kb, _, _ := gossipOf(b)
		oldKey = ka
		return ka != "" && ka == kb && va == 2
	})
	revokeStart := time.Now()
	require.NoError(t, owner.Do(ctx, http.MethodPost, "/v1/clusters/mesh/nodes/"+cc.node+"/revoke", map[string]any{"reason": "test"}, nil, nil))
	revoked := time.Since(revokeStart)
	var linkDown, keyA, keyB, recordGone time.Duration
	deadline := time.Now().Add(30 * time.Second)
	for (linkDown == 0 || keyA == 0 || keyB == 0 || recordGone == 0) && time.Now().Before(deadline) {
		ka, va, up := gossipOf(a)
		at := time.Since(revokeStart)
		if linkDown == 0 && !up && va >= 0 {
			linkDown = at
		}
		if keyA == 0 && ka != "" && ka != oldKey {
			keyA = at
		}
		if recordGone == 0 && ka != "" && ka != oldKey && va == 1 {
			recordGone = at
		}
		if kb, _, _ := gossipOf(b); keyB == 0 && kb != "" && kb != oldKey {
			keyB = time.Since(revokeStart)
		}
	}
	require.NotZero(t, linkDown, "a tears its link to c down")
	require.NotZero(t, keyA, "a moves to a new gossip key")
	require.NotZero(t, keyB, "b moves to a new gossip key")
	require.NotZero(t, recordGone, "c's gossip record is gone from a")
	t.Logf("revocation of c (API answer after %v): a's link to c down after %v, new gossip key at a after %v and at b after %v, c's gossip record dropped at a after %v (polling resolution ~ one status call)",
		revoked.Round(time.Millisecond), linkDown.Round(time.Millisecond), keyA.Round(time.Millisecond), keyB.Round(time.Millisecond), recordGone.Round(time.Millisecond))
	var leader *daemon.Daemon
	for _, d := range g.DS {
		if d.Raft.IsLeader() {
			leader = d
		}
	}
	require.NotNil(t, leader)
	var current, previous string
	for _, k := range leader.FSM.GossipKeys(c.ID) {
		if k.Status == "current" {
			current = k.KeyID
		} else {
			previous = k.KeyID
		}
	}
	require.Equal(t, oldKey, previous, "the FSM keeps the replaced key as previous")
	ka, _, _ := gossipOf(a)
	require.Equal(t, current, ka)
	var aud struct{ Items []map[string]any }
	require.NoError(t, owner.Do(ctx, http.MethodGet, "/v1/audit?action=gossip_key.rotate", nil, &aud, nil))
	require.Len(t, aud.Items, 1)
	_, err = b.mesh(cc.node)
	require.Error(t, err, "a revoked node is not reachable")
}
