package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rap-fabric/core/release"
)

// offlineReleaseCommands run without any server: keys are made and used only
// on the host that runs them (release private keys stay offline).
var offlineReleaseCommands = map[string]func(args []string, out io.Writer) error{
	"keygen":          releaseKeygen,
	"keyset create":   releaseKeysetCreate,
	"manifest create": releaseManifestCreate,
	"sign":            releaseSign,
	"verify":          releaseVerify,
	"inspect":         releaseInspect,
}

const offlineReleaseHelp = `  release keygen --role root|signing --out PATH     offline: new Ed25519 key; PATH (0600, private) and PATH.pub
  release keyset create --version N --signing-key A.pub,… [--revoke ID,…] [--ttl D] --out FILE   offline: unsigned key set
  release manifest create --product P --version V --channels C,… --artifact OS/ARCH=FILE … --source-revision R --out FILE   offline: unsigned manifest (--min-upgrade-from, --migration JSON-FILE, --build-time, --builder, --ttl)
  release sign --key PRIVATE DOC [--out FILE]        offline: add a signature (root key on a key set, signing key on a manifest)
  release verify --roots A.pub,… --threshold N --keyset FILE [--manifest FILE --os --arch --current V --channel C --blocklist V,…] [ARTIFACT]   offline verification
  release inspect DOC                                offline: print a document's decoded payload`

// parseInterspersed parses flags that may follow positional arguments.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	fs.SetOutput(io.Discard)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func releaseKeygen(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("release keygen", flag.ContinueOnError)
	role := fs.String("role", "", "root or signing")
	path := fs.String("out", "", "private key file to create (the public key goes to PATH.pub)")
	if _, err := parseInterspersed(fs, args); err != nil {
		return err
	}
	if (*role != release.RoleRoot && *role != release.RoleSigning) || *path == "" {
		return errors.New("usage: rapctl release keygen --role root|signing --out PATH")
	}
	pub, priv, err := release.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	privPEM, err := release.MarshalPrivateKey(*role, priv)
	if err != nil {
		return err
	}
	pubPEM, err := release.MarshalPublicKey(*role, pub)
	if err != nil {
		return err
	}
	// O_EXCL: never overwrite an existing key (a lost root key is not
	// recoverable; an overwritten one even less).
	f, err := os.OpenFile(*path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create private key file: %w", err)
	}
	if _, err := f.Write(privPEM); err != nil {
		f.Close()
		os.Remove(*path)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(*path)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(*path)
		return err
	}
	if err := writeNew(*path+".pub", pubPEM, 0o644); err != nil {
		os.Remove(*path)
		return err
	}
	fmt.Fprintf(out, "key_id %s role %s\nprivate key %s (mode 0600, keep offline)\npublic key  %s\n", release.KeyID(pub), *role, *path, *path+".pub")
	return nil
}

func writeNew(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// writeReplace writes data to path atomically (temp file + rename).
func writeReplace(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".rapctl-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func readPublicKeys(list string) ([]ed25519.PublicKey, []string, error) {
	var keys []ed25519.PublicKey
	var roles []string
	for _, p := range strings.Split(list, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, nil, err
		}
		role, k, err := release.ParsePublicKey(b)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", p, err)
		}
		keys = append(keys, k)
		roles = append(roles, role)
	}
	return keys, roles, nil
}

func writeEnvelope(path string, e release.Envelope, out io.Writer, what string) error {
	b, err := e.Marshal()
	if err != nil {
		return err
	}
	if err := writeReplace(path, b); err != nil {
		return err
	}
	fmt.Fprintf(out, "%s %s written to %s (%d signature(s))\n", what, e.Digest(), path, len(e.Signatures))
	return nil
}

func releaseKeysetCreate(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("release keyset create", flag.ContinueOnError)
	version := fs.Uint64("version", 0, "key set version (higher than the last published)")
	signing := fs.String("signing-key", "", "comma-separated release-signing public key files")
	revoke := fs.String("revoke", "", "comma-separated key ids to revoke")
	ttl := fs.Duration("ttl", 365*24*time.Hour, "validity")
	path := fs.String("out", "", "file to write")
	if _, err := parseInterspersed(fs, args); err != nil {
		return err
	}
	if *version == 0 || *signing == "" || *path == "" {
		return errors.New("usage: rapctl release keyset create --version N --signing-key A.pub,… [--revoke ID,…] [--ttl D] --out FILE")
	}
	keys, roles, err := readPublicKeys(*signing)
	if err != nil {
		return err
	}
	ks := release.KeySet{Version: *version, Revoked: splitList(*revoke), IssuedAt: time.Now().UTC().Truncate(time.Second)}
	ks.ExpiresAt = ks.IssuedAt.Add(*ttl)
	for i, k := range keys {
		if roles[i] != release.RoleSigning {
			return fmt.Errorf("key %s is a %s key, not a signing key", release.KeyID(k), roles[i])
		}
		ks.SigningKeys = append(ks.SigningKeys, release.SigningKey{ID: release.KeyID(k), Public: k})
	}
	e, err := release.NewKeySetEnvelope(ks)
	if err != nil {
		return err
	}
	return writeEnvelope(*path, e, out, "key set v"+fmt.Sprint(*version))
}

