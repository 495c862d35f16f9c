package authority

// The last `mesh ping` of each agent (spec: the console draws its path on the
// topology). Agents send it with every heartbeat after a ping
// (Heartbeat.LastPing); the authority keeps it in the latest heartbeat only —
// under healthPingKey of node_heartbeat_latest.health, never in the
// append-only history — so a membership holds at most one ping: the latest
// heartbeat's.

import (
	"context"
	"encoding/json"
	"math"
	"strings"
	"time"

	"github.com/rap-fabric/core/agentapi"
	"github.com/rap-fabric/core/store"
)

// healthPingKey is the key of the last ping in a latest heartbeat's health.
const healthPingKey = "last_ping"

// MeshPing is one agent's last `mesh ping` as GET /v1/clusters/{c}/pings
// shows it: the pinging node, the destination, the path of node ids there
// (relays in between) and back, the round-trip time, when it ran and when
// the heartbeat that carried it arrived.
type MeshPing struct {
	ClusterID   string    `json:"cluster_id"`
	NodeID      string    `json:"node_id"`
	Destination string    `json:"destination"`
	Path        []string  `json:"path"`
	Reverse     []string  `json:"reverse,omitempty"`
	RTTMs       float64   `json:"rtt_ms"`
	At          time.Time `json:"at"`
	ReceivedAt  time.Time `json:"received_at"`
}

func validPingID(s string) bool { return s != "" && len(s) <= agentapi.MaxPingIDLen }

// validatePing checks a heartbeat's last ping (nil: none).
func validatePing(p *agentapi.PingReport) error {
	if p == nil {
		return nil
	}
	if !validPingID(p.Destination) {
		return Errf(CodeInvalid, "last_ping.destination must be a node id of at most %d characters", agentapi.MaxPingIDLen)
	}
	for _, path := range [][]string{p.Path, p.Reverse} {
		if len(path) > agentapi.MaxPingPathLen {
			return Errf(CodeInvalid, "a last_ping path has at most %d hops", agentapi.MaxPingPathLen)
		}
		for _, id := range path {
			if !validPingID(id) {
				return Errf(CodeInvalid, "last_ping path entries must be node ids of at most %d characters", agentapi.MaxPingIDLen)
			}
		}
	}
	if len(p.Path) < 2 {
		return Errf(CodeInvalid, "last_ping.path names the sender and the destination at least")
	}
	if p.Path[len(p.Path)-1] != p.Destination {
		return Errf(CodeInvalid, "last_ping.path must end at last_ping.destination")
	}
	if p.RTTMs < 0 || math.IsNaN(p.RTTMs) || math.IsInf(p.RTTMs, 0) {
		return Errf(CodeInvalid, "last_ping.rtt_ms must be a non-negative number")
	}
	if p.At.IsZero() {
		return Errf(CodeInvalid, "last_ping.at is required")
	}
	return nil
}

// withPing returns health with the ping added under healthPingKey (health
// unchanged without one). health is a JSON object (Ingest made sure).
func withPing(health json.RawMessage, p *agentapi.PingReport) (json.RawMessage, error) {
	if p == nil {
		return health, nil
	}
	q := *p
	q.At = q.At.UTC()
	raw, err := json.Marshal(q)
	if err != nil {
		return health, Errf(CodeInvalid, "last_ping: %v", err)
	}
	body := strings.TrimSpace(string(health))
	if len(body) < 2 || body[0] != '{' || body[len(body)-1] != '}' {
		return health, Errf(CodeInvalid, "health must be a JSON object")
	}
	body = strings.TrimSpace(body[:len(body)-1])
	var b strings.Builder
	b.Grow(len(body) + len(raw) + 16)
	b.WriteString(body)
	if body != "{" {
		b.WriteByte(',')
	}
	b.WriteString(`"` + healthPingKey + `":`)
	b.Write(raw)
	b.WriteByte('}')
	return json.RawMessage(b.String()), nil
}

// LastPings returns the last `mesh ping` of each member of a cluster that
// reported one (nodeID "" for all), newest ping first.
func (a *Authority) LastPings(ctx context.Context, cluster, nodeID string, p store.Page) ([]MeshPing, error) {
	c, err := a.GetCluster(ctx, cluster)
	if err != nil {
		return nil, err
	}
	rows, err := store.ListLastPings(ctx, a.db.Pool, c.ID, nodeID, healthPingKey, p)
	if err != nil {
		return nil, asError(err)
	}
	out := make([]MeshPing, 0, len(rows))
	for _, r := range rows {
		var pr agentapi.PingReport
		if json.Unmarshal(r.Ping, &pr) != nil {
			continue
		}
		out = append(out, MeshPing{ClusterID: r.ClusterID, NodeID: r.NodeID, Destination: pr.Destination, Path: pr.Path,
			Reverse: pr.Reverse, RTTMs: pr.RTTMs, At: pr.At.UTC(), ReceivedAt: r.ReceivedAt.UTC()})
	}
	return out, nil
}
