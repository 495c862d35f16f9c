package runtime

// The VPN data path of a membership (issue 20; docs/tunnels.md): the lease
// loop (vpn.go) drives agent/tunnel with the node's assignments.
//
//   - An exit candidate (assignment role "exit") runs the exit tunnel only
//     while it holds the lease (not suspended): it is started when the lease
//     is acquired or resumed and stopped at once — in the same loop step —
//     when the lease is suspended (no renewal within the local term), lost
//     (expired, fenced, revoked, unassigned) or released (disabled, agent
//     stopping). A stopped tunnel has no TUN, routes or nftables table left,
//     so the node cannot forward.
//   - A connector (role "connector") runs the connector tunnel while the
//     connection is enabled and follows the lease: the assignment names the
//     current holder (exit_node_id) and the transport is pointed at it
//     (SetExit) whenever it changes; with no holder, packets are dropped and
//     counted (transport).
//
// Everything here runs on the VPN loop goroutine; only the published
// status (m.st.VPN) is shared.

import (
	"fmt"
	"hash/fnv"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/vishvananda/netns"

	"github.com/rap-fabric/core/agent/meshrun"
	"github.com/rap-fabric/core/agent/tunnel"
	"github.com/rap-fabric/core/agent/tunnel/meshtransport"
	"github.com/rap-fabric/core/agentapi"
)

// DefaultTunnelNet is where tunnel interface addresses come from when
// VPNOptions.TunnelNet is unset: part of the shared address space of RFC 6598.
var DefaultTunnelNet = netip.MustParsePrefix("100.127.0.0/16")

// tunnelAddrs derives a connection's tunnel network (a /30 of net chosen by a
// hash of the connection id, so every node agrees without coordination) and
// the connector's and the exit's addresses in it.
func tunnelAddrs(n netip.Prefix, connID string) (con, exit netip.Prefix, err error) {
	n = n.Masked()
	if !n.Addr().Is4() || n.Bits() > 30 {
		return con, exit, fmt.Errorf("tunnel network %v: want an IPv4 prefix of /30 or wider", n)
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(connID))
	slots := uint32(1) << (30 - n.Bits())
	b := n.Addr().As4()
	base := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	base += (h.Sum32() % slots) * 4
	at := func(off uint32) netip.Prefix {
		v := base + off
		return netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), 30)
	}
	return at(1), at(2), nil
}

// tunnelPlan is the tunnel configuration an assignment asks for, or why it
// cannot run.
type tunnelPlan struct {
	cfg tunnel.Config
	// key identifies the settings: a change restarts the tunnel.
	key string
}

// planTunnel turns an assignment into a tunnel configuration. Forwarding
// covers only the route policies' prefixes (inside the remote prefixes):
// without a route policy nothing may cross, so no tunnel runs.
func planTunnel(as agentapi.VPNAssignment, role tunnel.Role, tunnelNet netip.Prefix) (tunnelPlan, error) {
	parse := func(what string, ss []string) ([]netip.Prefix, error) {
		out := make([]netip.Prefix, 0, len(ss))
		for _, s := range ss {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", what, err)
			}
			out = append(out, p.Masked())
		}
		return out, nil
	}
	clients, err := parse("client prefix", as.ClientPrefixes)
	if err != nil {
		return tunnelPlan{}, err
	}
	remotes, err := parse("remote prefix", as.RemotePrefixes)
	if err != nil {
		return tunnelPlan{}, err
	}
	if len(clients) == 0 || len(remotes) == 0 {
		return tunnelPlan{}, fmt.Errorf("the connection needs client and remote prefixes to carry traffic")
	}
	var allowed, masq []netip.Prefix
	for _, rp := range as.RoutePolicies {
		ps, err := parse("route policy "+rp.Name, rp.Prefixes)
		if err != nil {
			return tunnelPlan{}, err
		}
		for _, p := range ps {
			if covered(p, remotes) && !slices.Contains(allowed, p) {
				allowed = append(allowed, p)
				if rp.Masquerade {
					masq = append(masq, p)
				}
			}
		}
	}
	if len(allowed) == 0 {
		return tunnelPlan{}, fmt.Errorf("no route policy covers the remote prefixes: nothing may cross the tunnel")
	}
	byText := func(a, b netip.Prefix) int { return strings.Compare(a.String(), b.String()) }
	slices.SortFunc(allowed, byText)
	slices.SortFunc(masq, byText)
	conAddr, exitAddr, err := tunnelAddrs(tunnelNet, as.ConnectionID)
	if err != nil {
		return tunnelPlan{}, err
	}
	cfg := tunnel.Config{ConnectionID: as.ConnectionID, Role: role, Address: conAddr, MTU: as.MTU, ClientPrefixes: clients, RemotePrefixes: remotes,
		Policy: tunnel.Policy{Allowed: allowed, Forward: true}}
	if role == tunnel.RoleExit {
		cfg.Address = exitAddr
		// Masquerade only the prefixes of the policies that ask for it.
		cfg.Policy.Masquerade, cfg.Policy.MasqueradeOnly = len(masq) > 0, masq
	}
	key := fmt.Sprintf("%s|%v|%d|%v|%v|%v|%v", role, cfg.Address, cfg.MTU, clients, remotes, allowed, cfg.Policy.MasqueradeOnly)
	return tunnelPlan{cfg: cfg, key: key}, nil
}

