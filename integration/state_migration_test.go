package integration

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/agent/state"
	"github.com/rap-fabric/core/agent/updater"
	"github.com/rap-fabric/core/internal/authtest"
	"github.com/rap-fabric/core/release"
)

var (
	schemaOnce sync.Once
	schemaDir  string
	schemaErr  error
)

// schemaVersions builds the launcher and three agents: rap-node-agent 1.0.0
// from before state schema 2 (-X agent/state.buildSchema=1: it writes
// schema 1 files and refuses schema 2), 1.1.0 (knows schema 2) and a broken
// 1.2.0 that applies the declared migration and then exits.
func schemaVersions(t *testing.T) string {
	schemaOnce.Do(func() {
		dir, err := os.MkdirTemp("", "rap-schema-versions-")
		if err != nil {
			schemaErr = err
			return
		}
		schemaDir = dir
		builds := [][]string{
			{"-o", dir + "/rap-node-agent-launcher", "../cmd/rap-node-agent-launcher"},
			{"-ldflags", "-X main.version=1.0.0 -X github.com/rap-fabric/core/agent/state.buildSchema=1", "-o", dir + "/rap-node-agent", "../cmd/rap-node-agent"},
			{"-ldflags", "-X main.version=1.1.0", "-o", dir + "/agent-1.1.0", "../cmd/rap-node-agent"},
			{"-ldflags", "-X main.version=1.2.0 -X main.mode=migrate", "-o", dir + "/agent-1.2.0", "./testdata/brokenagent"},
		}
		for _, b := range builds {
			cmd := exec.Command("go", append([]string{"build"}, b...)...)
			cmd.Stderr = os.Stderr
			if schemaErr = cmd.Run(); schemaErr != nil {
				return
			}
		}
	})
	require.NoError(t, schemaErr)
	return schemaDir
}

// stageDeclared runs the old agent's staging steps for a release whose
// signed manifest declares a node-local state change.
func stageDeclared(t *testing.T, statePath string, slots updater.Slots, current, version, binary string, m release.Manifest) {
	st, err := state.Open(statePath, state.Options{})
	require.NoError(t, err)
	defer st.Close()
	ms, err := st.Memberships()
	require.NoError(t, err)
	require.NoError(t, updater.Stage(st, slots, updater.StageRequest{Cluster: ms[0], ReleaseID: "rel-" + version, Version: version, Current: current,
		Artifact: artifactOf(t, binary), NodeState: m.Migration.NodeState, Now: time.Now(),
		Fetch: func() (io.ReadCloser, error) { return os.Open(binary) }}))
}

// stateFacts opens the state file (no agent runs) and returns its schema,
// migration history and pending update.
func stateFacts(t *testing.T, path string) (uint64, []state.MigrationRecord, state.PendingUpdate) {
	st, err := state.Open(path, state.Options{})
	require.NoError(t, err)
	defer st.Close()
	hist, err := st.Migrations()
	require.NoError(t, err)
	_, u, ok, err := updater.FindPending(st)
	require.NoError(t, err)
	require.True(t, ok)
	return st.Schema(), hist, u
}

