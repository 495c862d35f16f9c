package release

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"time"
)

// Product names. A service workload product is its service type
// ("rdp-worker", "update-cache", …); see ValidProduct.
const (
	ProductNodeAgent = "rap-node-agent"
)

// Channel is a release channel (spec: stable, current, candidate).
type Channel string

// The channels.
const (
	// ChannelStable is the known-good version used for rollback.
	ChannelStable Channel = "stable"
	// ChannelCurrent is the normal intended version for a cluster or ring.
	ChannelCurrent Channel = "current"
	// ChannelCandidate is staged for test and canary rollout.
	ChannelCandidate Channel = "candidate"
)

// Valid reports whether c is one of the three channels.
func (c Channel) Valid() bool {
	return c == ChannelStable || c == ChannelCurrent || c == ChannelCandidate
}

// Limits on documents.
const (
	// MaxArtifacts bounds the artifacts of one manifest.
	MaxArtifacts = 32
	// MaxArtifactSize bounds one artifact (1 GiB).
	MaxArtifactSize int64 = 1 << 30
	// MaxSigningKeys bounds the signing keys (and revocations) of a key set.
	MaxSigningKeys = 64
	// MaxRootKeys bounds the registered root keys.
	MaxRootKeys = 16
	// MaxSignatures bounds the signatures on one envelope.
	MaxSignatures = MaxRootKeys
	// MaxTextLen bounds free-text fields (provenance, preflight checks).
	MaxTextLen = 256
	// MaxPreflight bounds the preflight checks of one schema change.
	MaxPreflight = 16
)

// KeyID returns the id of a public key: hex of the first 8 bytes of
// sha256(pub).
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// Roots is the registered release root key set: the platform owner
// registers it on the authority (replicated through Raft) and agents get it
// pinned in their snapshot. A key set is trusted when at least Threshold
// distinct root keys signed it.
type Roots struct {
	// Threshold is how many distinct root signatures a key set needs
	// (1 <= Threshold <= len(Keys)).
	Threshold int `json:"threshold"`
	// Keys are the root public keys (32 bytes each), distinct.
	Keys []ed25519.PublicKey `json:"keys"`
}

// SigningKey is one release-signing public key listed in a key set.
type SigningKey struct {
	// ID is KeyID(Public); checked on decode.
	ID string `json:"id"`
	// Public is the Ed25519 public key.
	Public ed25519.PublicKey `json:"public"`
}

