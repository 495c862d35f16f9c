package release

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParseVersionAndCompare(t *testing.T) {
	for _, bad := range []string{"", "1", "1.2", "v1.2.3", "01.2.3", "1.2.3-", "1.2.3-01", "1.2.3+", "1.2.3-a..b", "1.2.3 ", "1.2.x", strings.Repeat("1", 65)} {
		_, err := ParseVersion(bad)
		require.ErrorIs(t, err, ErrMalformed, bad)
	}
	// semver.org §11 precedence example, ascending.
	order := []string{"1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.0.1", "1.1.0", "2.0.0", "10.0.0"}
	for i := range order {
		for j := range order {
			c, err := CompareVersions(order[i], order[j])
			require.NoError(t, err)
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			require.Equal(t, want, c, "%s vs %s", order[i], order[j])
		}
	}
	c, err := CompareVersions("1.2.3+build.5", "1.2.3")
	require.NoError(t, err)
	require.Zero(t, c, "build metadata ignored")
	v, err := ParseVersion("1.2.3-rc.1+b7")
	require.NoError(t, err)
	require.Equal(t, "1.2.3-rc.1+b7", v.String())
}

func TestRootsValidate(t *testing.T) {
	r := testRoots()
	require.NoError(t, r.Validate())
	for name, bad := range map[string]Roots{
		"no keys":        {Threshold: 1},
		"zero threshold": {Threshold: 0, Keys: r.Keys},
		"threshold>n":    {Threshold: 4, Keys: r.Keys},
		"short key":      {Threshold: 1, Keys: []ed25519.PublicKey{make([]byte, 31)}},
		"duplicate":      {Threshold: 1, Keys: []ed25519.PublicKey{r.Keys[0], r.Keys[0]}},
	} {
		require.ErrorIs(t, bad.Validate(), ErrInvalid, name)
	}
}

func TestCanonicalRoundTrip(t *testing.T) {
	m := testManifest()
	p1, err := EncodeManifest(m)
	require.NoError(t, err)
	// Same manifest in another order and time zone: same bytes.
	m2 := testManifest()
	m2.Artifacts[0], m2.Artifacts[1] = m2.Artifacts[1], m2.Artifacts[0]
	m2.Channels = []Channel{ChannelCurrent, ChannelCandidate}
	m2.IssuedAt = m2.IssuedAt.In(time.FixedZone("MSK", 3*3600))
	p2, err := EncodeManifest(m2)
	require.NoError(t, err)
	require.Equal(t, p1, p2)
	got, err := DecodeManifest(p1)
	require.NoError(t, err)
	again, err := EncodeManifest(got)
	require.NoError(t, err)
	require.Equal(t, p1, again)
	require.Equal(t, "1.4.0", got.Version)
	require.Equal(t, "amd64", got.Artifacts[0].Arch, "sorted")

	ks, err := EncodeKeySet(testKeySet())
	require.NoError(t, err)
	k, err := DecodeKeySet(ks)
	require.NoError(t, err)
	require.Len(t, k.SigningKeys, 2)
	require.Equal(t, KeyID(k.SigningKeys[0].Public), k.SigningKeys[0].ID)

	// Non-canonical spellings of the same content are refused.
	for name, p := range map[string][]byte{
		"spaces":        bytes.Replace(p1, []byte(`,"version"`), []byte(`, "version"`), 1),
		"unknown field": bytes.Replace(p1, []byte(`{"format":1`), []byte(`{"format":1,"x":1`), 1),
		"time zone":     bytes.Replace(p1, []byte(`"issued_at":"2026-03-01T12:00:00Z"`), []byte(`"issued_at":"2026-03-01T15:00:00+03:00"`), 1),
		"format 2":      bytes.Replace(p1, []byte(`{"format":1`), []byte(`{"format":2`), 1),
		"trailing":      append(bytes.Clone(p1), []byte(" {}")...),
	} {
		require.NotEqual(t, p1, p, name)
		_, err := DecodeManifest(p)
		require.ErrorIs(t, err, ErrMalformed, name)
	}
}

