package integration

import (
	"context"
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

// vpnLease is a lease row as the owner API shows it.
type vpnLease struct {
	OwnerNodeID string     `json:"owner_node_id"`
	Generation  int64      `json:"generation"`
	Status      string     `json:"status"`
	AcquiredAt  time.Time  `json:"acquired_at"`
	ExpiresAt   time.Time  `json:"expires_at"`
	EndedAt     *time.Time `json:"ended_at"`
}

type vpnLeaseView struct {
	Active  *vpnLease  `json:"active"`
	History []vpnLease `json:"history"`
}

// enrollVPNAgent enrolls a real agent process with VPN capabilities through
// an auto-approving token and returns its node id.
func enrollVPNAgent(t *testing.T, bin, dir string, addrs []string, token, pin, name string) (*agentProc, string) {
	t.Helper()
	machineID := filepath.Join(dir, name+"-machine-id")
	require.NoError(t, os.WriteFile(machineID, []byte(strings.Repeat(name[len(name)-1:], 32)+"\n"), 0o644))
	a := &agentProc{t: t, bin: bin, state: filepath.Join(dir, name, "state.db")}
	require.NoError(t, os.MkdirAll(filepath.Dir(a.state), 0o700))
	out, err := exec.Command(filepath.Join(bin, "rap-node-agent"), a.args("enroll", "--authority", strings.Join(addrs, ","), "--token", token, "--ca-pin", pin,
		"--name", name, "--machine-id-file", machineID, "--capability", "can_run_vpn_exit,can_run_vpn_connector", "--poll-interval", "200ms")...).CombinedOutput()
	require.NoError(t, err, string(out))
	require.Contains(t, string(out), "enrolled: cluster ")
	f := strings.Fields(string(out)[strings.Index(string(out), "enrolled: cluster "):])
	return a, f[4] // enrolled: cluster C node N …
}

// startVPNAgent runs the agent with fast VPN timers.
func startVPNAgent(a *agentProc) {
	a.cmd = exec.Command(filepath.Join(a.bin, "rap-node-agent"), a.args("run", "--interval", "300ms", "--request-timeout", "1s", "--no-mesh",
		"--vpn-every", "200ms", "--vpn-poll-every", "500ms", "--log-level", "debug")...)
	a.out = &syncBuf{}
	a.cmd.Stdout, a.cmd.Stderr = a.out, a.out
	require.NoError(a.t, a.cmd.Start())
	cmd, out, t := a.cmd, a.out, a.t
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Signal(syscall.SIGCONT)
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
		if t.Failed() {
			t.Logf("--- agent %s output:\n%s", a.state, out.String())
		}
	})
}

func vpnStatusOf(a *agentProc, cluster string) (runtime.VPNLeaseStatus, bool) {
	m := a.member(cluster)
	if len(m.VPN) == 0 {
		return runtime.VPNLeaseStatus{}, false
	}
	return m.VPN[0], true
}

// checkNoOverlap verifies from a lease history (newest first) that no two
// holders overlap: each lease starts at or after the previous one's end
// (its expiry, or the moment its holder released it).
func checkNoOverlap(t *testing.T, hist []vpnLease) {
	t.Helper()
	for i := len(hist) - 1; i > 0; i-- {
		prev, next := hist[i], hist[i-1]
		end := prev.ExpiresAt
		if prev.Status == "released" && prev.EndedAt != nil && prev.EndedAt.Before(end) {
			end = *prev.EndedAt
		}
		require.False(t, next.AcquiredAt.Before(end), "generation %d (%s) starts at %s before generation %d (%s) ended at %s",
			next.Generation, next.OwnerNodeID, next.AcquiredAt, prev.Generation, prev.OwnerNodeID, end)
	}
}

