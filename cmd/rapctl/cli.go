package main

// The cobra command tree, generated from the command table (commands.go and
// the tables appended to it in init functions): each table entry becomes a
// cobra command whose flags are the entry's standard-library flags mirrored
// into pflag, so an entry written for the table needs no change here.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/rap-fabric/core/apiclient"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// Exit codes (documented in the root help and docs/cli.md).
const (
	exitOK        = 0
	exitError     = 1
	exitUsage     = 2
	exitStepUp    = 3
	exitNotLeader = 4
)

const exitCodesHelp = `Exit codes:
  0  success
  1  error (the API refused the request, a name did not resolve, I/O)
  2  usage error (unknown command or flag, wrong arguments, invalid -o)
  3  step_up_required: no authenticator code for the step-up (give --totp CODE or run on a terminal)
  4  not_leader: no authority could forward the write to a leader`

// usageError marks an invocation mistake (exit code 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

// exitCode maps an error returned by a command to the process exit code.
func exitCode(err error) int {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	var ue usageError
	var ea errArgs
	if errors.As(err, &ue) || errors.As(err, &ea) {
		return exitUsage
	}
	var ae *apiclient.Error
	if errors.As(err, &ae) {
		switch ae.Code {
		case "step_up_required":
			return exitStepUp
		case "not_leader":
			return exitNotLeader
		}
	}
	return exitError
}

// globals are the connection and output flags every command accepts.
type globals struct {
	servers, token, pin, idem string
	all                       bool
	// totp answers a step_up_required (stepup.go); "" means a prompt on a
	// terminal.
	totp string
}

var g globals

// cliOut and cliErr are this invocation's standard output and error (for
// code inside table entries, which gets no writer).
var cliOut, cliErr io.Writer = os.Stdout, os.Stderr

// outputFormats are the accepted values of -o.
var outputFormats = []string{"table", "wide", "json", "yaml"}

// newRoot builds the whole command tree for one invocation.
func newRoot(stdout, stderr io.Writer) *cobra.Command {
	s, settingsErr := loadSettingsChecked(stderr)
	g = globals{}
	cliOut, cliErr = stdout, stderr
	output = "table"
	positional = nil
	root := &cobra.Command{
		Use:   "rapctl",
		Short: "the platform owner's CLI over the RAP authority API",
		Long: `rapctl drives the authority JSON API: every API action has a command.

Connection settings come from flags (--server, --token, --ca-pin), the
environment (RAPCTL_SERVERS, RAPCTL_TOKEN, RAPCTL_CA_PIN) or the file written by
` + "`rapctl config set`" + ` (--config, $RAPCTL_CONFIG or ~/.config/rapctl/config.json,
mode 0600), in that order; an unknown key in the file is an error. A follower's not_leader answer is followed to the leader.
Flags may appear anywhere on the command line. Nodes are addressed by name or
by a unique prefix of their id.

` + exitCodesHelp,
		Example: `  rapctl --server 10.0.0.1:7443,10.0.0.2:7443 --token "$T" --ca-pin sha256:… config set
  rapctl login --user alice
  rapctl node list --cluster east -o wide
  rapctl audit list --since 1h`,
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(c *cobra.Command, _ []string) error {
			if !validOutput(output) {
				return usagef("invalid -o %q: use one of %s", output, strings.Join(outputFormats, ", "))
			}
			return settingsErr
		},
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetVersionTemplate("rapctl {{.Version}}\n")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usageError{err} })
	pf := root.PersistentFlags()
	pf.StringVar(&g.servers, "server", strings.Join(s.Servers, ","), "comma-separated authority API addresses (env RAPCTL_SERVERS)")
	pf.StringVar(&g.token, "token", s.Token, "owner API or session token (env RAPCTL_TOKEN)")
	pf.StringVar(&g.pin, "ca-pin", s.CAPin, "platform CA pin sha256:… (env RAPCTL_CA_PIN)")
	pf.StringVarP(&output, "output", "o", "table", "output format: "+strings.Join(outputFormats, ", "))
	pf.StringVar(&g.idem, "idempotency-key", "", "Idempotency-Key for a write (retry-safe)")
	pf.StringVar(&g.totp, "totp", "", "authenticator code for a high-risk command's step-up (default: a prompt on a terminal)")
	pf.StringVar(&configFlag, "config", configFlag, "settings file (env RAPCTL_CONFIG; default ~/.config/rapctl/config.json)")
	_ = root.RegisterFlagCompletionFunc("output", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return outputFormats, cobra.ShellCompDirectiveNoFileComp
	})

	root.AddCommand(&cobra.Command{
		Use: "version", Short: "print rapctl's version", Args: cobra.NoArgs, Example: "  rapctl version",
		RunE: func(c *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(stdout, "rapctl", version)
			return err
		},
	})
	root.AddCommand(configCommand(stdout))
	root.AddCommand(genDocsCommand(root, stdout))
	for _, p := range passthroughCommands() {
		addAt(root, p.path, p.build(stdout, stderr))
	}
	for i := range commands {
		addAt(root, commands[i].path, tableCommand(&commands[i], stdout, stderr))
	}
	return root
}

