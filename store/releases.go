package store

import (
	"context"
	"encoding/json"
	"time"
)

// ReleaseKeySet is a published, root-signed set of release-signing keys
// (table release_key_sets, append-only). Envelope is the signed document
// exactly as published; agents verify it themselves.
type ReleaseKeySet struct {
	Version       uint64    `json:"version"`
	Digest        string    `json:"digest"`
	Envelope      []byte    `json:"-"`
	RootsVersion  uint64    `json:"roots_version"`
	SigningKeyIDs []string  `json:"signing_key_ids"`
	RevokedKeyIDs []string  `json:"revoked_key_ids"`
	IssuedAt      time.Time `json:"issued_at"`
	ExpiresAt     time.Time `json:"expires_at"`
	PublishedBy   string    `json:"published_by"`
	PublishedAt   time.Time `json:"published_at"`
}

const keySetCols = `version, digest, envelope, roots_version, signing_key_ids, revoked_key_ids, issued_at, expires_at, published_by, published_at`

func scanKeySet(row scanner) (ReleaseKeySet, error) {
	var k ReleaseKeySet
	var v, rv int64
	err := row.Scan(&v, &k.Digest, &k.Envelope, &rv, &k.SigningKeyIDs, &k.RevokedKeyIDs, &k.IssuedAt, &k.ExpiresAt, &k.PublishedBy, &k.PublishedAt)
	k.Version, k.RootsVersion = uint64(v), uint64(rv)
	return k, mapErr(err)
}

// InsertReleaseKeySet stores a verified key set (fenced). A duplicate
// version fails with ErrConflict.
func InsertReleaseKeySet(ctx context.Context, q Querier, k ReleaseKeySet) (ReleaseKeySet, error) {
	if k.RevokedKeyIDs == nil {
		k.RevokedKeyIDs = []string{}
	}
	return scanKeySet(q.QueryRow(ctx, `INSERT INTO release_key_sets
		(version, digest, envelope, roots_version, signing_key_ids, revoked_key_ids, issued_at, expires_at, published_by)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING `+keySetCols,
		int64(k.Version), k.Digest, k.Envelope, int64(k.RootsVersion), k.SigningKeyIDs, k.RevokedKeyIDs, k.IssuedAt, k.ExpiresAt, k.PublishedBy))
}

// LatestReleaseKeySet returns the key set with the highest version
// (ErrNotFound before the first).
func LatestReleaseKeySet(ctx context.Context, q Querier) (ReleaseKeySet, error) {
	return scanKeySet(q.QueryRow(ctx, `SELECT `+keySetCols+` FROM release_key_sets ORDER BY version DESC LIMIT 1`))
}

// GetReleaseKeySet returns one key set by version.
func GetReleaseKeySet(ctx context.Context, q Querier, version uint64) (ReleaseKeySet, error) {
	return scanKeySet(q.QueryRow(ctx, `SELECT `+keySetCols+` FROM release_key_sets WHERE version = $1`, int64(version)))
}

// ListReleaseKeySets lists key sets, newest first.
func ListReleaseKeySets(ctx context.Context, q Querier, p Page) ([]ReleaseKeySet, error) {
	lim, off := p.norm()
	return collect(ctx, q, scanKeySet, `SELECT `+keySetCols+` FROM release_key_sets ORDER BY version DESC LIMIT $1 OFFSET $2`, lim, off)
}

// ReleaseArtifact is the content-addressed record of an artifact's bytes
// (table release_artifacts). Received counts the bytes stored so far;
// Complete means they were verified against SHA256 and Size and are now
// immutable.
type ReleaseArtifact struct {
	SHA256      string     `json:"sha256"`
	Size        int64      `json:"size"`
	Received    int64      `json:"received"`
	Generation  int        `json:"generation"`
	Complete    bool       `json:"complete"`
	CreatedAt   time.Time  `json:"created_at"`
	CompletedAt *time.Time `json:"completed_at,omitempty"`
}

const artifactCols = `sha256, size, received, generation, complete, created_at, completed_at`

