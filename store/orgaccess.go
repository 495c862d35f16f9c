package store

// Organization access sessions (migration 017_access_sessions.sql): every
// read takes the organization id and filters by it in SQL, so another
// organization's session is indistinguishable from a missing one.

import (
	"context"
	"time"
)

// OrgAccessSession is a granted access of an organization user to one
// resource through one endpoint, until it expires or is revoked.
type OrgAccessSession struct {
	ID             string
	OrganizationID string
	UserID         string
	UserName       string
	ResourceID     string
	ResourceName   string
	EndpointID     string
	EndpointName   string
	PolicyID       string
	Status         string // active | revoked (expiry is derived from ExpiresAt)
	CreatedAt      time.Time
	ExpiresAt      time.Time
	RevokedAt      *time.Time
	RevokedBy      *string
}

const orgAccessCols = `a.id::text, a.organization_id::text, a.user_id::text, u.name, a.resource_id::text, a.resource_name, a.endpoint_id::text,
	a.endpoint_name, a.policy_id::text, a.status, a.created_at, a.expires_at, a.revoked_at, a.revoked_by`

func scanOrgAccess(row scanner) (OrgAccessSession, error) {
	var s OrgAccessSession
	err := row.Scan(&s.ID, &s.OrganizationID, &s.UserID, &s.UserName, &s.ResourceID, &s.ResourceName, &s.EndpointID, &s.EndpointName,
		&s.PolicyID, &s.Status, &s.CreatedAt, &s.ExpiresAt, &s.RevokedAt, &s.RevokedBy)
	return s, mapErr(err)
}

// InsertOrgAccessSession records a granted access session (fenced).
func InsertOrgAccessSession(ctx context.Context, q Querier, s OrgAccessSession) error {
	_, err := q.Exec(ctx, `INSERT INTO org_access_sessions (id, organization_id, user_id, resource_id, resource_name, endpoint_id, endpoint_name,
		policy_id, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		s.ID, s.OrganizationID, s.UserID, s.ResourceID, s.ResourceName, s.EndpointID, s.EndpointName, s.PolicyID, s.CreatedAt, s.ExpiresAt)
	return mapErr(err)
}

// ListOrgAccessSessions lists an organization's access sessions, newest
// first; userID, when not empty, keeps only that user's.
func ListOrgAccessSessions(ctx context.Context, q Querier, orgID, userID string, p Page) ([]OrgAccessSession, error) {
	l, o := p.norm()
	return collect(ctx, q, scanOrgAccess, `SELECT `+orgAccessCols+` FROM org_access_sessions a JOIN admin_users u ON u.id = a.user_id
		WHERE a.organization_id = rap_uuid($1) AND ($2 = '' OR a.user_id = rap_uuid($2))
		ORDER BY a.created_at DESC, a.id LIMIT $3 OFFSET $4`, orgID, userID, l, o)
}

// GetOrgAccessSession returns one access session of an organization.
func GetOrgAccessSession(ctx context.Context, q Querier, orgID, id string) (OrgAccessSession, error) {
	return scanOrgAccess(q.QueryRow(ctx, `SELECT `+orgAccessCols+` FROM org_access_sessions a JOIN admin_users u ON u.id = a.user_id
		WHERE a.organization_id = rap_uuid($1) AND a.id = rap_uuid($2)`, orgID, id))
}

// RevokeOrgAccessSession marks an active access session of an organization
// revoked (fenced); ErrNotFound when the organization has no such active
// session.
func RevokeOrgAccessSession(ctx context.Context, q Querier, orgID, id, by string, at time.Time) error {
	tag, err := q.Exec(ctx, `UPDATE org_access_sessions SET status = 'revoked', revoked_at = $3, revoked_by = $4
		WHERE organization_id = rap_uuid($1) AND id = rap_uuid($2) AND status = 'active'`, orgID, id, at, by)
	if err == nil && tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return mapErr(err)
}

// RevokeUserAccessSessions revokes every active access session of one
// account of an organization (fenced) and returns how many it revoked.
func RevokeUserAccessSessions(ctx context.Context, q Querier, orgID, userID, by string, at time.Time) (int64, error) {
	tag, err := q.Exec(ctx, `UPDATE org_access_sessions SET status = 'revoked', revoked_at = $3, revoked_by = $4
		WHERE organization_id = rap_uuid($1) AND user_id = rap_uuid($2) AND status = 'active'`, orgID, userID, at, by)
	if err != nil {
		return 0, mapErr(err)
	}
	return tag.RowsAffected(), nil
}
