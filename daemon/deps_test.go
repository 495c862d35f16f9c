package daemon

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/rap-fabric/core/"

// importers of this composition root besides tests: the binary it assembles
// and the test harness that starts authorities in-process (test-only).
var mayImportDaemon = map[string]bool{
	module + "cmd/rap-authority": true,
	module + "internal/authtest": true,
}

// listImports returns the direct (non-test) imports of every package of the
// module.
func listImports(t *testing.T) map[string][]string {
	t.Helper()
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, module+"...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	m := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) > 0 {
			m[f[0]] = f[1:]
		}
	}
	return m
}

// listDeps returns the transitive (non-test) dependencies of pkg.
func listDeps(t *testing.T, pkg string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", pkg).Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v", pkg, err)
	}
	return strings.Fields(string(out))
}

// TestOnlyTheBinaryImportsTheCompositionRoot holds the top of the house: no
// package below the composition root imports it, and it is the only package
// that imports both the authority service and the HTTP API.
func TestOnlyTheBinaryImportsTheCompositionRoot(t *testing.T) {
	self := module + "daemon"
	for pkg, imports := range listImports(t) {
		var auth, api bool
		for _, imp := range imports {
			switch imp {
			case self:
				if !mayImportDaemon[pkg] {
					t.Errorf("%s imports the composition root %s; only cmd/rap-authority may", pkg, self)
				}
			case module + "authority":
				auth = true
			case module + "httpapi":
				api = true
			}
		}
		if auth && api && pkg != self {
			t.Errorf("%s imports both authority and httpapi; only the composition root %s may wire them", pkg, self)
		}
	}
}

// TestAuthorityDoesNotImportHTTP keeps the service layer below the HTTP layer:
// nothing under authority/ depends on httpapi or on this package.
func TestAuthorityDoesNotImportHTTP(t *testing.T) {
	for _, pkg := range []string{module + "authority", module + "authority/raftnode"} {
		for _, dep := range listDeps(t, pkg) {
			if strings.HasPrefix(dep, module+"httpapi") || dep == module+"daemon" {
				t.Errorf("%s depends on %s", pkg, dep)
			}
		}
	}
}

// layers is docs/packages.md as data: for each package (or, ending in "/",
// every package below a prefix; the longest match wins) the module packages
// it may import, as exact paths or "/"-ending prefixes. Test-support
// packages (nil) may import anything; production code may not import them
// (integration/deps_test.go).
var layers = map[string][]string{
	// Pure leaves.
	"domain": {}, "audit": {}, "authn": {}, "jointoken": {}, "pki": {}, "migrations": {},
	"promsink": {}, "loopback": {}, // observability: go-metrics bridge; loopback metrics/pprof listeners
	"fsm": {"domain"}, "snapshot": {"domain"}, "agentapi": {"domain"},
	"agent/statusclient": {}, "workloadspec": {}, "vpnrules": {}, "release": {}, "rollout": {},
	"mesh/":    {"mesh/", "domain"},
	"mesh/qos": {}, // per-link QoS send queue (pure: no frames, peers or sockets)
	// Authority side, bottom up.
	"store":              {"authn", "domain"},
	"apiclient":          {"pki"},
	"authority":          {"agentapi", "audit", "authn", "domain", "fsm", "jointoken", "pki", "release", "rollout", "snapshot", "store", "vpnrules", "workloadspec"},
	"authority/raftnode": {"fsm"},
	"httpapi":            {"agentapi", "authn", "authority", "domain", "httpapi/console", "pki", "release", "store"},
	"httpapi/console":    {"authority", "domain", "store"},
	"daemon":             {"authority", "authority/raftnode", "fsm", "httpapi", "loopback", "migrations", "pki", "promsink", "store"},
	// Agent side: never the authority side.
	"agent/": {"agent/", "agentapi", "apiclient", "domain", "loopback", "mesh/", "promsink", "release", "snapshot", "workloadspec"},
	// Binaries.
	"cmd/rap-authority":           {"apiclient", "authority", "daemon", "fsm", "migrations", "store"},
	"cmd/rap-node-agent":          {"agent/", "domain"},
	"cmd/rapctl":                  {"agent/statusclient", "apiclient", "release"},
	"cmd/rap-node-agent-launcher": {"agent/updater"},
	// Test support.
	"internal/": nil, "integration": nil, "integration/": nil, "bench": nil, "authority/raftnode/rafttest": nil,
}

// flagconf, the settings loader of every binary (issue 22), is a pure leaf.
func init() {
	layers["flagconf"] = []string{}
	for _, b := range []string{"cmd/rap-authority", "cmd/rap-node-agent", "cmd/rapctl"} {
		layers[b] = append(layers[b], "flagconf")
	}
}

// uimanifest, the Cluster Admin Endpoint's page definitions (issue 18), is a
// pure leaf read by the authority (which serves them) and the agent (which
// renders them).
func init() {
	layers["uimanifest"] = []string{}
	layers["authority"] = append(layers["authority"], "uimanifest")
	layers["agent/"] = append(layers["agent/"], "uimanifest")
}

func layerOf(pkg string) (allowed []string, known bool) {
	best := -1
	for k, v := range layers {
		if (k == pkg || strings.HasSuffix(k, "/") && strings.HasPrefix(pkg, k)) && len(k) > best {
			best, allowed = len(k), v
		}
	}
	return allowed, best >= 0
}

// TestLayering keeps docs/packages.md true: every package imports only the
// module packages its layer allows, and every package belongs to a layer.
func TestLayering(t *testing.T) {
	for pkg, imports := range listImports(t) {
		rel := strings.TrimPrefix(pkg, module)
		allowed, known := layerOf(rel)
		if !known {
			t.Errorf("%s belongs to no layer: add it to docs/packages.md and to layers in daemon/deps_test.go", rel)
			continue
		}
		if allowed == nil {
			continue // test support
		}
		for _, imp := range imports {
			dep, ok := strings.CutPrefix(imp, module)
			if !ok {
				continue
			}
			permitted := false
			for _, a := range allowed {
				if dep == a || strings.HasSuffix(a, "/") && strings.HasPrefix(dep, a) {
					permitted = true
				}
			}
			if !permitted {
				t.Errorf("%s imports %s, which its layer does not allow (docs/packages.md)", rel, dep)
			}
		}
	}
}
