package store

// Organization-owned rows (migration 016_organizations.sql): organization
// accounts, the logical service endpoints published to an organization, its
// resources, policies, sessions and audit events. Every read that an
// organization's API serves takes the organization id and filters by it in
// SQL, so another organization's row is indistinguishable from a missing one
// (ErrNotFound).

import (
	"context"
	"encoding/hex"
	"time"
)

// Organization account roles.
const (
	OrgRoleAdmin  = "org_admin"
	OrgRoleMember = "org_member"
)

// InsertOrgUser creates an organization account (inside the caller's
// transaction) with a one-time setup secret hash.
func InsertOrgUser(ctx context.Context, q Querier, id, name, orgID, orgRole string, setupHash []byte, setupExpires time.Time) error {
	_, err := q.Exec(ctx, `INSERT INTO admin_users (id, name, platform_role, organization_id, org_role, setup_secret_hash, setup_expires_at)
		VALUES ($1, $2, 'none', $3, $4, $5, $6)`, id, name, orgID, orgRole, setupHash, setupExpires)
	if err != nil {
		return mapErr(err)
	}
	_, err = q.Exec(ctx, `INSERT INTO admin_mfa (user_id) VALUES ($1)`, id)
	return mapErr(err)
}

// ListOrgUsers lists the accounts of one organization by name.
func ListOrgUsers(ctx context.Context, q Querier, orgID string, p Page) ([]AdminUser, error) {
	l, o := p.norm()
	return collect(ctx, q, scanAdminUser, `SELECT `+adminUserCols+` FROM admin_users u LEFT JOIN admin_mfa m ON m.user_id = u.id
		WHERE u.organization_id = rap_uuid($1) ORDER BY u.name LIMIT $2 OFFSET $3`, orgID, l, o)
}

// OrgUserByID returns an account of one organization.
func OrgUserByID(ctx context.Context, q Querier, orgID, id string) (AdminUser, error) {
	return scanAdminUser(q.QueryRow(ctx, `SELECT `+adminUserCols+` FROM admin_users u LEFT JOIN admin_mfa m ON m.user_id = u.id
		WHERE u.organization_id = rap_uuid($1) AND u.id = rap_uuid($2)`, orgID, id))
}

// SetOrgUserDisabled enables or disables an account of one organization.
func SetOrgUserDisabled(ctx context.Context, q Querier, orgID, id string, disabled bool) error {
	tag, err := q.Exec(ctx, `UPDATE admin_users SET disabled = $3, updated_at = now() WHERE organization_id = rap_uuid($1) AND id = rap_uuid($2)`, orgID, id, disabled)
	if err == nil && tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return mapErr(err)
}

// OrgSession is a console/API session of an organization account.
type OrgSession struct {
	ID         string // hex of the session's token hash
	UserID     string
	UserName   string
	CreatedAt  time.Time
	LastSeenAt time.Time
	ExpiresAt  time.Time
	Trusted    bool
}

// ListOrgSessions lists the live sessions of an organization's accounts.
func ListOrgSessions(ctx context.Context, q Querier, orgID string, now time.Time, p Page) ([]OrgSession, error) {
	l, o := p.norm()
	return collect(ctx, q, func(row scanner) (OrgSession, error) {
		var s OrgSession
		var id []byte
		err := row.Scan(&id, &s.UserID, &s.UserName, &s.CreatedAt, &s.LastSeenAt, &s.ExpiresAt, &s.Trusted)
		s.ID = hex.EncodeToString(id)
		return s, mapErr(err)
	}, `SELECT s.id, u.id::text, u.name, s.created_at, s.last_seen_at, s.expires_at, s.trusted
		FROM admin_sessions s JOIN admin_users u ON u.id = s.user_id
		WHERE u.organization_id = rap_uuid($1) AND s.expires_at > $2
		ORDER BY s.created_at DESC, s.id LIMIT $3 OFFSET $4`, orgID, now, l, o)
}

// DeleteOrgSession ends one session of an organization's account (idHex as
// listed); ErrNotFound when the organization has no such session.
func DeleteOrgSession(ctx context.Context, q Querier, orgID, idHex string) (string, error) {
	id, err := hex.DecodeString(idHex)
	if err != nil || len(id) != 32 {
		return "", ErrNotFound
	}
	var userID string
	err = q.QueryRow(ctx, `DELETE FROM admin_sessions s USING admin_users u
		WHERE s.id = $2 AND u.id = s.user_id AND u.organization_id = rap_uuid($1) RETURNING u.id::text`, orgID, id).Scan(&userID)
	return userID, mapErr(err)
}