func scanArtifact(row scanner) (ReleaseArtifact, error) {
	var a ReleaseArtifact
	err := row.Scan(&a.SHA256, &a.Size, &a.Received, &a.Generation, &a.Complete, &a.CreatedAt, &a.CompletedAt)
	return a, mapErr(err)
}

// EnsureReleaseArtifact records an expected artifact (fenced) and returns
// its row. The same sha256 with another size fails with ErrConstraint (the
// content address already names other bytes).
func EnsureReleaseArtifact(ctx context.Context, q Querier, sha256 string, size int64) (ReleaseArtifact, error) {
	if _, err := q.Exec(ctx, `INSERT INTO release_artifacts (sha256, size) VALUES ($1, $2) ON CONFLICT (sha256) DO NOTHING`, sha256, size); err != nil {
		return ReleaseArtifact{}, mapErr(err)
	}
	a, err := GetReleaseArtifact(ctx, q, sha256)
	if err == nil && a.Size != size {
		return ReleaseArtifact{}, mapErr(&constraintErr{"artifact " + sha256 + " is already recorded with another size"})
	}
	return a, err
}

type constraintErr struct{ msg string }

func (e *constraintErr) Error() string        { return e.msg }
func (e *constraintErr) Is(target error) bool { return target == ErrConstraint }

// GetReleaseArtifact returns an artifact record.
func GetReleaseArtifact(ctx context.Context, q Querier, sha256 string) (ReleaseArtifact, error) {
	return scanArtifact(q.QueryRow(ctx, `SELECT `+artifactCols+` FROM release_artifacts WHERE sha256 = $1`, sha256))
}

// LockReleaseArtifact returns an artifact record locked for update until
// the transaction ends (fenced uploads serialize on it).
func LockReleaseArtifact(ctx context.Context, q Querier, sha256 string) (ReleaseArtifact, error) {
	return scanArtifact(q.QueryRow(ctx, `SELECT `+artifactCols+` FROM release_artifacts WHERE sha256 = $1 FOR UPDATE`, sha256))
}

// AppendReleaseArtifactChunk stores data at offset and advances Received
// (fenced; the caller locked the row and checked offset == Received and the
// size bound).
func AppendReleaseArtifactChunk(ctx context.Context, q Querier, sha256 string, offset int64, data []byte) (ReleaseArtifact, error) {
	if _, err := q.Exec(ctx, `INSERT INTO release_artifact_chunks (sha256, chunk_offset, data) VALUES ($1, $2, $3)`, sha256, offset, data); err != nil {
		return ReleaseArtifact{}, mapErr(err)
	}
	return scanArtifact(q.QueryRow(ctx, `UPDATE release_artifacts SET received = received + $2 WHERE sha256 = $1 RETURNING `+artifactCols, sha256, int64(len(data))))
}

// CompleteReleaseArtifact marks an artifact complete (fenced) if it is still
// the fully received upload of generation gen; ok is false otherwise.
func CompleteReleaseArtifact(ctx context.Context, q Querier, sha256 string, gen int) (bool, error) {
	tag, err := q.Exec(ctx, `UPDATE release_artifacts SET complete = true, completed_at = now()
		WHERE sha256 = $1 AND generation = $2 AND received = size AND NOT complete`, sha256, gen)
	if err != nil {
		return false, mapErr(err)
	}
	return tag.RowsAffected() == 1, nil
}

// ResetReleaseArtifact discards an incomplete upload of generation gen
// (fenced): its chunks go, Received returns to 0, the generation moves on.
func ResetReleaseArtifact(ctx context.Context, q Querier, sha256 string, gen int) error {
	if _, err := q.Exec(ctx, `DELETE FROM release_artifact_chunks c USING release_artifacts a
		WHERE c.sha256 = $1 AND a.sha256 = c.sha256 AND a.generation = $2 AND NOT a.complete`, sha256, gen); err != nil {
		return mapErr(err)
	}
	_, err := q.Exec(ctx, `UPDATE release_artifacts SET received = 0, generation = generation + 1 WHERE sha256 = $1 AND generation = $2 AND NOT complete`, sha256, gen)
	return mapErr(err)
}

