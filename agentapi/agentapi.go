// Package agentapi is the whole wire contract of the agent routes of the
// authority API: every path, the JSON request and response types and the TLS
// server names an agent sends. The authority (httpapi, authority) and the
// node agent (agent/runtime) both use these types and no copies of them, so
// the two sides cannot drift apart. It imports only domain and
// the standard library: the agent binary must stay free of the authority side.
package agentapi

import (
	"encoding/json"
	"net/url"
	"strings"
	"time"

	"github.com/rap-fabric/core/domain"
)

// API paths of the agent routes. PathJoinPoll is a route template; agents
// use JoinPollPath.
const (
	PathJoin             = "/v1/agent/join"
	PathJoinPoll         = "/v1/agent/join/{id}/poll"
	PathWhoAmI           = "/v1/agent/whoami"
	PathHeartbeat        = "/v1/agent/heartbeat"
	PathHeartbeatStream  = "/v1/agent/heartbeat/stream"
	PathDesired          = "/v1/agent/desired"
	PathRenew            = "/v1/agent/certificate"
	PathCertStatus       = "/v1/agent/certificate/status"
	PathSnapshot         = "/v1/agent/snapshot"
	PathCA               = "/v1/agent/ca"
	PathStorageSnapshots = "/v1/agent/storage/snapshots"
	PathLinks            = "/v1/agent/links"
)

// JoinPollPath is the path an agent polls for the outcome of join request id.
func JoinPollPath(id string) string { return PathJoin + "/" + id + "/poll" }

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
	// Updates is the agent's update state per product (spec stage C19):
	// state, current/previous/target version and the last failure. Agents
	// send it with every heartbeat; the authority keeps the latest per node.
	Updates []UpdateReport `json:"updates,omitempty"`
	// Load is the node's load when it sent the heartbeat (spec C8 capacity
	// and load). Optional: agents that predate it omit it, and an authority
	// that predates it ignores it.
	Load *Load `json:"load,omitempty"`
	// LastPing is the result of the agent's last `mesh ping` in this
	// cluster, sent with every heartbeat after it; the authority keeps it
	// with the latest heartbeat only (not in the heartbeat history).
	LastPing *PingReport `json:"last_ping,omitempty"`
}

// Load is a node's load as its agent measures it at heartbeat time. A zero
// field is one the agent could not measure.
type Load struct {
	// Load1 is the one-minute load average (runnable tasks).
	Load1 float64 `json:"load1"`
	// MemUsedBytes is memory in use (total minus available).
	MemUsedBytes uint64 `json:"mem_used_bytes"`
	// MemTotalBytes is the memory the kernel reports.
	MemTotalBytes uint64 `json:"mem_total_bytes"`
	// Links is how many of the node's mesh links are up.
	Links int `json:"links"`
}

// PingReport is one `mesh ping` as an agent reports it (Heartbeat.LastPing):
// the destination, the path of node ids there (the sender first, relays in
// between, the destination last) and back, the round-trip time and when.
type PingReport struct {
	Destination string    `json:"destination"`
	Path        []string  `json:"path"`
	Reverse     []string  `json:"reverse,omitempty"`
	RTTMs       float64   `json:"rtt_ms"`
	At          time.Time `json:"at"`
}

// Bounds of a PingReport.
const (
	MaxPingPathLen = 16
	MaxPingIDLen   = 100
)

// MaxHeartbeatUpdates bounds Heartbeat.Updates (one entry per product).
const MaxHeartbeatUpdates = 16

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

// Heartbeat stream (POST PathHeartbeatStream): one long-lived request per
// agent connection. The request body (Content-Type ContentTypeNDJSON) carries
// Heartbeat values, one JSON object per line (at most the POST route's body
// limit per line; blank lines are skipped); the response body answers each
// heartbeat, in order, with one HeartbeatStreamReply line. A refused
// heartbeat is answered with its typed error; a line that cannot be read or
// decoded (too large, bad JSON) or a certificate no longer good ends the
// stream after its error. An authority without the route answers 404: the
// agent then sends POST PathHeartbeat instead.
const ContentTypeNDJSON = "application/x-ndjson"

