// Package domain holds the shared vocabulary of the RAP Fabric Core: identifiers,
// roles, capabilities and the status enums that several packages agree on.
//
// It imports nothing of ours and performs no I/O. The string values are the wire
// and database spellings; PostgreSQL CHECK constraints list the same values.
package domain

import "fmt"

// Role is a cluster-scoped authorization for a node to run a workload
// (spec: Node Role Assignment). Roles are granted explicitly; a capability never
// implies a role.
type Role string

// The roles a node may be assigned.
const (
	RoleEntryNode        Role = "entry-node"
	RoleRelayNode        Role = "relay-node"
	RoleCoreMesh         Role = "core-mesh"
	RoleRDPWorker        Role = "rdp-worker"
	RoleVNCWorker        Role = "vnc-worker"
	RoleSSHWorker        Role = "ssh-worker"
	RoleRemoteAccess     Role = "remote-access"
	RoleVPNExit          Role = "vpn-exit"
	RoleVPNConnector     Role = "vpn-connector"
	RoleFileStorageCache Role = "file-storage-cache"
	RoleUpdateCache      Role = "update-cache"
	RoleVideoRelay       Role = "video-relay"
	RoleConfigStorage    Role = "config-storage"
	RoleAdminIngress     Role = "admin-ingress"
	RoleEgressNode       Role = "egress-node"
)

// Capability is what a node can technically do, as reported by its agent. It is
// an upper bound, not a permission.
type Capability string

// The capabilities of the specification.
const (
	CapAcceptClientIngress  Capability = "can_accept_client_ingress"
	CapAcceptNodeIngress    Capability = "can_accept_node_ingress"
	CapRouteMesh            Capability = "can_route_mesh"
	CapEgressInternet       Capability = "can_egress_internet"
	CapEgressPrivateNetwork Capability = "can_egress_private_network"
	CapRunRDPWorker         Capability = "can_run_rdp_worker"
	CapRunVNCWorker         Capability = "can_run_vnc_worker"
	CapRunSSHWorker         Capability = "can_run_ssh_worker"
	CapRunVPNExit           Capability = "can_run_vpn_exit"
	CapRunVPNConnector      Capability = "can_run_vpn_connector"
	CapRunFileCache         Capability = "can_run_file_cache"
	CapRunUpdateCache       Capability = "can_run_update_cache"
	CapRunVideoRelay        Capability = "can_run_video_relay"
	CapRunConfigStorage     Capability = "can_run_config_storage"
)

// AllCapabilities lists every known capability in a stable order.
var AllCapabilities = []Capability{
	CapAcceptClientIngress, CapAcceptNodeIngress, CapRouteMesh, CapEgressInternet,
	CapEgressPrivateNetwork, CapRunRDPWorker, CapRunVNCWorker, CapRunSSHWorker,
	CapRunVPNExit, CapRunVPNConnector, CapRunFileCache, CapRunUpdateCache,
	CapRunVideoRelay, CapRunConfigStorage,
}

// roleNeeds maps each role to the capabilities a node must report before the role
// may be assigned to it. Any one of a role's listed capability sets suffices.
var roleNeeds = map[Role][]Capability{
	RoleEntryNode:        {CapAcceptClientIngress},
	RoleRelayNode:        {CapRouteMesh, CapAcceptNodeIngress},
	RoleCoreMesh:         {CapRouteMesh},
	RoleRDPWorker:        {CapRunRDPWorker},
	RoleVNCWorker:        {CapRunVNCWorker},
	RoleSSHWorker:        {CapRunSSHWorker},
	RoleRemoteAccess:     {CapEgressPrivateNetwork},
	RoleVPNExit:          {CapRunVPNExit},
	RoleVPNConnector:     {CapRunVPNConnector},
	RoleFileStorageCache: {CapRunFileCache},
	RoleUpdateCache:      {CapRunUpdateCache},
	RoleVideoRelay:       {CapRunVideoRelay},
	RoleConfigStorage:    {CapRunConfigStorage},
	RoleAdminIngress:     {CapAcceptClientIngress},
	RoleEgressNode:       {CapEgressPrivateNetwork},
}

// AllRoles lists every known role in a stable order.
var AllRoles = []Role{
	RoleEntryNode, RoleRelayNode, RoleCoreMesh, RoleRDPWorker, RoleVNCWorker,
	RoleSSHWorker, RoleRemoteAccess, RoleVPNExit, RoleVPNConnector,
	RoleFileStorageCache, RoleUpdateCache, RoleVideoRelay, RoleConfigStorage,
	RoleAdminIngress, RoleEgressNode,
}

// Valid reports whether r is a known role.
func (r Role) Valid() bool { _, ok := roleNeeds[r]; return ok }

// RequiredCapabilities returns the capabilities a node must report to hold r.
func (r Role) RequiredCapabilities() []Capability {
	return append([]Capability(nil), roleNeeds[r]...)
}

// IsMesh reports whether the role routes mesh traffic and so needs peer
// directory data in its snapshot.
func (r Role) IsMesh() bool { return r == RoleRelayNode || r == RoleCoreMesh }

// Valid reports whether c is a known capability.
func (c Capability) Valid() bool {
	for _, k := range AllCapabilities {
		if k == c {
			return true
		}
	}
	return false
}

// MissingCapabilities returns the capabilities r needs that have is lacking, or
// nil when the node may hold the role.
func MissingCapabilities(r Role, have []Capability) []Capability {
	set := make(map[Capability]bool, len(have))
	for _, c := range have {
		set[c] = true
	}
	var missing []Capability
	for _, c := range roleNeeds[r] {
		if !set[c] {
			missing = append(missing, c)
		}
	}
	return missing
}

// MembershipStatus is the state of a node's membership in one cluster.
type MembershipStatus string

// Membership states.
const (
	MembershipActive   MembershipStatus = "active"
	MembershipDisabled MembershipStatus = "disabled"
	MembershipRevoked  MembershipStatus = "revoked"
)

// JoinRequestStatus is the review state of a join request.
type JoinRequestStatus string

// Join request states.
const (
	JoinPending  JoinRequestStatus = "pending"
	JoinApproved JoinRequestStatus = "approved"
	JoinRejected JoinRequestStatus = "rejected"
	JoinExpired  JoinRequestStatus = "expired"
)

// IdentityStatus is the trust state of a node identity.
type IdentityStatus string

// Identity states.
const (
	IdentityActive  IdentityStatus = "active"
	IdentityRotated IdentityStatus = "rotated"
	IdentityRevoked IdentityStatus = "revoked"
)

// Health is the derived liveness of a node from its heartbeats.
type Health string

// Health states, from freshest to oldest heartbeat.
const (
	HealthHealthy Health = "healthy"
	HealthLate    Health = "late"
	HealthStale   Health = "stale"
	HealthOffline Health = "offline"
	HealthUnknown Health = "unknown"
)

// PartitionState is a cluster's authority state as agreed by the Raft group.
type PartitionState string

// Partition/authority states of a cluster.
const (
	PartitionNormal   PartitionState = "normal"
	PartitionDegraded PartitionState = "degraded"
	PartitionPromoted PartitionState = "promoted"
	PartitionFenced   PartitionState = "fenced"
)

// NodeURI returns the identity URI SAN of a node certificate.
func NodeURI(clusterID, nodeID string) string {
	return fmt.Sprintf("rap://%s/node/%s", clusterID, nodeID)
}
