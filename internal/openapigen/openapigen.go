// Package openapigen derives the request and response schemas of the API's
// routes from the Go types its handlers decode and encode, and writes them
// into the OpenAPI document that scripts/openapi.py produces (routes,
// summaries, auth). It reads the source of httpapi with go/packages: a route
// registration names the route's method, path and handler; the handler's
// body (and the functions it calls) shows the body type it decodes
// (decodeJSON(w, r, &x), the B of write[B, R]) and the value it answers
// (the R of write/read, List[T] of list[T], the value of writeJSON(w, 2xx, v)).
//
// Tooling and test support only (internal/): httpapi/openapi_test.go checks
// that docs/openapi.json equals Enrich's output and that every route has a
// response schema; `go run ./internal/openapigen/cmd/openapigen` (run by
// scripts/openapi.py) rewrites the document.
package openapigen

import (
	"encoding/json"
	"fmt"
	"go/ast"
	"go/constant"
	"go/types"
	"reflect"
	"regexp"
	"sort"
	"strings"

	"golang.org/x/tools/go/packages"
)

// Module is the module path of the API package.
const Module = "github.com/rap-fabric/core"

// Op is what the source says about one route.
type Op struct {
	Name, Method, Path string
	// Request is the decoded body type (nil: none); Response the answered
	// value's type (nil: not found).
	Request, Response types.Type
	// ResponseStatus is the success status written with Response (0: 200).
	ResponseStatus int
}

// Analysis holds the routes found in httpapi.
type Analysis struct {
	Ops map[string]*Op // key "METHOD path"
	pkg *packages.Package
	// partial are registrations whose path is computed (a loop over
	// actions, a variable set in branches): matched to the document's
	// operations by a constant path prefix or the constant values assigned
	// to the path variable.
	partial []partialOp
}

type partialOp struct {
	op         *Op
	prefix     string   // the path's constant prefix ("" if none)
	candidates []string // constant values of the path variable
	names      []string // constant values (or prefix) of the name
}

// Analyze loads httpapi (dir is the module root) and finds every route.
func Analyze(dir string) (*Analysis, error) {
	cfg := &packages.Config{Dir: dir, Mode: packages.NeedName | packages.NeedTypes | packages.NeedSyntax | packages.NeedTypesInfo | packages.NeedImports | packages.NeedDeps}
	pkgs, err := packages.Load(cfg, Module+"/httpapi")
	if err != nil {
		return nil, err
	}
	if len(pkgs) != 1 || len(pkgs[0].Errors) > 0 {
		return nil, fmt.Errorf("openapigen: loading httpapi: %v", pkgs[0].Errors)
	}
	a := &Analysis{Ops: map[string]*Op{}, pkg: pkgs[0]}
	a.findRoutes()
	return a, nil
}

// funcs maps declared functions and methods to their declarations.
func (a *Analysis) decls() map[types.Object]*ast.FuncDecl {
	out := map[types.Object]*ast.FuncDecl{}
	for _, f := range a.pkg.Syntax {
		for _, d := range f.Decls {
			if fd, ok := d.(*ast.FuncDecl); ok {
				if obj := a.pkg.TypesInfo.Defs[fd.Name]; obj != nil {
					out[obj] = fd
				}
			}
		}
	}
	return out
}

func (a *Analysis) constString(e ast.Expr) (string, bool) {
	tv, ok := a.pkg.TypesInfo.Types[e]
	if !ok || tv.Value == nil || tv.Value.Kind() != constant.String {
		return "", false
	}
	return constant.StringVal(tv.Value), true
}

func (a *Analysis) constInt(e ast.Expr) (int, bool) {
	tv, ok := a.pkg.TypesInfo.Types[e]
	if !ok || tv.Value == nil || tv.Value.Kind() != constant.Int {
		return 0, false
	}
	v, ok := constant.Int64Val(tv.Value)
	return int(v), ok
}

