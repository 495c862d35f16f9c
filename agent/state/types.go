package state

import (
	"encoding/json"
	"time"

	"github.com/rap-fabric/core/domain"
)

// Identity is the node's identity material in one cluster. Private keys never
// leave the host; they are stored only here, in a 0600 file.
type Identity struct {
	// NodeID is the node id the authority assigned in this cluster.
	NodeID string `json:"node_id"`
	// ClusterID must equal the cluster namespace it is stored under.
	ClusterID string `json:"cluster_id"`
	// SigningKey is the Ed25519 identity private key (64 bytes, seed||public).
	SigningKey []byte `json:"signing_key"`
	// NoiseKey is the X25519 Noise static private key (32 bytes).
	NoiseKey []byte `json:"noise_key"`
	// CertificatePEM is the node certificate issued by the cluster CA; empty
	// before approval.
	CertificatePEM string `json:"certificate_pem,omitempty"`
	// CAPEM is the cluster CA certificate; empty before approval.
	CAPEM string `json:"ca_pem,omitempty"`
	// CAPin is "sha256:<hex>" of the CA's SubjectPublicKeyInfo, from the join
	// token.
	CAPin string `json:"ca_pin"`
	// AuthorityURLs are the base URLs of the cluster's authorities.
	AuthorityURLs []string `json:"authority_urls"`
	// CARoots are the cluster CA roots the node pins, moved from the
	// ca_roots of signed snapshots it verified (two during a CA rotation's
	// overlap, the new one alone after retirement; docs/ca-rotation.md).
	// Empty until the first such snapshot: then CAPEM, the root the join
	// pin names, is the only one.
	CARoots []CARoot `json:"ca_roots,omitempty"`
	// UpdatedAt is set by the store from its clock on every PutIdentity.
	UpdatedAt time.Time `json:"updated_at"`
}

// CARoot is one pinned cluster CA root.
type CARoot struct {
	// KeyID is the root's key id (snapshot.KeyID of its public key).
	KeyID string `json:"key_id"`
	// Active: the root that issues node certificates now.
	Active bool `json:"active,omitempty"`
	// CertificatePEM is the root's self-signed certificate.
	CertificatePEM string `json:"certificate_pem"`
}

// Membership is the node's view of its membership in one cluster.
type Membership struct {
	ClusterID string                  `json:"cluster_id"`
	NodeID    string                  `json:"node_id"`
	Status    domain.MembershipStatus `json:"status"`
	// Roles are the roles granted by the last applied snapshot.
	Roles []domain.Role `json:"roles,omitempty"`
	// JoinRequestID is the pending or approved join request, if any.
	JoinRequestID string    `json:"join_request_id,omitempty"`
	JoinedAt      time.Time `json:"joined_at,omitempty"`
	UpdatedAt     time.Time `json:"updated_at"`
}

// AppliedSnapshot is the last signed snapshot the agent accepted and applied.
// Its Version is the node's "last applied config version".
type AppliedSnapshot struct {
	Version   uint64
	Raw       []byte
	AppliedAt time.Time
	// SHA256 is the hex sha256 of Raw (stored beside it from schema 2 on,
	// computed for older files).
	SHA256 string
}

// Peer is one entry of the peer cache, copied from the signed peer directory.
type Peer struct {
	NodeID string `json:"node_id"`
	// NoisePublicKey is the peer's X25519 static public key (32 bytes).
	NoisePublicKey []byte        `json:"noise_public_key"`
	Endpoints      []string      `json:"endpoints,omitempty"`
	Roles          []domain.Role `json:"roles,omitempty"`
	Revoked        bool          `json:"revoked,omitempty"`
}

// PeerCache is the cached peer directory of one cluster.
type PeerCache struct {
	// SnapshotVersion is the snapshot the entries came from.
	SnapshotVersion uint64    `json:"snapshot_version"`
	Peers           []Peer    `json:"peers"`
	UpdatedAt       time.Time `json:"updated_at"`
}

// Route is one cached route decision.
type Route struct {
	Destination string   `json:"destination"`
	NextHop     string   `json:"next_hop"`
	Path        []string `json:"path,omitempty"`
	Metric      uint32   `json:"metric"`
}

