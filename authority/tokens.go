package authority

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rap-fabric/core/domain"
	"github.com/rap-fabric/core/jointoken"
	"github.com/rap-fabric/core/store"
)

// Join token limits.
const (
	DefaultTokenTTL = 15 * time.Minute
	MaxTokenTTL     = 24 * time.Hour
)

// CreateTokenRequest is the input of CreateJoinToken.
type CreateTokenRequest struct {
	Cluster      string        `json:"cluster"`
	TTL          time.Duration `json:"-"`
	TTLSeconds   int64         `json:"ttl_seconds"`
	MaxUses      int           `json:"max_uses"`
	Description  string        `json:"description"`
	AllowedRoles []domain.Role `json:"allowed_roles"`
	// AutoApprove marks a platform-managed bootstrap token: its join requests
	// are approved without review. Off by default.
	AutoApprove bool `json:"auto_approve"`
}

// TokenScope is the scope stored with a token.
type TokenScope struct {
	AllowedRoles []domain.Role `json:"allowed_roles,omitempty"`
}

// CreatedToken is returned once, at creation: the only time the secret exists
// outside the operator's hands.
type CreatedToken struct {
	store.JoinToken
	Token string `json:"token"`
	CAPin string `json:"ca_pin"`
}

// CreateJoinToken makes a short-lived join token scoped to one cluster (fenced).
func (a *Authority) CreateJoinToken(ctx context.Context, actor Actor, req CreateTokenRequest, idemKey string) (CreatedToken, error) {
	if req.TTL == 0 && req.TTLSeconds != 0 {
		req.TTL = time.Duration(req.TTLSeconds) * time.Second
	}
	if req.TTL == 0 {
		req.TTL = DefaultTokenTTL
	}
	if req.TTL < time.Minute || req.TTL > MaxTokenTTL {
		return CreatedToken{}, Errf(CodeInvalid, "ttl must be between 1m and 24h")
	}
	if req.MaxUses == 0 {
		req.MaxUses = 1
	}
	if req.MaxUses < 1 || req.MaxUses > 10000 {
		return CreatedToken{}, Errf(CodeInvalid, "max_uses must be between 1 and 10000")
	}
	if len(req.Description) > 500 {
		return CreatedToken{}, Errf(CodeInvalid, "description must be at most 500 characters")
	}
	for _, r := range req.AllowedRoles {
		if !r.Valid() {
			return CreatedToken{}, Errf(CodeInvalid, "unknown role %q", r)
		}
	}
	if req.AutoApprove && (strings.TrimSpace(req.Cluster) == "" || len(req.AllowedRoles) == 0) {
		// A bootstrap token approves without review: what it may admit must
		// be written down — the cluster it is for and the roles its nodes may
		// request (a request outside them is refused).
		return CreatedToken{}, Errf(CodeInvalid, "an auto-approve (bootstrap) token must name its cluster and its allowed_roles")
	}
	c, err := a.GetCluster(ctx, req.Cluster)
	if err != nil {
		return CreatedToken{}, err
	}
	if c.Status != "active" {
		return CreatedToken{}, Errf(CodeInvalid, "cluster %s is %s", c.Slug, c.Status)
	}
	tok, err := jointoken.New(a.cfg.Rand)
	if err != nil {
		return CreatedToken{}, &Error{Code: CodeInternal, Message: "randomness failed", Err: err}
	}
	scope, _ := json.Marshal(TokenScope{AllowedRoles: req.AllowedRoles})
	now := a.cfg.Clock()
	rec, err := Fenced(ctx, a, Op{Action: "join_token.create", Actor: actor, ClusterID: c.ID, TargetKind: "join_token", TargetID: tok.ID, IdempotencyKey: idemKey,
		Details: map[string]any{"ttl_seconds": int64(req.TTL.Seconds()), "max_uses": req.MaxUses, "auto_approve": req.AutoApprove, "allowed_roles": req.AllowedRoles}},
		func(tx pgx.Tx) (store.JoinToken, error) {
			return store.InsertToken(ctx, tx, store.JoinToken{ID: tok.ID, ClusterID: c.ID, SecretHash: jointoken.Hash(tok), Description: strings.TrimSpace(req.Description),
				Scope: scope, AutoApprove: req.AutoApprove, ExpiresAt: now.Add(req.TTL), MaxUses: req.MaxUses, CreatedBy: actor.ID, CreatedAt: now})
		})
	if err != nil {
		return CreatedToken{}, err
	}
	if rec.ID != tok.ID {
		// An idempotent replay: the secret of the first response is not stored
		// anywhere, so it cannot be shown again.
		return CreatedToken{JoinToken: rec, CAPin: c.CAPin}, nil
	}
	return CreatedToken{JoinToken: rec, Token: tok.String(), CAPin: c.CAPin}, nil
}

// ListJoinTokens lists tokens (never their secrets).
func (a *Authority) ListJoinTokens(ctx context.Context, cluster string, p store.Page) ([]store.JoinToken, error) {
	clusterID := ""
	if cluster != "" {
		c, err := a.GetCluster(ctx, cluster)
		if err != nil {
			return nil, err
		}
		clusterID = c.ID
	}
	ts, err := store.ListTokens(ctx, a.db.Pool, clusterID, p)
	return ts, asErrorOrNil(err)
}

// GetJoinToken shows one token (never its secret).
func (a *Authority) GetJoinToken(ctx context.Context, id string) (store.JoinToken, error) {
	t, err := store.GetToken(ctx, a.db.Pool, id)
	return t, asErrorOrNil(err)
}

// RevokeJoinToken revokes a token at once (fenced).
func (a *Authority) RevokeJoinToken(ctx context.Context, actor Actor, id, idemKey string) (store.JoinToken, error) {
	t, err := store.GetToken(ctx, a.db.Pool, id)
	if err != nil {
		return store.JoinToken{}, asError(err)
	}
	return Fenced(ctx, a, Op{Action: "join_token.revoke", Actor: actor, ClusterID: t.ClusterID, TargetKind: "join_token", TargetID: id, IdempotencyKey: idemKey},
		func(tx pgx.Tx) (store.JoinToken, error) { return store.RevokeToken(ctx, tx, id) })
}

func asErrorOrNil(err error) error {
	if err == nil {
		return nil
	}
	return asError(err)
}
