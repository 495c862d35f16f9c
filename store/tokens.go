package store

import (
	"context"
	"encoding/json"
	"time"
)

// JoinToken is a stored join token: its secret exists only as a hash.
type JoinToken struct {
	ID          string          `json:"id"`
	ClusterID   string          `json:"cluster_id"`
	SecretHash  []byte          `json:"-"`
	Description string          `json:"description"`
	Scope       json.RawMessage `json:"scope"`
	AutoApprove bool            `json:"auto_approve"`
	ExpiresAt   time.Time       `json:"expires_at"`
	MaxUses     int             `json:"max_uses"`
	UsedCount   int             `json:"used_count"`
	CreatedBy   string          `json:"created_by"`
	CreatedAt   time.Time       `json:"created_at"`
	RevokedAt   *time.Time      `json:"revoked_at,omitempty"`
}

const tokenCols = `id, cluster_id::text, secret_hash, description, scope, auto_approve, expires_at, max_uses, used_count, created_by, created_at, revoked_at`

func scanToken(row scanner) (JoinToken, error) {
	var t JoinToken
	err := row.Scan(&t.ID, &t.ClusterID, &t.SecretHash, &t.Description, &t.Scope, &t.AutoApprove, &t.ExpiresAt, &t.MaxUses, &t.UsedCount, &t.CreatedBy, &t.CreatedAt, &t.RevokedAt)
	return t, mapErr(err)
}

// InsertToken stores a new join token (fenced). CreatedAt is set by the caller so
// the 24 h TTL bound is checked against the same clock that set ExpiresAt.
func InsertToken(ctx context.Context, q Querier, t JoinToken) (JoinToken, error) {
	if len(t.Scope) == 0 {
		t.Scope = json.RawMessage(`{}`)
	}
	return scanToken(q.QueryRow(ctx, `INSERT INTO node_join_tokens (id, cluster_id, secret_hash, description, scope, auto_approve, expires_at, max_uses, created_by, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING `+tokenCols,
		t.ID, t.ClusterID, t.SecretHash, t.Description, t.Scope, t.AutoApprove, t.ExpiresAt, t.MaxUses, t.CreatedBy, t.CreatedAt))
}

// GetToken finds a token by id.
func GetToken(ctx context.Context, q Querier, id string) (JoinToken, error) {
	return scanToken(q.QueryRow(ctx, `SELECT `+tokenCols+` FROM node_join_tokens WHERE id = $1`, id))
}

// ListTokens lists a cluster's tokens (all clusters when clusterID is ""), newest first.
func ListTokens(ctx context.Context, q Querier, clusterID string, p Page) ([]JoinToken, error) {
	l, o := p.norm()
	return collect(ctx, q, scanToken, `SELECT `+tokenCols+` FROM node_join_tokens WHERE ($1 = '' OR cluster_id = rap_uuid($1)) ORDER BY created_at DESC LIMIT $2 OFFSET $3`, clusterID, l, o)
}

// RevokeToken revokes a token; revoking twice is not an error (fenced).
func RevokeToken(ctx context.Context, q Querier, id string) (JoinToken, error) {
	return scanToken(q.QueryRow(ctx, `UPDATE node_join_tokens SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1 RETURNING `+tokenCols, id))
}

// ConsumeToken atomically takes one use of a live token, in one statement:
// it succeeds only while used_count < max_uses, the token is unexpired at now and
// not revoked. ErrNotFound means no use was available (the caller says why by
// reading the token). The secret must be checked before calling.
func ConsumeToken(ctx context.Context, q Querier, id string, now time.Time) (JoinToken, error) {
	return scanToken(q.QueryRow(ctx, `UPDATE node_join_tokens SET used_count = used_count + 1
		WHERE id = $1 AND used_count < max_uses AND expires_at > $2 AND revoked_at IS NULL RETURNING `+tokenCols, id, now))
}