// RouteCache is the cached routing table of one cluster.
type RouteCache struct {
	SnapshotVersion uint64    `json:"snapshot_version"`
	Routes          []Route   `json:"routes"`
	UpdatedAt       time.Time `json:"updated_at"`
}

// ServiceAssignment is one workload the snapshot authorizes on this node.
type ServiceAssignment struct {
	ServiceID string      `json:"service_id"`
	Role      domain.Role `json:"role"`
	// Desired is "running" or "stopped" as the authority wants it.
	Desired string `json:"desired"`
	// Config is the service's scoped config (references only, no secrets).
	Config json.RawMessage `json:"config,omitempty"`
}

// ServiceAssignments is the cached service assignment list of one cluster.
type ServiceAssignments struct {
	SnapshotVersion uint64              `json:"snapshot_version"`
	Assignments     []ServiceAssignment `json:"assignments"`
	UpdatedAt       time.Time           `json:"updated_at"`
}

// ServiceHealth is the local health of one supervised service.
type ServiceHealth struct {
	ServiceID string `json:"service_id"`
	Status    string `json:"status"`
	Detail    string `json:"detail,omitempty"`
}

// LocalHealth is what the agent last observed about itself in one cluster.
type LocalHealth struct {
	LastHeartbeatOK   time.Time       `json:"last_heartbeat_ok,omitempty"`
	ConsecutiveErrors int             `json:"consecutive_errors"`
	LastError         string          `json:"last_error,omitempty"`
	Services          []ServiceHealth `json:"services,omitempty"`
	UpdatedAt         time.Time       `json:"updated_at"`
}

// Mode is the agent's local operating mode in one cluster.
type Mode string

// Agent modes.
const (
	// ModeNormal: an authority answers; snapshots are current.
	ModeNormal Mode = "normal"
	// ModeDegraded: no authority answers; run authorized workloads from the
	// last good snapshot, accept no new peers outside it, recover by itself.
	ModeDegraded Mode = "degraded"
	// ModeRevoked: the membership or identity was revoked; stop workloads.
	ModeRevoked Mode = "revoked"
)

// Valid reports whether m is a known mode.
func (m Mode) Valid() bool {
	return m == ModeNormal || m == ModeDegraded || m == ModeRevoked
}

// PartitionInfo is the partition/degraded state of the agent in one cluster.
type PartitionInfo struct {
	Mode   Mode      `json:"mode"`
	Since  time.Time `json:"since"`
	Reason string    `json:"reason,omitempty"`
	// AuthorityState is the cluster's authority state from the last snapshot.
	AuthorityState domain.PartitionState `json:"authority_state,omitempty"`
}

// PendingUpdate is the metadata of an update being staged or applied, kept so
// the agent can finish or roll back after a restart.
type PendingUpdate struct {
	ReleaseID       string    `json:"release_id"`
	Version         string    `json:"version"`
	PreviousVersion string    `json:"previous_version,omitempty"`
	ArtifactSHA256  string    `json:"artifact_sha256"`
	StagedPath      string    `json:"staged_path,omitempty"`
	State           string    `json:"state"`
	StartedAt       time.Time `json:"started_at"`
	Attempts        int       `json:"attempts"`
	// LastFailure says why the last attempt failed (rolled back), if it did.
	LastFailure string `json:"last_failure,omitempty"`
	// AllowDowngrade records that a signed rollback or pin allowed a
	// version below the previous one.
	AllowDowngrade bool `json:"allow_downgrade,omitempty"`
	// NodeState is the node-local state schema change the signed manifest
	// of Version declares (nil: none; the new version then runs on the
	// file's schema as it is).
	NodeState *StateChange `json:"node_state,omitempty"`
	// StateBackup is the copy of the state file taken before NodeState was
	// applied; the launcher restores it when the new version is rolled back.
	StateBackup string `json:"state_backup,omitempty"`
}

// StateChange is a declared node-local state schema change (the manifest's
// migration.node_state).
type StateChange struct {
	From      uint64   `json:"from"`
	To        uint64   `json:"to"`
	Preflight []string `json:"preflight,omitempty"`
	// Rollback is the manifest's rollback behaviour (reverse,
	// restore_backup or none).
	Rollback string `json:"rollback,omitempty"`
}
