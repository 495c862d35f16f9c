package store

import (
	"context"
	"time"
)

// Organization is a tenant.
type Organization struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Slug      string    `json:"slug"`
	Status    string    `json:"status"`
	CreatedAt time.Time `json:"created_at"`
}

const orgCols = `id::text, name, slug, status, created_at`

func scanOrg(row scanner) (Organization, error) {
	var o Organization
	err := row.Scan(&o.ID, &o.Name, &o.Slug, &o.Status, &o.CreatedAt)
	return o, mapErr(err)
}

// InsertOrganization creates an organization (fenced).
func InsertOrganization(ctx context.Context, q Querier, o Organization) (Organization, error) {
	return scanOrg(q.QueryRow(ctx, `INSERT INTO organizations (id, name, slug) VALUES ($1, $2, $3) RETURNING `+orgCols, o.ID, o.Name, o.Slug))
}

// GetOrganization finds an organization by id or slug.
func GetOrganization(ctx context.Context, q Querier, idOrSlug string) (Organization, error) {
	return scanOrg(q.QueryRow(ctx, `SELECT `+orgCols+` FROM organizations WHERE id = rap_uuid($1) OR slug = $1`, idOrSlug))
}

// ListOrganizations lists organizations by name.
func ListOrganizations(ctx context.Context, q Querier, p Page) ([]Organization, error) {
	l, o := p.norm()
	return collect(ctx, q, scanOrg, `SELECT `+orgCols+` FROM organizations ORDER BY name LIMIT $1 OFFSET $2`, l, o)
}
