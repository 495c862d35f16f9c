package store

// VPN / IP tunnel control plane (migrations/011_vpn.sql): connections, their
// allowed nodes and route policies, single-active leases with history, and
// the agents' assignment status reports. Every table but the status tables is
// fenced: write them only inside DB.Fenced.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Typed errors of the VPN repositories (they wrap the package's generic ones,
// so errors.Is(err, ErrConflict) still holds for ErrLeaseHeld).
var (
	// ErrLeaseHeld: the connection already has an active lease (the partial
	// unique index vpn_connection_leases_one_active refused a second one).
	ErrLeaseHeld = fmt.Errorf("%w: the connection already has an active lease", ErrConflict)
	// ErrLeaseNotActive: no active lease of that generation (it expired, was
	// released, fenced or revoked, or another generation holds the connection).
	ErrLeaseNotActive = fmt.Errorf("%w: no active lease of that generation", ErrNotFound)
)

// VPNConnection is a row of vpn_connections. CredentialRef is a reference to
// a credential held elsewhere (never the credential); agents never receive it.
type VPNConnection struct {
	ID              string    `json:"id"`
	ClusterID       string    `json:"cluster_id"`
	OrganizationID  *string   `json:"organization_id,omitempty"`
	Name            string    `json:"name"`
	DesiredState    string    `json:"desired_state"`
	AddressFamily   string    `json:"address_family"`
	ClientPrefixes  []string  `json:"client_prefixes"`
	RemotePrefixes  []string  `json:"remote_prefixes"`
	DNSServers      []string  `json:"dns_servers"`
	MTU             int       `json:"mtu"`
	CredentialRef   string    `json:"credential_ref"`
	LeaseTTLSeconds int       `json:"lease_ttl_seconds"`
	CreatedBy       string    `json:"created_by"`
	CreatedAt       time.Time `json:"created_at"`
	UpdatedAt       time.Time `json:"updated_at"`
}

const vpnConnCols = `id::text, cluster_id::text, organization_id::text, name, desired_state, address_family, client_prefixes::text[],
	remote_prefixes::text[], ARRAY(SELECT host(d) FROM unnest(dns_servers) WITH ORDINALITY AS x(d, i) ORDER BY i), mtu, credential_ref, lease_ttl_seconds, created_by, created_at, updated_at`

