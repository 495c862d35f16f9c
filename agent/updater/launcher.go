package updater

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/rap-fabric/core/agent/state"
)

// StepPromoted is recorded once the new version proved itself and became
// current (the agent reports it and clears the record).
const StepPromoted = "running"

// StateHandle is a PendingStore the launcher opens between agent runs and
// closes before it starts one (the state file is locked by its holder).
type StateHandle interface {
	PendingStore
	Close() error
}

// LauncherConfig configures a Launcher. Zero durations take the defaults.
type LauncherConfig struct {
	// Slots is the version slot directory (must have a current version).
	Slots Slots
	// OpenState opens the agent's state file.
	OpenState func() (StateHandle, error)
	// StatePath is the state file's path: a rolled-back trial that
	// migrated the node-local state gets its pre-migration backup renamed
	// back over it ("" disables the restore).
	StatePath string
	// Command builds the command that runs the agent binary at path.
	Command func(binary string) *exec.Cmd
	// Probe reads the running agent's status (ProbeSocket).
	Probe func(ctx context.Context) (AgentStatus, error)
	// Deadline: a new version must report a heartbeat acknowledged by an
	// authority within this long, or it is rolled back (default 60 s).
	Deadline time.Duration
	// MaxAttempts bounds how often a trial is restarted after the launcher
	// itself was interrupted during it (default 2).
	MaxAttempts int
	// ProbeEvery is the health probe period (default 250 ms).
	ProbeEvery time.Duration
	// Backoff is the pause before restarting an agent that exited (default 1 s).
	Backoff time.Duration
	// StopTimeout bounds a graceful stop before SIGKILL (default 10 s).
	StopTimeout time.Duration
	// Clock; nil means time.Now.
	Clock func() time.Time
	// Logger; nil means a null logger.
	Logger hclog.Logger
}

// Launcher is the watchdog process of the agent: it never runs agent code
// itself, so a broken new binary cannot break the rollback.
type Launcher struct {
	cfg LauncherConfig
	log hclog.Logger
}

