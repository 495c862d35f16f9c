package main

// Commands outside the API table (offline release ceremony, release
// publish, mesh ping) parse their own flags; global flags may still appear
// anywhere on their command line. Examples for every command and the
// generated CLI reference (docs/cli.md) live here too.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// passthrough is a command that parses its own flags.
type passthrough struct {
	path, args, help, example string
	// formats are the -o values the command prints (nil: table only).
	formats []string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func (p passthrough) build(stdout, stderr io.Writer) *cobra.Command {
	words := strings.Fields(p.path)
	return &cobra.Command{
		Use:                strings.TrimSpace(words[len(words)-1] + " " + p.args),
		Short:              p.help,
		Long:               strings.ToUpper(p.help[:1]) + p.help[1:] + ".",
		Example:            p.example,
		DisableFlagParsing: true,
		RunE: func(c *cobra.Command, args []string) error {
			rest, help, err := takeGlobals(args)
			if err != nil {
				return err
			}
			if help {
				return c.Help()
			}
			if !validOutput(output) {
				return usagef("invalid -o %q: use one of %s", output, strings.Join(outputFormats, ", "))
			}
			if formats := append([]string{"table"}, p.formats...); !slices.Contains(formats, output) {
				return usagef("%s prints -o %s only", c.CommandPath(), strings.Join(formats, "|"))
			}
			err = p.run(c.Context(), rest, stdout, stderr)
			if err != nil && !errors.Is(err, flag.ErrHelp) && (strings.HasPrefix(err.Error(), "flag provided but not defined") || strings.HasPrefix(err.Error(), "usage:") || strings.HasPrefix(err.Error(), "invalid value")) {
				return usageError{err}
			}
			return err
		},
	}
}

// takeGlobals removes the global flags from args (into g and output) and
// reports a -h/--help.
func takeGlobals(args []string) (rest []string, help bool, err error) {
	targets := map[string]*string{"config": &configFlag, "server": &g.servers, "token": &g.token, "ca-pin": &g.pin, "idempotency-key": &g.idem, "output": &output, "o": &output,
		"totp": &g.totp}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return append(rest, args[i:]...), help, nil
		}
		if a == "-h" || a == "--help" {
			help = true
			continue
		}
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		dst, ok := targets[name]
		if !strings.HasPrefix(a, "-") || !ok || (name == "o" && !strings.HasPrefix(a, "-o")) {
			rest = append(rest, a)
			continue
		}
		if !hasVal {
			if i+1 >= len(args) {
				return nil, false, usagef("flag needs an argument: %s", a)
			}
			i++
			val = args[i]
		}
		*dst = val
	}
	return rest, help, nil
}