// HeartbeatStreamReply answers one heartbeat of a stream: Ack, or Error.
type HeartbeatStreamReply struct {
	Ack   *HeartbeatAck `json:"ack,omitempty"`
	Error *StreamError  `json:"error,omitempty"`
}

// StreamError is a typed error on a stream: the HTTP status, machine-readable
// code and message the POST route would have answered.
type StreamError struct {
	Status  int            `json:"status"`
	Code    string         `json:"code"`
	Message string         `json:"message"`
	Details map[string]any `json:"details,omitempty"`
}

// RenewedCert is a freshly issued node certificate (POST /v1/agent/certificate).
type RenewedCert struct {
	Serial      string    `json:"serial"`
	NotAfter    time.Time `json:"not_after"`
	Certificate []byte    `json:"certificate"`
	// CACert is the root that issued Certificate (docs/ca-rotation.md).
	CACert []byte `json:"ca_certificate,omitempty"`
}

// JoinPoll is the body of POST /v1/agent/join/{id}/poll.
type JoinPoll struct {
	PollSecret []byte `json:"poll_secret"`
}

// WhoAmI is the body of GET /v1/agent/whoami.
type WhoAmI struct {
	ClusterID string `json:"cluster_id"`
	NodeID    string `json:"node_id"`
	Serial    string `json:"certificate_serial"`
}

// RenewRequest is the body of POST /v1/agent/certificate: new keys to
// certify, or none to renew the current ones.
type RenewRequest struct {
	PublicKey      []byte `json:"public_key,omitempty"`
	NoisePublicKey []byte `json:"noise_public_key,omitempty"`
	// TrustedRoots are the key ids of the cluster CA roots the node pins
	// (moved from its signed snapshots' ca_roots). During a CA rotation's
	// overlap the certificate is issued by the active (new) root only when
	// the node names it here; otherwise by the root every node trusts.
	TrustedRoots []string `json:"trusted_roots,omitempty"`
}

// RoleAssignment is one role assignment of a node as the agent routes show it.
type RoleAssignment struct {
	ID             string          `json:"id"`
	ClusterID      string          `json:"cluster_id"`
	NodeID         string          `json:"node_id"`
	Role           domain.Role     `json:"role"`
	OrganizationID *string         `json:"organization_id,omitempty"`
	Status         string          `json:"status"`
	Policy         json.RawMessage `json:"policy"`
	AssignedBy     string          `json:"assigned_by"`
	AssignedAt     time.Time       `json:"assigned_at"`
	UpdatedAt      time.Time       `json:"updated_at"`
}

// DesiredState is what a node should run in one cluster (GET
// /v1/agent/desired): its membership status and active role assignments.
type DesiredState struct {
	ClusterID        string           `json:"cluster_id"`
	NodeID           string           `json:"node_id"`
	MembershipStatus string           `json:"membership_status"`
	Roles            []RoleAssignment `json:"roles"`
}

// Certificate states of CertStatus.Status.
const (
	CertGood    = "good"
	CertRevoked = "revoked"
	CertExpired = "expired"
	CertUnknown = "unknown"
)

// CertStatusRequest is the body of POST /v1/agent/certificate/status.
type CertStatusRequest struct {
	Certificate []byte `json:"certificate"`
}

// CertStatus answers POST /v1/agent/certificate/status.
type CertStatus struct {
	Status    string `json:"status"`
	ClusterID string `json:"cluster_id,omitempty"`
	NodeID    string `json:"node_id,omitempty"`
	Serial    string `json:"serial,omitempty"`
}

// Snapshot is one signed snapshot as served to agents (GET
// /v1/agent/snapshot) and config-storage nodes. Snapshot is the signed wire
// envelope (for config-storage nodes: that envelope sealed to its target,
// snapshot.Seal); the other fields are a convenience copy of its header and
// carry no authority.
type Snapshot struct {
	ClusterID string    `json:"cluster_id"`
	NodeID    string    `json:"node_id"`
	Version   uint64    `json:"version"`
	Epoch     uint64    `json:"epoch"`
	KeyID     string    `json:"key_id"`
	IssuedAt  time.Time `json:"issued_at"`
	ExpiresAt time.Time `json:"expires_at"`
	Snapshot  []byte    `json:"snapshot"`
}

