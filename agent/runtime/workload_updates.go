package runtime

// Workload updates (spec stage C19): a service workload runs the
// artifact its assignment pins until the node's signed snapshot names a
// release of its service type (updates.desired, product = service type) in
// another version. Then, per instance:
//
//  1. verify: the key set against the snapshot's release roots, the manifest
//     against the key set and the digest the snapshot names, product,
//     platform, blocklist and downgrade (below the version running now only
//     with a signed rollback or pin);
//  2. stage: the artifact streams from the update-cache mirrors, then the
//     authorities, through the size/sha256 check into
//     workload-releases/<cluster>/<product>/<version>/artifact;
//  3. health: the supervisor restarts the instance on the staged artifact
//     (the assignment handed to it names that artifact); the trial passes
//     when the new instance reports healthy (running, without a health
//     check) and fails when it exits, fails its check, cannot start, or
//     the deadline passes;
//  4. promote, or roll back to the last good artifact (the pinned one or
//     the last promoted release), with no human action. A version rolled
//     back is not tried again while it stays desired.
//
// Without a desired version (a halted rollout, none at all) the instance
// keeps its last good artifact; it returns to the pinned one when the pinned
// version is desired or the owner pins another artifact.
//
// Each step is recorded in workload-updates.json before it is taken, so a
// restarted agent resumes (a trial keeps its deadline). The state of each
// product is reported in heartbeats and on POST /v1/agent/updates, so
// rollouts of service workloads run through the same canary, waves and
// automatic halt as agent rollouts.
//
// Container workloads update the same way: their artifact is an image
// archive, loaded into podman after the size/sha256 check and run by the
// digest it gets there. A service-local migration command the manifest
// declares (migration.service_state.command) runs after staging and before
// the trial; its failure rolls the update back without starting the new
// version. Node-local state migrations of the agent's own releases are in
// agent/updater/migrate.go.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/rap-fabric/core/agent/updater"
	"github.com/rap-fabric/core/agent/workload"
	"github.com/rap-fabric/core/agentapi"
	"github.com/rap-fabric/core/release"
	"github.com/rap-fabric/core/snapshot"
	"github.com/rap-fabric/core/workloadspec"
)

// Workload update phases.
const (
	wlStaged     = "staged"
	wlMigrating  = "migrating"
	wlTrial      = "trial"
	wlPromoted   = "promoted"
	wlRolledBack = "rolled_back"
	wlFailed     = "failed"
)

// wlArtifact is an artifact a workload can run.
type wlArtifact struct {
	Version string `json:"version"`
	Path    string `json:"path"`
	SHA256  string `json:"sha256"`
	// Image is set for a container workload: the staged image archive
	// (Path) loaded into the container engine, by digest.
	Image string `json:"image,omitempty"`
}

// wlUpdate is one service instance's update record.
type wlUpdate struct {
	Product string `json:"product"`
	// Good is what the instance returns to on a rollback: the last
	// promoted release, or (empty) the pinned artifact.
	Good *wlArtifact `json:"good,omitempty"`
	// Pinned is the version the assignment pins.
	Pinned string `json:"pinned"`
	// Target is the release under update (Phase says how far it got).
	Target  wlArtifact `json:"target"`
	Phase   string     `json:"phase"`
	Failure string     `json:"failure,omitempty"`
	// Migration records the declared service-local migration command run
	// for Target (what ran, when, how it ended).
	Migration string    `json:"migration,omitempty"`
	Started   time.Time `json:"started,omitzero"`
	Deadline  time.Time `json:"deadline,omitzero"`
}

// running is the artifact the instance is meant to run now (nil: the
// pinned one).
func (u *wlUpdate) running() *wlArtifact {
	if u.Phase == wlTrial || u.Phase == wlPromoted {
		return &u.Target
	}
	return u.Good
}

type wlState struct {
	mu   sync.Mutex
	path string
	recs map[string]*wlUpdate // service id → record
	snap *snapshot.Snapshot   // the last applied snapshot
	kick chan struct{}
}

func (m *member) wlDir() string {
	return filepath.Join(filepath.Dir(m.a.st.Path()), "workload-releases", m.cluster)
}

