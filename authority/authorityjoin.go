package authority

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rap-fabric/core/store"
)

// Authority join tokens let a new authority join the group once owners have
// MFA (owner API tokens then stop working, and a session cannot be handed to
// a process). An owner creates one with step-up; it reads
// rapmj.<id>.<secret>, lives at most MaxAuthorityJoinTTL, is stored as a hash
// only, and joins exactly one authority: its first use binds it to the
// joining authority's id and Raft member key, and the completed join kills it.
// It is accepted on the two join routes only (member certificate, add member).

// authorityJoinPrefix starts every authority join token.
const authorityJoinPrefix = "rapmj"

// Authority join token lifetimes.
const (
	// DefaultAuthorityJoinTTL is the lifetime of a token created without one.
	DefaultAuthorityJoinTTL = 15 * time.Minute
	// MaxAuthorityJoinTTL is the longest lifetime a token may have.
	MaxAuthorityJoinTTL = time.Hour
	// minAuthorityJoinTTL is the shortest.
	minAuthorityJoinTTL = time.Minute
)

// ErrBadAuthorityJoinToken is returned for an unknown, malformed, expired,
// revoked or used authority join token (which of these is not said).
var ErrBadAuthorityJoinToken = errors.New("invalid authority join token")

// AuthorityJoinToken describes an authority join token. Token (the secret) is
// set only in the answer to its creation.
type AuthorityJoinToken struct {
	ID          string     `json:"id"`
	Token       string     `json:"token,omitempty"`
	Description string     `json:"description"`
	CreatedBy   string     `json:"created_by"`
	CreatedAt   time.Time  `json:"created_at"`
	ExpiresAt   time.Time  `json:"expires_at"`
	MemberID    string     `json:"member_id,omitempty"`
	BoundAt     *time.Time `json:"bound_at,omitempty"`
	JoinedAt    *time.Time `json:"joined_at,omitempty"`
	RevokedAt   *time.Time `json:"revoked_at,omitempty"`
	// State is active, bound (in use by MemberID), joined, expired or revoked.
	State string `json:"state"`
}

func (a *Authority) authorityJoinView(t store.AuthorityJoinToken) AuthorityJoinToken {
	v := AuthorityJoinToken{ID: t.ID, Description: t.Description, CreatedBy: t.CreatedBy, CreatedAt: t.CreatedAt.UTC(), ExpiresAt: t.ExpiresAt.UTC(),
		BoundAt: t.BoundAt, JoinedAt: t.JoinedAt, RevokedAt: t.RevokedAt}
	if t.MemberID != nil {
		v.MemberID = *t.MemberID
	}
	switch {
	case t.RevokedAt != nil:
		v.State = "revoked"
	case t.JoinedAt != nil:
		v.State = "joined"
	case !t.ExpiresAt.After(a.cfg.Clock()):
		v.State = "expired"
	case t.MemberID != nil:
		v.State = "bound"
	default:
		v.State = "active"
	}
	return v
}

func authorityJoinHash(id string, secret []byte) []byte {
	h := sha256.New()
	h.Write([]byte("rap-authority-join-token-v1\x00" + id + "\x00"))
	h.Write(secret)
	return h.Sum(nil)
}

// IsAuthorityJoinToken reports whether s has the form of an authority join
// token (it says nothing of its validity).
func IsAuthorityJoinToken(s string) bool { return strings.HasPrefix(s, authorityJoinPrefix+".") }

// parseAuthorityJoinToken splits a token into id and secret; it never echoes
// the input.
func parseAuthorityJoinToken(s string) (string, []byte, bool) {
	parts := strings.Split(s, ".")
	if len(parts) != 3 || parts[0] != authorityJoinPrefix || len(parts[1]) != 16 || len(parts[2]) != 43 {
		return "", nil, false
	}
	if _, err := hex.DecodeString(parts[1]); err != nil || strings.ToLower(parts[1]) != parts[1] {
		return "", nil, false
	}
	secret, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || len(secret) != 32 {
		return "", nil, false
	}
	return parts[1], secret, true
}