// StreamReleaseArtifact calls fn with the artifact's bytes from offset from
// on, chunk by chunk in order, holding at most one chunk in memory. fn must
// not keep the slice. It reads what is stored, complete or not: callers that
// serve bytes check Complete first.
func StreamReleaseArtifact(ctx context.Context, q Querier, sha256 string, from int64, fn func([]byte) error) error {
	rows, err := q.Query(ctx, `SELECT chunk_offset, data FROM release_artifact_chunks
		WHERE sha256 = $1 AND chunk_offset + length(data) > $2 ORDER BY chunk_offset`, sha256, from)
	if err != nil {
		return mapErr(err)
	}
	defer rows.Close()
	for rows.Next() {
		var off int64
		var data []byte
		if err := rows.Scan(&off, &data); err != nil {
			return mapErr(err)
		}
		if off < from {
			data = data[from-off:]
		}
		if err := fn(data); err != nil {
			return err
		}
	}
	return mapErr(rows.Err())
}

// Release is a published signed manifest (tables releases and
// release_platforms). Envelope is the signed document exactly as published.
type Release struct {
	ID             string            `json:"id"`
	Product        string            `json:"product"`
	Version        string            `json:"version"`
	Digest         string            `json:"digest"`
	Envelope       []byte            `json:"-"`
	SigningKeyID   string            `json:"signing_key_id"`
	KeySetVersion  uint64            `json:"key_set_version"`
	Channels       []string          `json:"channels"`
	MinUpgradeFrom string            `json:"min_upgrade_from"`
	PostgresSchema int               `json:"postgres_schema"`
	Migration      json.RawMessage   `json:"migration"`
	SourceRevision string            `json:"source_revision"`
	BuildTime      time.Time         `json:"build_time"`
	IssuedAt       time.Time         `json:"issued_at"`
	ExpiresAt      time.Time         `json:"expires_at"`
	Status         string            `json:"status"`
	StatusReason   string            `json:"status_reason"`
	PublishedBy    string            `json:"published_by"`
	PublishedAt    time.Time         `json:"published_at"`
	Available      bool              `json:"available"`
	Platforms      []ReleasePlatform `json:"platforms,omitempty"`
}

// ReleasePlatform is one OS/architecture artifact of a release with the
// upload progress of its bytes.
type ReleasePlatform struct {
	OS       string `json:"os"`
	Arch     string `json:"arch"`
	SHA256   string `json:"sha256"`
	Size     int64  `json:"size"`
	Received int64  `json:"received"`
	Complete bool   `json:"complete"`
}

const releaseCols = `r.id::text, r.product, r.version, r.digest, r.envelope, r.signing_key_id, r.key_set_version, r.channels, r.min_upgrade_from,
	r.postgres_schema, r.migration, r.source_revision, r.build_time, r.issued_at, r.expires_at, r.status, r.status_reason, r.published_by, r.published_at,
	NOT EXISTS (SELECT 1 FROM release_platforms p JOIN release_artifacts a ON a.sha256 = p.sha256 WHERE p.release_id = r.id AND NOT a.complete)`

func scanRelease(row scanner) (Release, error) {
	var r Release
	var ksv int64
	err := row.Scan(&r.ID, &r.Product, &r.Version, &r.Digest, &r.Envelope, &r.SigningKeyID, &ksv, &r.Channels, &r.MinUpgradeFrom,
		&r.PostgresSchema, &r.Migration, &r.SourceRevision, &r.BuildTime, &r.IssuedAt, &r.ExpiresAt, &r.Status, &r.StatusReason, &r.PublishedBy, &r.PublishedAt,
		&r.Available)
	r.KeySetVersion = uint64(ksv)
	return r, mapErr(err)
}