// wl returns the membership's workload update state, loading it from disk
// on first use.
func (m *member) wl() *wlState {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.wlState == nil {
		s := &wlState{recs: map[string]*wlUpdate{}, kick: make(chan struct{}, 1)}
		if m.a.st != nil { // without a state file (unit tests) nothing persists
			s.path = filepath.Join(m.wlDir(), "workload-updates.json")
			if b, err := os.ReadFile(s.path); err == nil {
				_ = json.Unmarshal(b, &s.recs)
			}
		}
		m.wlState = s
	}
	return m.wlState
}

// save writes the records (caller holds mu): temporary file, fsync, rename.
func (s *wlState) save() error {
	if s.path == "" {
		return nil
	}
	b, err := json.Marshal(s.recs)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(s.path), 0o700); err != nil {
		return err
	}
	tmp := s.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, s.path)
}

// withArtifact rewrites a service config's workload artifact.
func withArtifact(cfg json.RawMessage, a *wlArtifact) (json.RawMessage, error) {
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(cfg, &doc); err != nil {
		return nil, err
	}
	var w map[string]json.RawMessage
	if err := json.Unmarshal(doc["workload"], &w); err != nil {
		return nil, err
	}
	var err error
	if a.Image != "" {
		if w["image"], err = json.Marshal(a.Image); err != nil {
			return nil, err
		}
		if w["image_version"], err = json.Marshal(a.Version); err != nil {
			return nil, err
		}
	} else {
		if w["artifact"], err = json.Marshal(workloadspec.Artifact{Path: a.Path, SHA256: a.SHA256, Version: a.Version}); err != nil {
			return nil, err
		}
	}
	if doc["workload"], err = json.Marshal(w); err != nil {
		return nil, err
	}
	return json.Marshal(doc)
}

// workloadConfig is the config the supervisor gets for a service: the
// snapshot's, with the artifact the update record says it runs now.
func (m *member) workloadConfig(s snapshot.ServiceConfig, log hclog.Logger) json.RawMessage {
	w := m.wl()
	w.mu.Lock()
	u := w.recs[s.ID]
	var run *wlArtifact
	if u != nil {
		run = u.running()
	}
	w.mu.Unlock()
	if run == nil {
		return s.Config
	}
	cfg, err := withArtifact(s.Config, run)
	if err != nil {
		log.Warn("workload update: config cannot be rewritten; running the pinned artifact", "service", s.ID, "error", err)
		return s.Config
	}
	return cfg
}

// noteWorkloadSnapshot keeps the snapshot for the workload update loop.
func (m *member) noteWorkloadSnapshot(snap snapshot.Snapshot) {
	w := m.wl()
	w.mu.Lock()
	cp := snap
	w.snap = &cp
	w.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// workloadUpdateLoop drives the workload updates of the membership.
func (m *member) workloadUpdateLoop(ctx context.Context) {
	log := m.a.log.With("cluster_id", m.cluster, "loop", "workload-updates")
	w := m.wl()
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-w.kick:
		}
		w.mu.Lock()
		snap := w.snap
		w.mu.Unlock()
		if snap != nil {
			m.stepWorkloadUpdates(ctx, *snap, log)
		}
	}
}

// desiredOf returns the snapshot's desired version of product.
func desiredOf(u *snapshot.Updates, product string) *snapshot.DesiredVersion {
	if u == nil {
		return nil
	}
	for i := range u.Desired {
		if u.Desired[i].Product == product {
			return &u.Desired[i]
		}
	}
	return nil
}

// stepWorkloadUpdates takes every native service of the snapshot one step.
func (m *member) stepWorkloadUpdates(ctx context.Context, snap snapshot.Snapshot, log hclog.Logger) {
	w := m.wl()
	changed := false
	live := map[string]bool{}
	for _, s := range snap.Body.Services {
		spec, err := workloadspec.FromConfig(s.Config)
		if err != nil || spec == nil || spec.Version() == "" {
			continue
		}
		if !(spec.Driver == workloadspec.DriverNative && spec.Artifact != nil) && !(spec.Driver == workloadspec.DriverContainer && spec.Image != "") {
			continue
		}
		live[s.ID] = true
		d := desiredOf(snap.Body.Updates, s.Type)
		w.mu.Lock()
		u := w.recs[s.ID]
		w.mu.Unlock()
		switch {
		case u != nil && u.Pinned != spec.Version(), d != nil && d.Version == spec.Version():
			// The owner pinned another artifact, or the pinned version is
			// the one desired: the pinned artifact runs.
			if u != nil {
				w.mu.Lock()
				delete(w.recs, s.ID)
				_ = w.save()
				w.mu.Unlock()
				changed = true
			}
		case u != nil && (d == nil || u.Target.Version == d.Version):
			// No desired version (a halted rollout, none at all) keeps the
			// last good artifact, as the agent keeps its running version.
			switch u.Phase {
			case wlTrial:
				changed = m.judgeTrial(ctx, snap, s, u, log) || changed
			case wlMigrating:
				// The agent stopped while the migration ran: its outcome is
				// unknown, the new version never starts.
				m.migrationFailed(ctx, s, u, errors.New("interrupted (the agent restarted while it ran)"), log)
			}
		case d == nil:
		default:
			changed = m.startWorkloadUpdate(ctx, snap, s, spec, *d, u, log) || changed
		}
	}
	w.mu.Lock()
	for id := range w.recs {
		if !live[id] {
			delete(w.recs, id)
			_ = w.save()
		}
	}
	w.mu.Unlock()
	if changed {
		m.applyWorkloads(snap, log)
	}
}