func passthroughCommands() []passthrough {
	// offlineReleaseHelp lines: "  release NAME SYNOPSIS   DESCRIPTION".
	synopsis, help := map[string]string{}, map[string]string{}
	for _, line := range strings.Split(offlineReleaseHelp, "\n") {
		line = strings.TrimPrefix(strings.TrimSpace(line), "release ")
		for name := range offlineReleaseCommands {
			if line == name || strings.HasPrefix(line, name+" ") {
				rest := strings.TrimSpace(strings.TrimPrefix(line, name))
				syn, desc := rest, "offline"
				if i := strings.Index(rest, "   "); i >= 0 {
					syn, desc = strings.TrimSpace(rest[:i]), strings.TrimSpace(rest[i:])
				}
				synopsis[name], help[name] = syn, desc
			}
		}
	}
	var out []passthrough
	names := make([]string, 0, len(offlineReleaseCommands))
	for n := range offlineReleaseCommands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		f := offlineReleaseCommands[n]
		out = append(out, passthrough{path: "release " + n, args: synopsis[n], help: help[n],
			example: releaseExamples[n],
			run:     func(_ context.Context, args []string, stdout, _ io.Writer) error { return f(args, stdout) }})
	}
	out = append(out, passthrough{path: "release publish", args: "MANIFEST ARTIFACT…",
		help:    "publish a signed manifest and upload its artifacts (resumable; progress on stderr; --chunk-size)",
		example: "  rapctl release publish agent-1.4.0.json rap-node-agent-linux-amd64 rap-node-agent-linux-arm64",
		run: func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
			c, err := newClient(30 * time.Second)
			if err != nil {
				return err
			}
			defer c.Close()
			return releasePublish(ctx, c, args, stdout, stderr)
		}})
	out = append(out, passthrough{path: "ca export", help: "print the platform CA certificate (PEM on stdout, pin on stderr), verified against --ca-pin",
		example: "  rapctl ca export > rap-platform-ca.pem\n  rapctl ca export -o json",
		formats: []string{"json"},
		run: func(_ context.Context, args []string, stdout, stderr io.Writer) error {
			if len(args) != 0 {
				return usagef("rapctl ca export takes no arguments (got %q)", args)
			}
			return caExport(g.servers, g.pin, stdout, stderr)
		}})
	out = append(out, passthrough{path: "mesh ping", args: "NODE",
		help:    "on a node's host: echo probes to NODE through the local agent, path and RTT (--state, --status-socket, --cluster, --timeout)",
		example: "  rapctl mesh ping 3f2a9c1e --state /var/lib/rap-node-agent/state.db\n  rapctl mesh ping 3f2a9c1e -o json",
		formats: []string{"json"},
		run:     func(_ context.Context, args []string, _, _ io.Writer) error { return meshPingCmd(args) }})
	out = append(out, passthrough{path: "audit export", args: "",
		help:    "chained audit events as JSON lines in chain order, every column (--follow, --file F appends and resumes, --after-seq N, --interval, --page)",
		example: "  rapctl audit export > audit.jsonl\n  rapctl audit export --follow --file /var/log/rap/audit.jsonl",
		run: func(ctx context.Context, args []string, stdout, _ io.Writer) error {
			c, err := newClient(30 * time.Second)
			if err != nil {
				return err
			}
			defer c.Close()
			ctx, stop := signalContext(ctx)
			defer stop()
			return auditExportCmd(ctx, c, args, stdout)
		}})
	return out
}

var releaseExamples = map[string]string{
	"keygen":          "  rapctl release keygen --role root --out root1.key\n  rapctl release keygen --role signing --out sign1.key",
	"keyset create":   "  rapctl release keyset create --version 1 --signing-key sign1.key.pub --out keyset-1.json",
	"manifest create": "  rapctl release manifest create --product rap-node-agent --version 1.4.0 --channels stable \\\n    --artifact linux/amd64=rap-node-agent-linux-amd64 --source-revision $(git rev-parse HEAD) --out agent-1.4.0.json",
	"sign":            "  rapctl release sign --key root1.key keyset-1.json\n  rapctl release sign --key sign1.key agent-1.4.0.json",
	"verify":          "  rapctl release verify --roots root1.key.pub,root2.key.pub --threshold 2 --keyset keyset-1.json --manifest agent-1.4.0.json",
	"inspect":         "  rapctl release inspect agent-1.4.0.json",
}

// examples are hand-written examples; other commands get one generated
// from their arguments.
var examples = map[string]string{
	"login":                "  rapctl login --user alice\n  printf '%s\\n%s\\n' \"$PASSWORD\" \"$TOTP\" | rapctl login --user alice",
	"step-up":              "  rapctl step-up POST /v1/join-requests/6b1f…/approve --totp 123456",
	"token create":         "  rapctl token create --cluster east --ttl 30m --max-uses 3 --description \"rack 4\"",
	"node list":            "  rapctl node list\n  rapctl node list --cluster east -o wide",
	"node show":            "  rapctl node show edge-1\n  rapctl node show 3f2a",
	"node revoke":          "  rapctl node revoke east edge-1 --reason \"disk stolen\"",
	"audit list":           "  rapctl audit list --since 1h\n  rapctl audit list --action node.revoke --limit 20 -o json",
	"cluster create":       "  rapctl cluster create \"East Coast\" --slug east --region us-east",
	"join-request approve": "  rapctl join-request approve 6b1f0d2e",
	"role assign":          "  rapctl role assign east edge-1 relay-node",
	"service set":          "  rapctl service set east edge-2 vpn-exit --enable --instance web --service-config '{}'",
	"partition split":      "  rapctl partition split east --reason \"site B unreachable\"",
	"audit reanchor":       "  rapctl audit reanchor --reason \"PostgreSQL restored from the 03-01 02:00 dump (ticket OPS-42)\"",
}

