package updater

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/rap-fabric/core/agent/state"
	"github.com/rap-fabric/core/release"
)

// Update steps recorded in state.PendingUpdate.State, in order. Each is
// persisted before the step it names is taken.
const (
	// StepDownloading: the artifact is being fetched into a temporary file.
	StepDownloading = "downloading"
	// StepStaged: the verified binary is in its slot.
	StepStaged = "staged"
	// StepSwitchRequested: the agent asks the launcher to start the staged
	// version (it exits with ExitSwitch, or the launcher finds it at start).
	StepSwitchRequested = "switch_requested"
	// StepHealthChecking: the launcher started the new version (Attempts
	// counts the starts) and waits for it to heartbeat.
	StepHealthChecking = "health_checking"
	// StepRolledBack: the new version failed; the previous one runs again.
	StepRolledBack = "rolled_back"
)

// ExitSwitch is the exit status with which the agent asks its launcher to
// switch to the staged version recorded in pending_update.
const ExitSwitch = 75

// PendingStore is the part of the agent's state file the updater uses. It
// is held by exactly one process at a time (the agent while it runs, the
// launcher in between).
type PendingStore interface {
	// Memberships lists the enrolled clusters (sorted).
	Memberships() ([]string, error)
	// PendingUpdate returns cluster's pending update or an error wrapping
	// state.ErrNotFound.
	PendingUpdate(cluster string) (state.PendingUpdate, error)
	// PutPendingUpdate durably records cluster's pending update.
	PutPendingUpdate(cluster string, u state.PendingUpdate) error
	// ClearPendingUpdate removes it.
	ClearPendingUpdate(cluster string) error
}

// FindPending returns the pending update of the host (recorded under the
// first membership that has one) and that membership.
func FindPending(st PendingStore) (string, state.PendingUpdate, bool, error) {
	ms, err := st.Memberships()
	if err != nil {
		return "", state.PendingUpdate{}, false, err
	}
	for _, c := range ms {
		u, err := st.PendingUpdate(c)
		if errors.Is(err, state.ErrNotFound) {
			continue
		}
		if err != nil {
			return "", state.PendingUpdate{}, false, err
		}
		return c, u, true, nil
	}
	return "", state.PendingUpdate{}, false, nil
}

// ErrDowngrade: the requested version is below the current one and no
// signed rollback or pin allows it.
var ErrDowngrade = errors.New("updater: downgrade refused")

// StageRequest is one agent update to stage.
type StageRequest struct {
	// Cluster is the membership whose snapshot ordered the update (its
	// pending_update record is used).
	Cluster string
	// ReleaseID and Version name the release; Artifact is the verified
	// manifest's artifact for this host.
	ReleaseID string
	Version   string
	Artifact  release.Artifact
	// Current is the version running now.
	Current string
	// AllowDowngrade: a signed rollback or pin (snapshot) allows Version <
	// Current.
	AllowDowngrade bool
	// Fetch opens the artifact's bytes (from an authority or a mirror: the
	// bytes are verified whoever serves them). Used when Sources is empty.
	Fetch func() (io.ReadCloser, error)
	// Sources are tried in order (update-cache mirrors first, then the
	// authorities): a source that cannot be reached, or whose bytes do not
	// match the signed size and sha256, is skipped for the next one.
	Sources []Source
	// OnSource, when set, is told how each source tried went (nil error:
	// it served the staged bytes).
	OnSource func(name string, err error)
	// NodeState is the node-local state schema change the signed manifest
	// declares (nil: none). It is recorded in pending_update; the new
	// version applies it on start (MigrateDeclared).
	NodeState *release.SchemaChange
	// Now is the clock reading.
	Now time.Time
}

