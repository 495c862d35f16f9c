package main

import (
	"flag"
	"net/http"
	"net/url"
	"strings"
)

// channelCommands write and read release channel assignments: which channel
// (stable, current, candidate) a cluster, a node group or a node follows
// per product (fenced, audited, step-up with a session).
var channelCommands = []cmd{
	{path: "release channel list", args: "CLUSTER", help: "a cluster's release channel assignments (cluster, group, node)",
		flags: withArgs(http.MethodGet, "/v1/clusters/{cluster}/release-channels", "cluster"),
		table: []string{"scope_kind", "scope_id", "product", "channel", "set_by", "updated_at"}},
	{path: "release channel set", args: "CLUSTER PRODUCT CHANNEL", help: "make the cluster (default), a group (--group ID) or a node (--node ID) follow CHANNEL for PRODUCT (--reason R)",
		flags: channelFlags(true), table: []string{"scope_kind", "scope_id", "product", "channel", "set_by", "updated_at"}, single: true},
	{path: "release channel unset", args: "CLUSTER PRODUCT", help: "remove the channel assignment of the cluster (default), a group (--group ID) or a node (--node ID) (--reason R)",
		flags: channelFlags(false), table: []string{"scope_kind", "scope_id", "product", "channel"}, single: true},
}

func init() {
	commands = append(commands, channelCommands...)
	examples["release channel set"] = "  rapctl release channel set east rap-node-agent stable --reason \"default ring\"\n" +
		"  rapctl release channel set east rap-node-agent candidate --node 3f2a9c1e-… --reason canary"
	examples["release channel unset"] = "  rapctl release channel unset east rap-node-agent --node 3f2a9c1e-…"
}

func channelFlags(set bool) func(fs *flag.FlagSet) builder {
	return func(fs *flag.FlagSet) builder {
		group := fs.String("group", "", "the node group's id (scope: group)")
		node := fs.String("node", "", "the node's id (scope: node)")
		reason := fs.String("reason", "", "why (audited)")
		return func() (string, string, any, error) {
			want, usage := 2, "CLUSTER PRODUCT [--group ID | --node ID] [--reason R]"
			if set {
				want, usage = 3, "CLUSTER PRODUCT CHANNEL [--group ID | --node ID] [--reason R]"
			}
			if len(positional) != want || (*group != "" && *node != "") {
				return "", "", nil, errArgs(usage)
			}
			body := map[string]string{"scope_kind": "cluster", "product": positional[1], "reason": strings.TrimSpace(*reason)}
			switch {
			case *group != "":
				body["scope_kind"], body["scope_id"] = "group", *group
			case *node != "":
				body["scope_kind"], body["scope_id"] = "node", *node
			}
			method := http.MethodDelete
			if set {
				method, body["channel"] = http.MethodPut, positional[2]
			}
			return method, "/v1/clusters/" + url.PathEscape(positional[0]) + "/release-channels", body, nil
		}
	}
}
