package state

// Node-local state migrations (spec stage C19). The schema of the state
// file only changes when a signed release manifest declares it
// (migration.node_state: from, to, preflight checks): the agent of the new
// version takes a consistent backup of the file, runs the registered steps
// from → to in one bbolt transaction and records the change in the meta
// bucket. Operators run the same steps with `rap-node-agent state migrate`
// (dry run by default). Without a declaration a newer agent keeps running on
// the file's schema: every schema up to MaxSchema is readable and writable.

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"
)

// buildSchema lowers the newest schema a build understands below
// SchemaVersion (-ldflags "-X github.com/rap-fabric/core/agent/state.buildSchema=1"):
// such a build behaves like an agent released before the later migrations
// existed (it creates files at that schema and refuses newer ones). Release
// builds leave it empty; tests and the demo use it to prove migrations and
// their rollback with real binaries.
var buildSchema string

// MaxSchema returns the newest state schema this build understands.
func MaxSchema() uint64 {
	if buildSchema == "" {
		return SchemaVersion
	}
	v, err := strconv.ParseUint(buildSchema, 10, 64)
	if err != nil || v == 0 || v > SchemaVersion {
		return SchemaVersion
	}
	return v
}

// ErrNoMigrationPath: no registered steps lead from the file's schema to the
// requested one (a downgrade, or a schema this build does not know).
var ErrNoMigrationPath = errors.New("no state migration path")

// ErrPreflight: a declared preflight check failed; nothing was changed.
var ErrPreflight = errors.New("state migration preflight failed")

// MigrationStep describes one registered schema step.
type MigrationStep struct {
	// From and To are the schema versions (To = From + 1).
	From uint64 `json:"from"`
	To   uint64 `json:"to"`
	// Name says what the step does.
	Name string `json:"name"`
}

type migration struct {
	MigrationStep
	up func(tx *bolt.Tx) error
}

// migrations are the registered steps, in order; step i goes from i+1 to
// i+2.
var migrations = []migration{
	{MigrationStep{From: 1, To: 2, Name: "store the sha256 of each applied snapshot beside it (applied_sha256)"}, migrateAppliedDigest},
}

// migrateAppliedDigest (1 → 2) backfills clusters/<id>/applied_sha256 for
// every membership with an applied snapshot.
func migrateAppliedDigest(tx *bolt.Tx) error {
	root := tx.Bucket(bucketClusters)
	if root == nil {
		return fmt.Errorf("%w: clusters bucket missing", ErrCorrupt)
	}
	return root.ForEachBucket(func(k []byte) error {
		b := root.Bucket(k)
		raw := b.Get(keySnapshot)
		if raw == nil {
			return nil
		}
		sum := sha256.Sum256(raw)
		return b.Put(keyAppliedSHA256, []byte(hex.EncodeToString(sum[:])))
	})
}

// fileSchema reads the schema version inside a transaction (0 if absent).
func fileSchema(tx *bolt.Tx) uint64 {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		return 0
	}
	raw := meta.Get(keySchemaVersion)
	if len(raw) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(raw)
}

// Schema returns the file's schema version.
func (s *Store) Schema() uint64 { return s.schema.Load() }

// PlanMigration returns the registered steps from the file's schema to to
// (empty when the file is already there). It fails with ErrNoMigrationPath
// for a lower schema (steps only go forward: a rollback restores the
// backup) and ErrNewerSchema for one above MaxSchema.
func (s *Store) PlanMigration(to uint64) ([]MigrationStep, error) {
	from := s.Schema()
	switch {
	case to > MaxSchema():
		return nil, fmt.Errorf("%w: schema %d requested, this agent supports up to %d", ErrNewerSchema, to, MaxSchema())
	case to < from:
		return nil, fmt.Errorf("%w: the file is at schema %d, %d is lower (restore the backup taken before the migration instead)", ErrNoMigrationPath, from, to)
	}
	var out []MigrationStep
	for v := from; v < to; v++ {
		m, ok := stepFrom(v)
		if !ok {
			return nil, fmt.Errorf("%w: no step from schema %d", ErrNoMigrationPath, v)
		}
		out = append(out, m.MigrationStep)
	}
	return out, nil
}

func stepFrom(v uint64) (migration, bool) {
	for _, m := range migrations {
		if m.From == v {
			return m, true
		}
	}
	return migration{}, false
}

