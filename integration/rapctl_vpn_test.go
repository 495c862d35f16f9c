package integration

import (
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/apiclient"
	"github.com/rap-fabric/core/httpapi"
	"github.com/rap-fabric/core/internal/authtest"
	"github.com/rap-fabric/core/pki"
)

// joinVPNNode enrolls a node with VPN capabilities through an auto-approving
// token over the real agent join route and returns its node id and an mTLS
// client holding the node's certificate (what an agent uses).
func joinVPNNode(t *testing.T, addrs []string, pin, token, name string) (string, *apiclient.Client) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	nk, err := ecdh.X25519().GenerateKey(rand.Reader)
	require.NoError(t, err)
	poll := make([]byte, 32)
	_, _ = rand.Read(poll)
	h := sha256.Sum256([]byte("rapctl-vpn-host-" + name))
	ec, err := apiclient.New(apiclient.Options{Servers: addrs, CAPin: pin, ServerName: httpapi.ServerNameForPin(pin)})
	require.NoError(t, err)
	defer ec.Close()
	var st struct {
		Status      string `json:"status"`
		ClusterID   string `json:"cluster_id"`
		NodeID      string `json:"node_id"`
		Certificate []byte `json:"certificate"`
		CACert      []byte `json:"ca_certificate"`
	}
	require.NoError(t, ec.Do(context.Background(), http.MethodPost, "/v1/agent/join", map[string]any{"token": token, "node_name": name,
		"host_fingerprint": hex.EncodeToString(h[:]), "public_key": []byte(priv.Public().(ed25519.PublicKey)), "noise_public_key": nk.PublicKey().Bytes(),
		"facts": map[string]any{"region": "eu"}, "capabilities": []string{"can_run_vpn_exit", "can_run_vpn_connector"}, "poll_secret": poll}, &st, nil))
	require.Equal(t, "approved", st.Status)
	cpin, err := pki.PinDER(st.CACert)
	require.NoError(t, err)
	c, err := apiclient.New(apiclient.Options{Servers: addrs, CAPin: cpin, ServerName: httpapi.ServerNameForCluster(st.ClusterID), Timeout: 10 * time.Second,
		Certificate: &tls.Certificate{Certificate: [][]byte{st.Certificate}, PrivateKey: priv}})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return st.NodeID, c
}

