package authority

// Version storage (spec stage C19; docs/releases.md): release trust and the
// signed-release repository.
//
//	roots      release root public keys + threshold, agreed through Raft
//	           (fsm.SetReleaseRoots); owner-only, fenced, step-up, audited
//	key sets   root-signed release-signing key sets, verified against the
//	           roots on publish, stored append-only (versions increase)
//	releases   signed manifests, verified against the newest key set on
//	           publish, stored as signed; immutable
//	artifacts  content-addressed bytes uploaded in chunks (resumable: the
//	           next chunk must start where the stored bytes end), verified
//	           by streaming them back from PostgreSQL when the last byte
//	           arrives, immutable once complete, served to agents over mTLS
//	           only when complete and named by a published release
//
// The authority never holds a release private key: everything it accepts is
// verified with public keys only, and agents verify it all again.

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/rap-fabric/core/agentapi"
	"io"
	"strings"

	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5"

	"github.com/rap-fabric/core/fsm"
	"github.com/rap-fabric/core/release"
	"github.com/rap-fabric/core/store"
)

// DefaultReleaseChunkSize is the largest artifact chunk an upload may carry
// when ReleasesConfig.MaxChunk is zero (512 KiB: a chunk in a JSON body
// stays under the API's 1 MiB body limit).
const DefaultReleaseChunkSize = 512 << 10

// ReleasesConfig configures the version storage service. The zero value is
// usable.
type ReleasesConfig struct {
	// MaxChunk bounds one uploaded chunk in bytes; 0 means
	// DefaultReleaseChunkSize. At most 1 MiB (the chunk table's limit).
	MaxChunk int
	// Logger; nil means the authority's logger.
	Logger hclog.Logger
}

// Validate reports the first unusable field of c as a *ConfigError (Field
// relative to ReleasesConfig). Zero values mean defaults.
func (c ReleasesConfig) Validate() error {
	if c.MaxChunk < 0 || c.MaxChunk > 1<<20 {
		return configErr("MaxChunk", "%d out of 0..%d", c.MaxChunk, 1<<20)
	}
	return nil
}

// Releases is the version storage service of one authority process.
type Releases struct {
	a   *Authority
	cfg ReleasesConfig
	log hclog.Logger
}

