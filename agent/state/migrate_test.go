package state

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
)

// schema1File makes a state file at schema 1 with one applied snapshot, as
// an agent from before migration 1 → 2 wrote it.
func schema1File(t *testing.T) string {
	path := filepath.Join(t.TempDir(), "state.db")
	s := openT(t, path, newClock())
	require.NoError(t, s.PutIdentity("c", testIdentity(t, "c", "n")))
	require.NoError(t, s.Close())
	db, err := bolt.Open(path, 0o600, nil)
	require.NoError(t, err)
	require.NoError(t, db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketClusters).Bucket([]byte("c"))
		if err := b.Put(keySnapshot, []byte("snapshot-1")); err != nil {
			return err
		}
		if err := b.Put(keyAppliedVersion, u64(1)); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Put(keySchemaVersion, u64(1))
	}))
	require.NoError(t, db.Close())
	return path
}

func rawDigest(t *testing.T, path string) []byte {
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	require.NoError(t, err)
	defer db.Close()
	var out []byte
	require.NoError(t, db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketClusters).Bucket([]byte("c")).Get(keyAppliedSHA256); v != nil {
			out = append([]byte(nil), v...)
		}
		return nil
	}))
	return out
}

// TestOlderSchemaIsNotMigratedWithoutDeclaration: opening a schema 1 file
// keeps it at schema 1 (no digest written), and it stays fully usable.
func TestOlderSchemaIsNotMigratedWithoutDeclaration(t *testing.T) {
	path := schema1File(t)
	s := openT(t, path, newClock())
	require.Equal(t, uint64(1), s.Schema())
	require.NoError(t, s.AdvanceAppliedVersion("c", 2, []byte("snapshot-2")))
	snap, err := s.AppliedSnapshot("c")
	require.NoError(t, err)
	sum := sha256.Sum256([]byte("snapshot-2"))
	require.Equal(t, hex.EncodeToString(sum[:]), snap.SHA256, "computed for schema 1 files")
	require.NoError(t, s.Close())
	require.Nil(t, rawDigest(t, path))
}

// TestMigrateBackfillsAndRecords: plan, preflight, backup and migrate 1 → 2;
// the backup is the pre-migration file; unknown checks, lower and newer
// schemas are refused without a change.
func TestMigrateBackfillsAndRecords(t *testing.T) {
	path := schema1File(t)
	s := openT(t, path, newClock())
	steps, err := s.PlanMigration(2)
	require.NoError(t, err)
	require.Len(t, steps, 1)
	require.Equal(t, uint64(1), steps[0].From)
	_, err = s.PlanMigration(SchemaVersion + 1)
	require.ErrorIs(t, err, ErrNewerSchema)
	require.ErrorIs(t, s.Preflight([]string{"no-such-check"}), ErrPreflight)
	require.NoError(t, s.Preflight([]string{PreflightIntegrity, PreflightDiskSpace}))

	backup := path + ".bak"
	require.NoError(t, s.Backup(backup))
	fi, err := os.Stat(backup)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	require.NoError(t, s.Migrate(2, "test", backup))
	require.Equal(t, uint64(2), s.Schema())
	hist, err := s.Migrations()
	require.NoError(t, err)
	require.Len(t, hist, 1)
	require.Equal(t, MigrationRecord{From: 1, To: 2, At: hist[0].At, By: "test", Backup: backup, StepNames: []string{steps[0].Name}}, hist[0])
	_, err = s.PlanMigration(1)
	require.ErrorIs(t, err, ErrNoMigrationPath)
	// Schema 2 writes the digest with every applied snapshot.
	require.NoError(t, s.AdvanceAppliedVersion("c", 2, []byte("snapshot-2")))
	require.NoError(t, s.Close())
	sum := sha256.Sum256([]byte("snapshot-2"))
	require.Equal(t, hex.EncodeToString(sum[:]), string(rawDigest(t, path)))

	// The backup is the schema 1 file with the old snapshot and no digest.
	b := openT(t, backup, newClock())
	require.Equal(t, uint64(1), b.Schema())
	v, err := b.AppliedVersion("c")
	require.NoError(t, err)
	require.Equal(t, uint64(1), v)
	require.NoError(t, b.Close())
	require.Nil(t, rawDigest(t, backup))
}

// TestMigrateBackfillsExistingSnapshot: the 1 → 2 step writes the digest of
// the snapshot already applied.
func TestMigrateBackfillsExistingSnapshot(t *testing.T) {
	path := schema1File(t)
	s := openT(t, path, newClock())
	require.NoError(t, s.Migrate(2, "test", ""))
	require.NoError(t, s.Close())
	sum := sha256.Sum256([]byte("snapshot-1"))
	require.Equal(t, hex.EncodeToString(sum[:]), string(rawDigest(t, path)))
}

// TestBuildSchemaCapsFilesAndRefusesNewer: a build that understands only
// schema 1 creates schema 1 files and refuses a schema 2 file untouched.
func TestBuildSchemaCapsFilesAndRefusesNewer(t *testing.T) {
	old := buildSchema
	t.Cleanup(func() { buildSchema = old })
	buildSchema = "1"
	require.Equal(t, uint64(1), MaxSchema())
	path := filepath.Join(t.TempDir(), "state.db")
	s := openT(t, path, newClock())
	require.Equal(t, uint64(1), s.Schema())
	require.NoError(t, s.Close())
	buildSchema = ""
	s = openT(t, path, newClock())
	require.NoError(t, s.Migrate(2, "test", ""))
	require.NoError(t, s.Close())
	buildSchema = "1"
	_, err := Open(path, Options{})
	require.ErrorIs(t, err, ErrNewerSchema)
}
