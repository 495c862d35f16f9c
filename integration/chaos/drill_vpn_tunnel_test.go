package chaos

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"

	"github.com/rap-fabric/core/agent/tunnel"
	"github.com/rap-fabric/core/internal/testwait"
)

// V2 runs a VPN connection end to end with real processes: three authorities
// and PostgreSQL, three rap-node-agent processes in their own namespaces —
// a connector (vpn-connector) with a client host behind it and two exits
// (vpn-exit) that each reach a "remote network" host the connector cannot
// reach — and nothing else: the lease loop acquires the lease, the holder
// brings up the exit tunnel, the connector follows the holder.

const (
	v2LeaseTTL  = 3 // seconds
	v2TunnelNet = "198.18.40.0/24"
)

var (
	// v2NoMasqNet is a route policy without masquerade (inside the remote
	// prefix, beside tunAllowed); v2NoMasqIP an address of the remote host in it.
	v2NoMasqNet = netip.MustParsePrefix("198.18.3.128/26")
	v2NoMasqIP  = netip.MustParsePrefix("198.18.3.130/24")
)

// vpnAgentCaps are the capabilities of the V2 agents: mesh and both VPN roles.
const vpnAgentCaps = meshCaps + ",can_run_vpn_exit,can_run_vpn_connector"

// runVPNAgent starts `rap-node-agent run` with the mesh socket on the host's
// mesh port, a fast VPN loop and tunnel addresses from v2TunnelNet.
func runVPNAgent(a *Agent) error {
	args := []string{"run", "--state", a.State, "--interval", "300ms", "--desired-every", "600ms", "--degraded-after", "3",
		"--request-timeout", "1s", "--snapshot-wait", "2s", "--status-socket", a.socket(), "--capability", vpnAgentCaps,
		"--mesh-listen", a.Host.Addr(meshPort), "--mesh-report-every", "500ms",
		"--vpn-every", "200ms", "--vpn-poll-every", "500ms", "--vpn-tunnel-net", v2TunnelNet, "--log-level", "debug"}
	p, err := a.Host.Start(a.Name, filepath.Join(a.env.Bin, "rap-node-agent"), args...)
	a.Proc = p
	return err
}

// vpnTunnelOf returns the agent's view of the connection (nil when absent).
func vpnTunnelOf(m AgentMembership, connID string) *AgentVPN {
	for i := range m.VPN {
		if m.VPN[i].ConnectionID == connID {
			return &m.VPN[i]
		}
	}
	return nil
}

// vpnAgentWorld is V2's world: the Env with its authorities, the three
// agents and the client and remote hosts, and the connection.
type vpnAgentWorld struct {
	tb     testing.TB
	e      *Env
	w      *tunWorld
	names  []string
	ag     map[string]*Agent
	node   map[string]string
	connID string
	base   string
	ctx    context.Context
}

