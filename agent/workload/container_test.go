package workload

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/domain"
	"github.com/rap-fabric/core/internal/testimage"
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

// testImage imports the busybox-static image and returns its reference by
// digest.
func testImage(t *testing.T, podman string) string {
	t.Helper()
	ref, tag, err := testimage.Busybox(podman, t.TempDir())
	if tag != "" {
		t.Cleanup(func() { _ = exec.Command(podman, "rmi", "-f", tag).Run() })
	}
	require.NoError(t, err)
	return ref
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