func scanVPNConn(row scanner) (VPNConnection, error) {
	var c VPNConnection
	err := row.Scan(&c.ID, &c.ClusterID, &c.OrganizationID, &c.Name, &c.DesiredState, &c.AddressFamily, &c.ClientPrefixes, &c.RemotePrefixes,
		&c.DNSServers, &c.MTU, &c.CredentialRef, &c.LeaseTTLSeconds, &c.CreatedBy, &c.CreatedAt, &c.UpdatedAt)
	return c, mapErr(err)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// InsertVPNConnection stores a new connection (fenced).
func InsertVPNConnection(ctx context.Context, q Querier, c VPNConnection) (VPNConnection, error) {
	return scanVPNConn(q.QueryRow(ctx, `INSERT INTO vpn_connections (id, cluster_id, organization_id, name, desired_state, address_family,
		client_prefixes, remote_prefixes, dns_servers, mtu, credential_ref, lease_ttl_seconds, created_by)
		VALUES ($1, $2, $3, $4, $5, $6, $7::cidr[], $8::cidr[], $9::inet[], $10, $11, $12, $13) RETURNING `+vpnConnCols,
		c.ID, c.ClusterID, c.OrganizationID, c.Name, c.DesiredState, c.AddressFamily, nonNil(c.ClientPrefixes), nonNil(c.RemotePrefixes),
		nonNil(c.DNSServers), c.MTU, c.CredentialRef, c.LeaseTTLSeconds, c.CreatedBy))
}

// UpdateVPNConnection replaces a connection's network settings, credential
// reference and lease time to live (fenced). Name, cluster and desired state
// are not changed here.
func UpdateVPNConnection(ctx context.Context, q Querier, c VPNConnection) (VPNConnection, error) {
	return scanVPNConn(q.QueryRow(ctx, `UPDATE vpn_connections SET address_family = $3, client_prefixes = $4::cidr[], remote_prefixes = $5::cidr[],
		dns_servers = $6::inet[], mtu = $7, credential_ref = $8, lease_ttl_seconds = $9, updated_at = now()
		WHERE cluster_id = $1 AND id = $2 RETURNING `+vpnConnCols,
		c.ClusterID, c.ID, c.AddressFamily, nonNil(c.ClientPrefixes), nonNil(c.RemotePrefixes), nonNil(c.DNSServers), c.MTU, c.CredentialRef, c.LeaseTTLSeconds))
}

// SetVPNDesiredState enables or disables a connection (fenced).
func SetVPNDesiredState(ctx context.Context, q Querier, clusterID, id, state string) (VPNConnection, error) {
	return scanVPNConn(q.QueryRow(ctx, `UPDATE vpn_connections SET desired_state = $3, updated_at = now()
		WHERE cluster_id = $1 AND id = $2 RETURNING `+vpnConnCols, clusterID, id, state))
}

// GetVPNConnection finds a cluster's connection by id or name.
func GetVPNConnection(ctx context.Context, q Querier, clusterID, idOrName string) (VPNConnection, error) {
	return scanVPNConn(q.QueryRow(ctx, `SELECT `+vpnConnCols+` FROM vpn_connections
		WHERE cluster_id = rap_uuid($1) AND (id = rap_uuid($2) OR name = $2)`, clusterID, idOrName))
}

// LockVPNConnection reads a cluster's connection by id and locks its row
// until the transaction ends: lease operations on one connection serialize on
// it (the partial unique index still refuses a second active lease if a path
// forgets to lock).
func LockVPNConnection(ctx context.Context, q Querier, clusterID, id string) (VPNConnection, error) {
	return scanVPNConn(q.QueryRow(ctx, `SELECT `+vpnConnCols+` FROM vpn_connections
		WHERE cluster_id = rap_uuid($1) AND id = rap_uuid($2) FOR UPDATE`, clusterID, id))
}

// ListVPNConnections lists a cluster's connections by name.
func ListVPNConnections(ctx context.Context, q Querier, clusterID string, p Page) ([]VPNConnection, error) {
	lim, off := p.norm()
	return collect(ctx, q, scanVPNConn, `SELECT `+vpnConnCols+` FROM vpn_connections WHERE cluster_id = rap_uuid($1)
		ORDER BY name, id LIMIT $2 OFFSET $3`, clusterID, lim, off)
}

// ReplaceVPNAllowedNodes makes nodeIDs (normalized by the caller) the
// connection's allowed nodes (fenced). The database refuses a node that is not
// a member of the connection's cluster (ErrConstraint).
func ReplaceVPNAllowedNodes(ctx context.Context, q Querier, clusterID, connID string, nodeIDs []string, by string) error {
	if _, err := q.Exec(ctx, `DELETE FROM vpn_connection_allowed_nodes WHERE connection_id = $1 AND NOT (node_id = ANY(rap_uuids($2::text[])))`,
		connID, nonNil(nodeIDs)); err != nil {
		return mapErr(err)
	}
	_, err := q.Exec(ctx, `INSERT INTO vpn_connection_allowed_nodes (connection_id, cluster_id, node_id, added_by)
		SELECT $1, $2, n::uuid, $4 FROM unnest($3::text[]) n ON CONFLICT (connection_id, node_id) DO NOTHING`,
		connID, clusterID, nonNil(nodeIDs), by)
	return mapErr(err)
}

// ListVPNAllowedNodes lists a connection's allowed nodes, sorted.
func ListVPNAllowedNodes(ctx context.Context, q Querier, connID string) ([]string, error) {
	return collect(ctx, q, func(r scanner) (string, error) {
		var s string
		return s, mapErr(r.Scan(&s))
	}, `SELECT node_id::text FROM vpn_connection_allowed_nodes WHERE connection_id = $1 ORDER BY node_id::text`, connID)
}

// ClusterMembers returns which of nodeIDs are members (any status) of the
// cluster, so a caller can name the ones that are not.
func ClusterMembers(ctx context.Context, q Querier, clusterID string, nodeIDs []string) (map[string]bool, error) {
	ids, err := collect(ctx, q, func(r scanner) (string, error) {
		var s string
		return s, mapErr(r.Scan(&s))
	}, `SELECT node_id::text FROM cluster_memberships WHERE cluster_id = rap_uuid($1) AND node_id = ANY(rap_uuids($2::text[]))`, clusterID, nonNil(nodeIDs))
	if err != nil {
		return nil, err
	}
	out := make(map[string]bool, len(ids))
	for _, id := range ids {
		out[id] = true
	}
	return out, nil
}

// VPNRoutePolicy is a row of vpn_connection_route_policies.
type VPNRoutePolicy struct {
	ID                string   `json:"id"`
	ConnectionID      string   `json:"connection_id"`
	ClusterID         string   `json:"cluster_id"`
	Name              string   `json:"name"`
	Prefixes          []string `json:"prefixes"`
	Priority          int      `json:"priority"`
	AllowDefaultRoute bool     `json:"allow_default_route"`
	AllowOverlap      bool     `json:"allow_overlap"`
	// Masquerade: the exit source-NATs this policy's traffic (migration 013).
	Masquerade bool      `json:"masquerade"`
	CreatedBy  string    `json:"created_by"`
	CreatedAt  time.Time `json:"created_at"`
}

const vpnPolicyCols = `id::text, connection_id::text, cluster_id::text, name, prefixes::text[], priority, allow_default_route, allow_overlap, masquerade, created_by, created_at`

func scanVPNPolicy(row scanner) (VPNRoutePolicy, error) {
	var p VPNRoutePolicy
	err := row.Scan(&p.ID, &p.ConnectionID, &p.ClusterID, &p.Name, &p.Prefixes, &p.Priority, &p.AllowDefaultRoute, &p.AllowOverlap, &p.Masquerade, &p.CreatedBy, &p.CreatedAt)
	return p, mapErr(err)
}

// InsertVPNRoutePolicy stores a route policy (fenced). The database refuses a
// default route without AllowDefaultRoute (ErrConstraint).
func InsertVPNRoutePolicy(ctx context.Context, q Querier, p VPNRoutePolicy) (VPNRoutePolicy, error) {
	return scanVPNPolicy(q.QueryRow(ctx, `INSERT INTO vpn_connection_route_policies
		(id, connection_id, cluster_id, name, prefixes, priority, allow_default_route, allow_overlap, masquerade, created_by)
		VALUES ($1, $2, $3, $4, $5::cidr[], $6, $7, $8, $9, $10) RETURNING `+vpnPolicyCols,
		p.ID, p.ConnectionID, p.ClusterID, p.Name, nonNil(p.Prefixes), p.Priority, p.AllowDefaultRoute, p.AllowOverlap, p.Masquerade, p.CreatedBy))
}

// DeleteVPNRoutePolicy removes a connection's route policy by id or name (fenced).
func DeleteVPNRoutePolicy(ctx context.Context, q Querier, connID, idOrName string) (VPNRoutePolicy, error) {
	return scanVPNPolicy(q.QueryRow(ctx, `DELETE FROM vpn_connection_route_policies WHERE connection_id = $1 AND (id = rap_uuid($2) OR name = $2)
		RETURNING `+vpnPolicyCols, connID, idOrName))
}

// ListVPNRoutePolicies lists a connection's route policies in priority order.
func ListVPNRoutePolicies(ctx context.Context, q Querier, connID string) ([]VPNRoutePolicy, error) {
	return collect(ctx, q, scanVPNPolicy, `SELECT `+vpnPolicyCols+` FROM vpn_connection_route_policies WHERE connection_id = $1
		ORDER BY priority, name, id`, connID)
}

// VPNLease is a row of vpn_connection_leases. Status is active, released,
// expired, fenced or revoked; EndedAt is set once it is not active.
type VPNLease struct {
	ID           string     `json:"id"`
	ConnectionID string     `json:"connection_id"`
	ClusterID    string     `json:"cluster_id"`
	OwnerNodeID  string     `json:"owner_node_id"`
	Generation   int64      `json:"generation"`
	Status       string     `json:"status"`
	Epoch        int64      `json:"epoch"`
	AcquiredAt   time.Time  `json:"acquired_at"`
	RenewedAt    time.Time  `json:"renewed_at"`
	ExpiresAt    time.Time  `json:"expires_at"`
	EndedAt      *time.Time `json:"ended_at,omitempty"`
	EndReason    string     `json:"end_reason,omitempty"`
	EndedBy      string     `json:"ended_by,omitempty"`
}

const vpnLeaseCols = `id::text, connection_id::text, cluster_id::text, owner_node_id::text, generation, status, epoch, acquired_at, renewed_at,
	expires_at, ended_at, end_reason, ended_by`

func scanVPNLease(row scanner) (VPNLease, error) {
	var l VPNLease
	err := row.Scan(&l.ID, &l.ConnectionID, &l.ClusterID, &l.OwnerNodeID, &l.Generation, &l.Status, &l.Epoch, &l.AcquiredAt, &l.RenewedAt,
		&l.ExpiresAt, &l.EndedAt, &l.EndReason, &l.EndedBy)
	return l, mapErr(err)
}

// InsertVPNLease grants a new active lease (fenced): its generation is the
// connection's next one and its epoch the transaction's fence epoch (set by
// the database). A second active lease is refused with ErrLeaseHeld, by the
// partial unique index — whatever checks the caller made or skipped.
func InsertVPNLease(ctx context.Context, q Querier, l VPNLease) (VPNLease, error) {
	out, err := scanVPNLease(q.QueryRow(ctx, `INSERT INTO vpn_connection_leases
		(id, connection_id, cluster_id, owner_node_id, generation, status, epoch, acquired_at, renewed_at, expires_at)
		VALUES ($1, $2, $3, $4, (SELECT coalesce(max(generation), 0) + 1 FROM vpn_connection_leases WHERE connection_id = $2),
			'active', 1, $5, $5, $6) RETURNING `+vpnLeaseCols,
		l.ID, l.ConnectionID, l.ClusterID, l.OwnerNodeID, l.AcquiredAt, l.ExpiresAt))
	if err != nil && errors.Is(err, ErrConflict) && strings.Contains(err.Error(), "one_active") {
		return out, fmt.Errorf("%w (%w)", ErrLeaseHeld, err)
	}
	if err != nil && errors.Is(err, ErrConflict) && strings.Contains(err.Error(), "generation") {
		// A concurrent acquirer took the same generation: it holds the lease.
		return out, fmt.Errorf("%w (%w)", ErrLeaseHeld, err)
	}
	return out, err
}

// ActiveVPNLease returns the connection's active lease, or ErrNotFound.
func ActiveVPNLease(ctx context.Context, q Querier, connID string) (VPNLease, error) {
	return scanVPNLease(q.QueryRow(ctx, `SELECT `+vpnLeaseCols+` FROM vpn_connection_leases WHERE connection_id = rap_uuid($1) AND status = 'active'`, connID))
}

// RenewVPNLease extends the active lease of generation gen held by owner until
// expires (fenced), refusing with ErrLeaseNotActive when that lease is not
// active or already past its expiry at now.
func RenewVPNLease(ctx context.Context, q Querier, connID, owner string, gen int64, now, expires time.Time) (VPNLease, error) {
	l, err := scanVPNLease(q.QueryRow(ctx, `UPDATE vpn_connection_leases SET renewed_at = $4, expires_at = $5
		WHERE connection_id = rap_uuid($1) AND owner_node_id = rap_uuid($2) AND generation = $3 AND status = 'active' AND expires_at > $4
		RETURNING `+vpnLeaseCols, connID, owner, gen, now, expires))
	if errors.Is(err, ErrNotFound) {
		return l, ErrLeaseNotActive
	}
	return l, err
}

// EndVPNLease ends the connection's active lease (fenced): of generation gen
// (0: whichever is active) with status released, expired, fenced or revoked,
// at time at. ErrLeaseNotActive when there is no such active lease.
func EndVPNLease(ctx context.Context, q Querier, connID string, gen int64, status string, at time.Time, reason, by string) (VPNLease, error) {
	l, err := scanVPNLease(q.QueryRow(ctx, `UPDATE vpn_connection_leases SET status = $3, ended_at = $4, end_reason = $5, ended_by = $6
		WHERE connection_id = rap_uuid($1) AND status = 'active' AND ($2 = 0 OR generation = $2)
		RETURNING `+vpnLeaseCols, connID, gen, status, at, reason, by))
	if errors.Is(err, ErrNotFound) {
		return l, ErrLeaseNotActive
	}
	return l, err
}

// GetVPNLease returns a connection's lease of generation gen (any status).
func GetVPNLease(ctx context.Context, q Querier, connID string, gen int64) (VPNLease, error) {
	return scanVPNLease(q.QueryRow(ctx, `SELECT `+vpnLeaseCols+` FROM vpn_connection_leases WHERE connection_id = rap_uuid($1) AND generation = $2`, connID, gen))
}

// ListVPNLeases lists a connection's lease history, newest first.
func ListVPNLeases(ctx context.Context, q Querier, connID string, p Page) ([]VPNLease, error) {
	lim, off := p.norm()
	return collect(ctx, q, scanVPNLease, `SELECT `+vpnLeaseCols+` FROM vpn_connection_leases WHERE connection_id = rap_uuid($1)
		ORDER BY generation DESC LIMIT $2 OFFSET $3`, connID, lim, off)
}

// ExpiredVPNLeases lists active leases whose expiry is at or before now
// (oldest first, at most limit): the reclaimer's work list.
func ExpiredVPNLeases(ctx context.Context, q Querier, now time.Time, limit int) ([]VPNLease, error) {
	return collect(ctx, q, scanVPNLease, `SELECT `+vpnLeaseCols+` FROM vpn_connection_leases WHERE status = 'active' AND expires_at <= $1
		ORDER BY expires_at LIMIT $2`, now, limit)
}

// VPNEligibility is what the database says about a node's eligibility to own
// a connection's lease (spec C18B).
type VPNEligibility struct {
	// ActiveMember: the node has an active membership in the connection's cluster.
	ActiveMember bool
	// Allowed: the node is in the connection's allowed-node list.
	Allowed bool
	// Role: the node has an active vpn-exit or vpn-connector assignment in
	// the cluster (for the connection's organization, or for none).
	Role bool
}

// Eligible reports whether every condition holds.
func (e VPNEligibility) Eligible() bool { return e.ActiveMember && e.Allowed && e.Role }

// VPNNodeEligibility reads a node's eligibility for a connection.
func VPNNodeEligibility(ctx context.Context, q Querier, c VPNConnection, nodeID string) (VPNEligibility, error) {
	var e VPNEligibility
	err := q.QueryRow(ctx, `SELECT
		EXISTS (SELECT 1 FROM cluster_memberships WHERE cluster_id = rap_uuid($1) AND node_id = rap_uuid($3) AND membership_status = 'active'),
		EXISTS (SELECT 1 FROM vpn_connection_allowed_nodes WHERE connection_id = rap_uuid($2) AND node_id = rap_uuid($3)),
		EXISTS (SELECT 1 FROM node_role_assignments WHERE cluster_id = rap_uuid($1) AND node_id = rap_uuid($3) AND status = 'active'
			AND role IN ('vpn-exit', 'vpn-connector') AND (organization_id IS NULL OR organization_id::text IS NOT DISTINCT FROM $4))`,
		c.ClusterID, c.ID, nodeID, c.OrganizationID).Scan(&e.ActiveMember, &e.Allowed, &e.Role)
	return e, mapErr(err)
}

// VisibleVPNConnections lists the connections of a cluster that a node may
// see (spec C18C): those it is an eligible candidate for (active member,
// allowed, with a VPN role) and those whose active lease it owns.
func VisibleVPNConnections(ctx context.Context, q Querier, clusterID, nodeID string) ([]VPNConnection, error) {
	return collect(ctx, q, scanVPNConn, `SELECT `+vpnConnCols+` FROM vpn_connections c
		WHERE c.cluster_id = rap_uuid($1) AND (
			EXISTS (SELECT 1 FROM vpn_connection_leases l WHERE l.connection_id = c.id AND l.status = 'active' AND l.owner_node_id = rap_uuid($2))
			OR (EXISTS (SELECT 1 FROM vpn_connection_allowed_nodes a WHERE a.connection_id = c.id AND a.node_id = rap_uuid($2))
				AND EXISTS (SELECT 1 FROM cluster_memberships m WHERE m.cluster_id = c.cluster_id AND m.node_id = rap_uuid($2) AND m.membership_status = 'active')
				AND EXISTS (SELECT 1 FROM node_role_assignments r WHERE r.cluster_id = c.cluster_id AND r.node_id = rap_uuid($2) AND r.status = 'active'
					AND r.role IN ('vpn-exit', 'vpn-connector') AND (r.organization_id IS NULL OR r.organization_id IS NOT DISTINCT FROM c.organization_id))))
		ORDER BY c.name, c.id`, clusterID, nodeID)
}

// vpnRoleOrg is the SQL condition of an active role assignment r of node $2
// that applies to connection c (its organization, or none).
const vpnRoleOrg = `r.cluster_id = c.cluster_id AND r.status = 'active' AND (r.organization_id IS NULL OR r.organization_id IS NOT DISTINCT FROM c.organization_id)`

// VPNNodeHasExitRole reports whether a node has an active vpn-exit role that
// applies to the connection: its data-path part is then exit, else connector.
func VPNNodeHasExitRole(ctx context.Context, q Querier, connID, nodeID string) (bool, error) {
	var ok bool
	err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM vpn_connections c JOIN node_role_assignments r ON `+vpnRoleOrg+`
		WHERE c.id = rap_uuid($1) AND r.node_id = rap_uuid($2) AND r.role = 'vpn-exit')`, connID, nodeID).Scan(&ok)
	return ok, mapErr(err)
}

// VPNConnectorNodes lists a connection's connector nodes (sorted): allowed,
// active members with an applicable vpn-connector role and no vpn-exit role.
func VPNConnectorNodes(ctx context.Context, q Querier, connID string) ([]string, error) {
	return collect(ctx, q, func(r scanner) (string, error) {
		var id string
		return id, mapErr(r.Scan(&id))
	}, `SELECT a.node_id::text FROM vpn_connection_allowed_nodes a JOIN vpn_connections c ON c.id = a.connection_id
		WHERE c.id = rap_uuid($1)
		AND EXISTS (SELECT 1 FROM cluster_memberships m WHERE m.cluster_id = c.cluster_id AND m.node_id = a.node_id AND m.membership_status = 'active')
		AND EXISTS (SELECT 1 FROM node_role_assignments r WHERE r.node_id = a.node_id AND r.role = 'vpn-connector' AND `+vpnRoleOrg+`)
		AND NOT EXISTS (SELECT 1 FROM node_role_assignments r WHERE r.node_id = a.node_id AND r.role = 'vpn-exit' AND `+vpnRoleOrg+`)
		ORDER BY a.node_id`, connID)
}

// VPNStatusReport is one agent report about an assignment.
type VPNStatusReport struct {
	ClusterID       string    `json:"cluster_id"`
	ConnectionID    string    `json:"connection_id"`
	NodeID          string    `json:"node_id"`
	Status          string    `json:"status"`
	Detail          string    `json:"detail"`
	LeaseGeneration int64     `json:"lease_generation"`
	ReceivedAt      time.Time `json:"received_at"`
	AuthorityID     string    `json:"-"`
	// Tunnel is the agent's data-path report (JSON; kept with the latest
	// status only), nil when none.
	Tunnel json.RawMessage `json:"tunnel,omitempty"`
}

// RecordVPNStatus appends a report and makes it the node's latest for the
// connection (not fenced: agent telemetry). It returns the previous latest
// status ("" when there was none).
func RecordVPNStatus(ctx context.Context, q Querier, r VPNStatusReport) (string, error) {
	if _, err := q.Exec(ctx, `INSERT INTO vpn_assignment_status_reports (cluster_id, connection_id, node_id, status, detail, lease_generation, received_at, authority_id)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, r.ClusterID, r.ConnectionID, r.NodeID, r.Status, r.Detail, r.LeaseGeneration, r.ReceivedAt, r.AuthorityID); err != nil {
		return "", mapErr(err)
	}
	var prev *string
	err := q.QueryRow(ctx, `WITH old AS (SELECT status FROM vpn_assignment_status_latest WHERE connection_id = $2 AND node_id = $3 FOR UPDATE),
		up AS (INSERT INTO vpn_assignment_status_latest (cluster_id, connection_id, node_id, status, detail, lease_generation, received_at, tunnel)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb)
			ON CONFLICT (connection_id, node_id) DO UPDATE SET status = EXCLUDED.status, detail = EXCLUDED.detail,
				lease_generation = EXCLUDED.lease_generation, received_at = EXCLUDED.received_at, tunnel = EXCLUDED.tunnel
			WHERE vpn_assignment_status_latest.received_at <= EXCLUDED.received_at)
		SELECT (SELECT status FROM old)`, r.ClusterID, r.ConnectionID, r.NodeID, r.Status, r.Detail, r.LeaseGeneration, r.ReceivedAt, nullJSON(r.Tunnel)).Scan(&prev)
	if err != nil {
		return "", mapErr(err)
	}
	if prev == nil {
		return "", nil
	}
	return *prev, nil
}

// ListVPNStatusLatest lists the latest report of every node for a connection.
func ListVPNStatusLatest(ctx context.Context, q Querier, connID string) ([]VPNStatusReport, error) {
	return collect(ctx, q, func(r scanner) (VPNStatusReport, error) {
		var s VPNStatusReport
		var tun []byte
		err := r.Scan(&s.ClusterID, &s.ConnectionID, &s.NodeID, &s.Status, &s.Detail, &s.LeaseGeneration, &s.ReceivedAt, &tun)
		if len(tun) > 0 {
			s.Tunnel = tun
		}
		return s, mapErr(err)
	}, `SELECT cluster_id::text, connection_id::text, node_id::text, status, detail, lease_generation, received_at, tunnel
		FROM vpn_assignment_status_latest WHERE connection_id = rap_uuid($1) ORDER BY node_id`, connID)
}

// nullJSON is nil (SQL NULL) for an empty document, else its text.
func nullJSON(b json.RawMessage) any {
	if len(b) == 0 {
		return nil
	}
	return string(b)
}