var methods = map[string]bool{"GET": true, "POST": true, "PUT": true, "PATCH": true, "DELETE": true}

// findRoutes walks every call: helper(name, method, path, handler) with
// constant strings, and r.Handle(path, s.wrap(name, h)).Methods(method).
func (a *Analysis) findRoutes() {
	decls := a.decls()
	for _, f := range a.pkg.Syntax {
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			// helper(name, method, path, handler)
			if len(call.Args) == 4 {
				name, ok1 := a.constString(call.Args[0])
				method, ok2 := a.constString(call.Args[1])
				path, ok3 := a.constString(call.Args[2])
				if ok1 && ok2 && ok3 && methods[method] && strings.HasPrefix(path, "/") {
					a.add(&Op{Name: name, Method: method, Path: path}, call.Args[3], decls)
					return true
				}
				if ok2 && methods[method] && !ok3 && a.isString(call.Args[2]) && a.isString(call.Args[0]) {
					a.addPartial(f, method, call.Args[0], call.Args[2], call.Args[3], decls)
					return true
				}
			}
			// r.Handle(path, s.wrap*(name, h)).Methods(method)
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || sel.Sel.Name != "Methods" || len(call.Args) != 1 {
				return true
			}
			method, ok := a.constString(call.Args[0])
			if !ok {
				return true
			}
			inner, ok := sel.X.(*ast.CallExpr)
			if !ok {
				return true
			}
			if s2, ok := inner.Fun.(*ast.SelectorExpr); ok && s2.Sel.Name == "Name" {
				if x, ok := s2.X.(*ast.CallExpr); ok {
					inner = x
				}
			}
			hs, ok := inner.Fun.(*ast.SelectorExpr)
			if !ok || hs.Sel.Name != "Handle" || len(inner.Args) != 2 {
				return true
			}
			path, pathOK := a.constString(inner.Args[0])
			op := &Op{Method: method, Path: path}
			h := inner.Args[1]
			var nameExpr ast.Expr
			if w, ok := h.(*ast.CallExpr); ok {
				if ws, ok := w.Fun.(*ast.SelectorExpr); ok && strings.HasPrefix(ws.Sel.Name, "wrap") && len(w.Args) == 2 {
					nameExpr = w.Args[0]
					op.Name, _ = a.constString(w.Args[0])
					h = w.Args[1]
				}
			}
			if !pathOK {
				if nameExpr != nil {
					a.addPartial(f, method, nameExpr, inner.Args[0], h, decls)
				}
				return true
			}
			a.add(op, h, decls)
			return true
		})
	}
}

func (a *Analysis) isString(e ast.Expr) bool {
	t := a.pkg.TypesInfo.TypeOf(e)
	b, ok := t.Underlying().(*types.Basic)
	return ok && b.Info()&types.IsString != 0
}

// constParts returns the constant prefix of a string expression (X + …), or
// the constant values assigned to a variable in file f.
func (a *Analysis) constParts(f *ast.File, e ast.Expr) (prefix string, values []string) {
	if v, ok := a.constString(e); ok {
		return "", []string{v}
	}
	if b, ok := e.(*ast.BinaryExpr); ok {
		if v, ok := a.constString(b.X); ok {
			return v, nil
		}
	}
	id, ok := e.(*ast.Ident)
	if !ok {
		return "", nil
	}
	obj := a.pkg.TypesInfo.Uses[id]
	ast.Inspect(f, func(n ast.Node) bool {
		as, ok := n.(*ast.AssignStmt)
		if !ok || len(as.Lhs) != len(as.Rhs) {
			return true
		}
		for i, l := range as.Lhs {
			li, ok := l.(*ast.Ident)
			if !ok || (a.pkg.TypesInfo.Defs[li] != obj && a.pkg.TypesInfo.Uses[li] != obj) {
				continue
			}
			if v, ok := a.constString(as.Rhs[i]); ok {
				values = append(values, v)
			}
		}
		return true
	})
	return "", values
}