func validOutput(o string) bool {
	for _, f := range outputFormats {
		if o == f {
			return true
		}
	}
	return false
}

// addAt places leaf under root at the words of path, creating group
// commands for the missing parents; a group already made by another entry
// (e.g. `vpn lease` and `vpn lease fence`) is reused.
func addAt(root *cobra.Command, path string, leaf *cobra.Command) {
	words := strings.Fields(path)
	parent := root
	for _, w := range words[:len(words)-1] {
		parent = child(parent, w)
	}
	last := words[len(words)-1]
	if existing := find(parent, last); existing != nil {
		// A group made earlier for a deeper entry: the leaf takes its place
		// and keeps its children.
		for _, sub := range existing.Commands() {
			existing.RemoveCommand(sub)
			leaf.AddCommand(sub)
		}
		parent.RemoveCommand(existing)
	}
	parent.AddCommand(leaf)
}

func find(parent *cobra.Command, name string) *cobra.Command {
	for _, c := range parent.Commands() {
		if c.Name() == name {
			return c
		}
	}
	return nil
}

// child returns parent's sub-command name, making a group command if needed.
func child(parent *cobra.Command, name string) *cobra.Command {
	if c := find(parent, name); c != nil {
		return c
	}
	short := groupHelp[strings.TrimSpace(strings.TrimPrefix(parent.CommandPath()+" "+name, "rapctl"))]
	if short == "" {
		short = name + " commands"
	}
	c := &cobra.Command{
		Use:         name,
		Short:       short,
		Annotations: map[string]string{"group": "true"},
		Args:        cobra.ArbitraryArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if len(args) == 0 {
				return c.Help()
			}
			return usagef("unknown command %q for %q\nRun '%s --help' for usage.", args[0], c.CommandPath(), c.CommandPath())
		},
	}
	parent.AddCommand(c)
	return c
}

// groupHelp describes the command groups.
var groupHelp = map[string]string{
	"audit":        "the hash-chained audit log",
	"authority":    "the authority Raft group: status and membership",
	"ca":           "the platform CA that signs the authorities' API certificates",
	"cluster":      "clusters and their certificate authorities",
	"group":        "node groups of a cluster",
	"join-request": "enrollment requests of nodes: review, approve, reject",
	"mesh":         "the mesh as the agents report it; ping through a local agent",
	"node":         "physical nodes and their cluster memberships (by name or id prefix)",
	"org":          "organizations",
	"partition":    "a cluster's partition state and the owner's split/merge actions",
	"policy":       "a cluster's route, QoS and entry policies",
	"qos":          "QoS policies of a cluster",
	"release":      "signed releases: the offline ceremony, publishing, roots and key sets",
	"role":         "role assignments of nodes in a cluster",
	"rollout":      "staged rollouts of releases: canary, waves, pause, rollback, pin",
	"route-intent": "route intents of a cluster",
	"service":      "desired services (workloads) of nodes",
	"snapshot":     "signed need-to-know config snapshots: status and rebuilds",
	"telemetry":    "test telemetry flags",
	"token":        "join tokens for enrolling nodes",
	"user":         "platform accounts",
	"vpn":          "VPN connections: settings, allowed nodes, route policies, leases",
}

