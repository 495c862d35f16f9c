package main

import (
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
		limit := fs.String("limit", "", "page size (1-500)")
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
		table: []string{"node_id", "state", "leader_id", "epoch", "fence_epoch", "quorum", "commit_index"}, single: true},
	{path: "authority add", args: "ID RAFT_ADDR API_ADDR", help: "add an authority to the group (fenced)", flags: func(fs *flag.FlagSet) builder {
		return func() (string, string, any, error) {
			if len(positional) != 3 {
				return "", "", nil, errArgs("ID RAFT_ADDR API_ADDR")
			}
			return http.MethodPost, "/v1/authority/members", map[string]string{"id": positional[0], "raft_addr": positional[1], "api_addr": positional[2]}, nil
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
	{path: "cluster show", args: "CLUSTER", help: "show a cluster", flags: withArgs(http.MethodGet, "/v1/clusters/{cluster}", "cluster"), table: []string{"id", "slug", "name", "status", "region", "ca_pin"}, single: true},
	{path: "cluster disable", args: "CLUSTER", help: "disable a cluster (fenced)", flags: withArgs(http.MethodPost, "/v1/clusters/{cluster}/disable", "cluster"), table: []string{"id", "slug", "status"}, single: true},
	{path: "cluster enable", args: "CLUSTER", help: "enable a cluster (fenced)", flags: withArgs(http.MethodPost, "/v1/clusters/{cluster}/enable", "cluster"), table: []string{"id", "slug", "status"}, single: true},
	{path: "cluster revocations", args: "CLUSTER", help: "the cluster's revocation list", flags: withArgs(http.MethodGet, "/v1/clusters/{cluster}/revocations", "cluster"), table: []string{"node_id", "revoked_at"}},

	{path: "token create", help: "create a join token (printed once)", flags: func(fs *flag.FlagSet) builder {
		cluster := fs.String("cluster", "", "cluster id or slug (required)")
		ttl := fs.Duration("ttl", 0, "lifetime (default 15m, at most 24h)")
		uses := fs.Int("max-uses", 1, "how many enrollments it allows")
		desc := fs.String("description", "", "what it is for")
		roles := fs.String("allowed-roles", "", "comma-separated roles a request may ask for")
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

	{path: "audit list", help: "list audit events", flags: listFlags("/v1/audit", "cluster", "action", "actor", "target_kind", "target_id", "after_seq"), table: []string{"seq", "at", "actor", "action", "target_kind", "target_id", "outcome"}},
}

type errArgs string

func (e errArgs) Error() string { return "expected arguments: " + string(e) }