func (a *Analysis) addPartial(f *ast.File, method string, name, path, handler ast.Expr, decls map[types.Object]*ast.FuncDecl) {
	op := &Op{Method: method}
	a.scan(op, handler, decls, map[ast.Node]bool{}, 0)
	prefix, cands := a.constParts(f, path)
	np, nv := a.constParts(f, name)
	if np != "" {
		nv = []string{np}
	}
	a.partial = append(a.partial, partialOp{op: op, prefix: prefix, candidates: cands, names: nv})
}

// Lookup returns what the source says about the route "METHOD path".
func (a *Analysis) Lookup(method, path string) (*Op, bool) {
	if op, ok := a.Ops[method+" "+path]; ok {
		return op, true
	}
	return a.resolve(method, path)
}

// resolve finds the operation of "METHOD path" among the partial
// registrations.
func (a *Analysis) resolve(method, path string) (*Op, bool) {
	last := path[strings.LastIndex(path, "/")+1:]
	for _, p := range a.partial {
		if p.op.Method != method {
			continue
		}
		match := p.prefix != "" && strings.HasPrefix(path, p.prefix) && !strings.Contains(path[len(p.prefix):], "/")
		for _, c := range p.candidates {
			match = match || c == path
		}
		if !match {
			continue
		}
		op := *p.op
		op.Path = path
		for _, n := range p.names {
			switch {
			case strings.HasSuffix(n, "."):
				op.Name = n + last
			case strings.HasSuffix(n, "."+last):
				op.Name = n
			}
		}
		return &op, true
	}
	return nil, false
}

func (a *Analysis) add(op *Op, handler ast.Expr, decls map[types.Object]*ast.FuncDecl) {
	seen := map[ast.Node]bool{}
	a.scan(op, handler, decls, seen, 0)
	a.Ops[op.Method+" "+op.Path] = op
}

// scan looks through a handler expression for the decoded and answered
// types, following calls into the package's own functions (depth-bounded).
func (a *Analysis) scan(op *Op, n ast.Node, decls map[types.Object]*ast.FuncDecl, seen map[ast.Node]bool, depth int) {
	if n == nil || seen[n] || depth > 4 {
		return
	}
	seen[n] = true
	info := a.pkg.TypesInfo
	ast.Inspect(n, func(x ast.Node) bool {
		switch x := x.(type) {
		case *ast.CallExpr:
			var id *ast.Ident
			switch f := x.Fun.(type) {
			case *ast.Ident:
				id = f
			case *ast.SelectorExpr:
				id = f.Sel
			case *ast.IndexExpr:
				if i, ok := f.X.(*ast.Ident); ok {
					id = i
				}
			case *ast.IndexListExpr:
				if i, ok := f.X.(*ast.Ident); ok {
					id = i
				}
			}
			if id == nil {
				return true
			}
			if inst, ok := info.Instances[id]; ok && inst.TypeArgs != nil {
				ta := inst.TypeArgs
				var last ast.Expr
				if len(x.Args) > 0 {
					last = x.Args[len(x.Args)-1]
				}
				switch id.Name {
				case "write":
					if ta.Len() == 2 {
						if op.Request == nil && !isNoBody(ta.At(0)) {
							op.Request = ta.At(0)
						}
						if op.Response == nil {
							op.Response = a.concrete(ta.At(1), last)
							if len(x.Args) > 0 {
								op.ResponseStatus, _ = a.constInt(x.Args[0])
							}
						}
					}
				case "read":
					if op.Response == nil && ta.Len() == 1 {
						op.Response = a.concrete(ta.At(0), last)
					}
				case "list":
					if op.Response == nil && ta.Len() == 1 {
						op.Response = listOf(a.pkg.Types, a.concrete(ta.At(0), nil))
					}
				}
			}
			switch id.Name {
			case "decodeJSON", "decodeBody":
				if op.Request == nil && len(x.Args) >= 2 {
					if t := info.TypeOf(x.Args[len(x.Args)-1]); t != nil {
						if p, ok := t.(*types.Pointer); ok && concreteType(p.Elem()) {
							op.Request = p.Elem()
						}
					}
				}
			case "writeJSON":
				if op.Response == nil && len(x.Args) == 3 {
					// A constant status must be a success; a computed one
					// (health) answers the same body for every status.
					st, isConst := a.constInt(x.Args[1])
					if !isConst || st >= 200 && st < 300 {
						if t := info.TypeOf(x.Args[2]); t != nil && !isErrorBody(t) && concreteType(t) {
							op.Response, op.ResponseStatus = t, st
						}
					}
				}
			}
			if obj := info.Uses[id]; obj != nil {
				if fd, ok := decls[obj]; ok && fd.Body != nil {
					a.scan(op, fd.Body, decls, seen, depth+1)
				}
			}
		case *ast.SelectorExpr:
			// A method value passed as a handler (s.getCluster).
			if obj := info.Uses[x.Sel]; obj != nil {
				if fd, ok := decls[obj]; ok && fd.Body != nil {
					a.scan(op, fd.Body, decls, seen, depth+1)
				}
			}
		}
		return true
	})
}

