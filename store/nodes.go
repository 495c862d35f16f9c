package store

import (
	"context"
	"time"

	"github.com/rap-fabric/core/domain"
)

// Node is a host-level identity record (one per physical host, whatever the
// number of clusters it is a member of).
type Node struct {
	ID               string    `json:"id"`
	Name             string    `json:"name"`
	HostFingerprint  string    `json:"host_fingerprint"`
	OrganizationID   *string   `json:"organization_id,omitempty"`
	EnrollmentStatus string    `json:"enrollment_status"`
	CreatedAt        time.Time `json:"created_at"`
	UpdatedAt        time.Time `json:"updated_at"`
}

const nodeCols = `id::text, name, host_fingerprint, organization_id::text, enrollment_status, created_at, updated_at`

func scanNode(row scanner) (Node, error) {
	var n Node
	err := row.Scan(&n.ID, &n.Name, &n.HostFingerprint, &n.OrganizationID, &n.EnrollmentStatus, &n.CreatedAt, &n.UpdatedAt)
	return n, mapErr(err)
}

// InsertNode creates a node (fenced).
func InsertNode(ctx context.Context, q Querier, n Node) (Node, error) {
	return scanNode(q.QueryRow(ctx, `INSERT INTO nodes (id, name, host_fingerprint, organization_id) VALUES ($1, $2, $3, $4) RETURNING `+nodeCols,
		n.ID, n.Name, n.HostFingerprint, n.OrganizationID))
}

// GetNode finds a node by id.
func GetNode(ctx context.Context, q Querier, id string) (Node, error) {
	return scanNode(q.QueryRow(ctx, `SELECT `+nodeCols+` FROM nodes WHERE id = rap_uuid($1)`, id))
}

// FindNodeByHost returns the enrolled node with the given host fingerprint, if any.
func FindNodeByHost(ctx context.Context, q Querier, hostFingerprint string) (Node, error) {
	return scanNode(q.QueryRow(ctx, `SELECT `+nodeCols+` FROM nodes WHERE host_fingerprint = $1 AND enrollment_status = 'enrolled' ORDER BY created_at LIMIT 1`, hostFingerprint))
}

// ListNodes lists all physical nodes by name.
func ListNodes(ctx context.Context, q Querier, p Page) ([]Node, error) {
	l, o := p.norm()
	return collect(ctx, q, scanNode, `SELECT `+nodeCols+` FROM nodes ORDER BY name, id LIMIT $1 OFFSET $2`, l, o)
}

