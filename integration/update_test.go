package integration

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/agent/runtime"
	"github.com/rap-fabric/core/agent/state"
	"github.com/rap-fabric/core/agent/updater"
	"github.com/rap-fabric/core/internal/authtest"
	"github.com/rap-fabric/core/release"
)

var (
	versionsOnce sync.Once
	versionsDir  string
	versionsErr  error
)

// agentVersions builds the launcher, rap-node-agent at 1.0.0 and 2.0.0
// (-ldflags -X main.version), and two broken releases: 3.0.0 exits at start,
// 3.1.0 runs but never heartbeats.
func agentVersions(t *testing.T) string {
	versionsOnce.Do(func() {
		dir, err := os.MkdirTemp("", "rap-versions-")
		if err != nil {
			versionsErr = err
			return
		}
		versionsDir = dir
		builds := [][]string{
			{"-o", dir + "/rap-node-agent-launcher", "../cmd/rap-node-agent-launcher"},
			{"-ldflags", "-X main.version=1.0.0", "-o", dir + "/agent-1.0.0", "../cmd/rap-node-agent"},
			{"-ldflags", "-X main.version=2.0.0", "-o", dir + "/agent-2.0.0", "../cmd/rap-node-agent"},
			{"-ldflags", "-X main.version=2.1.0", "-o", dir + "/agent-2.1.0", "../cmd/rap-node-agent"},
			{"-ldflags", "-X main.version=3.0.0 -X main.mode=exit", "-o", dir + "/agent-3.0.0", "./testdata/brokenagent"},
			{"-ldflags", "-X main.version=3.1.0 -X main.mode=hang", "-o", dir + "/agent-3.1.0", "./testdata/brokenagent"},
		}
		for _, b := range builds {
			cmd := exec.Command("go", append([]string{"build"}, b...)...)
			cmd.Stderr = os.Stderr
			if versionsErr = cmd.Run(); versionsErr != nil {
				return
			}
		}
	})
	require.NoError(t, versionsErr)
	return versionsDir
}

// launcherProc is one rap-node-agent-launcher process.
type launcherProc struct {
	t        *testing.T
	bin      string
	args     []string
	cmd      *exec.Cmd
	out      *syncBuf
	exited   chan struct{}
	pidfile  string
	statePth string
	socket   string
}

func (l *launcherProc) start(deadline string) {
	args := append([]string{"--slots", l.args[0], "--state", l.statePth, "--status-socket", l.socket, "--deadline", deadline, "--log-level", "debug"}, l.args[1:]...)
	l.cmd = exec.Command(filepath.Join(l.bin, "rap-node-agent-launcher"), args...)
	l.cmd.Env = append(os.Environ(), "BROKEN_AGENT_PIDFILE="+l.pidfile)
	l.out = &syncBuf{}
	l.cmd.Stdout, l.cmd.Stderr = l.out, l.out
	require.NoError(l.t, l.cmd.Start())
	l.exited = make(chan struct{})
	cmd, out, ch := l.cmd, l.out, l.exited
	go func() { _ = cmd.Wait(); close(ch) }()
	l.t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-ch
		if l.t.Failed() {
			l.t.Logf("--- launcher output:\n%s", out.String())
		}
	})
}

func (l *launcherProc) stop(sig syscall.Signal) {
	require.NoError(l.t, l.cmd.Process.Signal(sig))
	select {
	case <-l.exited:
	case <-time.After(20 * time.Second):
		l.t.Fatal("launcher did not exit")
	}
}

// probe reads the running agent's status socket.
func (l *launcherProc) probe() (runtime.StatusReport, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	r, err := runtime.ReadStatus(ctx, l.socket)
	return r, err == nil && r.Source == "agent"
}

// heartbeating waits until the running agent is version and an authority
// acknowledged a heartbeat after since.
func (l *launcherProc) heartbeating(g *authtest.Group, version string, since time.Time) {
	l.t.Helper()
	g.Eventually(30*time.Second, "agent "+version+" heartbeating", func() bool {
		r, ok := l.probe()
		if !ok || r.AgentVersion != version {
			return false
		}
		for _, m := range r.Memberships {
			if m.LastHeartbeatAck.After(since) {
				return true
			}
		}
		return false
	})
}

func artifactOf(t *testing.T, path string) release.Artifact {
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	s := sha256.Sum256(b)
	return release.Artifact{OS: "linux", Arch: "amd64", SHA256: hex.EncodeToString(s[:]), Size: int64(len(b))}
}

// stage runs the agent's update steps against the state file (no agent is
// running: the launcher was stopped), as the running agent does before it
// asks its launcher for the switch.
func stage(t *testing.T, statePath string, slots updater.Slots, current, version, binary string, allowDowngrade bool) error {
	st, err := state.Open(statePath, state.Options{})
	require.NoError(t, err)
	defer st.Close()
	ms, err := st.Memberships()
	require.NoError(t, err)
	return updater.Stage(st, slots, updater.StageRequest{Cluster: ms[0], ReleaseID: "rel-" + version, Version: version, Current: current,
		Artifact: artifactOf(t, binary), AllowDowngrade: allowDowngrade, Now: time.Now(),
		Fetch: func() (io.ReadCloser, error) { return os.Open(binary) }})
}