func TestManifestValidation(t *testing.T) {
	for name, mut := range map[string]func(*Manifest){
		"product":             func(m *Manifest) { m.Product = "Bad Product" },
		"version":             func(m *Manifest) { m.Version = "v1.4" },
		"no channel":          func(m *Manifest) { m.Channels = nil },
		"unknown channel":     func(m *Manifest) { m.Channels = []Channel{"beta"} },
		"dup channel":         func(m *Manifest) { m.Channels = []Channel{ChannelStable, ChannelStable} },
		"no artifact":         func(m *Manifest) { m.Artifacts = nil },
		"two per platform":    func(m *Manifest) { m.Artifacts[1].Arch = "arm64" },
		"bad sha":             func(m *Manifest) { m.Artifacts[0].SHA256 = strings.ToUpper(m.Artifacts[0].SHA256) },
		"zero size":           func(m *Manifest) { m.Artifacts[0].Size = 0 },
		"huge size":           func(m *Manifest) { m.Artifacts[0].Size = MaxArtifactSize + 1 },
		"bad os":              func(m *Manifest) { m.Artifacts[0].OS = "Linux" },
		"min above version":   func(m *Manifest) { m.MinUpgradeFrom = "2.0.0" },
		"bad min":             func(m *Manifest) { m.MinUpgradeFrom = "x" },
		"migration backwards": func(m *Manifest) { m.Migration.NodeState.To = 1 },
		"unknown rollback":    func(m *Manifest) { m.Migration.NodeState.Rollback = "pray" },
		"restore w/o backup":  func(m *Manifest) { m.Migration.NodeState.BackupRequired = false },
		"no revision":         func(m *Manifest) { m.Provenance.SourceRevision = "" },
		"control char":        func(m *Manifest) { m.Provenance.Builder = "ci\n" },
		"no build time":       func(m *Manifest) { m.Provenance.BuildTime = time.Time{} },
		"expires before":      func(m *Manifest) { m.ExpiresAt = m.IssuedAt },
		"no issued":           func(m *Manifest) { m.IssuedAt = time.Time{} },
		"command on node state": func(m *Manifest) {
			m.Migration.NodeState.Command = &MigrationCommand{Path: ".", TimeoutSeconds: 5}
		},
		"command escapes":    func(m *Manifest) { m.Migration.ServiceState = serviceMigration("../migrate", 5) },
		"command absolute":   func(m *Manifest) { m.Migration.ServiceState = serviceMigration("/bin/sh", 5) },
		"command unclean":    func(m *Manifest) { m.Migration.ServiceState = serviceMigration("bin//migrate", 5) },
		"command no path":    func(m *Manifest) { m.Migration.ServiceState = serviceMigration("", 5) },
		"command no timeout": func(m *Manifest) { m.Migration.ServiceState = serviceMigration(".", 0) },
		"command long":       func(m *Manifest) { m.Migration.ServiceState = serviceMigration(".", MaxMigrationSeconds+1) },
		"command bad arg": func(m *Manifest) {
			m.Migration.ServiceState = serviceMigration(".", 5)
			m.Migration.ServiceState.Command.Args = []string{"a\x00"}
		},
	} {
		m := testManifest()
		mut(&m)
		_, err := EncodeManifest(m)
		require.ErrorIs(t, err, ErrInvalid, name)
		require.Equal(t, ReasonInvalid, Reason(err), name)
	}
	// Encode never mutates the caller's manifest.
	m := testManifest()
	m.Migration.NodeState.Preflight = []string{}
	_, err := EncodeManifest(m)
	require.NoError(t, err)
	require.NotNil(t, m.Migration.NodeState.Preflight)
}