// startWorkloadUpdate verifies and stages d for service s and starts its
// trial; true when the supervisor must be told.
func (m *member) startWorkloadUpdate(ctx context.Context, snap snapshot.Snapshot, s snapshot.ServiceConfig, spec *workloadspec.Spec, d snapshot.DesiredVersion,
	prev *wlUpdate, log hclog.Logger) bool {
	w := m.wl()
	u := &wlUpdate{Product: s.Type, Pinned: spec.Version(), Target: wlArtifact{Version: d.Version}}
	if prev != nil {
		u.Good = prev.running()
		if prev.Phase == wlRolledBack || prev.Phase == wlFailed {
			u.Good = prev.Good
		}
	}
	current := u.Pinned
	if u.Good != nil {
		current = u.Good.Version
	}
	fail := func(step string, err error) bool {
		u.Phase, u.Failure = wlFailed, truncate(step+": "+err.Error(), 500)
		w.mu.Lock()
		w.recs[s.ID] = u
		_ = w.save()
		w.mu.Unlock()
		log.Warn("workload update refused", "service", s.ID, "product", s.Type, "version", d.Version, "error", err)
		m.reportWorkload(ctx, u, current, "failed")
		return false
	}
	m.reportWorkload(ctx, u, current, "checking")
	cur := current
	if _, err := release.ParseVersion(cur); err != nil {
		cur = ""
	}
	man, art, err := m.a.verifyProductRelease(ctx, m, *snap.Body.Updates, d, s.Type, cur)
	if err != nil {
		return fail("verify", err)
	}
	path := filepath.Join(m.wlDir(), s.Type, d.Version, "artifact")
	m.reportWorkload(ctx, u, current, "downloading")
	err = updater.StageFile(path, art, m.a.artifactSources(ctx, m, *snap.Body.Updates, art), func(name string, err error) {
		if err != nil {
			log.Warn("artifact source refused; trying the next", "source", name, "product", s.Type, "version", d.Version, "error", err)
		}
	})
	if err != nil {
		return fail("stage", err)
	}
	u.Target.Path, u.Target.SHA256 = path, art.SHA256
	if spec.Driver == workloadspec.DriverContainer {
		// The artifact is an image archive: loaded into the container
		// engine (its bytes were verified against the signed manifest) and
		// run by the digest it gets there.
		il, ok := m.a.o.Workloads.(ImageLoader)
		if !ok {
			return fail("load", errors.New("this agent's supervisor cannot load container images"))
		}
		lctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		ref, err := il.LoadImage(lctx, path, imageName(s.Type, d.Version))
		cancel()
		if err != nil {
			return fail("load", err)
		}
		u.Target.Image = ref
	}
	u.Phase = wlStaged
	w.mu.Lock()
	w.recs[s.ID] = u
	err = w.save()
	w.mu.Unlock()
	if err != nil {
		return fail("record", err)
	}
	if sc := man.Migration.ServiceState; sc != nil && sc.Command != nil {
		if !m.runServiceMigration(ctx, s, spec, u, *sc, current, log) {
			return false
		}
	}
	deadline := time.Duration(d.DeadlineSeconds) * time.Second
	if deadline <= 0 {
		deadline = 2 * time.Minute
	}
	now := m.a.o.Now()
	w.mu.Lock()
	u.Phase, u.Started, u.Deadline = wlTrial, now, now.Add(deadline)
	err = w.save()
	w.mu.Unlock()
	if err != nil {
		return fail("record", err)
	}
	log.Info("workload update staged; starting the new version", "service", s.ID, "product", s.Type, "version", d.Version, "deadline", deadline)
	m.reportWorkload(ctx, u, current, "health_checking")
	return true
}

