package adminingress

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/rap-fabric/core/uimanifest"
)

// Handler serves the endpoint: while a precondition is unmet, every request
// is answered 503 with the reasons (plain text); otherwise
//
//	GET  /                    the page index
//	GET  /login               the login form (password and second factor)
//	POST /login               log in: the authorities' session cookie is passed on
//	POST /logout              end the session and clear its cookie
//	GET  /ui/{page}           a page, its source read with the admin's credential
//	POST /ui/{page}/forms/{n} a page's form, sent to its action as JSON
//	*    /v1/...              forwarded to the authorities (never /v1/agent/...)
func (e *Endpoint) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		// same-origin, not no-referrer: under no-referrer browsers send
		// "Origin: null" with a form post, which the same-origin checks
		// here and on the authorities (rightly) refuse.
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Cache-Control", "no-store")
		st := e.Status()
		if !st.Serving {
			h.Set("Content-Type", "text/plain; charset=utf-8")
			h.Set("Retry-After", strconv.Itoa(int(e.o.Every/time.Second)+1))
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, "The cluster admin endpoint is unavailable on this node:")
			for _, u := range st.Unmet {
				fmt.Fprintf(w, "- %s\n", u)
			}
			return
		}
		e.mu.Lock()
		m := e.manifest
		e.mu.Unlock()
		p := r.URL.Path
		switch {
		case strings.HasPrefix(p, "/v1/agent/") || p == "/v1/agent":
			http.Error(w, "agent routes are not forwarded", http.StatusForbidden)
		case strings.HasPrefix(p, "/v1/"):
			e.forwardRaw(w, r)
		case p == "/" && r.Method == http.MethodGet:
			e.render(w, http.StatusOK, pageData{Manifest: m})
		case p == "/login" && r.Method == http.MethodGet:
			e.render(w, http.StatusOK, pageData{Manifest: m, Login: true})
		case p == "/login" && r.Method == http.MethodPost:
			e.login(w, r, m)
		case p == "/logout" && r.Method == http.MethodPost:
			e.logout(w, r, m)
		case strings.HasPrefix(p, "/ui/"):
			e.servePage(w, r, m, strings.TrimPrefix(p, "/ui/"))
		default:
			http.NotFound(w, r)
		}
	})
}

func (e *Endpoint) forwardRaw(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxForwardBody+1))
	if err != nil || len(body) > maxForwardBody {
		http.Error(w, "request body too large or unreadable", http.StatusRequestEntityTooLarge)
		return
	}
	resp, err := e.fw.do(r.Context(), r, r.Method, r.URL.RequestURI(), body, nil)
	if err != nil {
		http.Error(w, "no authority answered", http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	copyResponseHeaders(w, resp)
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, io.LimitReader(resp.Body, 32<<20))
}

func copyResponseHeaders(w http.ResponseWriter, resp *http.Response) {
	for _, h := range forwardedResponseHeaders {
		for _, v := range resp.Header.Values(h) {
			w.Header().Add(h, v)
		}
	}
}

func (e *Endpoint) apiPath(tpl string) string {
	return strings.ReplaceAll(tpl, "{cluster}", e.fw.clusterID())
}

type row struct{ Cells []string }

type widgetView struct {
	uimanifest.Widget
	Index   int
	Rows    []row
	Summary []string
}

type pageData struct {
	Manifest *uimanifest.Manifest
	Page     *uimanifest.Page
	Widgets  []widgetView
	Error    string
	Status   int
	// Login shows the login form.
	Login bool
}

// sameOrigin refuses a browser post from another site (the authorities
// check Origin against this endpoint's host again).
func sameOrigin(w http.ResponseWriter, r *http.Request) bool {
	if s := r.Header.Get("Sec-Fetch-Site"); s != "" && s != "same-origin" && s != "none" {
		http.Error(w, "cross-site form refused", http.StatusForbidden)
		return false
	}
	if o := r.Header.Get("Origin"); o != "" && o != "https://"+r.Host {
		http.Error(w, "cross-origin form refused", http.StatusForbidden)
		return false
	}
	return true
}

