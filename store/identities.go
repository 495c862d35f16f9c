package store

import (
	"context"
	"time"
)

// Identity is a node's public identity material in one cluster. It never holds a
// private key: the schema has no column that could.
type Identity struct {
	ID                string     `json:"id"`
	ClusterID         string     `json:"cluster_id"`
	NodeID            string     `json:"node_id"`
	PublicKey         []byte     `json:"public_key"`
	NoisePublicKey    []byte     `json:"noise_public_key"`
	CertificateSerial *string    `json:"certificate_serial,omitempty"`
	NotBefore         *time.Time `json:"certificate_not_before,omitempty"`
	NotAfter          *time.Time `json:"certificate_not_after,omitempty"`
	Status            string     `json:"identity_status"`
	CreatedAt         time.Time  `json:"created_at"`
	RotatedAt         *time.Time `json:"rotated_at,omitempty"`
	RevokedAt         *time.Time `json:"revoked_at,omitempty"`
	RevocationReason  *string    `json:"revocation_reason,omitempty"`
}

const identityCols = `id::text, cluster_id::text, node_id::text, public_key, noise_public_key, certificate_serial, certificate_not_before, certificate_not_after, identity_status, created_at, rotated_at, revoked_at, revocation_reason`

func scanIdentity(row scanner) (Identity, error) {
	var i Identity
	err := row.Scan(&i.ID, &i.ClusterID, &i.NodeID, &i.PublicKey, &i.NoisePublicKey, &i.CertificateSerial, &i.NotBefore, &i.NotAfter, &i.Status, &i.CreatedAt, &i.RotatedAt, &i.RevokedAt, &i.RevocationReason)
	return i, mapErr(err)
}

// InsertIdentity records a new active identity (fenced).
func InsertIdentity(ctx context.Context, q Querier, i Identity) (Identity, error) {
	return scanIdentity(q.QueryRow(ctx, `INSERT INTO node_identities (id, cluster_id, node_id, public_key, noise_public_key)
		VALUES ($1, $2, $3, $4, $5) RETURNING `+identityCols, i.ID, i.ClusterID, i.NodeID, i.PublicKey, i.NoisePublicKey))
}

// ActiveIdentity returns the active identity of a node in a cluster.
func ActiveIdentity(ctx context.Context, q Querier, clusterID, nodeID string) (Identity, error) {
	return scanIdentity(q.QueryRow(ctx, `SELECT `+identityCols+` FROM node_identities WHERE cluster_id = rap_uuid($1) AND node_id = rap_uuid($2) AND identity_status = 'active'`, clusterID, nodeID))
}

// ListIdentities lists every identity (any state) of a node in a cluster, newest first.
func ListIdentities(ctx context.Context, q Querier, clusterID, nodeID string) ([]Identity, error) {
	return collect(ctx, q, scanIdentity, `SELECT `+identityCols+` FROM node_identities WHERE cluster_id = rap_uuid($1) AND node_id = rap_uuid($2) ORDER BY created_at DESC`, clusterID, nodeID)
}

// SetIdentityCertificate records the certificate currently issued to an identity (fenced).
func SetIdentityCertificate(ctx context.Context, q Querier, identityID, serial string, notBefore, notAfter time.Time) error {
	tag, err := q.Exec(ctx, `UPDATE node_identities SET certificate_serial = $2, certificate_not_before = $3, certificate_not_after = $4 WHERE id = $1 AND identity_status = 'active'`,
		identityID, serial, notBefore, notAfter)
	if err != nil {
		return mapErr(err)
	}
	if tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return nil
}

// MarkIdentityRotated retires an identity after a key rotation (fenced).
func MarkIdentityRotated(ctx context.Context, q Querier, identityID string) error {
	_, err := q.Exec(ctx, `UPDATE node_identities SET identity_status = 'rotated', rotated_at = now() WHERE id = $1 AND identity_status = 'active'`, identityID)
	return mapErr(err)
}

// RevokeIdentities revokes every non-revoked identity of a node in a cluster and
// its certificates, returning how many identities changed (fenced).
func RevokeIdentities(ctx context.Context, q Querier, clusterID, nodeID, reason string) (int64, error) {
	tag, err := q.Exec(ctx, `UPDATE node_identities SET identity_status = 'revoked', revoked_at = now(), revocation_reason = $3
		WHERE cluster_id = $1 AND node_id = $2 AND identity_status <> 'revoked'`, clusterID, nodeID, reason)
	if err != nil {
		return 0, mapErr(err)
	}
	if _, err := q.Exec(ctx, `UPDATE node_certificates SET revoked_at = now() WHERE cluster_id = $1 AND node_id = $2 AND revoked_at IS NULL`, clusterID, nodeID); err != nil {
		return 0, mapErr(err)
	}
	return tag.RowsAffected(), nil
}