// TestRapctlVPN drives every `rapctl vpn …` subcommand (the built binary)
// against a real authority with real PostgreSQL and checks both what it
// prints (table and -o json) and what it changed, read back through the API.
func TestRapctlVPN(t *testing.T) {
	bin := binaries(t)
	g := authtest.New(t, 1)
	ctx := context.Background()
	g.Leader(10 * time.Second)
	owner := g.Client(g.DS...)
	addrs := apiAddrs(g)
	cfg := filepath.Join(t.TempDir(), "none.json")

	// rapctl runs the binary with the owner token; it returns stdout, stderr
	// and the exit code.
	rapctl := func(args ...string) (string, string, int) {
		t.Helper()
		cmd := exec.Command(filepath.Join(bin, "rapctl"), append([]string{"--server", strings.Join(addrs, ","), "--token", g.Token, "--ca-pin", g.Pin}, args...)...)
		cmd.Env = append(os.Environ(), "RAPCTL_CONFIG="+cfg)
		var so, se strings.Builder
		cmd.Stdout, cmd.Stderr = &so, &se
		err := cmd.Run()
		code := 0
		if err != nil {
			var ee *exec.ExitError
			require.True(t, errors.As(err, &ee), "rapctl %v: %v", args, err)
			code = ee.ExitCode()
		}
		return so.String(), se.String(), code
	}
	ok := func(args ...string) string {
		t.Helper()
		out, errOut, code := rapctl(args...)
		require.Equal(t, 0, code, "rapctl %v\nstdout: %s\nstderr: %s", args, out, errOut)
		return out
	}
	okJSON := func(v any, args ...string) string {
		t.Helper()
		out := ok(append([]string{"-o", "json"}, args...)...)
		require.NoError(t, json.Unmarshal([]byte(out), v), "rapctl %v printed no JSON: %s", args, out)
		return out
	}
	refused := func(code string, args ...string) string {
		t.Helper()
		out, errOut, rc := rapctl(args...)
		require.NotEqual(t, 0, rc, "rapctl %v must fail: %s", args, out)
		require.Empty(t, strings.TrimSpace(out), "nothing on stdout when refused")
		require.Contains(t, errOut, "rapctl: "+code+":", "rapctl %v", args)
		return errOut
	}
	// tableRow returns the cells of the table row whose first cell is key.
	tableRow := func(out, key string) []string {
		t.Helper()
		for _, l := range strings.Split(out, "\n") {
			if f := strings.Fields(l); len(f) > 0 && f[0] == key {
				return f
			}
		}
		t.Fatalf("no row %q in:\n%s", key, out)
		return nil
	}

	for _, slug := range []string{"demo", "west"} {
		_, err := authtest.CreateCluster(ctx, owner, slug)
		require.NoError(t, err)
	}
	pins := map[string]string{}
	tokens := map[string]string{}
	for _, slug := range []string{"demo", "west"} {
		var c struct {
			CAPin string `json:"ca_pin"`
		}
		require.NoError(t, owner.Do(ctx, http.MethodGet, "/v1/clusters/"+slug, nil, &c, nil))
		pins[slug] = c.CAPin
		var tok struct {
			Token string `json:"token"`
		}
		require.NoError(t, owner.Do(ctx, http.MethodPost, "/v1/join-tokens", map[string]any{"cluster": slug, "max_uses": 3, "auto_approve": true, "allowed_roles": []string{"relay-node"}, "description": "rapctl vpn"}, &tok, nil))
		tokens[slug] = tok.Token
	}
	n1, agent1 := joinVPNNode(t, addrs, pins["demo"], tokens["demo"], "exit-1")
	n2, agent2 := joinVPNNode(t, addrs, pins["demo"], tokens["demo"], "exit-2")
	westNode, _ := joinVPNNode(t, addrs, pins["west"], tokens["west"], "west-1")
	for _, n := range []string{n1, n2} {
		require.NoError(t, owner.Do(ctx, http.MethodPost, "/v1/clusters/demo/nodes/"+n+"/roles", map[string]any{"role": "vpn-exit"}, nil, nil))
	}

	const credRef = "vault:kv/vpn/office-ref-7f3a"
	type connJSON struct {
		ID              string   `json:"id"`
		Name            string   `json:"name"`
		DesiredState    string   `json:"desired_state"`
		AddressFamily   string   `json:"address_family"`
		ClientPrefixes  []string `json:"client_prefixes"`
		RemotePrefixes  []string `json:"remote_prefixes"`
		DNSServers      []string `json:"dns_servers"`
		MTU             int      `json:"mtu"`
		CredentialRef   string   `json:"credential_ref"`
		LeaseTTLSeconds int      `json:"lease_ttl_seconds"`
		AllowedNodes    []string `json:"allowed_nodes"`
		Health          string   `json:"health"`
		Lease           *struct {
			OwnerNodeID string `json:"owner_node_id"`
			Generation  int64  `json:"generation"`
		} `json:"lease"`
	}
	getConn := func() connJSON {
		t.Helper()
		var c connJSON
		require.NoError(t, owner.Do(ctx, http.MethodGet, "/v1/clusters/demo/vpn-connections/office", nil, &c, nil))
		return c
	}

	// create: flags after the positional arguments (as docs/vpn.md shows), table output.
	out := ok("vpn", "create", "demo", "office", "--family", "ipv4", "--client-prefixes", "100.64.0.0/24", "--remote-prefixes", "192.168.50.0/24,10.20.0.0/16",
		"--dns", "192.168.50.53", "--credential-ref", credRef, "--lease-ttl", "30")
	require.Contains(t, out, "DESIRED_STATE")
	c := getConn()
	row := tableRow(out, c.ID)
	require.Equal(t, []string{c.ID, "office", "disabled", "disabled"}, row[:4], "a new connection is disabled by default:\n%s", out)
	require.Equal(t, "ipv4", c.AddressFamily)
	require.Equal(t, []string{"100.64.0.0/24"}, c.ClientPrefixes)
	require.ElementsMatch(t, []string{"192.168.50.0/24", "10.20.0.0/16"}, c.RemotePrefixes)
	require.Equal(t, []string{"192.168.50.53"}, c.DNSServers)
	require.Equal(t, 1420, c.MTU, "the default MTU")
	require.Equal(t, credRef, c.CredentialRef, "the owner sees the credential reference")
	require.Equal(t, 30, c.LeaseTTLSeconds)
	require.Equal(t, "disabled", c.DesiredState)
	// create -o json, --enabled, and refusals with a typed error and exit 1.
	var second connJSON
	okJSON(&second, "vpn", "create", "demo", "lab", "--family", "ipv6", "--remote-prefixes", "fd00:50::/64", "--dns", "fd00:50::53", "--mtu", "1380", "--lease-ttl", "10", "--enabled")
	require.Equal(t, "lab", second.Name)
	require.Equal(t, "enabled", second.DesiredState)
	require.Equal(t, "no_owner", second.Health)
	require.Equal(t, 1380, second.MTU)
	require.Equal(t, 10, second.LeaseTTLSeconds)
	require.Equal(t, "", second.CredentialRef)
	refused("conflict", "vpn", "create", "demo", "office", "--family", "ipv4")
	refused("invalid_argument", "vpn", "create", "demo", "loop", "--family", "ipv4", "--client-prefixes", "10.1.0.0/16", "--remote-prefixes", "10.0.0.0/8")
	refused("invalid_argument", "vpn", "create", "demo", "badttl", "--family", "ipv4", "--lease-ttl", "1")
	_, errOut, rc := rapctl("vpn", "create", "demo")
	require.NotEqual(t, 0, rc, "missing arguments")
	require.Contains(t, errOut, "CLUSTER NAME")

	// list: both connections, table and JSON.
	out = ok("vpn", "list", "demo")
	require.Equal(t, []string{c.ID, "office", "disabled", "disabled"}, tableRow(out, c.ID)[:4])
	require.Equal(t, []string{second.ID, "lab", "enabled", "no_owner"}, tableRow(out, second.ID)[:4])
	var list struct {
		Items []connJSON `json:"items"`
	}
	okJSON(&list, "vpn", "list", "demo")
	require.Len(t, list.Items, 2)
	var listNames []string
	for _, it := range list.Items {
		listNames = append(listNames, it.Name)
	}
	require.ElementsMatch(t, []string{"office", "lab"}, listNames)
	okJSON(&list, "vpn", "list", "west")
	require.Empty(t, list.Items, "connections are per cluster")

	// update: only the flags given change.
	out = ok("vpn", "update", "demo", "office", "--mtu", "1380")
	require.Equal(t, c.ID, tableRow(out, c.ID)[0])
	c = getConn()
	require.Equal(t, 1380, c.MTU)
	require.Equal(t, credRef, c.CredentialRef, "update without --credential-ref keeps it")
	require.Equal(t, []string{"100.64.0.0/24"}, c.ClientPrefixes, "update without --client-prefixes keeps them")
	require.Equal(t, 30, c.LeaseTTLSeconds)
	var upd connJSON
	okJSON(&upd, "vpn", "update", "demo", "office", "--dns", "192.168.50.53,192.168.50.54", "--lease-ttl", "20")
	require.Equal(t, []string{"192.168.50.53", "192.168.50.54"}, upd.DNSServers)
	require.Equal(t, 20, upd.LeaseTTLSeconds)
	require.Equal(t, 1380, upd.MTU)
	require.Equal(t, credRef, upd.CredentialRef)
	refused("invalid_argument", "vpn", "update", "demo", "office", "--mtu", "100")
	refused("not_found", "vpn", "update", "demo", "nosuch", "--mtu", "1400")
	require.Equal(t, 1380, getConn().MTU, "a refused update changes nothing")

	// enable / disable.
	out = ok("vpn", "enable", "demo", "office")
	require.Equal(t, []string{c.ID, "office", "enabled", "no_owner"}, tableRow(out, c.ID)[:4])
	require.Equal(t, "enabled", getConn().DesiredState)
	var en connJSON
	okJSON(&en, "vpn", "disable", "demo", "office")
	require.Equal(t, "disabled", en.DesiredState)
	require.Equal(t, "disabled", getConn().DesiredState)
	okJSON(&en, "vpn", "enable", "demo", "office")
	require.Equal(t, "enabled", en.DesiredState)

	// allowed-nodes: normalized (lower-cased, deduplicated, sorted); comma
	// lists and separate arguments both work; a node of another cluster is
	// refused with its id named and nothing changed.
	errOut = refused("invalid_argument", "vpn", "allowed-nodes", "demo", "office", n1, westNode)
	require.Contains(t, errOut, westNode, "the refusal names the foreign node")
	require.Empty(t, getConn().AllowedNodes, "a refused list changes nothing")
	want := []string{n1, n2}
	sort.Strings(want)
	out = ok("vpn", "allowed-nodes", "demo", "office", n2, strings.ToUpper(n1)+","+n2, n1)
	require.Equal(t, []string{c.ID, "office", strings.Join(want, ",")}, tableRow(out, c.ID))
	require.Equal(t, want, getConn().AllowedNodes)
	var an connJSON
	okJSON(&an, "vpn", "allowed-nodes", "demo", "office", n1, n1)
	require.Equal(t, []string{n1}, an.AllowedNodes)
	okJSON(&an, "vpn", "allowed-nodes", "demo", "lab")
	require.Empty(t, an.AllowedNodes, "no nodes: an empty list")
	okJSON(&an, "vpn", "allowed-nodes", "demo", "office", n2, n1)
	require.Equal(t, want, an.AllowedNodes)

	// route-policy add / list / delete.
	type policy struct {
		ID                string   `json:"id"`
		Name              string   `json:"name"`
		Prefixes          []string `json:"prefixes"`
		Priority          int      `json:"priority"`
		AllowDefaultRoute bool     `json:"allow_default_route"`
		AllowOverlap      bool     `json:"allow_overlap"`
	}
	out = ok("vpn", "route-policy", "add", "demo", "office", "office-lan", "--prefixes", "192.168.50.0/24", "--priority", "10", "--allow-overlap")
	require.Contains(t, out, "office-lan")
	require.Contains(t, out, "192.168.50.0/24")
	errOut = refused("invalid_argument", "vpn", "route-policy", "add", "demo", "office", "everything", "--prefixes", "0.0.0.0/0")
	require.Contains(t, errOut, "0.0.0.0/0")
	errOut = refused("invalid_argument", "vpn", "route-policy", "add", "demo", "office", "everything", "--prefixes", "0.0.0.0/0", "--allow-default-route")
	require.Contains(t, errOut, "allow_overlap", "the default route overlaps office-lan")
	var def policy
	okJSON(&def, "vpn", "route-policy", "add", "demo", "office", "everything", "--prefixes", "0.0.0.0/0", "--allow-default-route", "--allow-overlap", "--priority", "1000")
	require.True(t, def.AllowDefaultRoute)
	require.True(t, def.AllowOverlap)
	require.Equal(t, []string{"0.0.0.0/0"}, def.Prefixes)
	require.Equal(t, 1000, def.Priority)
	var pols struct {
		Items []policy `json:"items"`
	}
	okJSON(&pols, "vpn", "route-policy", "list", "demo", "office")
	require.Len(t, pols.Items, 2)
	byName := map[string]policy{}
	for _, p := range pols.Items {
		byName[p.Name] = p
	}
	require.Equal(t, []string{"192.168.50.0/24"}, byName["office-lan"].Prefixes)
	require.Equal(t, 10, byName["office-lan"].Priority)
	require.False(t, byName["office-lan"].AllowDefaultRoute)
	require.True(t, byName["office-lan"].AllowOverlap)
	require.True(t, byName["everything"].AllowDefaultRoute)
	out = ok("vpn", "route-policy", "list", "demo", "office")
	require.Equal(t, "office-lan", tableRow(out, byName["office-lan"].ID)[1])
	require.Equal(t, "everything", tableRow(out, def.ID)[1])
	out = ok("vpn", "route-policy", "delete", "demo", "office", "everything") // by name
	require.Contains(t, out, "everything")
	refused("not_found", "vpn", "route-policy", "delete", "demo", "office", "everything")
	okJSON(&pols, "vpn", "route-policy", "list", "demo", "office")
	require.Len(t, pols.Items, 1)
	require.Equal(t, "office-lan", pols.Items[0].Name)

	// lease: no owner yet.
	type leaseJSON struct {
		OwnerNodeID string `json:"owner_node_id"`
		Generation  int64  `json:"generation"`
		Status      string `json:"status"`
		Epoch       int64  `json:"epoch"`
	}
	type leaseView struct {
		ConnectionID string      `json:"connection_id"`
		Active       *leaseJSON  `json:"active"`
		History      []leaseJSON `json:"history"`
	}
	out = ok("vpn", "lease", "demo", "office")
	require.Equal(t, []string{c.ID, "-", "-", "-", "-", "-", "-"}, tableRow(out, c.ID), "no active lease:\n%s", out)
	var lv leaseView
	okJSON(&lv, "vpn", "lease", "demo", "office")
	require.Equal(t, c.ID, lv.ConnectionID)
	require.Nil(t, lv.Active)
	require.Empty(t, lv.History)

	// The agent side: the enrolled node sees its assignment without the
	// credential reference (only has_credential_ref) and takes the lease
	// over its mTLS route, as the agent loop does.
	var asg struct {
		Items []map[string]any `json:"items"`
	}
	var raw json.RawMessage
	require.NoError(t, agent1.Do(ctx, http.MethodGet, "/v1/agent/vpn/assignments", nil, &raw, nil))
	require.NotContains(t, string(raw), credRef, "agents never see credential_ref")
	require.NotContains(t, string(raw), `"credential_ref"`)
	require.NoError(t, json.Unmarshal(raw, &asg))
	require.Len(t, asg.Items, 1, "only the connection the node may run: %s", raw)
	require.Contains(t, string(raw), `"has_credential_ref":true`)
	var grant struct {
		Generation int64 `json:"generation"`
	}
	require.NoError(t, agent1.Do(ctx, http.MethodPost, "/v1/agent/vpn/connections/"+c.ID+"/lease", nil, &grant, nil))
	require.EqualValues(t, 1, grant.Generation)

	// lease / list / show with a holder.
	out = ok("vpn", "lease", "demo", "office")
	row = tableRow(out, c.ID)
	require.Equal(t, []string{c.ID, n1, "1"}, row[:3], "holder and generation:\n%s", out)
	okJSON(&lv, "vpn", "lease", "demo", "office")
	require.NotNil(t, lv.Active)
	require.Equal(t, n1, lv.Active.OwnerNodeID)
	require.EqualValues(t, 1, lv.Active.Generation)
	require.Greater(t, lv.Active.Epoch, int64(0))
	require.Len(t, lv.History, 1)
	require.Equal(t, "active", lv.History[0].Status)
	out = ok("vpn", "list", "demo")
	row = tableRow(out, c.ID)
	require.Equal(t, []string{c.ID, "office", "enabled", "lease_held", n1, "1"}, row[:6], "%s", out)

	// show (JSON only): allowed nodes, route policies, lease history, and
	// the credential reference for the owner.
	out = ok("vpn", "show", "demo", "office")
	var show struct {
		connJSON
		RoutePolicies []policy    `json:"route_policies"`
		LeaseHistory  []leaseJSON `json:"lease_history"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &show), "vpn show prints JSON: %s", out)
	require.Equal(t, c.ID, show.ID)
	require.Equal(t, want, show.AllowedNodes)
	require.Len(t, show.RoutePolicies, 1)
	require.Equal(t, "office-lan", show.RoutePolicies[0].Name)
	require.Len(t, show.LeaseHistory, 1)
	require.Equal(t, n1, show.LeaseHistory[0].OwnerNodeID)
	require.Equal(t, credRef, show.CredentialRef)
	require.Equal(t, "lease_held", show.Health)
	require.Equal(t, n1, show.Lease.OwnerNodeID)

	// lease fence: a reason is required (refused before any request), the
	// owner API token may fence, and a second fence is a no-op.
	_, errOut, rc = rapctl("vpn", "lease", "fence", "demo", "office")
	require.NotEqual(t, 0, rc)
	require.Contains(t, errOut, "--reason")
	require.NotNil(t, getConn().Lease, "a refused fence changes nothing")
	out = ok("vpn", "lease", "fence", "demo", "office", "--reason", "exit compromised")
	require.Contains(t, out, "FENCED")
	require.Equal(t, []string{"true", n1, "1", "fenced"}, tableRow(out, "true")[:4], "%s", out)
	var fr struct {
		Fenced bool       `json:"fenced"`
		Lease  *leaseJSON `json:"lease"`
	}
	okJSON(&fr, "vpn", "lease", "fence", "demo", "office", "--reason", "exit compromised")
	require.False(t, fr.Fenced, "fencing again is a no-op")
	okJSON(&lv, "vpn", "lease", "demo", "office")
	require.Nil(t, lv.Active)
	require.Len(t, lv.History, 1, "the fence ended the lease; no new lease")
	require.Equal(t, "fenced", lv.History[0].Status)
	require.Nil(t, getConn().Lease)
	// -o json also after the arguments, as docs/vpn.md writes it.
	out = ok("vpn", "lease", "demo", "office", "-o", "json")
	require.NoError(t, json.Unmarshal([]byte(out), &lv), "%s", out)
	require.Equal(t, "fenced", lv.History[0].Status)
	err := agent1.Do(ctx, http.MethodPost, "/v1/agent/vpn/connections/"+c.ID+"/lease/renew", map[string]any{"generation": 1}, nil, nil)
	var ae *apiclient.Error
	require.True(t, errors.As(err, &ae), "renewal of a fenced lease: %v", err)
	require.Equal(t, "lease_lost", ae.Code)

	// disable through rapctl revokes a held lease: n2 takes the lab
	// connection's lease, `rapctl vpn disable` ends it as revoked.
	okJSON(&an, "vpn", "allowed-nodes", "demo", "lab", n2)
	require.Equal(t, []string{n2}, an.AllowedNodes)
	require.NoError(t, agent2.Do(ctx, http.MethodPost, "/v1/agent/vpn/connections/"+second.ID+"/lease", nil, &grant, nil))
	okJSON(&lv, "vpn", "lease", "demo", "lab")
	require.NotNil(t, lv.Active)
	require.Equal(t, n2, lv.Active.OwnerNodeID)
	out = ok("vpn", "disable", "demo", "lab")
	require.Equal(t, []string{second.ID, "lab", "disabled", "disabled"}, tableRow(out, second.ID)[:4], "%s", out)
	okJSON(&lv, "vpn", "lease", "demo", "lab")
	require.Nil(t, lv.Active, "disable revoked the lease")
	require.Len(t, lv.History, 1)
	require.Equal(t, "revoked", lv.History[0].Status)

	// Audit: the rapctl actions were recorded.
	assertAudit(t, owner, "vpn_connection.create", "vpn_connection.update", "vpn_connection.enable", "vpn_connection.disable",
		"vpn_connection.allowed_nodes", "vpn_route_policy.create", "vpn_route_policy.delete", "vpn_lease.fence")
}
