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
	for _, n := range []string{"-1", "65"} {
		err = run(append(base, "--heartbeat-flushers", n), false)
		if err == nil || !strings.Contains(err.Error(), "--heartbeat-flushers") {
			t.Fatalf("--heartbeat-flushers %s: want an error naming the flag, got %v", n, err)
		}
	}
	err = run(append(base, "--quorum-timeout", "-1s"), false)
	if err == nil || !strings.Contains(err.Error(), "--quorum-timeout") {
		t.Fatalf("want an error naming --quorum-timeout, got %v", err)
	}
	t.Setenv("RAP_AUTHORITY_HEARTBEAT_MAX_BATCH", "-3")
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

// TestRunConfigFileRefusesMistakes: the --config file of run refuses an
// unknown key and an invalid value, naming the key; the environment wins
// over the file, the command line over both; the old RAP_ names still work.
func TestRunConfigFileRefusesMistakes(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "authority.json")
	write := func(s string) {
		if err := os.WriteFile(cfg, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(`{"id":"a1","data-dir":"` + filepath.Join(dir, "data") + `","database-url":"postgres://127.0.0.1:1/none","heartbeat-late-afer":"5s"}`)
	err := run([]string{"--config", cfg}, false)
	if err == nil || !strings.Contains(err.Error(), `unknown key "heartbeat-late-afer"`) {
		t.Fatalf("want an unknown-key error, got %v", err)
	}
	write(`{"id":"a1","heartbeat-max-batch":"lots"}`)
	err = run([]string{"--config", cfg}, false)
	if err == nil || !strings.Contains(err.Error(), `key "heartbeat-max-batch": invalid value "lots"`) {
		t.Fatalf("want an invalid-value error naming the key, got %v", err)
	}
	t.Setenv("RAP_AUTHORITY_ELECTION_TIMEOUT", "never")
	r := newRunFlags("run")
	if err := r.parse(nil); err == nil || !strings.Contains(err.Error(), "RAP_AUTHORITY_ELECTION_TIMEOUT") {
		t.Fatalf("want an error naming the variable, got %v", err)
	}
	t.Setenv("RAP_AUTHORITY_ELECTION_TIMEOUT", "")
	t.Setenv("RAP_AUTHORITY_HEARTBEAT_LATE_AFTR", "5s")
	r = newRunFlags("run")
	if err := r.parse(nil); err == nil || !strings.Contains(err.Error(), "RAP_AUTHORITY_HEARTBEAT_LATE_AFTR: no such setting") {
		t.Fatalf("want a misspelt variable refused by name, got %v", err)
	}
	os.Unsetenv("RAP_AUTHORITY_HEARTBEAT_LATE_AFTR")
	// Precedence: flag > environment > file; a legacy name still applies.
	write(`{"id":"from-file","log-level":"debug","raft-bind":"127.0.0.1:7100","heartbeat-max-batch":7,"heartbeat-flushers":2}`)
	t.Setenv("RAP_AUTHORITY_LOG_LEVEL", "warn")
	t.Setenv("RAP_HEARTBEAT_RETENTION", "3h")
	r = newRunFlags("run")
	if err := r.parse([]string{"--config", cfg, "--raft-bind", "127.0.0.1:7200"}); err != nil {
		t.Fatal(err)
	}
	if *r.id != "from-file" || *r.logLevel != "warn" || *r.raftBind != "127.0.0.1:7200" || *r.hbMaxBatch != 7 || *r.hbFlushers != 2 || r.hbRetention.String() != "3h0m0s" {
		t.Fatalf("precedence: id=%s log=%s raft=%s batch=%d retention=%s", *r.id, *r.logLevel, *r.raftBind, *r.hbMaxBatch, *r.hbRetention)
	}
}
