package integration

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/agent/runtime"
	"github.com/rap-fabric/core/apiclient"
	"github.com/rap-fabric/core/internal/authtest"
)

// agentProc is one rap-node-agent process.
type agentProc struct {
	t     *testing.T
	bin   string
	state string
	cmd   *exec.Cmd
	out   *syncBuf
}

func (a *agentProc) args(sub string, extra ...string) []string {
	return append([]string{sub, "--state", a.state}, extra...)
}

// start runs `rap-node-agent run` in the background (extra: more run flags).
func (a *agentProc) start(extra ...string) {
	a.cmd = exec.Command(filepath.Join(a.bin, "rap-node-agent"), a.args("run", append([]string{"--interval", "300ms", "--desired-every", "600ms", "--request-timeout", "1s", "--log-level", "debug"}, extra...)...)...)
	a.out = &syncBuf{}
	a.cmd.Stdout, a.cmd.Stderr = a.out, a.out
	require.NoError(a.t, a.cmd.Start())
	cmd, out := a.cmd, a.out
	a.t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
		if a.t.Failed() {
			a.t.Logf("--- agent output:\n%s", out.String())
		}
	})
}

// stop ends the running agent with sig and waits for it.
func (a *agentProc) stop(sig syscall.Signal) {
	require.NoError(a.t, a.cmd.Process.Signal(sig))
	_ = a.cmd.Wait()
}

// status runs `rap-node-agent status -o json`.
func (a *agentProc) status() runtime.StatusReport {
	out, err := exec.Command(filepath.Join(a.bin, "rap-node-agent"), a.args("status", "-o", "json")...).Output()
	require.NoError(a.t, err, string(out))
	var r runtime.StatusReport
	require.NoError(a.t, json.Unmarshal(out, &r))
	return r
}

// member is one membership's status; zero while the agent is starting (the
// socket is not up yet and the state file is locked).
func (a *agentProc) member(cluster string) runtime.MemberStatus {
	out, err := exec.Command(filepath.Join(a.bin, "rap-node-agent"), a.args("status", "-o", "json")...).Output()
	var r runtime.StatusReport
	if err != nil || json.Unmarshal(out, &r) != nil {
		return runtime.MemberStatus{}
	}
	for _, m := range r.Memberships {
		if m.ClusterID == cluster {
			return m
		}
	}
	return runtime.MemberStatus{}
}

type clusterInfo struct{ id, pin string }

func mkClusterToken(t *testing.T, owner *apiclient.Client, slug string) (clusterInfo, string) {
	return mkClusterTokenN(t, owner, slug, 2)
}

// mkClusterTokenN creates a cluster and a join token for uses enrollments.
func mkClusterTokenN(t *testing.T, owner *apiclient.Client, slug string, uses int) (clusterInfo, string) {
	ctx := context.Background()
	c, err := authtest.CreateCluster(ctx, owner, slug)
	require.NoError(t, err)
	var tok struct {
		Token string `json:"token"`
	}
	require.NoError(t, owner.Do(ctx, http.MethodPost, "/v1/join-tokens", map[string]any{"cluster": slug, "max_uses": uses, "description": "integration test"}, &tok, nil))
	return clusterInfo{id: c["id"].(string), pin: c["ca_pin"].(string)}, tok.Token
}

// apiAddrs lists the API addresses of the group's running authorities.
func apiAddrs(g *authtest.Group) []string {
	var addrs []string
	for _, d := range g.DS {
		if d != nil {
			addrs = append(addrs, d.APIAddr())
		}
	}
	return addrs
}

// enroll runs `rap-node-agent enroll`, approves the request through the owner
// API once it is pending, and returns the node id.
func enroll(t *testing.T, a *agentProc, g *authtest.Group, owner *apiclient.Client, addrs []string, slug, token, pin, machineID string) string {
	ctx := context.Background()
	cmd := exec.Command(filepath.Join(a.bin, "rap-node-agent"), a.args("enroll", "--authority", strings.Join(addrs, ","), "--token", token, "--ca-pin", pin,
		"--name", "edge-1", "--machine-id-file", machineID, "--capability", "can_route_mesh", "--poll-interval", "200ms")...)
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
	g.Eventually(15*time.Second, "a pending join request", func() bool {
		var l struct {
			Items []struct {
				ID string `json:"id"`
			} `json:"items"`
		}
		if owner.Do(ctx, http.MethodGet, "/v1/join-requests?cluster="+slug+"&status=pending", nil, &l, nil) != nil || len(l.Items) != 1 {
			return false
		}
		reqID = l.Items[0].ID
		return true
	})
	// The agent waits visibly before anyone approves.
	g.Eventually(10*time.Second, "the progress line", func() bool { return strings.Contains(out.String(), "waiting for approval of join request "+reqID) })
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
		t.Fatalf("enroll did not finish after approval:\n%s", out.String())
	}
	require.Contains(t, out.String(), "enrolled: cluster ")
	require.Contains(t, out.String(), ap.NodeID)
	return ap.NodeID
}

