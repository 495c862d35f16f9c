package integration

import (
	"bufio"
	"bytes"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestMakeRelease runs the Makefile's release target as an operator would
// (for rapctl only, to keep the test short; the loop is the same for every
// command) and checks what it promises: for linux/amd64 and linux/arm64 a
// static binary of the right machine with the version stamped in, and a
// SHA256SUMS file that `sha256sum -c` accepts. The amd64 binary is run and
// must report the stamped version.
func TestMakeRelease(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("make release: make is not installed and CI is set")
		}
		t.Skip("make is not installed")
	}
	repo, err := filepath.Abs("..")
	require.NoError(t, err)
	out := t.TempDir()
	const version = "v9.9.9-releasecheck"
	cmd := exec.Command("make", "-s", "release", "RELEASE_DIR="+out, "RELEASE_CMDS=rapctl", "VERSION="+version)
	cmd.Dir = repo
	b, err := cmd.CombinedOutput()
	require.NoError(t, err, "make release: %s", b)

	machines := map[string]elf.Machine{"linux-amd64": elf.EM_X86_64, "linux-arm64": elf.EM_AARCH64}
	for dir, want := range machines {
		path := filepath.Join(out, dir, "rapctl")
		f, err := elf.Open(path)
		require.NoError(t, err, dir)
		require.Equal(t, want, f.Machine, "%s: machine", dir)
		for _, p := range f.Progs {
			require.NotEqual(t, elf.PT_INTERP, p.Type, "%s: dynamically linked (has an interpreter)", dir)
		}
		_, dynErr := f.DynamicSymbols()
		require.Error(t, dynErr, "%s: has dynamic symbols", dir)
		require.NoError(t, f.Close())
		raw, err := os.ReadFile(path)
		require.NoError(t, err)
		require.True(t, bytes.Contains(raw, []byte(version)), "%s: version %s not stamped", dir, version)
	}

	got, err := exec.Command(filepath.Join(out, "linux-amd64", "rapctl"), "version").CombinedOutput()
	require.NoError(t, err, "%s", got)
	require.Contains(t, string(got), version)

	sums, err := os.ReadFile(filepath.Join(out, "SHA256SUMS"))
	require.NoError(t, err)
	var names []string
	sc := bufio.NewScanner(bytes.NewReader(sums))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		require.Len(t, fields, 2, "SHA256SUMS line %q", sc.Text())
		names = append(names, fields[1])
	}
	require.ElementsMatch(t, []string{"linux-amd64/rapctl", "linux-arm64/rapctl"}, names)
	check := exec.Command("sha256sum", "-c", "SHA256SUMS")
	check.Dir = out
	b, err = check.CombinedOutput()
	require.NoError(t, err, "sha256sum -c: %s", b)

	// A flipped byte is caught by the same check.
	bin := filepath.Join(out, "linux-arm64", "rapctl")
	raw, err := os.ReadFile(bin)
	require.NoError(t, err)
	raw[len(raw)/2] ^= 0xff
	require.NoError(t, os.WriteFile(bin, raw, 0o755))
	check = exec.Command("sha256sum", "-c", "SHA256SUMS")
	check.Dir = out
	_, err = check.CombinedOutput()
	require.Error(t, err, "sha256sum -c accepted a changed binary")
}