// concrete returns t, or when t is an interface (an adapter instantiated
// with any) the static type of the first value the function literal fn
// returns.
func (a *Analysis) concrete(t types.Type, fn ast.Expr) types.Type {
	if _, ok := t.Underlying().(*types.Interface); !ok {
		return t
	}
	lit, ok := fn.(*ast.FuncLit)
	if !ok {
		return t
	}
	var found types.Type
	ast.Inspect(lit.Body, func(n ast.Node) bool {
		if found != nil {
			return false
		}
		switch n := n.(type) {
		case *ast.FuncLit:
			return false
		case *ast.ReturnStmt:
			if len(n.Results) == 0 {
				return true
			}
			rt := a.pkg.TypesInfo.TypeOf(n.Results[0])
			if tup, ok := rt.(*types.Tuple); ok && tup.Len() > 0 {
				rt = tup.At(0).Type()
			}
			if rt == nil {
				return true
			}
			if b, ok := rt.(*types.Basic); ok && b.Kind() == types.UntypedNil {
				return true
			}
			if _, ok := rt.Underlying().(*types.Interface); ok {
				return true
			}
			found = rt
		}
		return true
	})
	if found == nil {
		return t
	}
	return found
}

// concreteType is false for a type parameter or an interface (an adapter's
// own body, not a route's).
func concreteType(t types.Type) bool {
	if _, ok := t.(*types.TypeParam); ok {
		return false
	}
	_, iface := t.Underlying().(*types.Interface)
	return !iface
}

func isNoBody(t types.Type) bool {
	n, ok := t.(*types.Named)
	return ok && n.Obj().Name() == "noBody"
}

func isErrorBody(t types.Type) bool {
	n, ok := t.(*types.Named)
	return ok && n.Obj().Name() == "ErrorBody"
}

// listOf instantiates httpapi.List[T] (the shape list[T] answers).
func listOf(pkg *types.Package, elem types.Type) types.Type {
	obj := pkg.Scope().Lookup("List")
	if obj == nil {
		return types.NewSlice(elem)
	}
	t, err := types.Instantiate(nil, obj.Type(), []types.Type{elem}, true)
	if err != nil {
		return types.NewSlice(elem)
	}
	return t
}

// schemas builds JSON Schemas for Go types, named struct types as
// components.
type schemas struct {
	components map[string]any
}

var nonWord = regexp.MustCompile(`[^A-Za-z0-9_.]+`)

func componentName(n *types.Named) string {
	name := n.Obj().Name()
	if p := n.Obj().Pkg(); p != nil {
		name = p.Name() + "." + name
	}
	if ta := n.TypeArgs(); ta != nil && ta.Len() > 0 {
		var args []string
		for i := 0; i < ta.Len(); i++ {
			args = append(args, types.TypeString(ta.At(i), func(p *types.Package) string { return p.Name() }))
		}
		name += "_" + strings.Join(args, "_")
	}
	return strings.Trim(nonWord.ReplaceAllString(name, "_"), "_")
}