// judgeTrial promotes or rolls back a trial from the instance's status;
// true when the supervisor must be told (rollback).
func (m *member) judgeTrial(ctx context.Context, snap snapshot.Snapshot, s snapshot.ServiceConfig, u *wlUpdate, log hclog.Logger) bool {
	wk := m.a.o.Workloads
	if wk == nil {
		return false
	}
	var st *workload.Status
	for _, x := range wk.Statuses(m.cluster) {
		if x.ServiceID == s.ID {
			st = &x
			break
		}
	}
	spec, _ := workloadspec.FromConfig(s.Config)
	hasCheck := spec != nil && spec.Health != nil
	now := m.a.o.Now()
	failure := ""
	fresh := st != nil && !st.Since.Before(u.Started)
	switch {
	case fresh && (st.State == workload.StateHealthy || (!hasCheck && st.State == workload.StateRunning && now.Sub(st.Since) >= 5*time.Second)):
		w := m.wl()
		w.mu.Lock()
		u.Phase = wlPromoted
		_ = w.save()
		w.mu.Unlock()
		log.Info("workload update promoted", "service", s.ID, "product", s.Type, "version", u.Target.Version)
		m.reportWorkload(ctx, u, u.Target.Version, "running")
		return false
	case fresh && slices.Contains([]workload.State{workload.StateRestarting, workload.StateCrashLoop, workload.StateFailed, workload.StateBlocked, workload.StateUnhealthy}, st.State):
		failure = fmt.Sprintf("%s %s: %s", s.Type, u.Target.Version, st.State)
		if st.Reason != "" {
			failure += ": " + st.Reason
		}
	case !now.Before(u.Deadline):
		failure = fmt.Sprintf("%s %s not healthy within the deadline", s.Type, u.Target.Version)
	default:
		return false
	}
	w := m.wl()
	w.mu.Lock()
	u.Phase, u.Failure = wlRolledBack, truncate(failure, 500)
	_ = w.save()
	w.mu.Unlock()
	back := u.Pinned
	if u.Good != nil {
		back = u.Good.Version
	}
	log.Warn("workload update rolled back", "service", s.ID, "product", s.Type, "version", u.Target.Version, "to", back, "reason", failure)
	m.reportWorkload(ctx, u, back, "rolled_back")
	return true
}

// Migrator is a Workloads that runs service-local migration programs
// (agent/workload.Supervisor).
type Migrator interface {
	Migrate(ctx context.Context, cluster, serviceID, program string, args, env []string) (string, error)
}

// runServiceMigration runs the migration command the signed manifest
// declares for the service's local data, before the new version starts:
// recorded (phase migrating) before it runs, bounded by its timeout. On a
// failure the instance stays on its last good artifact (the new version
// never starts) and the update is rolled back; false then.
func (m *member) runServiceMigration(ctx context.Context, s snapshot.ServiceConfig, spec *workloadspec.Spec, u *wlUpdate, sc release.SchemaChange, current string, log hclog.Logger) bool {
	c := sc.Command
	w := m.wl()
	what := fmt.Sprintf("service_state %d→%d: %s", sc.From, sc.To, strings.Join(append([]string{c.Path}, c.Args...), " "))
	w.mu.Lock()
	u.Phase, u.Migration = wlMigrating, truncate(what+": started "+m.a.o.Now().UTC().Format(time.RFC3339), 500)
	err := w.save()
	w.mu.Unlock()
	if err != nil {
		m.migrationFailed(ctx, s, u, fmt.Errorf("record: %w", err), log)
		return false
	}
	m.reportWorkload(ctx, u, current, "migrating")
	mg, ok := m.a.o.Workloads.(Migrator)
	switch {
	case !ok:
		err = errors.New("this agent's supervisor runs no migration programs")
	case spec.Driver != workloadspec.DriverNative:
		err = fmt.Errorf("%s workloads run no migration programs", spec.Driver)
	case c.Path != ".":
		err = fmt.Errorf("path %q: a native artifact is a single file (path \".\")", c.Path)
	}
	out := ""
	start := time.Now()
	if err == nil {
		log.Info("running the service migration the release declares", "service", s.ID, "product", s.Type, "version", u.Target.Version, "migration", what)
		mctx, cancel := context.WithTimeout(ctx, time.Duration(c.TimeoutSeconds)*time.Second)
		out, err = mg.Migrate(mctx, m.cluster, s.ID, u.Target.Path, c.Args, []string{
			fmt.Sprintf("RAP_MIGRATION_FROM=%d", sc.From), fmt.Sprintf("RAP_MIGRATION_TO=%d", sc.To),
			"RAP_RELEASE_VERSION=" + u.Target.Version, "RAP_PREVIOUS_VERSION=" + current})
		cancel()
	}
	if err != nil {
		if out != "" {
			err = fmt.Errorf("%w: %s", err, out)
		}
		m.migrationFailed(ctx, s, u, err, log)
		return false
	}
	w.mu.Lock()
	u.Phase, u.Migration = wlStaged, truncate(fmt.Sprintf("%s: ok in %s", what, time.Since(start).Round(time.Millisecond)), 500)
	err = w.save()
	w.mu.Unlock()
	if err != nil {
		m.migrationFailed(ctx, s, u, fmt.Errorf("record: %w", err), log)
		return false
	}
	log.Info("service migration done", "service", s.ID, "product", s.Type, "version", u.Target.Version, "migration", u.Migration)
	return true
}

