package workload

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rap-fabric/core/workloadspec"
)

// ContainerOptions configure the container driver.
type ContainerOptions struct {
	// Podman is the podman binary ("": "podman").
	Podman string
	// Runtime is the OCI runtime podman uses ("": "runc"; this host's crun
	// refuses its hybrid cgroups).
	Runtime string
	// NoFile and NProc are the containers' rlimits (0: 4096; raising them
	// above the agent's own is refused on hosts like this one).
	NoFile, NProc int
}

// Container runs a workload as a podman container of an image pinned by
// digest: never privileged, every capability dropped, no new privileges,
// read-only root filesystem (a tmpfs on /tmp), memory/pids/CPU limits, the
// host network only when the spec declares it (else podman's own network,
// with the declared published ports). Output goes to the instance's output
// log (k8s-file format, rotated by podman at MaxLogBytes).
type Container struct {
	o           ContainerOptions
	maxLogBytes int64
}

// NewContainer builds the container driver.
func NewContainer(o ContainerOptions) *Container {
	if o.Podman == "" {
		o.Podman = "podman"
	}
	if o.Runtime == "" {
		o.Runtime = "runc"
	}
	if o.NoFile <= 0 {
		o.NoFile = 4096
	}
	if o.NProc <= 0 {
		o.NProc = 4096
	}
	return &Container{o: o, maxLogBytes: 8 << 20}
}

// Kind implements Driver.
func (c *Container) Kind() string { return workloadspec.DriverContainer }

func (c *Container) podman(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, c.o.Podman, append([]string{"--runtime", c.o.Runtime}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		msg := strings.TrimSpace(errb.String())
		if len(msg) > 300 {
			msg = msg[len(msg)-300:]
		}
		return out.String(), fmt.Errorf("podman %s: %w: %s", args[0], err, msg)
	}
	return strings.TrimSpace(out.String()), nil
}

func (c *Container) name(inst *Instance) string { return "rap-" + dirName(inst.Key) }

// Prepare checks that the image is present (pulled if not) and that its
// digest is the pinned one; another digest blocks the workload.
func (c *Container) Prepare(inst *Instance) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	img := inst.Spec.Image
	want := inst.Spec.ImageDigest()
	out, err := c.podman(ctx, "image", "inspect", "--format", "{{.Digest}} {{range .RepoDigests}}{{.}} {{end}}", img)
	if err != nil {
		if _, perr := c.podman(ctx, "pull", img); perr != nil {
			return "", fmt.Errorf("image %s is not present and cannot be pulled: %w", img, perr)
		}
		if out, err = c.podman(ctx, "image", "inspect", "--format", "{{.Digest}} {{range .RepoDigests}}{{.}} {{end}}", img); err != nil {
			return "", err
		}
	}
	ok := false
	for _, f := range strings.Fields(out) {
		if f == want || strings.HasSuffix(f, "@"+want) {
			ok = true
		}
	}
	if !ok {
		return "", &BlockedError{Reason: fmt.Sprintf("image %s resolves to digests %q, the assignment pins %s", img, out, want)}
	}
	return inst.Spec.ImageVersion, nil
}

// Start implements Driver.
func (c *Container) Start(inst *Instance) (Handle, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s := inst.Spec
	name := c.name(inst)
	_, _ = c.podman(ctx, "rm", "-f", "--ignore", name)
	args := []string{"run", "-d", "--name", name, "--read-only", "--tmpfs", "/tmp:rw,size=16m",
		"--cap-drop", "all", "--security-opt", "no-new-privileges",
		"--ulimit", fmt.Sprintf("nofile=%d:%d", c.o.NoFile, c.o.NoFile), "--ulimit", fmt.Sprintf("nproc=%d:%d", c.o.NProc, c.o.NProc),
		"--log-driver", "k8s-file", "--log-opt", "path=" + inst.LogPath(), "--log-opt", "max-size=" + strconv.FormatInt(c.maxLogBytes, 10),
		"--label", "rap.cluster=" + inst.Cluster, "--label", "rap.service=" + inst.ServiceID, "--label", "rap.type=" + inst.Type,
		"-e", "RAP_SERVICE_ID=" + inst.ServiceID, "-e", "RAP_SERVICE_TYPE=" + inst.Type, "-e", "RAP_CLUSTER_ID=" + inst.Cluster}
	if s.HostNetwork {
		args = append(args, "--network", "host")
	}
	for _, p := range s.Ports {
		args = append(args, "-p", p)
	}
	if s.Limits.MemoryBytes > 0 {
		args = append(args, "--memory", strconv.FormatInt(s.Limits.MemoryBytes, 10))
	}
	if s.Limits.Pids > 0 {
		args = append(args, "--pids-limit", strconv.FormatInt(s.Limits.Pids, 10))
	}
	if s.Limits.CPUMillis > 0 {
		args = append(args, "--cpus", strconv.FormatFloat(float64(s.Limits.CPUMillis)/1000, 'f', 3, 64))
	}
	for k, v := range s.Env {
		args = append(args, "-e", k+"="+v)
	}
	args = append(args, s.Image)
	args = append(args, s.Args...)
	id, err := c.podman(ctx, args...)
	if err != nil {
		_, _ = c.podman(context.Background(), "rm", "-f", "--ignore", name)
		return nil, err
	}
	inst.User = "container " + name + " (all capabilities dropped)"
	return c.watch(inst, id, false), nil
}

