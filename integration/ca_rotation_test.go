package integration

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/agent/identity"
	"github.com/rap-fabric/core/agent/runtime"
	"github.com/rap-fabric/core/agent/state"
	"github.com/rap-fabric/core/agentapi"
	"github.com/rap-fabric/core/apiclient"
)

// caView is GET /v1/clusters/{c}/ca.
type caView struct {
	Overlap bool `json:"overlap"`
	Roots   []struct {
		KeyID  string `json:"key_id"`
		Status string `json:"status"`
		Pin    string `json:"pin"`
		Nodes  int    `json:"nodes"`
	} `json:"roots"`
	NodesOnOldRoots []string `json:"nodes_on_old_roots"`
}

// linkWatch polls the agents' mesh status sockets and records every
// observation of a link to an expected peer that is not up.
type linkWatch struct {
	mu   sync.Mutex
	bad  []string
	seen int
	stop chan struct{}
	done chan struct{}
}

func watchLinks(agents map[string]*meshAgent) *linkWatch {
	w := &linkWatch{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for {
			select {
			case <-w.stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			for name, a := range agents {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				ms, err := runtime.MeshStatusVia(ctx, filepath.Join(filepath.Dir(a.state), "agent.sock"))
				cancel()
				if err != nil || len(ms) != 1 {
					continue // the socket is busy: no observation
				}
				up := map[string]string{}
				for _, l := range ms[0].Links {
					up[l.NodeID] = l.State
				}
				w.mu.Lock()
				w.seen++
				for _, peer := range agents {
					if peer != a && up[peer.node] != "up" {
						w.bad = append(w.bad, fmt.Sprintf("%s %s: link to %s %q", time.Now().Format("15:04:05.000"), name, peer.name, up[peer.node]))
					}
				}
				w.mu.Unlock()
			}
		}
	}()
	return w
}

func (w *linkWatch) end() ([]string, int) {
	close(w.stop)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.bad, w.seen
}

// TestClusterCARotationWithLiveAgents rotates the cluster CA under three
// live agent processes whose mesh links are up, against three in-process
// authorities: the platform owner rotates (rapctl with step-up), every
// agent moves its pins from its signed snapshot and renews from the new
// root on its own (nodes_on_old_roots empties), the owner retires the old
// root without --force, the agents apply the new root's snapshots over the
// authorities' new-root TLS certificates. Throughout: no heartbeat gap (from
// the heartbeat history in PostgreSQL) longer than one interval plus a
// tolerance, no heartbeat failure, no mesh link seen down. Afterwards an
// agent certificate of the old root (copied from a state file before the
// rotation) is refused with ca_retired (401), and a restarted agent comes
// back with the pins its state file kept.
func TestClusterCARotationWithLiveAgents(t *testing.T) {
	bin := binaries(t)
	clock := &totpClock{t: time.Now()}
	g := mfaGroup(t, 3, clock)
	ctx := context.Background()
	g.Leader(15 * time.Second)
	owner := g.Client(g.DS...)
	ci, token := mkClusterTokenN(t, owner, "rot", 3)
	addrs := apiAddrs(g)
	const interval = 2 * time.Second
	agents := map[string]*meshAgent{}
	for _, n := range []string{"a", "b", "c"} {
		ag := &meshAgent{agentProc: &agentProc{t: t, bin: bin, state: filepath.Join(t.TempDir(), "state.db")}, name: "rot-" + n,
			extra: []string{"--interval", interval.String()}}
		ag.node = enrollAs(t, ag, g, owner, addrs, "rot", token, ci.pin)
		agents[n] = ag
	}
	// A copy of a's certificate and key of the old root, from its state
	// file before it runs.
	st, err := state.Open(agents["a"].state, state.Options{})
	require.NoError(t, err)
	oldID, err := st.Identity(ci.id)
	require.NoError(t, err)
	require.NoError(t, st.Close())
	oldCert, err := identity.ParseCertificatePEM([]byte(oldID.CertificatePEM))
	require.NoError(t, err)
	oldTLS := tls.Certificate{Certificate: [][]byte{oldCert.Raw}, PrivateKey: ed25519.PrivateKey(oldID.SigningKey), Leaf: oldCert}

	for _, ag := range agents {
		ag.run()
	}
	for _, ag := range agents {
		g.Eventually(20*time.Second, "heartbeats of "+ag.name, func() bool { return ag.member(ci.id).HeartbeatsAcked > 0 })
		g.Eventually(15*time.Second, "relay-node assigned to "+ag.name, func() bool {
			return owner.Do(ctx, http.MethodPost, "/v1/clusters/rot/nodes/"+ag.node+"/roles", map[string]any{"role": "relay-node"}, nil, nil) == nil
		})
	}
	for _, ag := range agents {
		g.Eventually(45*time.Second, ag.name+" linked to both others", func() bool {
			r := ag.member(ci.id)
			if r.Snapshot == nil || r.Snapshot.Peers != 2 {
				return false
			}
			ms := ag.status().Mesh
			if len(ms) != 1 {
				return false
			}
			up := 0
			for _, l := range ms[0].Links {
				if l.State == "up" {
					up++
				}
			}
			return up == 2
		})
	}

	// The owner logs in with a second factor (the owner API token ends).
	session, secret := ownerSession(t, g, clock)
	sess, err := apiclient.New(apiclient.Options{Servers: addrs, CAPin: g.Pin, Token: session, Timeout: 5 * time.Second})
	require.NoError(t, err)
	t.Cleanup(sess.Close)
	rapctl := func(args ...string) string {
		t.Helper()
		out, errOut, rc := runRapctl(t, bin, append([]string{"--server", strings.Join(addrs, ","), "--token", session, "--ca-pin", g.Pin,
			"--totp", clock.code(t, secret), "-o", "json"}, args...)...)
		require.Zero(t, rc, "rapctl %v: %s %s", args, out, errOut)
		return out
	}
	caStatus := func() caView {
		var v caView
		require.NoError(t, sess.Do(ctx, http.MethodGet, "/v1/clusters/rot/ca", nil, &v, nil))
		return v
	}
	before := map[string]runtime.MemberStatus{}
	for n, ag := range agents {
		before[n] = ag.member(ci.id)
		require.NotEmpty(t, before[n].CertificateSerial)
		require.NotEmpty(t, before[n].CertificateIssuer)
		require.Equal(t, []string{before[n].CertificateIssuer}, before[n].CARoots, "%s pins the one root from its snapshots", ag.name)
	}
	v := caStatus()
	require.Len(t, v.Roots, 1)
	require.Equal(t, 3, v.Roots[0].Nodes)
	oldKey := v.Roots[0].KeyID

	links := watchLinks(agents)
	windowStart := time.Now()

	// Rotate: both roots, the nodes move by themselves.
	rotated := time.Now()
	var rv caView
	require.NoError(t, json.Unmarshal([]byte(rapctl("cluster", "ca", "rotate", "rot")), &rv))
	require.True(t, rv.Overlap)
	require.Len(t, rv.Roots, 2)
	g.Eventually(60*time.Second, "every agent renewed from the new root (nodes_on_old_roots empty)", func() bool {
		v := caStatus()
		return v.Overlap && len(v.NodesOnOldRoots) == 0
	})
	moved := time.Since(rotated)
	var sv caView
	require.NoError(t, json.Unmarshal([]byte(rapctl("cluster", "ca", "status", "rot")), &sv))
	require.Empty(t, sv.NodesOnOldRoots)
	var newKey, newPin string
	for _, r := range sv.Roots {
		if r.Status == "current" {
			newKey, newPin = r.KeyID, r.Pin
			require.Equal(t, 3, r.Nodes, "the new root issued every node's certificate")
		}
	}
	require.NotEqual(t, oldKey, newKey)
	for n, ag := range agents {
		m := ag.member(ci.id)
		require.NotEqual(t, before[n].CertificateSerial, m.CertificateSerial, "%s renewed", ag.name)
		require.Equal(t, newKey, m.CertificateIssuer, "%s: certificate of the new root", ag.name)
		require.Equal(t, []string{newKey, oldKey}, m.CARoots, "%s pins both roots, the new one active", ag.name)
	}

	// Retire without --force.
	retired := time.Now()
	var tv caView
	require.NoError(t, json.Unmarshal([]byte(rapctl("cluster", "ca", "retire", "rot")), &tv))
	require.False(t, tv.Overlap)
	desired := snapRows(sess, "rot")
	for _, ag := range agents {
		want := desired[ag.node].DesiredVersion
		g.Eventually(30*time.Second, ag.name+" applied the new root's snapshot and pins it alone", func() bool {
			m := ag.member(ci.id)
			return m.Snapshot != nil && m.Snapshot.AppliedVersion >= want && slices.Equal(m.CARoots, []string{newKey})
		})
	}
	settled := time.Since(retired)
	// Keep watching for a few more heartbeats (new TLS handshakes meet the
	// new root's server certificates).
	time.Sleep(3 * interval)
	windowEnd := time.Now()
	bad, seen := links.end()
	require.Empty(t, bad, "a mesh link was seen down during the rotation")
	require.Greater(t, seen, 10, "the link watch observed the agents")
	for n, ag := range agents {
		m := ag.member(ci.id)
		require.Equal(t, before[n].HeartbeatFailures, m.HeartbeatFailures, "%s: no failed heartbeat round", ag.name)
		require.Equal(t, "normal", m.Mode, ag.name)
	}

	// Heartbeat gaps from the authorities' history.
	db, err := pgx.Connect(ctx, g.DBURL)
	require.NoError(t, err)
	defer db.Close(ctx)
	maxGap := time.Duration(0)
	worst := ""
	for _, ag := range agents {
		var times []time.Time
		g.Eventually(20*time.Second, "heartbeat rows of "+ag.name+" flushed past the window", func() bool {
			rows, err := db.Query(ctx, `SELECT received_at FROM node_heartbeats WHERE node_id = $1 AND received_at >= $2 ORDER BY received_at`,
				ag.node, windowStart.Add(-interval))
			if err != nil {
				return false
			}
			ts, err := pgx.CollectRows(rows, pgx.RowTo[time.Time])
			if err != nil || len(ts) == 0 {
				return false
			}
			times = ts
			return ts[len(ts)-1].After(windowEnd)
		})
		require.Greater(t, len(times), int((windowEnd.Sub(windowStart))/interval)/2, ag.name)
		for i := 1; i < len(times); i++ {
			if gap := times[i].Sub(times[i-1]); gap > maxGap {
				maxGap, worst = gap, fmt.Sprintf("%s at %s", ag.name, times[i].Format("15:04:05.000"))
			}
		}
	}
	// One interval (jittered up to +10 %, plus the round's own time) with
	// room for a loaded machine, below the 1.8 intervals (and more) that a
	// single missed heartbeat leaves.
	limit := interval * 7 / 4
	t.Logf("CA rotation with 3 live agents (heartbeat interval %v): all renewed from the new root %v after rotate; retirement applied by all after %v; longest heartbeat gap %v (%s, limit %v); %d link observations, none down",
		interval, moved.Round(time.Millisecond), settled.Round(time.Millisecond), maxGap.Round(time.Millisecond), worst, limit, seen)
	require.LessOrEqual(t, maxGap, limit, "heartbeat gap during the rotation")

	// The old root's certificate is refused with ca_retired.
	oc, err := apiclient.New(apiclient.Options{Servers: addrs, CAPin: newPin, ServerName: agentapi.ServerNameForCluster(ci.id), Certificate: &oldTLS,
		Timeout: 5 * time.Second})
	require.NoError(t, err)
	defer oc.Close()
	for _, path := range []string{agentapi.PathWhoAmI, agentapi.PathHeartbeat} {
		var body any
		method := http.MethodGet
		if path == agentapi.PathHeartbeat {
			method, body = http.MethodPost, map[string]any{"seq": 1, "sent_at": time.Now().UTC()}
		}
		err = oc.Do(ctx, method, path, body, nil, nil)
		var ae *apiclient.Error
		require.True(t, errors.As(err, &ae), "%s: %v", path, err)
		require.Equal(t, http.StatusUnauthorized, ae.Status, "%s: %v", path, err)
		require.Equal(t, "ca_retired", ae.Code, "%s: %v", path, err)
	}
	// The old root's pin no longer matches the authorities' certificates.
	pc, err := apiclient.New(apiclient.Options{Servers: addrs, CAPin: ci.pin, ServerName: agentapi.ServerNameForCluster(ci.id), Timeout: 5 * time.Second})
	require.NoError(t, err)
	defer pc.Close()
	require.Error(t, pc.Do(ctx, http.MethodGet, agentapi.PathWhoAmI, nil, nil, nil), "the retired root signs no server certificate")

	// A restarted agent comes back on the pins its state file kept: the
	// new root alone.
	c := agents["c"]
	c.stop(syscall.SIGTERM)
	st, err = state.Open(c.state, state.Options{})
	require.NoError(t, err)
	cid, err := st.Identity(ci.id)
	require.NoError(t, err)
	require.NoError(t, st.Close())
	require.Len(t, cid.CARoots, 1)
	require.Equal(t, newKey, cid.CARoots[0].KeyID)
	require.True(t, cid.CARoots[0].Active)
	restarted := time.Now()
	c.run()
	g.Eventually(30*time.Second, "c heartbeats after its restart", func() bool {
		m := c.member(ci.id)
		return m.HeartbeatsAcked > 0 && m.LastHeartbeatAck.After(restarted) && m.Mode == "normal"
	})
}
