// Command rapctl is the platform owner's CLI over the authority JSON API. Every
// API action has a command (the table in commands.go and the tables appended
// to it; cli.go turns it into a cobra command tree); output is a table by
// default, -o wide|json|yaml otherwise. docs/cli.md is generated from the tree.
//
// Connection settings come from flags (--server, --token, --ca-pin), the
// environment (RAPCTL_SERVERS, RAPCTL_TOKEN, RAPCTL_CA_PIN) or the file written by
// `rapctl config set` (--config, $RAPCTL_CONFIG or ~/.config/rapctl/config.json,
// mode 0600). A follower's not_leader answer is followed to the leader
// transparently. Exit codes: 0 ok, 1 error, 2 usage, 3 step_up_required,
// 4 not_leader.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
)

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
	os.Exit(execute(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

var positional []string

func arg(i int, name string) (string, error) {
	if i >= len(positional) {
		return "", fmt.Errorf("missing argument %s", name)
	}
	return url.PathEscape(positional[i]), nil
}

func renderTo(stdout io.Writer, out any, c *cmd) error {
	switch {
	case output == "yaml":
		return writeYAML(stdout, out)
	case output == "json" || len(c.table) == 0:
		enc := json.NewEncoder(stdout)
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
	cols := c.table
	if output == "wide" {
		cols = wideColumns(cols, rows)
	}
	w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, strings.ToUpper(strings.Join(cols, "\t")))
	for _, r := range rows {
		var cells []string
		for _, col := range cols {
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
