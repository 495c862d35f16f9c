package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLauncherDependencies holds the boundary: the launcher runs on every
// node beside the agent and never links the authority side, nor the agent's
// mesh (it only reads the status socket and the state file).
func TestLauncherDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range []string{"github.com/jackc/pgx", "github.com/hashicorp/raft", "github.com/rap-fabric/core/authority",
			"github.com/rap-fabric/core/store", "github.com/rap-fabric/core/fsm", "github.com/flynn/noise"} {
			if strings.HasPrefix(dep, banned) {
				t.Errorf("rap-node-agent-launcher depends on %s", dep)
			}
		}
	}
}
