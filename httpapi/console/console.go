// Package console is the Platform Admin Console: server-rendered html/template
// pages under /console/ with embedded assets (no CDN), served by every
// authority.
//
// It owns presentation only. It reads through the authority service (never
// SQL), authenticates through the Auth interface the HTTP API provides (session
// cookie), and changes nothing itself: pages are GET-only, and every action
// (approve, reject, revoke, assign, step-up) is a fetch() from the page to the
// JSON API, carrying the session's CSRF token, so the API's authentication,
// CSRF, step-up and audit rules apply unchanged.
package console

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/rap-fabric/core/authority"
	"github.com/rap-fabric/core/store"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Auth resolves the console session of a request.
type Auth interface {
	// Principal returns the request's session principal (session cookie).
	Principal(r *http.Request) (authority.Principal, error)
	// CSRFToken returns the token pages send with state-changing API calls.
	CSRFToken(r *http.Request, p authority.Principal) string
}

// Status is the authority's Raft view, for the read-only banner.
type Status struct {
	NodeID        string
	State         string
	LeaderID      string
	LeaderAPIAddr string
	Quorum        bool
	Epoch         uint64
	// Raft panel figures (zero when the source does not report them).
	Term, CommitIndex, AppliedIndex uint64
	AgreedEpoch, FenceEpoch         uint64
	FenceEpochHeld                  uint64
	LastContact                     time.Time
	Members                         []Member
}

// Member is one authority of the Raft group, for the Raft panel.
type Member struct {
	ID, RaftAddr, APIAddr, Suffrage string
	Healthy                         bool
}

// Options configure the console.
type Options struct {
	Authority *authority.Authority
	// VPN serves the VPN page; nil shows the page without connections.
	VPN    *authority.VPN
	Auth   Auth
	Status func() Status
	Logger hclog.Logger
}

// ErrNoPage is returned for unknown console paths.
var ErrNoPage = errors.New("console: no such page")

type console struct {
	o     Options
	pages map[string]*template.Template
	mux   *http.ServeMux
}

// New returns the console handler (mount it at /console/).
func New(o Options) http.Handler { return http.HandlerFunc(newConsole(o).serve) }

func newConsole(o Options) *console {
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
	if o.Status == nil {
		o.Status = func() Status { return Status{} }
	}
	c := &console{o: o, pages: map[string]*template.Template{}}
	funcs := template.FuncMap{
		"short": short, "when": when, "json": toJSON, "get": get, "str": str, "join": strings.Join,
		"q": func(cluster string) template.URL {
			if cluster == "" {
				return ""
			}
			return template.URL("?cluster=" + url.QueryEscape(cluster))
		},
	}
	names, _ := fs.Glob(templateFS, "templates/*.html")
	for _, n := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if base == "layout" {
			continue
		}
		c.pages[base] = template.Must(template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", n))
	}
	m := http.NewServeMux()
	static, _ := fs.Sub(staticFS, "static")
	m.Handle("GET /console/static/", http.StripPrefix("/console/static/", http.FileServer(http.FS(static))))
	m.HandleFunc("GET /console/login", c.public("login"))
	m.HandleFunc("GET /console/setup", c.public("setup"))
	m.HandleFunc("GET /console/{$}", c.page("overview", c.overview))
	m.HandleFunc("GET /console/clusters", c.page("clusters", c.clusters))
	m.HandleFunc("GET /console/compare", c.page("compare", c.compare))
	m.HandleFunc("GET /console/nodes", c.page("nodes", c.nodes))
	m.HandleFunc("GET /console/nodes/{id}", c.page("node", c.node))
	m.HandleFunc("GET /console/join-requests", c.page("joins", c.joins))
	m.HandleFunc("GET /console/roles", c.page("roles", c.roles))
	m.HandleFunc("GET /console/services", c.page("services", c.services))
	m.HandleFunc("GET /console/health", c.page("health", c.health))
	m.HandleFunc("GET /console/vpn", c.page("vpn", c.vpn))
	m.HandleFunc("GET /console/vpn/{cluster}/{id}", c.page("vpnconn", c.vpnConn))
	m.HandleFunc("GET /console/audit", c.page("audit", c.audit))
	m.HandleFunc("GET /console/trust", c.page("trust", c.trust))
	m.HandleFunc("GET /console/account", c.page("account", c.account))
	m.HandleFunc("GET /console/topology", c.page("topology", c.topologyPage))
	m.HandleFunc("GET /console/raft", c.page("raft", c.raft))
	m.HandleFunc("GET /console/releases", c.page("releases", c.releases))
	c.mux = m
	return c
}

