package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRunConfigRefusesMistakes: rap-node-agent run refuses an unknown key
// and an invalid value in its --config file, and an invalid RAP_AGENT_
// variable, naming each, before it opens the state file.
func TestRunConfigRefusesMistakes(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "agent.json")
	state := filepath.Join(dir, "state.db")
	for _, tc := range []struct{ file, env, want string }{
		{`{"state":"` + state + `","intervall":"5s"}`, "", `unknown key "intervall"`},
		{`{"state":"` + state + `","interval":"often"}`, "", `key "interval": invalid value "often"`},
		{`{"state":"` + state + `"}`, "soon", `RAP_AGENT_REQUEST_TIMEOUT="soon": invalid value for --request-timeout`},
		{`{"state":"` + state + `"}`, "typo", `RAP_AGENT_INTERVALL: no such setting`},
	} {
		if err := os.WriteFile(cfg, []byte(tc.file), 0o600); err != nil {
			t.Fatal(err)
		}
		if tc.env == "typo" {
			t.Setenv("RAP_AGENT_REQUEST_TIMEOUT", "")
			t.Setenv("RAP_AGENT_INTERVALL", "5s")
		} else {
			t.Setenv("RAP_AGENT_REQUEST_TIMEOUT", tc.env)
		}
		err := run([]string{"--config", cfg})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("%s: want %q, got %v", tc.file, tc.want, err)
		}
		if _, err := os.Stat(state); !os.IsNotExist(err) {
			t.Fatalf("the state file was opened before the settings were checked: %v", err)
		}
	}
}
