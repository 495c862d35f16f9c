package main

import (
	"encoding/base64"
	"encoding/json"
	"flag"
	"net/http"
	"net/url"
	"strings"
)

type builder = func() (method, path string, body any, err error)

func noFlags(f func() (string, string, any, error)) func(*flag.FlagSet) builder {
	return func(*flag.FlagSet) builder { return f }
}

func withArgs(method, pattern string, names ...string) func(*flag.FlagSet) builder {
	return func(*flag.FlagSet) builder {
		return func() (string, string, any, error) {
			p := pattern
			for i, n := range names {
				v, err := arg(i, n)
				if err != nil {
					return "", "", nil, err
				}
				p = strings.Replace(p, "{"+n+"}", v, 1)
			}
			return method, p, nil, nil
		}
	}
}

func listFlags(path string, filters ...string) func(*flag.FlagSet) builder {
	return func(fs *flag.FlagSet) builder {
		vals := map[string]*string{}
		for _, f := range filters {
			vals[f] = fs.String(f, "", "filter by "+f)
		}
		limit := fs.String("limit", "", "at most this many rows (default: every page)")
		offset := fs.String("offset", "", "page offset")
		return func() (string, string, any, error) {
			q := url.Values{}
			for k, v := range vals {
				if *v != "" {
					q.Set(k, *v)
				}
			}
			if *limit != "" {
				q.Set("limit", *limit)
			}
			if *offset != "" {
				q.Set("offset", *offset)
			}
			p := path
			if len(q) > 0 {
				p += "?" + q.Encode()
			}
			return http.MethodGet, p, nil, nil
		}
	}
}

