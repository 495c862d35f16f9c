// Command rapctl is the platform owner's CLI over the authority JSON API. Every
// API action has a command; output is a table by default and JSON with -o json.
//
// Connection settings come from flags (--server, --token, --ca-pin), the
// environment (RAP_SERVERS, RAP_TOKEN, RAP_CA_PIN) or the file written by
// `rapctl config set` ($RAPCTL_CONFIG or ~/.config/rapctl/config.json, mode
// 0600). A follower's not_leader answer is followed to the leader transparently.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rap-fabric/core/apiclient"
)

type settings struct {
	Servers []string `json:"servers"`
	Token   string   `json:"token"`
	CAPin   string   `json:"ca_pin"`
}

func configPath() string {
	if p := os.Getenv("RAPCTL_CONFIG"); p != "" {
		return p
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		dir = "."
	}
	return filepath.Join(dir, "rapctl", "config.json")
}

func loadSettings() settings {
	var s settings
	if data, err := os.ReadFile(configPath()); err == nil {
		_ = json.Unmarshal(data, &s)
	}
	if v := os.Getenv("RAP_SERVERS"); v != "" {
		s.Servers = strings.Split(v, ",")
	}
	if v := os.Getenv("RAP_TOKEN"); v != "" {
		s.Token = v
	}
	if v := os.Getenv("RAP_CA_PIN"); v != "" {
		s.CAPin = v
	}
	return s
}

// cmd is one rapctl command.
type cmd struct {
	path   string // e.g. "cluster create"
	args   string // positional arguments, for help
	help   string
	flags  func(fs *flag.FlagSet) func() (method, path string, body any, err error)
	table  []string // columns for table output ("" means print JSON)
	single bool     // response is one object, not a list
}

var output = "table"

func main() {
	if err := realMain(os.Args[1:]); err != nil {
		var ae *apiclient.Error
		if errors.As(err, &ae) {
			fmt.Fprintf(os.Stderr, "rapctl: %s: %s\n", ae.Code, ae.Message)
			if len(ae.Details) > 0 {
				d, _ := json.Marshal(ae.Details)
				fmt.Fprintf(os.Stderr, "  details: %s\n", d)
			}
		} else {
			fmt.Fprintln(os.Stderr, "rapctl:", err)
		}
		os.Exit(1)
	}
}

func realMain(args []string) error {
	s := loadSettings()
	global := flag.NewFlagSet("rapctl", flag.ContinueOnError)
	servers := global.String("server", strings.Join(s.Servers, ","), "comma-separated authority API addresses")
	token := global.String("token", s.Token, "owner API token")
	pin := global.String("ca-pin", s.CAPin, "platform CA pin (sha256:…)")
	global.StringVar(&output, "o", "table", "output: table or json")
	idem := global.String("idempotency-key", "", "Idempotency-Key for a write (retry-safe)")
	totp := global.String("totp", "", "authenticator code for a high-risk command's step-up (default: a prompt on a terminal)")
	global.Usage = func() { printHelp() }
	if err := global.Parse(args); err != nil {
		return err
	}
	rest := global.Args()
	if len(rest) == 0 {
		printHelp()
		return nil
	}
	if rest[0] == "config" {
		return configCmd(rest[1:], *servers, *token, *pin)
	}
	if len(rest) == 2 && rest[0] == "ca" && rest[1] == "export" {
		return caExport(*servers, *pin, os.Stdout, os.Stderr)
	}
	if len(rest) >= 2 && rest[0] == "mesh" && rest[1] == "ping" {
		return meshPingCmd(rest[2:])
	}
	if len(rest) >= 2 && rest[0] == "release" {
		if len(rest) >= 3 {
			if f, ok := offlineReleaseCommands[rest[1]+" "+rest[2]]; ok {
				return f(rest[3:], os.Stdout)
			}
		}
		if f, ok := offlineReleaseCommands[rest[1]]; ok {
			return f(rest[2:], os.Stdout)
		}
		if rest[1] == "publish" {
			if *servers == "" {
				return errors.New("no authority address: use --server, RAP_SERVERS or `rapctl config set`")
			}
			c, err := apiclient.New(apiclient.Options{Servers: strings.Split(*servers, ","), Token: *token, CAPin: *pin, Timeout: 30 * time.Second})
			if err != nil {
				return err
			}
			defer c.Close()
			return releasePublish(context.Background(), c, rest[2:], os.Stdout, os.Stderr)
		}
	}
	var chosen *cmd
	var pos []string
	for i := range commands {
		c := &commands[i]
		words := strings.Fields(c.path)
		if len(rest) >= len(words) && strings.Join(rest[:len(words)], " ") == c.path {
			if chosen == nil || len(strings.Fields(chosen.path)) < len(words) {
				chosen, pos = c, rest[len(words):]
			}
		}
	}
	if chosen == nil {
		printHelp()
		return fmt.Errorf("unknown command %q", strings.Join(rest, " "))
	}
	fs := flag.NewFlagSet(chosen.path, flag.ContinueOnError)
	fs.StringVar(&output, "o", output, "output: table or json")
	build := chosen.flags(fs)
	// Allow flags after positional arguments.
	var flagArgs, posArgs []string
	for i := 0; i < len(pos); i++ {
		if strings.HasPrefix(pos[i], "-") {
			flagArgs = append(flagArgs, pos[i])
			if !strings.Contains(pos[i], "=") && i+1 < len(pos) && fs.Lookup(strings.TrimLeft(pos[i], "-")) != nil && !isBool(fs, strings.TrimLeft(pos[i], "-")) {
				flagArgs = append(flagArgs, pos[i+1])
				i++
			}
		} else {
			posArgs = append(posArgs, pos[i])
		}
	}
	if err := fs.Parse(flagArgs); err != nil {
		return err
	}
	positional = posArgs
	method, path, body, err := build()
	if err != nil {
		return err
	}
	if *servers == "" {
		return errors.New("no authority address: use --server, RAP_SERVERS or `rapctl config set`")
	}
	c, err := apiclient.New(apiclient.Options{Servers: strings.Split(*servers, ","), Token: *token, CAPin: *pin, Timeout: 15 * time.Second})
	if err != nil {
		return err
	}
	defer c.Close()
	var headers map[string]string
	if *idem != "" {
		headers = map[string]string{"Idempotency-Key": *idem}
	}
	var out any
	if err := doWithStepUp(context.Background(), c, method, path, body, &out, headers, totpSource(*totp, os.Stdin, os.Stderr, stdinIsTerminal())); err != nil {
		return err
	}
	return render(out, chosen)
}

