package workload

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/domain"
)

// podmanOrSkip returns podman's path; without podman the test fails under
// CI and is skipped elsewhere.
func podmanOrSkip(t *testing.T) string {
	p, err := exec.LookPath("podman")
	if err == nil {
		if _, err = os.Stat("/bin/busybox"); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("podman and busybox-static are required under CI (scripts/install-podman.sh): %v", err)
	}
	t.Skipf("podman or busybox-static missing: %v", err)
	return ""
}

// testImage imports a rootfs made of busybox-static (httpd, sh) as a local
// image and returns its reference by digest.
func testImage(t *testing.T, podman string) string {
	t.Helper()
	bb, err := os.ReadFile("/bin/busybox")
	require.NoError(t, err)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(h *tar.Header, body []byte) {
		h.ModTime = time.Unix(0, 0)
		require.NoError(t, tw.WriteHeader(h))
		if len(body) > 0 {
			_, err := tw.Write(body)
			require.NoError(t, err)
		}
	}
	for _, d := range []string{"bin/", "tmp/", "www/"} {
		add(&tar.Header{Name: d, Typeflag: tar.TypeDir, Mode: 0o755}, nil)
	}
	add(&tar.Header{Name: "bin/busybox", Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(bb))}, bb)
	for _, l := range []string{"sh", "httpd", "cat", "echo", "sleep"} {
		add(&tar.Header{Name: "bin/" + l, Typeflag: tar.TypeSymlink, Linkname: "busybox", Mode: 0o777}, nil)
	}
	add(&tar.Header{Name: "www/healthz", Typeflag: tar.TypeReg, Mode: 0o644, Size: 3}, []byte("ok\n"))
	require.NoError(t, tw.Close())
	tarPath := filepath.Join(t.TempDir(), "rootfs.tar")
	require.NoError(t, os.WriteFile(tarPath, buf.Bytes(), 0o644))
	tag := fmt.Sprintf("localhost/rap-workload-test:%d", time.Now().UnixNano())
	out, err := exec.Command(podman, "import", tarPath, tag).CombinedOutput()
	require.NoError(t, err, string(out))
	t.Cleanup(func() { _ = exec.Command(podman, "rmi", "-f", tag).Run() })
	dig, err := exec.Command(podman, "image", "inspect", "--format", "{{.Digest}}", tag).Output()
	require.NoError(t, err)
	return "localhost/rap-workload-test@" + strings.TrimSpace(string(dig))
}

func containerAssignment(t *testing.T, id, image string, w map[string]any) Assignment {
	w["driver"], w["image"], w["image_version"] = "container", image, "bb-1"
	if w["restart"] == nil {
		w["restart"] = map[string]any{"initial_backoff": "200ms", "max_backoff": "1s", "crash_loop_after": 2, "stable_after": "5s"}
	}
	cfg, err := json.Marshal(map[string]any{"workload": w})
	require.NoError(t, err)
	return Assignment{ServiceID: id, Type: "relay-node", Role: domain.RoleRelayNode, Config: cfg}
}

func inspect(t *testing.T, podman, id, format string) string {
	out, err := exec.Command(podman, "inspect", "--format", format, id).CombinedOutput()
	require.NoError(t, err, string(out))
	return strings.TrimSpace(string(out))
}

func TestContainerLifecycle(t *testing.T) {
	podman := podmanOrSkip(t)
	image := testImage(t, podman)
	root := filepath.Join(t.TempDir(), "workloads")
	newSup := func() *Supervisor {
		s, err := New(Options{Root: root, Drivers: map[string]Driver{"container": NewContainer(ContainerOptions{})}})
		require.NoError(t, err)
		return s
	}
	f := &fixture{t: t, root: root, sup: newSup()}
	t.Cleanup(func() {
		f.sup.StopCluster("c1", "test over")
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = f.sup.Wait(ctx, "c1")
		f.sup.Close()
	})
	g := []Grant{{Role: domain.RoleRelayNode}}
	addr := freePort(t)
	web := containerAssignment(t, "web", image, map[string]any{
		"args": []string{"/bin/httpd", "-f", "-p", addr, "-h", "/www"}, "host_network": true, "stop_timeout": "2s",
		"limits": map[string]any{"memory_bytes": 64 << 20, "pids": 32},
		"health": map[string]any{"kind": "http", "url": "http://" + addr + "/healthz", "interval": "200ms", "failure_threshold": 2},
	})
	crash := containerAssignment(t, "crash", image, map[string]any{"args": []string{"/bin/sh", "-c", "echo boom; exit 3"}})
	wrong := containerAssignment(t, "wrong", "localhost/rap-workload-test@sha256:"+strings.Repeat("0", 64), map[string]any{"args": []string{"/bin/sh"}})
	f.sup.Apply("c1", []Assignment{web, crash, wrong}, g)

	s := f.waitFor("web", "healthy", func(s Status) bool { return s.State == StateHealthy })
	require.Equal(t, "bb-1", s.Version)
	id := s.ContainerID
	require.NotEmpty(t, id)
	require.Equal(t, "true false 67108864 32", inspect(t, podman, id, "{{.HostConfig.ReadonlyRootfs}} {{.HostConfig.Privileged}} {{.HostConfig.Memory}} {{.HostConfig.PidsLimit}}"))

	c := f.waitFor("crash", "crash_loop", func(s Status) bool { return s.State == StateCrashLoop })
	require.Equal(t, 3, c.LastExit.Code)
	require.Contains(t, strings.Join(c.LastExit.Output, "\n"), "boom")

	w := f.waitFor("wrong", "failed", func(s Status) bool { return s.State == StateFailed })
	require.Contains(t, w.Reason, "cannot be pulled")

	// The agent goes away; the next one re-adopts the same container.
	f.sup.Close()
	f.sup = newSup()
	f.sup.Apply("c1", []Assignment{web}, g)
	s = f.waitFor("web", "re-adopted", func(s Status) bool { return s.Adopted && s.State == StateHealthy })
	require.Equal(t, id, s.ContainerID)

	// Unassigned: stopped and removed.
	f.sup.Apply("c1", nil, g)
	f.waitFor("web", "stopped", func(s Status) bool { return s.State == StateStopped })
	out, err := exec.Command(podman, "inspect", id).CombinedOutput()
	require.Error(t, err, "the container is removed: %s", out)
}