// SnapshotList is the body of GET /v1/agent/storage/snapshots: the newest
// signed snapshots of the nodes a config-storage node caches and serves.
type SnapshotList struct {
	Items      []Snapshot `json:"items"`
	NextOffset *int       `json:"next_offset"`
}

// CAKey is a cluster CA public key for snapshot verification.
type CAKey struct {
	KeyID     string    `json:"key_id"`
	PublicKey []byte    `json:"public_key"`
	Status    string    `json:"status"`
	CreatedAt time.Time `json:"created_at"`
}

// TrustedCA is the body of GET /v1/agent/ca: the keys an agent trusts for
// snapshots of its cluster (Keys: the current CA key) and the rotated-out
// ones it must no longer trust (Rotated), with the CA certificate.
type TrustedCA struct {
	ClusterID string  `json:"cluster_id"`
	Keys      []CAKey `json:"keys"`
	Rotated   []CAKey `json:"rotated,omitempty"`
	CACert    []byte  `json:"ca_certificate"`
}

// LinkReport is the body of POST /v1/agent/links: a node's mesh link and
// route health.
type LinkReport struct {
	Links  []LinkStatus  `json:"links"`
	Routes []RouteStatus `json:"routes"`
}

// LinkStatus is one mesh link of a LinkReport.
type LinkStatus struct {
	// ClusterID is ignored: the cluster is the certificate's.
	ClusterID       string     `json:"cluster_id,omitempty"`
	PeerNodeID      string     `json:"peer_node_id"`
	State           string     `json:"state"`
	RTTMs           float64    `json:"rtt_ms"`
	Loss            float64    `json:"loss"`
	LastHandshakeAt *time.Time `json:"last_handshake_at,omitempty"`
	Set             string     `json:"set"`
}

// RouteStatus is one mesh route of a LinkReport.
type RouteStatus struct {
	Destination string `json:"destination"`
	NextHop     string `json:"next_hop"`
	Cost        int    `json:"cost"`
	Hops        int    `json:"hops"`
}

// LinkReportAck answers a link report with the counts stored.
type LinkReportAck struct {
	Links  int `json:"links"`
	Routes int `json:"routes"`
}

// VPN agent routes (authority/vpn.go). The lease and status paths are route
// templates with the connection id as {vid}; agents fill it in with VPNPath.
const (
	PathVPNAssignments  = "/v1/agent/vpn/assignments"
	PathVPNLeaseAcquire = "/v1/agent/vpn/connections/{vid}/lease"
	PathVPNLeaseRenew   = "/v1/agent/vpn/connections/{vid}/lease/renew"
	PathVPNLeaseRelease = "/v1/agent/vpn/connections/{vid}/lease/release"
	PathVPNStatusReport = "/v1/agent/vpn/connections/{vid}/status"
)

// VPNPath is a VPN route template with the connection id filled in.
func VPNPath(template, connectionID string) string {
	return strings.Replace(template, "{vid}", connectionID, 1)
}

// PathVPNLease is the acquire route of a connection's lease.
func PathVPNLease(connectionID string) string { return VPNPath(PathVPNLeaseAcquire, connectionID) }

// PathVPNRenew is the renew route of a connection's lease.
func PathVPNRenew(connectionID string) string { return VPNPath(PathVPNLeaseRenew, connectionID) }

// PathVPNRelease is the release route of a connection's lease.
func PathVPNRelease(connectionID string) string { return VPNPath(PathVPNLeaseRelease, connectionID) }

// PathVPNStatus is the status report route of a connection.
func PathVPNStatus(connectionID string) string { return VPNPath(PathVPNStatusReport, connectionID) }

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
	// Role is the node's part in the connection's data path: "exit" (it has
	// the vpn-exit role: a lease candidate that runs the exit tunnel while
	// it holds the lease) or "connector" (only the vpn-connector role: it
	// runs the connector tunnel toward the current exit and never asks for
	// the lease).
	Role string `json:"role"`
	// ExitNodeID is the node holding the connection's active lease ("" when
	// none): connectors send their packets to it.
	ExitNodeID string `json:"exit_node_id,omitempty"`
	// ConnectorNodeIDs are the connection's connector nodes (allowed, active
	// member, vpn-connector role without vpn-exit): the only peers an exit
	// accepts tunnel flows from. Sent to exit candidates only.
	ConnectorNodeIDs []string `json:"connector_node_ids,omitempty"`
}