func covered(p netip.Prefix, ps []netip.Prefix) bool {
	for _, q := range ps {
		if q.Bits() <= p.Bits() && q.Contains(p.Addr()) {
			return true
		}
	}
	return false
}

// dataPath is one connection's tunnel on this node.
type dataPath struct {
	role  tunnel.Role
	key   string
	node  *meshrun.Node
	t     *tunnel.Tunnel
	con   *meshtransport.Connector
	exit  *meshtransport.Exit
	err   string
	exitN string
	// last are the counters of the tunnel last stopped (kept for status).
	last         tunnel.Stats
	lastTr       meshtransport.Stats
	exitChanges  int
	lastExitMove time.Time
}

func (d *dataPath) running() bool { return d.t != nil }

// stop stops forwarding at once: the tunnel (TUN, routes, nftables table)
// first, then the transport.
func (d *dataPath) stop() {
	if d.t != nil {
		d.last = d.t.Stats()
		_ = d.t.Stop()
		d.t = nil
	}
	if d.con != nil {
		d.lastTr = d.con.Stats()
		_ = d.con.Close()
		d.con = nil
	}
	if d.exit != nil {
		d.lastTr = d.exit.Stats()
		_ = d.exit.Close()
		d.exit = nil
	}
}

// vpnData holds a membership's data paths (VPN loop goroutine only).
type vpnData struct {
	paths map[string]*dataPath
}

func newVPNData() *vpnData { return &vpnData{paths: map[string]*dataPath{}} }

// cleanupTunnels removes the interfaces and nftables tables a previous run
// left behind (named with tunnel.DefaultPrefix). Without the privilege
// (root or CAP_NET_ADMIN) it logs and goes on: no tunnel can run then either.
func (a *Agent) cleanupTunnels() {
	if a.o.VPN.Disabled || a.o.VPN.NoTunnels {
		return
	}
	removed, err := tunnel.Cleanup(netns.None(), "")
	if len(removed) > 0 {
		a.log.Info("removed VPN tunnel leftovers of a previous run", "removed", removed)
	}
	if err != nil {
		a.log.Warn("VPN tunnel leftovers not cleaned up (needs root or CAP_NET_ADMIN)", "error", err)
	}
}

// vpnDataStop stops the data path of one connection (lease suspended, lost
// or released).
func (m *member) vpnDataStop(run *vpnRun, connID, why string, log hclog.Logger) {
	if run == nil || run.data == nil {
		return
	}
	d := run.data.paths[connID]
	if d == nil || !d.running() {
		return
	}
	d.stop()
	log.Info("VPN tunnel stopped", "connection_id", connID, "role", d.role, "reason", why)
}

// vpnDataStopAll stops every data path (agent stopping, membership revoked).
func (m *member) vpnDataStopAll(run *vpnRun, why string, log hclog.Logger) {
	if run.data == nil {
		return
	}
	for id := range run.data.paths {
		m.vpnDataStop(run, id, why, log)
	}
}

// vpnDataReconcile brings the data paths in line with the assignments and
// the leases held.
func (m *member) vpnDataReconcile(run *vpnRun, log hclog.Logger) {
	if m.a.o.VPN.NoTunnels {
		return
	}
	if run.data == nil {
		run.data = newVPNData()
	}
	for id, d := range run.data.paths {
		if run.conns[id] == nil {
			m.vpnDataStop(run, id, "unassigned", log)
			if !d.running() {
				delete(run.data.paths, id)
			}
		}
	}
	node := m.meshNode()
	for id, c := range run.conns {
		var role tunnel.Role
		switch {
		case c.as.Role == agentapi.VPNRoleExit && exitMayForward(c, m.a.o.Now()):
			role = tunnel.RoleExit
		case c.as.Role == agentapi.VPNRoleConnector && c.as.DesiredState == "enabled":
			role = tunnel.RoleConnector
		}
		d := run.data.paths[id]
		if role == "" {
			if d != nil {
				why := "lease not held"
				if c.holding {
					why = "lease renewal overdue for a renewal interval"
				}
				if c.as.DesiredState != "enabled" {
					why = "connection disabled"
				}
				m.vpnDataStop(run, id, why, log)
				d.err = ""
			}
			continue
		}
		if d == nil {
			d = &dataPath{role: role}
			run.data.paths[id] = d
		}
		m.vpnDataEnsure(c, d, role, node, log)
	}
}

