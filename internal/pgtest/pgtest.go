// Package pgtest gives tests an isolated, migrated PostgreSQL database.
//
// It uses DATABASE_URL when set, and otherwise starts (or reuses) the work tree's
// private instance through scripts/pg.sh. Each call creates a fresh database, so
// packages and tests run in parallel without sharing state; the database is
// dropped when the test ends. When PostgreSQL cannot be had the test fails — it
// never skips. Test-only: production code must not import this package.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rap-fabric/core/migrations"
)

var (
	baseOnce sync.Once
	baseURL  string
	baseErr  error
)

// BaseURL returns the URL of the server's maintenance database, starting the
// private instance when needed.
func BaseURL() (string, error) {
	baseOnce.Do(func() {
		if u := os.Getenv("DATABASE_URL"); u != "" {
			baseURL = u
			return
		}
		root, err := repoRoot()
		if err != nil {
			baseErr = err
			return
		}
		cmd := exec.Command(filepath.Join(root, "scripts", "pg.sh"), "url")
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			baseErr = fmt.Errorf("pgtest: scripts/pg.sh url: %w", err)
			return
		}
		baseURL = strings.TrimSpace(string(out))
	})
	return baseURL, baseErr
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("pgtest: go.mod not found above the working directory")
		}
		dir = parent
	}
}

// withDatabase returns u with its database name replaced.
func withDatabase(u, name string) (string, error) {
	p, err := url.Parse(u)
	if err != nil {
		return "", err
	}
	p.Path = "/" + name
	return p.String(), nil
}

// New creates a fresh, migrated database for t and returns its URL.
func New(t testing.TB) string {
	t.Helper()
	base, err := BaseURL()
	if err != nil {
		t.Fatalf("pgtest: PostgreSQL is required and could not be started: %v", err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "rap_test_" + hex.EncodeToString(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	admin, err := withDatabase(base, "postgres")
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatalf("pgtest: connect to %s: %v", admin, err)
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		conn.Close(ctx)
		t.Fatalf("pgtest: create database: %v", err)
	}
	conn.Close(ctx)
	dbURL, _ := withDatabase(base, name)
	if _, err := migrations.ApplyURL(ctx, dbURL); err != nil {
		t.Fatalf("pgtest: migrate: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, admin)
		if err != nil {
			t.Logf("pgtest: drop %s: %v", name, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Logf("pgtest: drop %s: %v", name, err)
		}
	})
	return dbURL
}