// Preflight checks known to Preflight.
const (
	// PreflightIntegrity walks every page of the file (bbolt's consistency
	// check).
	PreflightIntegrity = "integrity"
	// PreflightDiskSpace needs free space of at least twice the file's size
	// next to it (the backup and the rewritten pages).
	PreflightDiskSpace = "disk_space"
)

// Preflight runs the named checks; an unknown name fails (a manifest asking
// for a check this agent cannot run must not be migrated blindly).
func (s *Store) Preflight(checks []string) error {
	for _, c := range checks {
		switch c {
		case PreflightIntegrity:
			err := s.view(func(tx *bolt.Tx) error {
				for e := range tx.Check() {
					return e
				}
				return nil
			})
			if err != nil {
				return fmt.Errorf("%w: %s: %w", ErrPreflight, c, err)
			}
		case PreflightDiskSpace:
			fi, err := os.Stat(s.path)
			if err != nil {
				return fmt.Errorf("%w: %s: %w", ErrPreflight, c, err)
			}
			free, err := freeBytes(filepath.Dir(s.path))
			if err != nil {
				return fmt.Errorf("%w: %s: %w", ErrPreflight, c, err)
			}
			if free < uint64(2*fi.Size()) {
				return fmt.Errorf("%w: %s: %d bytes free next to the state file, %d needed", ErrPreflight, c, free, 2*fi.Size())
			}
		default:
			return fmt.Errorf("%w: unknown check %q", ErrPreflight, c)
		}
	}
	return nil
}

// Backup writes a consistent copy of the file to path (mode 0600: it holds
// the private keys) through a temporary file, fsync and rename.
func (s *Store) Backup(path string) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	err = s.view(func(tx *bolt.Tx) error {
		_, err := tx.WriteTo(tmp)
		return err
	})
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("agent state: backup to %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// MigrationRecord is one applied migration, kept in the meta bucket.
type MigrationRecord struct {
	From      uint64    `json:"from"`
	To        uint64    `json:"to"`
	At        time.Time `json:"at"`
	By        string    `json:"by"`
	Backup    string    `json:"backup,omitempty"`
	StepNames []string  `json:"steps"`
}

var keyMigrations = []byte("migrations")

// Migrate runs the registered steps from the file's schema to to in one
// transaction (all or nothing) and records them (by names the agent version
// or operator; backup the backup taken before, if any).
func (s *Store) Migrate(to uint64, by, backup string) error {
	steps, err := s.PlanMigration(to)
	if err != nil || len(steps) == 0 {
		return err
	}
	from := s.Schema()
	rec := MigrationRecord{From: from, To: to, At: s.opts.Clock.Now().UTC(), By: by, Backup: backup}
	err = s.update(func(tx *bolt.Tx) error {
		if v := fileSchema(tx); v != from {
			return fmt.Errorf("%w: schema changed underneath (%d, expected %d)", ErrCorrupt, v, from)
		}
		for _, st := range steps {
			m, _ := stepFrom(st.From)
			if err := m.up(tx); err != nil {
				return fmt.Errorf("agent state: migration %d → %d (%s): %w", m.From, m.To, m.Name, err)
			}
			rec.StepNames = append(rec.StepNames, m.Name)
		}
		meta := tx.Bucket(bucketMeta)
		var hist []MigrationRecord
		if raw := meta.Get(keyMigrations); raw != nil {
			if err := json.Unmarshal(raw, &hist); err != nil {
				return fmt.Errorf("%w: migration history: %w", ErrCorrupt, err)
			}
		}
		raw, err := json.Marshal(append(hist, rec))
		if err != nil {
			return err
		}
		if err := meta.Put(keyMigrations, raw); err != nil {
			return err
		}
		return meta.Put(keySchemaVersion, u64(to))
	})
	if err != nil {
		return err
	}
	s.schema.Store(to)
	return nil
}

// Migrations returns the history of applied migrations (oldest first).
func (s *Store) Migrations() ([]MigrationRecord, error) {
	var hist []MigrationRecord
	err := s.view(func(tx *bolt.Tx) error {
		raw := tx.Bucket(bucketMeta).Get(keyMigrations)
		if raw == nil {
			return nil
		}
		if err := json.Unmarshal(raw, &hist); err != nil {
			return fmt.Errorf("%w: migration history: %w", ErrCorrupt, err)
		}
		return nil
	})
	return hist, err
}