// TestServiceMigrationCommand: a service_state change may declare its
// migration command; it survives the canonical round trip (empty args
// normalized away) and the caller's manifest is not mutated.
func TestServiceMigrationCommand(t *testing.T) {
	m := testManifest()
	m.Migration.ServiceState = serviceMigration("bin/migrate", 30)
	m.Migration.ServiceState.Command.Args = []string{}
	p, err := EncodeManifest(m)
	require.NoError(t, err)
	require.Contains(t, string(p), `"command":{"path":"bin/migrate","timeout_seconds":30}`)
	got, err := DecodeManifest(p)
	require.NoError(t, err)
	require.Equal(t, "bin/migrate", got.Migration.ServiceState.Command.Path)
	require.Nil(t, got.Migration.ServiceState.Command.Args)
	require.NotNil(t, m.Migration.ServiceState.Command.Args, "the caller's manifest is not mutated")
	p2, err := EncodeManifest(got)
	require.NoError(t, err)
	require.Equal(t, p, p2)
	// A manifest without a command encodes as before (no command key).
	p, err = EncodeManifest(testManifest())
	require.NoError(t, err)
	require.NotContains(t, string(p), "command")
}

func TestKeySetValidation(t *testing.T) {
	for name, mut := range map[string]func(*KeySet){
		"zero version":    func(k *KeySet) { k.Version = 0 },
		"no keys":         func(k *KeySet) { k.SigningKeys = nil },
		"short key":       func(k *KeySet) { k.SigningKeys[0].Public = make([]byte, 5) },
		"wrong id":        func(k *KeySet) { k.SigningKeys[0].ID = "0000000000000000" },
		"dup key":         func(k *KeySet) { k.SigningKeys[1] = k.SigningKeys[0] },
		"valid & revoked": func(k *KeySet) { k.Revoked = []string{KeyID(k.SigningKeys[0].Public)} },
		"bad revoked id":  func(k *KeySet) { k.Revoked = []string{"xyz"} },
		"no expiry":       func(k *KeySet) { k.ExpiresAt = time.Time{} },
	} {
		k := testKeySet()
		k.SigningKeys = append([]SigningKey(nil), k.SigningKeys...)
		mut(&k)
		_, err := EncodeKeySet(k)
		require.ErrorIs(t, err, ErrInvalid, name)
	}
}

func TestVerifyKeySet(t *testing.T) {
	roots := testRoots()
	ks := testKeySet()
	good := signedKeySet(t, ks, testKey(1), testKey(3))
	got, err := VerifyKeySet(good, roots, t0, 3)
	require.NoError(t, err)
	require.Equal(t, uint64(3), got.Version)

	flipped := signedKeySet(t, ks, testKey(1), testKey(2))
	flipped.Payload = bytes.Clone(flipped.Payload)
	flipped.Payload[10] ^= 1
	retired := signedKeySet(t, ks, testKey(1), testKey(2), testKey(9)) // 9: not (or no longer) a root

	for _, tc := range []struct {
		name   string
		env    Envelope
		roots  Roots
		now    time.Time
		min    uint64
		reason string
	}{
		{"one of two roots", signedKeySet(t, ks, testKey(1)), roots, t0, 0, ReasonThreshold},
		{"same root twice", func() Envelope {
			e := signedKeySet(t, ks, testKey(1))
			e.Signatures = append(e.Signatures, e.Signatures[0])
			return e
		}(), roots, t0, 0, ReasonThreshold},
		{"unknown root only", signedKeySet(t, ks, testKey(1), testKey(9)), roots, t0, 0, ReasonUnknownKey},
		{"retired root ignored when threshold met", retired, roots, t0, 0, ReasonOK},
		{"payload flipped", flipped, roots, t0, 0, ReasonBadSignature},
		{"expired", good, roots, ks.ExpiresAt, 0, ReasonExpired},
		{"not yet valid", good, roots, t0.Add(-time.Hour), 0, ReasonNotYetValid},
		{"replayed older set", good, roots, t0, 4, ReasonStaleKeySet},
		{"unusable roots", good, Roots{}, t0, 0, ReasonInvalid},
		{"manifest kind", Envelope{Kind: KindManifest, Payload: good.Payload, Signatures: good.Signatures}, roots, t0, 0, ReasonMalformed},
		{"3 of 3 threshold", good, Roots{Threshold: 3, Keys: roots.Keys}, t0, 0, ReasonThreshold},
	} {
		_, err := VerifyKeySet(tc.env, tc.roots, tc.now, tc.min)
		require.Equal(t, tc.reason, Reason(err), "%s: %v", tc.name, err)
	}
}