// InsertRelease stores a verified manifest and its platforms (fenced; the
// artifacts must have been recorded with EnsureReleaseArtifact). A second
// release of the same product and version fails with ErrConflict.
func InsertRelease(ctx context.Context, q Querier, r Release) (Release, error) {
	if len(r.Migration) == 0 {
		r.Migration = json.RawMessage(`{}`)
	}
	if _, err := q.Exec(ctx, `INSERT INTO releases (id, product, version, digest, envelope, signing_key_id, key_set_version, channels,
		min_upgrade_from, postgres_schema, migration, source_revision, build_time, issued_at, expires_at, published_by)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)`,
		r.ID, r.Product, r.Version, r.Digest, r.Envelope, r.SigningKeyID, int64(r.KeySetVersion), r.Channels,
		r.MinUpgradeFrom, r.PostgresSchema, r.Migration, r.SourceRevision, r.BuildTime, r.IssuedAt, r.ExpiresAt, r.PublishedBy); err != nil {
		return Release{}, mapErr(err)
	}
	for _, p := range r.Platforms {
		if _, err := q.Exec(ctx, `INSERT INTO release_platforms (release_id, os, arch, sha256) VALUES ($1, $2, $3, $4)`,
			r.ID, p.OS, p.Arch, p.SHA256); err != nil {
			return Release{}, mapErr(err)
		}
	}
	return GetRelease(ctx, q, r.ID)
}

// GetRelease returns a release with its platforms by id.
func GetRelease(ctx context.Context, q Querier, id string) (Release, error) {
	return withPlatforms(ctx, q, q.QueryRow(ctx, `SELECT `+releaseCols+` FROM releases r WHERE r.id = rap_uuid($1)`, id))
}

// GetReleaseByVersion returns a product's release by version.
func GetReleaseByVersion(ctx context.Context, q Querier, product, version string) (Release, error) {
	return withPlatforms(ctx, q, q.QueryRow(ctx, `SELECT `+releaseCols+` FROM releases r WHERE r.product = $1 AND r.version = $2`, product, version))
}

// GetReleaseByDigest returns the release whose manifest has digest.
func GetReleaseByDigest(ctx context.Context, q Querier, digest string) (Release, error) {
	return withPlatforms(ctx, q, q.QueryRow(ctx, `SELECT `+releaseCols+` FROM releases r WHERE r.digest = $1`, digest))
}

func withPlatforms(ctx context.Context, q Querier, row scanner) (Release, error) {
	r, err := scanRelease(row)
	if err != nil {
		return Release{}, err
	}
	r.Platforms, err = collect(ctx, q, func(row scanner) (ReleasePlatform, error) {
		var p ReleasePlatform
		err := row.Scan(&p.OS, &p.Arch, &p.SHA256, &p.Size, &p.Received, &p.Complete)
		return p, mapErr(err)
	}, `SELECT p.os, p.arch, p.sha256, a.size, a.received, a.complete FROM release_platforms p JOIN release_artifacts a ON a.sha256 = p.sha256
		WHERE p.release_id = rap_uuid($1) ORDER BY p.os, p.arch`, r.ID)
	return r, err
}

// ListReleases lists releases newest first, of one product when product is
// not empty (platforms not filled in).
func ListReleases(ctx context.Context, q Querier, product string, p Page) ([]Release, error) {
	lim, off := p.norm()
	return collect(ctx, q, scanRelease, `SELECT `+releaseCols+` FROM releases r WHERE ($1 = '' OR r.product = $1)
		ORDER BY r.published_at DESC, r.id LIMIT $2 OFFSET $3`, product, lim, off)
}

// ReleaseArtifactServable reports whether an artifact may be served: its
// bytes are complete and at least one published (not blocklisted) release
// names it. Version storage never serves unsigned or unapproved bytes.
func ReleaseArtifactServable(ctx context.Context, q Querier, sha256 string) (ReleaseArtifact, bool, error) {
	a, err := GetReleaseArtifact(ctx, q, sha256)
	if err != nil {
		return ReleaseArtifact{}, false, err
	}
	var ok bool
	err = q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM release_platforms p JOIN releases r ON r.id = p.release_id
		WHERE p.sha256 = $1 AND r.status = 'published')`, sha256).Scan(&ok)
	if err != nil {
		return ReleaseArtifact{}, false, mapErr(err)
	}
	return a, ok && a.Complete, nil
}
