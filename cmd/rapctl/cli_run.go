package main

// What every table command shares at run time: node names resolved to ids,
// lists fetched page by page, -o wide and -o yaml, the health column of
// `node list` and the enroll line of `token create`.

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/rap-fabric/core/apiclient"
)

// nodeRef is one node as the resolver knows it.
type nodeRef struct{ id, name string }

// nodeResolver turns a node name or unique id prefix into the node's id.
type nodeResolver struct {
	connect func() (*apiclient.Client, error)
	nodes   []nodeRef
	loaded  bool
}

// isNodeWord reports whether an args word ("NODE", "[NODE]", "NODE_ID…")
// names a node.
func isNodeWord(w string) (node, variadic bool) {
	variadic = strings.Contains(w, "…") || strings.Contains(w, "...")
	w = strings.Trim(w, "[]…. ")
	return w == "NODE" || w == "NODE_ID", variadic
}

// resolveArgs resolves every positional argument the spec names a node.
func (r *nodeResolver) resolveArgs(ctx context.Context, spec string, args []string) ([]string, error) {
	words := strings.Fields(spec)
	out := append([]string(nil), args...)
	for i := range out {
		var w string
		switch {
		case i < len(words):
			w = words[i]
		case len(words) > 0:
			w = words[len(words)-1]
			if _, variadic := isNodeWord(w); !variadic {
				continue
			}
		default:
			continue
		}
		node, _ := isNodeWord(w)
		if !node {
			continue
		}
		var ids []string
		for _, ref := range strings.Split(out[i], ",") {
			if ref = strings.TrimSpace(ref); ref == "" {
				continue
			}
			id, err := r.resolve(ctx, ref)
			if err != nil {
				return nil, err
			}
			ids = append(ids, id)
		}
		out[i] = strings.Join(ids, ",")
	}
	return out, nil
}

// resolve finds the one node whose id is ref, whose name is ref or whose id
// starts with ref; none or several is an error.
func (r *nodeResolver) resolve(ctx context.Context, ref string) (string, error) {
	if !r.loaded {
		c, err := r.connect()
		if err != nil {
			return "", err
		}
		out, err := fetchAll(ctx, c, "/v1/nodes?limit=500", true, -1, io.Discard)
		if err != nil {
			return "", fmt.Errorf("resolving node %q: %w", ref, err)
		}
		for _, it := range items(out) {
			r.nodes = append(r.nodes, nodeRef{id: str(it["id"]), name: str(it["name"])})
		}
		r.loaded = true
	}
	var byName, byPrefix []nodeRef
	low := strings.ToLower(ref)
	for _, n := range r.nodes {
		switch {
		case n.id == low:
			return n.id, nil
		case n.name == ref:
			byName = append(byName, n)
		case strings.HasPrefix(n.id, low):
			byPrefix = append(byPrefix, n)
		}
	}
	for _, set := range [][]nodeRef{byName, byPrefix} {
		switch len(set) {
		case 0:
			continue
		case 1:
			return set[0].id, nil
		default:
			var c []string
			for _, n := range set {
				c = append(c, n.id+" ("+n.name+")")
			}
			return "", fmt.Errorf("node %q is ambiguous: %s; use more of the id", ref, strings.Join(c, ", "))
		}
	}
	return "", fmt.Errorf("node %q: no node has this name or id prefix", ref)
}

// sendWrite sends one write (anything but GET) of a table command; a
// step_up_required is answered with a grant for exactly this request and the
// request is sent once more (stepup.go).
func sendWrite(ctx context.Context, c *apiclient.Client, method, path string, body, out any, headers map[string]string) error {
	return doWithStepUp(ctx, c, method, path, body, out, headers, totpSource(g.totp, readLine, stdinIsTerminal()))
}

