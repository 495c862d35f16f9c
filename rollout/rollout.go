// Package rollout is the pure decision logic of staged release rollouts
// (spec stage C19): which nodes form the canary and each later wave, what
// version each node must run in each rollout state, and whether the current
// wave advances, completes or halts given the nodes' update reports.
//
// It performs no I/O and reads no clock: the authority passes the member
// list, the reports and the time in, persists the decisions (PostgreSQL
// rollout_policies, fenced and audited) and puts the desired versions in
// each node's signed snapshot. Wave membership is a deterministic function
// of the rollout id and the node ids, so every authority computes the same
// waves.
package rollout

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// State is a rollout's state (rollout_policies.state).
type State string

// Rollout states.
const (
	// StateRunning: waves advance as they succeed and soak.
	StateRunning State = "running"
	// StatePaused: nodes already in a wave keep their target; no new wave.
	StatePaused State = "paused"
	// StateHalted: too many failures in a wave; nothing more is asked of
	// any node until the owner resumes, rolls back or pins.
	StateHalted State = "halted"
	// StateCompleted: every wave succeeded; every node (joiners too) runs
	// the target.
	StateCompleted State = "completed"
	// StateRolledBack: every node returns to the rollback (last known good)
	// version, downgrade explicitly allowed.
	StateRolledBack State = "rolled_back"
	// StatePinned: emergency pin: every node runs the pinned version,
	// downgrade explicitly allowed.
	StatePinned State = "pinned"
)

// Open reports whether s holds the cluster's one open rollout slot.
func (s State) Open() bool {
	return s == StateRunning || s == StatePaused || s == StateHalted || s == StatePinned
}

// Policy is how a rollout proceeds.
type Policy struct {
	// CanaryCount and CanaryPercent size the canary wave: the larger of
	// the count and the percentage of the nodes (rounded up), at least 1.
	CanaryCount   int `json:"canary_count"`
	CanaryPercent int `json:"canary_percent"`
	// WavePercent sizes each later wave (rounded up, at least 1 node).
	WavePercent int `json:"wave_percent"`
	// Soak is how long a fully successful wave runs before the next starts.
	Soak time.Duration `json:"soak"`
	// FailureThreshold: this many failed nodes in a wave halt the rollout.
	FailureThreshold int `json:"failure_threshold"`
	// Deadline: a node of the current wave that has not reported running
	// the target this long after the wave started counts as failed.
	Deadline time.Duration `json:"deadline"`
}

// DefaultPolicy is a conservative policy: one canary, 25 % waves, 5 min
// soak, halt at the first failure, 2 min per node update.
func DefaultPolicy() Policy {
	return Policy{CanaryCount: 1, WavePercent: 25, Soak: 5 * time.Minute, FailureThreshold: 1, Deadline: 2 * time.Minute}
}

// ErrInvalidPolicy wraps every Validate failure.
var ErrInvalidPolicy = errors.New("rollout: invalid policy")

// Validate checks the policy's ranges.
func (p Policy) Validate() error {
	switch {
	case p.CanaryCount < 0 || p.CanaryCount > 10000:
		return fmt.Errorf("%w: canary_count %d out of 0..10000", ErrInvalidPolicy, p.CanaryCount)
	case p.CanaryPercent < 0 || p.CanaryPercent > 100:
		return fmt.Errorf("%w: canary_percent %d out of 0..100", ErrInvalidPolicy, p.CanaryPercent)
	case p.WavePercent < 1 || p.WavePercent > 100:
		return fmt.Errorf("%w: wave_percent %d out of 1..100", ErrInvalidPolicy, p.WavePercent)
	case p.Soak < 0 || p.Soak > 7*24*time.Hour:
		return fmt.Errorf("%w: soak %s out of 0..168h", ErrInvalidPolicy, p.Soak)
	case p.FailureThreshold < 1:
		return fmt.Errorf("%w: failure_threshold must be at least 1", ErrInvalidPolicy)
	case p.Deadline < time.Second || p.Deadline > 24*time.Hour:
		return fmt.Errorf("%w: deadline %s out of 1s..24h", ErrInvalidPolicy, p.Deadline)
	}
	return nil
}

