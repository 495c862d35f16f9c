package store_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/store"
)

// TestAuthorityJoinTokenLifecycle: an authority join token binds to the first
// authority (id and key) that uses it, again to the same one (a retried
// join), never to another; once joined, revoked or expired it binds and
// completes no more. Every write is fenced; the lifetime is capped at an hour.
func TestAuthorityJoinTokenLifecycle(t *testing.T) {
	db := openDB(t)
	claim(t, db, 1)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	fenced := func(fn func(tx pgx.Tx) error) error { return db.Fenced(ctx, 1, fn) }
	hash := bytes.Repeat([]byte{7}, 32)
	key1, key2 := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	insert := func(id string, ttl time.Duration) error {
		return fenced(func(tx pgx.Tx) error {
			_, err := store.InsertAuthorityJoinToken(ctx, tx, store.AuthorityJoinToken{ID: id, SecretHash: hash, CreatedBy: "test", CreatedAt: now, ExpiresAt: now.Add(ttl)})
			return err
		})
	}
	bind := func(id, member string, key []byte, at time.Time) error {
		return fenced(func(tx pgx.Tx) error {
			_, err := store.BindAuthorityJoinToken(ctx, tx, id, member, key, at)
			return err
		})
	}
	complete := func(id, member string, at time.Time) error {
		return fenced(func(tx pgx.Tx) error { _, err := store.CompleteAuthorityJoinToken(ctx, tx, id, member, at); return err })
	}

	// Outside a fenced transaction nothing is written.
	_, err := store.InsertAuthorityJoinToken(ctx, db.Pool, store.AuthorityJoinToken{ID: "00000000000000aa", SecretHash: hash, CreatedBy: "t", CreatedAt: now, ExpiresAt: now.Add(time.Minute)})
	require.ErrorIs(t, err, store.ErrFenceRequired)
	require.Error(t, insert("00000000000000ab", 2*time.Hour), "longer than an hour")

	const a = "00000000000000a1"
	require.NoError(t, insert(a, 15*time.Minute))
	require.NoError(t, bind(a, "a4", key1, now))
	require.NoError(t, bind(a, "a4", key1, now.Add(time.Second)), "the same authority again (a retried join)")
	require.ErrorIs(t, bind(a, "a5", key1, now), store.ErrNotFound, "another authority")
	require.ErrorIs(t, bind(a, "a4", key2, now), store.ErrNotFound, "another key")
	require.ErrorIs(t, complete(a, "a5", now), store.ErrNotFound, "completed by another authority")
	require.NoError(t, complete(a, "a4", now))
	require.ErrorIs(t, complete(a, "a4", now), store.ErrNotFound, "completed twice")
	require.ErrorIs(t, bind(a, "a4", key1, now), store.ErrNotFound, "bound after the join")
	tok, err := store.GetAuthorityJoinToken(ctx, db.Pool, a)
	require.NoError(t, err)
	require.Equal(t, "a4", *tok.MemberID)
	require.NotNil(t, tok.JoinedAt)
	require.Equal(t, now, tok.BoundAt.UTC(), "bound at the first use")

	const b = "00000000000000b1"
	require.NoError(t, insert(b, time.Minute))
	require.ErrorIs(t, bind(b, "a4", key1, now.Add(time.Minute)), store.ErrNotFound, "expired")
	const c = "00000000000000c1"
	require.NoError(t, insert(c, time.Minute))
	require.NoError(t, fenced(func(tx pgx.Tx) error { _, err := store.RevokeAuthorityJoinToken(ctx, tx, c, now); return err }))
	require.ErrorIs(t, bind(c, "a4", key1, now), store.ErrNotFound, "revoked")

	list, err := store.ListAuthorityJoinTokens(ctx, db.Pool, store.Page{})
	require.NoError(t, err)
	require.Len(t, list, 3)
}
