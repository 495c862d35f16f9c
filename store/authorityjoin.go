package store

import (
	"context"
	"time"
)

// AuthorityJoinToken is a stored authority join token (migration 015): its
// secret exists only as a hash. MemberID and MemberKey are set by its first
// use (BindAuthorityJoinToken), JoinedAt when the join completed.
type AuthorityJoinToken struct {
	ID          string
	SecretHash  []byte
	Description string
	CreatedBy   string
	CreatedAt   time.Time
	ExpiresAt   time.Time
	MemberID    *string
	MemberKey   []byte
	BoundAt     *time.Time
	JoinedAt    *time.Time
	RevokedAt   *time.Time
}

const authorityJoinCols = `id, secret_hash, description, created_by, created_at, expires_at, member_id, member_key, bound_at, joined_at, revoked_at`

func scanAuthorityJoin(row scanner) (AuthorityJoinToken, error) {
	var t AuthorityJoinToken
	err := row.Scan(&t.ID, &t.SecretHash, &t.Description, &t.CreatedBy, &t.CreatedAt, &t.ExpiresAt, &t.MemberID, &t.MemberKey, &t.BoundAt, &t.JoinedAt, &t.RevokedAt)
	return t, mapErr(err)
}

// InsertAuthorityJoinToken stores a new token (fenced).
func InsertAuthorityJoinToken(ctx context.Context, q Querier, t AuthorityJoinToken) (AuthorityJoinToken, error) {
	return scanAuthorityJoin(q.QueryRow(ctx, `INSERT INTO authority_join_tokens (id, secret_hash, description, created_by, created_at, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6) RETURNING `+authorityJoinCols, t.ID, t.SecretHash, t.Description, t.CreatedBy, t.CreatedAt, t.ExpiresAt))
}

// GetAuthorityJoinToken finds a token by id.
func GetAuthorityJoinToken(ctx context.Context, q Querier, id string) (AuthorityJoinToken, error) {
	return scanAuthorityJoin(q.QueryRow(ctx, `SELECT `+authorityJoinCols+` FROM authority_join_tokens WHERE id = $1`, id))
}

// ListAuthorityJoinTokens lists tokens, newest first.
func ListAuthorityJoinTokens(ctx context.Context, q Querier, p Page) ([]AuthorityJoinToken, error) {
	l, o := p.norm()
	return collect(ctx, q, scanAuthorityJoin, `SELECT `+authorityJoinCols+` FROM authority_join_tokens ORDER BY created_at DESC, id LIMIT $1 OFFSET $2`, l, o)
}

// BindAuthorityJoinToken binds a live token to the authority memberID with
// Raft member key key, in one statement (fenced): it succeeds for an unbound
// token and again for the same id and key (a retried join), never for
// another authority, and never once the token is joined, revoked or expired
// at now. ErrNotFound means it did not bind.
func BindAuthorityJoinToken(ctx context.Context, q Querier, id, memberID string, key []byte, now time.Time) (AuthorityJoinToken, error) {
	return scanAuthorityJoin(q.QueryRow(ctx, `UPDATE authority_join_tokens
		SET member_id = $2, member_key = $3, bound_at = coalesce(bound_at, $4)
		WHERE id = $1 AND joined_at IS NULL AND revoked_at IS NULL AND expires_at > $4
		  AND (member_id IS NULL OR (member_id = $2 AND member_key = $3))
		RETURNING `+authorityJoinCols, id, memberID, key, now))
}

// CompleteAuthorityJoinToken marks a token bound to memberID joined (fenced);
// ErrNotFound when it is not bound to memberID or no longer live at now.
func CompleteAuthorityJoinToken(ctx context.Context, q Querier, id, memberID string, now time.Time) (AuthorityJoinToken, error) {
	return scanAuthorityJoin(q.QueryRow(ctx, `UPDATE authority_join_tokens SET joined_at = $3
		WHERE id = $1 AND member_id = $2 AND joined_at IS NULL AND revoked_at IS NULL AND expires_at > $3
		RETURNING `+authorityJoinCols, id, memberID, now))
}

// RevokeAuthorityJoinToken revokes a token; revoking twice is not an error (fenced).
func RevokeAuthorityJoinToken(ctx context.Context, q Querier, id string, now time.Time) (AuthorityJoinToken, error) {
	return scanAuthorityJoin(q.QueryRow(ctx, `UPDATE authority_join_tokens SET revoked_at = coalesce(revoked_at, $2) WHERE id = $1 RETURNING `+authorityJoinCols, id, now))
}