// Stage runs the agent-owned steps: record downloading, stream and verify
// the artifact into its slot, record staged, record switch_requested. A
// crash anywhere leaves either the previous record or a later one; running
// Stage again continues (a verified slot is not fetched again).
func Stage(st PendingStore, slots Slots, req StageRequest) error {
	c, err := release.CompareVersions(req.Version, req.Current)
	if err != nil {
		return err
	}
	if c < 0 && !req.AllowDowngrade {
		return fmt.Errorf("%w: %s < current %s", ErrDowngrade, req.Version, req.Current)
	}
	u := state.PendingUpdate{ReleaseID: req.ReleaseID, Version: req.Version, PreviousVersion: req.Current, ArtifactSHA256: req.Artifact.SHA256,
		StagedPath: slots.Binary(req.Version), State: StepDownloading, StartedAt: req.Now, AllowDowngrade: req.AllowDowngrade}
	if sc := req.NodeState; sc != nil {
		u.NodeState = &state.StateChange{From: uint64(sc.From), To: uint64(sc.To), Preflight: sc.Preflight, Rollback: sc.Rollback}
	}
	// Running Stage again for the same version before the switch (after a
	// crash) keeps the record's attempt count; a new staging starts at 0.
	if prev, err := st.PendingUpdate(req.Cluster); err == nil && prev.Version == req.Version &&
		(prev.State == StepDownloading || prev.State == StepStaged || prev.State == StepSwitchRequested) {
		u.Attempts = prev.Attempts
	}
	if err := st.PutPendingUpdate(req.Cluster, u); err != nil {
		return err
	}
	if !slots.Has(req.Version) || slots.Verify(req.Version, req.Artifact) != nil {
		if err := stageFromSources(slots, req); err != nil {
			return err
		}
	}
	u.State = StepStaged
	if err := st.PutPendingUpdate(req.Cluster, u); err != nil {
		return err
	}
	u.State = StepSwitchRequested
	return st.PutPendingUpdate(req.Cluster, u)
}

// Source is one place an artifact's bytes may come from. Every source is
// untrusted: Stage verifies the bytes against the signed manifest.
type Source struct {
	// Name says where (for reports and logs), e.g. "update-cache <node>".
	Name string
	// Open starts the download.
	Open func() (io.ReadCloser, error)
}

// ErrNoSource: no source served bytes that verify.
var ErrNoSource = errors.New("updater: no source served the artifact")

// stageFromSources stages the artifact from the first source whose bytes
// verify; the error names every source that failed and why.
func stageFromSources(slots Slots, req StageRequest) error {
	srcs := req.Sources
	if len(srcs) == 0 && req.Fetch != nil {
		srcs = []Source{{Name: "fetch", Open: req.Fetch}}
	}
	errs := []error{ErrNoSource}
	for _, src := range srcs {
		rc, err := src.Open()
		if err == nil {
			err = slots.Stage(req.Version, req.Artifact, rc)
			rc.Close()
		}
		if req.OnSource != nil {
			req.OnSource(src.Name, err)
		}
		if err == nil {
			return nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", src.Name, err))
	}
	return errors.Join(errs...)
}

// StageFile downloads an artifact to path from the first source whose bytes
// match a (size and sha256, checked while they stream into a temporary file
// next to path, fsynced, made read-only executable and renamed into place);
// a file already at path that matches is kept. Workload releases use it.
func StageFile(path string, a release.Artifact, sources []Source, onSource func(string, error)) error {
	if f, err := os.Open(path); err == nil {
		d := release.NewDigester(a)
		_, err = io.Copy(d, f)
		f.Close()
		if err == nil && d.Verify() == nil {
			return nil
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	errs := []error{ErrNoSource}
	for _, src := range sources {
		err := stageOneFile(path, a, src)
		if onSource != nil {
			onSource(src.Name, err)
		}
		if err == nil {
			return nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", src.Name, err))
	}
	return errors.Join(errs...)
}

func stageOneFile(path string, a release.Artifact, src Source) error {
	rc, err := src.Open()
	if err != nil {
		return err
	}
	defer rc.Close()
	tmp, err := os.CreateTemp(filepath.Dir(path), ".stage-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	d := release.NewDigester(a)
	if _, err := io.Copy(io.MultiWriter(tmp, d), rc); err != nil {
		tmp.Close()
		return err
	}
	if err := d.Verify(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o555); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}