// A root signature is bound to key sets: the same key's signature cannot be
// moved to a manifest (Ed25519ctx context separation).
func TestSignatureContextSeparation(t *testing.T) {
	m := testManifest()
	p, err := EncodeManifest(m)
	require.NoError(t, err)
	sig, err := testKey(10).Sign(nil, p, signOptions(KindKeySet))
	require.NoError(t, err)
	env := Envelope{Kind: KindManifest, Payload: p, Signatures: []Signature{{KeyID: KeyID(pubOf(testKey(10))), Sig: sig}}}
	_, _, err = VerifyManifest(env, expect(t))
	require.ErrorIs(t, err, ErrBadSignature)
}

func TestVerifyManifest(t *testing.T) {
	good := signedManifest(t, testManifest(), testKey(10))
	m, art, err := VerifyManifest(good, expect(t))
	require.NoError(t, err)
	require.Equal(t, "1.4.0", m.Version)
	require.Equal(t, "amd64", art.Arch)
	require.Equal(t, int64(5), art.Size)

	with := func(f func(*Manifest)) Manifest { m := testManifest(); f(&m); return m }
	for _, tc := range []struct {
		name   string
		env    Envelope
		exp    func(*Expect)
		reason string
	}{
		{"second signing key", signedManifest(t, testManifest(), testKey(11)), nil, ReasonOK},
		{"unknown key", signedManifest(t, testManifest(), testKey(20)), nil, ReasonUnknownKey},
		{"root key is not a signing key", signedManifest(t, testManifest(), testKey(1)), nil, ReasonUnknownKey},
		{"revoked key", signedManifest(t, testManifest(), testKey(12)), nil, ReasonRevokedKey},
		{"bad signature", func() Envelope {
			e := signedManifest(t, testManifest(), testKey(10))
			e.Signatures[0].Sig = bytes.Clone(e.Signatures[0].Sig)
			e.Signatures[0].Sig[0] ^= 1
			return e
		}(), nil, ReasonBadSignature},
		{"payload swapped", func() Envelope {
			e := signedManifest(t, testManifest(), testKey(10))
			e.Payload = signedManifest(t, with(func(m *Manifest) { m.Version = "1.5.0" }), testKey(10)).Payload
			return e
		}(), nil, ReasonBadSignature},
		{"no signature", Envelope{Kind: KindManifest, Payload: good.Payload}, nil, ReasonMalformed},
		{"two signatures", Envelope{Kind: KindManifest, Payload: good.Payload, Signatures: []Signature{good.Signatures[0], good.Signatures[0]}}, nil, ReasonMalformed},
		{"wrong product", good, func(e *Expect) { e.Product = "rdp-worker" }, ReasonWrongProduct},
		{"expired", good, func(e *Expect) { e.Now = t0.Add(31 * 24 * time.Hour) }, ReasonExpired},
		{"not yet valid", good, func(e *Expect) { e.Now = t0.Add(-time.Hour) }, ReasonNotYetValid},
		{"blocklisted", good, func(e *Expect) { e.Blocklist = []string{"1.3.9", "1.4.0+rebuild"} }, ReasonBlocklisted},
		{"wrong arch", good, func(e *Expect) { e.Arch = "riscv64" }, ReasonWrongArch},
		{"wrong os", good, func(e *Expect) { e.OS = "windows" }, ReasonWrongArch},
		{"channel ok", good, func(e *Expect) { e.Channel = ChannelCandidate }, ReasonOK},
		{"not for stable", good, func(e *Expect) { e.Channel = ChannelStable }, ReasonWrongChannel},
		{"downgrade", good, func(e *Expect) { e.Current = "1.5.0" }, ReasonDowngrade},
		{"downgrade from pre-release peer", good, func(e *Expect) { e.Current = "1.4.1-rc.1" }, ReasonDowngrade},
		{"downgrade allowed by signed rollback", good, func(e *Expect) { e.Current = "1.5.0"; e.AllowDowngradeTo = "1.4.0" }, ReasonOK},
		{"rollback names another version", good, func(e *Expect) { e.Current = "1.5.0"; e.AllowDowngradeTo = "1.3.0" }, ReasonDowngrade},
		{"same version is not a downgrade", good, func(e *Expect) { e.Current = "1.4.0" }, ReasonOK},
		{"first install", good, func(e *Expect) { e.Current = "" }, ReasonOK},
		{"below min upgrade-from", good, func(e *Expect) { e.Current = "1.1.9" }, ReasonUpgradePath},
		{"bad current", good, func(e *Expect) { e.Current = "one" }, ReasonInvalid},
		{"key set kind", Envelope{Kind: KindKeySet, Payload: good.Payload, Signatures: good.Signatures}, nil, ReasonMalformed},
	} {
		e := expect(t)
		if tc.exp != nil {
			tc.exp(&e)
		}
		_, _, err := VerifyManifest(tc.env, e)
		require.Equal(t, tc.reason, Reason(err), "%s: %v", tc.name, err)
		if err != nil {
			var re *Error
			require.True(t, errors.As(err, &re), tc.name)
		}
	}
}