type nodeHeartbeat struct {
	ClusterID   string          `json:"cluster_id"`
	NodeID      string          `json:"node_id"`
	ReceivedAt  time.Time       `json:"received_at"`
	Seq         int64           `json:"seq"`
	AuthorityID string          `json:"authority_id"`
	State       string          `json:"state"`
	Health      string          `json:"health_state"`
	Facts       json.RawMessage `json:"facts"`
	AgentVer    string          `json:"agent_version"`
}

func latest(owner *apiclient.Client, node string) map[string]nodeHeartbeat {
	var l struct {
		Items []nodeHeartbeat `json:"items"`
	}
	if err := owner.Do(context.Background(), http.MethodGet, "/v1/nodes/"+node+"/heartbeat", nil, &l, nil); err != nil {
		return nil
	}
	out := map[string]nodeHeartbeat{}
	for _, h := range l.Items {
		out[h.ClusterID] = h
	}
	return out
}

// TestAgentProcessAgainstThreeAuthorities runs the real agent binary against
// three in-process authorities and PostgreSQL through enrollment, failover,
// a full outage, a restart, a second cluster and a revocation.
func TestAgentProcessAgainstThreeAuthorities(t *testing.T) {
	bin := binaries(t)
	g := authtest.New(t, 3)
	ctx := context.Background()
	leader := g.Leader(10 * time.Second)
	owner := g.Client(g.DS...)
	east, eastToken := mkClusterToken(t, owner, "east")

	// The leader first in the agent's list, so killing it forces a failover.
	addrs := []string{leader.APIAddr()}
	for _, d := range g.Followers(leader) {
		addrs = append(addrs, d.APIAddr())
	}
	dir := t.TempDir()
	machineID := filepath.Join(dir, "machine-id")
	require.NoError(t, os.WriteFile(machineID, []byte("0123456789abcdef0123456789abcdef\n"), 0o644))
	ag := &agentProc{t: t, bin: bin, state: filepath.Join(dir, "state.db")}

	// 1. enroll → owner approves → heartbeats visible with facts.
	nodeID := enroll(t, ag, g, owner, addrs, "east", eastToken, east.pin, machineID)
	fi, err := os.Stat(ag.state)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	ag.start()
	g.Eventually(15*time.Second, "a heartbeat with facts", func() bool {
		h, ok := latest(owner, nodeID)[east.id]
		return ok && h.Health == "healthy" && strings.Contains(string(h.Facts), `"hostname"`) && strings.Contains(string(h.Facts), "can_route_mesh")
	})
	h := latest(owner, nodeID)[east.id]
	require.Equal(t, "normal", h.State)
	require.Equal(t, leader.Node(), h.AuthorityID, "the agent talks to the first authority in its list")
	var hist struct {
		Items []struct {
			Seq int64 `json:"seq"`
		} `json:"items"`
		NextOffset *int `json:"next_offset"`
	}
	g.Eventually(10*time.Second, "history pages", func() bool {
		return owner.Do(ctx, http.MethodGet, "/v1/nodes/"+nodeID+"/heartbeats?cluster=east&limit=2", nil, &hist, nil) == nil && len(hist.Items) == 2 && hist.NextOffset != nil
	})
	require.Greater(t, hist.Items[0].Seq, hist.Items[1].Seq, "newest first")
	var caps map[string]any
	require.NoError(t, owner.Do(ctx, http.MethodGet, "/v1/nodes/"+nodeID, nil, &caps, nil))
	require.Contains(t, caps["capabilities"], "can_route_mesh")
	st := ag.member(east.id)
	require.Equal(t, nodeID, st.NodeID)
	require.Equal(t, "normal", st.Mode)
	require.True(t, st.Running)
	serial := st.CertificateSerial

	// 2. The leader dies: heartbeats continue through another authority.
	li := g.Index(leader)
	require.NoError(t, leader.Close())
	g.DS[li] = nil
	killed := time.Now()
	g.Eventually(15*time.Second, "heartbeats through another authority", func() bool {
		h, ok := latest(owner, nodeID)[east.id]
		return ok && h.ReceivedAt.After(killed) && h.AuthorityID != leader.Node() && h.AuthorityID != ""
	})
	g.Start(li)

	// 3. Every authority stops: degraded, kept running; restarted: recovered.
	for i, d := range g.DS {
		require.NoError(t, d.Close())
		g.DS[i] = nil
	}
	g.Eventually(15*time.Second, "agent degraded", func() bool { return ag.member(east.id).Mode == "degraded" })
	require.Nil(t, ag.cmd.ProcessState, "the agent keeps running while degraded")
	restarted := time.Now()
	for i := range g.DS {
		g.Start(i)
	}
	g.Leader(20 * time.Second)
	owner = g.Client(g.DS...)
	g.Eventually(20*time.Second, "agent recovered", func() bool {
		m := ag.member(east.id)
		return m.Mode == "normal" && m.LastHeartbeatAck.After(restarted)
	})
	require.Contains(t, ag.out.String(), "entering degraded mode")
	require.Contains(t, ag.out.String(), "leaving degraded mode")

	// 4. Killed and restarted: same identity, no new enrollment.
	ag.stop(syscall.SIGKILL)
	out, err := exec.Command(filepath.Join(bin, "rap-node-agent"), ag.args("enroll", "--authority", strings.Join(addrs, ","), "--token", eastToken, "--ca-pin", east.pin,
		"--machine-id-file", machineID)...).CombinedOutput()
	require.Error(t, err, "a second enrollment into the same cluster is refused")
	require.Contains(t, string(out), "already enrolled")
	off := ag.status()
	require.Equal(t, "state-file", off.Source)
	ag.start()
	g.Eventually(15*time.Second, "heartbeats after the restart", func() bool {
		m := ag.member(east.id)
		return m.HeartbeatsAcked > 0 && m.Running
	})
	st = ag.member(east.id)
	require.Equal(t, nodeID, st.NodeID)
	require.Equal(t, serial, st.CertificateSerial)
	var joins struct {
		Items []any `json:"items"`
	}
	require.NoError(t, owner.Do(ctx, http.MethodGet, "/v1/join-requests?cluster=east", nil, &joins, nil))
	require.Len(t, joins.Items, 1, "the restart did not re-enroll")

	// 5. A second cluster, enrolled into its own namespace.
	west, westToken := mkClusterToken(t, owner, "west")
	ag.stop(syscall.SIGTERM)
	westNode := enroll(t, ag, g, owner, addrs, "west", westToken, west.pin, machineID)
	require.Equal(t, nodeID, westNode, "same host, same node, a second membership")
	ag.start()
	g.Eventually(15*time.Second, "heartbeats in both clusters", func() bool {
		l := latest(owner, nodeID)
		return len(l) == 2 && l[west.id].Health == "healthy" && l[east.id].ReceivedAt.After(time.Now().Add(-2*time.Second))
	})
	var node struct {
		Identities []struct {
			ClusterID string `json:"cluster_id"`
			PublicKey []byte `json:"public_key"`
		} `json:"identities"`
	}
	require.NoError(t, owner.Do(ctx, http.MethodGet, "/v1/nodes/"+nodeID, nil, &node, nil))
	require.Len(t, node.Identities, 2)
	require.NotEqual(t, node.Identities[0].PublicKey, node.Identities[1].PublicKey, "each membership has its own identity")
	require.NotEqual(t, ag.member(east.id).CertificateSerial, ag.member(west.id).CertificateSerial)

	// 6. Revoked in east: refused, east stops for good; west is untouched.
	require.NoError(t, owner.Do(ctx, http.MethodPost, "/v1/clusters/east/nodes/"+nodeID+"/revoke", map[string]any{"reason": "test"}, nil, nil))
	g.Eventually(15*time.Second, "east revoked on the agent", func() bool {
		m := ag.member(east.id)
		return m.Mode == "revoked" && !m.Running
	})
	// Let heartbeats accepted before the revocation took effect be flushed
	// (any authority, ≤ 100 ms), then east must not move any more.
	westBefore := ag.member(west.id).HeartbeatsAcked
	g.Eventually(15*time.Second, "west heartbeats after the revocation", func() bool { return ag.member(west.id).HeartbeatsAcked >= westBefore+2 })
	lastEast := latest(owner, nodeID)[east.id].ReceivedAt
	westBefore = ag.member(west.id).HeartbeatsAcked
	g.Eventually(15*time.Second, "west keeps heartbeating", func() bool { return ag.member(west.id).HeartbeatsAcked >= westBefore+5 })
	require.Equal(t, lastEast, latest(owner, nodeID)[east.id].ReceivedAt, "no east heartbeat after revocation")
	require.Equal(t, "normal", ag.member(west.id).Mode)
	require.Equal(t, 1, strings.Count(ag.out.String(), "membership revoked"), "revocation is final, not a retry loop")

	// A restart does not bring the revoked membership back.
	ag.stop(syscall.SIGTERM)
	ag.start()
	g.Eventually(15*time.Second, "west after restart", func() bool { return ag.member(west.id).HeartbeatsAcked > 0 })
	require.Equal(t, "revoked", ag.member(east.id).Mode)
	require.False(t, ag.member(east.id).Running)
}