// migrationFailed rolls an update back after its service migration failed:
// the instance keeps its last good artifact, the new one never started.
func (m *member) migrationFailed(ctx context.Context, s snapshot.ServiceConfig, u *wlUpdate, err error, log hclog.Logger) {
	w := m.wl()
	failure := fmt.Sprintf("%s %s: service migration failed: %v", s.Type, u.Target.Version, err)
	w.mu.Lock()
	u.Phase, u.Failure = wlRolledBack, truncate(failure, 500)
	u.Migration = truncate(u.Migration+"; failed", 500)
	_ = w.save()
	w.mu.Unlock()
	back := u.Pinned
	if u.Good != nil {
		back = u.Good.Version
	}
	log.Warn("workload update rolled back", "service", s.ID, "product", s.Type, "version", u.Target.Version, "to", back, "reason", failure)
	m.reportWorkload(ctx, u, back, "rolled_back")
}

// ImageLoader is a Workloads that loads container image archives
// (agent/workload.Supervisor): container workload updates need it.
type ImageLoader interface {
	LoadImage(ctx context.Context, archive, name string) (string, error)
}

// imageName is the local name a released image is loaded under.
func imageName(product, version string) string {
	clean := func(s string) string {
		b := []byte(strings.ToLower(s))
		for i, c := range b {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
				b[i] = '_'
			}
		}
		return string(b)
	}
	return "localhost/rap-release-" + clean(product) + ":" + clean(version)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// reportWorkload records a product's update state for heartbeats and
// reports it to the authorities (the rollout engine's input).
func (m *member) reportWorkload(ctx context.Context, u *wlUpdate, current, state string) {
	previous := u.Pinned
	if u.Good != nil {
		previous = u.Good.Version
	}
	if previous == current {
		previous = ""
	}
	r := updateReport{Product: u.Product, CurrentVersion: current, TargetVersion: u.Target.Version, State: state, LastFailure: u.Failure, PreviousVersion: previous}
	if state == "running" && u.Good == nil {
		r.PreviousVersion = u.Pinned
	}
	m.a.setWorkloadStatus(r)
	m.mu.Lock()
	c := m.client
	m.mu.Unlock()
	if c == nil {
		return
	}
	if _, err := release.ParseVersion(r.CurrentVersion); err != nil {
		return // the authority records semantic versions only
	}
	rctx, cancel := context.WithTimeout(ctx, m.a.o.RequestTimeout*2)
	defer cancel()
	if err := c.Do(rctx, http.MethodPost, agentapi.PathUpdates, r, nil, nil); err != nil && !errors.Is(err, context.Canceled) {
		m.a.log.Debug("workload update report not delivered", "error", err)
	}
}

// setWorkloadStatus keeps a product's latest update state for heartbeats.
func (a *Agent) setWorkloadStatus(r updateReport) {
	if !reportableVersion(r.CurrentVersion) {
		return
	}
	a.upMu.Lock()
	defer a.upMu.Unlock()
	if a.wlStatus == nil {
		a.wlStatus = map[string]updateReport{}
	}
	a.wlStatus[r.Product] = r
}
