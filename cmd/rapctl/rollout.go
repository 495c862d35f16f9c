package main

import (
	"flag"
	"net/http"
	"net/url"
	"strings"
)

// rolloutCommands drive staged rollouts (fenced, audited, step-up with a
// session).
var rolloutCommands = []cmd{
	{path: "rollout start", args: "CLUSTER PRODUCT VERSION", help: "roll a release out: canary, then waves (--canary N, --canary-percent P, --wave-percent P, --soak D, --failure-threshold N, --deadline D, --reason R)", flags: func(fs *flag.FlagSet) builder {
		canary := fs.Int("canary", 1, "canary nodes (at least)")
		canaryPct := fs.Int("canary-percent", 0, "canary as a percentage of the nodes (the larger wins)")
		wave := fs.Int("wave-percent", 25, "nodes per later wave, percent")
		soak := fs.Duration("soak", 0, "how long a successful wave runs before the next (default 5m)")
		thr := fs.Int("failure-threshold", 1, "failed nodes in a wave that halt the rollout")
		deadline := fs.Duration("deadline", 0, "how long a node may take to run the new version healthily (default 2m)")
		reason := fs.String("reason", "", "why (audited)")
		return func() (string, string, any, error) {
			if len(positional) != 3 {
				return "", "", nil, errArgs("CLUSTER PRODUCT VERSION")
			}
			body := map[string]any{"product": positional[1], "version": positional[2], "canary_count": *canary, "canary_percent": *canaryPct,
				"wave_percent": *wave, "failure_threshold": *thr, "reason": *reason}
			set := map[string]bool{}
			fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
			if set["soak"] {
				body["soak_seconds"] = int(soak.Seconds())
			}
			if set["deadline"] {
				body["update_deadline_seconds"] = int(deadline.Seconds())
			}
			return http.MethodPost, "/v1/clusters/" + url.PathEscape(positional[0]) + "/rollouts", body, nil
		}
	}, table: []string{"id", "product", "target_version", "rollback_version", "state", "current_wave", "next"}, single: true},
	{path: "rollout list", args: "CLUSTER", help: "a cluster's rollouts, newest first", flags: withArgs(http.MethodGet, "/v1/clusters/{cluster}/rollouts", "cluster"),
		table: []string{"id", "product", "target_version", "state", "current_wave", "state_reason", "created_at"}},
	{path: "rollout status", args: "CLUSTER ROLLOUT", help: "a rollout's waves, each node's update state and the next decision (-o json for everything)",
		flags: withArgs(http.MethodGet, "/v1/clusters/{cluster}/rollouts/{id}", "cluster", "id"),
		table: []string{"id", "product", "target_version", "rollback_version", "state", "current_wave", "decision", "next"}, single: true},
	rolloutAction("pause", "pause a running rollout (nodes already in a wave keep their target)"),
	rolloutAction("resume", "resume a paused or halted rollout; resuming a pin ends it"),
	rolloutAction("rollback", "send every node back to the last-known-good release (downgrade allowed)"),
	{path: "rollout pin", args: "CLUSTER PRODUCT VERSION", help: "emergency pin: every node runs VERSION now, downgrade allowed (--reason, required)", flags: func(fs *flag.FlagSet) builder {
		reason := fs.String("reason", "", "why (required; audited)")
		return func() (string, string, any, error) {
			if len(positional) != 3 || strings.TrimSpace(*reason) == "" {
				return "", "", nil, errArgs("CLUSTER PRODUCT VERSION --reason R")
			}
			return http.MethodPost, "/v1/clusters/" + url.PathEscape(positional[0]) + "/rollouts/pin",
				map[string]string{"product": positional[1], "version": positional[2], "reason": *reason}, nil
		}
	}, table: []string{"id", "product", "target_version", "state", "state_reason"}, single: true},
	{path: "rollout blocklist", args: "PRODUCT@VERSION", help: "blocklist a release everywhere: refused by agents, not served, its rollouts halt (--reason, required)", flags: func(fs *flag.FlagSet) builder {
		reason := fs.String("reason", "", "why (required; audited)")
		return func() (string, string, any, error) {
			if len(positional) != 1 || strings.TrimSpace(*reason) == "" {
				return "", "", nil, errArgs("PRODUCT@VERSION --reason R")
			}
			return http.MethodPost, "/v1/releases/" + url.PathEscape(positional[0]) + "/blocklist", map[string]string{"reason": *reason}, nil
		}
	}, table: []string{"id", "product", "version", "status", "status_reason"}, single: true},
	{path: "node updates", args: "CLUSTER NODE", help: "a node's update state per product (current/target version, last failure)",
		flags: withArgs(http.MethodGet, "/v1/clusters/{cluster}/nodes/{id}/updates", "cluster", "id")},
}

func init() { commands = append(commands, rolloutCommands...) }

func rolloutAction(action, help string) cmd {
	return cmd{path: "rollout " + action, args: "CLUSTER ROLLOUT", help: help + " (--reason, required)", flags: func(fs *flag.FlagSet) builder {
		reason := fs.String("reason", "", "why (required; audited)")
		return func() (string, string, any, error) {
			if len(positional) != 2 || strings.TrimSpace(*reason) == "" {
				return "", "", nil, errArgs("CLUSTER ROLLOUT --reason R")
			}
			return http.MethodPost, "/v1/clusters/" + url.PathEscape(positional[0]) + "/rollouts/" + url.PathEscape(positional[1]) + "/" + action,
				map[string]string{"reason": *reason}, nil
		}
	}, table: []string{"id", "product", "target_version", "state", "current_wave", "state_reason"}, single: true}
}