// CreateAuthorityJoinToken makes an authority join token (fenced, audited)
// living ttl (0 means DefaultAuthorityJoinTTL; at most MaxAuthorityJoinTTL).
// The token is returned once.
func (a *Authority) CreateAuthorityJoinToken(ctx context.Context, actor Actor, ttl time.Duration, description string) (AuthorityJoinToken, error) {
	if ttl == 0 {
		ttl = DefaultAuthorityJoinTTL
	}
	if ttl < minAuthorityJoinTTL || ttl > MaxAuthorityJoinTTL {
		return AuthorityJoinToken{}, Errf(CodeInvalid, "ttl must be between %s and %s", minAuthorityJoinTTL, MaxAuthorityJoinTTL)
	}
	if len(description) > 200 {
		return AuthorityJoinToken{}, Errf(CodeInvalid, "description must be at most 200 characters")
	}
	var idb [8]byte
	secret := make([]byte, 32)
	if _, err := io.ReadFull(a.cfg.Rand, idb[:]); err != nil {
		return AuthorityJoinToken{}, err
	}
	if _, err := io.ReadFull(a.cfg.Rand, secret); err != nil {
		return AuthorityJoinToken{}, err
	}
	id := hex.EncodeToString(idb[:])
	now := a.cfg.Clock().UTC()
	row := store.AuthorityJoinToken{ID: id, SecretHash: authorityJoinHash(id, secret), Description: description, CreatedBy: actor.ID,
		CreatedAt: now, ExpiresAt: now.Add(ttl)}
	t, err := Fenced(ctx, a, Op{Action: "authority.join_token.create", Actor: actor, TargetKind: "authority_join_token", TargetID: id,
		Details: map[string]any{"ttl_seconds": int64(ttl / time.Second), "expires_at": row.ExpiresAt, "description": description}},
		func(tx pgx.Tx) (store.AuthorityJoinToken, error) { return store.InsertAuthorityJoinToken(ctx, tx, row) })
	if err != nil {
		return AuthorityJoinToken{}, err
	}
	v := a.authorityJoinView(t)
	v.Token = authorityJoinPrefix + "." + id + "." + base64.RawURLEncoding.EncodeToString(secret)
	return v, nil
}

// ListAuthorityJoinTokens lists authority join tokens, newest first (never
// their secrets).
func (a *Authority) ListAuthorityJoinTokens(ctx context.Context, p store.Page) ([]AuthorityJoinToken, error) {
	ts, err := store.ListAuthorityJoinTokens(ctx, a.db.Pool, p)
	if err != nil {
		return nil, asError(err)
	}
	out := make([]AuthorityJoinToken, 0, len(ts))
	for _, t := range ts {
		out = append(out, a.authorityJoinView(t))
	}
	return out, nil
}

// RevokeAuthorityJoinToken revokes a token (fenced, audited); revoking twice
// is not an error.
func (a *Authority) RevokeAuthorityJoinToken(ctx context.Context, actor Actor, id string) (AuthorityJoinToken, error) {
	t, err := Fenced(ctx, a, Op{Action: "authority.join_token.revoke", Actor: actor, TargetKind: "authority_join_token", TargetID: id},
		func(tx pgx.Tx) (store.AuthorityJoinToken, error) {
			return store.RevokeAuthorityJoinToken(ctx, tx, id, a.cfg.Clock())
		})
	if err != nil {
		return AuthorityJoinToken{}, err
	}
	return a.authorityJoinView(t), nil
}