// newVPNAgentWorld builds the hosts, runs three agents (exit1 with planted
// leftovers when leftovers is set), assigns the roles and creates the
// connection (route policy: tunAllowed with masquerade) with the allowed
// nodes of allowed (names).
func newVPNAgentWorld(tb testing.TB, name string, leftovers bool, allowed ...string) *vpnAgentWorld {
	e := NewEnv(tb, Options{Name: name})
	token, pin, err := e.CreateClusterAndToken("v2-tun", 3)
	if err != nil {
		tb.Fatal(err)
	}
	v := &vpnAgentWorld{tb: tb, e: e, names: []string{"con", "exit1", "exit2"}, ag: map[string]*Agent{}, node: map[string]string{}}
	for i, n := range v.names {
		v.ag[n] = e.AddAgent(n, byte(octetAgent+i))
		v.ag[n].Caps = strings.Split(vpnAgentCaps, ",")
	}
	// The client host behind the connector; the remote network behind both
	// exits (exit2 over its own link), reachable from nowhere else.
	w := &tunWorld{t: tb, net: e.Net, con: v.ag["con"].Host, exit: v.ag["exit1"].Host, exit2: v.ag["exit2"].Host}
	v.w = w
	if w.client, err = e.Net.AddLinkedHost("user", tunClientIP, w.con, "to-client", tunConLAN); err != nil {
		tb.Fatal(err)
	}
	if w.remote, err = e.Net.AddLinkedHost("office", tunRemoteIP, w.exit, "to-remote", tunExitLAN); err != nil {
		tb.Fatal(err)
	}
	if err := w.remote.AddAddress("eth0", tunForbidden); err != nil {
		tb.Fatal(err)
	}
	if err := e.Net.LinkHosts(w.exit2, "to-remote", tunExit2LAN, w.remote, "eth1", tunRemoteIP2); err != nil {
		tb.Fatal(err)
	}
	if err := w.exit2.AddRoute(tunRemoteNet, tunRemoteIP2.Addr()); err != nil {
		tb.Fatal(err)
	}
	if err := w.client.AddRoute(netip.MustParsePrefix("0.0.0.0/0"), tunConLAN.Addr()); err != nil {
		tb.Fatal(err)
	}
	if out, err := w.ping(w.client, tunRemoteIP.Addr(), 1); err == nil {
		tb.Fatalf("the remote host answers the client without a tunnel:\n%s", out)
	}
	if leftovers {
		// Leftovers of a "previous run" on exit1 (a link and an nftables
		// table named by the prefix): the agent removes them at start.
		nh, err := netlink.NewHandleAt(w.exit.NS())
		if err != nil {
			tb.Fatal(err)
		}
		if err := nh.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: tunnel.DefaultPrefix + "stale2"}, PeerName: tunnel.DefaultPrefix + "stale2p"}); err != nil {
			tb.Fatal(err)
		}
		nh.Close()
		nft, err := nftables.New(nftables.WithNetNSFd(int(w.exit.NS())))
		if err != nil {
			tb.Fatal(err)
		}
		nft.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: tunnel.DefaultPrefix + "stale2"})
		if err := nft.Flush(); err != nil {
			tb.Fatal(err)
		}
	}
	for _, n := range v.names {
		if _, err := v.ag[n].Enroll(token, pin, 60*time.Second); err != nil {
			tb.Fatal(err)
		}
		if err := runVPNAgent(v.ag[n]); err != nil {
			tb.Fatal(err)
		}
	}
	for _, n := range v.names {
		m, _, err := v.ag[n].WaitAgent(30*time.Second, "heartbeating", func(m AgentMembership) bool { return m.Running && m.HeartbeatsAcked >= 1 })
		if err != nil {
			tb.Fatal(err)
		}
		v.node[n] = m.NodeID
	}
	if links, tables, err := tunnel.Leftovers(w.exit.NS(), ""); err != nil || len(links)+len(tables) > 0 {
		tb.Fatalf("exit1 agent did not clean up the leftovers at start: %v %v %v", links, tables, err)
	}
	e.Event("3 agents running: %s", idList(v.names, v.node))

	ctx, cancel := context.WithCancel(context.Background())
	tb.Cleanup(cancel)
	v.ctx = ctx
	role := map[string]string{"con": "vpn-connector", "exit1": "vpn-exit", "exit2": "vpn-exit"}
	for _, n := range v.names {
		v.call(http.MethodPost, "/v1/clusters/v2-tun/nodes/"+v.node[n]+"/roles", map[string]any{"role": "core-mesh"}, nil)
		v.call(http.MethodPost, "/v1/clusters/v2-tun/nodes/"+v.node[n]+"/roles", map[string]any{"role": role[n]}, nil)
	}
	var conn struct {
		ID string `json:"id"`
	}
	v.call(http.MethodPost, "/v1/clusters/v2-tun/vpn-connections", map[string]any{"name": "office", "address_family": "ipv4", "desired_state": "enabled",
		"client_prefixes": []string{tunClientNet.String()}, "remote_prefixes": []string{tunRemoteNet.String()}, "lease_ttl_seconds": v2LeaseTTL}, &conn)
	v.connID, v.base = conn.ID, "/v1/clusters/v2-tun/vpn-connections/office"
	// Only the /25 may cross; the exit masquerades it (the remote network has
	// no route back to the clients).
	v.call(http.MethodPost, v.base+"/route-policies", map[string]any{"name": "lan", "prefixes": []string{tunAllowed.String()}, "masquerade": true}, nil)
	// A second policy without masquerade: forwarded with the client's
	// source address (the remote network has no route back).
	v.call(http.MethodPost, v.base+"/route-policies", map[string]any{"name": "lab", "prefixes": []string{v2NoMasqNet.String()}}, nil)
	if err := w.remote.AddAddress("eth0", v2NoMasqIP); err != nil {
		tb.Fatal(err)
	}
	v.allow(allowed...)
	e.Event("connection office %s: client %v, remote %v, route policy %v (masquerade); roles con=vpn-connector, exit1/exit2=vpn-exit; allowed %v",
		conn.ID, tunClientNet, tunRemoteNet, tunAllowed, allowed)
	return v
}

