package release

import (
	"cmp"
	"crypto/ed25519"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"
)

// ValidProduct reports whether p is a plausible product name: 1..64
// characters of [a-z0-9-], starting with a letter.
func ValidProduct(p string) bool { return token(p, 64) && p[0] >= 'a' && p[0] <= 'z' }

// token: 1..max characters of [a-z0-9-].
func token(s string, max int) bool {
	if s == "" || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

func hexSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func text(s string) bool {
	if len(s) > MaxTextLen {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

func validWindow(issued, expires time.Time) error {
	if issued.IsZero() || expires.IsZero() || !expires.After(issued) {
		return fmt.Errorf("issued_at/expires_at missing or expires_at not after issued_at")
	}
	if issued.Year() < 2000 || expires.Year() > 9999 {
		return fmt.Errorf("issued_at/expires_at out of range")
	}
	return nil
}

// Validate checks the root set: 1..MaxRootKeys distinct 32-byte keys and
// 1 <= Threshold <= len(Keys). A returned error wraps ErrInvalid.
func (r Roots) Validate() error {
	if len(r.Keys) == 0 || len(r.Keys) > MaxRootKeys {
		return rerr(ErrInvalid, "roots: %d keys, want 1..%d", len(r.Keys), MaxRootKeys)
	}
	if r.Threshold < 1 || r.Threshold > len(r.Keys) {
		return rerr(ErrInvalid, "roots: threshold %d, want 1..%d", r.Threshold, len(r.Keys))
	}
	seen := map[string]bool{}
	for i, k := range r.Keys {
		if len(k) != ed25519.PublicKeySize {
			return rerr(ErrInvalid, "roots: key %d has %d bytes", i, len(k))
		}
		id := KeyID(k)
		if seen[id] {
			return rerr(ErrInvalid, "roots: duplicate key %s", id)
		}
		seen[id] = true
	}
	return nil
}

// IDs returns the key ids of the roots, in order.
func (r Roots) IDs() []string {
	out := make([]string, len(r.Keys))
	for i, k := range r.Keys {
		out[i] = KeyID(k)
	}
	return out
}

func (k *KeySet) normalize() {
	k.IssuedAt, k.ExpiresAt = k.IssuedAt.UTC(), k.ExpiresAt.UTC()
	k.SigningKeys = slices.Clone(k.SigningKeys)
	for i := range k.SigningKeys {
		if k.SigningKeys[i].ID == "" && len(k.SigningKeys[i].Public) == ed25519.PublicKeySize {
			k.SigningKeys[i].ID = KeyID(k.SigningKeys[i].Public)
		}
	}
	slices.SortFunc(k.SigningKeys, func(a, b SigningKey) int { return cmp.Compare(a.ID, b.ID) })
	k.Revoked = slices.Clone(k.Revoked)
	slices.Sort(k.Revoked)
	if len(k.Revoked) == 0 {
		k.Revoked = nil
	}
}

func (k KeySet) validate() error {
	if k.Version == 0 {
		return fmt.Errorf("key set version must be > 0")
	}
	if len(k.SigningKeys) == 0 || len(k.SigningKeys) > MaxSigningKeys || len(k.Revoked) > MaxSigningKeys {
		return fmt.Errorf("key set has %d signing keys and %d revocations, want 1..%d and <= %d", len(k.SigningKeys), len(k.Revoked), MaxSigningKeys, MaxSigningKeys)
	}
	for i, s := range k.SigningKeys {
		if len(s.Public) != ed25519.PublicKeySize || s.ID != KeyID(s.Public) {
			return fmt.Errorf("signing key %d: bad public key or id", i)
		}
		if i > 0 && k.SigningKeys[i-1].ID >= s.ID {
			return fmt.Errorf("signing keys not sorted or duplicated at %s", s.ID)
		}
	}
	for i, r := range k.Revoked {
		if !token(r, 16) || len(r) != 16 {
			return fmt.Errorf("revoked key id %q malformed", r)
		}
		if i > 0 && k.Revoked[i-1] >= r {
			return fmt.Errorf("revoked ids not sorted or duplicated at %s", r)
		}
		if _, ok := k.Key(r); ok {
			return fmt.Errorf("key %s is both valid and revoked", r)
		}
	}
	return validWindow(k.IssuedAt, k.ExpiresAt)
}

func (m *Manifest) normalize() {
	m.IssuedAt, m.ExpiresAt = m.IssuedAt.UTC(), m.ExpiresAt.UTC()
	m.Provenance.BuildTime = m.Provenance.BuildTime.UTC()
	m.Channels = slices.Clone(m.Channels)
	slices.Sort(m.Channels)
	m.Artifacts = slices.Clone(m.Artifacts)
	slices.SortFunc(m.Artifacts, func(a, b Artifact) int {
		return cmp.Or(cmp.Compare(a.OS, b.OS), cmp.Compare(a.Arch, b.Arch))
	})
	for _, sc := range []**SchemaChange{&m.Migration.NodeState, &m.Migration.ServiceState, &m.Migration.ConfigSchema, &m.Migration.ProtocolSchema} {
		if *sc == nil {
			continue
		}
		c := **sc // copy: never mutate the caller's change
		c.Preflight = slices.Clone(c.Preflight)
		if len(c.Preflight) == 0 {
			c.Preflight = nil
		}
		if c.Command != nil {
			cmd := *c.Command
			cmd.Args = slices.Clone(cmd.Args)
			if len(cmd.Args) == 0 {
				cmd.Args = nil
			}
			c.Command = &cmd
		}
		*sc = &c
	}
}

func (m Manifest) validate() error {
	if !ValidProduct(m.Product) {
		return fmt.Errorf("product %q invalid", m.Product)
	}
	v, err := ParseVersion(m.Version)
	if err != nil {
		return err
	}
	if len(m.Channels) == 0 || len(m.Channels) > 3 {
		return fmt.Errorf("channels: want 1..3")
	}
	for i, c := range m.Channels {
		if !c.Valid() {
			return fmt.Errorf("channel %q unknown", c)
		}
		if i > 0 && m.Channels[i-1] >= c {
			return fmt.Errorf("channels not sorted or duplicated")
		}
	}
	if len(m.Artifacts) == 0 || len(m.Artifacts) > MaxArtifacts {
		return fmt.Errorf("artifacts: %d, want 1..%d", len(m.Artifacts), MaxArtifacts)
	}
	for i, a := range m.Artifacts {
		if !token(a.OS, 16) || !token(a.Arch, 16) {
			return fmt.Errorf("artifact %d: bad os/arch %q", i, a.Platform())
		}
		if !hexSHA256(a.SHA256) {
			return fmt.Errorf("artifact %s: sha256 must be 64 lowercase hex digits", a.Platform())
		}
		if a.Size < 1 || a.Size > MaxArtifactSize {
			return fmt.Errorf("artifact %s: size %d out of 1..%d", a.Platform(), a.Size, MaxArtifactSize)
		}
		if i > 0 {
			p := m.Artifacts[i-1]
			if cmp.Or(cmp.Compare(p.OS, a.OS), cmp.Compare(p.Arch, a.Arch)) >= 0 {
				return fmt.Errorf("artifacts not sorted or two for %s", a.Platform())
			}
		}
	}
	if m.MinUpgradeFrom != "" {
		min, err := ParseVersion(m.MinUpgradeFrom)
		if err != nil {
			return fmt.Errorf("min_upgrade_from: %w", err)
		}
		if min.Compare(v) > 0 {
			return fmt.Errorf("min_upgrade_from %s above version %s", m.MinUpgradeFrom, m.Version)
		}
	}
	for name, sc := range map[string]*SchemaChange{"node_state": m.Migration.NodeState, "service_state": m.Migration.ServiceState, "config_schema": m.Migration.ConfigSchema, "protocol_schema": m.Migration.ProtocolSchema} {
		if sc == nil {
			continue
		}
		if sc.To <= sc.From {
			return fmt.Errorf("migration %s: to %d must be above from %d", name, sc.To, sc.From)
		}
		switch sc.Rollback {
		case RollbackReverse, RollbackRestoreBackup, RollbackNone:
		default:
			return fmt.Errorf("migration %s: rollback %q unknown", name, sc.Rollback)
		}
		if sc.Rollback == RollbackRestoreBackup && !sc.BackupRequired {
			return fmt.Errorf("migration %s: restore_backup rollback needs backup_required", name)
		}
		if len(sc.Preflight) > MaxPreflight {
			return fmt.Errorf("migration %s: more than %d preflight checks", name, MaxPreflight)
		}
		for _, p := range sc.Preflight {
			if p == "" || !text(p) {
				return fmt.Errorf("migration %s: bad preflight check", name)
			}
		}
		if c := sc.Command; c != nil {
			if name != "service_state" {
				return fmt.Errorf("migration %s: only service_state declares a command", name)
			}
			if c.Path == "" || !text(c.Path) || (c.Path != "." && (path.IsAbs(c.Path) || path.Clean(c.Path) != c.Path || c.Path == ".." || strings.HasPrefix(c.Path, "../"))) {
				return fmt.Errorf("migration %s: command path must be a clean relative path inside the artifact", name)
			}
			if len(c.Args) > MaxPreflight {
				return fmt.Errorf("migration %s: more than %d command args", name, MaxPreflight)
			}
			for _, a := range c.Args {
				if !text(a) {
					return fmt.Errorf("migration %s: bad command arg", name)
				}
			}
			if c.TimeoutSeconds < 1 || c.TimeoutSeconds > MaxMigrationSeconds {
				return fmt.Errorf("migration %s: command timeout_seconds out of 1..%d", name, MaxMigrationSeconds)
			}
		}
	}
	pv := m.Provenance
	if pv.SourceRevision == "" || !text(pv.SourceRevision) || !text(pv.Builder) || pv.BuildTime.IsZero() {
		return fmt.Errorf("provenance: source_revision and build_time required, text fields printable and <= %d bytes", MaxTextLen)
	}
	return validWindow(m.IssuedAt, m.ExpiresAt)
}
