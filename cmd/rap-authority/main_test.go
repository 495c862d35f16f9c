package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRunRefusesInvalidSettingsByFlag: an invalid heartbeat setting, from a
// flag or from its RAP_ environment variable, is refused before anything
// starts, with a message naming the flag.
func TestRunRefusesInvalidSettingsByFlag(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	base := []string{"--id", "a1", "--data-dir", dir, "--database-url", "postgres://127.0.0.1:1/none"}
	err := run(append(base, "--heartbeat-late-after", "2m"), false)
	if err == nil || !strings.Contains(err.Error(), "--heartbeat-late-after") {
		t.Fatalf("want an error naming --heartbeat-late-after, got %v", err)
	}
	err = run(append(base, "--quorum-timeout", "-1s"), false)
	if err == nil || !strings.Contains(err.Error(), "--quorum-timeout") {
		t.Fatalf("want an error naming --quorum-timeout, got %v", err)
	}
	t.Setenv("RAP_HEARTBEAT_MAX_BATCH", "-3")
	err = run(base, false)
	if err == nil || !strings.Contains(err.Error(), "--heartbeat-max-batch") {
		t.Fatalf("want an error naming --heartbeat-max-batch, got %v", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("the data dir was created before the config was validated: %v", err)
	}
}