// Rotation: key set v4 drops key 10 and revokes it; manifests signed by 10
// are refused as revoked, by 11 still accepted; v3 replayed after v4 is stale.
func TestKeyRotationAndRevocation(t *testing.T) {
	ks4 := testKeySet()
	ks4.Version = 4
	ks4.SigningKeys = []SigningKey{{Public: pubOf(testKey(11))}}
	ks4.Revoked = []string{KeyID(pubOf(testKey(10))), KeyID(pubOf(testKey(12)))}
	v4, err := VerifyKeySet(signedKeySet(t, ks4, testKey(2), testKey(3)), testRoots(), t0, 3)
	require.NoError(t, err)
	e := expect(t)
	e.KeySet = v4
	_, _, err = VerifyManifest(signedManifest(t, testManifest(), testKey(10)), e)
	require.ErrorIs(t, err, ErrRevokedKey)
	_, _, err = VerifyManifest(signedManifest(t, testManifest(), testKey(11)), e)
	require.NoError(t, err)
	_, err = VerifyKeySet(signedKeySet(t, testKeySet(), testKey(1), testKey(2)), testRoots(), t0, v4.Version)
	require.ErrorIs(t, err, ErrStaleKeySet)
}

func TestSign(t *testing.T) {
	e, err := NewKeySetEnvelope(testKeySet())
	require.NoError(t, err)
	e1 := mustSign(t, e, testKey(1))
	require.Empty(t, e.Signatures, "input not modified")
	e2 := mustSign(t, e1, testKey(1))
	require.Len(t, e2.Signatures, 1, "re-signing replaces")
	e3 := mustSign(t, e2, testKey(2))
	require.Len(t, e3.Signatures, 2)

	m := signedManifest(t, testManifest(), testKey(10))
	m2 := mustSign(t, m, testKey(11))
	require.Len(t, m2.Signatures, 1, "a manifest has exactly one signer")
	require.Equal(t, KeyID(pubOf(testKey(11))), m2.Signatures[0].KeyID)

	_, err = Sign(e, ed25519.PrivateKey{1})
	require.ErrorIs(t, err, ErrInvalid)
	_, err = Sign(Envelope{Kind: "other", Payload: e.Payload}, testKey(1))
	require.ErrorIs(t, err, ErrInvalid)
	_, err = Sign(Envelope{Kind: KindManifest, Payload: []byte(`{}`)}, testKey(1))
	require.ErrorIs(t, err, ErrMalformed, "never sign what verifiers refuse")
	require.Equal(t, m.Digest(), m2.Digest(), "digest names the payload, not the signatures")
}

