package integration

import (
	"os/exec"
	"strings"
	"testing"
)

// TestProductionCodeDoesNotImportTesting: only test-support packages may import
// "testing"; nothing a binary links may.
func TestProductionCodeDoesNotImportTesting(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports ","}}`, "../...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	allowed := map[string]bool{
		"github.com/rap-fabric/core/internal/pgtest":   true,
		"github.com/rap-fabric/core/internal/authtest": true,
		"github.com/rap-fabric/core/internal/testwait": true,
		"github.com/rap-fabric/core/internal/testport": true,
		"github.com/rap-fabric/core/integration/chaos": true,
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, imports, _ := strings.Cut(line, " ")
		if allowed[pkg] || strings.Contains(pkg, "/rafttest") {
			continue
		}
		for _, imp := range strings.Split(imports, ",") {
			if imp == "testing" {
				t.Errorf("%s imports testing", pkg)
			}
		}
	}
	// And no binary links a test-support package.
	for _, bin := range []string{"../cmd/rap-authority", "../cmd/rap-node-agent", "../cmd/rapctl"} {
		deps, err := exec.Command("go", "list", "-deps", bin).Output()
		if err != nil {
			t.Fatalf("go list %s: %v", bin, err)
		}
		for _, d := range strings.Fields(string(deps)) {
			if allowed[d] || strings.Contains(d, "/rafttest") {
				t.Errorf("%s links test-support package %s", bin, d)
			}
		}
	}
}