var commands = []cmd{
	{path: "authority status", help: "Raft and fence status of an authority", flags: noFlags(get("/v1/authority/status")),
		table: []string{"node_id", "state", "leader_id", "agreed_epoch", "fence_epoch", "quorum", "commit_index"}, single: true},
	{path: "authority health", help: "health of an authority: Raft view and PostgreSQL probe (exit status non-zero when unavailable)", flags: noFlags(get("/v1/health?standbyok")),
		table: []string{"status", "node_id", "state", "quorum", "database_server", "database_writable", "problems"}, single: true},
	{path: "authority certificate", args: "ID", help: "issue a Raft member certificate for a joining authority", flags: func(fs *flag.FlagSet) builder {
		key := fs.String("member-key", "", "the new authority's member public key, base64 (rap-authority member-key)")
		return func() (string, string, any, error) {
			if len(positional) != 1 {
				return "", "", nil, errArgs("ID")
			}
			k, err := base64.StdEncoding.DecodeString(*key)
			if err != nil || len(k) != 32 {
				return "", "", nil, errArgs("--member-key with a base64 32-byte key")
			}
			return http.MethodPost, "/v1/authority/members/certificate", map[string]any{"id": positional[0], "member_public_key": k}, nil
		}
	}},
	{path: "authority add", args: "ID RAFT_ADDR API_ADDR", help: "add an authority as a voter (fenced; `rap-authority run --join` does both steps)", flags: func(fs *flag.FlagSet) builder {
		return func() (string, string, any, error) {
			if len(positional) != 3 {
				return "", "", nil, errArgs("ID RAFT_ADDR API_ADDR")
			}
			return http.MethodPost, "/v1/authority/members", map[string]any{"id": positional[0], "raft_addr": positional[1], "api_addr": positional[2]}, nil
		}
	}},
	{path: "authority remove", args: "ID", help: "remove an authority from the group (fenced)", flags: withArgs(http.MethodDelete, "/v1/authority/members/{id}", "id")},

	{path: "cluster create", args: "NAME", help: "create a cluster and its CA (fenced)", flags: func(fs *flag.FlagSet) builder {
		slug := fs.String("slug", "", "URL-safe short name (default from NAME)")
		region := fs.String("region", "", "region label")
		return func() (string, string, any, error) {
			if len(positional) != 1 {
				return "", "", nil, errArgs("NAME")
			}
			return http.MethodPost, "/v1/clusters", map[string]string{"name": positional[0], "slug": *slug, "region": *region}, nil
		}
	}, table: []string{"id", "slug", "status", "ca_pin"}, single: true},
	{path: "cluster list", help: "list clusters", flags: listFlags("/v1/clusters"), table: []string{"id", "slug", "name", "status", "region", "ca_pin"}},
	{path: "cluster compare", help: "every cluster side by side: members, health, roles, agent versions, capacity and load from heartbeats, partition state, snapshot lag", flags: noFlags(get("/v1/cluster-comparison")),
		table: []string{"slug", "status", "partition_state", "members", "health", "roles", "agent_versions", "cpus", "snapshots_lagging"}},
	{path: "node disable-seed", args: "CLUSTER NODE_ID", help: "disable a seed node's membership before the cluster stands on its own (--reason; step-up)", flags: func(fs *flag.FlagSet) builder {
		reason := fs.String("reason", "", "why the guard is overridden (audited)")
		return func() (string, string, any, error) {
			if len(positional) != 2 {
				return "", "", nil, errArgs("CLUSTER NODE_ID")
			}
			return http.MethodPost, "/v1/clusters/" + url.PathEscape(positional[0]) + "/nodes/" + url.PathEscape(positional[1]) + "/disable-seed", map[string]any{"reason": *reason}, nil
		}
	}, table: []string{"cluster_id", "node_id", "membership_status"}, single: true},
	{path: "cluster show", args: "CLUSTER", help: "show a cluster", flags: withArgs(http.MethodGet, "/v1/clusters/{cluster}", "cluster"), table: []string{"id", "slug", "name", "status", "region", "ca_pin"}, single: true},
	{path: "cluster disable", args: "CLUSTER", help: "disable a cluster (fenced)", flags: withArgs(http.MethodPost, "/v1/clusters/{cluster}/disable", "cluster"), table: []string{"id", "slug", "status"}, single: true},
	{path: "cluster enable", args: "CLUSTER", help: "enable a cluster (fenced)", flags: withArgs(http.MethodPost, "/v1/clusters/{cluster}/enable", "cluster"), table: []string{"id", "slug", "status"}, single: true},
	{path: "cluster ca status", args: "CLUSTER", help: "the cluster CA roots (current, rotated, retired), which one publishes, and how many nodes hold a certificate of each",
		flags: withArgs(http.MethodGet, "/v1/clusters/{cluster}/ca", "cluster")},
	{path: "cluster ca rotate", args: "CLUSTER", help: "create a new cluster CA root; both roots are trusted until retire (platform owner; step-up; fenced)",
		flags: withArgs(http.MethodPost, "/v1/clusters/{cluster}/ca/rotate", "cluster")},
	{path: "cluster ca retire", args: "CLUSTER", help: "retire the old CA root once every node renewed from the new one (--force to lock out the rest; platform owner; step-up; fenced)", flags: func(fs *flag.FlagSet) builder {
		force := fs.Bool("force", false, "retire even though active nodes still hold old-root certificates (they are refused until re-enrolled)")
		return func() (string, string, any, error) {
			if len(positional) != 1 {
				return "", "", nil, errArgs("CLUSTER")
			}
			return http.MethodPost, "/v1/clusters/" + url.PathEscape(positional[0]) + "/ca/retire", map[string]bool{"force": *force}, nil
		}
	}},
	{path: "cluster revocations", args: "CLUSTER", help: "the cluster's revocation list", flags: withArgs(http.MethodGet, "/v1/clusters/{cluster}/revocations", "cluster"), table: []string{"node_id", "revoked_at"}},

	{path: "token create", help: "create a join token (printed once)", flags: func(fs *flag.FlagSet) builder {
		cluster := fs.String("cluster", "", "cluster id or slug (required)")
		ttl := fs.Duration("ttl", 0, "lifetime (default 15m, at most 24h)")
		uses := fs.Int("max-uses", 1, "how many enrollments it allows")
		desc := fs.String("description", "", "what it is for")
		roles := fs.String("allowed-roles", "", "comma-separated roles a request may ask for (required with --auto-approve)")
		auto := fs.Bool("auto-approve", false, "platform-managed bootstrap token: approve requests without review")
		return func() (string, string, any, error) {
			body := map[string]any{"cluster": *cluster, "ttl_seconds": int64(ttl.Seconds()), "max_uses": *uses, "description": *desc, "auto_approve": *auto}
			if *roles != "" {
				body["allowed_roles"] = strings.Split(*roles, ",")
			}
			return http.MethodPost, "/v1/join-tokens", body, nil
		}
	}, table: []string{"id", "expires_at", "max_uses", "token", "ca_pin"}, single: true},
	{path: "token list", help: "list join tokens (never their secrets)", flags: listFlags("/v1/join-tokens", "cluster"), table: []string{"id", "cluster_id", "expires_at", "used_count", "max_uses", "revoked_at", "description"}},
	{path: "token show", args: "ID", help: "show a join token", flags: withArgs(http.MethodGet, "/v1/join-tokens/{id}", "id"), table: []string{"id", "cluster_id", "expires_at", "used_count", "max_uses", "revoked_at"}, single: true},
	{path: "token revoke", args: "ID", help: "revoke a join token (fenced)", flags: withArgs(http.MethodPost, "/v1/join-tokens/{id}/revoke", "id"), table: []string{"id", "revoked_at"}, single: true},

	{path: "join-request list", help: "list join requests", flags: listFlags("/v1/join-requests", "cluster", "status"), table: []string{"id", "node_name", "status", "source_addr", "created_at", "requested_roles"}},
	{path: "join-request show", args: "ID", help: "show a join request with facts and capability check", flags: withArgs(http.MethodGet, "/v1/join-requests/{id}", "id")},
	{path: "join-request approve", args: "ID", help: "approve a join request (fenced, high risk)", flags: withArgs(http.MethodPost, "/v1/join-requests/{id}/approve", "id"), table: []string{"node_id", "cluster_id", "certificate_serial", "certificate_not_after"}, single: true},
	{path: "join-request reject", args: "ID", help: "reject a join request", flags: func(fs *flag.FlagSet) builder {
		reason := fs.String("reason", "", "why (required)")
		return func() (string, string, any, error) {
			id, err := arg(0, "ID")
			if err != nil {
				return "", "", nil, err
			}
			return http.MethodPost, "/v1/join-requests/" + id + "/reject", map[string]string{"reason": *reason}, nil
		}
	}, table: []string{"id", "status", "rejection_reason"}, single: true},

	{path: "node list", help: "list physical nodes (or a cluster's members with --cluster)", flags: listFlags("/v1/nodes", "cluster"), table: []string{"id", "name", "enrollment_status", "memberships"}},
	{path: "node show", args: "NODE", help: "show a node", flags: withArgs(http.MethodGet, "/v1/nodes/{id}", "id")},
	{path: "node revoke", args: "CLUSTER NODE", help: "revoke a node identity in a cluster (fenced, high risk)", flags: func(fs *flag.FlagSet) builder {
		reason := fs.String("reason", "", "why")
		return func() (string, string, any, error) {
			if len(positional) != 2 {
				return "", "", nil, errArgs("CLUSTER NODE")
			}
			return http.MethodPost, "/v1/clusters/" + url.PathEscape(positional[0]) + "/nodes/" + url.PathEscape(positional[1]) + "/revoke", map[string]string{"reason": *reason}, nil
		}
	}, table: []string{"cluster_id", "node_id", "membership_status"}, single: true},
	{path: "node disable", args: "CLUSTER NODE", help: "disable a node's membership in a cluster (fenced)", flags: withArgs(http.MethodPost, "/v1/clusters/{cluster}/nodes/{node}/disable", "cluster", "node"), table: []string{"cluster_id", "node_id", "membership_status"}, single: true},
	{path: "node enable", args: "CLUSTER NODE", help: "re-enable a disabled membership (fenced)", flags: withArgs(http.MethodPost, "/v1/clusters/{cluster}/nodes/{node}/enable", "cluster", "node"), table: []string{"cluster_id", "node_id", "membership_status"}, single: true},

	{path: "audit list", help: "list audit events, newest first (--since 1h or a time, --oldest-first, --limit N)", flags: auditListFlags, table: []string{"id", "seq", "at", "actor", "action", "target_kind", "target_id", "outcome"}},

	// Node management and snapshots.
	{path: "org create", args: "NAME", help: "create an organization (fenced)", flags: func(fs *flag.FlagSet) builder {
		slug := fs.String("slug", "", "URL-safe short name (default from NAME)")
		return func() (string, string, any, error) {
			if len(positional) != 1 {
				return "", "", nil, errArgs("NAME")
			}
			return http.MethodPost, "/v1/organizations", map[string]string{"name": positional[0], "slug": *slug}, nil
		}
	}, table: []string{"id", "slug", "name", "status"}, single: true},
	{path: "org list", help: "list organizations", flags: listFlags("/v1/organizations"), table: []string{"id", "slug", "name", "status"}},
	{path: "role assign", args: "CLUSTER NODE ROLE", help: "assign a cluster-scoped role to a node (fenced; refused when capabilities are missing)", flags: func(fs *flag.FlagSet) builder {
		org := fs.String("organization", "", "restrict the role to one organization (id or slug)")
		policy := fs.String("policy", "", "policy document (JSON object)")
		return func() (string, string, any, error) {
			if len(positional) != 3 {
				return "", "", nil, errArgs("CLUSTER NODE ROLE")
			}
			body := map[string]any{"role": positional[2], "organization": *org}
			if *policy != "" {
				if !json.Valid([]byte(*policy)) {
					return "", "", nil, errArgs("--policy must be JSON")
				}
				body["policy"] = json.RawMessage(*policy)
			}
			return http.MethodPost, "/v1/clusters/" + url.PathEscape(positional[0]) + "/nodes/" + url.PathEscape(positional[1]) + "/roles", body, nil
		}
	}, table: []string{"id", "node_id", "role", "organization_id", "status", "snapshot_version"}, single: true},
	{path: "role list", args: "CLUSTER", help: "list role assignments (--node to filter)", flags: func(fs *flag.FlagSet) builder {
		b := listFlags("/X", "node")(fs)
		return func() (string, string, any, error) {
			c, err := arg(0, "CLUSTER")
			if err != nil {
				return "", "", nil, err
			}
			m, p, body, err := b()
			return m, strings.Replace(p, "/X", "/v1/clusters/"+c+"/roles", 1), body, err
		}
	}, table: []string{"id", "node_id", "role", "organization_id", "status", "assigned_by"}},
	{path: "role disable", args: "CLUSTER ASSIGNMENT", help: "disable a role assignment (fenced)", flags: withArgs(http.MethodPost, "/v1/clusters/{cluster}/roles/{id}/disable", "cluster", "id"), table: []string{"id", "role", "status", "snapshot_version"}, single: true},
	{path: "role enable", args: "CLUSTER ASSIGNMENT", help: "re-enable a role assignment (fenced)", flags: withArgs(http.MethodPost, "/v1/clusters/{cluster}/roles/{id}/enable", "cluster", "id"), table: []string{"id", "role", "status", "snapshot_version"}, single: true},
	{path: "role remove", args: "CLUSTER ASSIGNMENT", help: "remove a role assignment (fenced)", flags: withArgs(http.MethodDelete, "/v1/clusters/{cluster}/roles/{id}", "cluster", "id"), table: []string{"id", "role", "snapshot_version"}, single: true},
	{path: "service set", args: "CLUSTER NODE TYPE", help: "enable (--enable) or disable a desired service on a node (fenced; remote-access adapters via --service-config '{\"adapters\":[\"rdp\"]}')", flags: func(fs *flag.FlagSet) builder {
		enable := fs.Bool("enable", false, "enable the service (default: disable)")
		instance := fs.String("instance", "", "instance id (default \"default\")")
		org := fs.String("organization", "", "organization (id or slug)")
		config := fs.String("service-config", "", "service config (JSON object; credentials only as *_ref)")
		return func() (string, string, any, error) {
			if len(positional) != 3 {
				return "", "", nil, errArgs("CLUSTER NODE TYPE")
			}
			body := map[string]any{"enabled": *enable, "instance": *instance, "organization": *org}
			if *config != "" {
				if !json.Valid([]byte(*config)) {
					return "", "", nil, errArgs("--config must be JSON")
				}
				body["config"] = json.RawMessage(*config)
			}
			return http.MethodPut, "/v1/clusters/" + url.PathEscape(positional[0]) + "/nodes/" + url.PathEscape(positional[1]) + "/services/" + url.PathEscape(positional[2]), body, nil
		}
	}, table: []string{"id", "node_id", "service_type", "service_instance_id", "desired_state", "reported_state", "snapshot_version"}, single: true},
	{path: "service list", args: "CLUSTER", help: "list desired services (--node, --type to filter)", flags: func(fs *flag.FlagSet) builder {
		b := listFlags("/X", "node", "type")(fs)
		return func() (string, string, any, error) {
			c, err := arg(0, "CLUSTER")
			if err != nil {
				return "", "", nil, err
			}
			m, p, body, err := b()
			return m, strings.Replace(p, "/X", "/v1/clusters/"+c+"/services", 1), body, err
		}
	}, table: []string{"id", "node_id", "service_type", "service_instance_id", "desired_state", "reported_state", "health", "version", "restarts", "reason"}},
	{path: "service enable-all", args: "CLUSTER TYPE", help: "enable every instance of a service type in a cluster (fenced)", flags: withArgs(http.MethodPost, "/v1/clusters/{cluster}/services/{type}/enable", "cluster", "type")},
	{path: "service disable-all", args: "CLUSTER TYPE", help: "disable every instance of a service type in a cluster (fenced)", flags: withArgs(http.MethodPost, "/v1/clusters/{cluster}/services/{type}/disable", "cluster", "type")},
	{path: "group create", args: "CLUSTER NAME", help: "create a node group (--parent GROUP for a child group; fenced)", flags: func(fs *flag.FlagSet) builder {
		parent := fs.String("parent", "", "parent group id")
		return func() (string, string, any, error) {
			if len(positional) != 2 {
				return "", "", nil, errArgs("CLUSTER NAME")
			}
			return http.MethodPost, "/v1/clusters/" + url.PathEscape(positional[0]) + "/groups", map[string]string{"name": positional[1], "parent": *parent}, nil
		}
	}, table: []string{"id", "name", "parent_id"}, single: true},
	{path: "group list", args: "CLUSTER", help: "list a cluster's node groups", flags: withArgs(http.MethodGet, "/v1/clusters/{cluster}/groups", "cluster"), table: []string{"id", "name", "parent_id", "created_at"}},
	{path: "group rename", args: "CLUSTER GROUP NAME", help: "rename a node group (fenced)", flags: func(fs *flag.FlagSet) builder {
		return func() (string, string, any, error) {
			if len(positional) != 3 {
				return "", "", nil, errArgs("CLUSTER GROUP NAME")
			}
			return http.MethodPatch, "/v1/clusters/" + url.PathEscape(positional[0]) + "/groups/" + url.PathEscape(positional[1]), map[string]string{"name": positional[2]}, nil
		}
	}, table: []string{"id", "name", "parent_id"}, single: true},
	{path: "group move", args: "CLUSTER GROUP", help: "move a node group under --parent GROUP (root without; fenced)", flags: func(fs *flag.FlagSet) builder {
		parent := fs.String("parent", "", "new parent group id (empty: root)")
		return func() (string, string, any, error) {
			if len(positional) != 2 {
				return "", "", nil, errArgs("CLUSTER GROUP")
			}
			return http.MethodPost, "/v1/clusters/" + url.PathEscape(positional[0]) + "/groups/" + url.PathEscape(positional[1]) + "/move", map[string]string{"parent": *parent}, nil
		}
	}, table: []string{"id", "name", "parent_id"}, single: true},
	{path: "group delete", args: "CLUSTER GROUP", help: "delete an empty node group (fenced)", flags: withArgs(http.MethodDelete, "/v1/clusters/{cluster}/groups/{group}", "cluster", "group"), table: []string{"id", "name"}, single: true},
	{path: "node group", args: "CLUSTER NODE [GROUP]", help: "put a node's membership in a group (none without GROUP; fenced)", flags: func(fs *flag.FlagSet) builder {
		return func() (string, string, any, error) {
			if len(positional) < 2 || len(positional) > 3 {
				return "", "", nil, errArgs("CLUSTER NODE [GROUP]")
			}
			g := ""
			if len(positional) == 3 {
				g = positional[2]
			}
			return http.MethodPut, "/v1/clusters/" + url.PathEscape(positional[0]) + "/nodes/" + url.PathEscape(positional[1]) + "/group", map[string]string{"group": g}, nil
		}
	}, table: []string{"cluster_id", "node_id", "group_id", "membership_status"}, single: true},
	{path: "telemetry set", args: "NAME", help: "set a test telemetry flag (--scope cluster|node|organization; fenced)", flags: func(fs *flag.FlagSet) builder {
		scope := fs.String("scope", "cluster", "cluster, node or organization")
		cluster := fs.String("cluster", "", "cluster id or slug")
		node := fs.String("node", "", "node id (scope node)")
		org := fs.String("organization", "", "organization id or slug (scope organization)")
		enabled := fs.Bool("enabled", true, "flag value (--enabled=false to switch off)")
		return func() (string, string, any, error) {
			if len(positional) != 1 {
				return "", "", nil, errArgs("NAME")
			}
			return http.MethodPut, "/v1/telemetry-flags", map[string]any{"scope": *scope, "cluster": *cluster, "node": *node, "organization": *org, "name": positional[0], "enabled": *enabled}, nil
		}
	}, table: []string{"id", "scope", "cluster_id", "node_id", "organization_id", "name", "enabled"}, single: true},
	{path: "telemetry list", help: "list test telemetry flags (--cluster to filter)", flags: listFlags("/v1/telemetry-flags", "cluster"), table: []string{"id", "scope", "cluster_id", "node_id", "organization_id", "name", "enabled"}},
	{path: "telemetry delete", args: "ID", help: "delete a test telemetry flag (fenced)", flags: withArgs(http.MethodDelete, "/v1/telemetry-flags/{id}", "id"), table: []string{"id", "name"}, single: true},
	{path: "policy set", args: "CLUSTER", help: "replace a cluster's route/QoS/entry policies (JSON; fenced)", flags: func(fs *flag.FlagSet) builder {
		route := fs.String("route", "", "route policy (JSON object)")
		qos := fs.String("qos", "", "QoS policy (JSON object)")
		entry := fs.String("entry", "", "client entry policies (JSON list of {organization_id, policy})")
		return func() (string, string, any, error) {
			if len(positional) != 1 {
				return "", "", nil, errArgs("CLUSTER")
			}
			body := map[string]any{}
			for k, v := range map[string]string{"route_policy": *route, "qos_policy": *qos, "entry_policies": *entry} {
				if v == "" {
					continue
				}
				if !json.Valid([]byte(v)) {
					return "", "", nil, errArgs("policies must be JSON")
				}
				body[k] = json.RawMessage(v)
			}
			return http.MethodPut, "/v1/clusters/" + url.PathEscape(positional[0]) + "/policy", body, nil
		}
	}},
	{path: "policy show", args: "CLUSTER", help: "show a cluster's route/QoS/entry policies", flags: withArgs(http.MethodGet, "/v1/clusters/{cluster}/policy", "cluster")},
	{path: "snapshot status", args: "CLUSTER", help: "desired vs applied snapshot version per node (--lagging for nodes behind)", flags: func(fs *flag.FlagSet) builder {
		lagging := fs.Bool("lagging", false, "only nodes whose applied version is behind")
		b := listFlags("/X", "node")(fs)
		return func() (string, string, any, error) {
			c, err := arg(0, "CLUSTER")
			if err != nil {
				return "", "", nil, err
			}
			m, p, body, err := b()
			p = strings.Replace(p, "/X", "/v1/clusters/"+c+"/snapshots", 1)
			if *lagging {
				if strings.Contains(p, "?") {
					p += "&lagging=true"
				} else {
					p += "?lagging=true"
				}
			}
			return m, p, body, err
		}
	}, table: []string{"node_id", "node_name", "membership_status", "desired_version", "applied_version", "lagging", "expires_at"}},
	{path: "snapshot show", args: "CLUSTER NODE", help: "a node's snapshot versions and newest content", flags: withArgs(http.MethodGet, "/v1/clusters/{cluster}/nodes/{node}/snapshot", "cluster", "node")},
	{path: "snapshot rebuild", args: "CLUSTER", help: "rebuild changed snapshots now (--force: re-sign all; leader)", flags: func(fs *flag.FlagSet) builder {
		force := fs.Bool("force", false, "re-sign every node's snapshot")
		return func() (string, string, any, error) {
			c, err := arg(0, "CLUSTER")
			if err != nil {
				return "", "", nil, err
			}
			return http.MethodPost, "/v1/clusters/" + c + "/snapshots/rebuild", map[string]bool{"force": *force}, nil
		}
	}, table: []string{"cluster_id", "version", "checked", "nodes"}, single: true},
	{path: "node heartbeat", args: "NODE", help: "a node's latest heartbeat per cluster, with health derived now", flags: withArgs(http.MethodGet, "/v1/nodes/{id}/heartbeat", "id"),
		table: []string{"cluster_id", "health_state", "received_at", "age_seconds", "state", "applied_version", "agent_version", "authority_id"}},
	{path: "node heartbeats", args: "NODE", help: "a node's heartbeat history, newest first (--cluster, --limit, --offset)", flags: func(fs *flag.FlagSet) builder {
		list := listFlags("/v1/nodes/{id}/heartbeats", "cluster")(fs)
		return func() (string, string, any, error) {
			id, err := arg(0, "NODE")
			if err != nil {
				return "", "", nil, err
			}
			m, p, b, err := list()
			return m, strings.Replace(p, "{id}", id, 1), b, err
		}
	}, table: []string{"received_at", "cluster_id", "seq", "state", "applied_version", "agent_version", "authority_id"}},
	{path: "mesh links", help: "a cluster's mesh link inventory as the agents report it (--cluster, --node)", flags: meshList("links"),
		table: []string{"node_id", "peer_node_id", "state", "set", "rtt_ms", "loss", "last_handshake_at", "reported_at"}},
	{path: "mesh pings", help: "each member's last mesh ping as its latest heartbeat reports it: path incl. relays, RTT (--cluster, --node)", flags: meshList("pings"),
		table: []string{"node_id", "destination", "path", "rtt_ms", "at", "received_at"}},
	{path: "authority epochs", help: "leadership epochs recorded by the fence: leader, start, end, duration (newest first)", flags: listFlags("/v1/authority/epochs"),
		table: []string{"epoch", "leader_id", "started_at", "ended_at", "duration_seconds", "current"}},
	{path: "mesh routes", help: "a cluster's reported route health (--cluster, --node)", flags: meshList("routes"),
		table: []string{"node_id", "destination", "next_hop", "cost", "hops", "reported_at"}},
	{path: "partition show", args: "CLUSTER", help: "a cluster's partition state (agreed and recorded) and recent owner actions", flags: withArgs(http.MethodGet, "/v1/clusters/{cluster}/partition", "cluster"),
		table: []string{"cluster_id", "state", "recorded_state", "reason", "set_by", "raft_index", "refuses"}, single: true},
	partitionCmd("split", "declare the cluster split (normal → degraded): admissions stop until promote or merge"),
	partitionCmd("promote", "accept the reachable side as the cluster (degraded → promoted): admissions resume"),
	partitionCmd("merge", "end a split (degraded|promoted → normal): every node takes the current config"),
	partitionCmd("fence", "freeze the cluster (→ fenced): every change refused except revocations and renewals"),
	partitionCmd("recover", "unfreeze a fenced cluster (fenced → normal)"),
	{path: "route-intent create", args: "CLUSTER NAME", help: "add a route intent (--source, --destination: * or node|group|region|role|organization:VALUE; --action allow|deny|prefer-relay; fenced)", flags: func(fs *flag.FlagSet) builder {
		src := fs.String("source", "*", "source selector")
		dst := fs.String("destination", "*", "destination selector")
		action := fs.String("action", "allow", "allow, deny or prefer-relay")
		prio := fs.Int("priority", 100, "priority (0-10000, lower applies first)")
		return func() (string, string, any, error) {
			if len(positional) != 2 {
				return "", "", nil, errArgs("CLUSTER NAME")
			}
			body := map[string]any{"name": positional[1], "source": *src, "destination": *dst, "action": *action, "priority": *prio}
			return http.MethodPost, "/v1/clusters/" + url.PathEscape(positional[0]) + "/route-intents", body, nil
		}
	}, table: []string{"id", "name", "source", "destination", "action", "priority"}, single: true},
	{path: "route-intent list", args: "CLUSTER", help: "a cluster's route intents in priority order", flags: withArgs(http.MethodGet, "/v1/clusters/{cluster}/route-intents?limit=500", "cluster"),
		table: []string{"id", "name", "source", "destination", "action", "priority", "created_by"}},
	{path: "route-intent delete", args: "CLUSTER ID", help: "delete a route intent (fenced)", flags: withArgs(http.MethodDelete, "/v1/clusters/{cluster}/route-intents/{id}", "cluster", "id"),
		table: []string{"id", "name"}, single: true},
	{path: "qos create", args: "CLUSTER NAME", help: "add a QoS policy (--class control|interactive|streaming|bulk|best-effort; fenced)", flags: func(fs *flag.FlagSet) builder {
		class := fs.String("class", "best-effort", "traffic class")
		prio := fs.Int("priority", 100, "priority (0-10000, lower applies first)")
		bw := fs.Int64("max-bandwidth-kbps", 0, "bandwidth cap in kbit/s (0: none)")
		lat := fs.Int("latency-target-ms", 0, "latency target in ms (0: none)")
		return func() (string, string, any, error) {
			if len(positional) != 2 {
				return "", "", nil, errArgs("CLUSTER NAME")
			}
			body := map[string]any{"name": positional[1], "traffic_class": *class, "priority": *prio, "max_bandwidth_kbps": *bw, "latency_target_ms": *lat}
			return http.MethodPost, "/v1/clusters/" + url.PathEscape(positional[0]) + "/qos-policies", body, nil
		}
	}, table: []string{"id", "name", "traffic_class", "priority", "max_bandwidth_kbps", "latency_target_ms"}, single: true},
	{path: "qos list", args: "CLUSTER", help: "a cluster's QoS policies in priority order", flags: withArgs(http.MethodGet, "/v1/clusters/{cluster}/qos-policies?limit=500", "cluster"),
		table: []string{"id", "name", "traffic_class", "priority", "max_bandwidth_kbps", "latency_target_ms", "created_by"}},
	{path: "qos delete", args: "CLUSTER ID", help: "delete a QoS policy (fenced)", flags: withArgs(http.MethodDelete, "/v1/clusters/{cluster}/qos-policies/{id}", "cluster", "id"),
		table: []string{"id", "name"}, single: true},
}

