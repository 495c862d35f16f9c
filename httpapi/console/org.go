package console

// The organization console (spec C9): server-rendered pages for organization
// accounts under /org/{org}/ — overview, endpoints, resources, policies,
// users, sessions, audit — with a login page at /org/login. It shows only
// what the organization API answers the same session (OrgSource.Read returns
// the API's own projection types, decoded), so a page can never hold more
// than the API would: no node, cluster, address or other organization.
// Pages are GET-only; actions are fetch() calls to /v1/orgs/{org}/… with the
// session's CSRF token (and step-up where the API demands it).

import (
	"bytes"
	"embed"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/rap-fabric/core/authority"
)

//go:embed orgtemplates/*.html
var orgTemplateFS embed.FS

//go:embed orgstatic
var orgStaticFS embed.FS

// OrgSource is what the organization console needs from the HTTP API.
type OrgSource interface {
	// Principal resolves the request's organization session (cookie) for
	// the organization named org (id or slug).
	Principal(r *http.Request, org string) (authority.OrgPrincipal, error)
	// CSRFToken returns the token pages send with state-changing API calls.
	CSRFToken(r *http.Request, p authority.OrgPrincipal) string
	// Read returns the decoded answer of GET /v1/orgs/{org}{path} for the
	// request's session.
	Read(r *http.Request, org, path string) (any, error)
}

// OrgOptions configure the organization console.
type OrgOptions struct {
	Source OrgSource
	Logger hclog.Logger
}

type orgConsole struct {
	o     OrgOptions
	pages map[string]*template.Template
	mux   *http.ServeMux
}

// orgView is what every organization page template receives.
type orgView struct {
	Page  string
	Title string
	Org   string // the organization's id (path segment)
	Name  string // the organization's display name
	User  string
	Role  string
	CSRF  string
	Error string
	Data  map[string]any
	Now   time.Time
}

// NewOrg returns the organization console handler (mount it at /org/).
func NewOrg(o OrgOptions) http.Handler {
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
	c := &orgConsole{o: o, pages: map[string]*template.Template{}}
	funcs := template.FuncMap{"get": get, "str": str, "when": when, "short": short, "join": strings.Join,
		"items": func(v any) []any { m, _ := v.(map[string]any); xs, _ := m["items"].([]any); return xs },
		"field": func(v any, path string) any { m, _ := v.(map[string]any); return get(m, path) }}
	names, _ := fs.Glob(orgTemplateFS, "orgtemplates/*.html")
	for _, n := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(n, "orgtemplates/"), ".html")
		if base == "layout" {
			continue
		}
		c.pages[base] = template.Must(template.New("layout.html").Funcs(funcs).ParseFS(orgTemplateFS, "orgtemplates/layout.html", n))
	}
	m := http.NewServeMux()
	m.HandleFunc("GET /org/org.js", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFileFS(w, r, orgStaticFS, "orgstatic/org.js")
	})
	m.HandleFunc("GET /org/login", func(w http.ResponseWriter, r *http.Request) {
		c.render(w, "login", &orgView{Page: "login", Title: "Log in", Now: time.Now()})
	})
	page := func(name, title string, reads ...string) http.HandlerFunc { return c.page(name, title, reads) }
	m.HandleFunc("GET /org/{org}/{$}", page("overview", "Overview", ""))
	m.HandleFunc("GET /org/{org}/endpoints", page("endpoints", "Endpoints", "/endpoints?limit=500"))
	m.HandleFunc("GET /org/{org}/resources", page("resources", "Resources", "/resources?limit=500", "/endpoints?limit=500"))
	m.HandleFunc("GET /org/{org}/policies", page("policies", "Policies", "/policies?limit=500", "/resources?limit=500", "/endpoints?limit=500"))
	m.HandleFunc("GET /org/{org}/users", page("users", "Users", "/users?limit=500"))
	m.HandleFunc("GET /org/{org}/sessions", page("sessions", "Sessions", "/sessions?limit=500", "/access-sessions?limit=500", "/resources?limit=500"))
	m.HandleFunc("GET /org/{org}/audit", page("audit", "Audit", "/audit?limit=200"))
	c.mux = m
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
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
	})
}

// page renders name with the API answers of reads (keyed by their path
// without the query; "" is the overview).
func (c *orgConsole) page(name, title string, reads []string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		org := r.PathValue("org")
		p, err := c.o.Source.Principal(r, org)
		if err != nil {
			if authority.CodeOf(err) == authority.CodeNotFound {
				w.WriteHeader(http.StatusNotFound)
				c.render(w, "login", &orgView{Page: "login", Title: "Not found", Error: "not found", Now: time.Now()})
				return
			}
			http.Redirect(w, r, "/org/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		role := ""
		if p.User.OrgRole != nil {
			role = *p.User.OrgRole
		}
		v := &orgView{Page: name, Title: title, Org: p.Org.ID, Name: p.Org.Name, User: p.User.Name, Role: role,
			CSRF: c.o.Source.CSRFToken(r, p), Data: map[string]any{}, Now: time.Now()}
		for _, rd := range reads {
			out, err := c.o.Source.Read(r, p.Org.ID, rd)
			if err != nil {
				v.Error = "could not load everything on this page: " + err.Error()
				continue
			}
			key, _, _ := strings.Cut(strings.TrimPrefix(rd, "/"), "?")
			if key == "" {
				key = "overview"
			}
			v.Data[key] = out
		}
		c.render(w, name, v)
	}
}

func (c *orgConsole) render(w http.ResponseWriter, name string, v *orgView) {
	t, ok := c.pages[name]
	if !ok {
		http.NotFound(w, nil)
		return
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, v); err != nil {
		c.o.Logger.Error("organization console template", "page", name, "error", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write(buf.Bytes())
}
