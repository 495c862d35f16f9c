package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/internal/pgtest"
	"github.com/rap-fabric/core/internal/testwait"
	"github.com/rap-fabric/core/migrations"
)

// buildAt builds rap-authority and rap-node-agent stamped with version into
// a temporary directory; overlay, when set, is a go build -overlay file.
func buildAt(t *testing.T, version, overlay string) string {
	dir := t.TempDir()
	args := []string{"build", "-ldflags", "-X main.version=" + version, "-o", dir + "/"}
	if overlay != "" {
		args = append(args, "-overlay", overlay)
	}
	cmd := exec.Command("go", append(args, "../cmd/rap-authority", "../cmd/rap-node-agent")...)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, string(out))
	return dir
}

// newestMigration is the path and number of the newest file in migrations/.
func newestMigration(t *testing.T) (string, int) {
	files, err := filepath.Glob("../migrations/*.sql")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	sort.Strings(files)
	last := files[len(files)-1]
	n, err := strconv.Atoi(strings.SplitN(filepath.Base(last), "_", 2)[0])
	require.NoError(t, err, last)
	latest, err := migrations.Latest()
	require.NoError(t, err)
	require.Equal(t, latest, n, "migrations are contiguous: the newest file is number %d", latest)
	abs, err := filepath.Abs(last)
	require.NoError(t, err)
	return abs, n
}

func schemaVersion(t *testing.T, dbURL string) int {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var v int
	require.NoError(t, conn.QueryRow(ctx, "SELECT version FROM "+migrations.VersionTable).Scan(&v))
	return v
}

// bootOutput waits for the JSON line a bootstrapping authority prints.
func bootOutput(t *testing.T, p *proc) (owner, pin string) {
	var boot struct {
		OwnerToken string `json:"owner_token"`
		CAPin      string `json:"ca_pin"`
	}
	testwait.Until(t, 60*time.Second, "bootstrap output of "+p.id, func() bool {
		sc := bufio.NewScanner(strings.NewReader(p.out.String()))
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "{") && json.Unmarshal(sc.Bytes(), &boot) == nil && boot.OwnerToken != "" {
				return true
			}
		}
		return false
	})
	return boot.OwnerToken, boot.CAPin
}

// TestUpgradeAcrossASchemaMigration: an "old" rap-authority is built from
// this tree with the newest migration removed (go build -overlay), whatever
// its number. The old binary migrates an empty database to N-1 and runs a
// bootstrapped authority on it; the current binary started on the same data
// directory and database migrates the schema to N and serves the old state
// (a cluster created by the old binary, a fenced write). Then the old binary
// refuses, with the NewerSchemaError message, both `migrate` and `run`
// against the newer schema, and the schema stays at N (never migrated down).
func TestUpgradeAcrossASchemaMigration(t *testing.T) {
	newest, n := newestMigration(t)
	ovl := filepath.Join(t.TempDir(), "overlay.json")
	data, err := json.Marshal(map[string]any{"Replace": map[string]string{newest: ""}})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(ovl, data, 0o600))
	oldBin := buildAt(t, "old", ovl)
	newBin := buildAt(t, "new", "")
	rapctlBin := binaries(t)
	dbURL := pgtest.Empty(t)

	out, err := exec.Command(filepath.Join(oldBin, "rap-authority"), "migrate", "--database-url", dbURL).CombinedOutput()
	require.NoError(t, err, string(out))
	require.Contains(t, string(out), fmt.Sprintf("schema at version %d", n-1))
	require.Equal(t, n-1, schemaVersion(t, dbURL))

	p := &proc{id: "auth-1", raft: freePort(t), api: freePort(t), dir: t.TempDir()}
	old := spawn(t, oldBin, dbURL, p, "--bootstrap")
	token, pin := bootOutput(t, p)
	rapctl := func(args ...string) (string, error) {
		cmd := exec.Command(filepath.Join(rapctlBin, "rapctl"), append([]string{"--server", p.api, "--token", token, "--ca-pin", pin}, args...)...)
		cmd.Env = append(os.Environ(), "RAPCTL_CONFIG="+filepath.Join(t.TempDir(), "none.json"))
		o, err := cmd.CombinedOutput()
		return string(o), err
	}
	var o string
	testwait.Until(t, 30*time.Second, "the old binary serves a fenced write", func() bool {
		o, err = rapctl("cluster", "create", "Made By Old", "--slug", "made-by-old")
		return err == nil
	})
	require.Equal(t, n-1, schemaVersion(t, dbURL), "the old binary knows no migration %d", n)
	require.NoError(t, old.cmd.Process.Signal(os.Interrupt))
	<-old.done

	// The newer binary on the same data directory and database migrates.
	nw := spawn(t, newBin, dbURL, p)
	testwait.Until(t, 60*time.Second, "the new binary serves the old state and a fenced write", func() bool {
		o, err = rapctl("cluster", "show", "made-by-old")
		if err != nil {
			return false
		}
		o, err = rapctl("cluster", "create", "Made By New", "--slug", "made-by-new")
		return err == nil
	})
	require.Equal(t, n, schemaVersion(t, dbURL))
	require.NoError(t, nw.cmd.Process.Signal(os.Interrupt))
	<-nw.done

	// The old binary refuses the newer schema, clearly, and changes nothing.
	want := fmt.Sprintf("the database schema is at version %d, newer than this binary's newest migration %d", n, n-1)
	out, err = exec.Command(filepath.Join(oldBin, "rap-authority"), "migrate", "--database-url", dbURL).CombinedOutput()
	require.Error(t, err)
	require.Contains(t, string(out), want)
	back := spawn(t, oldBin, dbURL, p)
	select {
	case <-back.done:
	case <-time.After(60 * time.Second):
		t.Fatalf("the old binary kept running against schema %d:\n%s", n, back.out.String())
	}
	require.False(t, back.cmd.ProcessState.Success())
	require.Contains(t, back.out.String(), want)
	require.Equal(t, n, schemaVersion(t, dbURL), "never migrated down")
	_ = o
}