// TestAgentNodeStateMigration runs real processes: an authority, the
// launcher and agents of three versions. 1.0.0 knows state schema 1 only.
// A broken 1.2.0 whose manifest declares node_state 1 → 2 migrates the file
// and exits: the launcher renames the pre-migration backup back over the
// state file and restarts 1.0.0, which starts (it would refuse a schema 2
// file) and heartbeats. 1.1.0 with the same declaration migrates on start
// (backup first, one transaction, history recorded), heartbeats and is
// promoted.
func TestAgentNodeStateMigration(t *testing.T) {
	vers := schemaVersions(t)
	g := authtest.New(t, 1)
	g.Leader(10 * time.Second)
	owner := g.Client(g.DS...)
	cl, token := mkClusterToken(t, owner, "smig")
	dir := t.TempDir()
	machineID := filepath.Join(dir, "machine-id")
	require.NoError(t, os.WriteFile(machineID, []byte("abcdefabcdefabcdefabcdefabcdef1c\n"), 0o644))
	ag := &agentProc{t: t, bin: vers, state: filepath.Join(dir, "state.db")}
	enroll(t, ag, g, owner, apiAddrs(g), "smig", token, cl.pin, machineID)

	slots := updater.Slots{Dir: filepath.Join(dir, "slots")}
	l := &launcherProc{t: t, bin: vers, statePth: ag.state, socket: filepath.Join(dir, "agent.sock"), pidfile: filepath.Join(dir, "broken.pid"),
		args: []string{slots.Dir, "--install", "1.0.0=" + filepath.Join(vers, "rap-node-agent"), "--",
			"--interval", "300ms", "--desired-every", "600ms", "--request-timeout", "1s", "--no-mesh", "--no-snapshots"}}
	t0 := time.Now()
	l.start("20s")
	l.heartbeating(g, "1.0.0", t0)
	l.stop(syscall.SIGTERM)
	st, err := state.Open(ag.state, state.Options{})
	require.NoError(t, err)
	require.Equal(t, uint64(1), st.Schema(), "1.0.0 writes schema 1")
	require.NoError(t, st.Close())

	declared := release.Manifest{Migration: release.Migration{NodeState: &release.SchemaChange{From: 1, To: 2, Preflight: []string{"integrity", "disk_space"},
		BackupRequired: true, Rollback: release.RollbackRestoreBackup}}}

	// The broken 1.2.0 migrates, then exits: rolled back with the state
	// file restored from the backup; 1.0.0 runs on it again.
	stageDeclared(t, ag.state, slots, "1.0.0", "1.2.0", filepath.Join(vers, "agent-1.2.0"), declared)
	t1 := time.Now()
	l.start("20s")
	g.Eventually(30*time.Second, "the trial of 1.2.0 ended", func() bool {
		return strings.Contains(l.out.String(), "1.2.0 exited with status 3")
	})
	require.Contains(t, l.out.String(), "brokenagent 1.2.0 : migrated true <nil>", "the broken version did migrate the file")
	require.Contains(t, l.out.String(), "node-local state restored from the backup")
	l.heartbeating(g, "1.0.0", t1)
	l.stop(syscall.SIGTERM)
	schema, hist, u := stateFacts(t, ag.state)
	require.Equal(t, uint64(1), schema, "the pre-migration file is back")
	require.Empty(t, hist)
	require.Equal(t, updater.StepRolledBack, u.State)
	require.Contains(t, u.LastFailure, "1.2.0 exited with status 3")
	require.Empty(t, u.StateBackup)
	_, err = os.Stat(updater.BackupPath(ag.state, "1.2.0"))
	require.ErrorIs(t, err, os.ErrNotExist, "the backup was renamed into place")
	cur, err := slots.Current()
	require.NoError(t, err)
	require.Equal(t, "1.0.0", cur)

	// 1.1.0 declares the same change: migrated on start, healthy, promoted.
	stageDeclared(t, ag.state, slots, "1.0.0", "1.1.0", filepath.Join(vers, "agent-1.1.0"), declared)
	t2 := time.Now()
	l.start("20s")
	l.heartbeating(g, "1.1.0", t2)
	g.Eventually(20*time.Second, "1.1.0 promoted", func() bool { c, _ := slots.Current(); return c == "1.1.0" })
	l.stop(syscall.SIGTERM)
	schema, hist, u = stateFacts(t, ag.state)
	require.Equal(t, uint64(2), schema)
	require.Len(t, hist, 1)
	require.Equal(t, uint64(1), hist[0].From)
	require.Equal(t, uint64(2), hist[0].To)
	require.Equal(t, "rap-node-agent 1.1.0", hist[0].By)
	require.Equal(t, updater.BackupPath(ag.state, "1.1.0"), u.StateBackup)
	b, err := state.Open(u.StateBackup, state.Options{})
	require.NoError(t, err)
	require.Equal(t, uint64(1), b.Schema(), "the backup is the pre-migration file")
	require.NoError(t, b.Close())

	// A restart of the promoted version does not migrate again.
	t3 := time.Now()
	l.start("20s")
	l.heartbeating(g, "1.1.0", t3)
	l.stop(syscall.SIGTERM)
	_, hist, _ = stateFacts(t, ag.state)
	require.Len(t, hist, 1)
}
