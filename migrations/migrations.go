// Package migrations embeds the PostgreSQL schema of the RAP Fabric Core and
// applies it with github.com/jackc/tern/v2.
//
// Files are named NNN_name.sql and applied in order; tern serializes concurrent
// migrators with a PostgreSQL advisory lock, so several authorities starting at
// once are safe. This package owns the schema only; it holds no queries.
package migrations

import (
	"context"
	"embed"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/tern/v2/migrate"
)

//go:embed *.sql
var files embed.FS

// VersionTable is the table in which tern records the applied schema version.
const VersionTable = "rap_schema_version"

// NewerSchemaError: the database's schema is newer than the newest migration
// this binary embeds. An older binary never runs against a newer schema and
// never migrates down (docs/operations.md, "Rolling back authorities").
type NewerSchemaError struct {
	// Database is the schema version recorded in the database; Binary the
	// newest version this binary knows.
	Database, Binary int32
}

func (e *NewerSchemaError) Error() string {
	return fmt.Sprintf("migrations: the database schema is at version %d, newer than this binary's newest migration %d: "+
		"this binary is older than the schema and refuses to run against it; start the newer binary, or restore the "+
		"PostgreSQL backup taken before the upgrade (docs/operations.md, Rolling back authorities)", e.Database, e.Binary)
}

// Apply brings the database at conn up to the newest schema version and returns
// the version it ends at.
func Apply(ctx context.Context, conn *pgx.Conn) (int32, error) {
	m, err := migrate.NewMigrator(ctx, conn, VersionTable)
	if err != nil {
		return 0, fmt.Errorf("migrations: new migrator: %w", err)
	}
	if err := m.LoadMigrations(files); err != nil {
		return 0, fmt.Errorf("migrations: load: %w", err)
	}
	cur, err := m.GetCurrentVersion(ctx)
	if err != nil {
		return 0, fmt.Errorf("migrations: current version: %w", err)
	}
	if int(cur) > len(m.Migrations) {
		return cur, &NewerSchemaError{Database: cur, Binary: int32(len(m.Migrations))}
	}
	if err := m.Migrate(ctx); err != nil {
		return 0, fmt.Errorf("migrations: migrate: %w", err)
	}
	v, err := m.GetCurrentVersion(ctx)
	if err != nil {
		return 0, fmt.Errorf("migrations: current version: %w", err)
	}
	return v, nil
}

// ApplyURL connects to databaseURL and applies the migrations.
func ApplyURL(ctx context.Context, databaseURL string) (int32, error) {
	conn, err := pgx.Connect(ctx, databaseURL)
	if err != nil {
		return 0, fmt.Errorf("migrations: connect: %w", err)
	}
	defer conn.Close(context.Background())
	return Apply(ctx, conn)
}

// Latest returns the number of embedded migrations (the newest version).
func Latest() (int, error) {
	names, err := migrate.FindMigrations(files)
	if err != nil {
		return 0, err
	}
	return len(names), nil
}
