package snapshot

import (
	"encoding/json"
	"time"

	"github.com/rap-fabric/core/domain"
)

// Snapshot is the scoped configuration of one node in one cluster. Version is
// strictly increasing per node; Epoch is the authority epoch of the leader
// that built it (informational for agents, audited by the authority).
type Snapshot struct {
	ClusterID string    `json:"cluster_id"`
	NodeID    string    `json:"node_id"`
	Version   uint64    `json:"version"`
	Epoch     uint64    `json:"epoch"`
	IssuedAt  time.Time `json:"issued_at"`
	ExpiresAt time.Time `json:"expires_at"`
	// Scope names the sections present in Body, sorted (see the Scope*
	// constants).
	Scope []string `json:"scope"`
	Body  Body     `json:"body"`
}

// Signed is a snapshot as it travels: the canonical encoding of a Snapshot,
// the id of the cluster CA key that signed it and the Ed25519ctx signature
// over Payload. Its wire form is MarshalBinary / Decode.
type Signed struct {
	// Payload is the canonical encoding (Encode) of the Snapshot.
	Payload []byte
	// KeyID names the signing key: hex of the first 8 bytes of
	// sha256(public key). See KeyID.
	KeyID string
	// Signature is the 64-byte Ed25519ctx signature over Payload with
	// context SignatureContext.
	Signature []byte
}

// Scope names that may appear in Snapshot.Scope.
const (
	ScopeBase          = "base"           // identity, membership, own roles, revocations, config-storage endpoints
	ScopeMesh          = "mesh"           // gossip key, peer directory, route and QoS policy
	ScopeUplinks       = "uplinks"        // the few mesh nodes a non-mesh node attaches to
	ScopeEntry         = "entry"          // client entry policies, token validation config
	ScopeServices      = "services"       // assigned service configs, resource and connector refs
	ScopeConfigStorage = "config-storage" // node ids whose snapshots this node caches
)

// Body is the need-to-know content of a snapshot. Every slice is sorted by
// Build so that the encoding is canonical. Optional sections are omitted from
// the encoding when empty.
type Body struct {
	// Self is the node's own identity.
	Self Identity `json:"self"`
	// Membership is the node's membership in this cluster only (memberships
	// in other clusters are other clusters' data).
	Membership Membership `json:"membership"`
	// Roles are the node's active role assignments in this cluster.
	Roles []RoleGrant `json:"roles,omitempty"`
	// Revocations is the cluster's revocation list.
	Revocations Revocations `json:"revocations"`
	// ConfigStorage lists the config-storage nodes that serve this node's
	// snapshots (besides the authority).
	ConfigStorage []StorageEndpoint `json:"config_storage,omitempty"`
	// CARoots are the cluster CA roots the node must trust (base scope):
	// one, or two while a CA rotation overlaps. The node moves its CA pins
	// to them and renews its certificate when its issuer is not the active
	// root.
	CARoots []CARoot `json:"ca_roots,omitempty"`
	// Telemetry are the flags that apply to this node (cluster-wide, this
	// node, organizations it serves).
	Telemetry []TelemetryFlag `json:"telemetry,omitempty"`

	// GossipKey is the memberlist key of the node's gossip pool (mesh roles
	// only).
	GossipKey *GossipKey `json:"gossip_key,omitempty"`
	// Peers is the bounded peer directory (mesh roles only): other mesh
	// nodes and this node's direct consumers.
	Peers []Peer `json:"peers,omitempty"`
	// RoutePolicy and QoSPolicy are canonical JSON (mesh roles only).
	RoutePolicy json.RawMessage `json:"route_policy,omitempty"`
	QoSPolicy   json.RawMessage `json:"qos_policy,omitempty"`

	// Uplinks are the mesh nodes a non-mesh node attaches to (at most
	// Config.UplinkFanout); the same nodes list it among their Peers.
	Uplinks []Peer `json:"uplinks,omitempty"`

	// EntryPolicies and TokenValidation are for entry-node only.
	EntryPolicies   []EntryPolicy    `json:"entry_policies,omitempty"`
	TokenValidation *TokenValidation `json:"token_validation,omitempty"`

	// Services are the desired service workloads assigned to this node and
	// authorized by an active role whose organization scope allows them.
	Services []ServiceConfig `json:"services,omitempty"`
	// Resources, Connectors, Organizations and EgressPools are only those
	// the delivered services (or egress roles) reference, of the same
	// organization. Credentials appear only as references.
	Resources     []ResourceRef   `json:"resources,omitempty"`
	Connectors    []ConnectorRef  `json:"connectors,omitempty"`
	Organizations []OrgRef        `json:"organizations,omitempty"`
	EgressPools   []EgressPoolRef `json:"egress_pools,omitempty"`

	// CacheNodes are the node ids whose signed snapshots this config-storage
	// node caches and serves. Never their bodies.
	CacheNodes []string `json:"cache_nodes,omitempty"`

	// Updates: release roots, this node's desired versions and the
	// blocklist (base scope; absent until release roots are registered).
	Updates *Updates `json:"updates,omitempty"`

	// OrgAccess: per organization whose endpoints this node backs, those
	// endpoints and the organization's resources and policies that use them
	// (services scope; see OrgAccess).
	OrgAccess []OrgAccess `json:"org_access,omitempty"`
}

