package updater

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/rap-fabric/core/release"
)

// BinaryName is the agent binary's file name inside a version slot.
const BinaryName = "rap-node-agent"

// ErrNoVersion: the slot directory has no current version (or no such
// version is staged).
var ErrNoVersion = errors.New("updater: no such version")

// Slots is the version slot directory.
type Slots struct {
	// Dir is the slot directory; created on first use (mode 0755).
	Dir string
}

// Binary returns the path of version's binary.
func (s Slots) Binary(version string) string {
	return filepath.Join(s.Dir, "versions", version, BinaryName)
}

// Has reports whether version is staged.
func (s Slots) Has(version string) bool {
	fi, err := os.Stat(s.Binary(version))
	return err == nil && fi.Mode().IsRegular()
}

func validVersion(v string) error {
	if _, err := release.ParseVersion(v); err != nil {
		return fmt.Errorf("updater: %w", err)
	}
	return nil
}

// Current returns the version the launcher starts.
func (s Slots) Current() (string, error) { return s.pointer("current") }

// Previous returns the version before the current one ("" if none).
func (s Slots) Previous() (string, error) {
	v, err := s.pointer("previous")
	if errors.Is(err, ErrNoVersion) {
		return "", nil
	}
	return v, err
}

func (s Slots) pointer(name string) (string, error) {
	b, err := os.ReadFile(filepath.Join(s.Dir, name))
	if errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("%w: no %s pointer", ErrNoVersion, name)
	}
	if err != nil {
		return "", err
	}
	v := strings.TrimSpace(string(b))
	if err := validVersion(v); err != nil {
		return "", err
	}
	return v, nil
}

// Promote makes version current and the old current previous: previous is
// written first, then current, each by an atomic rename followed by a
// directory fsync. A crash between the two leaves the old current in place
// (nothing promoted); the rename of current is the commit point.
func (s Slots) Promote(version string) error {
	if err := validVersion(version); err != nil {
		return err
	}
	if !s.Has(version) {
		return fmt.Errorf("%w: %s is not staged", ErrNoVersion, version)
	}
	old, err := s.Current()
	if err != nil && !errors.Is(err, ErrNoVersion) {
		return err
	}
	if old != "" && old != version {
		if err := s.writePointer("previous", old); err != nil {
			return err
		}
	}
	return s.writePointer("current", version)
}

func (s Slots) writePointer(name, version string) error {
	if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(s.Dir, "."+name+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(version + "\n"); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), filepath.Join(s.Dir, name)); err != nil {
		return err
	}
	return syncDir(s.Dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Stage writes version's binary from r, checking size and sha256 against the
// signed manifest's artifact while it streams (never holding it in memory):
// the bytes go to a temporary file, are fsynced, made executable and renamed
// into the slot. Bytes that do not match are removed and the error wraps
// release.ErrArtifactMismatch. A version already staged with matching bytes
// is left as is.
func (s Slots) Stage(version string, a release.Artifact, r io.Reader) error {
	if err := validVersion(version); err != nil {
		return err
	}
	if s.Has(version) {
		if err := s.Verify(version, a); err == nil {
			return nil
		}
		// A slot that does not verify (disk corruption, a different build
		// under the same version) is replaced.
		if err := os.RemoveAll(filepath.Dir(s.Binary(version))); err != nil {
			return err
		}
	}
	vdir := filepath.Join(s.Dir, "versions")
	if err := os.MkdirAll(vdir, 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(vdir, ".stage-"+version+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	d := release.NewDigester(a)
	if _, err := io.Copy(io.MultiWriter(tmp, d), r); err != nil {
		tmp.Close()
		return err
	}
	if err := d.Verify(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o755); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	slot := filepath.Dir(s.Binary(version))
	if err := os.MkdirAll(slot, 0o755); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), s.Binary(version)); err != nil {
		return err
	}
	if err := syncDir(slot); err != nil {
		return err
	}
	return syncDir(vdir)
}

// Verify re-reads version's binary and checks it against a.
func (s Slots) Verify(version string, a release.Artifact) error {
	f, err := os.Open(s.Binary(version))
	if err != nil {
		return err
	}
	defer f.Close()
	d := release.NewDigester(a)
	if _, err := io.Copy(d, f); err != nil {
		return err
	}
	return d.Verify()
}

// Install copies an existing binary into version's slot (bootstrap of the
// first version on a host); it does not change the pointers.
func (s Slots) Install(version, binary string) error {
	f, err := os.Open(binary)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	a, err := artifactOf(f, fi.Size())
	if err != nil {
		return err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	return s.Stage(version, a, f)
}

func artifactOf(r io.Reader, size int64) (release.Artifact, error) {
	h := newHash()
	if _, err := io.Copy(h, r); err != nil {
		return release.Artifact{}, err
	}
	return release.Artifact{OS: "local", Arch: "local", SHA256: h.hex(), Size: size}, nil
}