// OrgEndpoint is a logical service endpoint published to an organization.
// Its backing nodes are separate rows (OrgEndpointNode), never part of it.
type OrgEndpoint struct {
	ID             string
	OrganizationID string
	Name           string
	Kind           string // entry | egress
	Protocol       string
	Region         string
	CreatedAt      time.Time
}

const orgEndpointCols = `id::text, organization_id::text, name, kind, protocol, region, created_at`

func scanOrgEndpoint(row scanner) (OrgEndpoint, error) {
	var e OrgEndpoint
	err := row.Scan(&e.ID, &e.OrganizationID, &e.Name, &e.Kind, &e.Protocol, &e.Region, &e.CreatedAt)
	return e, mapErr(err)
}

// InsertOrgEndpoint creates an endpoint (fenced).
func InsertOrgEndpoint(ctx context.Context, q Querier, e OrgEndpoint) (OrgEndpoint, error) {
	return scanOrgEndpoint(q.QueryRow(ctx, `INSERT INTO org_endpoints (id, organization_id, name, kind, protocol, region)
		VALUES ($1, $2, $3, $4, $5, $6) RETURNING `+orgEndpointCols, e.ID, e.OrganizationID, e.Name, e.Kind, e.Protocol, e.Region))
}

// OrgEndpointNode is one node backing an endpoint (platform-only data).
type OrgEndpointNode struct {
	EndpointID string
	ClusterID  string
	NodeID     string
}

// InsertOrgEndpointNode adds a backing node to an endpoint (fenced).
func InsertOrgEndpointNode(ctx context.Context, q Querier, n OrgEndpointNode) error {
	_, err := q.Exec(ctx, `INSERT INTO org_endpoint_nodes (endpoint_id, cluster_id, node_id) VALUES ($1, $2, $3)`, n.EndpointID, n.ClusterID, n.NodeID)
	return mapErr(err)
}

// ListOrgEndpoints lists one organization's endpoints by name.
func ListOrgEndpoints(ctx context.Context, q Querier, orgID string, p Page) ([]OrgEndpoint, error) {
	l, o := p.norm()
	return collect(ctx, q, scanOrgEndpoint, `SELECT `+orgEndpointCols+` FROM org_endpoints WHERE organization_id = rap_uuid($1)
		ORDER BY name LIMIT $2 OFFSET $3`, orgID, l, o)
}

// GetOrgEndpoint returns an endpoint of one organization (by id or name).
func GetOrgEndpoint(ctx context.Context, q Querier, orgID, idOrName string) (OrgEndpoint, error) {
	return scanOrgEndpoint(q.QueryRow(ctx, `SELECT `+orgEndpointCols+` FROM org_endpoints WHERE organization_id = rap_uuid($1)
		AND (id = rap_uuid($2) OR name = $2)`, orgID, idOrName))
}

// DeleteOrgEndpoint removes an endpoint of one organization (fenced); its
// backing rows go with it. Resources still using it make it a conflict.
func DeleteOrgEndpoint(ctx context.Context, q Querier, orgID, id string) error {
	tag, err := q.Exec(ctx, `DELETE FROM org_endpoints WHERE organization_id = rap_uuid($1) AND id = rap_uuid($2)`, orgID, id)
	if err == nil && tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return mapErr(err)
}

// ListOrgEndpointNodes lists the backing nodes of endpoints (platform view).
func ListOrgEndpointNodes(ctx context.Context, q Querier, endpointIDs []string) ([]OrgEndpointNode, error) {
	return collect(ctx, q, func(row scanner) (OrgEndpointNode, error) {
		var n OrgEndpointNode
		err := row.Scan(&n.EndpointID, &n.ClusterID, &n.NodeID)
		return n, mapErr(err)
	}, `SELECT endpoint_id::text, cluster_id::text, node_id::text FROM org_endpoint_nodes WHERE endpoint_id = ANY(rap_uuids($1))
		ORDER BY endpoint_id, cluster_id, node_id`, endpointIDs)
}

// EndpointBacking counts the backing nodes of an endpoint and how many of
// them are serving (active membership, healthy heartbeat). The counts stay
// inside the authority: organizations see only the summary derived from them.
type EndpointBacking struct {
	Total   int
	Serving int
}