func isBool(fs *flag.FlagSet, name string) bool {
	f := fs.Lookup(name)
	if f == nil {
		return false
	}
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

var positional []string

func arg(i int, name string) (string, error) {
	if i >= len(positional) {
		return "", fmt.Errorf("missing argument %s", name)
	}
	return url.PathEscape(positional[i]), nil
}

func configCmd(args []string, servers, token, pin string) error {
	if len(args) == 0 || (args[0] != "set" && args[0] != "show") {
		return errors.New("usage: rapctl [--server …] [--token …] [--ca-pin …] config set|show")
	}
	if args[0] == "show" {
		s := loadSettings()
		if s.Token != "" {
			s.Token = s.Token[:min(len(s.Token), 22)] + "…"
		}
		return json.NewEncoder(os.Stdout).Encode(s)
	}
	s := settings{Token: token, CAPin: pin}
	if servers != "" {
		s.Servers = strings.Split(servers, ",")
	}
	p := configPath()
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	data, _ := json.MarshalIndent(s, "", "  ")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		return err
	}
	fmt.Println("wrote", p)
	return nil
}

func printHelp() {
	fmt.Fprintln(os.Stderr, "usage: rapctl [--server ADDR,…] [--token T] [--ca-pin P] [--totp CODE] [-o table|json] <command>")
	fmt.Fprintln(os.Stderr, "\ncommands:")
	fmt.Fprintln(os.Stderr, "  config set|show                 save or show connection settings")
	fmt.Fprintln(os.Stderr, "  mesh ping NODE                  on a node's host: echo probes to NODE through the local agent, path and RTT (--state, --cluster, --timeout)")
	fmt.Fprintln(os.Stderr, caExportHelp)
	fmt.Fprintln(os.Stderr, offlineReleaseHelp)
	fmt.Fprintln(os.Stderr, releasePublishHelp)
	for _, c := range commands {
		fmt.Fprintf(os.Stderr, "  %-31s %s\n", strings.TrimSpace(c.path+" "+c.args), c.help)
	}
}

func render(out any, c *cmd) error {
	if output == "json" || len(c.table) == 0 {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	var rows []map[string]any
	if m, ok := out.(map[string]any); ok {
		if items, ok := m["items"].([]any); ok && !c.single {
			for _, it := range items {
				if r, ok := it.(map[string]any); ok {
					rows = append(rows, r)
				}
			}
		} else {
			rows = []map[string]any{m}
		}
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, strings.ToUpper(strings.Join(c.table, "\t")))
	for _, r := range rows {
		var cells []string
		for _, col := range c.table {
			cells = append(cells, cell(lookup(r, col)))
		}
		fmt.Fprintln(w, strings.Join(cells, "\t"))
	}
	return w.Flush()
}

func lookup(m map[string]any, path string) any {
	var cur any = m
	for _, p := range strings.Split(path, ".") {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = mm[p]
	}
	return cur
}

func cell(v any) string {
	switch x := v.(type) {
	case nil:
		return "-"
	case string:
		return x
	case float64:
		return fmt.Sprint(x)
	case []any:
		var parts []string
		for _, e := range x {
			if m, ok := e.(map[string]any); ok {
				keys := make([]string, 0, len(m))
				for k := range m {
					keys = append(keys, k)
				}
				sort.Strings(keys)
				parts = append(parts, fmt.Sprint(m["cluster_id"], ":", m["membership_status"]))
				continue
			}
			parts = append(parts, fmt.Sprint(e))
		}
		return strings.Join(parts, ",")
	default:
		b, _ := json.Marshal(x)
		return string(b)
	}
}

func get(path string) func() (string, string, any, error) {
	return func() (string, string, any, error) { return http.MethodGet, path, nil, nil }
}