// Rollout is one rollout as the planner needs it.
type Rollout struct {
	ID    string
	State State
	// Target is the version being rolled out (or pinned).
	Target string
	// Rollback is the last-known-good version (used in StateRolledBack).
	Rollback string
	Policy   Policy
	// CurrentWave is the index of the wave in progress (0 = canary).
	CurrentWave int
	// WaveStartedAt is when CurrentWave started.
	WaveStartedAt time.Time
}

// Waves splits nodes (any order, duplicates ignored) into the canary and the
// later waves. The order is sha256(rolloutID|nodeID), so it is stable for
// one rollout and differs between rollouts (the same node is not always the
// canary).
func Waves(rolloutID string, nodes []string, p Policy) [][]string {
	ns := slices.Clone(nodes)
	slices.Sort(ns)
	ns = slices.Compact(ns)
	n := len(ns)
	if n == 0 {
		return nil
	}
	key := func(id string) string {
		s := sha256.Sum256([]byte(rolloutID + "|" + id))
		return string(s[:])
	}
	slices.SortFunc(ns, func(a, b string) int { return strings.Compare(key(a), key(b)) })
	canary := max(p.CanaryCount, ceilPct(p.CanaryPercent, n), 1)
	canary = min(canary, n)
	waves := [][]string{ns[:canary]}
	step := max(ceilPct(p.WavePercent, n), 1)
	for i := canary; i < n; i += step {
		waves = append(waves, ns[i:min(i+step, n)])
	}
	return waves
}

func ceilPct(pct, n int) int { return (pct*n + 99) / 100 }

// WaveOf returns the index of node's wave, or -1.
func WaveOf(waves [][]string, node string) int {
	for i, w := range waves {
		if slices.Contains(w, node) {
			return i
		}
	}
	return -1
}

// Desired is what one node must run for a rollout.
type Desired struct {
	// Version to run.
	Version string
	// AllowDowngrade: a signed rollback or pin allows going below the
	// node's current version (only to exactly Version).
	AllowDowngrade bool
	// Wave is the node's wave (-1 for nodes outside the waves, e.g. joiners).
	Wave int
}

// DesiredFor returns the version node must run, and ok false when the
// rollout asks nothing of it (not yet its wave, or halted).
func DesiredFor(r Rollout, waves [][]string, node string) (Desired, bool) {
	w := WaveOf(waves, node)
	switch r.State {
	case StateRunning, StatePaused:
		if w >= 0 && w <= r.CurrentWave {
			return Desired{Version: r.Target, Wave: w}, true
		}
	case StateCompleted:
		return Desired{Version: r.Target, Wave: w}, true
	case StateRolledBack:
		if r.Rollback != "" {
			return Desired{Version: r.Rollback, AllowDowngrade: true, Wave: w}, true
		}
	case StatePinned:
		return Desired{Version: r.Target, AllowDowngrade: true, Wave: w}, true
	}
	return Desired{}, false
}

// Update states a node reports (spec: suggested update states).
const (
	UpdateIdle             = "idle"
	UpdateChecking         = "checking"
	UpdateDownloading      = "downloading"
	UpdateVerifying        = "verifying"
	UpdateStaging          = "staging"
	UpdateMigrating        = "migrating"
	UpdateStarting         = "starting"
	UpdateHealthChecking   = "health_checking"
	UpdatePromoting        = "promoting"
	UpdateRunning          = "running"
	UpdateRollbackRequired = "rollback_required"
	UpdateRollingBack      = "rolling_back"
	UpdateRolledBack       = "rolled_back"
	UpdateFailed           = "failed"
	UpdateFenced           = "fenced"
)

