package runtime

import (
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/agent/tunnel"
	"github.com/rap-fabric/core/agentapi"
)

func TestTunnelAddrsAgreeAndStayInside(t *testing.T) {
	n := netip.MustParsePrefix("198.18.40.0/24")
	con, exit, err := tunnelAddrs(n, "c0ffee00-0020-4000-8000-000000000020")
	require.NoError(t, err)
	require.Equal(t, 30, con.Bits())
	require.Equal(t, con.Masked(), exit.Masked(), "both ends share one /30")
	require.True(t, n.Contains(con.Addr()) && n.Contains(exit.Addr()))
	require.Equal(t, con.Addr().Next(), exit.Addr())
	require.NotEqual(t, con.Masked().Addr(), con.Addr(), "host address, not the network")
	con2, _, err := tunnelAddrs(n, "c0ffee00-0020-4000-8000-000000000020")
	require.NoError(t, err)
	require.Equal(t, con, con2, "deterministic: every node derives the same addresses")
	_, _, err = tunnelAddrs(netip.MustParsePrefix("198.18.40.0/31"), "x")
	require.Error(t, err)
	_, _, err = tunnelAddrs(netip.MustParsePrefix("fd00::/64"), "x")
	require.Error(t, err)
	// A /30 has one slot.
	c, e, err := tunnelAddrs(netip.MustParsePrefix("198.18.41.4/30"), "anything")
	require.NoError(t, err)
	require.Equal(t, "198.18.41.5/30", c.String())
	require.Equal(t, "198.18.41.6/30", e.String())
}

func TestPlanTunnelFollowsRoutePolicies(t *testing.T) {
	tn := netip.MustParsePrefix("198.18.40.0/24")
	as := agentapi.VPNAssignment{ConnectionID: "conn1", MTU: 1300, ClientPrefixes: []string{"198.18.2.0/24"}, RemotePrefixes: []string{"198.18.3.0/24"},
		RoutePolicies: []agentapi.VPNAssignedPath{{Name: "lan", Prefixes: []string{"198.18.3.0/25"}, Masquerade: true},
			{Name: "outside", Prefixes: []string{"198.18.9.0/24"}}}}
	p, err := planTunnel(as, tunnel.RoleExit, tn)
	require.NoError(t, err)
	require.Equal(t, []netip.Prefix{netip.MustParsePrefix("198.18.3.0/25")}, p.cfg.Policy.Allowed, "only policy prefixes inside the remote prefixes")
	require.True(t, p.cfg.Policy.Forward)
	require.True(t, p.cfg.Policy.Masquerade, "the policy asks for masquerade")
	require.Equal(t, []netip.Prefix{netip.MustParsePrefix("198.18.3.0/25")}, p.cfg.Policy.MasqueradeOnly, "only that policy's prefixes")

	// Two policies, one masquerading: only its prefix is masqueraded.
	two := as
	two.RoutePolicies = []agentapi.VPNAssignedPath{{Name: "lan", Prefixes: []string{"198.18.3.0/25"}, Masquerade: true},
		{Name: "lab", Prefixes: []string{"198.18.3.128/26"}}}
	p3, err := planTunnel(two, tunnel.RoleExit, tn)
	require.NoError(t, err)
	require.Len(t, p3.cfg.Policy.Allowed, 2)
	require.Equal(t, []netip.Prefix{netip.MustParsePrefix("198.18.3.0/25")}, p3.cfg.Policy.MasqueradeOnly)
	require.Equal(t, 1300, p.cfg.MTU)

	c, err := planTunnel(as, tunnel.RoleConnector, tn)
	require.NoError(t, err)
	require.False(t, c.cfg.Policy.Masquerade, "connectors never masquerade")
	require.NotEqual(t, p.key, c.key)
	require.Equal(t, p.cfg.Address.Masked(), c.cfg.Address.Masked())

	as.RoutePolicies[0].Masquerade = false
	p2, err := planTunnel(as, tunnel.RoleExit, tn)
	require.NoError(t, err)
	require.False(t, p2.cfg.Policy.Masquerade)
	require.NotEqual(t, p.key, p2.key, "a settings change restarts the tunnel")

	as.RoutePolicies = nil
	_, err = planTunnel(as, tunnel.RoleExit, tn)
	require.ErrorContains(t, err, "no route policy")
	as.RoutePolicies = []agentapi.VPNAssignedPath{{Name: "lan", Prefixes: []string{"198.18.3.0/24"}}}
	as.ClientPrefixes = nil
	_, err = planTunnel(as, tunnel.RoleExit, tn)
	require.ErrorContains(t, err, "client and remote prefixes")
	as.ClientPrefixes = []string{"bogus"}
	_, err = planTunnel(as, tunnel.RoleExit, tn)
	require.Error(t, err)
}

func TestExitMayForward(t *testing.T) {
	now := time.Now()
	c := &vpnConn{holding: true, ttl: 3 * time.Second, renewedAt: now}
	require.True(t, exitMayForward(c, now))
	require.True(t, exitMayForward(c, now.Add(1999*time.Millisecond)), "renewal due at 1 s, overdue less than a renewal interval")
	require.False(t, exitMayForward(c, now.Add(2*time.Second)), "the renewal due at 1 s failed for another second")
	c.holding = false
	require.False(t, exitMayForward(c, now), "not the holder")
	c = &vpnConn{holding: true, ttl: 3 * time.Second} // held from before a restart: renewed at once
	require.False(t, exitMayForward(c, now))
}
