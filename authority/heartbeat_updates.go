package authority

// Update state in heartbeats (spec stage C19, "visible"): every agent sends
// its update state per product (state, current / previous / target version,
// last failure) with each heartbeat. The authority validates it and keeps it
// inside the heartbeat's health document under the reserved key "updates"
// (the agent's own health keys stay as sent; the authority's value wins a
// duplicate key), so the latest state per node lives in
// node_heartbeat_latest and the history in the heartbeat log, with no
// statement more per flush. LatestHeartbeats lifts it out again
// (NodeHeartbeat.Updates, UpdateState).
//
// When a node's update state changes, the flush also records it as the
// node's update runs (node_update_runs, the rollout engine's input, as
// POST /v1/agent/updates does): a report the agent could not deliver on
// its own reaches the rollout engine with its next heartbeat.

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/rap-fabric/core/agentapi"
	"github.com/rap-fabric/core/release"
	"github.com/rap-fabric/core/rollout"
)

// healthUpdatesKey is the health document's key holding the update state.
const healthUpdatesKey = "updates"

// validVersionText accepts a reported version: empty, or 1..64 printable
// characters without spaces (development builds report names like "dev",
// so semantic versions are not required here).
func validVersionText(v string) bool {
	if len(v) > 64 {
		return false
	}
	for i := 0; i < len(v); i++ {
		if v[i] <= ' ' || v[i] > '~' {
			return false
		}
	}
	return true
}

// validateHeartbeatUpdates checks a heartbeat's update state: at most
// agentapi.MaxHeartbeatUpdates entries, one per product, known states,
// bounded versions and failure text.
func validateHeartbeatUpdates(us []agentapi.UpdateReport) error {
	if len(us) > agentapi.MaxHeartbeatUpdates {
		return Errf(CodeInvalid, "updates: at most %d entries", agentapi.MaxHeartbeatUpdates)
	}
	seen := make(map[string]bool, len(us))
	for _, u := range us {
		switch {
		case !release.ValidProduct(u.Product):
			return Errf(CodeInvalid, "updates: product invalid")
		case seen[u.Product]:
			return Errf(CodeInvalid, "updates: product %s reported twice", u.Product)
		case !rollout.ValidUpdateState(u.State):
			return Errf(CodeInvalid, "updates: state must be one of the update states (idle, checking, downloading, …, rolled_back, failed, fenced)")
		case u.CurrentVersion == "":
			return Errf(CodeInvalid, "updates: current_version is required")
		case !validVersionText(u.CurrentVersion) || !validVersionText(u.TargetVersion) || !validVersionText(u.FromVersion) || !validVersionText(u.PreviousVersion):
			return Errf(CodeInvalid, "updates: versions are at most 64 printable characters without spaces")
		case len(u.LastFailure) > 500:
			return Errf(CodeInvalid, "updates: last_failure is at most 500 characters")
		}
		seen[u.Product] = true
	}
	return nil
}

// withUpdates returns the health object with the update state added under
// healthUpdatesKey (health is a JSON object, "{}" at least).
func withUpdates(health json.RawMessage, us []agentapi.UpdateReport) (json.RawMessage, error) {
	if len(us) == 0 {
		return health, nil
	}
	raw, err := json.Marshal(us)
	if err != nil {
		return health, Errf(CodeInvalid, "updates: %v", err)
	}
	return withHealthKey(health, healthUpdatesKey, raw)
}

// withHealthKey adds "key": raw to the health JSON object.
func withHealthKey(health json.RawMessage, key string, raw []byte) (json.RawMessage, error) {
	body := strings.TrimSpace(string(health))
	if len(body) < 2 || body[0] != '{' || body[len(body)-1] != '}' {
		return health, Errf(CodeInvalid, "health must be a JSON object")
	}
	body = strings.TrimSpace(body[:len(body)-1]) // the closing brace
	var b strings.Builder
	b.Grow(len(body) + len(raw) + 16)
	b.WriteString(body)
	if body != "{" {
		b.WriteByte(',')
	}
	b.WriteString(`"` + key + `":`)
	b.Write(raw)
	b.WriteByte('}')
	return json.RawMessage(b.String()), nil
}

// updatesOf lifts the update state out of a stored health document (nil
// when there is none or it cannot be read).
func updatesOf(health json.RawMessage) []agentapi.UpdateReport {
	if len(health) == 0 {
		return nil
	}
	var h struct {
		Updates []agentapi.UpdateReport `json:"updates"`
	}
	if json.Unmarshal(health, &h) != nil {
		return nil
	}
	return h.Updates
}

// UpdateSummary is a one-line update state of the agent product (the
// console's "update state" column): "running 1.4.0", "health_checking
// 1.3.0 → 1.4.0", "rolled_back 1.4.0 (reason)". Empty without a report.
func UpdateSummary(us []agentapi.UpdateReport) string {
	for _, u := range us {
		if u.Product != release.ProductNodeAgent {
			continue
		}
		s := u.State + " " + u.CurrentVersion
		if u.TargetVersion != "" && u.TargetVersion != u.CurrentVersion {
			s += " → " + u.TargetVersion
		}
		if u.PreviousVersion != "" {
			s += " (previous " + u.PreviousVersion + ")"
		}
		if u.LastFailure != "" {
			s += ": " + u.LastFailure
		}
		return s
	}
	return ""
}

// updateRuns are a membership's changed update reports awaiting a flush.
type updateRuns struct {
	key     hbKey
	reports []agentapi.UpdateReport
	at      time.Time // when the heartbeat that changed them arrived
}

// recordUpdateRuns records changed heartbeat update states as update runs
// (only reports the run table can hold: semantic current and target
// versions). Failures are logged; the agent's own reports remain.
func (h *Heartbeats) recordUpdateRuns(ctx context.Context, runs []updateRuns) {
	if h.a == nil || h.a.rollouts == nil {
		return
	}
	for _, r := range runs {
		for _, rep := range r.reports {
			if rep.TargetVersion == "" {
				continue
			}
			if _, err := release.ParseVersion(rep.CurrentVersion); err != nil {
				continue
			}
			if _, err := release.ParseVersion(rep.TargetVersion); err != nil {
				continue
			}
			if _, err := h.a.rollouts.report(ctx, NodePrincipal{ClusterID: r.key.cluster, NodeID: r.key.node}, rep, r.at); err != nil {
				h.a.log.Debug("recording a heartbeat's update state failed", "node_id", r.key.node, "product", rep.Product, "error", err)
			}
		}
	}
}