// tableCommand turns one table entry into a cobra command.
func tableCommand(tc *cmd, stdout, stderr io.Writer) *cobra.Command {
	words := strings.Fields(tc.path)
	gofs := flag.NewFlagSet(tc.path, flag.ContinueOnError)
	gofs.SetOutput(io.Discard)
	build := tc.flags(gofs)
	c := &cobra.Command{
		Use:     strings.TrimSpace(words[len(words)-1] + " " + tc.args),
		Short:   tc.help,
		Long:    longHelp(tc),
		Example: exampleFor(tc),
		Args:    argsFor(tc.args),
		RunE: func(c *cobra.Command, args []string) error {
			return runTable(c.Context(), tc, gofs, build, args, stdout, stderr)
		},
	}
	mirrorFlags(gofs, c.Flags())
	if gofs.Lookup("limit") != nil {
		c.Flags().BoolVar(&g.all, "all", false, "fetch every page (the default unless --limit is given)")
	}
	if gofs.Lookup("node") != nil {
		_ = c.RegisterFlagCompletionFunc("node", func(c *cobra.Command, _ []string, _ string) ([]string, cobra.ShellCompDirective) {
			return completeNodes(c.Context()), cobra.ShellCompDirectiveNoFileComp
		})
	}
	argWords := strings.Fields(tc.args)
	c.ValidArgsFunction = func(c *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
		words := argWords
		i := len(args)
		if i >= len(words) && len(words) > 0 {
			i = len(words) - 1
			if _, variadic := isNodeWord(words[i]); !variadic {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
		}
		if i < len(words) {
			if node, _ := isNodeWord(words[i]); node {
				return completeNodes(c.Context()), cobra.ShellCompDirectiveNoFileComp
			}
		}
		return nil, cobra.ShellCompDirectiveDefault
	}
	return c
}

// longHelp is the entry's help plus what every table command shares.
func longHelp(tc *cmd) string {
	var b strings.Builder
	b.WriteString(strings.ToUpper(tc.help[:1]) + tc.help[1:] + ".")
	if n := helpNotes[tc.path]; n != "" {
		b.WriteString("\n\n" + n)
	}
	if strings.Contains(tc.args, "NODE") {
		b.WriteString("\n\nNODE is a node name or a unique prefix of its id.")
	}
	if strings.Contains(tc.help, "fenced") || strings.Contains(tc.help, "step-up") || strings.Contains(tc.help, "high risk") {
		b.WriteString("\n\nWith a login session, a high-risk action asks for an authenticator code (step-up) on a terminal, or takes --totp CODE; without one it exits with code 3.")
	}
	return b.String()
}

// helpNotes add what the CLI itself does for a command.
var helpNotes = map[string]string{
	"node list":    "The table adds HEALTH: the worst health of the node's latest heartbeats over its clusters (healthy, late, stale, offline; none before the first heartbeat).",
	"token create": "The table is followed by a ready-to-run `rap-node-agent enroll` line with the servers, the token and the cluster CA pin (-o json/yaml print the API's answer only).",
	"audit list":   "Newest first by default; --since takes a duration back from now (1h, 30m) or an RFC 3339 time.",
}

// argsFor derives the positional-argument check from the entry's args
// ("CLUSTER NODE [GROUP]", "ROOT.pub…"): a wrong count is a usage error.
func argsFor(spec string) cobra.PositionalArgs {
	minN, maxN := 0, 0
	for _, w := range strings.Fields(spec) {
		switch {
		case strings.HasSuffix(w, "…") || strings.HasSuffix(w, "...") || strings.HasSuffix(w, "…]"):
			maxN = -1
		case strings.HasPrefix(w, "["):
			if maxN >= 0 {
				maxN++
			}
		default:
			minN++
			if maxN >= 0 {
				maxN++
			}
		}
	}
	return func(c *cobra.Command, args []string) error {
		if len(args) < minN || (maxN >= 0 && len(args) > maxN) {
			if spec == "" {
				return usagef("%s takes no arguments (got %q)\nusage: %s", c.CommandPath(), args, c.UseLine())
			}
			return usagef("%s expects %s (got %d arguments)\nusage: %s", c.CommandPath(), spec, len(args), c.UseLine())
		}
		return nil
	}
}

// mirrorFlags exposes every standard-library flag of gofs as a pflag; a
// value set on the command line goes through gofs.Set, so fs.Visit in a
// table entry sees it.
func mirrorFlags(gofs *flag.FlagSet, pfs *pflag.FlagSet) {
	gofs.VisitAll(func(f *flag.Flag) {
		if pfs.Lookup(f.Name) != nil || f.Name == "o" {
			return
		}
		v := &goValue{fs: gofs, f: f}
		pf := &pflag.Flag{Name: f.Name, Usage: f.Usage, Value: v, DefValue: f.DefValue}
		if v.Type() == "bool" {
			pf.NoOptDefVal = "true"
		}
		pfs.AddFlag(pf)
	})
}

// goValue is a pflag.Value over a standard-library flag.
type goValue struct {
	fs *flag.FlagSet
	f  *flag.Flag
}

func (v *goValue) String() string     { return v.f.Value.String() }
func (v *goValue) Set(s string) error { return v.fs.Set(v.f.Name, s) }
func (v *goValue) Type() string {
	if b, ok := v.f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
		return "bool"
	}
	t := reflect.TypeOf(v.f.Value)
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	name := strings.TrimSuffix(t.Name(), "Value")
	switch name {
	case "string", "int", "int64", "uint", "uint64", "float64", "duration":
		return name
	}
	return "value"
}