// NewLauncher validates cfg and returns a Launcher.
func NewLauncher(cfg LauncherConfig) (*Launcher, error) {
	if cfg.Slots.Dir == "" || cfg.OpenState == nil || cfg.Command == nil || cfg.Probe == nil {
		return nil, errors.New("updater: launcher needs Slots.Dir, OpenState, Command and Probe")
	}
	if cfg.Deadline == 0 {
		cfg.Deadline = 60 * time.Second
	}
	if cfg.MaxAttempts == 0 {
		cfg.MaxAttempts = 2
	}
	if cfg.ProbeEvery == 0 {
		cfg.ProbeEvery = 250 * time.Millisecond
	}
	if cfg.Backoff == 0 {
		cfg.Backoff = time.Second
	}
	if cfg.StopTimeout == 0 {
		cfg.StopTimeout = 10 * time.Second
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.Deadline < 0 || cfg.MaxAttempts < 1 || cfg.ProbeEvery < 0 || cfg.Backoff < 0 {
		return nil, errors.New("updater: negative launcher durations or attempts")
	}
	return &Launcher{cfg: cfg, log: cfg.Logger.Named("launcher")}, nil
}

// plan is what the launcher starts next.
type plan struct {
	version string
	trial   bool
}

// decide reads the pending update (the agent is not running) and records
// the next step before it is taken.
func (l *Launcher) decide() (plan, error) {
	cur, err := l.cfg.Slots.Current()
	if err != nil {
		return plan{}, err
	}
	p, rollback, reason, err := l.next(cur)
	if err != nil || rollback == "" {
		return p, err
	}
	l.log.Warn("rolling back", "version", rollback, "to", cur, "reason", reason)
	return plan{version: cur}, l.rollback(rollback, reason)
}

// next decides with the state file open; a trial that must be rolled back
// is returned (rollback, reason) and recorded by rollback once the file is
// closed (the restore of a state backup replaces the file).
func (l *Launcher) next(cur string) (p plan, rollback, reason string, err error) {
	st, err := l.cfg.OpenState()
	if err != nil {
		return plan{}, "", "", err
	}
	defer st.Close()
	cluster, u, ok, err := FindPending(st)
	if err != nil || !ok {
		return plan{version: cur}, "", "", err
	}
	now := l.cfg.Clock().UTC()
	switch u.State {
	case StepSwitchRequested, StepHealthChecking:
		switch {
		case u.Version == cur:
			// Promoted before the record could say so (crash right after
			// the pointer switch): finish the record.
			u.State = StepPromoted
			return plan{version: cur}, "", "", st.PutPendingUpdate(cluster, u)
		case !l.cfg.Slots.Has(u.Version):
			return plan{version: cur}, u.Version, "staged binary missing", nil
		case u.State == StepHealthChecking && u.Attempts >= l.cfg.MaxAttempts:
			return plan{version: cur}, u.Version, fmt.Sprintf("no healthy start of %s in %d attempts", u.Version, u.Attempts), nil
		}
		u.State, u.Attempts, u.StartedAt, u.PreviousVersion = StepHealthChecking, u.Attempts+1, now, cur
		if err := st.PutPendingUpdate(cluster, u); err != nil {
			return plan{}, "", "", err
		}
		return plan{version: u.Version, trial: true}, "", "", nil
	}
	return plan{version: cur}, "", "", nil
}

// rollback records the failed trial (the agent process has exited). When
// the trial migrated the node-local state, the pre-migration backup is
// renamed back over the state file first, so the previous version starts on
// the file it knows; the rollback is then recorded in the restored file.
func (l *Launcher) rollback(version, reason string) error {
	st, err := l.cfg.OpenState()
	if err != nil {
		return err
	}
	cluster, u, ok, err := FindPending(st)
	if err != nil || !ok || u.Version != version {
		st.Close()
		return err
	}
	if u.StateBackup != "" && l.cfg.StatePath != "" {
		if err := st.Close(); err != nil {
			return err
		}
		restored, err := RestoreStateBackup(l.cfg.StatePath, u)
		if err != nil {
			return fmt.Errorf("restoring the state backup of %s: %w", version, err)
		}
		if restored {
			l.log.Warn("node-local state restored from the backup taken before the migration", "version", version, "backup", u.StateBackup)
		}
		if st, err = l.cfg.OpenState(); err != nil {
			return err
		}
		if c2, u2, ok2, err := FindPending(st); err == nil && ok2 && u2.Version == version {
			cluster, u = c2, u2
		}
		u.StateBackup = ""
	}
	defer st.Close()
	u.State, u.LastFailure = StepRolledBack, reason
	l.log.Warn("new agent version failed; rolling back", "version", version, "reason", reason)
	return st.PutPendingUpdate(cluster, u)
}

// Run starts the agent and supervises it until ctx ends (then the agent is
// stopped with SIGTERM, SIGKILL after StopTimeout).
func (l *Launcher) Run(ctx context.Context) error {
	for ctx.Err() == nil {
		p, err := l.decide()
		if err != nil {
			l.log.Error("cannot decide what to run", "error", err)
			if !sleep(ctx, l.cfg.Backoff) {
				break
			}
			continue
		}
		code, reason := l.runOnce(ctx, p)
		switch {
		case ctx.Err() != nil:
		case p.trial && reason != "":
			if err := l.rollback(p.version, reason); err != nil {
				l.log.Error("recording the rollback failed", "error", err)
			}
		case code == ExitSwitch:
			l.log.Info("agent asked for a switch")
			continue
		default:
			l.log.Warn("agent exited; restarting", "version", p.version, "code", code)
			sleep(ctx, l.cfg.Backoff)
		}
	}
	return nil
}

// runOnce runs one agent process. For a trial it promotes the version once
// healthy; reason is non-empty when the trial failed.
func (l *Launcher) runOnce(ctx context.Context, p plan) (code int, reason string) {
	bin := l.cfg.Slots.Binary(p.version)
	cmd := l.cfg.Command(bin)
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	setDeathSignal(cmd.SysProcAttr)
	started := l.cfg.Clock()
	if err := cmd.Start(); err != nil {
		return -1, "start: " + err.Error()
	}
	l.log.Info("agent started", "version", p.version, "pid", cmd.Process.Pid, "trial", p.trial)
	exited := make(chan int, 1)
	go func() {
		err := cmd.Wait()
		c := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			c = ee.ExitCode()
		} else if err != nil {
			c = -1
		}
		exited <- c
	}()
	stop := func() int {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case c := <-exited:
			return c
		case <-time.After(l.cfg.StopTimeout):
			_ = cmd.Process.Kill()
			return <-exited
		}
	}
	var deadline <-chan time.Time
	var tick *time.Ticker
	if p.trial {
		deadline = time.After(l.cfg.Deadline)
		tick = time.NewTicker(l.cfg.ProbeEvery)
		defer tick.Stop()
	}
	probe := func() <-chan time.Time {
		if tick == nil {
			return nil
		}
		return tick.C
	}
	for {
		select {
		case <-ctx.Done():
			return stop(), ""
		case c := <-exited:
			if p.trial {
				return c, fmt.Sprintf("%s exited with status %d before it was healthy", p.version, c)
			}
			return c, ""
		case <-deadline:
			c := stop()
			return c, fmt.Sprintf("%s did not heartbeat an authority within %s", p.version, l.cfg.Deadline)
		case <-probe():
			if !l.healthy(ctx, p.version, started) {
				continue
			}
			if err := l.cfg.Slots.Promote(p.version); err != nil {
				l.log.Error("promotion failed", "version", p.version, "error", err)
				continue
			}
			l.log.Info("new agent version healthy; promoted", "version", p.version)
			p.trial, deadline, tick = false, nil, nil
		}
	}
}

// healthy: the running agent is version, started after the launch, and an
// authority acknowledged a heartbeat of it.
func (l *Launcher) healthy(ctx context.Context, version string, since time.Time) bool {
	pctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	r, err := l.cfg.Probe(pctx)
	if err != nil || r.Source != "agent" || r.AgentVersion != version {
		return false
	}
	for _, m := range r.Memberships {
		if m.HeartbeatsAcked > 0 && m.LastHeartbeatAck.After(since) {
			return true
		}
	}
	return false
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// OpenStateFile returns an OpenState function for the agent's state file.
func OpenStateFile(path string) func() (StateHandle, error) {
	return func() (StateHandle, error) {
		st, err := state.Open(path, state.Options{LockTimeout: 5 * time.Second})
		if err != nil {
			return nil, err
		}
		return st, nil
	}
}