// VPN data-path roles of VPNAssignment.Role.
const (
	VPNRoleExit      = "exit"
	VPNRoleConnector = "connector"
)

// VPNAssignedPath is a route policy as an agent sees it.
type VPNAssignedPath struct {
	Name     string   `json:"name"`
	Prefixes []string `json:"prefixes"`
	Priority int      `json:"priority"`
	// Masquerade: the exit source-NATs this policy's traffic.
	Masquerade bool `json:"masquerade,omitempty"`
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
	// Tunnel is the assignment's data path on the node, when one runs or
	// ran (agent/tunnel).
	Tunnel *VPNTunnelStatus `json:"tunnel,omitempty"`
}

// VPNTunnelStatus is a node's data path of one VPN connection: the
// interface, packets and bytes each way (tx: from the TUN to the peer, rx:
// from the peer into the TUN), drops by reason and the current exit.
type VPNTunnelStatus struct {
	// Role is exit or connector.
	Role string `json:"role"`
	// Running: the interface is up and packets are carried.
	Running   bool   `json:"running"`
	Interface string `json:"interface,omitempty"`
	// ExitNodeID is the exit the connector sends to (the node itself on an
	// exit).
	ExitNodeID string `json:"exit_node_id,omitempty"`
	TxPackets  uint64 `json:"tx_packets"`
	TxBytes    uint64 `json:"tx_bytes"`
	RxPackets  uint64 `json:"rx_packets"`
	RxBytes    uint64 `json:"rx_bytes"`
	// Drops by reason (the tunnel's and the transport's: queue, too_large,
	// unauthorized).
	Drops map[string]uint64 `json:"drops,omitempty"`
	// Error is why the tunnel does not run (bad settings, no privilege).
	Error string `json:"error,omitempty"`
	// ExitChanges counts connector exit changes; LastExitChange is the last.
	ExitChanges    int       `json:"exit_changes,omitempty"`
	LastExitChange time.Time `json:"last_exit_change,omitzero"`
}

// Self-update routes (authority/releases.go, rollouts.go). The release and
// artifact paths are route templates; agents fill them in with ReleasePath
// and ArtifactPath.
const (
	PathReleaseManifest = "/v1/agent/releases/{product}/{version}"
	PathReleaseArtifact = "/v1/agent/releases/artifacts/{sha256}"
	PathUpdates         = "/v1/agent/updates"
)

// ReleasePath is the manifest route of product at version (both path-escaped).
func ReleasePath(product, version string) string {
	return strings.NewReplacer("{product}", url.PathEscape(product), "{version}", url.PathEscape(version)).Replace(PathReleaseManifest)
}

// ArtifactPath is the download route of the artifact with this sha256 (hex).
func ArtifactPath(sha256 string) string {
	return strings.Replace(PathReleaseArtifact, "{sha256}", url.PathEscape(sha256), 1)
}

// AgentRelease is the body of GET PathReleaseManifest: the signed manifest
// and the signed key set that vouches for its signing key (the agent
// verifies them against the root keys pinned in its snapshot).
type AgentRelease struct {
	Manifest []byte `json:"manifest"`
	KeySet   []byte `json:"key_set"`
}

// UpdateReport is the body of POST PathUpdates: an agent's update state for
// one product.
type UpdateReport struct {
	Product        string `json:"product"`
	CurrentVersion string `json:"current_version"`
	FromVersion    string `json:"from_version,omitempty"`
	TargetVersion  string `json:"target_version"`
	State          string `json:"state"`
	LastFailure    string `json:"last_failure,omitempty"`
	// PreviousVersion is the version kept to roll back to (the launcher's
	// previous slot), when there is one. Optional.
	PreviousVersion string `json:"previous_version,omitempty"`
}
