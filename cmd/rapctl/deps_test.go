package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestRapctlDependencies holds the boundary of the owner CLI: it talks to the
// authorities' API and, for `mesh ping`, to the local agent's status socket
// through agent/statusclient; it never links the agent runtime, its state
// store (bbolt), gossip (memberlist), the mesh or the authority side.
func TestRapctlDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	const m = "github.com/rap-fabric/core/"
	banned := []string{"go.etcd.io/bbolt", "github.com/hashicorp/memberlist", m + "mesh/", m + "agent/runtime", m + "agent/meshrun",
		m + "agent/state", m + "authority", m + "store", m + "fsm", m + "daemon", "github.com/jackc/pgx", "github.com/hashicorp/raft"}
	for _, dep := range strings.Fields(string(out)) {
		for _, b := range banned {
			if strings.HasPrefix(dep, b) {
				t.Errorf("rapctl depends on %s", dep)
			}
		}
	}
}
