package agentapi

import (
	"encoding/json"
	"time"
)

// PathAdminIngress is the route an agent holding the admin-ingress role asks
// (mTLS) for what its Cluster Admin Endpoint serves: GET, answered with
// AdminIngress, or refused with code admin_ingress_refused and
// details.reason (one of the AdminIngressRefused* reasons).
const PathAdminIngress = "/v1/agent/admin-ingress"

// Refusal reasons of PathAdminIngress (details.reason).
const (
	// AdminIngressRefusedNoRole: the node holds no active admin-ingress
	// assignment in the cluster.
	AdminIngressRefusedNoRole = "role_not_assigned"
	// AdminIngressRefusedStorage: the node is a config-storage node; storage
	// nodes are never browser admin entry points.
	AdminIngressRefusedStorage = "storage_node"
	// AdminIngressRefusedMembership: the node's membership is not active.
	AdminIngressRefusedMembership = "membership_inactive"
	// AdminIngressRefusedCluster: the cluster is disabled.
	AdminIngressRefusedCluster = "cluster_disabled"
)

// AdminIngress is what a Cluster Admin Endpoint needs: the page definitions
// (uimanifest JSON, validated again by the agent), the cluster it scopes,
// the authority state and role coverage its preconditions check, and the
// node's newest signed snapshot version. It carries no secret: the
// endpoint forwards every request with the admin's own credential.
type AdminIngress struct {
	ClusterID   string `json:"cluster_id"`
	ClusterSlug string `json:"cluster_slug"`
	NodeID      string `json:"node_id"`
	// AuthorityState is the cluster's agreed partition state (normal,
	// degraded, promoted, fenced).
	AuthorityState string `json:"authority_state"`
	// Healthy is true when the authority group answers with a leader and
	// the cluster's state is normal.
	Healthy bool `json:"healthy"`
	// SnapshotVersion is the newest snapshot version issued to the node.
	SnapshotVersion uint64 `json:"snapshot_version"`
	// RequiredRoles are the manifest's required roles; MissingRoles those
	// no active member holds.
	RequiredRoles []string `json:"required_roles"`
	MissingRoles  []string `json:"missing_roles"`
	// Manifest is the page definitions (uimanifest).
	Manifest json.RawMessage `json:"manifest"`
	// CheckedAt is the authority's clock when it answered.
	CheckedAt time.Time `json:"checked_at"`
}
