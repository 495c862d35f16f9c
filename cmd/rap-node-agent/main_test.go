package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rap-fabric/core/agent/state"
)

// TestDefaultSocketIsTheUnits: with the default state file, run and status
// use the status socket the systemd unit in deploy/ creates and passes.
func TestDefaultSocketIsTheUnits(t *testing.T) {
	unit, err := os.ReadFile("../../deploy/systemd/rap-node-agent.service")
	if err != nil {
		t.Fatal(err)
	}
	exec := regexp.MustCompile(`(?m)^ExecStart=.*--state (\S+).*--status-socket (\S+)`).FindSubmatch(unit)
	if exec == nil {
		t.Fatal("ExecStart with --state and --status-socket not found in the unit")
	}
	if string(exec[1]) != defaultState {
		t.Fatalf("unit state %s, default %s", exec[1], defaultState)
	}
	if got := socketFor(string(exec[1])); got != string(exec[2]) {
		t.Fatalf("default socket %s, the unit's %s", got, exec[2])
	}
	if !strings.Contains(string(unit), "RuntimeDirectory=rap-node-agent") || filepath.Dir(defaultSocket) != "/run/rap-node-agent" {
		t.Fatal("the unit's runtime directory is not the socket's")
	}
	// Any other state file: the socket lives beside it.
	if got := socketFor("/srv/agent/state.db"); got != "/srv/agent/agent.sock" {
		t.Fatalf("socketFor(custom) = %s", got)
	}
}

// TestStatusWhenAnAgentHoldsTheState: an agent that holds the state file but
// does not answer on the socket asked is reported once, as running, with
// the way out — not as "not running" and "locked" at once.
func TestStatusWhenAnAgentHoldsTheState(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "state.db")
	st, err := state.Open(p, state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	start := time.Now()
	err = status([]string{"--state", p, "--status-socket", filepath.Join(dir, "elsewhere.sock")})
	if err == nil {
		t.Fatal("status answered without an agent")
	}
	msg := err.Error()
	if !strings.Contains(msg, "an agent is running") || !strings.Contains(msg, "--status-socket") || strings.Contains(msg, "not running") {
		t.Fatalf("message: %s", msg)
	}
	t.Logf("answered in %v: %s", time.Since(start).Round(time.Millisecond), msg)
}
