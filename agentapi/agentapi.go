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

// VPN agent routes (authority/vpn.go). Lease paths take the connection id.
const (
	PathVPNAssignments = "/v1/agent/vpn/assignments"
	pathVPNConnections = "/v1/agent/vpn/connections/"
)

// PathVPNLease is the acquire route of a connection's lease.
func PathVPNLease(connectionID string) string { return pathVPNConnections + connectionID + "/lease" }

// PathVPNRenew is the renew route of a connection's lease.
func PathVPNRenew(connectionID string) string { return PathVPNLease(connectionID) + "/renew" }

// PathVPNRelease is the release route of a connection's lease.
func PathVPNRelease(connectionID string) string { return PathVPNLease(connectionID) + "/release" }

// PathVPNStatus is the status report route of a connection.
func PathVPNStatus(connectionID string) string { return pathVPNConnections + connectionID + "/status" }

// VPNAssignments is the body of GET PathVPNAssignments.
type VPNAssignments struct {
	Items []VPNAssignment `json:"items"`
}

// VPNAssignment is what a node agent learns of a connection it may run:
// everything but the credential (only whether a reference exists).
type VPNAssignment struct {
	ConnectionID     string            `json:"connection_id"`
	Name             string            `json:"name"`
	DesiredState     string            `json:"desired_state"`
	AddressFamily    string            `json:"address_family"`
	ClientPrefixes   []string          `json:"client_prefixes"`
	RemotePrefixes   []string          `json:"remote_prefixes"`
	DNSServers       []string          `json:"dns_servers"`
	MTU              int               `json:"mtu"`
	HasCredentialRef bool              `json:"has_credential_ref"`
	LeaseTTLSeconds  int               `json:"lease_ttl_seconds"`
	RoutePolicies    []VPNAssignedPath `json:"route_policies"`
	// Eligible: the node may acquire the lease now (it may also be the
	// holder of a lease it is no longer eligible for: it must stop).
	Eligible bool `json:"eligible"`
	// Lease is the node's own active lease, nil when it holds none.
	Lease *VPNLeaseGrant `json:"lease"`
	// LeaseHeldByOther: another node holds the connection.
	LeaseHeldByOther bool `json:"lease_held_by_other"`
}

// VPNAssignedPath is a route policy as an agent sees it.
type VPNAssignedPath struct {
	Name     string   `json:"name"`
	Prefixes []string `json:"prefixes"`
	Priority int      `json:"priority"`
}

// VPNLeaseGrant is a lease as its holder sees it. The holder must stop using
// it at ExpiresAt unless a renewal succeeded; TTLSeconds lets an agent count
// the term from when it sent the request, on its own clock.
type VPNLeaseGrant struct {
	ConnectionID string    `json:"connection_id"`
	Generation   int64     `json:"generation"`
	Epoch        int64     `json:"epoch"`
	AcquiredAt   time.Time `json:"acquired_at"`
	RenewedAt    time.Time `json:"renewed_at"`
	ExpiresAt    time.Time `json:"expires_at"`
	TTLSeconds   int       `json:"ttl_seconds"`
	// AlreadyHeld: an acquire found this node's lease active and returned it.
	AlreadyHeld bool `json:"already_held,omitempty"`
}

// VPNLeaseRequest names the lease generation an agent holds (renew, release).
type VPNLeaseRequest struct {
	Generation int64 `json:"generation"`
}

// VPNStatusRequest is an agent's status report about one assignment: status
// is not_started, assigned, lease_required, blocked or unknown.
type VPNStatusRequest struct {
	Status          string `json:"status"`
	Detail          string `json:"detail,omitempty"`
	LeaseGeneration int64  `json:"lease_generation,omitempty"`
}