// CA root statuses in a snapshot.
const (
	// CARootActive issues node certificates.
	CARootActive = "active"
	// CARootPrevious is the root being rotated out: still trusted during
	// the overlap, retired afterwards.
	CARootPrevious = "previous"
)

// CARoot is one trusted cluster CA root: its certificate (DER, self-signed,
// Ed25519) and whether it is the active (issuing) root.
type CARoot struct {
	KeyID       string `json:"key_id"`
	Status      string `json:"status"`
	Certificate []byte `json:"certificate"`
}

// Identity is a node's own identity as the authority knows it.
type Identity struct {
	NodeID         string   `json:"node_id"`
	Name           string   `json:"name,omitempty"`
	Region         string   `json:"region,omitempty"`
	Endpoints      []string `json:"endpoints,omitempty"`
	NoisePublicKey []byte   `json:"noise_public_key,omitempty"`
	// IdentityPublicKey is the node's Ed25519 identity key (the one bound
	// into its certificate); it signs the node's gossip record.
	IdentityPublicKey []byte                `json:"identity_public_key,omitempty"`
	IdentityStatus    domain.IdentityStatus `json:"identity_status"`
	// Organizations are the ids of the organizations the node serves (an
	// active role assignment restricted to it, or an enabled service of it
	// on the node), sorted; none for shared infrastructure. The mesh keeps
	// traffic between nodes of different organizations apart with them.
	Organizations []string `json:"organizations,omitempty"`
}

// Membership is the node's membership in the snapshot's cluster.
type Membership struct {
	ClusterID string                  `json:"cluster_id"`
	Status    domain.MembershipStatus `json:"status"`
	// GroupPath is the node's inventory group and its ancestors, root first
	// (ids only).
	GroupPath []string `json:"group_path,omitempty"`
	// AuthorityState is the cluster's partition state when the platform
	// owner moved it away from normal (degraded after a split, promoted,
	// fenced); absent when normal.
	AuthorityState domain.PartitionState `json:"authority_state,omitempty"`
}

// RoleGrant is one active role assignment of the node.
type RoleGrant struct {
	Role           domain.Role     `json:"role"`
	OrganizationID string          `json:"organization_id,omitempty"`
	Policy         json.RawMessage `json:"policy,omitempty"`
}

// Revocations is the cluster revocation list.
type Revocations struct {
	NodeIDs         []string `json:"node_ids,omitempty"`
	KeyFingerprints []string `json:"key_fingerprints,omitempty"`
}

// StorageEndpoint is a config-storage node that serves a node's snapshots.
type StorageEndpoint struct {
	NodeID    string   `json:"node_id"`
	Endpoints []string `json:"endpoints,omitempty"`
}

// TelemetryFlag is a test-telemetry switch. Scope is "cluster", "node" or
// "organization"; TargetID names the node or organization.
type TelemetryFlag struct {
	Scope    string `json:"scope"`
	TargetID string `json:"target_id,omitempty"`
	Name     string `json:"name"`
	Enabled  bool   `json:"enabled"`
}