// newReleases builds the version storage service on a. It performs no I/O.
func newReleases(a *Authority, cfg ReleasesConfig) (*Releases, error) {
	if a == nil {
		return nil, errors.New("releases: nil authority")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.MaxChunk == 0 {
		cfg.MaxChunk = DefaultReleaseChunkSize
	}
	if cfg.Logger == nil {
		cfg.Logger = a.log
	}
	return &Releases{a: a, cfg: cfg, log: cfg.Logger.Named("releases")}, nil
}

// MaxChunk returns the largest chunk an upload may carry.
func (r *Releases) MaxChunk() int { return r.cfg.MaxChunk }

// releaseError maps a release verification error to an API error whose
// details carry the stable reason (release.Reason).
func releaseError(what string, err error) *Error {
	return &Error{Code: CodeInvalid, Message: what + ": " + err.Error(), Details: map[string]any{"reason": release.Reason(err)}, Err: err}
}

// RootKey is one release root public key as the API shows it.
type RootKey struct {
	KeyID     string `json:"key_id"`
	PublicKey []byte `json:"public_key"`
}

// RootsView is the registered release root key set.
type RootsView struct {
	// Registered is false before the first registration (then the rest is
	// zero).
	Registered bool      `json:"registered"`
	Version    uint64    `json:"version"`
	Threshold  int       `json:"threshold"`
	Keys       []RootKey `json:"keys"`
	SetBy      string    `json:"set_by,omitempty"`
	Reason     string    `json:"reason,omitempty"`
	RaftIndex  uint64    `json:"raft_index"`
}

// Roots returns the registered release root key set (a read: any authority
// answers from its replicated state).
func (r *Releases) Roots() RootsView {
	fr, ok := r.a.state.ReleaseRoots()
	if !ok {
		return RootsView{Keys: []RootKey{}}
	}
	v := RootsView{Registered: true, Version: fr.Version, Threshold: fr.Threshold, SetBy: fr.Actor, Reason: fr.Reason, RaftIndex: fr.Index}
	for _, k := range fr.Keys {
		v.Keys = append(v.Keys, RootKey{KeyID: release.KeyID(k), PublicKey: k})
	}
	return v
}

// trustRoots returns the registered roots as package release wants them.
func (r *Releases) trustRoots() (release.Roots, uint64, error) {
	fr, ok := r.a.state.ReleaseRoots()
	if !ok {
		return release.Roots{}, 0, Errf(CodeConflict, "no release root keys are registered: register them first (rapctl release roots set)")
	}
	roots := release.Roots{Threshold: fr.Threshold}
	for _, k := range fr.Keys {
		roots.Keys = append(roots.Keys, ed25519.PublicKey(k))
	}
	return roots, fr.Version, nil
}

// SetRootsRequest is the body of PUT /v1/releases/roots.
type SetRootsRequest struct {
	// PrevVersion is the version being replaced (0 for the first
	// registration): a concurrent change makes the request fail instead of
	// being silently overwritten.
	PrevVersion uint64 `json:"prev_version"`
	// Threshold is how many distinct roots must sign a key set.
	Threshold int `json:"threshold"`
	// Keys are the root public keys (32 bytes each, base64 in JSON).
	Keys [][]byte `json:"keys"`
	// Reason is shown in the audit log (required).
	Reason string `json:"reason"`
}

// SetRoots registers or replaces the release root key set: agreed through
// Raft, then audited in a fenced transaction. Dropping a key revokes it.
// With an Idempotency-Key a retry after the Raft commit only audits.
func (r *Releases) SetRoots(ctx context.Context, actor Actor, req SetRootsRequest, idemKey string) (RootsView, error) {
	req.Reason = strings.TrimSpace(req.Reason)
	if req.Reason == "" || len(req.Reason) > 500 {
		return RootsView{}, Errf(CodeInvalid, "reason is required (at most 500 characters)")
	}
	roots := release.Roots{Threshold: req.Threshold}
	ids := make([]string, 0, len(req.Keys))
	for _, k := range req.Keys {
		roots.Keys = append(roots.Keys, ed25519.PublicKey(k))
		if len(k) == ed25519.PublicKeySize {
			ids = append(ids, release.KeyID(k))
		}
	}
	if err := roots.Validate(); err != nil {
		return RootsView{}, releaseError("release roots", err)
	}
	op := Op{Action: "release.roots.set", Actor: actor, TargetKind: "release_roots", TargetID: "release-roots", IdempotencyKey: idemKey,
		Details: map[string]any{"prev_version": req.PrevVersion, "threshold": req.Threshold, "key_ids": ids, "reason": req.Reason}}
	cur, had := r.a.state.ReleaseRoots()
	retry := idemKey != "" && had && cur.Version == req.PrevVersion+1 && cur.Actor == actor.ID && cur.Threshold == req.Threshold &&
		cur.Reason == req.Reason && sameKeys(cur.Keys, req.Keys)
	if !retry {
		if _, err := r.a.ensureLeader(); err != nil {
			return RootsView{}, err
		}
		reqID := ""
		if idemKey != "" {
			reqID = "release-roots|" + actor.ID + "|" + idemKey
		}
		if _, err := r.a.apply(ctx, reqID, fsm.SetReleaseRoots{PrevVersion: req.PrevVersion, Threshold: req.Threshold, Keys: req.Keys,
			Actor: actor.ID, Reason: req.Reason, At: r.a.cfg.Clock()}); err != nil {
			var ae *Error
			if errors.As(err, &ae) && errors.Is(err, fsm.ErrReleaseRootsConflict) {
				ae.Code = CodeConflict
				ae.Details = map[string]any{"current_version": cur.Version}
			}
			r.a.auditFailure(ctx, op, asError(err))
			return RootsView{}, err
		}
	}
	v := r.Roots()
	if _, err := Fenced(ctx, r.a, op, func(pgx.Tx) (RootsView, error) { return v, nil }); err != nil {
		return RootsView{}, err
	}
	r.log.Info("release root keys set", "version", v.Version, "threshold", v.Threshold, "actor", actor.ID)
	return v, nil
}

func sameKeys(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// PublishKeySet verifies a root-signed key set against the registered roots
// and stores it (fenced, audited). Its version must be above every published
// one; publishing the newest one again returns it (idempotent).
func (r *Releases) PublishKeySet(ctx context.Context, actor Actor, env release.Envelope, idemKey string) (store.ReleaseKeySet, error) {
	if err := env.Validate(); err != nil {
		return store.ReleaseKeySet{}, releaseError("key set", err)
	}
	// The leader verifies: a follower that has not applied the roots' Raft
	// entry yet would refuse a valid key set instead of redirecting.
	if _, err := r.a.ensureLeader(); err != nil {
		return store.ReleaseKeySet{}, err
	}
	roots, rootsVersion, err := r.trustRoots()
	if err != nil {
		return store.ReleaseKeySet{}, err
	}
	latest, err := store.LatestReleaseKeySet(ctx, r.a.db.Pool)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return store.ReleaseKeySet{}, asError(err)
	}
	if err == nil && latest.Digest == env.Digest() {
		return latest, nil
	}
	ks, verr := release.VerifyKeySet(env, roots, r.a.cfg.Clock(), latest.Version+1)
	op := Op{Action: "release.keyset.publish", Actor: actor, TargetKind: "release_key_set", IdempotencyKey: idemKey,
		Details: map[string]any{"digest": env.Digest()}}
	if verr != nil {
		e := releaseError("key set refused", verr)
		r.a.auditFailure(ctx, op, e)
		return store.ReleaseKeySet{}, e
	}
	raw, err := env.Marshal()
	if err != nil {
		return store.ReleaseKeySet{}, releaseError("key set", err)
	}
	row := store.ReleaseKeySet{Version: ks.Version, Digest: env.Digest(), Envelope: raw, RootsVersion: rootsVersion,
		IssuedAt: ks.IssuedAt, ExpiresAt: ks.ExpiresAt, PublishedBy: actor.ID, RevokedKeyIDs: ks.Revoked}
	for _, k := range ks.SigningKeys {
		row.SigningKeyIDs = append(row.SigningKeyIDs, k.ID)
	}
	op.TargetID = fmt.Sprint(ks.Version)
	op.Details["version"], op.Details["signing_key_ids"], op.Details["revoked_key_ids"] = ks.Version, row.SigningKeyIDs, ks.Revoked
	out, err := Fenced(ctx, r.a, op, func(tx pgx.Tx) (store.ReleaseKeySet, error) { return store.InsertReleaseKeySet(ctx, tx, row) })
	if err != nil {
		return store.ReleaseKeySet{}, err
	}
	r.log.Info("release key set published", "version", ks.Version, "signing_keys", len(ks.SigningKeys), "revoked", len(ks.Revoked), "actor", actor.ID)
	return out, nil
}

// ListKeySets lists published key sets, newest first.
func (r *Releases) ListKeySets(ctx context.Context, p store.Page) ([]store.ReleaseKeySet, error) {
	out, err := store.ListReleaseKeySets(ctx, r.a.db.Pool, p)
	return out, asErrorOrNil(err)
}

// currentKeySet returns the newest published key set, verified again
// against the registered roots (a root rotation can retire it).
func (r *Releases) currentKeySet(ctx context.Context) (release.KeySet, store.ReleaseKeySet, error) {
	row, err := store.LatestReleaseKeySet(ctx, r.a.db.Pool)
	if errors.Is(err, store.ErrNotFound) {
		return release.KeySet{}, store.ReleaseKeySet{}, Errf(CodeConflict, "no release key set is published: publish one first (rapctl release keyset publish)")
	}
	if err != nil {
		return release.KeySet{}, store.ReleaseKeySet{}, asError(err)
	}
	roots, _, err := r.trustRoots()
	if err != nil {
		return release.KeySet{}, store.ReleaseKeySet{}, err
	}
	env, err := release.Unmarshal(row.Envelope, 0)
	if err != nil {
		return release.KeySet{}, store.ReleaseKeySet{}, releaseError("stored key set", err)
	}
	ks, err := release.VerifyKeySet(env, roots, r.a.cfg.Clock(), 0)
	if err != nil {
		return release.KeySet{}, store.ReleaseKeySet{}, releaseError("the newest key set no longer verifies against the release roots", err)
	}
	return ks, row, nil
}

// ReleaseView is a release as the owner API shows it: the stored record with
// its platforms and upload progress, and the decoded signed manifest.
type ReleaseView struct {
	store.Release
	Manifest release.Manifest `json:"manifest"`
}

func viewOf(rel store.Release) (ReleaseView, error) {
	env, err := release.Unmarshal(rel.Envelope, 0)
	if err != nil {
		return ReleaseView{}, releaseError("stored manifest", err)
	}
	m, err := release.DecodeManifest(env.Payload)
	if err != nil {
		return ReleaseView{}, releaseError("stored manifest", err)
	}
	return ReleaseView{Release: rel, Manifest: m}, nil
}

// Publish verifies a signed manifest against the newest key set and stores
// it with its platforms (fenced, audited). Its artifacts are recorded by
// content address; bytes already stored for another release are reused.
// Publishing the same manifest again returns the stored release.
func (r *Releases) Publish(ctx context.Context, actor Actor, env release.Envelope, idemKey string) (ReleaseView, error) {
	if err := env.Validate(); err != nil {
		return ReleaseView{}, releaseError("manifest", err)
	}
	if _, err := r.a.ensureLeader(); err != nil { // the leader verifies (see PublishKeySet)
		return ReleaseView{}, err
	}
	if rel, err := store.GetReleaseByDigest(ctx, r.a.db.Pool, env.Digest()); err == nil {
		return viewOf(rel)
	} else if !errors.Is(err, store.ErrNotFound) {
		return ReleaseView{}, asError(err)
	}
	ks, ksRow, err := r.currentKeySet(ctx)
	if err != nil {
		return ReleaseView{}, err
	}
	op := Op{Action: "release.publish", Actor: actor, TargetKind: "release", IdempotencyKey: idemKey, Details: map[string]any{"digest": env.Digest()}}
	m, verr := release.VerifyManifestSignature(env, ks, r.a.cfg.Clock(), 0)
	if verr != nil {
		e := releaseError("manifest refused", verr)
		r.a.auditFailure(ctx, op, e)
		return ReleaseView{}, e
	}
	raw, err := env.Marshal()
	if err != nil {
		return ReleaseView{}, releaseError("manifest", err)
	}
	mig, err := json.Marshal(m.Migration)
	if err != nil {
		return ReleaseView{}, asError(err)
	}
	rel := store.Release{ID: store.NewID(), Product: m.Product, Version: m.Version, Digest: env.Digest(), Envelope: raw,
		SigningKeyID: env.Signatures[0].KeyID, KeySetVersion: ksRow.Version, MinUpgradeFrom: m.MinUpgradeFrom,
		PostgresSchema: int(m.Migration.PostgresSchema), Migration: mig, SourceRevision: m.Provenance.SourceRevision,
		BuildTime: m.Provenance.BuildTime, IssuedAt: m.IssuedAt, ExpiresAt: m.ExpiresAt, PublishedBy: actor.ID}
	for _, c := range m.Channels {
		rel.Channels = append(rel.Channels, string(c))
	}
	for _, a := range m.Artifacts {
		rel.Platforms = append(rel.Platforms, store.ReleasePlatform{OS: a.OS, Arch: a.Arch, SHA256: a.SHA256, Size: a.Size})
	}
	op.TargetID = rel.ID
	op.Details["product"], op.Details["version"], op.Details["signing_key_id"] = m.Product, m.Version, rel.SigningKeyID
	op.Details["key_set_version"], op.Details["channels"] = ksRow.Version, rel.Channels
	out, err := Fenced(ctx, r.a, op, func(tx pgx.Tx) (store.Release, error) {
		for _, a := range m.Artifacts {
			if _, err := store.EnsureReleaseArtifact(ctx, tx, a.SHA256, a.Size); err != nil {
				return store.Release{}, err
			}
		}
		return store.InsertRelease(ctx, tx, rel)
	})
	if err != nil {
		if CodeOf(err) == CodeConflict {
			return ReleaseView{}, &Error{Code: CodeConflict, Message: fmt.Sprintf("%s %s is already published with another manifest", m.Product, m.Version), Err: err}
		}
		return ReleaseView{}, err
	}
	r.log.Info("release published", "product", m.Product, "version", m.Version, "digest", rel.Digest, "actor", actor.ID)
	return viewOf(out)
}

// GetRelease returns a release by id or "product@version".
func (r *Releases) GetRelease(ctx context.Context, ref string) (ReleaseView, error) {
	var rel store.Release
	var err error
	if p, v, ok := strings.Cut(ref, "@"); ok {
		rel, err = store.GetReleaseByVersion(ctx, r.a.db.Pool, p, v)
	} else {
		rel, err = store.GetRelease(ctx, r.a.db.Pool, ref)
	}
	if err != nil {
		return ReleaseView{}, asError(err)
	}
	return viewOf(rel)
}

// ListReleases lists releases newest first (of one product when given).
func (r *Releases) ListReleases(ctx context.Context, product string, p store.Page) ([]store.Release, error) {
	out, err := store.ListReleases(ctx, r.a.db.Pool, product, p)
	return out, asErrorOrNil(err)
}

func validSHA(s string) bool {
	if len(s) != 64 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil && strings.ToLower(s) == s
}

// Artifact returns an artifact's upload state.
func (r *Releases) Artifact(ctx context.Context, sha string) (store.ReleaseArtifact, error) {
	if !validSHA(sha) {
		return store.ReleaseArtifact{}, Errf(CodeInvalid, "artifact id must be 64 lowercase hex digits (sha256)")
	}
	a, err := store.GetReleaseArtifact(ctx, r.a.db.Pool, sha)
	return a, asErrorOrNil(err)
}

// UploadChunk stores data at offset of a published release's artifact.
// Offsets must follow the stored bytes exactly (resume from Received; a
// chunk that was already stored is acknowledged again). When the last byte
// arrives the artifact is verified by streaming it back from PostgreSQL:
// matching bytes become complete and immutable (audited), anything else is
// discarded and must be uploaded again (audited, reason
// artifact_mismatch). Leader only; each chunk commits under the fence.
func (r *Releases) UploadChunk(ctx context.Context, actor Actor, sha string, offset int64, data []byte) (store.ReleaseArtifact, error) {
	if !validSHA(sha) {
		return store.ReleaseArtifact{}, Errf(CodeInvalid, "artifact id must be 64 lowercase hex digits (sha256)")
	}
	if len(data) == 0 || len(data) > r.cfg.MaxChunk {
		return store.ReleaseArtifact{}, Errf(CodeInvalid, "a chunk carries 1..%d bytes", r.cfg.MaxChunk)
	}
	epoch, err := r.a.ensureLeader()
	if err != nil {
		return store.ReleaseArtifact{}, err
	}
	var out store.ReleaseArtifact
	err = r.a.db.Fenced(ctx, epoch, func(tx pgx.Tx) error {
		a, err := store.LockReleaseArtifact(ctx, tx, sha)
		if err != nil {
			return err
		}
		switch {
		case a.Complete || offset+int64(len(data)) <= a.Received:
			out = a // already stored: a retried chunk
			return nil
		case offset != a.Received:
			return &Error{Code: CodeConflict, Message: fmt.Sprintf("the next chunk must start at byte %d", a.Received),
				Details: map[string]any{"received": a.Received, "size": a.Size}}
		case a.Received+int64(len(data)) > a.Size:
			return Errf(CodeInvalid, "chunk ends at byte %d, past the artifact's %d bytes", a.Received+int64(len(data)), a.Size)
		}
		out, err = store.AppendReleaseArtifactChunk(ctx, tx, sha, offset, data)
		return err
	})
	if err != nil {
		ae := asError(err)
		if ae.Code == CodeStaleEpoch {
			r.a.fenceEpoch.CompareAndSwap(epoch, 0)
		}
		return store.ReleaseArtifact{}, ae
	}
	if out.Complete || out.Received < out.Size {
		return out, nil
	}
	return r.finish(ctx, actor, out)
}

// finish verifies a fully received artifact by streaming its chunks through
// sha256, then completes or resets it.
func (r *Releases) finish(ctx context.Context, actor Actor, a store.ReleaseArtifact) (store.ReleaseArtifact, error) {
	d := release.NewDigester(release.Artifact{OS: "any", Arch: "any", SHA256: a.SHA256, Size: a.Size})
	if err := store.StreamReleaseArtifact(ctx, r.a.db.Pool, a.SHA256, 0, func(b []byte) error { _, err := d.Write(b); return err }); err != nil && !errors.Is(err, release.ErrArtifactMismatch) {
		return store.ReleaseArtifact{}, asError(err)
	}
	verr := d.Verify()
	op := Op{Action: "release.artifact.complete", Actor: actor, TargetKind: "release_artifact", TargetID: a.SHA256,
		Details: map[string]any{"size": a.Size, "generation": a.Generation}}
	if verr != nil {
		op.Action = "release.artifact.reject"
		op.Details["reason"] = release.Reason(verr)
		if _, err := Fenced(ctx, r.a, op, func(tx pgx.Tx) (bool, error) {
			return true, store.ResetReleaseArtifact(ctx, tx, a.SHA256, a.Generation)
		}); err != nil {
			return store.ReleaseArtifact{}, err
		}
		return store.ReleaseArtifact{}, &Error{Code: CodeInvalid, Message: "the uploaded bytes do not match the signed manifest; they were discarded, upload again from byte 0",
			Details: map[string]any{"reason": release.Reason(verr), "received": 0, "size": a.Size}, Err: verr}
	}
	done, err := Fenced(ctx, r.a, op, func(tx pgx.Tx) (bool, error) {
		ok, err := store.CompleteReleaseArtifact(ctx, tx, a.SHA256, a.Generation)
		if err == nil && !ok {
			err = Errf(CodeConflict, "the artifact changed while it was verified; check its state and retry")
		}
		return ok, err
	})
	if err != nil || !done {
		return store.ReleaseArtifact{}, err
	}
	r.log.Info("release artifact complete", "sha256", a.SHA256, "size", a.Size, "actor", actor.ID)
	return store.GetReleaseArtifact(ctx, r.a.db.Pool, a.SHA256)
}

// AgentRelease is what an agent fetches before it downloads: the signed
// manifest and the key set that signs it, both as signed (the agent
// verifies them against the root keys pinned in its snapshot).
type AgentRelease = agentapi.AgentRelease

// AgentManifest returns a published, available release of product at
// version for an authenticated node.
func (r *Releases) AgentManifest(ctx context.Context, node NodePrincipal, product, version string) (AgentRelease, error) {
	rel, err := store.GetReleaseByVersion(ctx, r.a.db.Pool, product, version)
	if err != nil {
		return AgentRelease{}, asError(err)
	}
	if rel.Status != "published" || !rel.Available {
		return AgentRelease{}, Errf(CodeNotFound, "release %s %s is not available", product, version)
	}
	ks, err := store.GetReleaseKeySet(ctx, r.a.db.Pool, rel.KeySetVersion)
	if err != nil {
		return AgentRelease{}, asError(err)
	}
	if latest, err := store.LatestReleaseKeySet(ctx, r.a.db.Pool); err == nil {
		ks = latest // the newest set carries the newest revocations
	}
	return AgentRelease{Manifest: rel.Envelope, KeySet: ks.Envelope}, nil
}

// ServeArtifact writes an artifact's bytes from offset on to w, chunk by
// chunk, if they are complete and named by a published release; size is
// called first with the number of bytes that will follow. Nothing else is
// ever served.
func (r *Releases) ServeArtifact(ctx context.Context, node NodePrincipal, sha string, offset int64, size func(int64), w io.Writer) error {
	if !validSHA(sha) {
		return Errf(CodeInvalid, "artifact id must be 64 lowercase hex digits (sha256)")
	}
	a, ok, err := store.ReleaseArtifactServable(ctx, r.a.db.Pool, sha)
	if err != nil {
		return asError(err)
	}
	if !ok {
		return Errf(CodeNotFound, "artifact %s is not available", sha)
	}
	if offset < 0 || offset > a.Size {
		return Errf(CodeInvalid, "offset must be within 0..%d", a.Size)
	}
	size(a.Size - offset)
	return store.StreamReleaseArtifact(ctx, r.a.db.Pool, sha, offset, func(b []byte) error {
		_, err := w.Write(b)
		return err
	})
}
