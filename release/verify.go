package release

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"time"
)

// DefaultClockSkew is how far IssuedAt may lie ahead of the verifier's
// clock when Expect.ClockSkew is zero.
const DefaultClockSkew = 5 * time.Minute

func checkWindow(issued, expires, now time.Time, skew time.Duration, what string) error {
	if skew == 0 {
		skew = DefaultClockSkew
	}
	if issued.After(now.Add(skew)) {
		return rerr(ErrNotYetValid, "%s issued %s, now %s", what, issued.Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	if !now.Before(expires) {
		return rerr(ErrExpired, "%s expired %s, now %s", what, expires.Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	return nil
}

// VerifyKeySet checks a key-set envelope against the registered roots and
// returns the key set. Order: roots usable, kind, signatures (only distinct
// registered roots whose signature verifies count; signatures by retired
// roots are ignored once the threshold is met, otherwise the first unknown
// key or bad signature is the reason), threshold, payload decoding,
// validity window at now, version not older than minVersion (the last
// applied key set version; 0 accepts any). Nothing of the payload is parsed
// before the threshold is met.
func VerifyKeySet(e Envelope, roots Roots, now time.Time, minVersion uint64) (KeySet, error) {
	if err := roots.Validate(); err != nil {
		return KeySet{}, err
	}
	if e.Kind != KindKeySet {
		return KeySet{}, rerr(ErrMalformed, "envelope kind %q, want %q", e.Kind, KindKeySet)
	}
	byID := make(map[string]ed25519.PublicKey, len(roots.Keys))
	for _, k := range roots.Keys {
		byID[KeyID(k)] = k
	}
	valid := map[string]bool{}
	var firstBad error
	opts := signOptions(KindKeySet)
	for _, s := range e.Signatures {
		pub, ok := byID[s.KeyID]
		switch {
		case !ok:
			if firstBad == nil {
				firstBad = rerr(ErrUnknownKey, "key set signed by %s, not a registered root", s.KeyID)
			}
		case ed25519.VerifyWithOptions(pub, e.Payload, s.Sig, opts) != nil:
			if firstBad == nil {
				firstBad = rerr(ErrBadSignature, "root %s", s.KeyID)
			}
		default:
			valid[s.KeyID] = true
		}
	}
	if len(valid) < roots.Threshold {
		if firstBad != nil {
			return KeySet{}, firstBad
		}
		return KeySet{}, rerr(ErrThreshold, "%d distinct root signatures, threshold %d", len(valid), roots.Threshold)
	}
	ks, err := DecodeKeySet(e.Payload)
	if err != nil {
		return KeySet{}, err
	}
	if err := checkWindow(ks.IssuedAt, ks.ExpiresAt, now, 0, "key set"); err != nil {
		return KeySet{}, err
	}
	if ks.Version < minVersion {
		return KeySet{}, rerr(ErrStaleKeySet, "key set version %d < applied %d", ks.Version, minVersion)
	}
	return ks, nil
}

// Expect is what a verifier of a manifest already knows.
type Expect struct {
	// Product is the product the verifier runs or installs.
	Product string
	// OS and Arch select the artifact (GOOS/GOARCH spelling).
	OS, Arch string
	// Channel, when set, must be among the manifest's channels.
	Channel Channel
	// Current is the installed version ("" on first install): the manifest
	// must not be lower unless AllowDowngradeTo names exactly its version,
	// and Current must not be below MinUpgradeFrom.
	Current string
	// AllowDowngradeTo is the version a signed rollback or emergency pin
	// (from the verifier's signed snapshot) explicitly allows, or "".
	AllowDowngradeTo string
	// Blocklist lists versions that must be refused.
	Blocklist []string
	// Now is the verifier's clock reading.
	Now time.Time
	// ClockSkew: see DefaultClockSkew.
	ClockSkew time.Duration
	// KeySet is the verified key set (VerifyKeySet).
	KeySet KeySet
}

// VerifyManifestSignature checks what every holder of a manifest checks,
// whatever it runs: kind, exactly one signature, key (revoked before
// unknown), signature, payload decoding and the validity window at now. The
// authority calls it on publish; agents call VerifyManifest.
func VerifyManifestSignature(env Envelope, ks KeySet, now time.Time, skew time.Duration) (Manifest, error) {
	if env.Kind != KindManifest {
		return Manifest{}, rerr(ErrMalformed, "envelope kind %q, want %q", env.Kind, KindManifest)
	}
	if len(env.Signatures) != 1 {
		return Manifest{}, rerr(ErrMalformed, "manifest has %d signatures, want 1", len(env.Signatures))
	}
	s := env.Signatures[0]
	if ks.IsRevoked(s.KeyID) {
		return Manifest{}, rerr(ErrRevokedKey, "signing key %s", s.KeyID)
	}
	k, ok := ks.Key(s.KeyID)
	if !ok {
		return Manifest{}, rerr(ErrUnknownKey, "signing key %s not in key set v%d", s.KeyID, ks.Version)
	}
	if ed25519.VerifyWithOptions(k.Public, env.Payload, s.Sig, signOptions(KindManifest)) != nil {
		return Manifest{}, rerr(ErrBadSignature, "signing key %s", s.KeyID)
	}
	m, err := DecodeManifest(env.Payload)
	if err != nil {
		return Manifest{}, err
	}
	if err := checkWindow(m.IssuedAt, m.ExpiresAt, now, skew, "manifest "+m.Version); err != nil {
		return Manifest{}, err
	}
	return m, nil
}

// VerifyManifest checks a manifest envelope and returns the manifest and the
// artifact for e.OS/e.Arch. Order: VerifyManifestSignature (kind, one
// signature, key, signature, decoding, validity window), product,
// blocklist, channel, architecture, downgrade, upgrade path. Each failure is
// a *Error wrapping one sentinel.
func VerifyManifest(env Envelope, e Expect) (Manifest, Artifact, error) {
	m, err := VerifyManifestSignature(env, e.KeySet, e.Now, e.ClockSkew)
	if err != nil {
		return Manifest{}, Artifact{}, err
	}
	if m.Product != e.Product {
		return Manifest{}, Artifact{}, rerr(ErrWrongProduct, "manifest for %q, want %q", m.Product, e.Product)
	}
	v, _ := ParseVersion(m.Version) // validated by DecodeManifest
	for _, b := range e.Blocklist {
		if bv, err := ParseVersion(b); err == nil && bv.Compare(v) == 0 {
			return Manifest{}, Artifact{}, rerr(ErrBlocklisted, "version %s", m.Version)
		}
	}
	if e.Channel != "" && !m.Eligible(e.Channel) {
		return Manifest{}, Artifact{}, rerr(ErrWrongChannel, "version %s not eligible for %s", m.Version, e.Channel)
	}
	art, ok := m.Artifact(e.OS, e.Arch)
	if !ok {
		return Manifest{}, Artifact{}, rerr(ErrWrongArch, "version %s has no artifact for %s/%s", m.Version, e.OS, e.Arch)
	}
	if e.Current != "" {
		cur, err := ParseVersion(e.Current)
		if err != nil {
			return Manifest{}, Artifact{}, rerr(ErrInvalid, "current version: %v", err)
		}
		if v.Compare(cur) < 0 {
			allowed := false
			if e.AllowDowngradeTo != "" {
				if av, err := ParseVersion(e.AllowDowngradeTo); err == nil && av.Compare(v) == 0 {
					allowed = true
				}
			}
			if !allowed {
				return Manifest{}, Artifact{}, rerr(ErrDowngrade, "%s < current %s", m.Version, e.Current)
			}
		}
		if m.MinUpgradeFrom != "" {
			min, _ := ParseVersion(m.MinUpgradeFrom)
			if cur.Compare(min) < 0 {
				return Manifest{}, Artifact{}, rerr(ErrUpgradePath, "current %s < min_upgrade_from %s", e.Current, m.MinUpgradeFrom)
			}
		}
	}
	return m, art, nil
}

// Digester checks artifact bytes against the manifest while they stream:
// it is an io.Writer to tee a download into. It never buffers the bytes.
// Write fails with ErrArtifactMismatch as soon as more bytes than the
// declared size arrive, so an endless mirror costs nothing.
type Digester struct {
	want Artifact
	h    hash.Hash
	n    int64
}

// NewDigester returns a Digester for a.
func NewDigester(a Artifact) *Digester {
	return &Digester{want: a, h: sha256.New()}
}

// Write implements io.Writer.
func (d *Digester) Write(p []byte) (int, error) {
	if d.n+int64(len(p)) > d.want.Size {
		return 0, rerr(ErrArtifactMismatch, "%s: more than the declared %d bytes", d.want.Platform(), d.want.Size)
	}
	d.n += int64(len(p))
	d.h.Write(p)
	return len(p), nil
}

// Written returns the number of bytes accepted so far.
func (d *Digester) Written() int64 { return d.n }

// Verify reports whether exactly the declared bytes were written.
func (d *Digester) Verify() error {
	if d.n != d.want.Size {
		return rerr(ErrArtifactMismatch, "%s: %d bytes, declared %d", d.want.Platform(), d.n, d.want.Size)
	}
	if got := hex.EncodeToString(d.h.Sum(nil)); got != d.want.SHA256 {
		return rerr(ErrArtifactMismatch, "%s: sha256 %s, declared %s", d.want.Platform(), got, d.want.SHA256)
	}
	return nil
}