func pending(t *testing.T, statePath string) state.PendingUpdate {
	st, err := state.Open(statePath, state.Options{})
	require.NoError(t, err)
	defer st.Close()
	_, u, ok, err := updater.FindPending(st)
	require.NoError(t, err)
	require.True(t, ok)
	return u
}

func pidAlive(pid int) bool { return syscall.Kill(pid, 0) == nil }

// TestAgentSelfUpdate runs real processes: an authority, the launcher and
// rap-node-agent binaries of different versions. 1.0.0 is installed and
// heartbeats; 2.0.0 is staged, switched to, proves itself and is promoted;
// 3.0.0 (exits at start) and 3.1.0 (never heartbeats) are rolled back to
// 2.0.0 automatically with the failure recorded in pending_update; a
// downgrade needs a signed allowance; kill -9 of the agent, of the launcher
// in the middle of a trial, and a crash in the middle of a download all
// leave a working agent.
func TestAgentSelfUpdate(t *testing.T) {
	bin := binaries(t)
	vers := agentVersions(t)
	g := authtest.New(t, 1)
	g.Leader(10 * time.Second)
	owner := g.Client(g.DS...)
	cl, token := mkClusterToken(t, owner, "upd")
	dir := t.TempDir()
	machineID := filepath.Join(dir, "machine-id")
	require.NoError(t, os.WriteFile(machineID, []byte("abcdefabcdefabcdefabcdefabcdef01\n"), 0o644))
	ag := &agentProc{t: t, bin: bin, state: filepath.Join(dir, "state.db")}
	enroll(t, ag, g, owner, apiAddrs(g), "upd", token, cl.pin, machineID)

	slots := updater.Slots{Dir: filepath.Join(dir, "slots")}
	l := &launcherProc{t: t, bin: vers, statePth: ag.state, socket: filepath.Join(dir, "agent.sock"), pidfile: filepath.Join(dir, "broken.pid"),
		args: []string{slots.Dir, "--install", "1.0.0=" + filepath.Join(vers, "agent-1.0.0"), "--",
			"--interval", "300ms", "--desired-every", "600ms", "--request-timeout", "1s", "--no-mesh", "--no-snapshots"}}

	// 1.0.0 installed and running under the launcher.
	t0 := time.Now()
	l.start("8s")
	l.heartbeating(g, "1.0.0", t0)
	cur, err := slots.Current()
	require.NoError(t, err)
	require.Equal(t, "1.0.0", cur)

	// kill -9 of the agent: the launcher starts it again.
	before := time.Now()
	require.NoError(t, killAgentChild(l))
	l.heartbeating(g, "1.0.0", before)

	// 2.0.0: staged by the agent's steps, switched, healthy, promoted.
	l.stop(syscall.SIGTERM)
	// A byte flipped in the served copy is refused and nothing is staged.
	bad := filepath.Join(dir, "agent-2.0.0-flipped")
	b, err := os.ReadFile(filepath.Join(vers, "agent-2.0.0"))
	require.NoError(t, err)
	b[len(b)/2] ^= 1
	require.NoError(t, os.WriteFile(bad, b, 0o755))
	st, err := state.Open(ag.state, state.Options{})
	require.NoError(t, err)
	ms, _ := st.Memberships()
	err = updater.Stage(st, slots, updater.StageRequest{Cluster: ms[0], Version: "2.0.0", Current: "1.0.0", Artifact: artifactOf(t, filepath.Join(vers, "agent-2.0.0")),
		Now: time.Now(), Fetch: func() (io.ReadCloser, error) { return os.Open(bad) }})
	require.ErrorIs(t, err, release.ErrArtifactMismatch)
	require.False(t, slots.Has("2.0.0"))
	require.NoError(t, st.Close())
	// …and fetched elsewhere (the good copy).
	require.NoError(t, stage(t, ag.state, slots, "1.0.0", "2.0.0", filepath.Join(vers, "agent-2.0.0"), false))
	require.Equal(t, updater.StepSwitchRequested, pending(t, ag.state).State)
	t1 := time.Now()
	l.start("8s")
	l.heartbeating(g, "2.0.0", t1)
	g.Eventually(15*time.Second, "2.0.0 promoted", func() bool { c, _ := slots.Current(); return c == "2.0.0" })
	prev, err := slots.Previous()
	require.NoError(t, err)
	require.Equal(t, "1.0.0", prev)
	l.stop(syscall.SIGTERM)
	u := pending(t, ag.state)
	require.Equal(t, updater.StepHealthChecking, u.State, "the record of the promoted trial (the pointer is the commit)")
	require.Equal(t, 1, u.Attempts)

	// 3.0.0 exits at start: rolled back to 2.0.0 with no human action.
	require.NoError(t, stage(t, ag.state, slots, "2.0.0", "3.0.0", filepath.Join(vers, "agent-3.0.0"), false))
	t2 := time.Now()
	l.start("8s")
	l.heartbeating(g, "2.0.0", t2)
	l.stop(syscall.SIGTERM)
	u = pending(t, ag.state)
	require.Equal(t, updater.StepRolledBack, u.State)
	require.Contains(t, u.LastFailure, "3.0.0 exited with status 3")
	cur, _ = slots.Current()
	require.Equal(t, "2.0.0", cur)

	// 3.1.0 never heartbeats: killed at the deadline, rolled back.
	require.NoError(t, stage(t, ag.state, slots, "2.0.0", "3.1.0", filepath.Join(vers, "agent-3.1.0"), false))
	t3 := time.Now()
	l.start("3s")
	l.heartbeating(g, "2.0.0", t3)
	l.stop(syscall.SIGTERM)
	u = pending(t, ag.state)
	require.Equal(t, updater.StepRolledBack, u.State)
	require.Contains(t, u.LastFailure, "did not heartbeat an authority within 3s")
	require.GreaterOrEqual(t, time.Since(t3), 3*time.Second)

	// kill -9 of the launcher in the middle of a trial: the trial's agent
	// dies with it; the restarted launcher counts a second attempt, then
	// rolls back; the agent works.
	require.NoError(t, stage(t, ag.state, slots, "2.0.0", "3.1.0", filepath.Join(vers, "agent-3.1.0"), false))
	_ = os.Remove(l.pidfile)
	l.start("60s")
	var trialPID int
	g.Eventually(15*time.Second, "the trial agent runs", func() bool {
		b, err := os.ReadFile(l.pidfile)
		if err != nil {
			return false
		}
		trialPID, err = strconv.Atoi(string(b))
		return err == nil && pidAlive(trialPID)
	})
	l.stop(syscall.SIGKILL)
	g.Eventually(10*time.Second, "the trial agent died with its launcher", func() bool { return !pidAlive(trialPID) })
	u = pending(t, ag.state)
	require.Equal(t, updater.StepHealthChecking, u.State)
	require.Equal(t, 1, u.Attempts)
	t4 := time.Now()
	l.start("3s")
	l.heartbeating(g, "2.0.0", t4)
	l.stop(syscall.SIGTERM)
	u = pending(t, ag.state)
	require.Equal(t, updater.StepRolledBack, u.State)
	require.Equal(t, 2, u.Attempts)

	// A crash in the middle of a download (record says downloading, a
	// partial temporary file lies around): the current version runs.
	st, err = state.Open(ag.state, state.Options{})
	require.NoError(t, err)
	require.NoError(t, st.PutPendingUpdate(ms[0], state.PendingUpdate{Version: "2.1.0", State: updater.StepDownloading, StartedAt: time.Now()}))
	require.NoError(t, st.Close())
	require.NoError(t, os.WriteFile(filepath.Join(slots.Dir, "versions", ".stage-2.1.0-partial"), []byte("half"), 0o644))
	t5 := time.Now()
	l.start("8s")
	l.heartbeating(g, "2.0.0", t5)
	l.stop(syscall.SIGTERM)

	// Downgrade: refused without a signed allowance, done with one.
	err = stage(t, ag.state, slots, "2.0.0", "1.0.0", filepath.Join(vers, "agent-1.0.0"), false)
	require.True(t, errors.Is(err, updater.ErrDowngrade), err)
	require.NoError(t, stage(t, ag.state, slots, "2.0.0", "1.0.0", filepath.Join(vers, "agent-1.0.0"), true))
	t6 := time.Now()
	l.start("8s")
	l.heartbeating(g, "1.0.0", t6)
	g.Eventually(15*time.Second, "1.0.0 promoted by the signed rollback", func() bool { c, _ := slots.Current(); return c == "1.0.0" })
}

// killAgentChild kills -9 the agent process the launcher runs (the
// launcher's only child; any of its threads may have forked it).
func killAgentChild(l *launcherProc) error {
	tasks, err := filepath.Glob("/proc/" + strconv.Itoa(l.cmd.Process.Pid) + "/task/*/children")
	if err != nil {
		return err
	}
	for _, tf := range tasks {
		children, err := os.ReadFile(tf)
		if err != nil {
			continue
		}
		for _, f := range splitFields(string(children)) {
			if pid, err := strconv.Atoi(f); err == nil {
				return syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	return errors.New("launcher has no child")
}

func splitFields(s string) []string {
	var out []string
	cur := ""
	for _, c := range s {
		if c == ' ' || c == '\n' {
			if cur != "" {
				out = append(out, cur)
			}
			cur = ""
			continue
		}
		cur += string(c)
	}
	if cur != "" {
		out = append(out, cur)
	}
	return out
}
