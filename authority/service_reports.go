package authority

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"
	"unicode/utf8"
)

// ServiceReport is one entry of a heartbeat's services array: what the
// node's supervisor reports about one service instance (agent/workload
// Status). The flush writes it to node_service_instances (store).
type ServiceReport struct {
	ServiceID string             `json:"service_id"`
	Type      string             `json:"type,omitempty"`
	Instance  string             `json:"instance,omitempty"`
	Driver    string             `json:"driver,omitempty"`
	State     string             `json:"state"`
	Health    string             `json:"health"`
	Version   string             `json:"version,omitempty"`
	Restarts  int                `json:"restarts"`
	Since     time.Time          `json:"since"`
	Reason    string             `json:"reason,omitempty"`
	LastExit  *ServiceReportExit `json:"last_exit,omitempty"`
	PID       int                `json:"pid,omitempty"`
	Container string             `json:"container_id,omitempty"`
	User      string             `json:"user,omitempty"`
	Adopted   bool               `json:"adopted,omitempty"`
}

// ServiceReportExit is how an instance's workload last ended.
type ServiceReportExit struct {
	Code    int       `json:"code"`
	Signal  string    `json:"signal,omitempty"`
	Unknown bool      `json:"unknown,omitempty"`
	At      time.Time `json:"at"`
	Output  []string  `json:"output,omitempty"`
}

// ReportedServiceStates are the states a supervisor reports.
var ReportedServiceStates = []string{"pending", "starting", "running", "healthy", "unhealthy", "restarting", "crash_loop", "stopped", "blocked", "failed"}

var reportedHealth = []string{"unknown", "healthy", "unhealthy"}

// MaxServiceReports bounds the entries of one heartbeat.
const MaxServiceReports = 256

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// normalizeServiceReports checks a heartbeat's services array entry by entry
// and re-encodes it from the typed form (unknown fields dropped, long texts
// clipped), so that the flush's SQL only ever sees well-formed entries. A
// malformed entry refuses the heartbeat (invalid_argument).
func normalizeServiceReports(raw json.RawMessage) (json.RawMessage, error) {
	if len(raw) == 0 || string(raw) == "null" || string(raw) == "[]" {
		return json.RawMessage(`[]`), nil
	}
	var in []ServiceReport
	if err := json.Unmarshal(raw, &in); err != nil {
		return nil, Errf(CodeInvalid, "services: %v", err)
	}
	if len(in) > MaxServiceReports {
		return nil, Errf(CodeInvalid, "services: at most %d entries", MaxServiceReports)
	}
	for i := range in {
		r := &in[i]
		bad := func(f string) error { return Errf(CodeInvalid, "services[%d]: %s", i, f) }
		switch {
		case r.ServiceID == "" || len(r.ServiceID) > 64:
			return nil, bad("service_id is required (at most 64 characters)")
		case !slices.Contains(ReportedServiceStates, r.State):
			return nil, bad(fmt.Sprintf("unknown state %q", r.State))
		case !slices.Contains(reportedHealth, r.Health):
			return nil, bad(fmt.Sprintf("unknown health %q", r.Health))
		case r.Restarts < 0 || r.Restarts > 1<<30:
			return nil, bad("restarts out of range")
		case r.Since.IsZero():
			return nil, bad("since is required")
		}
		r.Instance = clip(r.Instance, 200)
		r.Type, r.Driver, r.Version, r.Reason = clip(r.Type, 63), clip(r.Driver, 16), clip(r.Version, 100), clip(r.Reason, 1000)
		r.Container, r.User = clip(r.Container, 128), clip(r.User, 200)
		if e := r.LastExit; e != nil {
			e.Signal = clip(e.Signal, 32)
			if len(e.Output) > 50 {
				e.Output = e.Output[len(e.Output)-50:]
			}
			for j := range e.Output {
				e.Output[j] = clip(e.Output[j], 500)
			}
		}
	}
	return json.Marshal(in)
}