// OrgEndpointBackings returns the backing counts of an organization's
// endpoints, keyed by endpoint id.
func OrgEndpointBackings(ctx context.Context, q Querier, orgID string) (map[string]EndpointBacking, error) {
	rows, err := q.Query(ctx, `SELECT e.id::text, count(n.node_id),
			count(n.node_id) FILTER (WHERE m.membership_status = 'active' AND h.derived_health = 'healthy')
		FROM org_endpoints e
		LEFT JOIN org_endpoint_nodes n ON n.endpoint_id = e.id
		LEFT JOIN cluster_memberships m ON m.cluster_id = n.cluster_id AND m.node_id = n.node_id
		LEFT JOIN node_heartbeat_latest h ON h.cluster_id = n.cluster_id AND h.node_id = n.node_id
		WHERE e.organization_id = rap_uuid($1) GROUP BY e.id`, orgID)
	if err != nil {
		return nil, mapErr(err)
	}
	defer rows.Close()
	out := map[string]EndpointBacking{}
	for rows.Next() {
		var id string
		var b EndpointBacking
		if err := rows.Scan(&id, &b.Total, &b.Serving); err != nil {
			return nil, mapErr(err)
		}
		out[id] = b
	}
	return out, mapErr(rows.Err())
}

// OrgResource is something an organization wants reachable.
type OrgResource struct {
	ID             string
	OrganizationID string
	Name           string
	Protocol       string
	Address        string
	Port           int
	EndpointID     string
	CreatedAt      time.Time
}

const orgResourceCols = `id::text, organization_id::text, name, protocol, address, port, endpoint_id::text, created_at`

func scanOrgResource(row scanner) (OrgResource, error) {
	var r OrgResource
	err := row.Scan(&r.ID, &r.OrganizationID, &r.Name, &r.Protocol, &r.Address, &r.Port, &r.EndpointID, &r.CreatedAt)
	return r, mapErr(err)
}

// InsertOrgResource creates a resource (fenced).
func InsertOrgResource(ctx context.Context, q Querier, r OrgResource) (OrgResource, error) {
	return scanOrgResource(q.QueryRow(ctx, `INSERT INTO org_resources (id, organization_id, name, protocol, address, port, endpoint_id)
		VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING `+orgResourceCols, r.ID, r.OrganizationID, r.Name, r.Protocol, r.Address, r.Port, r.EndpointID))
}

// ListOrgResources lists one organization's resources by name.
func ListOrgResources(ctx context.Context, q Querier, orgID string, p Page) ([]OrgResource, error) {
	l, o := p.norm()
	return collect(ctx, q, scanOrgResource, `SELECT `+orgResourceCols+` FROM org_resources WHERE organization_id = rap_uuid($1)
		ORDER BY name LIMIT $2 OFFSET $3`, orgID, l, o)
}

// GetOrgResource returns a resource of one organization.
func GetOrgResource(ctx context.Context, q Querier, orgID, id string) (OrgResource, error) {
	return scanOrgResource(q.QueryRow(ctx, `SELECT `+orgResourceCols+` FROM org_resources WHERE organization_id = rap_uuid($1) AND id = rap_uuid($2)`, orgID, id))
}

// DeleteOrgResource removes a resource of one organization (fenced).
func DeleteOrgResource(ctx context.Context, q Querier, orgID, id string) error {
	tag, err := q.Exec(ctx, `DELETE FROM org_resources WHERE organization_id = rap_uuid($1) AND id = rap_uuid($2)`, orgID, id)
	if err == nil && tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return mapErr(err)
}

// OrgPolicy says which subjects may reach which resources through which
// endpoints, when, and whether MFA is required.
type OrgPolicy struct {
	ID             string
	OrganizationID string
	Name           string
	Subjects       []string
	ResourceIDs    []string
	EndpointIDs    []string
	WindowStart    *int // minute of the day (UTC); nil: always
	WindowEnd      *int
	RequireMFA     bool
	CreatedAt      time.Time
}

const orgPolicyCols = `id::text, organization_id::text, name, subjects, resource_ids::text[], endpoint_ids::text[], window_start, window_end, require_mfa, created_at`

func scanOrgPolicy(row scanner) (OrgPolicy, error) {
	var p OrgPolicy
	err := row.Scan(&p.ID, &p.OrganizationID, &p.Name, &p.Subjects, &p.ResourceIDs, &p.EndpointIDs, &p.WindowStart, &p.WindowEnd, &p.RequireMFA, &p.CreatedAt)
	return p, mapErr(err)
}

// InsertOrgPolicy creates a policy (fenced). The caller has checked that the
// resources and endpoints belong to the same organization.
func InsertOrgPolicy(ctx context.Context, q Querier, p OrgPolicy) (OrgPolicy, error) {
	return scanOrgPolicy(q.QueryRow(ctx, `INSERT INTO org_policies (id, organization_id, name, subjects, resource_ids, endpoint_ids, window_start, window_end, require_mfa)
		VALUES ($1, $2, $3, $4, $5::uuid[], $6::uuid[], $7, $8, $9) RETURNING `+orgPolicyCols,
		p.ID, p.OrganizationID, p.Name, p.Subjects, p.ResourceIDs, p.EndpointIDs, p.WindowStart, p.WindowEnd, p.RequireMFA))
}

