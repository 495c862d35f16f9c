package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/release"
)

func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := offlineReleaseCommands[args[0]](args[1:], &out)
	return out.String(), err
}

// The whole offline ceremony with real files and no server: three roots (2
// of 3), two signing keys, a key set, a manifest over a real artifact file,
// signatures, and verification with each refusal reason an operator can hit.
func TestReleaseOfflineCeremony(t *testing.T) {
	t.Setenv("RAP_SERVERS", "")
	t.Setenv("RAPCTL_CONFIG", filepath.Join(t.TempDir(), "none.json"))
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	for _, k := range []struct{ name, role string }{{"root1", "root"}, {"root2", "root"}, {"root3", "root"}, {"sign1", "signing"}, {"sign2", "signing"}} {
		out, err := run(t, "keygen", "--role", k.role, "--out", p(k.name))
		require.NoError(t, err)
		st, err := os.Stat(p(k.name))
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o600), st.Mode().Perm(), "private key mode")
		priv, err := os.ReadFile(p(k.name))
		require.NoError(t, err)
		require.NotContains(t, out, "PRIVATE KEY")
		for _, line := range strings.Split(string(priv), "\n") {
			if len(line) > 20 && !strings.Contains(line, ":") && !strings.HasPrefix(line, "-----") {
				require.NotContains(t, out, line, "private key material printed")
			}
		}
		require.Contains(t, out, "key_id ")
	}
	_, err := run(t, "keygen", "--role", "root", "--out", p("root1"))
	require.Error(t, err, "an existing key is never overwritten")

	// Key set v1 with sign1 and sign2; signed by root1 and root3.
	_, err = run(t, "keyset create", "--version", "1", "--signing-key", p("sign1.pub")+","+p("sign2.pub"), "--out", p("keyset.json"))
	require.NoError(t, err)
	_, err = run(t, "keyset create", "--version", "1", "--signing-key", p("root1.pub"), "--out", p("bad.json"))
	require.ErrorContains(t, err, "not a signing key")
	_, err = run(t, "sign", "--key", p("sign1"), p("keyset.json"))
	require.ErrorContains(t, err, "root keys")
	for _, r := range []string{"root1", "root3"} {
		_, err = run(t, "sign", p("keyset.json"), "--key", p(r))
		require.NoError(t, err)
	}
	roots := p("root1.pub") + "," + p("root2.pub") + "," + p("root3.pub")
	out, err := run(t, "verify", "--roots", roots, "--threshold", "2", "--keyset", p("keyset.json"))
	require.NoError(t, err)
	require.Contains(t, out, "key set v1 ok: 2 signing key(s)")
	_, err = run(t, "verify", "--roots", roots, "--keyset", p("keyset.json"))
	require.ErrorContains(t, err, release.ReasonThreshold, "3 of 3 by default")

	// A manifest over a real artifact file.
	art := p("agent-1.4.0")
	require.NoError(t, os.WriteFile(art, bytes.Repeat([]byte("rap-node-agent "), 4096), 0o755))
	mig := p("mig.json")
	require.NoError(t, os.WriteFile(mig, []byte(`{"postgres_schema":11,"node_state":{"from":1,"to":2,"backup_required":true,"rollback":"restore_backup","downgradable":false}}`), 0o644))
	_, err = run(t, "manifest create", "--version", "1.4.0", "--channels", "candidate,current", "--artifact", "linux/amd64="+art,
		"--min-upgrade-from", "1.2.0", "--migration", mig, "--source-revision", "abc123", "--out", p("m.json"))
	require.NoError(t, err)
	_, err = run(t, "sign", "--key", p("root1"), p("m.json"))
	require.ErrorContains(t, err, "release-signing key")
	_, err = run(t, "sign", "--key", p("sign2"), p("m.json"))
	require.NoError(t, err)
	out, err = run(t, "inspect", p("m.json"))
	require.NoError(t, err)
	require.Contains(t, out, `"postgres_schema": 11`)

	verify := func(extra ...string) (string, error) {
		return run(t, append([]string{"verify", "--roots", roots, "--threshold", "2", "--keyset", p("keyset.json"), "--manifest", p("m.json")}, extra...)...)
	}
	out, err = verify("--current", "1.3.0", art)
	require.NoError(t, err)
	require.Contains(t, out, "artifact "+art+" ok")

	flipped := p("flipped")
	b, _ := os.ReadFile(art)
	b[100] ^= 1
	require.NoError(t, os.WriteFile(flipped, b, 0o644))
	for _, tc := range []struct {
		args   []string
		reason string
	}{
		{[]string{flipped}, release.ReasonArtifactMismatch},
		{[]string{"--current", "1.5.0"}, release.ReasonDowngrade},
		{[]string{"--current", "1.1.0"}, release.ReasonUpgradePath},
		{[]string{"--arch", "arm64"}, release.ReasonWrongArch},
		{[]string{"--blocklist", "1.4.0"}, release.ReasonBlocklisted},
		{[]string{"--channel", "stable"}, release.ReasonWrongChannel},
	} {
		_, err := verify(tc.args...)
		require.ErrorContains(t, err, "("+tc.reason+")", tc.args)
	}

	// Rotation: key set v2 revokes sign2; the manifest it signed is refused.
	_, err = run(t, "keygen", "--role", "signing", "--out", p("sign3"))
	require.NoError(t, err)
	_, sign2, err := release.ParsePublicKey(mustRead(t, p("sign2.pub")))
	require.NoError(t, err)
	_, err = run(t, "keyset create", "--version", "2", "--signing-key", p("sign1.pub")+","+p("sign3.pub"), "--revoke", release.KeyID(sign2), "--out", p("keyset.json"))
	require.NoError(t, err)
	for _, r := range []string{"root2", "root3"} {
		_, err = run(t, "sign", "--key", p(r), p("keyset.json"))
		require.NoError(t, err)
	}
	_, err = verify()
	require.ErrorContains(t, err, "("+release.ReasonRevokedKey+")")
	_, err = run(t, "sign", "--key", p("sign3"), p("m.json"))
	require.NoError(t, err)
	_, err = verify()
	require.NoError(t, err)

	// Dispatch: the offline commands need no server settings at all.
	require.NoError(t, realMain([]string{"release", "inspect", p("m.json")}))
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return b
}
