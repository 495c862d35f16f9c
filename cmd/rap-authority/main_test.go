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

// TestObserveFlags: --log-format accepts text and json only; metrics and
// pprof listeners off the loopback interface are refused naming the flag,
// before anything starts.
func TestObserveFlags(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	base := []string{"--id", "a1", "--data-dir", dir, "--database-url", "postgres://127.0.0.1:1/none"}
	for _, c := range []struct {
		args []string
		flag string
	}{
		{[]string{"--log-format", "xml"}, "--log-format"},
		{[]string{"--metrics-listen", "0.0.0.0:9464"}, "--metrics-listen"},
		{[]string{"--metrics-listen", ":9464"}, "--metrics-listen"},
		{[]string{"--debug-listen", "10.0.0.1:6060"}, "--debug-listen"},
		{[]string{"--metrics-token-file", filepath.Join(t.TempDir(), "missing")}, "--metrics-token-file"},
	} {
		err := run(append(base, c.args...), false)
		if err == nil || !strings.Contains(err.Error(), c.flag) {
			t.Fatalf("%v: want an error naming %s, got %v", c.args, c.flag, err)
		}
	}
	short := filepath.Join(t.TempDir(), "tok")
	if err := os.WriteFile(short, []byte("short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := run(append(base, "--metrics-token-file", short), false); err == nil || !strings.Contains(err.Error(), "at least 16") {
		t.Fatalf("a short scrape token: %v", err)
	}
	for _, f := range []string{"text", "json"} {
		o := observeFlags{logFormat: &f}
		if _, err := o.logger("x", "info"); err != nil {
			t.Fatalf("--log-format %s: %v", f, err)
		}
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("the data dir was created before the flags were checked: %v", err)
	}
}