// exitMayForward reports whether the exit tunnel of c may run: the node
// holds the lease and no renewal has been overdue for a whole renewal
// interval (renewals are due after a third of the term; when the one due
// then has not succeeded another third later, forwarding stops although the
// lease's local term has not ended yet — it resumes with the next accepted
// renewal).
func exitMayForward(c *vpnConn, now time.Time) bool {
	return c.holding && now.Sub(c.renewedAt) < 2*c.ttl/3
}

// vpnDataEnsure starts, restarts or updates one data path.
func (m *member) vpnDataEnsure(c *vpnConn, d *dataPath, role tunnel.Role, node *meshrun.Node, log hclog.Logger) {
	id := c.as.ConnectionID
	setErr := func(msg string) {
		if d.err != msg {
			log.Warn("VPN tunnel cannot run", "connection_id", id, "role", role, "error", msg)
		}
		d.err = msg
	}
	plan, err := planTunnel(c.as, role, m.a.o.VPN.TunnelNet)
	if err != nil {
		d.stop()
		setErr(err.Error())
		return
	}
	if node == nil {
		d.stop()
		setErr("no mesh: the node's snapshot carries no mesh peers (give it a mesh role)")
		return
	}
	if d.running() && (d.key != plan.key || d.node != node || d.role != role) {
		d.stop()
		log.Info("VPN tunnel restarting: settings or mesh changed", "connection_id", id)
	}
	if d.running() {
		if d.con != nil && d.exitN != c.as.ExitNodeID {
			d.con.SetExit(c.as.ExitNodeID)
			log.Info("VPN connector follows the lease", "connection_id", id, "from", d.exitN, "to", c.as.ExitNodeID)
			d.exitN, d.exitChanges, d.lastExitMove = c.as.ExitNodeID, d.exitChanges+1, m.a.o.Now()
		}
		if d.exit != nil {
			d.exit.SetConnectors(c.as.ConnectorNodeIDs)
		}
		return
	}
	tcfg := meshtransport.Config{ConnectionID: id, MaxPacket: plan.cfg.MTU}
	if tcfg.MaxPacket == 0 {
		tcfg.MaxPacket = tunnel.DefaultMTU
	}
	var tr tunnel.Transport
	var con *meshtransport.Connector
	var ex *meshtransport.Exit
	if role == tunnel.RoleExit {
		ex, err = meshtransport.NewExit(node, tcfg, c.as.ConnectorNodeIDs)
		tr = ex
	} else {
		con, err = meshtransport.NewConnector(node, tcfg, c.as.ExitNodeID)
		tr = con
	}
	if err != nil {
		setErr(err.Error())
		return
	}
	t, err := tunnel.Start(plan.cfg, tr)
	if err != nil {
		if con != nil {
			_ = con.Close()
		}
		if ex != nil {
			_ = ex.Close()
		}
		setErr(err.Error())
		return
	}
	prevExit := d.exitN
	*d = dataPath{role: role, key: plan.key, node: node, t: t, con: con, exit: ex, exitChanges: d.exitChanges, lastExitMove: d.lastExitMove}
	if con != nil {
		d.exitN = c.as.ExitNodeID
		if prevExit != "" && prevExit != d.exitN {
			d.exitChanges, d.lastExitMove = d.exitChanges+1, m.a.o.Now()
		}
	}
	log.Info("VPN tunnel started", "connection_id", id, "role", role, "interface", t.Name(), "address", plan.cfg.Address,
		"allowed", plan.cfg.Policy.Allowed, "masquerade", plan.cfg.Policy.MasqueradeOnly, "exit", d.exitN)
}

// tunnelStatus is the data path of connID as reported (nil when none).
func (m *member) tunnelStatus(run *vpnRun, connID string) *agentapi.VPNTunnelStatus {
	if run.data == nil {
		return nil
	}
	d := run.data.paths[connID]
	if d == nil {
		return nil
	}
	st, ts := d.last, d.lastTr
	if d.t != nil {
		st = d.t.Stats()
	}
	if d.con != nil {
		ts = d.con.Stats()
	} else if d.exit != nil {
		ts = d.exit.Stats()
	}
	out := &agentapi.VPNTunnelStatus{Role: string(d.role), Running: d.running(), Interface: st.Interface, TxPackets: st.TxPackets, TxBytes: st.TxBytes,
		RxPackets: st.RxPackets, RxBytes: st.RxBytes, Error: d.err, ExitChanges: d.exitChanges, LastExitChange: d.lastExitMove}
	if d.role == tunnel.RoleExit {
		m.mu.Lock()
		out.ExitNodeID = m.id.NodeID
		m.mu.Unlock()
	} else {
		out.ExitNodeID = d.exitN
	}
	drops := map[string]uint64{}
	for k, v := range st.Drops {
		drops[k] = v
	}
	for k, v := range map[string]uint64{"queue": ts.DroppedQueue, "too_large": ts.DroppedTooLarge, "unauthorized": ts.DroppedUnauthorized} {
		if v > 0 {
			drops[k] += v
		}
	}
	if len(drops) > 0 {
		out.Drops = drops
	}
	return out
}
