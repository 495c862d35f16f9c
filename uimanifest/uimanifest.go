// Package uimanifest defines the page definitions (ui_manifest) the Cluster
// Admin Endpoint composes its pages from, and their strict decoder.
//
// A manifest is data only: pages, each reading one API path of the cluster
// and rendering allow-listed widgets (table, summary, form) whose fields are
// allow-listed types. It cannot carry internal topology (addresses,
// endpoints, peers, routes, links, mesh keys), caches, secrets or raw
// credentials, nor code: field keys naming any of them are refused, strings
// are plain printable text without markup, paths are cluster-scoped API
// paths with only the {cluster} placeholder (never an agent route), and
// everything is bounded in size. Decode refuses unknown fields, duplicate
// keys, trailing data and anything that does not validate; it never panics
// (FuzzDecode). The package is pure: it imports no module package.
package uimanifest

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Schema is the manifest schema version this package reads.
const Schema = 1

// Size bounds of a manifest.
const (
	MaxBytes        = 64 << 10
	MaxPages        = 32
	MaxWidgets      = 16
	MaxFields       = 32
	MaxRequireRoles = 16
	MaxTextLen      = 120
	maxDepth        = 8
)

// Widget types.
const (
	WidgetTable   = "table"
	WidgetSummary = "summary"
	WidgetForm    = "form"
)

// Field types: how a value is shown (table, summary) or entered (form).
const (
	FieldText   = "text"
	FieldNumber = "number"
	FieldTime   = "time"
	FieldBool   = "bool"
	FieldStatus = "status"
	FieldID     = "id"
)

var (
	widgetTypes    = []string{WidgetTable, WidgetSummary, WidgetForm}
	fieldTypes     = []string{FieldText, FieldNumber, FieldTime, FieldBool, FieldStatus, FieldID}
	formFieldTypes = []string{FieldText, FieldNumber, FieldBool}
	formMethods    = []string{"POST", "PUT", "PATCH", "DELETE"}
)

// Manifest is a set of page definitions.
type Manifest struct {
	// Schema must be Schema.
	Schema int `json:"schema"`
	// Title names the endpoint in the page header.
	Title string `json:"title"`
	// RequiresRoles are the roles the cluster must cover (some member holds
	// each one, active) for the operations these pages offer: the endpoint
	// stays down while one is uncovered.
	RequiresRoles []string `json:"requires_roles"`
	// Pages are listed in navigation order.
	Pages []Page `json:"pages"`
}

// Page is one page: a source API path read with the admin's credential and
// the widgets that render it.
type Page struct {
	ID      string   `json:"id"`
	Title   string   `json:"title"`
	Source  string   `json:"source"`
	Widgets []Widget `json:"widgets"`
}

// Widget renders the page's source (table: its "items" list; summary: the
// object) or offers a form that sends its fields as a JSON body to Action.
type Widget struct {
	Type   string  `json:"type"`
	Title  string  `json:"title"`
	Fields []Field `json:"fields"`
	// Action is set on forms only.
	Action *Action `json:"action,omitempty"`
}

// Field is one shown or entered value: Key is the JSON key in the source
// (or the body), Label what people read.
type Field struct {
	Key   string `json:"key"`
	Label string `json:"label"`
	Type  string `json:"type"`
}

// Action is where a form sends its body.
type Action struct {
	Method string `json:"method"`
	Path   string `json:"path"`
}

// Error is a validation failure: Path locates the value ("pages[1].widgets[0].fields[2].key").
type Error struct {
	Path   string
	Reason string
}

func (e *Error) Error() string {
	if e.Path == "" {
		return "ui manifest: " + e.Reason
	}
	return "ui manifest: " + e.Path + ": " + e.Reason
}

// ErrInvalid is wrapped by every decode and validation failure.
var ErrInvalid = errors.New("invalid ui manifest")

func (e *Error) Unwrap() error { return ErrInvalid }

func errAt(path, format string, args ...any) error {
	return &Error{Path: path, Reason: fmt.Sprintf(format, args...)}
}