// GossipKey is a memberlist encryption key of one gossip pool. KeyID names
// the key generation (it changes when the authority rotates the key, so an
// agent can tell a rotation from a re-sent key without comparing secrets).
type GossipKey struct {
	Pool  string `json:"pool,omitempty"`
	KeyID string `json:"key_id,omitempty"`
	Key   []byte `json:"key"`
}

// Peer relations.
const (
	RelationMesh     = "mesh"     // another mesh node
	RelationConsumer = "consumer" // a non-mesh node attached to this mesh node
	RelationUplink   = "uplink"   // a mesh node this non-mesh node attaches to
)

// Peer is one peer directory entry.
type Peer struct {
	NodeID         string `json:"node_id"`
	NoisePublicKey []byte `json:"noise_public_key"`
	// IdentityPublicKey is the peer's Ed25519 identity key; gossip records
	// are verified against it. Empty when the authority knows none.
	IdentityPublicKey []byte        `json:"identity_public_key,omitempty"`
	Endpoints         []string      `json:"endpoints,omitempty"`
	Region            string        `json:"region,omitempty"`
	Relation          string        `json:"relation"`
	RoleHints         []domain.Role `json:"role_hints,omitempty"`
	// Organizations are the ids of the organizations the peer serves
	// (ids only: no names or other organization data), as in
	// Identity.Organizations.
	Organizations []string `json:"organizations,omitempty"`
}

// EntryPolicy is a client entry policy, cluster-wide (OrganizationID empty)
// or for one organization.
type EntryPolicy struct {
	OrganizationID string          `json:"organization_id,omitempty"`
	Policy         json.RawMessage `json:"policy"`
}

// TokenValidation is what an entry node needs to validate client tokens:
// issuers, audiences and public verification keys only.
type TokenValidation struct {
	Issuer           string     `json:"issuer"`
	Audiences        []string   `json:"audiences,omitempty"`
	Keys             []TokenKey `json:"keys,omitempty"`
	MaxClockSkewSecs int        `json:"max_clock_skew_secs,omitempty"`
}

// TokenKey is a public token verification key.
type TokenKey struct {
	KeyID     string `json:"key_id"`
	Algorithm string `json:"algorithm"`
	PublicKey []byte `json:"public_key"`
}

// ServiceConfig is one desired service workload of the node.
type ServiceConfig struct {
	ID   string `json:"id"`
	Type string `json:"type"`
	// Instance names the instance of Type on this node (for the node's own
	// logs and status; absent in snapshots built before it existed).
	Instance       string          `json:"instance,omitempty"`
	Role           domain.Role     `json:"role"`
	OrganizationID string          `json:"organization_id,omitempty"`
	Config         json.RawMessage `json:"config,omitempty"`
	ResourceRefs   []string        `json:"resource_refs,omitempty"`
	ConnectorRefs  []string        `json:"connector_refs,omitempty"`
}

// ResourceRef is an organization resource a delivered service may reach.
// CredentialRef names a secret for an approved resolver; the secret itself
// is never in a snapshot.
type ResourceRef struct {
	ID             string `json:"id"`
	OrganizationID string `json:"organization_id"`
	Protocol       string `json:"protocol,omitempty"`
	Address        string `json:"address,omitempty"`
	Port           int    `json:"port,omitempty"`
	EgressPoolID   string `json:"egress_pool_id,omitempty"`
	CredentialRef  string `json:"credential_ref,omitempty"`
}

// ConnectorRef is a connector a delivered service uses (credential by
// reference only).
type ConnectorRef struct {
	ID             string `json:"id"`
	OrganizationID string `json:"organization_id"`
	Type           string `json:"type,omitempty"`
	Endpoint       string `json:"endpoint,omitempty"`
	CredentialRef  string `json:"credential_ref,omitempty"`
}

// OrgRef names an organization the node serves (never its users or
// policies).
type OrgRef struct {
	ID   string `json:"id"`
	Name string `json:"name,omitempty"`
}

// EgressPoolRef is an egress pool this node backs (never the other member
// nodes).
type EgressPoolRef struct {
	ID             string `json:"id"`
	OrganizationID string `json:"organization_id,omitempty"`
	Name           string `json:"name,omitempty"`
}