func TestEnvelopeDecode(t *testing.T) {
	good := signedManifest(t, testManifest(), testKey(10))
	b, err := good.Marshal()
	require.NoError(t, err)
	got, err := Unmarshal(b, 0)
	require.NoError(t, err)
	require.Equal(t, good, got)

	_, err = Unmarshal(b, int64(len(b)-1))
	require.ErrorIs(t, err, ErrTooLarge)
	// An endless reader costs at most the limit.
	_, err = Decode(io.MultiReader(bytes.NewReader(b), neverEnding{}), 1<<16)
	require.ErrorIs(t, err, ErrTooLarge)
	for name, in := range map[string]string{
		"empty":         ``,
		"not json":      `RAPS`,
		"unknown kind":  `{"kind":"x","payload":"e30=","signatures":[]}`,
		"no payload":    `{"kind":"rap-release-manifest","payload":"","signatures":[]}`,
		"unknown field": `{"kind":"rap-release-manifest","payload":"e30=","signatures":[],"x":1}`,
		"short sig":     `{"kind":"rap-release-manifest","payload":"e30=","signatures":[{"key_id":"0123456789abcdef","sig":"AAAA"}]}`,
		"bad key id":    `{"kind":"rap-release-manifest","payload":"e30=","signatures":[{"key_id":"zz","sig":""}]}`,
		"trailing":      `{"kind":"rap-release-manifest","payload":"e30=","signatures":[]} {}`,
	} {
		_, err := Unmarshal([]byte(in), 0)
		require.ErrorIs(t, err, ErrMalformed, name)
	}
}

type neverEnding struct{}

func (neverEnding) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = ' '
	}
	return len(p), nil
}

func TestDigester(t *testing.T) {
	a := Artifact{OS: "linux", Arch: "amd64", SHA256: sha("hello"), Size: 5}
	d := NewDigester(a)
	_, err := io.Copy(d, strings.NewReader("hello"))
	require.NoError(t, err)
	require.NoError(t, d.Verify())

	d = NewDigester(a)
	_, _ = d.Write([]byte("hellp"))
	require.ErrorIs(t, d.Verify(), ErrArtifactMismatch, "flipped byte")
	d = NewDigester(a)
	_, _ = d.Write([]byte("hell"))
	require.ErrorIs(t, d.Verify(), ErrArtifactMismatch, "short")
	d = NewDigester(a)
	_, err = io.Copy(d, io.LimitReader(neverEnding{}, 1<<20))
	require.ErrorIs(t, err, ErrArtifactMismatch, "endless mirror stopped at the declared size")
	require.LessOrEqual(t, d.Written(), a.Size)
	require.Equal(t, ReasonArtifactMismatch, Reason(err))
	require.Equal(t, "sha256:"+sha("hello"), a.ContentID())
}

func TestKeyFiles(t *testing.T) {
	k := testKey(1)
	b, err := MarshalPrivateKey(RoleRoot, k)
	require.NoError(t, err)
	role, k2, err := ParsePrivateKey(b)
	require.NoError(t, err)
	require.Equal(t, RoleRoot, role)
	require.True(t, k.Equal(k2))
	pb, err := MarshalPublicKey(RoleSigning, pubOf(k))
	require.NoError(t, err)
	role, p, err := ParsePublicKey(pb)
	require.NoError(t, err)
	require.Equal(t, RoleSigning, role)
	require.True(t, pubOf(k).Equal(p))
	require.NotContains(t, string(pb), "PRIVATE")
	_, _, err = ParsePrivateKey(pb)
	require.ErrorIs(t, err, ErrMalformed, "public file is not a private key")
	_, _, err = ParsePublicKey(b)
	require.ErrorIs(t, err, ErrMalformed)
	_, err = MarshalPrivateKey("admin", k)
	require.ErrorIs(t, err, ErrInvalid)
}
