package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestBootstrapOwnerReadsTheRunConfig: bootstrap-owner --config takes the
// database URL and KEK file of the authority's JSON config unless a flag
// gave them; a broken file is an error naming it.
func TestBootstrapOwnerReadsTheRunConfig(t *testing.T) {
	p := filepath.Join(t.TempDir(), "authority.json")
	if err := os.WriteFile(p, []byte(`{"id":"auth-1","database-url":"postgres://db/rap","kek-file":"/etc/rap-fabric/kek"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	db, kek := "from-env", ""
	if err := fromConfigFile(p, map[string]*string{"database-url": &db, "kek-file": &kek}, map[string]bool{}); err != nil {
		t.Fatal(err)
	}
	if db != "postgres://db/rap" || kek != "/etc/rap-fabric/kek" {
		t.Fatalf("got %q %q", db, kek)
	}
	db = "postgres://flag/rap"
	if err := fromConfigFile(p, map[string]*string{"database-url": &db}, map[string]bool{"database-url": true}); err != nil {
		t.Fatal(err)
	}
	if db != "postgres://flag/rap" {
		t.Fatalf("the flag lost to the file: %q", db)
	}
	if err := os.WriteFile(p, []byte(`{"id":`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := fromConfigFile(p, map[string]*string{"database-url": &db}, nil); err == nil {
		t.Fatal("a broken config file was accepted")
	}
}