type artifactFlags []string

func (a *artifactFlags) String() string     { return strings.Join(*a, " ") }
func (a *artifactFlags) Set(s string) error { *a = append(*a, s); return nil }

// hashFile streams path through sha256 (never whole in memory).
func hashFile(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

func releaseManifestCreate(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("release manifest create", flag.ContinueOnError)
	product := fs.String("product", release.ProductNodeAgent, "rap-node-agent or a service type")
	version := fs.String("version", "", "semantic version")
	channels := fs.String("channels", "candidate", "comma-separated eligible channels: stable,current,candidate")
	var arts artifactFlags
	fs.Var(&arts, "artifact", "OS/ARCH=FILE (repeatable)")
	minFrom := fs.String("min-upgrade-from", "", "lowest version that may upgrade to this one")
	migration := fs.String("migration", "", "JSON file with the migration bundle metadata")
	rev := fs.String("source-revision", "", "source revision (required)")
	buildTime := fs.String("build-time", "", "RFC 3339 build time (default now)")
	builder := fs.String("builder", "", "build system or person")
	ttl := fs.Duration("ttl", 90*24*time.Hour, "validity")
	path := fs.String("out", "", "file to write")
	if _, err := parseInterspersed(fs, args); err != nil {
		return err
	}
	if *version == "" || len(arts) == 0 || *path == "" || *rev == "" {
		return errors.New("usage: rapctl release manifest create --product P --version V --channels C,… --artifact OS/ARCH=FILE … --source-revision R --out FILE")
	}
	now := time.Now().UTC().Truncate(time.Second)
	m := release.Manifest{Product: *product, Version: *version, MinUpgradeFrom: *minFrom,
		Provenance: release.Provenance{SourceRevision: *rev, BuildTime: now, Builder: *builder},
		IssuedAt:   now, ExpiresAt: now.Add(*ttl)}
	if *buildTime != "" {
		bt, err := time.Parse(time.RFC3339, *buildTime)
		if err != nil {
			return fmt.Errorf("--build-time: %w", err)
		}
		m.Provenance.BuildTime = bt
	}
	for _, c := range splitList(*channels) {
		m.Channels = append(m.Channels, release.Channel(c))
	}
	for _, a := range arts {
		plat, file, ok := strings.Cut(a, "=")
		osName, arch, ok2 := strings.Cut(plat, "/")
		if !ok || !ok2 {
			return fmt.Errorf("--artifact %q: want OS/ARCH=FILE", a)
		}
		sum, n, err := hashFile(file)
		if err != nil {
			return err
		}
		m.Artifacts = append(m.Artifacts, release.Artifact{OS: osName, Arch: arch, SHA256: sum, Size: n})
	}
	if *migration != "" {
		b, err := os.ReadFile(*migration)
		if err != nil {
			return err
		}
		d := json.NewDecoder(strings.NewReader(string(b)))
		d.DisallowUnknownFields()
		if err := d.Decode(&m.Migration); err != nil {
			return fmt.Errorf("--migration: %w", err)
		}
	}
	e, err := release.NewManifestEnvelope(m)
	if err != nil {
		return err
	}
	return writeEnvelope(*path, e, out, "manifest "+m.Product+" "+m.Version)
}

func readEnvelope(path string) (release.Envelope, error) {
	f, err := os.Open(path)
	if err != nil {
		return release.Envelope{}, err
	}
	defer f.Close()
	e, err := release.Decode(f, 0)
	if err != nil {
		return release.Envelope{}, fmt.Errorf("%s: %w", path, err)
	}
	return e, nil
}

func releaseSign(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("release sign", flag.ContinueOnError)
	keyPath := fs.String("key", "", "private key file (release keygen)")
	outPath := fs.String("out", "", "write here instead of replacing DOC")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if *keyPath == "" || len(pos) != 1 {
		return errors.New("usage: rapctl release sign --key PRIVATE DOC [--out FILE]")
	}
	kb, err := os.ReadFile(*keyPath)
	if err != nil {
		return err
	}
	role, key, err := release.ParsePrivateKey(kb)
	if err != nil {
		return fmt.Errorf("%s: %w", *keyPath, err)
	}
	e, err := readEnvelope(pos[0])
	if err != nil {
		return err
	}
	switch {
	case e.Kind == release.KindKeySet && role != release.RoleRoot:
		return errors.New("a key set is signed with root keys; this is a " + role + " key")
	case e.Kind == release.KindManifest && role != release.RoleSigning:
		return errors.New("a manifest is signed with a release-signing key; this is a " + role + " key")
	}
	signed, err := release.Sign(e, key)
	if err != nil {
		return err
	}
	dst := pos[0]
	if *outPath != "" {
		dst = *outPath
	}
	what := "manifest"
	if e.Kind == release.KindKeySet {
		what = "key set"
	}
	fmt.Fprintf(out, "signed by %s\n", release.KeyID(key.Public().(ed25519.PublicKey)))
	return writeEnvelope(dst, signed, out, what)
}

func releaseVerify(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("release verify", flag.ContinueOnError)
	rootsFlag := fs.String("roots", "", "comma-separated root public key files")
	threshold := fs.Int("threshold", 0, "root signatures required (default: all roots)")
	keysetPath := fs.String("keyset", "", "signed key set")
	manifestPath := fs.String("manifest", "", "signed manifest")
	product := fs.String("product", release.ProductNodeAgent, "expected product")
	goos := fs.String("os", "linux", "artifact OS")
	arch := fs.String("arch", "amd64", "artifact architecture")
	current := fs.String("current", "", "installed version (downgrade and upgrade-path checks)")
	channel := fs.String("channel", "", "required channel")
	blocklist := fs.String("blocklist", "", "comma-separated blocklisted versions")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if *rootsFlag == "" || *keysetPath == "" || len(pos) > 1 || (len(pos) == 1 && *manifestPath == "") {
		return errors.New("usage: rapctl release verify --roots A.pub,… [--threshold N] --keyset FILE [--manifest FILE …] [ARTIFACT]")
	}
	rk, _, err := readPublicKeys(*rootsFlag)
	if err != nil {
		return err
	}
	roots := release.Roots{Threshold: *threshold, Keys: rk}
	if roots.Threshold == 0 {
		roots.Threshold = len(rk)
	}
	now := time.Now()
	kse, err := readEnvelope(*keysetPath)
	if err != nil {
		return err
	}
	ks, err := release.VerifyKeySet(kse, roots, now, 0)
	if err != nil {
		return fmt.Errorf("key set refused (%s): %w", release.Reason(err), err)
	}
	fmt.Fprintf(out, "key set v%d ok: %d signing key(s), %d revoked\n", ks.Version, len(ks.SigningKeys), len(ks.Revoked))
	if *manifestPath == "" {
		return nil
	}
	me, err := readEnvelope(*manifestPath)
	if err != nil {
		return err
	}
	m, art, err := release.VerifyManifest(me, release.Expect{Product: *product, OS: *goos, Arch: *arch, Channel: release.Channel(*channel),
		Current: *current, Blocklist: splitList(*blocklist), Now: now, KeySet: ks})
	if err != nil {
		return fmt.Errorf("manifest refused (%s): %w", release.Reason(err), err)
	}
	fmt.Fprintf(out, "manifest %s %s ok: artifact %s %s (%d bytes)\n", m.Product, m.Version, art.Platform(), art.ContentID(), art.Size)
	if len(pos) == 1 {
		f, err := os.Open(pos[0])
		if err != nil {
			return err
		}
		defer f.Close()
		d := release.NewDigester(art)
		if _, err := io.Copy(d, f); err != nil {
			return fmt.Errorf("artifact refused (%s): %w", release.Reason(err), err)
		}
		if err := d.Verify(); err != nil {
			return fmt.Errorf("artifact refused (%s): %w", release.Reason(err), err)
		}
		fmt.Fprintf(out, "artifact %s ok\n", pos[0])
	}
	return nil
}

func releaseInspect(args []string, out io.Writer) error {
	if len(args) != 1 {
		return errors.New("usage: rapctl release inspect DOC")
	}
	e, err := readEnvelope(args[0])
	if err != nil {
		return err
	}
	var doc any
	switch e.Kind {
	case release.KindKeySet:
		doc, err = release.DecodeKeySet(e.Payload)
	default:
		doc, err = release.DecodeManifest(e.Payload)
	}
	if err != nil {
		return err
	}
	signers := make([]string, len(e.Signatures))
	for i, s := range e.Signatures {
		signers[i] = s.KeyID
	}
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(map[string]any{"kind": e.Kind, "digest": e.Digest(), "signed_by": signers, "document": doc})
}
