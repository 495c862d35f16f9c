package workload

import (
	"encoding/json"
	"os"
	"path/filepath"
	"time"

	"github.com/rap-fabric/core/workloadspec"
)

// Driver runs workloads of one kind (native, container).
type Driver interface {
	// Kind is the workloadspec driver name.
	Kind() string
	// Prepare verifies and readies the artifact and returns the version to
	// report. A *BlockedError means the workload must not run (artifact or
	// image does not match its pin).
	Prepare(inst *Instance) (version string, err error)
	// Start starts the workload.
	Start(inst *Instance) (Handle, error)
	// Adopt re-attaches to the workload rec describes when it still runs.
	Adopt(inst *Instance, rec Record) (Handle, bool)
}

// Handle is one started (or adopted) workload.
type Handle interface {
	Execer
	// Done is closed when the workload has ended.
	Done() <-chan struct{}
	// Exit is how it ended (valid after Done).
	Exit() Exit
	// Stop asks it to end (SIGTERM or podman stop) and kills it after
	// timeout; it returns when the workload has ended.
	Stop(timeout time.Duration)
	// Record is what a later agent needs to re-adopt it.
	Record() Record
}

// Instance is what a driver knows of one supervised instance.
type Instance struct {
	// Key is "cluster/service id"; Name a short, safe name derived from it.
	Key, Name string
	Cluster   string
	Assignment
	Spec *workloadspec.Spec
	// Dir is the instance's directory under the supervisor root.
	Dir string
	// User is set by the driver: the account the workload runs as.
	User string
}

// LogPath is the instance's output log.
func (i *Instance) LogPath() string { return filepath.Join(i.Dir, OutputLog) }

// BlockedError means a workload must not run; Reason says why.
type BlockedError struct{ Reason string }

func (e *BlockedError) Error() string { return "blocked: " + e.Reason }

// Record is persisted in the instance directory while the workload runs.
type Record struct {
	Driver   string    `json:"driver"`
	SpecHash string    `json:"spec_hash"`
	Started  time.Time `json:"started"`
	// PID and StartTicks (field 22 of /proc/PID/stat) identify a native
	// process; a recycled pid has another start time.
	PID        int    `json:"pid,omitempty"`
	StartTicks uint64 `json:"start_ticks,omitempty"`
	// Cgroups are the cgroup directories the process was placed in.
	Cgroups     []string `json:"cgroups,omitempty"`
	ContainerID string   `json:"container_id,omitempty"`
	User        string   `json:"user,omitempty"`
	Version     string   `json:"version,omitempty"`
	Restarts    int      `json:"restarts,omitempty"`
}

const recordFile = "instance.json"

func readRecord(dir string) (Record, bool) {
	b, err := os.ReadFile(filepath.Join(dir, recordFile))
	if err != nil {
		return Record{}, false
	}
	var r Record
	if json.Unmarshal(b, &r) != nil {
		return Record{}, false
	}
	return r, true
}

func writeRecord(dir string, r Record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, recordFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, recordFile))
}

func removeRecord(dir string) {
	_ = os.Remove(filepath.Join(dir, recordFile))
}