// KeySet is the root-signed list of release-signing keys. Rotation publishes
// a new KeySet with a higher Version; revocation lists a key id in Revoked
// (a manifest signed by it is then refused as revoked, not merely unknown).
type KeySet struct {
	// Version increases with every new key set; verifiers refuse one older
	// than the last they applied.
	Version uint64 `json:"version"`
	// SigningKeys are the currently valid release-signing keys, sorted by ID.
	SigningKeys []SigningKey `json:"signing_keys"`
	// Revoked are key ids that must never be accepted again, sorted.
	Revoked []string `json:"revoked,omitempty"`
	// IssuedAt and ExpiresAt bound the key set's validity.
	IssuedAt  time.Time `json:"issued_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Key returns the signing key with the given id.
func (k KeySet) Key(id string) (SigningKey, bool) {
	for _, s := range k.SigningKeys {
		if s.ID == id {
			return s, true
		}
	}
	return SigningKey{}, false
}

// IsRevoked reports whether id is revoked.
func (k KeySet) IsRevoked(id string) bool {
	for _, r := range k.Revoked {
		if r == id {
			return true
		}
	}
	return false
}

// Artifact is one OS/architecture build of a release. It is content
// addressed: ContentID() names the bytes.
type Artifact struct {
	// OS and Arch use Go's GOOS/GOARCH spelling ("linux", "amd64").
	OS   string `json:"os"`
	Arch string `json:"arch"`
	// SHA256 is the lowercase hex sha256 of the artifact bytes.
	SHA256 string `json:"sha256"`
	// Size is the exact byte length (1..MaxArtifactSize).
	Size int64 `json:"size"`
}

// ContentID returns the content address of the artifact: "sha256:<hex>".
func (a Artifact) ContentID() string { return "sha256:" + a.SHA256 }

// Platform returns "os/arch".
func (a Artifact) Platform() string { return a.OS + "/" + a.Arch }

// Rollback behaviours of a schema change.
const (
	// RollbackReverse: the change has a declared reverse step.
	RollbackReverse = "reverse"
	// RollbackRestoreBackup: roll back by restoring the pre-change backup.
	RollbackRestoreBackup = "restore_backup"
	// RollbackNone: the change cannot be rolled back; the node is fenced on
	// failure.
	RollbackNone = "none"
)

// SchemaChange declares one data structure change carried by a release.
// Code and data changes are separate concerns in one signed manifest (spec).
type SchemaChange struct {
	// From and To are the schema versions before and after (From < To).
	From uint32 `json:"from"`
	To   uint32 `json:"to"`
	// Preflight names the checks that must pass before the change runs.
	Preflight []string `json:"preflight,omitempty"`
	// BackupRequired: a backup/snapshot of the state must exist first.
	BackupRequired bool `json:"backup_required"`
	// Rollback is RollbackReverse, RollbackRestoreBackup or RollbackNone.
	Rollback string `json:"rollback"`
	// Downgradable: the previous code can run on the new schema.
	Downgradable bool `json:"downgradable"`
	// Command is the migration program (optional; only service_state
	// changes run one): the supervisor runs it before the new instance
	// starts, and a failure rolls the instance back without starting it.
	Command *MigrationCommand `json:"command,omitempty"`
}

// MigrationCommand is a migration program shipped inside the artifact.
type MigrationCommand struct {
	// Path is the program's clean relative path inside the artifact; "."
	// is a single-file artifact itself (a native workload's executable).
	Path string `json:"path"`
	// Args are its arguments (at most MaxPreflight, printable text).
	Args []string `json:"args,omitempty"`
	// TimeoutSeconds bounds its run (1..MaxMigrationSeconds).
	TimeoutSeconds uint32 `json:"timeout_seconds"`
}

// MaxMigrationSeconds bounds a migration command's timeout.
const MaxMigrationSeconds = 3600

// Migration is the migration bundle metadata of a release. PostgreSQL
// schema migrations stay with the control plane: PostgresSchema only names
// the control-plane schema version that must already be applied before the
// authority rolls the release out. Node-local and service-local changes run
// on the node, and only when declared here.
type Migration struct {
	// PostgresSchema is the required applied control-plane schema version
	// (0: no requirement).
	PostgresSchema uint32 `json:"postgres_schema,omitempty"`
	// NodeState is a node-local state (bbolt) schema change.
	NodeState *SchemaChange `json:"node_state,omitempty"`
	// ServiceState is a service-local data schema change.
	ServiceState *SchemaChange `json:"service_state,omitempty"`
	// ConfigSchema is a config/cache shard schema change.
	ConfigSchema *SchemaChange `json:"config_schema,omitempty"`
	// ProtocolSchema is a wire protocol schema change.
	ProtocolSchema *SchemaChange `json:"protocol_schema,omitempty"`
}

// Provenance says where a build came from.
type Provenance struct {
	// SourceRevision is the VCS revision (e.g. a git commit).
	SourceRevision string `json:"source_revision"`
	// BuildTime is when the artifacts were built.
	BuildTime time.Time `json:"build_time"`
	// Builder names the build system or person (optional).
	Builder string `json:"builder,omitempty"`
}

// Manifest is a release: one product version with its artifacts. It is
// signed by one release-signing key.
type Manifest struct {
	// Product is ProductNodeAgent or a service type.
	Product string `json:"product"`
	// Version is a semantic version (ParseVersion).
	Version string `json:"version"`
	// Channels this release is eligible for, sorted, at least one.
	Channels []Channel `json:"channels"`
	// Artifacts, one per OS/architecture, sorted by OS then Arch.
	Artifacts []Artifact `json:"artifacts"`
	// MinUpgradeFrom is the lowest version that may upgrade to this one
	// ("" means any).
	MinUpgradeFrom string `json:"min_upgrade_from,omitempty"`
	// Migration is the migration bundle metadata (zero: none).
	Migration Migration `json:"migration"`
	// Provenance is the build origin.
	Provenance Provenance `json:"provenance"`
	// IssuedAt and ExpiresAt bound the manifest's validity.
	IssuedAt  time.Time `json:"issued_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Artifact returns the artifact for os/arch.
func (m Manifest) Artifact(os, arch string) (Artifact, bool) {
	for _, a := range m.Artifacts {
		if a.OS == os && a.Arch == arch {
			return a, true
		}
	}
	return Artifact{}, false
}

// Eligible reports whether the manifest lists channel c.
func (m Manifest) Eligible(c Channel) bool {
	for _, x := range m.Channels {
		if x == c {
			return true
		}
	}
	return false
}