// execute runs rapctl with args and returns the exit code.
func execute(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	configFlag = scanConfigFlag(args)
	root := newRoot(stdout, stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err != nil && strings.HasPrefix(err.Error(), "unknown command") {
		err = usageError{err}
	}
	code := exitCode(err)
	if code != exitOK {
		reportError(stderr, err)
	}
	return code
}

func reportError(stderr io.Writer, err error) {
	var ae *apiclient.Error
	if errors.As(err, &ae) {
		fmt.Fprintf(stderr, "rapctl: %s: %s\n", ae.Code, ae.Message)
		if len(ae.Details) > 0 {
			keys := make([]string, 0, len(ae.Details))
			for k := range ae.Details {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			var parts []string
			for _, k := range keys {
				parts = append(parts, fmt.Sprintf("%s=%v", k, ae.Details[k]))
			}
			fmt.Fprintf(stderr, "  details: %s\n", strings.Join(parts, " "))
		}
		if ae.Code == "step_up_required" {
			fmt.Fprintln(stderr, "  give the code with --totp CODE (or run on a terminal to be asked)")
		}
		return
	}
	fmt.Fprintln(stderr, "rapctl:", err)
}

// newClient connects to the configured authorities.
func newClient(timeout time.Duration) (*apiclient.Client, error) {
	if g.servers == "" {
		return nil, usagef("no authority address: use --server, RAPCTL_SERVERS or `rapctl config set`")
	}
	return apiclient.New(apiclient.Options{Servers: strings.Split(g.servers, ","), Token: g.token, CAPin: g.pin, Timeout: timeout})
}

// runTable runs one table command: arguments resolved, request built and
// sent (every page of a list), the answer rendered.
func runTable(ctx context.Context, tc *cmd, gofs *flag.FlagSet, build builder, args []string, stdout, stderr io.Writer) error {
	if ctx == nil {
		ctx = context.Background()
	}
	var c *apiclient.Client
	connect := func() (*apiclient.Client, error) {
		if c != nil {
			return c, nil
		}
		var err error
		c, err = newClient(15 * time.Second)
		return c, err
	}
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	res := &nodeResolver{connect: connect}
	var err error
	if args, err = res.resolveArgs(ctx, tc.args, args); err != nil {
		return err
	}
	if f := gofs.Lookup("node"); f != nil && f.Value.String() != "" {
		id, err := res.resolve(ctx, f.Value.String())
		if err != nil {
			return err
		}
		if err := gofs.Set("node", id); err != nil {
			return err
		}
	}
	positional = args
	method, path, body, err := build()
	if err != nil {
		return err
	}
	cl, err := connect()
	if err != nil {
		return err
	}
	var headers map[string]string
	if g.idem != "" {
		headers = map[string]string{"Idempotency-Key": g.idem}
	}
	var out any
	if method == "GET" {
		limit := -1
		if f := gofs.Lookup("limit"); f != nil && f.Value.String() != "" && !g.all {
			if limit, err = strconv.Atoi(f.Value.String()); err != nil || limit < 1 {
				return usagef("--limit must be a positive number")
			}
		}
		out, err = fetchAll(ctx, cl, path, !tc.single, limit, stderr)
	} else {
		err = sendWrite(ctx, cl, method, path, body, &out, headers)
	}
	if err != nil {
		return err
	}
	shown := tc
	if tc.path == "node list" && (output == "table" || output == "wide") {
		addHealth(ctx, cl, out)
		withHealth := *tc
		withHealth.table = append(append([]string(nil), tc.table...), "health")
		shown = &withHealth
	}
	if err := renderTo(stdout, out, shown); err != nil {
		return err
	}
	if after := afterRender[tc.path]; after != nil && (output == "table" || output == "wide") {
		after(stdout, out)
	}
	return nil
}

// realMain runs rapctl in-process (tests); it returns the command's error.
func realMain(args []string) error {
	configFlag = scanConfigFlag(args)
	root := newRoot(os.Stdout, os.Stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	if err != nil && strings.HasPrefix(err.Error(), "unknown command") {
		err = usageError{err}
	}
	return err
}