// Adopt implements Driver: the recorded container must still be running.
func (c *Container) Adopt(inst *Instance, rec Record) (Handle, bool) {
	if rec.ContainerID == "" {
		return nil, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := c.podman(ctx, "inspect", "--format", "{{.State.Running}}", rec.ContainerID)
	if err != nil || out != "true" {
		_, _ = c.podman(ctx, "rm", "-f", "--ignore", rec.ContainerID)
		return nil, false
	}
	return c.watch(inst, rec.ContainerID, true), true
}

func (c *Container) watch(inst *Instance, id string, adopted bool) *ctr {
	h := &ctr{c: c, inst: inst, id: id, done: make(chan struct{})}
	go func() {
		code := -1
		for {
			out, err := c.podman(context.Background(), "wait", id)
			if err == nil {
				code, _ = strconv.Atoi(strings.TrimSpace(out))
				break
			}
			// podman wait fails when the container is gone already.
			if st, ierr := c.podman(context.Background(), "inspect", "--format", "{{.State.Running}} {{.State.ExitCode}}", id); ierr != nil || !strings.HasPrefix(st, "true") {
				if f := strings.Fields(st); len(f) == 2 {
					code, _ = strconv.Atoi(f[1])
				}
				break
			}
			time.Sleep(time.Second)
		}
		h.exit = Exit{Code: code, At: time.Now().UTC()}
		if code == 137 {
			h.exit.Signal = "SIGKILL"
		} else if code == 143 {
			h.exit.Signal = "SIGTERM"
		}
		close(h.done)
	}()
	return h
}

// ctr is one container.
type ctr struct {
	c        *Container
	inst     *Instance
	id       string
	done     chan struct{}
	exit     Exit
	stopOnce sync.Once
}

func (h *ctr) Done() <-chan struct{} { return h.done }
func (h *ctr) Exit() Exit            { return h.exit }
func (h *ctr) Record() Record        { return Record{ContainerID: h.id} }

// Stop implements Handle: podman stop (SIGTERM, SIGKILL after timeout), then
// the container is removed.
func (h *ctr) Stop(timeout time.Duration) {
	h.stopOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout+time.Minute)
		defer cancel()
		secs := int((timeout + time.Second - 1) / time.Second)
		if _, err := h.c.podman(ctx, "stop", "-t", strconv.Itoa(secs), h.id); err != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded) {
			_, _ = h.c.podman(ctx, "kill", h.id)
		}
		<-h.done
		_, _ = h.c.podman(ctx, "rm", "-f", "--ignore", h.id)
	})
	<-h.done
}

// Exec implements Execer: the command runs inside the container.
func (h *ctr) Exec(ctx context.Context, argv []string) error {
	_, err := h.c.podman(ctx, append([]string{"exec", h.id}, argv...)...)
	return err
}

// LoadImage loads an image archive (podman load: an oci-archive or
// docker-archive, e.g. the verified artifact of a container workload
// release), tags it name ("repo:tag") and returns its reference by digest
// (repo@sha256:…), the form a container spec pins.
func (c *Container) LoadImage(ctx context.Context, archive, name string) (string, error) {
	repo, _, ok := strings.Cut(name, ":")
	if !ok || strings.Contains(repo, "@") {
		return "", fmt.Errorf("image name %q is not repo:tag", name)
	}
	out, err := c.podman(ctx, "load", "-q", "-i", archive)
	if err != nil {
		return "", err
	}
	loaded := ""
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimSpace(l)
		for _, p := range []string{"Loaded image(s):", "Loaded image:"} {
			if rest, ok := strings.CutPrefix(l, p); ok && loaded == "" {
				loaded, _, _ = strings.Cut(strings.TrimSpace(rest), ",")
			}
		}
	}
	if loaded == "" {
		return "", fmt.Errorf("podman load named no image: %q", out)
	}
	if _, err := c.podman(ctx, "tag", loaded, name); err != nil {
		return "", err
	}
	dig, err := c.podman(ctx, "image", "inspect", "--format", "{{.Digest}}", name)
	if err != nil {
		return "", err
	}
	if !strings.HasPrefix(dig, "sha256:") || len(dig) != len("sha256:")+64 {
		return "", fmt.Errorf("image %s has no sha256 digest (%q)", name, dig)
	}
	return repo + "@" + dig, nil
}
