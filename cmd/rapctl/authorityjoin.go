package main

// Authority join tokens: how a new authority joins once owners have MFA.
//
//	rapctl authority join-token create --ttl 15m   (owner; one step-up) → the token, once
//	rap-authority run --join ADDR --join-token TOKEN --ca-pin PIN …

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// authorityJoinCommands are appended to commands (commands.go).
var authorityJoinCommands = []cmd{
	{path: "authority join-token create", help: "create a single-use authority join token for `rap-authority run --join` (owner, step-up; printed once)", flags: func(fs *flag.FlagSet) builder {
		ttl := fs.Duration("ttl", 15*time.Minute, "lifetime (1m to 1h)")
		desc := fs.String("description", "", "what it is for")
		return func() (string, string, any, error) {
			if len(positional) != 0 {
				return "", "", nil, errArgs("no positional arguments")
			}
			return http.MethodPost, "/v1/authority/join-tokens", map[string]any{"ttl_seconds": int64(ttl.Seconds()), "description": *desc}, nil
		}
	}, table: []string{"id", "expires_at", "token"}, single: true},
	{path: "authority join-token list", help: "list authority join tokens and their state (never their secrets)", flags: listFlags("/v1/authority/join-tokens"),
		table: []string{"id", "state", "member_id", "created_by", "expires_at", "description"}},
	{path: "authority join-token revoke", args: "ID", help: "revoke an authority join token (fenced)", flags: withArgs(http.MethodPost, "/v1/authority/join-tokens/{id}/revoke", "id"),
		table: []string{"id", "state", "revoked_at"}, single: true},
}

func init() {
	commands = append(commands, authorityJoinCommands...)
	afterRender["authority join-token create"] = func(w io.Writer, out any) {
		m, _ := out.(map[string]any)
		if str(m["token"]) == "" {
			return
		}
		fmt.Fprintf(w, "\njoin a new authority with it (its first start; add --config or its other flags):\n  rap-authority run --join %s --join-token %s --ca-pin %s\n",
			strings.Split(g.servers, ",")[0], str(m["token"]), g.pin)
	}
	helpNotes["authority join-token create"] = "The table is followed by a ready-to-run `rap-authority run --join` line (-o json/yaml print the API's answer only). The token joins one authority, dies with the join and expires after --ttl."
}
