package workload

import (
	"strconv"
	"time"
)

// State is the supervised state of one instance.
type State string

// Instance states.
const (
	StatePending    State = "pending"    // assigned, not yet looked at
	StateStarting   State = "starting"   // being prepared or started
	StateRunning    State = "running"    // running, health not known yet (or no check)
	StateHealthy    State = "healthy"    // running and its check passes
	StateUnhealthy  State = "unhealthy"  // running and its check fails
	StateRestarting State = "restarting" // exited or killed, waiting for its backoff
	StateCrashLoop  State = "crash_loop" // failing again and again; backing off at the cap
	StateStopped    State = "stopped"    // stopped on purpose (unassigned, revoked)
	StateBlocked    State = "blocked"    // not authorized or artifact mismatch: never started
	StateFailed     State = "failed"     // cannot be started (driver or artifact error)
)

// States lists every state.
var States = []State{StatePending, StateStarting, StateRunning, StateHealthy, StateUnhealthy, StateRestarting, StateCrashLoop, StateStopped, StateBlocked, StateFailed}

// Health values of an instance.
const (
	HealthUnknown   = "unknown"
	HealthHealthy   = "healthy"
	HealthUnhealthy = "unhealthy"
)

// Exit is how a workload's process ended.
type Exit struct {
	// Code is the exit code, -1 when killed by a signal or unknown.
	Code int `json:"code"`
	// Signal names the terminating signal, if any.
	Signal string `json:"signal,omitempty"`
	// Unknown is set for an adopted process whose status the agent cannot
	// collect (it is not its parent).
	Unknown bool      `json:"unknown,omitempty"`
	At      time.Time `json:"at"`
	// Output are the last lines of the workload's output at the exit.
	Output []string `json:"output,omitempty"`
}

// String is a short human form.
func (e Exit) String() string {
	switch {
	case e.Unknown:
		return "exited (status unknown)"
	case e.Signal != "":
		return "killed by " + e.Signal
	default:
		return "exit code " + strconv.Itoa(e.Code)
	}
}

// Status is the reported state of one instance (the heartbeat's services
// entries).
type Status struct {
	// ServiceID is the node_service_instances id the snapshot names.
	ServiceID string `json:"service_id"`
	Type      string `json:"type"`
	Instance  string `json:"instance,omitempty"`
	Driver    string `json:"driver,omitempty"`
	State     State  `json:"state"`
	Health    string `json:"health"`
	Version   string `json:"version,omitempty"`
	Restarts  int    `json:"restarts"`
	LastExit  *Exit  `json:"last_exit,omitempty"`
	// Since is when the instance entered State.
	Since time.Time `json:"since"`
	// Reason explains blocked, failed, crash_loop, unhealthy and stopped.
	Reason string `json:"reason,omitempty"`
	// PID (native) or ContainerID (container) of the running workload.
	PID         int    `json:"pid,omitempty"`
	ContainerID string `json:"container_id,omitempty"`
	// User is the account the workload runs as.
	User string `json:"user,omitempty"`
	// Adopted is set when the agent re-adopted a workload started before
	// it (re)started.
	Adopted bool `json:"adopted,omitempty"`
}