func (s *schemas) of(t types.Type) map[string]any {
	switch t := t.(type) {
	case *types.Pointer:
		return s.of(t.Elem())
	case *types.Alias:
		return s.of(types.Unalias(t))
	case *types.Named:
		obj := t.Obj()
		if p := obj.Pkg(); p != nil {
			switch p.Path() + "." + obj.Name() {
			case "time.Time":
				return map[string]any{"type": "string", "format": "date-time"}
			case "time.Duration":
				return map[string]any{"type": "integer", "description": "nanoseconds"}
			case "encoding/json.RawMessage":
				return map[string]any{}
			case "net/netip.Addr", "net/netip.Prefix", "net/netip.AddrPort":
				return map[string]any{"type": "string"}
			}
		}
		if _, ok := t.Underlying().(*types.Struct); !ok {
			return s.of(t.Underlying())
		}
		if implementsMarshaler(t) {
			return map[string]any{}
		}
		name := componentName(t)
		if _, ok := s.components[name]; !ok {
			s.components[name] = map[string]any{} // break cycles
			s.components[name] = s.of(t.Underlying())
		}
		return map[string]any{"$ref": "#/components/schemas/" + name}
	case *types.Basic:
		switch {
		case t.Info()&types.IsBoolean != 0:
			return map[string]any{"type": "boolean"}
		case t.Info()&types.IsInteger != 0:
			return map[string]any{"type": "integer"}
		case t.Info()&types.IsFloat != 0:
			return map[string]any{"type": "number"}
		case t.Info()&types.IsString != 0:
			return map[string]any{"type": "string"}
		}
		return map[string]any{}
	case *types.Slice:
		if b, ok := t.Elem().(*types.Basic); ok && b.Kind() == types.Byte {
			return map[string]any{"type": "string", "format": "byte"}
		}
		return map[string]any{"type": "array", "items": s.of(t.Elem())}
	case *types.Array:
		return map[string]any{"type": "array", "items": s.of(t.Elem())}
	case *types.Map:
		return map[string]any{"type": "object", "additionalProperties": s.of(t.Elem())}
	case *types.Interface:
		return map[string]any{}
	case *types.Struct:
		props := map[string]any{}
		var required []string
		s.fields(t, props, &required)
		out := map[string]any{"type": "object", "properties": props}
		if len(required) > 0 {
			sort.Strings(required)
			out["required"] = required
		}
		return out
	}
	return map[string]any{}
}

// fields adds a struct's JSON fields (embedded structs inlined, as
// encoding/json does).
func (s *schemas) fields(st *types.Struct, props map[string]any, required *[]string) {
	for i := 0; i < st.NumFields(); i++ {
		f := st.Field(i)
		tag := reflect.StructTag(st.Tag(i)).Get("json")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" && opts == "" {
			continue
		}
		if f.Embedded() && name == "" {
			ft := f.Type()
			if p, ok := ft.(*types.Pointer); ok {
				ft = p.Elem()
			}
			if inner, ok := ft.Underlying().(*types.Struct); ok {
				s.fields(inner, props, required)
				continue
			}
		}
		if !f.Exported() {
			continue
		}
		if name == "" {
			name = f.Name()
		}
		props[name] = s.of(f.Type())
		if !strings.Contains(opts, "omitempty") && !strings.Contains(opts, "omitzero") {
			if _, ptr := f.Type().(*types.Pointer); !ptr {
				*required = append(*required, name)
			}
		}
	}
}

// implementsMarshaler reports a type with its own JSON encoding (its schema
// is then left open).
func implementsMarshaler(t types.Type) bool {
	for _, tt := range []types.Type{t, types.NewPointer(t)} {
		ms := types.NewMethodSet(tt)
		for i := 0; i < ms.Len(); i++ {
			if ms.At(i).Obj().Name() == "MarshalJSON" {
				return true
			}
		}
	}
	return false
}

