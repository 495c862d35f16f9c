package release

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// testKey returns a deterministic key; n distinguishes keys.
func testKey(n byte) ed25519.PrivateKey {
	seed := make([]byte, ed25519.SeedSize)
	seed[0] = n
	return ed25519.NewKeyFromSeed(seed)
}

func pubOf(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }

// Keys 1..3 are roots, 10 and 11 signing keys, 12 a revoked signing key.
func testRoots() Roots {
	return Roots{Threshold: 2, Keys: []ed25519.PublicKey{pubOf(testKey(1)), pubOf(testKey(2)), pubOf(testKey(3))}}
}

func testKeySet() KeySet {
	return KeySet{
		Version:     3,
		SigningKeys: []SigningKey{{Public: pubOf(testKey(10))}, {Public: pubOf(testKey(11))}},
		Revoked:     []string{KeyID(pubOf(testKey(12)))},
		IssuedAt:    t0,
		ExpiresAt:   t0.Add(365 * 24 * time.Hour),
	}
}

func mustSign(tb testing.TB, e Envelope, keys ...ed25519.PrivateKey) Envelope {
	tb.Helper()
	for _, k := range keys {
		var err error
		if e, err = Sign(e, k); err != nil {
			tb.Fatal(err)
		}
	}
	return e
}

func signedKeySet(tb testing.TB, ks KeySet, roots ...ed25519.PrivateKey) Envelope {
	tb.Helper()
	e, err := NewKeySetEnvelope(ks)
	if err != nil {
		tb.Fatal(err)
	}
	return mustSign(tb, e, roots...)
}

func sha(b string) string {
	s := sha256.Sum256([]byte(b))
	return hex.EncodeToString(s[:])
}

func testManifest() Manifest {
	return Manifest{
		Product:        ProductNodeAgent,
		Version:        "1.4.0",
		Channels:       []Channel{ChannelCandidate, ChannelCurrent},
		Artifacts:      []Artifact{{OS: "linux", Arch: "arm64", SHA256: sha("arm"), Size: 3}, {OS: "linux", Arch: "amd64", SHA256: sha("amd64"), Size: 5}},
		MinUpgradeFrom: "1.2.0",
		Migration: Migration{
			PostgresSchema: 11,
			NodeState:      &SchemaChange{From: 1, To: 2, Preflight: []string{"bbolt-readable"}, BackupRequired: true, Rollback: RollbackRestoreBackup},
		},
		Provenance: Provenance{SourceRevision: "0123abcd", BuildTime: t0.Add(-time.Hour), Builder: "ci"},
		IssuedAt:   t0,
		ExpiresAt:  t0.Add(30 * 24 * time.Hour),
	}
}

func signedManifest(tb testing.TB, m Manifest, key ed25519.PrivateKey) Envelope {
	tb.Helper()
	e, err := NewManifestEnvelope(m)
	if err != nil {
		tb.Fatal(err)
	}
	return mustSign(tb, e, key)
}

func verifiedKeySet(tb testing.TB) KeySet {
	tb.Helper()
	ks, err := VerifyKeySet(signedKeySet(tb, testKeySet(), testKey(1), testKey(2)), testRoots(), t0, 0)
	if err != nil {
		tb.Fatal(err)
	}
	return ks
}

func expect(tb testing.TB) Expect {
	return Expect{Product: ProductNodeAgent, OS: "linux", Arch: "amd64", Current: "1.3.0", Now: t0.Add(time.Minute), KeySet: verifiedKeySet(tb)}
}

// serviceMigration is a service_state change running path with a timeout.
func serviceMigration(path string, timeout uint32) *SchemaChange {
	return &SchemaChange{From: 1, To: 2, Rollback: RollbackNone, Command: &MigrationCommand{Path: path, Args: []string{"--to", "2"}, TimeoutSeconds: timeout}}
}
