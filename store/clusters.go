package store

import (
	"context"
	"encoding/json"
	"time"
)

// Cluster is a row of clusters: a bounded control and trust domain.
type Cluster struct {
	ID        string          `json:"id"`
	Name      string          `json:"name"`
	Slug      string          `json:"slug"`
	Status    string          `json:"status"`
	Region    string          `json:"region"`
	Metadata  json.RawMessage `json:"metadata"`
	CAKeyID   string          `json:"ca_key_id"`
	CACertDER []byte          `json:"-"`
	CreatedAt time.Time       `json:"created_at"`
	UpdatedAt time.Time       `json:"updated_at"`
}

const clusterCols = `id::text, name, slug, status, region, metadata, ca_key_id, ca_cert_der, created_at, updated_at`

func scanCluster(row scanner) (Cluster, error) {
	var c Cluster
	err := row.Scan(&c.ID, &c.Name, &c.Slug, &c.Status, &c.Region, &c.Metadata, &c.CAKeyID, &c.CACertDER, &c.CreatedAt, &c.UpdatedAt)
	return c, mapErr(err)
}

// InsertCluster creates a cluster (fenced).
func InsertCluster(ctx context.Context, q Querier, c Cluster) (Cluster, error) {
	if len(c.Metadata) == 0 {
		c.Metadata = json.RawMessage(`{}`)
	}
	return scanCluster(q.QueryRow(ctx, `INSERT INTO clusters (id, name, slug, region, metadata, ca_key_id, ca_cert_der)
		VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING `+clusterCols,
		c.ID, c.Name, c.Slug, c.Region, c.Metadata, c.CAKeyID, c.CACertDER))
}

// GetCluster finds a cluster by id or slug.
func GetCluster(ctx context.Context, q Querier, idOrSlug string) (Cluster, error) {
	return scanCluster(q.QueryRow(ctx, `SELECT `+clusterCols+` FROM clusters WHERE id = rap_uuid($1) OR slug = $1`, idOrSlug))
}

// ListClusters lists clusters by name.
func ListClusters(ctx context.Context, q Querier, p Page) ([]Cluster, error) {
	l, o := p.norm()
	return collect(ctx, q, scanCluster, `SELECT `+clusterCols+` FROM clusters ORDER BY name LIMIT $1 OFFSET $2`, l, o)
}

// SetClusterStatus changes a cluster's status (fenced).
func SetClusterStatus(ctx context.Context, q Querier, id, status string) (Cluster, error) {
	return scanCluster(q.QueryRow(ctx, `UPDATE clusters SET status = $2, updated_at = now() WHERE id = $1 RETURNING `+clusterCols, id, status))
}

// SetClusterCA records the cluster CA root that new join tokens pin (fenced):
// after a CA rotation's old root is retired, the new one.
func SetClusterCA(ctx context.Context, q Querier, id, keyID string, certDER []byte) (Cluster, error) {
	return scanCluster(q.QueryRow(ctx, `UPDATE clusters SET ca_key_id = $2, ca_cert_der = $3, updated_at = now() WHERE id = $1 RETURNING `+clusterCols, id, keyID, certDER))
}

// NodeCertificate is the newest good certificate of one active member.
type NodeCertificate struct {
	NodeID string
	Serial string
	DER    []byte
}

// CurrentNodeCertificates returns, per active member of a cluster, its newest
// unrevoked and unexpired certificate.
func CurrentNodeCertificates(ctx context.Context, q Querier, clusterID string) ([]NodeCertificate, error) {
	return collect(ctx, q, func(row scanner) (NodeCertificate, error) {
		var c NodeCertificate
		return c, mapErr(row.Scan(&c.NodeID, &c.Serial, &c.DER))
	}, `SELECT DISTINCT ON (c.node_id) c.node_id::text, c.serial, c.der FROM node_certificates c
		JOIN cluster_memberships m ON m.cluster_id = c.cluster_id AND m.node_id = c.node_id
		WHERE c.cluster_id = $1 AND m.membership_status = 'active' AND c.revoked_at IS NULL AND c.not_after > now()
		ORDER BY c.node_id, c.issued_at DESC`, clusterID)
}
