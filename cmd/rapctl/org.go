package main

// `rapctl org …`: the organization API (httpapi/orgs.go). Platform commands
// (invite, endpoint publish/list/withdraw) take a platform session or owner
// token; every other command runs as an organization account (`rapctl login
// --user NAME@ORG`). High-risk commands need `rapctl org step-up ORG METHOD
// PATH` first.

import (
	"flag"
	"net/http"
	"net/url"
	"strings"
)

func orgPath(org, rest string) string { return "/v1/orgs/" + url.PathEscape(org) + rest }

// orgArgs builds a request for ORG plus further positional ids.
func orgArgs(method, rest string, names ...string) func(*flag.FlagSet) builder {
	return func(*flag.FlagSet) builder {
		return func() (string, string, any, error) {
			if len(positional) != 1+len(names) {
				return "", "", nil, errArgs(strings.ToUpper(strings.Join(append([]string{"org"}, names...), " ")))
			}
			p := rest
			for i, n := range names {
				p = strings.Replace(p, "{"+n+"}", url.PathEscape(positional[i+1]), 1)
			}
			return method, orgPath(positional[0], p), nil, nil
		}
	}
}

var (
	orgUserTable     = []string{"id", "name", "role", "disabled", "mfa_enrolled", "setup_pending"}
	orgEndpointTable = []string{"id", "name", "kind", "protocol", "region", "health"}
	orgResourceTable = []string{"id", "name", "protocol", "address", "port", "endpoint_id"}
	orgAccessTable   = []string{"id", "user_name", "resource_name", "endpoint_name", "status", "expires_at"}
	orgPolicyTable   = []string{"id", "name", "subjects", "resource_ids", "endpoint_ids", "window", "require_mfa"}
)