// ValidUpdateState reports whether s is one of the update states.
func ValidUpdateState(s string) bool {
	switch s {
	case UpdateIdle, UpdateChecking, UpdateDownloading, UpdateVerifying, UpdateStaging, UpdateMigrating, UpdateStarting,
		UpdateHealthChecking, UpdatePromoting, UpdateRunning, UpdateRollbackRequired, UpdateRollingBack, UpdateRolledBack,
		UpdateFailed, UpdateFenced:
		return true
	}
	return false
}

// Report is a node's latest update report for the rollout's product.
type Report struct {
	// Current is the version the node runs now.
	Current string
	// Target is the version its latest update attempt aimed at.
	Target string
	// State is its update state (Update*).
	State string
	// At is when the report was received.
	At time.Time
}

// Action is what Evaluate decides.
type Action string

// Actions.
const (
	ActionNone     Action = "none"
	ActionAdvance  Action = "advance"
	ActionComplete Action = "complete"
	ActionHalt     Action = "halt"
)

// Decision is the outcome of evaluating the current wave.
type Decision struct {
	Action Action
	Reason string
	// Succeeded, Failed and Pending are the current wave's nodes by outcome.
	Succeeded, Failed, Pending []string
}

// Evaluate decides what a running rollout does next (nothing while the
// cluster has no active node): halt when the current
// wave's failures reach the threshold (reported rollback or failure of the
// target, or no success within the deadline), advance (or complete after the
// last wave) when every node of the wave runs the target and the wave has
// soaked since the last of them reported it, otherwise nothing.
func Evaluate(r Rollout, waves [][]string, reports map[string]Report, now time.Time) Decision {
	if r.State != StateRunning {
		return Decision{Action: ActionNone, Reason: "rollout is " + string(r.State)}
	}
	if len(waves) == 0 {
		// Nothing proves the release yet: an empty cluster waits for nodes
		// instead of declaring an untried version last-known-good.
		return Decision{Action: ActionNone, Reason: "no active nodes in the cluster yet"}
	}
	if r.CurrentWave >= len(waves) {
		return Decision{Action: ActionComplete, Reason: "every wave done"}
	}
	var d Decision
	var lastOK time.Time
	for _, n := range waves[r.CurrentWave] {
		rep, ok := reports[n]
		switch {
		case ok && rep.Current == r.Target && (rep.State == UpdateRunning || rep.State == UpdateIdle):
			d.Succeeded = append(d.Succeeded, n)
			if rep.At.After(lastOK) {
				lastOK = rep.At
			}
		case ok && rep.Target == r.Target && (rep.State == UpdateRolledBack || rep.State == UpdateFailed || rep.State == UpdateFenced ||
			rep.State == UpdateRollbackRequired || rep.State == UpdateRollingBack):
			d.Failed = append(d.Failed, n)
		case now.Sub(r.WaveStartedAt) > r.Policy.Deadline:
			d.Failed = append(d.Failed, n)
		default:
			d.Pending = append(d.Pending, n)
		}
	}
	switch {
	case len(d.Failed) >= r.Policy.FailureThreshold:
		d.Action = ActionHalt
		d.Reason = fmt.Sprintf("wave %d: %d node(s) failed to run %s (threshold %d): %s", r.CurrentWave, len(d.Failed), r.Target,
			r.Policy.FailureThreshold, strings.Join(d.Failed, ","))
	case len(d.Pending) > 0 || len(d.Failed) > 0:
		d.Action = ActionNone
		d.Reason = fmt.Sprintf("wave %d: %d of %d node(s) done", r.CurrentWave, len(d.Succeeded), len(waves[r.CurrentWave]))
	case now.Sub(lastOK) < r.Policy.Soak:
		d.Action = ActionNone
		d.Reason = fmt.Sprintf("wave %d soaking until %s", r.CurrentWave, lastOK.Add(r.Policy.Soak).UTC().Format(time.RFC3339))
	case r.CurrentWave+1 >= len(waves):
		d.Action = ActionComplete
		d.Reason = fmt.Sprintf("all %d wave(s) succeeded", len(waves))
	default:
		d.Action = ActionAdvance
		d.Reason = fmt.Sprintf("wave %d succeeded and soaked", r.CurrentWave)
	}
	return d
}
