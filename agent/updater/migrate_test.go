package updater

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/agent/state"
)

func trialStore(t *testing.T, nodeState *state.StateChange) (*state.Store, string) {
	path := filepath.Join(t.TempDir(), "state.db")
	st, err := state.Open(path, state.Options{})
	require.NoError(t, err)
	require.NoError(t, st.PutMembership("c", state.Membership{ClusterID: "c"}))
	require.NoError(t, st.PutPendingUpdate("c", state.PendingUpdate{Version: "2.0.0", PreviousVersion: "1.0.0", State: StepHealthChecking,
		Attempts: 1, StartedAt: time.Now(), NodeState: nodeState}))
	return st, path
}

// TestMigrateDeclaredOnlyWhenDeclared: nothing declared, another version's
// record, or a file already at the declared schema: no migration and no
// backup; a declaration this build cannot reach or that does not match the
// file fails (the trial then rolls back).
func TestMigrateDeclaredOnlyWhenDeclared(t *testing.T) {
	st, path := trialStore(t, nil)
	ok, err := MigrateDeclared(st, "2.0.0", nil)
	require.NoError(t, err)
	require.False(t, ok)
	require.NoError(t, st.Close())

	cur := state.MaxSchema()
	st, path = trialStore(t, &state.StateChange{From: cur - 1, To: cur})
	ok, err = MigrateDeclared(st, "1.5.0", nil)
	require.NoError(t, err)
	require.False(t, ok, "not this version's trial")
	ok, err = MigrateDeclared(st, "2.0.0", nil)
	require.NoError(t, err)
	require.False(t, ok, "already at the declared schema")
	_, err = os.Stat(BackupPath(path, "2.0.0"))
	require.ErrorIs(t, err, os.ErrNotExist)
	require.NoError(t, st.Close())

	st, _ = trialStore(t, &state.StateChange{From: cur, To: cur + 1})
	_, err = MigrateDeclared(st, "2.0.0", nil)
	require.ErrorIs(t, err, state.ErrNewerSchema)
	require.NoError(t, st.Close())

	st, _ = trialStore(t, &state.StateChange{From: cur + 1, To: cur + 2})
	_, err = MigrateDeclared(st, "2.0.0", nil)
	require.ErrorIs(t, err, ErrStateSchemaMismatch)
	require.NoError(t, st.Close())
}

// TestRestoreStateBackup: the backup replaces the state file by a rename;
// no backup recorded or present restores nothing; a backup outside the
// state file's directory is ignored.
func TestRestoreStateBackup(t *testing.T) {
	st, path := trialStore(t, nil)
	backup := BackupPath(path, "2.0.0")
	require.NoError(t, st.Backup(backup))
	require.NoError(t, st.PutPendingUpdate("c", state.PendingUpdate{Version: "2.0.0", State: StepRolledBack}))
	require.NoError(t, st.Close())

	ok, err := RestoreStateBackup(path, state.PendingUpdate{})
	require.NoError(t, err)
	require.False(t, ok)
	ok, err = RestoreStateBackup(path, state.PendingUpdate{StateBackup: filepath.Join(t.TempDir(), "elsewhere")})
	require.NoError(t, err)
	require.False(t, ok)
	ok, err = RestoreStateBackup(path, state.PendingUpdate{StateBackup: backup})
	require.NoError(t, err)
	require.True(t, ok)
	_, err = os.Stat(backup)
	require.ErrorIs(t, err, os.ErrNotExist)
	st, err = state.Open(path, state.Options{})
	require.NoError(t, err)
	defer st.Close()
	u, err := st.PendingUpdate("c")
	require.NoError(t, err)
	require.Equal(t, StepHealthChecking, u.State, "the file as it was when the backup was taken")
}
