package updater

// Node-local state migrations of an agent update: the signed manifest of
// the version being switched to declares a state schema change
// (migration.node_state); the old agent records it in pending_update while
// staging. The new version, started by the launcher as a trial, calls
// MigrateDeclared before anything else touches the file: it records the
// backup path, takes a consistent backup of the file and runs the
// registered steps (agent/state). Without a declaration nothing runs. When
// the trial fails, the launcher (which never runs new code) puts the backup
// back in place before it records the rollback and restarts the previous
// version (RestoreStateBackup), so the old agent finds the file exactly as
// it left it.

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/hashicorp/go-hclog"

	"github.com/rap-fabric/core/agent/state"
)

// BackupPath is where the state file's pre-migration backup for version
// lives: next to the file, so the restore is an atomic rename.
func BackupPath(statePath, version string) string {
	return statePath + ".pre-" + version
}

// ErrStateSchemaMismatch: the file's schema is neither the declared From nor
// To, so the declared change does not apply to this node.
var ErrStateSchemaMismatch = errors.New("updater: state schema does not match the declared migration")

// MigrateDeclared applies the node-local state change declared for version
// when this process is that version's trial (pending_update names it in
// switch_requested or health_checking). It returns whether it migrated.
// A file already at the declared To is left as is (the step ran in an
// earlier attempt); a file at neither From nor To, a failed preflight check
// or a failed step is an error: the agent must not start on it, and the
// launcher rolls the trial back.
func MigrateDeclared(st *state.Store, version string, log hclog.Logger) (bool, error) {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	cluster, u, ok, err := FindPending(st)
	if err != nil || !ok || u.Version != version || u.NodeState == nil ||
		(u.State != StepSwitchRequested && u.State != StepHealthChecking) {
		return false, err
	}
	sc := u.NodeState
	cur := st.Schema()
	switch {
	case cur == sc.To:
		return false, nil
	case cur != sc.From:
		return false, fmt.Errorf("%w: the file is at schema %d, the manifest of %s declares %d → %d", ErrStateSchemaMismatch, cur, version, sc.From, sc.To)
	}
	if _, err := st.PlanMigration(sc.To); err != nil {
		return false, err
	}
	if err := st.Preflight(sc.Preflight); err != nil {
		return false, err
	}
	// The record names the backup before it exists: the launcher restores
	// only a backup that is complete (written through a rename).
	backup := BackupPath(st.Path(), version)
	u.StateBackup = backup
	if err := st.PutPendingUpdate(cluster, u); err != nil {
		return false, err
	}
	if err := st.Backup(backup); err != nil {
		return false, err
	}
	if err := st.Migrate(sc.To, "rap-node-agent "+version, backup); err != nil {
		return false, err
	}
	log.Info("node-local state migrated as the release manifest declares", "version", version, "from", sc.From, "to", sc.To, "backup", backup)
	return true, nil
}

// RestoreStateBackup puts the pre-migration backup recorded in u back in
// place of the state file (no process may hold the file). It returns
// whether it restored one; without a backup (none declared, or the trial
// died before it was complete, i.e. before any step ran) it does nothing.
func RestoreStateBackup(statePath string, u state.PendingUpdate) (bool, error) {
	if u.StateBackup == "" || filepath.Dir(u.StateBackup) != filepath.Dir(statePath) {
		return false, nil
	}
	fi, err := os.Lstat(u.StateBackup)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if !fi.Mode().IsRegular() {
		return false, fmt.Errorf("updater: state backup %s is not a regular file", u.StateBackup)
	}
	if err := os.Rename(u.StateBackup, statePath); err != nil {
		return false, err
	}
	return true, syncDir(filepath.Dir(statePath))
}

// DropStateBackup removes the backup of a promoted version (the new schema
// is kept).
func DropStateBackup(u state.PendingUpdate) error {
	if u.StateBackup == "" {
		return nil
	}
	if err := os.Remove(u.StateBackup); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
