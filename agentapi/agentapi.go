// Package agentapi is the wire contract of the agent routes of the authority
// API: the JSON request and response types and the TLS server names an agent
// sends. The authority (httpapi, authority) and the node agent (agent/runtime)
// both use it, so the two sides cannot drift apart. It imports only domain and
// the standard library: the agent binary must stay free of the authority side.
package agentapi

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/rap-fabric/core/domain"
)

// API paths of the agent routes.
const (
	PathJoin       = "/v1/agent/join"
	PathHeartbeat  = "/v1/agent/heartbeat"
	PathDesired    = "/v1/agent/desired"
	PathRenew      = "/v1/agent/certificate"
	PathCertStatus = "/v1/agent/certificate/status"
)

// TLS server names (SNI) an agent sends, so the authority presents a server
// certificate signed by the right cluster CA.
const (
	pinSuffix     = ".pin.rap-fabric"
	clusterSuffix = ".cluster.rap-fabric"
)

// ServerNameForPin is the server name of an enrolling agent, which knows only
// the cluster CA pin: the first 16 hex characters of the pin.
func ServerNameForPin(pin string) string {
	h := strings.TrimPrefix(pin, "sha256:")
	if len(h) > 16 {
		h = h[:16]
	}
	return h + pinSuffix
}

// ServerNameForCluster is the server name of an enrolled agent.
func ServerNameForCluster(clusterID string) string { return clusterID + clusterSuffix }

// PinPrefixOf returns the pin prefix of a ServerNameForPin name, or "".
func PinPrefixOf(serverName string) string {
	if p, ok := strings.CutSuffix(serverName, pinSuffix); ok && len(p) == 16 {
		return p
	}
	return ""
}

// ClusterOf returns the cluster id of a ServerNameForCluster name, or "".
func ClusterOf(serverName string) string {
	if c, ok := strings.CutSuffix(serverName, clusterSuffix); ok {
		return c
	}
	return ""
}

// JoinRequest is what an agent sends to join a cluster (POST /v1/agent/join).
type JoinRequest struct {
	Token           string              `json:"token"`
	NodeName        string              `json:"node_name"`
	HostFingerprint string              `json:"host_fingerprint"`
	PublicKey       []byte              `json:"public_key"`
	NoisePublicKey  []byte              `json:"noise_public_key"`
	Facts           json.RawMessage     `json:"facts"`
	Capabilities    []domain.Capability `json:"capabilities"`
	RequestedRoles  []domain.Role       `json:"requested_roles"`
	// PollSecret is chosen by the agent (32 bytes); only its hash is stored. It
	// authenticates polls for the outcome and makes a resent identical request
	// idempotent.
	PollSecret []byte `json:"poll_secret"`
}

// JoinStatus is what the agent learns about its join request.
type JoinStatus struct {
	RequestID   string    `json:"request_id"`
	ClusterID   string    `json:"cluster_id"`
	Status      string    `json:"status"`
	ExpiresAt   time.Time `json:"expires_at"`
	NodeID      string    `json:"node_id,omitempty"`
	Certificate []byte    `json:"certificate,omitempty"`
	CACert      []byte    `json:"ca_certificate,omitempty"`
	Reason      string    `json:"reason,omitempty"`
}

// Heartbeat is the body of POST /v1/agent/heartbeat.
type Heartbeat struct {
	// Seq increases with every heartbeat of a membership; the newest wins.
	Seq int64 `json:"seq"`
	// SentAt is the agent's clock when it sent the heartbeat.
	SentAt time.Time `json:"sent_at"`
	// AgentVersion is the agent's build version.
	AgentVersion string `json:"agent_version"`
	// AppliedVersion is the snapshot version the agent has applied.
	AppliedVersion int64 `json:"applied_version"`
	// State is the agent's mode (normal, degraded, …).
	State string `json:"state"`
	// Health is the agent's local health report.
	Health json.RawMessage `json:"health,omitempty"`
	// Services is the reported state of service workloads.
	Services json.RawMessage `json:"services,omitempty"`
	// Capabilities are sent when they change or when the authority asks.
	Capabilities []domain.Capability `json:"capabilities,omitempty"`
	// Facts are sent when they change or when the authority asks.
	Facts json.RawMessage `json:"facts,omitempty"`
}

// HeartbeatAck is the answer to a heartbeat.
type HeartbeatAck struct {
	ClusterID   string    `json:"cluster_id"`
	NodeID      string    `json:"node_id"`
	Seq         int64     `json:"seq"`
	ReceivedAt  time.Time `json:"received_at"`
	AuthorityID string    `json:"authority_id"`
	// NeedFacts asks the agent to send facts and capabilities next time.
	NeedFacts bool `json:"need_facts"`
}

// RenewedCert is a freshly issued node certificate (POST /v1/agent/certificate).
type RenewedCert struct {
	Serial      string    `json:"serial"`
	NotAfter    time.Time `json:"not_after"`
	Certificate []byte    `json:"certificate"`
}
