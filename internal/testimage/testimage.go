// Package testimage builds the OCI image the container workload tests run:
// a rootfs of Debian's busybox-static (/bin/busybox with sh, httpd, cat,
// echo, sleep and /www/healthz) imported into podman's local store, since
// there is no registry. Tests refer to it by digest.
package testimage

import (
	"archive/tar"
	"bytes"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Busybox imports the image under a unique tag (using dir for the rootfs
// archive) and returns its reference by digest and the tag (for podman rmi).
func Busybox(podman, dir string) (ref, tag string, err error) {
	return busybox(podman, dir, nil, true)
}

// Archive builds a variant of the image (files added under their relative
// paths, /www/healthz left out unless healthz) and saves it as an
// oci-archive in dir: a container workload release's artifact. It returns
// the archive's path and the tag the image is loaded under (for podman
// rmi); the image is removed from the local store.
func Archive(podman, dir string, files map[string]string, healthz bool) (archive, tag string, err error) {
	_, tag, err = busybox(podman, dir, files, healthz)
	if err != nil {
		return "", tag, err
	}
	defer func() { _ = exec.Command(podman, "rmi", "-f", tag).Run() }()
	archive = filepath.Join(dir, fmt.Sprintf("image-%d.tar", time.Now().UnixNano()))
	if out, err := exec.Command(podman, "save", "--format", "oci-archive", "-o", archive, tag).CombinedOutput(); err != nil {
		return "", tag, fmt.Errorf("podman save: %v: %s", err, out)
	}
	return archive, tag, nil
}

func busybox(podman, dir string, files map[string]string, healthz bool) (ref, tag string, err error) {
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		return "", "", err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(h *tar.Header, body []byte) error {
		h.ModTime = time.Unix(0, 0)
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		_, err := tw.Write(body)
		return err
	}
	for _, d := range []string{"bin/", "tmp/", "www/"} {
		if err := add(&tar.Header{Name: d, Typeflag: tar.TypeDir, Mode: 0o755}, nil); err != nil {
			return "", "", err
		}
	}
	if err := add(&tar.Header{Name: "bin/busybox", Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(bb))}, bb); err != nil {
		return "", "", err
	}
	for _, l := range []string{"sh", "httpd", "cat", "echo", "sleep"} {
		if err := add(&tar.Header{Name: "bin/" + l, Typeflag: tar.TypeSymlink, Linkname: "busybox", Mode: 0o777}, nil); err != nil {
			return "", "", err
		}
	}
	if healthz {
		files = maps.Clone(files)
		if files == nil {
			files = map[string]string{}
		}
		files["www/healthz"] = "ok\n"
	}
	for _, name := range slices.Sorted(maps.Keys(files)) {
		if err := add(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(files[name]))}, []byte(files[name])); err != nil {
			return "", "", err
		}
	}
	if err := tw.Close(); err != nil {
		return "", "", err
	}
	p := filepath.Join(dir, fmt.Sprintf("rootfs-%d.tar", time.Now().UnixNano()))
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		return "", "", err
	}
	tag = fmt.Sprintf("localhost/rap-workload-test:%d", time.Now().UnixNano())
	if out, err := exec.Command(podman, "import", p, tag).CombinedOutput(); err != nil {
		return "", "", fmt.Errorf("podman import: %v: %s", err, out)
	}
	dig, err := exec.Command(podman, "image", "inspect", "--format", "{{.Digest}}", tag).Output()
	if err != nil {
		return "", tag, fmt.Errorf("podman image inspect: %v", err)
	}
	return "localhost/rap-workload-test@" + strings.TrimSpace(string(dig)), tag, nil
}
