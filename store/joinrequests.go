package store

import (
	"context"
	"encoding/json"
	"time"
)

// JoinRequest is a node-agent's request to join a cluster, awaiting review.
type JoinRequest struct {
	ID                   string          `json:"id"`
	ClusterID            string          `json:"cluster_id"`
	TokenID              string          `json:"token_id"`
	NodeName             string          `json:"node_name"`
	NodeFingerprint      string          `json:"node_fingerprint"`
	PublicKey            []byte          `json:"public_key"`
	NoisePublicKey       []byte          `json:"noise_public_key"`
	ReportedCapabilities json.RawMessage `json:"reported_capabilities"`
	ReportedFacts        json.RawMessage `json:"reported_facts"`
	RequestedRoles       json.RawMessage `json:"requested_roles"`
	Status               string          `json:"status"`
	PollSecretHash       []byte          `json:"-"`
	SourceAddr           string          `json:"source_addr"`
	CreatedAt            time.Time       `json:"created_at"`
	ExpiresAt            time.Time       `json:"expires_at"`
	ReviewedBy           *string         `json:"reviewed_by,omitempty"`
	ReviewedAt           *time.Time      `json:"reviewed_at,omitempty"`
	ApprovedNodeID       *string         `json:"approved_node_id,omitempty"`
	RejectionReason      *string         `json:"rejection_reason,omitempty"`
}

const joinCols = `id::text, cluster_id::text, token_id, node_name, node_fingerprint, public_key, noise_public_key, reported_capabilities, reported_facts, requested_roles, status, poll_secret_hash, source_addr, created_at, expires_at, reviewed_by, reviewed_at, approved_node_id::text, rejection_reason`

func scanJoin(row scanner) (JoinRequest, error) {
	var j JoinRequest
	err := row.Scan(&j.ID, &j.ClusterID, &j.TokenID, &j.NodeName, &j.NodeFingerprint, &j.PublicKey, &j.NoisePublicKey, &j.ReportedCapabilities, &j.ReportedFacts, &j.RequestedRoles, &j.Status, &j.PollSecretHash, &j.SourceAddr, &j.CreatedAt, &j.ExpiresAt, &j.ReviewedBy, &j.ReviewedAt, &j.ApprovedNodeID, &j.RejectionReason)
	return j, mapErr(err)
}

// InsertJoinRequest stores a pending join request (fenced). A second request
// with the same public key for the same cluster is refused with ErrConflict.
func InsertJoinRequest(ctx context.Context, q Querier, j JoinRequest) (JoinRequest, error) {
	return scanJoin(q.QueryRow(ctx, `INSERT INTO node_join_requests (id, cluster_id, token_id, node_name, node_fingerprint, public_key, noise_public_key,
		reported_capabilities, reported_facts, requested_roles, poll_secret_hash, source_addr, created_at, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING `+joinCols,
		j.ID, j.ClusterID, j.TokenID, j.NodeName, j.NodeFingerprint, j.PublicKey, j.NoisePublicKey,
		j.ReportedCapabilities, j.ReportedFacts, j.RequestedRoles, j.PollSecretHash, j.SourceAddr, j.CreatedAt, j.ExpiresAt))
}

// GetJoinRequest finds a join request by id.
func GetJoinRequest(ctx context.Context, q Querier, id string) (JoinRequest, error) {
	return scanJoin(q.QueryRow(ctx, `SELECT `+joinCols+` FROM node_join_requests WHERE id = rap_uuid($1)`, id))
}

// LockJoinRequest reads a join request FOR UPDATE so one review wins.
func LockJoinRequest(ctx context.Context, q Querier, id string) (JoinRequest, error) {
	return scanJoin(q.QueryRow(ctx, `SELECT `+joinCols+` FROM node_join_requests WHERE id = rap_uuid($1) FOR UPDATE`, id))
}

// ListJoinRequests lists join requests, filtered by cluster and status when not "".
func ListJoinRequests(ctx context.Context, q Querier, clusterID, status string, p Page) ([]JoinRequest, error) {
	l, o := p.norm()
	return collect(ctx, q, scanJoin, `SELECT `+joinCols+` FROM node_join_requests
		WHERE ($1 = '' OR cluster_id = rap_uuid($1)) AND ($2 = '' OR status = $2) ORDER BY created_at DESC LIMIT $3 OFFSET $4`, clusterID, status, l, o)
}

// ApproveJoinRequest marks a pending request approved for nodeID (fenced).
func ApproveJoinRequest(ctx context.Context, q Querier, id, reviewer, nodeID string) error {
	tag, err := q.Exec(ctx, `UPDATE node_join_requests SET status = 'approved', reviewed_by = $2, reviewed_at = now(), approved_node_id = $3 WHERE id = $1 AND status = 'pending'`, id, reviewer, nodeID)
	if err != nil {
		return mapErr(err)
	}
	if tag.RowsAffected() == 0 {
		return ErrConflict
	}
	return nil
}

// RejectJoinRequest marks a pending request rejected (fenced).
func RejectJoinRequest(ctx context.Context, q Querier, id, reviewer, reason string) error {
	tag, err := q.Exec(ctx, `UPDATE node_join_requests SET status = 'rejected', reviewed_by = $2, reviewed_at = now(), rejection_reason = $3 WHERE id = $1 AND status = 'pending'`, id, reviewer, reason)
	if err != nil {
		return mapErr(err)
	}
	if tag.RowsAffected() == 0 {
		return ErrConflict
	}
	return nil
}

// ExpireJoinRequest marks a pending request past its expiry as expired (fenced).
func ExpireJoinRequest(ctx context.Context, q Querier, id string) error {
	_, err := q.Exec(ctx, `UPDATE node_join_requests SET status = 'expired' WHERE id = $1 AND status = 'pending'`, id)
	return mapErr(err)
}
