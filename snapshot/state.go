package snapshot

import (
	"encoding/json"

	"github.com/rap-fabric/core/domain"
)

// State is the authority's view of one cluster, filled from PostgreSQL. It is
// pure data; Build never mutates it. It deliberately contains more than any
// node may learn (other clusters' memberships, organization users, secret
// values): the builder's job is to leave that out.
type State struct {
	Cluster       Cluster
	Nodes         []Node
	Groups        []Group
	Assignments   []RoleAssignment
	Services      []ServiceState
	Organizations []Organization
	Resources     []Resource
	Connectors    []Connector
	EgressPools   []EgressPool
	// RoutePolicy and QoSPolicy are JSON documents (e.g. jsonb columns).
	RoutePolicy json.RawMessage
	QoSPolicy   json.RawMessage
	// EntryPolicies are the client entry policies.
	EntryPolicies   []EntryPolicy
	TokenValidation *TokenValidation
	// StorageAssignments say which nodes' snapshots each config-storage node
	// serves.
	StorageAssignments []StorageAssignment
	Revocations        Revocations
	Telemetry          []TelemetryFlag
	// Secrets maps a credential reference to its value. Present so the
	// authority can hand State around whole; never copied into any Body.
	Secrets map[string][]byte

	// Updates is the input of each node's updates section (nil: none).
	Updates *UpdateState

	// OrgEndpoints (with their backing nodes in this cluster), OrgResources
	// and OrgPolicies are the organizations' access configuration; each node
	// gets only what the endpoints it backs need (OrgAccess).
	OrgEndpoints []OrgEndpoint
	OrgResources []OrgResource
	OrgPolicies  []OrgPolicy
}

// Cluster is the cluster the State describes.
type Cluster struct {
	ID   string
	Name string
	// GossipKeys holds one memberlist key per gossip pool ("" is the
	// default pool).
	GossipKeys []GossipKey
	// CARoots are the cluster CA roots nodes must trust now (two during a
	// rotation's overlap); every node's snapshot carries them.
	CARoots []CARoot
	// AuthorityState is the cluster's partition/authority state as the owner
	// set it ("" or normal: nothing to tell the nodes).
	AuthorityState domain.PartitionState
}

// Node is a physical node with its memberships (possibly in several
// clusters).
type Node struct {
	ID             string
	Name           string
	Region         string
	Endpoints      []string
	NoisePublicKey []byte
	// IdentityPublicKey is the Ed25519 identity key (32 bytes) or empty.
	IdentityPublicKey []byte
	IdentityStatus    domain.IdentityStatus
	// GossipPool selects the gossip key (mesh roles); "" is the default.
	GossipPool  string
	Memberships []NodeMembership
}

// NodeMembership connects a node to one cluster.
type NodeMembership struct {
	ClusterID string
	Status    domain.MembershipStatus
	// GroupID is the node's inventory group in that cluster ("" for none).
	GroupID string
}

// Group is a cluster-scoped inventory folder.
type Group struct {
	ID       string
	ParentID string
	Name     string
}

// RoleAssignment grants a role to a node in this cluster, optionally
// restricted to one organization.
type RoleAssignment struct {
	NodeID         string
	Role           domain.Role
	OrganizationID string
	Policy         json.RawMessage
	// Disabled assignments are kept for audit but grant nothing.
	Disabled bool
}

// ServiceState is the desired state of one service workload.
type ServiceState struct {
	ID     string
	NodeID string
	Type   string
	// Instance is the instance name of the type on the node ("default").
	Instance string
	// Role is the role that authorizes the workload; empty means
	// domain.Role(Type).
	Role           domain.Role
	OrganizationID string
	Enabled        bool
	Config         json.RawMessage
	ResourceRefs   []string
	ConnectorRefs  []string
}

// Organization is a tenant. Users are never distributed to nodes.
type Organization struct {
	ID    string
	Name  string
	Users []string
}

// Resource is an organization resource (a target host).
type Resource struct {
	ID             string
	OrganizationID string
	Name           string
	Protocol       string
	Address        string
	Port           int
	EgressPoolID   string
	CredentialRef  string
}

// Connector is an organization connector (e.g. a directory or VPN peer).
type Connector struct {
	ID             string
	OrganizationID string
	Type           string
	Endpoint       string
	CredentialRef  string
}

// EgressPool is an organization-visible logical exit backed by nodes.
type EgressPool struct {
	ID             string
	OrganizationID string
	Name           string
	NodeIDs        []string
}

// StorageAssignment lists the nodes whose snapshots StorageNodeID serves.
type StorageAssignment struct {
	StorageNodeID string
	NodeIDs       []string
}