// call runs an owner API call, retried for 20 s (a role needs the
// heartbeat carrying the capabilities).
func (v *vpnAgentWorld) call(method, path string, body any, out any) {
	v.tb.Helper()
	var last error
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(v.ctx, 10*time.Second)
		_, last = v.e.API.Do(ctx, method, path, body, out, map[string]string{"Idempotency-Key": fmt.Sprintf("v2-%s%s-%d", method, path, time.Now().UnixNano())})
		cancel()
		if last == nil {
			return
		}
		if time.Now().After(deadline) {
			v.tb.Fatalf("%s %s: %v", method, path, last)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// allow sets the connection's allowed nodes (agent names).
func (v *vpnAgentWorld) allow(names ...string) {
	ids := []string{}
	for _, n := range names {
		ids = append(ids, v.node[n])
	}
	v.call(http.MethodPut, v.base+"/allowed-nodes", map[string]any{"node_ids": ids}, nil)
}

// status is agent n's view of the connection (nil when absent).
func (v *vpnAgentWorld) status(n string) *AgentVPN {
	m, err := v.ag[n].Status()
	if err != nil {
		return nil
	}
	return vpnTunnelOf(m, v.connID)
}

// running reports whether agent n's tunnel runs, with a description.
func (v *vpnAgentWorld) running(n string) (bool, string) {
	s := v.status(n)
	if s == nil || s.Tunnel == nil {
		return false, fmt.Sprintf("%s: %+v", n, s)
	}
	return s.Tunnel.Running, fmt.Sprintf("%s: %s %+v", n, s.State, *s.Tunnel)
}

// TestDrillVPNTunnelAgents (V2): lease-driven tunnels between real agents.
// Ping and a TCP transfer client → remote pass through the connector and the
// lease holder with matching bytes and no plaintext between the agents; a
// ping outside the route policy is dropped and counted at the connector;
// the counters reach the authority. kill -9 of the holder → the lease moves
// to the other exit, the connector follows and the probe stream resumes
// (gap reported); the restarted old exit removes its leftovers. Disable →
// every interface, route and nftables table is gone on every node; enable →
// traffic again; unassign → gone again.
func TestDrillVPNTunnelAgents(t *testing.T) {
	requireChaos(t)
	requireTools(t, "ping")
	// exit1 first, so it takes the lease; exit2 joins once exit1 holds it.
	vw := newVPNAgentWorld(t, "V2", true, "con", "exit1")
	e, w, ag, node, base, ctx := vw.e, vw.w, vw.ag, vw.node, vw.base, vw.ctx
	wl := e.StartWorkload(opsPerSecond)
	names := vw.names
	conn := struct{ ID string }{vw.connID}
	call, status, running := vw.call, vw.status, vw.running
	testwait.For(t, 60*time.Second, "exit1 holds the lease and runs the exit tunnel; the connector follows it", func() (bool, string) {
		okE, dE := running("exit1")
		okC, dC := running("con")
		v := status("con")
		return okE && okC && v != nil && v.Tunnel.ExitNodeID == node["exit1"], dE + " | " + dC
	})
	vw.allow("con", "exit1", "exit2")
	e.Event("exit1 holds the lease, tunnels up; exit2 allowed (standby)")

	// Traffic, and no plaintext between the agents.
	mesh, err := w.con.StartCapture("eth0", tunMarker, innerHeader())
	if err != nil {
		t.Fatal(err)
	}
	defer mesh.Stop()
	testwait.For(t, 30*time.Second, "ping client→remote through the agents' tunnel", func() (bool, string) {
		out, err := w.ping(w.client, tunRemoteIP.Addr(), 1)
		_, d := running("con")
		return err == nil, fmt.Sprintf("%v %s %s", err, lastLines(out, 2), d)
	})
	out, err := w.ping(w.client, tunRemoteIP.Addr(), 5)
	if err != nil {
		t.Fatalf("ping: %v\n%s", err, out)
	}
	t.Logf("ping client→remote:\n%s", lastLines(out, 2))
	const size = 2 << 20
	took := w.transfer(size)
	mesh.Stop()
	ms := mesh.Stats()
	t.Logf("TCP %d bytes client→remote in %v (%.1f Mbit/s), sha256 matches; con/eth0 carried %d UDP bytes on the mesh port, markers %v",
		size, took.Round(time.Millisecond), float64(size)*8/took.Seconds()/1e6, ms.UDPBytes[meshPort], ms.Found)
	if ms.UDPBytes[meshPort] < size {
		t.Fatalf("the mesh carried %d bytes, less than the %d transferred: the capture missed the traffic", ms.UDPBytes[meshPort], size)
	}
	if ms.Found[0] != 0 || ms.Found[1] != 0 {
		t.Fatalf("plaintext between the agents: marker in %d frames, inner header in %d", ms.Found[0], ms.Found[1])
	}
	e.Event("ping and %d-byte TCP transfer through con → exit1 pass, bytes match, no plaintext on the connector's mesh wire", size)

	// Outside the route policy: routed into the tunnel, dropped and counted.
	before := status("con").Tunnel.Drops["destination_not_allowed"]
	if out, err := w.ping(w.client, tunForbidden.Addr(), 3); err == nil {
		t.Fatalf("ping outside the route policy passed:\n%s", out)
	}
	testwait.For(t, 10*time.Second, "connector counts 3 policy drops", func() (bool, string) {
		v := status("con")
		return v != nil && v.Tunnel.Drops["destination_not_allowed"]-before >= 3, fmt.Sprintf("%+v", v)
	})
	e.Event("3 pings to %v (outside the route policy) dropped and counted at the connector", tunForbidden.Addr())

	// Masquerade only where the route policy says so: on the remote host's
	// link, client → tunAllowed arrives from the exit's address, client →
	// v2NoMasqNet with the client's own address (and gets no answer: no route
	// back).
	cs, ns := tunClientIP.Addr().As4(), v2NoMasqIP.Addr().As4()
	cap, err := w.remote.StartCapture("eth0", innerHeader(), append(cs[:], ns[:]...))
	if err != nil {
		t.Fatal(err)
	}
	defer cap.Stop()
	if out, err := w.ping(w.client, tunRemoteIP.Addr(), 2); err != nil {
		t.Fatalf("ping via the masquerading policy: %v\n%s", err, out)
	}
	if out, err := w.ping(w.client, v2NoMasqIP.Addr(), 2); err == nil {
		t.Fatalf("the remote host answered a client it has no route to (masqueraded?):\n%s", out)
	}
	cap.Stop()
	if cst := cap.Stats(); cst.Found[0] != 0 || cst.Found[1] < 2 {
		t.Fatalf("masquerade: client→%v seen unmasqueraded in %d frames (want 0), client→%v in %d (want ≥ 2)",
			tunRemoteIP.Addr(), cst.Found[0], v2NoMasqIP.Addr(), cst.Found[1])
	}
	e.Event("masquerade only for the policy that asks for it: %v arrives from the exit, %v from the client", tunAllowed, v2NoMasqNet)

	// The counters reach the authority (VPN status reports).
	testwait.For(t, 20*time.Second, "tunnel counters of both ends in PostgreSQL", func() (bool, string) {
		var n int
		err := e.DB.QueryRow(ctx, `SELECT count(*) FROM vpn_assignment_status_latest WHERE connection_id = $1
			AND (tunnel->>'running')::boolean AND (tunnel->>'rx_packets')::bigint > 0`, conn.ID).Scan(&n)
		return err == nil && n == 2, fmt.Sprint(n, err)
	})

	// Failover: kill -9 the holder while a probe stream runs.
	ps := startProbeStream(t, w)
	defer ps.close()
	testwait.Until(t, 10*time.Second, "probe replies through exit1", func() bool { return ps.count() >= 20 })
	killed := time.Now()
	ag["exit1"].Proc.Kill9()
	e.Event("kill -9 exit1 (lease holder)")
	var gap time.Duration
	testwait.For(t, 60*time.Second, "probe replies through exit2 after the lease moved", func() (bool, string) {
		var ok bool
		gap, ok = ps.gapAround(killed)
		okE, dE := running("exit2")
		v := status("con")
		return ok && okE && v != nil && v.Tunnel.ExitNodeID == node["exit2"], fmt.Sprintf("%s | %+v", dE, v)
	})
	v := status("con")
	t.Logf("failover: probe gap %v (last reply before kill -9 → first reply via exit2; lease TTL %ds); connector exit changes %d",
		gap.Round(time.Millisecond), v2LeaseTTL, v.Tunnel.ExitChanges)
	e.Event("lease moved to exit2, connector followed, probes resumed: gap %v", gap.Round(time.Millisecond))
	ps.close()
	if out, err := w.ping(w.client, tunRemoteIP.Addr(), 3); err != nil {
		t.Fatalf("ping via exit2: %v\n%s", err, out)
	}

	// The killed agent's TUN died with it; its nftables table is left until
	// the restarted agent cleans up (it does not hold the lease any more).
	if err := runVPNAgent(ag["exit1"]); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, 30*time.Second, "restarted exit1 cleaned up and stands by", func() (bool, string) {
		links, tables, err := tunnel.Leftovers(w.exit.NS(), "")
		v := status("exit1")
		return err == nil && len(links)+len(tables) == 0 && v != nil && v.State == "standby", fmt.Sprintf("%v %v %v %+v", links, tables, err, v)
	})

	// Only the lease holder forwards: cut exit2 (the holder) off from every
	// authority while the mesh to the connector stays up. Its renewals fail,
	// it stops forwarding at the end of its own term — before the authority's
	// expiry, so before anyone else may hold the lease — and exit1 takes over.
	type leaseRow struct {
		gen     int64
		owner   string
		expires time.Time
	}
	activeLease := func() (leaseRow, error) {
		var r leaseRow
		err := e.DB.QueryRow(ctx, `SELECT generation, owner_node_id::text, expires_at FROM vpn_connection_leases
			WHERE connection_id = $1 AND status = 'active'`, conn.ID).Scan(&r.gen, &r.owner, &r.expires)
		return r, err
	}
	held, err := activeLease()
	if err != nil || held.owner != node["exit2"] {
		t.Fatalf("exit2 should hold the lease: %+v %v", held, err)
	}
	if err := e.Net.Isolate(w.exit2, e.AuthHosts()...); err != nil {
		t.Fatal(err)
	}
	cutAt := time.Now()
	e.Event("cut exit2 (holder, generation %d) off from every authority; its mesh link to con stays", held.gen)
	var stoppedAt time.Time
	testwait.For(t, 20*time.Second, "exit2 stops forwarding when its term ends without a renewal", func() (bool, string) {
		v := status("exit2")
		links, tables, _ := tunnel.Leftovers(w.exit2.NS(), "")
		if v != nil && v.Tunnel != nil && !v.Tunnel.Running && len(links)+len(tables) == 0 {
			stoppedAt = time.Now()
			return true, ""
		}
		return false, fmt.Sprintf("%+v %v %v", v, links, tables)
	})
	// The lease row read before the cut may have been renewed once more.
	var lastExpiry time.Time
	if err := e.DB.QueryRow(ctx, `SELECT expires_at FROM vpn_connection_leases WHERE connection_id = $1 AND generation = $2`, conn.ID, held.gen).Scan(&lastExpiry); err != nil {
		t.Fatal(err)
	}
	t.Logf("exit2 stopped forwarding %v after the cut; its lease (generation %d) expires at the authority %v after that stop",
		stoppedAt.Sub(cutAt).Round(time.Millisecond), held.gen, lastExpiry.Sub(stoppedAt).Round(time.Millisecond))
	if !stoppedAt.Before(lastExpiry) {
		t.Fatalf("exit2 still forwarded at its lease's expiry (stopped %v, expiry %v)", stoppedAt, lastExpiry)
	}
	testwait.For(t, 30*time.Second, "exit1 takes the lease, the connector follows, ping passes", func() (bool, string) {
		r, err := activeLease()
		v := status("con")
		if err != nil || r.owner != node["exit1"] || v == nil || v.Tunnel == nil || v.Tunnel.ExitNodeID != node["exit1"] {
			return false, fmt.Sprintf("%+v %v %+v", r, err, v)
		}
		out, err := w.ping(w.client, tunRemoteIP.Addr(), 1)
		return err == nil, lastLines(out, 2)
	})
	now, _ := activeLease()
	var overlap int
	if err := e.DB.QueryRow(ctx, `SELECT count(*) FROM vpn_connection_leases a JOIN vpn_connection_leases b ON a.connection_id = b.connection_id
		AND a.generation < b.generation WHERE a.connection_id = $1 AND b.acquired_at < COALESCE(LEAST(a.ended_at, a.expires_at), a.expires_at)
		AND a.status <> 'released'`, conn.ID).Scan(&overlap); err != nil {
		t.Fatal(err)
	}
	if overlap != 0 {
		t.Fatalf("%d lease pairs overlap in time", overlap)
	}
	e.Event("exit2 stopped %v after the cut (before its expiry); exit1 holds generation %d; ping passes via exit1", stoppedAt.Sub(cutAt).Round(time.Millisecond), now.gen)
	if err := e.Net.Heal(); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, 30*time.Second, "healed exit2 learns it lost the lease and stands by without a tunnel", func() (bool, string) {
		v := status("exit2")
		return v != nil && v.State == "standby" && v.Lost >= 1 && (v.Tunnel == nil || !v.Tunnel.Running), fmt.Sprintf("%+v", v)
	})

	// Disable: every node removes its interface, routes and table.
	gone := func(what string) {
		t.Helper()
		testwait.For(t, 20*time.Second, what+": interfaces, routes and nftables tables gone on every node", func() (bool, string) {
			for _, n := range names {
				h := ag[n].Host
				links, tables, err := tunnel.Leftovers(h.NS(), "")
				routes, rerr := h.Routes()
				if err != nil || rerr != nil || len(links)+len(tables) > 0 {
					return false, fmt.Sprintf("%s: %v %v %v %v", n, links, tables, err, rerr)
				}
				tunNet := netip.MustParsePrefix(v2TunnelNet)
				for _, r := range routes {
					if (n == "con" && r == tunRemoteNet) || (n != "con" && r == tunClientNet) || tunNet.Contains(r.Addr()) {
						return false, fmt.Sprintf("%s: route %v left", n, r)
					}
				}
			}
			return true, ""
		})
		if out, err := w.ping(w.client, tunRemoteIP.Addr(), 1); err == nil {
			t.Fatalf("ping passes after %s:\n%s", what, out)
		}
		e.Event("%s: nothing of the tunnel left on con, exit1, exit2; ping fails", what)
	}
	call(http.MethodPost, base+"/disable", map[string]any{}, nil)
	gone("disable")
	call(http.MethodPost, base+"/enable", map[string]any{}, nil)
	testwait.For(t, 60*time.Second, "ping again after enable", func() (bool, string) {
		out, err := w.ping(w.client, tunRemoteIP.Addr(), 1)
		return err == nil, fmt.Sprintf("%v %s", err, lastLines(out, 2))
	})
	call(http.MethodPut, base+"/allowed-nodes", map[string]any{"node_ids": []string{}}, nil)
	gone("unassign (allowed nodes emptied)")

	rows, err := e.DB.Query(ctx, `SELECT generation, owner_node_id::text, status, acquired_at, expires_at, ended_at
		FROM vpn_connection_leases WHERE connection_id = $1 ORDER BY generation`, conn.ID)
	if err != nil {
		t.Fatal(err)
	}
	var hist []vpnLeaseRow
	for rows.Next() {
		var r vpnLeaseRow
		if err := rows.Scan(&r.Generation, &r.Owner, &r.Status, &r.Acquired, &r.Expires, &r.Ended); err != nil {
			t.Fatal(err)
		}
		hist = append(hist, r)
	}
	rows.Close()
	r := finish(t, e, wl, "VPN tunnels driven by leases between real agents", func(DBState) []Check {
		return []Check{
			{Name: "ping and TCP through connector and lease holder, bytes match, no plaintext between agents", OK: true,
				Detail: fmt.Sprintf("%d bytes in %v", size, took.Round(time.Millisecond))},
			{Name: "kill -9 of the holder: lease moves, connector follows, probes resume", OK: gap > 0, Detail: fmt.Sprintf("gap %v (lease term %ds)", gap.Round(time.Millisecond), v2LeaseTTL)},
			{Name: "holder cut off from the authorities stops forwarding before its lease expires", OK: stoppedAt.Before(lastExpiry),
				Detail: fmt.Sprintf("stopped %v after the cut, %v before the expiry", stoppedAt.Sub(cutAt).Round(time.Millisecond), lastExpiry.Sub(stoppedAt).Round(time.Millisecond))},
			checkLeaseHistory(hist),
		}
	})
	r.Notes = append(r.Notes, fmt.Sprintf("lease term %ds, VPN loop 200 ms, assignments polled every 500 ms; tunnel addresses from %s", v2LeaseTTL, v2TunnelNet))
	e.Emit(r)
}
