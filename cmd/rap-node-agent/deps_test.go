package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestAgentDependencies holds the boundary: the agent binary never links the
// authority side (PostgreSQL driver, Raft, the authority service).
func TestAgentDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range []string{"github.com/jackc/pgx", "github.com/hashicorp/raft", "github.com/rap-fabric/core/authority", "github.com/rap-fabric/core/store", "github.com/rap-fabric/core/fsm"} {
			if strings.HasPrefix(dep, banned) {
				t.Errorf("rap-node-agent depends on %s", dep)
			}
		}
	}
}
