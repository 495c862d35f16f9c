package store_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/store"
)

// Version storage in PostgreSQL: key sets append-only, artifacts content
// addressed, chunked, streamed, immutable once complete; releases immutable
// but for their status; every table fenced.
func TestReleaseStorage(t *testing.T) {
	db := openDB(t)
	ctx := context.Background()
	claim(t, db, 2)
	fenced := func(fn func(tx pgx.Tx) error) error { return db.Fenced(ctx, 2, fn) }
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

	// Outside a fence nothing is written.
	_, err := store.EnsureReleaseArtifact(ctx, db.Pool, hex.EncodeToString(make([]byte, 32)), 1)
	require.ErrorIs(t, err, store.ErrFenceRequired)

	var ks store.ReleaseKeySet
	require.NoError(t, fenced(func(tx pgx.Tx) (err error) {
		ks, err = store.InsertReleaseKeySet(ctx, tx, store.ReleaseKeySet{Version: 1, Digest: "sha256:" + hex.EncodeToString(make([]byte, 32)),
			Envelope: []byte(`{}`), RootsVersion: 1, SigningKeyIDs: []string{"0123456789abcdef"}, IssuedAt: t0, ExpiresAt: t0.Add(time.Hour), PublishedBy: "owner"})
		return err
	}))
	require.Equal(t, uint64(1), ks.Version)
	latest, err := store.LatestReleaseKeySet(ctx, db.Pool)
	require.NoError(t, err)
	require.Equal(t, []string{"0123456789abcdef"}, latest.SigningKeyIDs)
	require.ErrorIs(t, fenced(func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE release_key_sets SET published_by = 'mallory'`)
		return store.MapError(err)
	}), store.ErrAppendOnly)

	// An artifact of 2.5 chunks, uploaded in pieces.
	content := bytes.Repeat([]byte("0123456789"), 25_000) // 250 000 bytes
	sum := sha256.Sum256(content)
	sha := hex.EncodeToString(sum[:])
	const chunk = 100_000
	var art store.ReleaseArtifact
	require.NoError(t, fenced(func(tx pgx.Tx) (err error) {
		art, err = store.EnsureReleaseArtifact(ctx, tx, sha, int64(len(content)))
		return err
	}))
	require.Zero(t, art.Received)
	require.ErrorIs(t, fenced(func(tx pgx.Tx) error {
		_, err := store.EnsureReleaseArtifact(ctx, tx, sha, 5)
		return err
	}), store.ErrConstraint, "one content address, one size")
	for off := 0; off < len(content); off += chunk {
		end := min(off+chunk, len(content))
		require.NoError(t, fenced(func(tx pgx.Tx) error {
			a, err := store.LockReleaseArtifact(ctx, tx, sha)
			if err != nil {
				return err
			}
			require.Equal(t, int64(off), a.Received)
			_, err = store.AppendReleaseArtifactChunk(ctx, tx, sha, a.Received, content[off:end])
			return err
		}))
	}
	// Streaming from any offset yields exactly the bytes, chunk by chunk.
	for _, from := range []int64{0, 1, chunk - 1, chunk, 123_456, int64(len(content) - 1)} {
		var got bytes.Buffer
		calls := 0
		require.NoError(t, store.StreamReleaseArtifact(ctx, db.Pool, sha, from, func(b []byte) error {
			calls++
			require.LessOrEqual(t, len(b), chunk)
			got.Write(b)
			return nil
		}))
		require.Equal(t, content[from:], got.Bytes(), "from %d", from)
		require.LessOrEqual(t, calls, 3)
	}
	// Not servable before it is complete and named by a published release.
	_, ok, err := store.ReleaseArtifactServable(ctx, db.Pool, sha)
	require.NoError(t, err)
	require.False(t, ok)

	// A stale generation completes nothing; the right one does.
	require.NoError(t, fenced(func(tx pgx.Tx) error {
		done, err := store.CompleteReleaseArtifact(ctx, tx, sha, art.Generation+1)
		require.False(t, done)
		return err
	}))
	require.NoError(t, fenced(func(tx pgx.Tx) error {
		done, err := store.CompleteReleaseArtifact(ctx, tx, sha, art.Generation)
		require.True(t, done)
		return err
	}))
	// Complete means immutable: no chunk rewritten, removed or reset.
	for name, stmt := range map[string]string{
		"rewrite chunk": `UPDATE release_artifact_chunks SET data = 'x' WHERE sha256 = $1`,
		"delete chunk":  `DELETE FROM release_artifact_chunks WHERE sha256 = $1`,
		"un-complete":   `UPDATE release_artifacts SET complete = false, received = 0 WHERE sha256 = $1`,
		"delete":        `DELETE FROM release_artifacts WHERE sha256 = $1`,
		"append chunk":  `INSERT INTO release_artifact_chunks (sha256, chunk_offset, data) VALUES ($1, 250000, 'x')`,
	} {
		err := fenced(func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, stmt, sha)
			return store.MapError(err)
		})
		require.ErrorIs(t, err, store.ErrAppendOnly, name)
	}
	require.NoError(t, fenced(func(tx pgx.Tx) error { return store.ResetReleaseArtifact(ctx, tx, sha, art.Generation) }))
	a, err := store.GetReleaseArtifact(ctx, db.Pool, sha)
	require.NoError(t, err)
	require.True(t, a.Complete)
	require.Equal(t, int64(len(content)), a.Received, "reset of a complete artifact does nothing")

	// A release naming it.
	rel := store.Release{ID: store.NewID(), Product: "rap-node-agent", Version: "1.4.0", Digest: "sha256:" + sha, Envelope: []byte(`{"kind":"x"}`),
		SigningKeyID: "0123456789abcdef", KeySetVersion: 1, Channels: []string{"candidate"}, SourceRevision: "abc", BuildTime: t0, IssuedAt: t0,
		ExpiresAt: t0.Add(time.Hour), PublishedBy: "owner", Platforms: []store.ReleasePlatform{{OS: "linux", Arch: "amd64", SHA256: sha}}}
	var got store.Release
	require.NoError(t, fenced(func(tx pgx.Tx) (err error) {
		got, err = store.InsertRelease(ctx, tx, rel)
		return err
	}))
	require.True(t, got.Available)
	require.Len(t, got.Platforms, 1)
	require.Equal(t, int64(len(content)), got.Platforms[0].Size)
	require.Equal(t, "published", got.Status)
	dup := rel
	dup.ID, dup.Digest = store.NewID(), "sha256:"+hex.EncodeToString(make([]byte, 32))
	require.ErrorIs(t, fenced(func(tx pgx.Tx) error { _, err := store.InsertRelease(ctx, tx, dup); return err }), store.ErrConflict)
	_, ok, err = store.ReleaseArtifactServable(ctx, db.Pool, sha)
	require.NoError(t, err)
	require.True(t, ok)
	byV, err := store.GetReleaseByVersion(ctx, db.Pool, "rap-node-agent", "1.4.0")
	require.NoError(t, err)
	require.Equal(t, got.ID, byV.ID)
	list, err := store.ListReleases(ctx, db.Pool, "rap-node-agent", store.Page{})
	require.NoError(t, err)
	require.Len(t, list, 1)
	// The manifest is immutable; only the status moves.
	require.ErrorIs(t, fenced(func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE releases SET envelope = 'forged' WHERE id = $1`, got.ID)
		return store.MapError(err)
	}), store.ErrAppendOnly)
	require.NoError(t, fenced(func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE releases SET status = 'blocklisted' WHERE id = $1`, got.ID)
		return store.MapError(err)
	}))
	_, ok, err = store.ReleaseArtifactServable(ctx, db.Pool, sha)
	require.NoError(t, err)
	require.False(t, ok, "a blocklisted release's bytes are not served")
	// A stale epoch writes nothing.
	claim(t, db, 3)
	require.ErrorIs(t, fenced(func(tx pgx.Tx) error {
		_, err := store.EnsureReleaseArtifact(ctx, tx, hex.EncodeToString(bytes.Repeat([]byte{1}, 32)), 1)
		return err
	}), store.ErrStaleEpoch)
}