var orgCommands = []cmd{
	// Platform side.
	{path: "org invite", args: "ORG NAME", help: "invite an organization admin (--role org_admin|org_member; step-up); prints the one-time setup secret", flags: func(fs *flag.FlagSet) builder {
		role := fs.String("role", "org_admin", "org_admin or org_member")
		return func() (string, string, any, error) {
			if len(positional) != 2 {
				return "", "", nil, errArgs("ORG NAME")
			}
			return http.MethodPost, "/v1/organizations/" + url.PathEscape(positional[0]) + "/admins", map[string]any{"name": positional[1], "role": *role}, nil
		}
	}, table: []string{"user.id", "user.name", "user.role", "organization.slug", "setup_secret"}, single: true},
	{path: "org endpoint publish", args: "ORG NAME", help: "publish a logical endpoint backed by nodes (--kind entry|egress, --protocol, --region, --nodes CLUSTER:NODE,…; step-up)", flags: func(fs *flag.FlagSet) builder {
		kind := fs.String("kind", "egress", "entry or egress")
		proto := fs.String("protocol", "tcp", "tcp, udp, http, https, ssh, rdp or wireguard")
		region := fs.String("region", "", "region label the organization sees")
		nodes := fs.String("nodes", "", "comma-separated CLUSTER_ID:NODE_ID backing nodes (never shown to the organization)")
		return func() (string, string, any, error) {
			if len(positional) != 2 {
				return "", "", nil, errArgs("ORG NAME")
			}
			var ns []map[string]string
			for _, n := range splitList(*nodes) {
				c, id, ok := strings.Cut(n, ":")
				if !ok {
					return "", "", nil, errArgs("--nodes as CLUSTER_ID:NODE_ID,…")
				}
				ns = append(ns, map[string]string{"cluster_id": c, "node_id": id})
			}
			return http.MethodPost, "/v1/organizations/" + url.PathEscape(positional[0]) + "/endpoints",
				map[string]any{"name": positional[1], "kind": *kind, "protocol": *proto, "region": *region, "nodes": ns}, nil
		}
	}, table: []string{"id", "name", "kind", "protocol", "region", "health", "nodes"}, single: true},
	{path: "org endpoint list", args: "ORG", help: "an organization's endpoints with their backing nodes (platform view)",
		flags: withArgs(http.MethodGet, "/v1/organizations/{org}/endpoints", "org"), table: []string{"id", "name", "kind", "protocol", "region", "health", "nodes"}},
	{path: "org endpoint withdraw", args: "ORG ENDPOINT", help: "withdraw an endpoint no resource uses (step-up)",
		flags: withArgs(http.MethodDelete, "/v1/organizations/{org}/endpoints/{eid}", "org", "eid")},

	// Organization side.
	{path: "org overview", args: "ORG", help: "the organization, your account, endpoints with health and counts", flags: orgArgs(http.MethodGet, ""),
		table: []string{"organization.slug", "user.name", "user.role", "counts"}, single: true},
	{path: "org me", args: "ORG", help: "your organization account and session", flags: orgArgs(http.MethodGet, "/me"),
		table: []string{"organization.slug", "user.name", "user.role", "expires_at", "recovery_codes_left"}, single: true},
	{path: "org logout", args: "ORG", help: "end your organization session", flags: orgArgs(http.MethodPost, "/logout")},
	{path: "org step-up", args: "ORG METHOD PATH", help: "a fresh TOTP code for one high-risk organization request (--totp)", flags: func(fs *flag.FlagSet) builder {
		totp := fs.String("totp", "", "a fresh TOTP code (default: a prompt)")
		return func() (string, string, any, error) {
			if len(positional) != 3 {
				return "", "", nil, errArgs("ORG METHOD PATH")
			}
			code := *totp
			var err error
			if code == "" {
				if code, err = readLine("Authenticator code: "); err != nil {
					return "", "", nil, err
				}
			}
			return http.MethodPost, orgPath(positional[0], "/step-up"), map[string]any{"method": strings.ToUpper(positional[1]), "path": positional[2], "totp_code": code}, nil
		}
	}, table: []string{"action", "method", "path", "expires_at"}, single: true},
	{path: "org users", args: "ORG", help: "the organization's accounts", flags: orgArgs(http.MethodGet, "/users?limit=500"), table: orgUserTable},
	{path: "org user create", args: "ORG NAME", help: "invite an account (--role org_member|org_admin; admins, step-up); prints the one-time setup secret", flags: func(fs *flag.FlagSet) builder {
		role := fs.String("role", "org_member", "org_member or org_admin")
		return func() (string, string, any, error) {
			if len(positional) != 2 {
				return "", "", nil, errArgs("ORG NAME")
			}
			return http.MethodPost, orgPath(positional[0], "/users"), map[string]any{"name": positional[1], "role": *role}, nil
		}
	}, table: []string{"user.id", "user.name", "user.role", "setup_secret"}, single: true},
	{path: "org user show", args: "ORG USER_ID", help: "one account", flags: orgArgs(http.MethodGet, "/users/{uid}", "uid"), table: orgUserTable, single: true},
	{path: "org user disable", args: "ORG USER_ID", help: "disable an account and end its sessions (admins, step-up)", flags: orgArgs(http.MethodPost, "/users/{uid}/disable", "uid"), table: orgUserTable, single: true},
	{path: "org user enable", args: "ORG USER_ID", help: "re-enable an account (admins, step-up)", flags: orgArgs(http.MethodPost, "/users/{uid}/enable", "uid"), table: orgUserTable, single: true},
	{path: "org sessions", args: "ORG", help: "live sessions (admins: all accounts; members: their own)", flags: orgArgs(http.MethodGet, "/sessions?limit=500"),
		table: []string{"id", "user_name", "created_at", "last_seen_at", "expires_at", "current"}},
	{path: "org session revoke", args: "ORG SESSION_ID", help: "end a session (step-up)", flags: orgArgs(http.MethodPost, "/sessions/{sid}/revoke", "sid")},
	{path: "org access request", args: "ORG RESOURCE", help: "request access to a resource (id or name) through an endpoint (--endpoint, default the resource's; --duration, default 8h); decided by the organization's policies", flags: func(fs *flag.FlagSet) builder {
		ep := fs.String("endpoint", "", "endpoint id or name (default: the resource's egress endpoint)")
		dur := fs.String("duration", "", "how long (e.g. 2h; default 8h, at most 24h, cut at the end of the policy's window)")
		return func() (string, string, any, error) {
			if len(positional) != 2 {
				return "", "", nil, errArgs("ORG RESOURCE")
			}
			return http.MethodPost, orgPath(positional[0], "/access-sessions"), map[string]any{"resource": positional[1], "endpoint": *ep, "duration": *dur}, nil
		}
	}, table: orgAccessTable, single: true},
	{path: "org access list", args: "ORG", help: "access sessions (admins: all; members: their own)", flags: orgArgs(http.MethodGet, "/access-sessions?limit=500"), table: orgAccessTable},
	{path: "org access revoke", args: "ORG ACCESS_SESSION_ID", help: "end an access session at once (step-up)", flags: orgArgs(http.MethodPost, "/access-sessions/{aid}/revoke", "aid"),
		table: orgAccessTable, single: true},
	{path: "org endpoints", args: "ORG", help: "endpoints published to the organization, with health", flags: orgArgs(http.MethodGet, "/endpoints?limit=500"), table: orgEndpointTable},
	{path: "org endpoint show", args: "ORG ENDPOINT", help: "one endpoint (id or name)", flags: orgArgs(http.MethodGet, "/endpoints/{eid}", "eid"), table: orgEndpointTable, single: true},
	{path: "org resources", args: "ORG", help: "the organization's resources", flags: orgArgs(http.MethodGet, "/resources?limit=500"), table: orgResourceTable},
	{path: "org resource create", args: "ORG NAME", help: "create a resource (--protocol, --address, --port, --endpoint; admins, step-up)", flags: func(fs *flag.FlagSet) builder {
		proto := fs.String("protocol", "tcp", "tcp, udp, http, https, ssh or rdp")
		addr := fs.String("address", "", "target address inside the organization's network (IP or host name)")
		port := fs.Int("port", 0, "target port")
		ep := fs.String("endpoint", "", "the egress endpoint (id or name) that serves it")
		return func() (string, string, any, error) {
			if len(positional) != 2 {
				return "", "", nil, errArgs("ORG NAME")
			}
			return http.MethodPost, orgPath(positional[0], "/resources"), map[string]any{"name": positional[1], "protocol": *proto, "address": *addr, "port": *port, "endpoint": *ep}, nil
		}
	}, table: orgResourceTable, single: true},
	{path: "org resource show", args: "ORG RESOURCE_ID", help: "one resource", flags: orgArgs(http.MethodGet, "/resources/{rid}", "rid"), table: orgResourceTable, single: true},
	{path: "org resource delete", args: "ORG RESOURCE_ID", help: "delete a resource no policy uses (admins, step-up)", flags: orgArgs(http.MethodDelete, "/resources/{rid}", "rid")},
	{path: "org policies", args: "ORG", help: "the organization's access policies", flags: orgArgs(http.MethodGet, "/policies?limit=500"), table: orgPolicyTable},
	{path: "org policy create", args: "ORG NAME", help: "create a policy (--subjects user:NAME@ORG,group:G --resources IDS --endpoints IDS --window HH:MM-HH:MM --require-mfa; admins, step-up)", flags: func(fs *flag.FlagSet) builder {
		subjects := fs.String("subjects", "", "comma-separated user:<name> or group:<name>")
		resources := fs.String("resources", "", "comma-separated resource ids")
		endpoints := fs.String("endpoints", "", "comma-separated endpoint ids")
		window := fs.String("window", "", "UTC time window HH:MM-HH:MM (default: always)")
		mfa := fs.Bool("require-mfa", true, "require a second factor for access")
		return func() (string, string, any, error) {
			if len(positional) != 2 {
				return "", "", nil, errArgs("ORG NAME")
			}
			return http.MethodPost, orgPath(positional[0], "/policies"), map[string]any{"name": positional[1], "subjects": splitList(*subjects),
				"resources": splitList(*resources), "endpoints": splitList(*endpoints), "window": *window, "require_mfa": *mfa}, nil
		}
	}, table: orgPolicyTable, single: true},
	{path: "org policy show", args: "ORG POLICY_ID", help: "one policy", flags: orgArgs(http.MethodGet, "/policies/{pid}", "pid"), table: orgPolicyTable, single: true},
	{path: "org policy delete", args: "ORG POLICY_ID", help: "delete a policy (admins, step-up)", flags: orgArgs(http.MethodDelete, "/policies/{pid}", "pid")},
	{path: "org audit", args: "ORG", help: "the organization's own audit events, newest first", flags: orgArgs(http.MethodGet, "/audit?limit=200"),
		table: []string{"id", "at", "actor", "action", "target_kind", "target_id", "outcome"}},
	{path: "org recovery-codes", args: "ORG", help: "replace your recovery codes (--totp)", flags: func(fs *flag.FlagSet) builder {
		totp := fs.String("totp", "", "a TOTP code (default: a prompt)")
		return func() (string, string, any, error) {
			if len(positional) != 1 {
				return "", "", nil, errArgs("ORG")
			}
			code := *totp
			var err error
			if code == "" {
				if code, err = readLine("Authenticator code: "); err != nil {
					return "", "", nil, err
				}
			}
			return http.MethodPost, orgPath(positional[0], "/recovery-codes"), map[string]any{"totp_code": code}, nil
		}
	}},
	{path: "org devices", args: "ORG", help: "your trusted devices", flags: orgArgs(http.MethodGet, "/devices"),
		table: []string{"id", "label", "created_at", "last_used_at", "expires_at", "revoked"}},
	{path: "org device revoke", args: "ORG DEVICE_ID", help: "end trust in one of your devices", flags: orgArgs(http.MethodPost, "/devices/{did}/revoke", "did")},
	{path: "org audit verify", args: "ORG", help: "check the hash chain holding the organization's audit events", flags: orgArgs(http.MethodGet, "/audit/verify"),
		table: []string{"intact", "events", "broken_event_id", "reason"}, single: true},
}

func init() { commands = append(commands, orgCommands...) }
