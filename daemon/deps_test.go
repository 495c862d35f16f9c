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