// sampleArgs gives generated examples readable values.
var sampleArgs = map[string]string{"CLUSTER": "east", "NODE": "edge-1", "NODE_ID": "edge-1", "NAME": "web", "ID": "6b1f0d2e",
	"GROUP": "racks", "TYPE": "vpn-exit", "ROLE": "relay-node", "CONNECTION": "office", "POLICY": "lan", "ROLLOUT": "9c2e41d0",
	"PRODUCT": "rap-node-agent", "VERSION": "1.4.0", "METHOD": "POST", "PATH": "/v1/join-tokens", "ASSIGNMENT": "5d0c7a11",
	"RAFT_ADDR": "10.0.0.4:7000", "API_ADDR": "10.0.0.4:7443", "FILE": "keyset-1.json", "RELEASE": "rap-node-agent@1.4.0",
	"SHA256": "9f86d081…", "PRODUCT@VERSION": "rap-node-agent@1.3.9", "ROOT.pub": "root1.key.pub"}

func exampleFor(tc *cmd) string {
	if e, ok := examples[tc.path]; ok {
		return e
	}
	parts := []string{"  rapctl", tc.path}
	for _, w := range strings.Fields(tc.args) {
		if strings.HasPrefix(w, "[") {
			continue
		}
		base := strings.TrimRight(w, "….")
		if v, ok := sampleArgs[base]; ok {
			parts = append(parts, v)
		} else {
			parts = append(parts, strings.ToLower(base))
		}
	}
	for _, req := range []string{"reason", "cluster"} {
		if strings.Contains(tc.help, "--"+req) && strings.Contains(tc.help, "required") {
			parts = append(parts, "--"+req, map[string]string{"reason": `"maintenance"`, "cluster": "east"}[req])
		}
	}
	return strings.Join(parts, " ")
}

// genDocsCommand prints the CLI reference (docs/cli.md) from the tree.
func genDocsCommand(root *cobra.Command, stdout io.Writer) *cobra.Command {
	return &cobra.Command{
		Use: "gen-docs", Short: "print the CLI reference in Markdown (docs/cli.md)", Hidden: true, Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error { return writeReference(stdout, root) },
	}
}

// writeReference writes the Markdown reference of every visible command.
func writeReference(w io.Writer, root *cobra.Command) error {
	var b strings.Builder
	b.WriteString("# rapctl command reference\n\n")
	b.WriteString("Generated from the command tree by `rapctl gen-docs` (`make docs`); ")
	b.WriteString("`TestCLIReferenceIsCurrent` fails when it is stale. Do not edit by hand.\n\n")
	b.WriteString("```\n" + root.Long + "\n```\n\n")
	b.WriteString("## Global flags\n\n```\n" + strings.TrimRight(root.PersistentFlags().FlagUsages(), "\n") + "\n```\n\n")
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			if sub.Hidden || sub.Name() == "help" {
				continue
			}
			if sub.Runnable() && !isGroup(sub) {
				writeCommand(&b, sub)
			}
			walk(sub)
		}
	}
	walk(root)
	_, err := io.WriteString(w, b.String())
	return err
}

// isGroup reports whether c only lists sub-commands.
func isGroup(c *cobra.Command) bool { return c.Annotations["group"] == "true" }

func writeCommand(b *strings.Builder, c *cobra.Command) {
	fmt.Fprintf(b, "## %s\n\n", c.CommandPath())
	fmt.Fprintf(b, "%s\n\n", c.Long)
	fmt.Fprintf(b, "```\n%s\n```\n\n", c.UseLine())
	var flags []string
	c.NonInheritedFlags().VisitAll(func(f *pflag.Flag) {
		if !f.Hidden && f.Name != "help" {
			flags = append(flags, f.Name)
		}
	})
	if len(flags) > 0 {
		local := pflag.NewFlagSet("", pflag.ContinueOnError)
		c.NonInheritedFlags().VisitAll(func(f *pflag.Flag) {
			if f.Name != "help" {
				local.AddFlag(f)
			}
		})
		fmt.Fprintf(b, "Flags:\n\n```\n%s\n```\n\n", strings.TrimRight(local.FlagUsages(), "\n"))
	}
	if c.Example != "" {
		fmt.Fprintf(b, "Examples:\n\n```\n%s\n```\n\n", c.Example)
	}
}