// Membership links a node to a cluster.
type Membership struct {
	ClusterID string    `json:"cluster_id"`
	NodeID    string    `json:"node_id"`
	NodeName  string    `json:"node_name"`
	Status    string    `json:"membership_status"`
	GroupID   *string   `json:"group_id,omitempty"`
	JoinedAt  time.Time `json:"joined_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

const memberCols = `m.cluster_id::text, m.node_id::text, n.name, m.membership_status, m.group_id::text, m.joined_at, m.updated_at`
const memberFrom = ` FROM cluster_memberships m JOIN nodes n ON n.id = m.node_id `

func scanMember(row scanner) (Membership, error) {
	var m Membership
	err := row.Scan(&m.ClusterID, &m.NodeID, &m.NodeName, &m.Status, &m.GroupID, &m.JoinedAt, &m.UpdatedAt)
	return m, mapErr(err)
}

// InsertMembership adds node to cluster as an active member (fenced).
func InsertMembership(ctx context.Context, q Querier, clusterID, nodeID string) error {
	_, err := q.Exec(ctx, `INSERT INTO cluster_memberships (cluster_id, node_id) VALUES ($1, $2)`, clusterID, nodeID)
	return mapErr(err)
}

// GetMembership returns one membership.
func GetMembership(ctx context.Context, q Querier, clusterID, nodeID string) (Membership, error) {
	return scanMember(q.QueryRow(ctx, `SELECT `+memberCols+memberFrom+`WHERE m.cluster_id = rap_uuid($1) AND m.node_id = rap_uuid($2)`, clusterID, nodeID))
}

// ListClusterMembers lists the members of a cluster.
func ListClusterMembers(ctx context.Context, q Querier, clusterID string, p Page) ([]Membership, error) {
	l, o := p.norm()
	return collect(ctx, q, scanMember, `SELECT `+memberCols+memberFrom+`WHERE m.cluster_id = rap_uuid($1) ORDER BY n.name, n.id LIMIT $2 OFFSET $3`, clusterID, l, o)
}

// ListNodeMemberships lists the clusters a node is a member of.
func ListNodeMemberships(ctx context.Context, q Querier, nodeID string) ([]Membership, error) {
	return collect(ctx, q, scanMember, `SELECT `+memberCols+memberFrom+`WHERE m.node_id = rap_uuid($1) ORDER BY m.joined_at`, nodeID)
}

// SetMembershipStatus changes one membership's status (fenced). Other clusters'
// memberships of the same node are untouched.
func SetMembershipStatus(ctx context.Context, q Querier, clusterID, nodeID, status string) error {
	tag, err := q.Exec(ctx, `UPDATE cluster_memberships SET membership_status = $3, updated_at = now() WHERE cluster_id = $1 AND node_id = $2`, clusterID, nodeID, status)
	if err != nil {
		return mapErr(err)
	}
	if tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return nil
}

// SetMembershipGroup places a membership in a group of the same cluster, or in
// none when groupID is nil (fenced).
func SetMembershipGroup(ctx context.Context, q Querier, clusterID, nodeID string, groupID *string) error {
	tag, err := q.Exec(ctx, `UPDATE cluster_memberships SET group_id = $3, updated_at = now() WHERE cluster_id = $1 AND node_id = $2`, clusterID, nodeID, groupID)
	if err != nil {
		return mapErr(err)
	}
	if tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return nil
}

// SetNodeEnrollmentStatus marks a node enrolled or revoked (fenced).
func SetNodeEnrollmentStatus(ctx context.Context, q Querier, nodeID, status string) error {
	tag, err := q.Exec(ctx, `UPDATE nodes SET enrollment_status = $2, updated_at = now() WHERE id = $1`, nodeID, status)
	if err != nil {
		return mapErr(err)
	}
	if tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return nil
}

// ReplaceReportedCapabilities records the capabilities a node's agent reports,
// replacing the previous report (verification flags are kept).
func ReplaceReportedCapabilities(ctx context.Context, q Querier, nodeID string, caps []domain.Capability) error {
	names := make([]string, len(caps))
	for i, c := range caps {
		names[i] = string(c)
	}
	if _, err := q.Exec(ctx, `UPDATE node_capabilities SET reported = false, updated_at = now() WHERE node_id = $1 AND NOT (capability = ANY($2))`, nodeID, names); err != nil {
		return mapErr(err)
	}
	_, err := q.Exec(ctx, `INSERT INTO node_capabilities (node_id, capability, reported) SELECT $1, unnest($2::text[]), true
		ON CONFLICT (node_id, capability) DO UPDATE SET reported = true, updated_at = now()`, nodeID, names)
	return mapErr(err)
}

// ReportedCapabilities returns the capabilities a node currently reports.
func ReportedCapabilities(ctx context.Context, q Querier, nodeID string) ([]domain.Capability, error) {
	return collect(ctx, q, func(r scanner) (domain.Capability, error) {
		var c string
		err := r.Scan(&c)
		return domain.Capability(c), mapErr(err)
	}, `SELECT capability FROM node_capabilities WHERE node_id = rap_uuid($1) AND reported ORDER BY capability`, nodeID)
}

// GetNodes returns the nodes with the given ids, keyed by id, in one query.
func GetNodes(ctx context.Context, q Querier, ids []string) (map[string]Node, error) {
	ns, err := collect(ctx, q, scanNode, `SELECT `+nodeCols+` FROM nodes WHERE id = ANY(rap_uuids($1))`, ids)
	if err != nil {
		return nil, err
	}
	out := make(map[string]Node, len(ns))
	for _, n := range ns {
		out[n.ID] = n
	}
	return out, nil
}

// ListMembershipsOfNodes returns the memberships of the given nodes, keyed by
// node id (oldest first), in one query.
func ListMembershipsOfNodes(ctx context.Context, q Querier, nodeIDs []string) (map[string][]Membership, error) {
	ms, err := collect(ctx, q, scanMember, `SELECT `+memberCols+memberFrom+`WHERE m.node_id = ANY(rap_uuids($1)) ORDER BY m.joined_at`, nodeIDs)
	if err != nil {
		return nil, err
	}
	out := make(map[string][]Membership, len(nodeIDs))
	for _, m := range ms {
		out[m.NodeID] = append(out[m.NodeID], m)
	}
	return out, nil
}