// Certificate is an issued node certificate.
type Certificate struct {
	Serial     string     `json:"serial"`
	ClusterID  string     `json:"cluster_id"`
	NodeID     string     `json:"node_id"`
	IdentityID string     `json:"identity_id"`
	NotBefore  time.Time  `json:"not_before"`
	NotAfter   time.Time  `json:"not_after"`
	DER        []byte     `json:"-"`
	IssuedAt   time.Time  `json:"issued_at"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
}

const certCols = `serial, cluster_id::text, node_id::text, identity_id::text, not_before, not_after, der, issued_at, revoked_at`

func scanCert(row scanner) (Certificate, error) {
	var c Certificate
	err := row.Scan(&c.Serial, &c.ClusterID, &c.NodeID, &c.IdentityID, &c.NotBefore, &c.NotAfter, &c.DER, &c.IssuedAt, &c.RevokedAt)
	return c, mapErr(err)
}

// InsertCertificate records an issued certificate (fenced).
func InsertCertificate(ctx context.Context, q Querier, c Certificate) error {
	_, err := q.Exec(ctx, `INSERT INTO node_certificates (serial, cluster_id, node_id, identity_id, not_before, not_after, der) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		c.Serial, c.ClusterID, c.NodeID, c.IdentityID, c.NotBefore, c.NotAfter, c.DER)
	return mapErr(err)
}

// GetCertificate finds a certificate by serial.
func GetCertificate(ctx context.Context, q Querier, serial string) (Certificate, error) {
	return scanCert(q.QueryRow(ctx, `SELECT `+certCols+` FROM node_certificates WHERE serial = $1`, serial))
}

// ListCertificates lists a cluster's certificates, newest first.
func ListCertificates(ctx context.Context, q Querier, clusterID string, p Page) ([]Certificate, error) {
	l, o := p.norm()
	return collect(ctx, q, scanCert, `SELECT `+certCols+` FROM node_certificates WHERE cluster_id = rap_uuid($1) ORDER BY issued_at DESC LIMIT $2 OFFSET $3`, clusterID, l, o)
}

// Revocation is one entry of a cluster's revocation list.
type Revocation struct {
	NodeID    string    `json:"node_id"`
	PublicKey []byte    `json:"public_key"`
	NoiseKey  []byte    `json:"noise_public_key"`
	RevokedAt time.Time `json:"revoked_at"`
}

// ListRevocations returns the revoked identities of a cluster.
func ListRevocations(ctx context.Context, q Querier, clusterID string) ([]Revocation, error) {
	return collect(ctx, q, func(r scanner) (Revocation, error) {
		var v Revocation
		err := r.Scan(&v.NodeID, &v.PublicKey, &v.NoiseKey, &v.RevokedAt)
		return v, mapErr(err)
	}, `SELECT node_id::text, public_key, noise_public_key, revoked_at FROM node_identities WHERE cluster_id = rap_uuid($1) AND identity_status = 'revoked' ORDER BY revoked_at`, clusterID)
}

// CertStanding is what decides whether a presented node certificate is still
// good: its own revocation, its identity's state and its membership's state.
type CertStanding struct {
	Revoked          bool
	IdentityStatus   string
	MembershipStatus string
}

// CertificateStanding reads the standing of a certificate for the given
// cluster and node in one query (ErrNotFound when it is not theirs).
func CertificateStanding(ctx context.Context, q Querier, serial, clusterID, nodeID string) (CertStanding, error) {
	var s CertStanding
	err := q.QueryRow(ctx, `SELECT c.revoked_at IS NOT NULL, i.identity_status, m.membership_status
		FROM node_certificates c
		JOIN node_identities i ON i.id = c.identity_id
		JOIN cluster_memberships m ON m.cluster_id = c.cluster_id AND m.node_id = c.node_id
		WHERE c.serial = $1 AND c.cluster_id = rap_uuid($2) AND c.node_id = rap_uuid($3)`, serial, clusterID, nodeID).Scan(&s.Revoked, &s.IdentityStatus, &s.MembershipStatus)
	return s, mapErr(err)
}