// login sends the login form to POST /v1/auth/login as JSON. The
// authorities answer with their session cookie (__Host- prefixed: Secure,
// Path=/, no Domain), which is passed on unchanged: the browser keeps it for
// this endpoint's origin only, and sends it back with every page and form.
func (e *Endpoint) login(w http.ResponseWriter, r *http.Request, m *uimanifest.Manifest) {
	if !sameOrigin(w, r) {
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	body := map[string]string{"username": r.PostForm.Get("username"), "password": r.PostForm.Get("password")}
	if c := strings.TrimSpace(r.PostForm.Get("totp_code")); c != "" {
		body["totp_code"] = c
	}
	if c := strings.TrimSpace(r.PostForm.Get("recovery_code")); c != "" {
		body["recovery_code"] = c
	}
	raw, _ := json.Marshal(body)
	r.Header.Set("Content-Type", "application/json")
	resp, err := e.fw.do(r.Context(), r, http.MethodPost, "/v1/auth/login", raw, map[string]string{"X-RAP-Request": "admin-endpoint-login"})
	if err != nil {
		e.render(w, http.StatusBadGateway, pageData{Manifest: m, Login: true, Error: "no authority answered", Status: http.StatusBadGateway})
		return
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	copyCookies(w, resp)
	if resp.StatusCode >= 300 {
		if ra := resp.Header.Get("Retry-After"); ra != "" {
			w.Header().Set("Retry-After", ra)
		}
		e.render(w, resp.StatusCode, pageData{Manifest: m, Login: true, Error: apiError(resp.StatusCode, data), Status: resp.StatusCode})
		return
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// logout ends the session on the authorities (POST /v1/auth/logout with the
// session cookie) and passes on the cookie that clears it.
func (e *Endpoint) logout(w http.ResponseWriter, r *http.Request, m *uimanifest.Manifest) {
	if !sameOrigin(w, r) {
		return
	}
	resp, err := e.fw.do(r.Context(), r, http.MethodPost, "/v1/auth/logout", nil, map[string]string{"X-RAP-Request": "admin-endpoint-logout", "Content-Type": "application/json"})
	if err != nil {
		e.render(w, http.StatusBadGateway, pageData{Manifest: m, Error: "no authority answered", Status: http.StatusBadGateway})
		return
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	copyCookies(w, resp)
	if resp.StatusCode >= 300 && resp.StatusCode != http.StatusUnauthorized {
		e.render(w, resp.StatusCode, pageData{Manifest: m, Error: apiError(resp.StatusCode, data), Status: resp.StatusCode})
		return
	}
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// copyCookies passes the authorities' Set-Cookie headers on.
func copyCookies(w http.ResponseWriter, resp *http.Response) {
	for _, v := range resp.Header.Values("Set-Cookie") {
		w.Header().Add("Set-Cookie", v)
	}
}

func (e *Endpoint) servePage(w http.ResponseWriter, r *http.Request, m *uimanifest.Manifest, rest string) {
	id, form, isForm := strings.Cut(rest, "/forms/")
	pg := m.Page(id)
	if pg == nil {
		http.NotFound(w, r)
		return
	}
	if isForm {
		if r.Method != http.MethodPost {
			http.Error(w, "forms are posted", http.StatusMethodNotAllowed)
			return
		}
		e.submit(w, r, m, pg, form)
		return
	}
	if r.Method != http.MethodGet {
		http.Error(w, "pages are read with GET", http.StatusMethodNotAllowed)
		return
	}
	d := pageData{Manifest: m, Page: pg}
	resp, err := e.fw.do(r.Context(), r, http.MethodGet, e.apiPath(pg.Source), nil, nil)
	if err != nil {
		d.Error, d.Status = "no authority answered", http.StatusBadGateway
		e.render(w, d.Status, d)
		return
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	copyCookies(w, resp)
	if resp.StatusCode >= 300 {
		d.Error, d.Status = apiError(resp.StatusCode, data), resp.StatusCode
		e.render(w, d.Status, d)
		return
	}
	var src map[string]any
	_ = json.Unmarshal(data, &src)
	for i, wd := range pg.Widgets {
		v := widgetView{Widget: wd, Index: i}
		switch wd.Type {
		case uimanifest.WidgetTable:
			items, _ := src["items"].([]any)
			for _, it := range items {
				obj, _ := it.(map[string]any)
				var rw row
				for _, f := range wd.Fields {
					rw.Cells = append(rw.Cells, cell(f.Type, obj[f.Key]))
				}
				v.Rows = append(v.Rows, rw)
			}
		case uimanifest.WidgetSummary:
			for _, f := range wd.Fields {
				v.Summary = append(v.Summary, cell(f.Type, src[f.Key]))
			}
		}
		d.Widgets = append(d.Widgets, v)
	}
	e.render(w, http.StatusOK, d)
}

// submit sends a form to its action with the admin's credential. Only
// same-origin posts are accepted (the custom header the authorities accept
// as CSRF evidence is added after this check).
func (e *Endpoint) submit(w http.ResponseWriter, r *http.Request, m *uimanifest.Manifest, pg *uimanifest.Page, form string) {
	n, err := strconv.Atoi(form)
	if err != nil || n < 0 || n >= len(pg.Widgets) || pg.Widgets[n].Type != uimanifest.WidgetForm {
		http.NotFound(w, r)
		return
	}
	if !sameOrigin(w, r) {
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	wd := pg.Widgets[n]
	body := map[string]any{}
	for _, f := range wd.Fields {
		v := r.PostForm.Get(f.Key)
		switch f.Type {
		case uimanifest.FieldNumber:
			if v == "" {
				continue
			}
			x, err := strconv.ParseFloat(v, 64)
			if err != nil {
				http.Error(w, f.Label+": not a number", http.StatusBadRequest)
				return
			}
			body[f.Key] = x
		case uimanifest.FieldBool:
			body[f.Key] = v != ""
		default:
			body[f.Key] = v
		}
	}
	raw, _ := json.Marshal(body)
	r.Header.Set("Content-Type", "application/json")
	resp, err := e.fw.do(r.Context(), r, wd.Action.Method, e.apiPath(wd.Action.Path), raw, map[string]string{"X-RAP-Request": "admin-endpoint-form"})
	if err != nil {
		e.render(w, http.StatusBadGateway, pageData{Manifest: m, Page: pg, Error: "no authority answered", Status: http.StatusBadGateway})
		return
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	copyCookies(w, resp)
	if resp.StatusCode >= 300 {
		e.render(w, resp.StatusCode, pageData{Manifest: m, Page: pg, Error: apiError(resp.StatusCode, data), Status: resp.StatusCode})
		return
	}
	http.Redirect(w, r, "/ui/"+pg.ID, http.StatusSeeOther)
}

func apiError(status int, data []byte) string {
	var eb struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(data, &eb) == nil && eb.Error.Code != "" {
		return fmt.Sprintf("%d %s: %s", status, eb.Error.Code, eb.Error.Message)
	}
	return fmt.Sprintf("%d %s", status, http.StatusText(status))
}

// cell renders one scalar by its field type; objects and lists are never
// shown (they could carry what the page definitions do not name).
func cell(typ string, v any) string {
	switch x := v.(type) {
	case nil:
		return "—"
	case string:
		if typ == uimanifest.FieldTime {
			if t, err := time.Parse(time.RFC3339Nano, x); err == nil {
				return t.UTC().Format("2006-01-02 15:04:05Z")
			}
		}
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case bool:
		if x {
			return "yes"
		}
		return "no"
	default:
		return "—"
	}
}

var pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Manifest.Title}}{{with .Page}} — {{.Title}}{{end}}</title></head>
<body>
<header><h1>{{.Manifest.Title}}</h1><nav>{{range .Manifest.Pages}}<a href="/ui/{{.ID}}" id="nav-{{.ID}}">{{.Title}}</a> {{end}}<a href="/login" id="nav-login">Log in</a></nav>
<form method="post" action="/logout"><button type="submit" id="logout">Log out</button></form></header>
<main>
{{with .Error}}<p role="alert" id="error">{{.}}</p>{{end}}
{{if .Login}}<h2 id="page-login">Log in</h2>
<form method="post" action="/login" id="login-form">
<label>User <input name="username" id="login-user" autocomplete="username" required></label>
<label>Password <input type="password" name="password" id="login-password" autocomplete="current-password" required></label>
<label>Authenticator code <input name="totp_code" id="login-totp" inputmode="numeric" autocomplete="one-time-code"></label>
<label>or a recovery code <input name="recovery_code" id="login-recovery" autocomplete="off"></label>
<button type="submit" id="login-submit">Log in</button></form>{{end}}
{{with .Page}}<h2 id="page-{{.ID}}">{{.Title}}</h2>{{end}}
{{$page := .Page}}
{{range .Widgets}}<section>
{{with .Title}}<h3>{{.}}</h3>{{end}}
{{if eq .Type "table"}}<table><thead><tr>{{range .Fields}}<th>{{.Label}}</th>{{end}}</tr></thead><tbody>
{{range .Rows}}<tr>{{range .Cells}}<td>{{.}}</td>{{end}}</tr>
{{end}}</tbody></table>{{end}}
{{if eq .Type "summary"}}<dl>{{$s := .Summary}}{{range $i, $f := .Fields}}<dt>{{$f.Label}}</dt><dd>{{index $s $i}}</dd>{{end}}</dl>{{end}}
{{if eq .Type "form"}}<form method="post" action="/ui/{{$page.ID}}/forms/{{.Index}}">
{{range .Fields}}<label>{{.Label}} {{if eq .Type "bool"}}<input type="checkbox" name="{{.Key}}">{{else}}<input name="{{.Key}}"{{if eq .Type "number"}} inputmode="numeric"{{end}}>{{end}}</label>
{{end}}<button type="submit">{{if .Title}}{{.Title}}{{else}}Send{{end}}</button></form>{{end}}
</section>
{{end}}
</main></body></html>
`))

func (e *Endpoint) render(w http.ResponseWriter, status int, d pageData) {
	var buf bytes.Buffer
	if err := pageTmpl.Execute(&buf, d); err != nil {
		http.Error(w, "rendering failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}
