package main

// `rapctl vpn …`: the VPN / IP tunnel control plane (httpapi/vpn.go).

import (
	"flag"
	"net/http"
	"net/url"
	"strings"
)

func vpnPath(cluster, conn, rest string) string {
	p := "/v1/clusters/" + url.PathEscape(cluster) + "/vpn-connections"
	if conn != "" {
		p += "/" + url.PathEscape(conn)
	}
	return p + rest
}

// splitList splits a comma-separated flag value; "" is an empty list.
func splitList(s string) []string {
	out := []string{}
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// vpnConnFlags registers the connection settings; set reports which were
// given on the command line (update sends only those).
func vpnConnFlags(fs *flag.FlagSet) func(body map[string]any, onlySet bool) {
	family := fs.String("family", "", "address family: ipv4, ipv6 or dual")
	client := fs.String("client-prefixes", "", "comma-separated client address pool prefixes")
	remote := fs.String("remote-prefixes", "", "comma-separated remote prefixes behind the tunnel")
	dns := fs.String("dns", "", "comma-separated DNS server addresses")
	mtu := fs.Int("mtu", 1420, "tunnel MTU (576-9000)")
	cred := fs.String("credential-ref", "", "reference to the tunnel credential in a secret store (never the credential)")
	ttl := fs.Int("lease-ttl", 30, "lease time to live in seconds (2-3600)")
	return func(body map[string]any, onlySet bool) {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		put := func(flagName, key string, v any) {
			if !onlySet || set[flagName] {
				body[key] = v
			}
		}
		if *family != "" {
			body["address_family"] = *family
		}
		put("client-prefixes", "client_prefixes", splitList(*client))
		put("remote-prefixes", "remote_prefixes", splitList(*remote))
		put("dns", "dns_servers", splitList(*dns))
		put("mtu", "mtu", *mtu)
		put("credential-ref", "credential_ref", *cred)
		put("lease-ttl", "lease_ttl_seconds", *ttl)
	}
}

var vpnTable = []string{"id", "name", "desired_state", "health", "lease.owner_node_id", "lease.generation", "lease.epoch", "lease.expires_at", "holder_status"}

var vpnCommands = []cmd{
	{path: "vpn create", args: "CLUSTER NAME", help: "create a VPN connection (--family, --client-prefixes, --remote-prefixes, --dns, --mtu, --credential-ref, --lease-ttl, --organization, --enabled; fenced)", flags: func(fs *flag.FlagSet) builder {
		conn := vpnConnFlags(fs)
		org := fs.String("organization", "", "organization id or slug the connection serves")
		enabled := fs.Bool("enabled", false, "create it enabled (default disabled)")
		return func() (string, string, any, error) {
			if len(positional) != 2 {
				return "", "", nil, errArgs("CLUSTER NAME")
			}
			body := map[string]any{"name": positional[1], "organization": *org}
			if *enabled {
				body["desired_state"] = "enabled"
			}
			conn(body, false)
			return http.MethodPost, vpnPath(positional[0], "", ""), body, nil
		}
	}, table: vpnTable, single: true},
	{path: "vpn list", args: "CLUSTER", help: "a cluster's VPN connections with lease holder, epoch and health", flags: withArgs(http.MethodGet, "/v1/clusters/{cluster}/vpn-connections?limit=500", "cluster"),
		table: vpnTable},
	{path: "vpn show", args: "CLUSTER CONNECTION", help: "a VPN connection: allowed nodes, route policies, lease history, agent statuses (JSON)", flags: withArgs(http.MethodGet, "/v1/clusters/{cluster}/vpn-connections/{conn}", "cluster", "conn")},
	{path: "vpn update", args: "CLUSTER CONNECTION", help: "change a VPN connection's settings (only the flags given; fenced)", flags: func(fs *flag.FlagSet) builder {
		conn := vpnConnFlags(fs)
		return func() (string, string, any, error) {
			if len(positional) != 2 {
				return "", "", nil, errArgs("CLUSTER CONNECTION")
			}
			body := map[string]any{}
			conn(body, true)
			return http.MethodPatch, vpnPath(positional[0], positional[1], ""), body, nil
		}
	}, table: vpnTable, single: true},
	{path: "vpn enable", args: "CLUSTER CONNECTION", help: "set a VPN connection's desired state to enabled (fenced)", flags: withArgs(http.MethodPost, "/v1/clusters/{cluster}/vpn-connections/{conn}/enable", "cluster", "conn"),
		table: vpnTable, single: true},
	{path: "vpn disable", args: "CLUSTER CONNECTION", help: "disable a VPN connection; its lease is revoked (fenced)", flags: withArgs(http.MethodPost, "/v1/clusters/{cluster}/vpn-connections/{conn}/disable", "cluster", "conn"),
		table: vpnTable, single: true},
	{path: "vpn allowed-nodes", args: "CLUSTER CONNECTION NODE_ID…", help: "replace the nodes allowed to hold the connection's lease (none: empty list; fenced)", flags: func(fs *flag.FlagSet) builder {
		return func() (string, string, any, error) {
			if len(positional) < 2 {
				return "", "", nil, errArgs("CLUSTER CONNECTION NODE_ID…")
			}
			nodes := []string{}
			for _, p := range positional[2:] {
				nodes = append(nodes, splitList(p)...)
			}
			return http.MethodPut, vpnPath(positional[0], positional[1], "/allowed-nodes"), map[string]any{"node_ids": nodes}, nil
		}
	}, table: []string{"id", "name", "allowed_nodes"}, single: true},
	{path: "vpn route-policy add", args: "CLUSTER CONNECTION NAME", help: "route prefixes through the connection (--prefixes, --priority, --allow-default-route, --allow-overlap, --masquerade; fenced)", flags: func(fs *flag.FlagSet) builder {
		prefixes := fs.String("prefixes", "", "comma-separated prefixes (required)")
		prio := fs.Int("priority", 100, "priority (0-10000, lower first)")
		def := fs.Bool("allow-default-route", false, "allow 0.0.0.0/0 or ::/0")
		overlap := fs.Bool("allow-overlap", false, "allow overlaps with other policies that allow them too")
		masq := fs.Bool("masquerade", false, "the exit source-NATs this policy's traffic toward the remote network")
		return func() (string, string, any, error) {
			if len(positional) != 3 {
				return "", "", nil, errArgs("CLUSTER CONNECTION NAME")
			}
			body := map[string]any{"name": positional[2], "prefixes": splitList(*prefixes), "priority": *prio, "allow_default_route": *def, "allow_overlap": *overlap, "masquerade": *masq}
			return http.MethodPost, vpnPath(positional[0], positional[1], "/route-policies"), body, nil
		}
	}, table: []string{"id", "name", "prefixes", "priority", "allow_default_route", "allow_overlap", "masquerade"}, single: true},
	{path: "vpn route-policy list", args: "CLUSTER CONNECTION", help: "a VPN connection's route policies", flags: withArgs(http.MethodGet, "/v1/clusters/{cluster}/vpn-connections/{conn}/route-policies", "cluster", "conn"),
		table: []string{"id", "name", "prefixes", "priority", "allow_default_route", "allow_overlap", "masquerade", "created_by"}},
	{path: "vpn route-policy delete", args: "CLUSTER CONNECTION POLICY", help: "delete a route policy (id or name; fenced)", flags: withArgs(http.MethodDelete, "/v1/clusters/{cluster}/vpn-connections/{conn}/route-policies/{policy}", "cluster", "conn", "policy"),
		table: []string{"id", "name"}, single: true},
	{path: "vpn lease", args: "CLUSTER CONNECTION", help: "the connection's active lease (holder, generation, epoch, expiry); -o json adds the history", flags: withArgs(http.MethodGet, "/v1/clusters/{cluster}/vpn-connections/{conn}/lease", "cluster", "conn"),
		table: []string{"connection_id", "active.owner_node_id", "active.generation", "active.epoch", "active.acquired_at", "active.renewed_at", "active.expires_at"}, single: true},
	{path: "vpn lease fence", args: "CLUSTER CONNECTION", help: "fence the active lease: a recovery action of platform owners (step-up; --reason, required; idempotent)", flags: func(fs *flag.FlagSet) builder {
		reason := fs.String("reason", "", "why (shown in the audit log; required)")
		return func() (string, string, any, error) {
			if len(positional) != 2 {
				return "", "", nil, errArgs("CLUSTER CONNECTION")
			}
			if strings.TrimSpace(*reason) == "" {
				return "", "", nil, errArgs("--reason REASON")
			}
			return http.MethodPost, vpnPath(positional[0], positional[1], "/lease/fence"), map[string]string{"reason": *reason}, nil
		}
	}, table: []string{"fenced", "lease.owner_node_id", "lease.generation", "lease.status", "lease.expires_at"}, single: true},
}

func init() { commands = append(commands, vpnCommands...) }