// ListOrgPolicies lists one organization's policies by name.
func ListOrgPolicies(ctx context.Context, q Querier, orgID string, p Page) ([]OrgPolicy, error) {
	l, o := p.norm()
	return collect(ctx, q, scanOrgPolicy, `SELECT `+orgPolicyCols+` FROM org_policies WHERE organization_id = rap_uuid($1)
		ORDER BY name LIMIT $2 OFFSET $3`, orgID, l, o)
}

// GetOrgPolicy returns a policy of one organization.
func GetOrgPolicy(ctx context.Context, q Querier, orgID, id string) (OrgPolicy, error) {
	return scanOrgPolicy(q.QueryRow(ctx, `SELECT `+orgPolicyCols+` FROM org_policies WHERE organization_id = rap_uuid($1) AND id = rap_uuid($2)`, orgID, id))
}

// DeleteOrgPolicy removes a policy of one organization (fenced).
func DeleteOrgPolicy(ctx context.Context, q Querier, orgID, id string) error {
	tag, err := q.Exec(ctx, `DELETE FROM org_policies WHERE organization_id = rap_uuid($1) AND id = rap_uuid($2)`, orgID, id)
	if err == nil && tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return mapErr(err)
}

// CountOrgRows counts how many of ids are rows of table (org_resources or
// org_endpoints) of the organization.
func CountOrgRows(ctx context.Context, q Querier, table, orgID string, ids []string) (int, error) {
	if table != "org_resources" && table != "org_endpoints" {
		return 0, ErrNotFound
	}
	var n int
	err := q.QueryRow(ctx, `SELECT count(*) FROM `+table+` WHERE organization_id = rap_uuid($1) AND id = ANY(rap_uuids($2))`, orgID, ids).Scan(&n)
	return n, mapErr(err)
}

// ListOrgAudit lists an organization's own audit events, newest first.
func ListOrgAudit(ctx context.Context, q Querier, orgID string, p Page) ([]AuditEvent, error) {
	l, o := p.norm()
	return collect(ctx, q, scanAudit, `SELECT `+auditCols+` FROM cluster_audit_events WHERE organization_id = rap_uuid($1)
		ORDER BY id DESC LIMIT $2 OFFSET $3`, orgID, l, o)
}

// OrgSnapshotInputs returns, for one cluster, the organization endpoints
// backed by its nodes (with those nodes) and the resources and policies of
// the organizations that own them.
func OrgSnapshotInputs(ctx context.Context, q Querier, clusterID string) ([]OrgEndpoint, map[string][]string, []OrgResource, []OrgPolicy, error) {
	eps, err := collect(ctx, q, scanOrgEndpoint, `SELECT `+orgEndpointCols+` FROM org_endpoints e
		WHERE EXISTS (SELECT 1 FROM org_endpoint_nodes n WHERE n.endpoint_id = e.id AND n.cluster_id = rap_uuid($1)) ORDER BY id`, clusterID)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	nodes := map[string][]string{}
	if len(eps) == 0 {
		return eps, nodes, nil, nil, nil
	}
	ns, err := collect(ctx, q, func(row scanner) (OrgEndpointNode, error) {
		var n OrgEndpointNode
		err := row.Scan(&n.EndpointID, &n.NodeID)
		return n, mapErr(err)
	}, `SELECT endpoint_id::text, node_id::text FROM org_endpoint_nodes WHERE cluster_id = rap_uuid($1) ORDER BY endpoint_id, node_id`, clusterID)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	for _, n := range ns {
		nodes[n.EndpointID] = append(nodes[n.EndpointID], n.NodeID)
	}
	orgs := map[string]bool{}
	var orgIDs []string
	for _, e := range eps {
		if !orgs[e.OrganizationID] {
			orgs[e.OrganizationID] = true
			orgIDs = append(orgIDs, e.OrganizationID)
		}
	}
	res, err := collect(ctx, q, scanOrgResource, `SELECT `+orgResourceCols+` FROM org_resources WHERE organization_id = ANY(rap_uuids($1)) ORDER BY id`, orgIDs)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	pols, err := collect(ctx, q, scanOrgPolicy, `SELECT `+orgPolicyCols+` FROM org_policies WHERE organization_id = ANY(rap_uuids($1)) ORDER BY id`, orgIDs)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	return eps, nodes, res, pols, nil
}