// TestVPNLeaseFailoverWithRealAgents runs two real agent processes eligible
// for one VPN connection: one holds the lease; when it is paused (owner
// loss) the lease expires and the other agent takes it; when the first one
// resumes, its renewal is refused (lease_lost) and it stands by. The lease
// history never shows two holders at once.
func TestVPNLeaseFailoverWithRealAgents(t *testing.T) {
	bin := binaries(t)
	g := authtest.New(t, 3)
	ctx := context.Background()
	g.Leader(10 * time.Second)
	owner := g.Client(g.DS...)
	c, err := authtest.CreateCluster(ctx, owner, "tun")
	require.NoError(t, err)
	cluster, pin := c["id"].(string), c["ca_pin"].(string)
	var tok struct {
		Token string `json:"token"`
	}
	require.NoError(t, owner.Do(ctx, http.MethodPost, "/v1/join-tokens", map[string]any{"cluster": "tun", "max_uses": 2, "auto_approve": true, "allowed_roles": []string{"relay-node"}, "description": "vpn agents"}, &tok, nil))
	addrs := apiAddrs(g)
	dir := t.TempDir()
	a1, n1 := enrollVPNAgent(t, bin, dir, addrs, tok.Token, pin, "vpn-a")
	a2, n2 := enrollVPNAgent(t, bin, dir, addrs, tok.Token, pin, "vpn-b")
	agents := map[string]*agentProc{n1: a1, n2: a2}
	for _, n := range []string{n1, n2} {
		require.NoError(t, owner.Do(ctx, http.MethodPost, "/v1/clusters/tun/nodes/"+n+"/roles", map[string]any{"role": "vpn-exit"}, nil, nil))
	}
	var conn struct {
		ID string `json:"id"`
	}
	require.NoError(t, owner.Do(ctx, http.MethodPost, "/v1/clusters/tun/vpn-connections", map[string]any{"name": "office", "address_family": "ipv4", "desired_state": "enabled",
		"remote_prefixes": []string{"192.168.50.0/24"}, "credential_ref": "vault:kv/office", "lease_ttl_seconds": 3}, &conn, nil))
	require.NoError(t, owner.Do(ctx, http.MethodPut, "/v1/clusters/tun/vpn-connections/office/allowed-nodes", map[string]any{"node_ids": []string{n1, n2}}, nil, nil))
	startVPNAgent(a1)
	startVPNAgent(a2)

	lease := func() vpnLeaseView {
		var v vpnLeaseView
		_ = owner.Do(ctx, http.MethodGet, "/v1/clusters/tun/vpn-connections/office/lease", nil, &v, nil)
		return v
	}
	// One agent holds the lease and reports assigned; the other stands by.
	var holder string
	g.Eventually(30*time.Second, "one agent holds the lease", func() bool {
		v := lease()
		if v.Active == nil {
			return false
		}
		holder = v.Active.OwnerNodeID
		s, ok := vpnStatusOf(agents[holder], cluster)
		return ok && s.State == "holding" && s.Reported == "assigned"
	})
	standby := n1
	if holder == n1 {
		standby = n2
	}
	g.Eventually(10*time.Second, "the other agent stands by", func() bool {
		s, ok := vpnStatusOf(agents[standby], cluster)
		return ok && s.State == "standby" && s.Reported == "lease_required"
	})
	// Renewals keep the lease with its generation for several terms.
	time.Sleep(4 * time.Second) // more than one 3 s term: the lease must survive by renewals (checked below, not by the sleep)
	v := lease()
	require.NotNil(t, v.Active)
	require.Equal(t, holder, v.Active.OwnerNodeID)
	require.EqualValues(t, 1, v.Active.Generation, "the holder keeps its lease by renewing")

	// Owner loss: the holder is paused. Its lease expires and the standby
	// agent takes over.
	h := agents[holder]
	require.NoError(t, h.cmd.Process.Signal(syscall.SIGSTOP))
	g.Eventually(30*time.Second, "the standby agent holds the lease", func() bool {
		v := lease()
		return v.Active != nil && v.Active.OwnerNodeID == standby && v.Active.Generation == 2
	})
	v = lease()
	require.Equal(t, "expired", v.History[1].Status, "the paused holder's lease expired")

	// Heal: the old holder resumes; its renewal of generation 1 is refused
	// and it stands by.
	require.NoError(t, h.cmd.Process.Signal(syscall.SIGCONT))
	g.Eventually(20*time.Second, "the old holder learns it lost the lease", func() bool {
		s, ok := vpnStatusOf(h, cluster)
		return ok && s.Lost == 1 && s.State == "standby"
	})
	require.Contains(t, h.out.String(), "VPN lease lost", "the agent is told it lost the lease")
	v = lease()
	require.Equal(t, standby, v.Active.OwnerNodeID, "the old holder did not take it back")
	checkNoOverlap(t, v.History)

	// A graceful stop releases the lease at once: the old holder takes over.
	agents[standby].stop(syscall.SIGTERM)
	g.Eventually(20*time.Second, "the first agent holds the lease again", func() bool {
		v := lease()
		return v.Active != nil && v.Active.OwnerNodeID == holder && v.Active.Generation == 3
	})
	v = lease()
	require.Equal(t, "released", v.History[1].Status)
	checkNoOverlap(t, v.History)
	assertAudit(t, owner, "vpn_lease.expire", "vpn_lease.release", "vpn_lease.acquire", "vpn_lease.renew")
}

func assertAudit(t *testing.T, owner *apiclient.Client, actions ...string) {
	t.Helper()
	for _, a := range actions {
		var l struct{ Items []map[string]any }
		require.NoError(t, owner.Do(context.Background(), http.MethodGet, "/v1/audit?action="+a+"&limit=5", nil, &l, nil))
		require.NotEmpty(t, l.Items, a)
	}
}