// CheckAuthorityJoinToken authenticates an authority join token presented
// from source: it must exist, match, and be live (unexpired, unrevoked, not
// yet joined). It returns the actor the join is audited as and the token id.
// Failures are rate limited per source and per token.
func (a *Authority) CheckAuthorityJoinToken(ctx context.Context, token, source string) (Actor, string, error) {
	id, secret, ok := parseAuthorityJoinToken(token)
	if !ok {
		a.limiter.fail("src:" + source)
		return Actor{}, "", ErrBadAuthorityJoinToken
	}
	key := "authority-join:" + id
	if a.limiter.blocked("src:"+source, key) {
		return Actor{}, "", Errf(CodeRateLimited, "too many failed attempts; wait a minute")
	}
	lctx, cancel := context.WithTimeout(ctx, CredentialLookupTimeout)
	defer cancel()
	t, err := store.GetAuthorityJoinToken(lctx, a.db.Pool, id)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return Actor{}, "", &Error{Code: CodeUnavailable, Message: "the credential could not be checked: database unavailable", Err: err}
	}
	if err != nil || subtle.ConstantTimeCompare(t.SecretHash, authorityJoinHash(id, secret)) != 1 {
		a.limiter.fail("src:"+source, key)
		return Actor{}, "", ErrBadAuthorityJoinToken
	}
	if t.RevokedAt != nil || t.JoinedAt != nil || !t.ExpiresAt.After(a.cfg.Clock()) {
		return Actor{}, "", ErrBadAuthorityJoinToken
	}
	return Actor{ID: "authority-join-token:" + id, Kind: "api-token", Device: "rap-authority --join", SourceAddr: source,
		Risk: map[string]string{"credential": "authority_join_token", "mfa": "at_creation"}}, id, nil
}

// BindAuthorityJoinToken binds the token to the joining authority memberID
// and its Raft member key (fenced, audited). It succeeds once for an unused
// token and again for the same id and key (a retried join); a second
// authority is refused with token_invalid.
func (a *Authority) BindAuthorityJoinToken(ctx context.Context, actor Actor, tokenID, memberID string, memberKey []byte) error {
	if memberID == "" || len(memberKey) != 32 {
		return Errf(CodeInvalid, "id and a 32-byte member_public_key are required")
	}
	_, err := Fenced(ctx, a, Op{Action: "authority.join_token.use", Actor: actor, TargetKind: "authority", TargetID: memberID,
		Details: map[string]any{"token_id": tokenID, "member_key_sha256": hex.EncodeToString(sha256Sum(memberKey))}},
		func(tx pgx.Tx) (bool, error) {
			_, err := store.BindAuthorityJoinToken(ctx, tx, tokenID, memberID, memberKey, a.cfg.Clock())
			if errors.Is(err, store.ErrNotFound) {
				return false, Errf(CodeTokenInvalid, "this authority join token is bound to another authority or no longer valid")
			}
			return err == nil, err
		})
	return err
}

// AuthorityJoinBoundTo reports whether the token is bound to memberID: its
// member certificate was issued through this token (liveness is checked by
// CheckAuthorityJoinToken).
func (a *Authority) AuthorityJoinBoundTo(ctx context.Context, tokenID, memberID string) error {
	t, err := store.GetAuthorityJoinToken(ctx, a.db.Pool, tokenID)
	if err != nil {
		return asError(err)
	}
	if t.MemberID == nil || *t.MemberID != memberID {
		return Errf(CodeTokenInvalid, "this authority join token was not used to issue %q's member certificate", memberID)
	}
	return nil
}

// CompleteAuthorityJoin marks the token joined by memberID (fenced, audited):
// from then on it is refused.
func (a *Authority) CompleteAuthorityJoin(ctx context.Context, actor Actor, tokenID, memberID string) error {
	_, err := Fenced(ctx, a, Op{Action: "authority.join_token.joined", Actor: actor, TargetKind: "authority", TargetID: memberID,
		Details: map[string]any{"token_id": tokenID}},
		func(tx pgx.Tx) (bool, error) {
			_, err := store.CompleteAuthorityJoinToken(ctx, tx, tokenID, memberID, a.cfg.Clock())
			if errors.Is(err, store.ErrNotFound) {
				return false, Errf(CodeTokenInvalid, "this authority join token is not bound to %q or no longer valid", memberID)
			}
			return err == nil, err
		})
	return err
}

func sha256Sum(b []byte) []byte { s := sha256.Sum256(b); return s[:] }