func (c *console) serve(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.Set("Allow", "GET, HEAD")
		http.Error(w, "the console changes nothing through its pages; actions go to the JSON API", http.StatusMethodNotAllowed)
		return
	}
	c.mux.ServeHTTP(w, r)
}

// view is what every page template receives.
type view struct {
	Page       string
	Title      string
	User       authority.AdminAccount
	CSRF       string
	Status     Status
	ReadOnly   bool
	Clusters   []map[string]any
	Cluster    string // selected cluster id ("" = all)
	ClusterObj map[string]any
	Error      string
	Data       map[string]any
	Now        time.Time
}

type loader func(ctx context.Context, r *http.Request, v *view) error

func (c *console) public(name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v := &view{Page: name, Status: c.o.Status(), Now: time.Now()}
		v.ReadOnly = !v.Status.Quorum
		c.render(w, name, v)
	}
}

func (c *console) page(name string, load loader) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, err := c.o.Auth.Principal(r)
		if err != nil {
			http.Redirect(w, r, "/console/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		ctx := r.Context()
		a := c.o.Authority
		v := &view{Page: name, User: p.User, CSRF: c.o.Auth.CSRFToken(r, p), Status: c.o.Status(), Now: a.Now(), Data: map[string]any{}}
		v.ReadOnly = !v.Status.Quorum
		cs, err := a.ListClusters(ctx, store.Page{Limit: 500})
		if err == nil {
			v.Clusters = maps(cs)
		}
		if sel := r.URL.Query().Get("cluster"); sel != "" {
			if cl, err := a.GetCluster(ctx, sel); err == nil {
				v.Cluster, v.ClusterObj = cl.ID, toMap(cl)
			} else {
				v.Error = "unknown cluster " + sel
			}
		}
		if err := load(ctx, r, v); err != nil {
			if errors.Is(err, ErrNoPage) || authority.CodeOf(err) == authority.CodeNotFound {
				w.WriteHeader(http.StatusNotFound)
				v.Error = "not found"
			} else {
				c.o.Logger.Warn("console page", "page", name, "error", err)
				v.Error = "could not load everything on this page: " + err.Error()
			}
		}
		c.render(w, name, v)
	}
}

func (c *console) render(w http.ResponseWriter, name string, v *view) {
	t, ok := c.pages[name]
	if !ok {
		http.NotFound(w, nil)
		return
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, v); err != nil {
		c.o.Logger.Error("console template", "page", name, "error", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write(buf.Bytes())
}

// --- data helpers: views become generic maps, so templates follow the API's
// JSON field names.

func toMap(v any) map[string]any {
	b, _ := json.Marshal(v)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return m
}

func maps[T any](xs []T) []map[string]any {
	out := make([]map[string]any, 0, len(xs))
	for _, x := range xs {
		out = append(out, toMap(x))
	}
	return out
}

func get(m map[string]any, path string) any {
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

func str(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case float64, bool:
		b, _ := json.Marshal(x)
		return string(b)
	default:
		b, _ := json.Marshal(x)
		return string(b)
	}
}

func short(v any) string {
	s := str(v)
	if len(s) > 8 {
		return s[:8]
	}
	return s
}

func when(v any) string {
	s := str(v)
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return s
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

func toJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func countBy(xs []map[string]any, key string) []kv {
	m := map[string]int{}
	for _, x := range xs {
		m[str(get(x, key))]++
	}
	out := make([]kv, 0, len(m))
	for k, n := range m {
		out = append(out, kv{K: k, N: n})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].K < out[j].K })
	return out
}

type kv struct {
	K string
	N int
}