// completeNodes lists node names for shell completion (best effort: nothing
// when no authority answers within a few seconds).
func completeNodes(ctx context.Context) []string {
	if ctx == nil {
		ctx = context.Background()
	}
	c, err := newClient(3 * time.Second)
	if err != nil {
		return nil
	}
	defer c.Close()
	out, err := fetchAll(ctx, c, "/v1/nodes?limit=500", true, -1, io.Discard)
	if err != nil {
		return nil
	}
	var names []string
	for _, it := range items(out) {
		names = append(names, str(it["name"])+"\t"+str(it["id"]))
	}
	return names
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// items returns a list response's items (nil for anything else).
func items(out any) []map[string]any {
	m, ok := out.(map[string]any)
	if !ok {
		return nil
	}
	l, ok := m["items"].([]any)
	if !ok {
		return nil
	}
	res := make([]map[string]any, 0, len(l))
	for _, it := range l {
		if r, ok := it.(map[string]any); ok {
			res = append(res, r)
		}
	}
	return res
}

// fetchAll GETs path and, when the answer is a list with a next_offset,
// every following page until the list ends or limit items were read
// (limit < 0: no cap). A capped list that has more says so on notes.
func fetchAll(ctx context.Context, c *apiclient.Client, path string, list bool, limit int, notes io.Writer) (any, error) {
	u, err := url.Parse(path)
	if err != nil {
		return nil, err
	}
	q := u.Query()
	pageSize := 500
	if limit > 0 && limit < pageSize {
		pageSize = limit
	}
	if list {
		q.Set("limit", strconv.Itoa(pageSize))
	}
	var first any
	var all []any
	offset := -1
	for {
		u.RawQuery = q.Encode()
		var out any
		if err := c.Do(ctx, "GET", u.String(), nil, &out, nil); err != nil {
			return nil, err
		}
		m, ok := out.(map[string]any)
		page, isList := m["items"].([]any)
		if !ok || !isList {
			return out, nil
		}
		if first == nil {
			first = m
		}
		all = append(all, page...)
		next, more := m["next_offset"].(float64)
		if limit >= 0 && len(all) >= limit {
			if len(all) > limit || more {
				all = all[:limit]
				fmt.Fprintf(notes, "rapctl: showing the first %d; more exist (--all or a larger --limit)\n", limit)
			}
			break
		}
		if !more || int(next) <= offset || len(page) == 0 {
			break
		}
		offset = int(next)
		q.Set("offset", strconv.Itoa(offset))
	}
	fm := first.(map[string]any)
	if all == nil {
		all = []any{}
	}
	fm["items"] = all
	delete(fm, "next_offset")
	return fm, nil
}

// writeYAML prints v (decoded JSON) as YAML.
func writeYAML(w io.Writer, v any) error {
	// Round-trip typed values through JSON so YAML shows the API's field names.
	if _, generic := v.(map[string]any); !generic {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
	}
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		return err
	}
	return enc.Close()
}

// wideColumns is cols followed by every other top-level field of rows.
func wideColumns(cols []string, rows []map[string]any) []string {
	seen := map[string]bool{}
	for _, c := range cols {
		seen[strings.SplitN(c, ".", 2)[0]] = true
	}
	var extra []string
	for _, r := range rows {
		for k := range r {
			if !seen[k] {
				seen[k] = true
				extra = append(extra, k)
			}
		}
	}
	sort.Strings(extra)
	return append(append([]string(nil), cols...), extra...)
}

// healthRank orders heartbeat health from best to worst.
var healthRank = map[string]int{"healthy": 0, "late": 1, "stale": 2, "offline": 3, "unknown": 4}

// addHealth sets each listed node's "health": the worst health of its
// latest heartbeats over its clusters ("none" without heartbeats).
func addHealth(ctx context.Context, c *apiclient.Client, out any) {
	rows := items(out)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	var mu sync.Mutex
	for _, r := range rows {
		wg.Add(1)
		sem <- struct{}{}
		go func(r map[string]any) {
			defer func() { <-sem; wg.Done() }()
			var hb any
			h := "none"
			if err := c.Do(ctx, "GET", "/v1/nodes/"+url.PathEscape(str(r["id"]))+"/heartbeat", nil, &hb, nil); err != nil {
				h = "?"
			}
			for _, x := range items(hb) {
				s := str(x["health_state"])
				if h == "none" || healthRank[s] > healthRank[h] {
					h = s
				}
			}
			mu.Lock()
			r["health"] = h
			mu.Unlock()
		}(r)
	}
	wg.Wait()
}

// afterRender adds human guidance after a command's table output.
var afterRender = map[string]func(w io.Writer, out any){
	"token create": func(w io.Writer, out any) {
		m, _ := out.(map[string]any)
		if str(m["token"]) == "" {
			return
		}
		fmt.Fprintf(w, "\nenroll a node with it (on the node, as root):\n  rap-node-agent enroll --authority %s --token %s --ca-pin %s\n",
			g.servers, str(m["token"]), str(m["ca_pin"]))
	},
}

// auditListFlags is `rapctl audit list`: newest first unless
// --oldest-first, --since as a duration back from now or an RFC 3339 time.
func auditListFlags(fs *flag.FlagSet) builder {
	list := listFlags("/v1/audit", "cluster", "action", "actor", "target_kind", "target_id", "after_id")(fs)
	since := fs.String("since", "", "only events since this long ago (1h, 30m) or this RFC 3339 time")
	oldest := fs.Bool("oldest-first", false, "chain order instead of newest first")
	return func() (string, string, any, error) {
		m, p, body, err := list()
		if err != nil {
			return m, p, body, err
		}
		q := url.Values{}
		if !*oldest {
			q.Set("order", "newest")
		}
		if *since != "" {
			t, err := parseSince(*since, time.Now())
			if err != nil {
				return "", "", nil, err
			}
			q.Set("since", t.UTC().Format(time.RFC3339Nano))
		}
		if len(q) > 0 {
			sep := "?"
			if strings.Contains(p, "?") {
				sep = "&"
			}
			p += sep + q.Encode()
		}
		return m, p, body, nil
	}
}

// parseSince reads "1h30m" (before now) or an RFC 3339 time.
func parseSince(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	return time.Time{}, usagef("--since %q: give a duration such as 1h or an RFC 3339 time", s)
}