var (
	idRE  = regexp.MustCompile(`^[a-z][a-z0-9-]{0,39}$`)
	keyRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,39}$`)
	// pathRE: cluster-scoped API paths, {cluster} the only placeholder.
	pathRE  = regexp.MustCompile(`^/v1/clusters/\{cluster\}(/[a-z0-9][a-z0-9-]{0,39}){0,4}$`)
	roleRE  = regexp.MustCompile(`^[a-z][a-z0-9-]{0,39}$`)
	markups = []string{"<", ">", "{{", "}}", "javascript:", "data:", "\\u003c"}
)

// forbiddenKeyParts: a field key containing one of these names topology,
// a cache, a secret or a credential, and is refused.
var forbiddenKeyParts = []string{
	"addr", "address", "endpoint", "hostname", "host", "ip", "peer", "route", "link", "mesh", "gossip", "noise", "topology", "port",
	"cache", "secret", "token", "password", "passwd", "private", "key", "credential", "cert", "seed", "totp", "recovery", "cookie", "session",
	"script", "html", "code", "eval",
}

// ForbiddenKey reports whether a field key names topology, a cache, a
// secret, a credential or code (matched on its underscore-separated words
// and on the whole key).
func ForbiddenKey(key string) bool {
	k := strings.ToLower(key)
	for _, part := range forbiddenKeyParts {
		if k == part || strings.HasPrefix(k, part+"_") || strings.HasSuffix(k, "_"+part) || strings.Contains(k, "_"+part+"_") ||
			strings.HasSuffix(k, part+"s") && (k == part+"s" || strings.HasSuffix(k, "_"+part+"s")) {
			return true
		}
	}
	for _, whole := range []string{"ipv4", "ipv6", "certificate", "fingerprint", "pubkey", "privkey", "password", "secret", "token", "gossip", "noise", "endpoint", "address"} {
		if strings.Contains(k, whole) {
			return true
		}
	}
	return false
}

func checkText(path, s string, required bool) error {
	if s == "" {
		if required {
			return errAt(path, "is required")
		}
		return nil
	}
	if !utf8.ValidString(s) || utf8.RuneCountInString(s) > MaxTextLen {
		return errAt(path, "must be valid UTF-8 of at most %d characters", MaxTextLen)
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return errAt(path, "must be printable text")
		}
	}
	l := strings.ToLower(s)
	for _, m := range markups {
		if strings.Contains(l, m) {
			return errAt(path, "must be plain text (no markup or code: %q)", m)
		}
	}
	return nil
}

// Validate checks every rule of the schema.
func (m *Manifest) Validate() error {
	if m.Schema != Schema {
		return errAt("schema", "must be %d", Schema)
	}
	if err := checkText("title", m.Title, true); err != nil {
		return err
	}
	if len(m.RequiresRoles) > MaxRequireRoles {
		return errAt("requires_roles", "at most %d roles", MaxRequireRoles)
	}
	for i, r := range m.RequiresRoles {
		if !roleRE.MatchString(r) || slices.Contains(m.RequiresRoles[:i], r) {
			return errAt(fmt.Sprintf("requires_roles[%d]", i), "must be a distinct role name")
		}
	}
	if len(m.Pages) == 0 || len(m.Pages) > MaxPages {
		return errAt("pages", "must hold 1 to %d pages", MaxPages)
	}
	seen := map[string]bool{}
	for i, p := range m.Pages {
		at := fmt.Sprintf("pages[%d]", i)
		if !idRE.MatchString(p.ID) {
			return errAt(at+".id", "must match %s", idRE)
		}
		if seen[p.ID] {
			return errAt(at+".id", "duplicate page id %q", p.ID)
		}
		seen[p.ID] = true
		if err := checkText(at+".title", p.Title, true); err != nil {
			return err
		}
		if !pathRE.MatchString(p.Source) {
			return errAt(at+".source", "must be a cluster API path /v1/clusters/{cluster}/…")
		}
		if len(p.Widgets) == 0 || len(p.Widgets) > MaxWidgets {
			return errAt(at+".widgets", "must hold 1 to %d widgets", MaxWidgets)
		}
		for j, w := range p.Widgets {
			if err := w.validate(fmt.Sprintf("%s.widgets[%d]", at, j)); err != nil {
				return err
			}
		}
	}
	return nil
}

func (w *Widget) validate(at string) error {
	if !slices.Contains(widgetTypes, w.Type) {
		return errAt(at+".type", "must be one of %s", strings.Join(widgetTypes, ", "))
	}
	if err := checkText(at+".title", w.Title, false); err != nil {
		return err
	}
	if len(w.Fields) == 0 || len(w.Fields) > MaxFields {
		return errAt(at+".fields", "must hold 1 to %d fields", MaxFields)
	}
	allowed := fieldTypes
	if w.Type == WidgetForm {
		allowed = formFieldTypes
		if w.Action == nil {
			return errAt(at+".action", "a form needs an action")
		}
		if !slices.Contains(formMethods, w.Action.Method) {
			return errAt(at+".action.method", "must be one of %s", strings.Join(formMethods, ", "))
		}
		if !pathRE.MatchString(w.Action.Path) {
			return errAt(at+".action.path", "must be a cluster API path /v1/clusters/{cluster}/…")
		}
	} else if w.Action != nil {
		return errAt(at+".action", "only forms have an action")
	}
	keys := map[string]bool{}
	for k, f := range w.Fields {
		fat := fmt.Sprintf("%s.fields[%d]", at, k)
		if !keyRE.MatchString(f.Key) {
			return errAt(fat+".key", "must match %s", keyRE)
		}
		if ForbiddenKey(f.Key) {
			return errAt(fat+".key", "%q names topology, a cache, a secret, a credential or code", f.Key)
		}
		if keys[f.Key] {
			return errAt(fat+".key", "duplicate key %q", f.Key)
		}
		keys[f.Key] = true
		if err := checkText(fat+".label", f.Label, true); err != nil {
			return err
		}
		if !slices.Contains(allowed, f.Type) {
			return errAt(fat+".type", "must be one of %s", strings.Join(allowed, ", "))
		}
	}
	return nil
}

// Decode reads one manifest strictly: at most MaxBytes, no unknown fields,
// no duplicate keys, nothing after it, and it must Validate.
func Decode(raw []byte) (*Manifest, error) {
	if len(raw) > MaxBytes {
		return nil, errAt("", "larger than %d bytes", MaxBytes)
	}
	if err := checkShape(raw); err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, errAt("", "%s", err.Error())
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errAt("", "trailing data after the manifest")
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// checkShape walks the JSON tokens: one top-level object, nesting at most
// maxDepth, no object with a key twice (encoding/json would keep the last).
func checkShape(raw []byte) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	type frame struct {
		obj    bool
		keys   map[string]bool
		expKey bool
	}
	var stack []*frame
	first := true
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			if first {
				return errAt("", "empty document")
			}
			return nil
		}
		if err != nil {
			return errAt("", "malformed JSON: %s", err.Error())
		}
		if first {
			if d, ok := tok.(json.Delim); !ok || d != '{' {
				return errAt("", "must be a JSON object")
			}
		}
		first = false
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.obj && top.expKey {
			if d, ok := tok.(json.Delim); ok && d == '}' {
				stack = stack[:len(stack)-1]
				if len(stack) > 0 && stack[len(stack)-1].obj {
					stack[len(stack)-1].expKey = true
				}
				continue
			}
			k, _ := tok.(string)
			if top.keys[k] {
				return errAt("", "duplicate key %q", k)
			}
			top.keys[k] = true
			top.expKey = false
			continue
		}
		switch d, _ := tok.(json.Delim); d {
		case '{', '[':
			if len(stack) >= maxDepth {
				return errAt("", "nested deeper than %d levels", maxDepth)
			}
			stack = append(stack, &frame{obj: d == '{', keys: map[string]bool{}, expKey: d == '{'})
		case '}', ']':
			stack = stack[:len(stack)-1]
			if len(stack) > 0 && stack[len(stack)-1].obj {
				stack[len(stack)-1].expKey = true
			}
		default:
			if top != nil && top.obj {
				top.expKey = true
			}
		}
		if len(stack) == 0 {
			// The top-level object closed: anything after it is trailing.
			if _, err := dec.Token(); !errors.Is(err, io.EOF) {
				return errAt("", "trailing data after the manifest")
			}
			return nil
		}
	}
}

// Encode returns the canonical JSON of a valid manifest.
func (m *Manifest) Encode() ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return json.Marshal(m)
}

// Page returns the page with id, or nil.
func (m *Manifest) Page(id string) *Page {
	for i := range m.Pages {
		if m.Pages[i].ID == id {
			return &m.Pages[i]
		}
	}
	return nil
}

//go:embed cluster_admin.json
var clusterAdmin []byte

// ClusterAdmin returns the built-in page definitions of the Cluster Admin
// Endpoint (cluster_admin.json), decoded with the same strict decoder.
func ClusterAdmin() (*Manifest, error) { return Decode(clusterAdmin) }

// ClusterAdminJSON returns the raw built-in page definitions.
func ClusterAdminJSON() []byte { return bytes.Clone(clusterAdmin) }