// meshList reads /v1/clusters/{cluster}/links or /routes.
func meshList(what string) func(*flag.FlagSet) builder {
	return func(fs *flag.FlagSet) builder {
		cluster := fs.String("cluster", "", "cluster id or slug (required)")
		node := fs.String("node", "", "only this node's view")
		limit := fs.String("limit", "", "at most this many rows (default: every page)")
		return func() (string, string, any, error) {
			if *cluster == "" {
				return "", "", nil, errArgs("--cluster CLUSTER")
			}
			q := url.Values{}
			if *node != "" {
				q.Set("node", *node)
			}
			if *limit != "" {
				q.Set("limit", *limit)
			}
			p := "/v1/clusters/" + url.PathEscape(*cluster) + "/" + what
			if len(q) > 0 {
				p += "?" + q.Encode()
			}
			return http.MethodGet, p, nil, nil
		}
	}
}

type errArgs string

func (e errArgs) Error() string { return "expected arguments: " + string(e) }

// partitionCmd is `rapctl partition ACTION CLUSTER --reason R` (fenced,
// audited, step-up with a session).
func partitionCmd(action, help string) cmd {
	return cmd{path: "partition " + action, args: "CLUSTER", help: help + " (--reason, required; fenced)", flags: func(fs *flag.FlagSet) builder {
		reason := fs.String("reason", "", "why (shown to operators and in the audit log; required)")
		return func() (string, string, any, error) {
			if len(positional) != 1 {
				return "", "", nil, errArgs("CLUSTER")
			}
			if strings.TrimSpace(*reason) == "" {
				return "", "", nil, errArgs("--reason REASON")
			}
			return http.MethodPost, "/v1/clusters/" + url.PathEscape(positional[0]) + "/partition/" + action, map[string]string{"reason": *reason}, nil
		}
	}, table: []string{"cluster_id", "state", "recorded_state", "reason", "set_by", "raft_index", "refuses"}, single: true}
}
