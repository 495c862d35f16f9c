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
)

// Owner API tokens read rapot.<id>.<secret>; only a hash of the secret is stored.
const ownerTokenPrefix = "rapot"

func ownerTokenHash(id string, secret []byte) []byte {
	h := sha256.New()
	h.Write([]byte("rap-owner-token-v1\x00" + id + "\x00"))
	h.Write(secret)
	return h.Sum(nil)
}

// CreateOwnerToken makes an owner API token (fenced). The token is returned once.
func (a *Authority) CreateOwnerToken(ctx context.Context, actor Actor, name, role string) (string, error) {
	if role == "" {
		role = "platform_owner"
	}
	if name == "" || len(name) > 200 {
		return "", Errf(CodeInvalid, "name must be 1 to 200 characters")
	}
	var idb [8]byte
	secret := make([]byte, 32)
	if _, err := io.ReadFull(a.cfg.Rand, idb[:]); err != nil {
		return "", err
	}
	if _, err := io.ReadFull(a.cfg.Rand, secret); err != nil {
		return "", err
	}
	id := hex.EncodeToString(idb[:])
	_, err := Fenced(ctx, a, Op{Action: "owner_token.create", Actor: actor, TargetKind: "owner_token", TargetID: id, Details: map[string]any{"name": name, "role": role}},
		func(tx pgx.Tx) (bool, error) {
			_, err := tx.Exec(ctx, `INSERT INTO owner_api_tokens (id, secret_hash, name, role) VALUES ($1, $2, $3, $4)`, id, ownerTokenHash(id, secret), name, role)
			return err == nil, err
		})
	if err != nil {
		return "", err
	}
	return ownerTokenPrefix + "." + id + "." + base64.RawURLEncoding.EncodeToString(secret), nil
}

// CredentialLookupTimeout bounds a credential check against the database.
const CredentialLookupTimeout = 2 * time.Second

// ErrBadOwnerToken is returned for an unknown, revoked or malformed owner token.
var ErrBadOwnerToken = errors.New("invalid owner API token")

// CheckOwnerToken authenticates an owner API token and returns its actor and role.
func (a *Authority) CheckOwnerToken(ctx context.Context, token string) (Actor, string, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 || parts[0] != ownerTokenPrefix || len(parts[1]) != 16 {
		return Actor{}, "", ErrBadOwnerToken
	}
	secret, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || len(secret) != 32 {
		return Actor{}, "", ErrBadOwnerToken
	}
	var hash []byte
	var role, name string
	// A credential lookup must not take the whole request deadline when the
	// database does not answer.
	lctx, cancel := context.WithTimeout(ctx, CredentialLookupTimeout)
	defer cancel()
	err = a.db.Pool.QueryRow(lctx, `SELECT secret_hash, role, name FROM owner_api_tokens WHERE id = $1 AND revoked_at IS NULL`, parts[1]).Scan(&hash, &role, &name)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return Actor{}, "", &Error{Code: CodeUnavailable, Message: "the credential could not be checked: database unavailable", Err: err}
	}
	if err != nil || subtle.ConstantTimeCompare(hash, ownerTokenHash(parts[1], secret)) != 1 {
		return Actor{}, "", ErrBadOwnerToken
	}
	return Actor{ID: "owner-token:" + parts[1], Kind: "api-token", Device: name,
		Risk: map[string]string{"credential": "owner_api_token", "mfa": "none"}, Role: role}, role, nil
}