// Enrich writes the analysed schemas into doc (the JSON document
// scripts/openapi.py writes): a requestBody for every decoded body and the
// success response's schema for every answered value. Operations the
// analysis does not know are left as they are. The output is deterministic.
func (a *Analysis) Enrich(doc []byte) ([]byte, error) {
	var d map[string]any
	if err := json.Unmarshal(doc, &d); err != nil {
		return nil, err
	}
	s := &schemas{components: map[string]any{}}
	paths, _ := d["paths"].(map[string]any)
	for path, v := range paths {
		ops, _ := v.(map[string]any)
		for m, ov := range ops {
			o, _ := ov.(map[string]any)
			an, ok := a.Ops[strings.ToUpper(m)+" "+path]
			if !ok {
				if an, ok = a.resolve(strings.ToUpper(m), path); !ok {
					continue
				}
			}
			if an.Name != "" {
				o["operationId"] = an.Name
			}
			if an.Request != nil {
				o["requestBody"] = map[string]any{"required": true, "content": map[string]any{"application/json": map[string]any{"schema": s.of(an.Request)}}}
			}
			if an.Response != nil {
				resps, _ := o["responses"].(map[string]any)
				for code, rv := range resps {
					if code == "default" {
						continue
					}
					r, _ := rv.(map[string]any)
					r["content"] = map[string]any{"application/json": map[string]any{"schema": s.of(an.Response)}}
				}
			}
		}
	}
	comps, _ := d["components"].(map[string]any)
	sch, _ := comps["schemas"].(map[string]any)
	for k, v := range s.components {
		sch[k] = v
	}
	out, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

// Undocumented lists the operations of doc ("METHOD path") whose success
// response has no schema derived from a Go type, except those in Exempt.
func (a *Analysis) Undocumented(doc []byte) []string {
	var d struct {
		Paths map[string]map[string]struct {
			Responses map[string]struct {
				Content map[string]struct {
					Schema map[string]any `json:"schema"`
				} `json:"content"`
			} `json:"responses"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(doc, &d); err != nil {
		return []string{"unreadable document: " + err.Error()}
	}
	var out []string
	for path, ops := range d.Paths {
		for m, o := range ops {
			key := strings.ToUpper(m) + " " + path
			if _, ok := Exempt[key]; ok {
				continue
			}
			typed := false
			for code, r := range o.Responses {
				if code == "default" {
					continue
				}
				for _, c := range r.Content {
					if _, ok := c.Schema["$ref"]; ok {
						typed = true
					}
					if t, _ := c.Schema["type"].(string); t != "" && t != "object" || len(c.Schema) > 1 {
						typed = true
					}
				}
			}
			if !typed {
				out = append(out, key)
			}
		}
	}
	sort.Strings(out)
	return out
}

// Exempt are operations whose response is not a JSON value of a Go type,
// with the reason.
var Exempt = map[string]string{
	"GET /metrics":                              "Prometheus text exposition format",
	"GET /v1/openapi.json":                      "this document",
	"GET /v1/agent/releases/artifacts/{sha256}": "artifact bytes (application/octet-stream)",
	"POST /v1/agent/heartbeat/stream":           "newline-delimited agentapi.HeartbeatStreamReply (application/x-ndjson)",
	// Organization routes that answer 204 No Content (no body).
	"POST /v1/orgs/{org}/logout":                     "204 No Content",
	"POST /v1/orgs/{org}/sessions/{sid}/revoke":      "204 No Content",
	"DELETE /v1/orgs/{org}/policies/{pid}":           "204 No Content",
	"DELETE /v1/orgs/{org}/resources/{rid}":          "204 No Content",
	"DELETE /v1/organizations/{org}/endpoints/{eid}": "204 No Content",
}
