package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Empty creates a fresh database without any migration applied (for tests
// that migrate it themselves, or restore a dump into it) and returns its
// URL; it is dropped when the test ends.
func Empty(t testing.TB) string {
	t.Helper()
	base, err := BaseURL()
	if err != nil {
		t.Fatalf("pgtest: PostgreSQL is required and could not be started: %v", err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "rap_test_" + hex.EncodeToString(b[:])
	admin, err := withDatabase(base, "postgres")
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatalf("pgtest: connect to %s: %v", admin, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
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
	u, _ := withDatabase(base, name)
	return u
}
