package workload

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rap-fabric/core/workloadspec"
)

// NativeOptions configure the native driver.
type NativeOptions struct {
	// Users runs each service as its own unprivileged uid when the agent
	// runs as root: UIDBase + fnv32(cluster/service) mod UIDRange (group the
	// same number). No passwd entry is needed; the uid owns only the
	// instance's work directory. The instance directory's ancestors must be
	// searchable by others (mode o+x); when they are not, the workload runs
	// as the agent's user and Status.User says why.
	Users bool
	// UIDBase and UIDRange (0: 200000 and 50000).
	UIDBase, UIDRange uint32
	// CgroupRoot is where cgroup hierarchies are mounted ("" :
	// /sys/fs/cgroup; "-": no cgroups). CgroupParent is the cgroup under
	// which instances are placed ("": rap-agent).
	CgroupRoot, CgroupParent string
}

// Native runs a workload's binary as a process: verified copy of the
// artifact, own session and process group, work directory under the
// instance directory, optional own uid, cgroup limits, output appended to
// the instance's output log.
type Native struct {
	o  NativeOptions
	cg *cgroups
}

// NewNative builds the native driver.
func NewNative(o NativeOptions) *Native {
	if o.UIDBase == 0 {
		o.UIDBase = 200000
	}
	if o.UIDRange == 0 {
		o.UIDRange = 50000
	}
	if o.CgroupParent == "" {
		o.CgroupParent = "rap-agent"
	}
	n := &Native{o: o}
	switch o.CgroupRoot {
	case "-":
	case "":
		n.cg = detectCgroups("/sys/fs/cgroup", o.CgroupParent)
	default:
		n.cg = detectCgroups(o.CgroupRoot, o.CgroupParent)
	}
	return n
}

// Kind implements Driver.
func (n *Native) Kind() string { return workloadspec.DriverNative }

func artifactPath(inst *Instance) string { return filepath.Join(inst.Dir, "artifact") }

// Prepare copies the artifact into the instance directory while hashing
// it, refuses (blocked) a copy whose sha256 is not the pinned one, and runs
// the version probe.
func (n *Native) Prepare(inst *Instance) (string, error) {
	a := inst.Spec.Artifact
	src, err := os.Open(a.Path)
	if err != nil {
		return "", fmt.Errorf("artifact: %w", err)
	}
	defer src.Close()
	dst := artifactPath(inst)
	tmp, err := os.CreateTemp(inst.Dir, ".artifact-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(tmp, h), src); err != nil {
		tmp.Close()
		return "", fmt.Errorf("artifact: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != a.SHA256 {
		return "", &BlockedError{Reason: fmt.Sprintf("artifact %s has sha256 %s, the assignment pins %s", a.Path, got, a.SHA256)}
	}
	if err := os.Chmod(tmp.Name(), 0o555); err != nil {
		return "", err
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return "", err
	}
	n.pickUser(inst)
	version := a.Version
	if len(inst.Spec.VersionProbe) > 0 {
		if v := n.probe(inst); v != "" {
			version = v
		}
	}
	return version, nil
}

func (n *Native) uid(inst *Instance) (uint32, bool) {
	if !n.o.Users || os.Geteuid() != 0 {
		return 0, false
	}
	h := fnv.New32a()
	h.Write([]byte(inst.Key))
	return n.o.UIDBase + h.Sum32()%n.o.UIDRange, true
}

// pickUser decides the account of the instance (Instance.User).
func (n *Native) pickUser(inst *Instance) {
	uid, ok := n.uid(inst)
	if !ok {
		inst.User = "uid " + strconv.Itoa(os.Geteuid()) + " (the agent's)"
		return
	}
	for d := inst.Dir; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil || fi.Mode().Perm()&0o001 == 0 {
			inst.User = "uid " + strconv.Itoa(os.Geteuid()) + " (the agent's: " + d + " is not searchable by other users)"
			return
		}
		if d == filepath.Dir(d) {
			break
		}
	}
	inst.User = "uid " + strconv.FormatUint(uint64(uid), 10)
}

func (n *Native) credential(inst *Instance) *syscall.Credential {
	uid, ok := n.uid(inst)
	if !ok || !strings.HasPrefix(inst.User, "uid "+strconv.FormatUint(uint64(uid), 10)) || strings.Contains(inst.User, "agent") {
		return nil
	}
	return &syscall.Credential{Uid: uid, Gid: uid, Groups: []uint32{}}
}

func (n *Native) workDir(inst *Instance) (string, error) {
	w := filepath.Join(inst.Dir, "work")
	if err := os.MkdirAll(w, 0o700); err != nil {
		return "", err
	}
	if c := n.credential(inst); c != nil {
		if err := os.Chown(w, int(c.Uid), int(c.Gid)); err != nil {
			return "", err
		}
	}
	return w, nil
}

func (n *Native) env(inst *Instance) []string {
	env := []string{"PATH=/usr/local/bin:/usr/bin:/bin", "RAP_SERVICE_ID=" + inst.ServiceID, "RAP_SERVICE_TYPE=" + inst.Type, "RAP_CLUSTER_ID=" + inst.Cluster}
	for k, v := range inst.Spec.Env {
		env = append(env, k+"="+v)
	}
	return env
}

// probe runs the version probe and returns the first line of its output.
func (n *Native) probe(inst *Instance) string {
	w, err := n.workDir(inst)
	if err != nil {
		return ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, artifactPath(inst), inst.Spec.VersionProbe...)
	cmd.Args[0] = filepath.Base(inst.Spec.Artifact.Path) // multi-call binaries (busybox) dispatch on it
	cmd.Dir, cmd.Env = w, n.env(inst)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Credential: n.credential(inst)}
	out, err := cmd.Output()
	if err != nil {
		return ""
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	if len(line) > 100 {
		line = line[:100]
	}
	return strings.TrimSpace(line)
}

// Start implements Driver.
func (n *Native) Start(inst *Instance) (Handle, error) {
	w, err := n.workDir(inst)
	if err != nil {
		return nil, err
	}
	logf, err := os.OpenFile(inst.LogPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	var dirs []string
	if n.cg != nil {
		if dirs, err = n.cg.create(dirName(inst.Key), inst.Spec.Limits); err != nil {
			removeCgroups(dirs)
			dirs = nil
			// Without limits the cgroup only helps to find stragglers: an
			// agent that may not create one (not root) runs the workload
			// without it; requested limits are never silently dropped.
			if inst.Spec.Limits != (workloadspec.Limits{}) {
				return nil, fmt.Errorf("cgroup: %w", err)
			}
		}
	} else if inst.Spec.Limits != (workloadspec.Limits{}) {
		return nil, errors.New("resource limits requested but cgroups are disabled on this agent")
	}
	cmd := &exec.Cmd{Path: artifactPath(inst), Args: append([]string{filepath.Base(inst.Spec.Artifact.Path)}, inst.Spec.Args...), Dir: w, Env: n.env(inst), Stdout: logf, Stderr: logf}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Credential: n.credential(inst)}
	if err := cmd.Start(); err != nil {
		removeCgroups(dirs)
		return nil, err
	}
	pid := cmd.Process.Pid
	if err := addToCgroups(dirs, pid); err != nil {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		_ = cmd.Wait()
		removeCgroups(dirs)
		return nil, fmt.Errorf("cgroup: %w", err)
	}
	ticks, _ := procStart(pid)
	p := &proc{n: n, inst: inst, pid: pid, ticks: ticks, dirs: dirs, done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		p.exit = exitOf(cmd.ProcessState, err)
		p.exit.At = time.Now().UTC()
		close(p.done)
	}()
	return p, nil
}

func exitOf(ps *os.ProcessState, err error) Exit {
	if ps == nil {
		return Exit{Code: -1, Unknown: true}
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return Exit{Code: -1, Signal: unixSignalName(ws.Signal())}
	}
	return Exit{Code: ps.ExitCode()}
}

func unixSignalName(s syscall.Signal) string {
	switch s {
	case syscall.SIGKILL:
		return "SIGKILL"
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGSEGV:
		return "SIGSEGV"
	case syscall.SIGABRT:
		return "SIGABRT"
	case syscall.SIGINT:
		return "SIGINT"
	}
	return "signal " + strconv.Itoa(int(s))
}

// Adopt implements Driver: the recorded pid must still run with the recorded
// kernel start time (a recycled pid does not).
func (n *Native) Adopt(inst *Instance, rec Record) (Handle, bool) {
	if rec.PID <= 0 {
		return nil, false
	}
	if t, ok := procStart(rec.PID); !ok || t != rec.StartTicks {
		return nil, false
	}
	p := &proc{n: n, inst: inst, pid: rec.PID, ticks: rec.StartTicks, dirs: rec.Cgroups, done: make(chan struct{}), adopted: true}
	go func() {
		for {
			if t, ok := procStart(p.pid); !ok || t != p.ticks {
				p.exit = Exit{Code: -1, Unknown: true, At: time.Now().UTC()}
				close(p.done)
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
	}()
	return p, true
}

// proc is a native workload's process.
type proc struct {
	n       *Native
	inst    *Instance
	pid     int
	ticks   uint64
	dirs    []string
	adopted bool

	done     chan struct{}
	exit     Exit
	stopOnce sync.Once
}

func (p *proc) Done() <-chan struct{} { return p.done }
func (p *proc) Exit() Exit            { return p.exit }

func (p *proc) Record() Record {
	return Record{PID: p.pid, StartTicks: p.ticks, Cgroups: p.dirs}
}

// signal sends sig to the process group, and (for SIGKILL) to every process
// left in the cgroups.
func (p *proc) signal(sig syscall.Signal) {
	if t, ok := procStart(p.pid); ok && t == p.ticks {
		_ = syscall.Kill(-p.pid, sig)
		_ = syscall.Kill(p.pid, sig)
	}
	if sig == syscall.SIGKILL {
		for _, q := range cgroupPids(p.dirs) {
			_ = syscall.Kill(q, sig)
		}
	}
}

// Stop implements Handle: SIGTERM to the group, SIGKILL after timeout.
func (p *proc) Stop(timeout time.Duration) {
	p.stopOnce.Do(func() {
		p.signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(timeout):
			p.signal(syscall.SIGKILL)
			<-p.done
		}
		// Stragglers that left the group but stayed in the cgroup.
		p.signal(syscall.SIGKILL)
		removeCgroups(p.dirs)
	})
	<-p.done
}

// Exec implements Execer: argv runs as the workload's user in its work
// directory.
func (p *proc) Exec(ctx context.Context, argv []string) error {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = filepath.Join(p.inst.Dir, "work")
	cmd.Env = p.n.env(p.inst)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Credential: p.n.credential(p.inst)}
	out, err := cmd.CombinedOutput()
	if err != nil {
		s := bufio.NewScanner(strings.NewReader(string(out)))
		if s.Scan() {
			return fmt.Errorf("%w: %s", err, s.Text())
		}
	}
	return err
}

// Migrate runs a service-local migration program (a release's declared
// migration command) for the instance: the program is copied into the
// instance directory and runs there like the workload itself (its user,
// work directory and environment, plus env), in a session of its own that
// is killed when ctx ends. It returns the tail of its output.
func (n *Native) Migrate(ctx context.Context, inst *Instance, program string, args, env []string) (string, error) {
	n.pickUser(inst)
	w, err := n.workDir(inst)
	if err != nil {
		return "", err
	}
	src, err := os.ReadFile(program)
	if err != nil {
		return "", err
	}
	dst := filepath.Join(inst.Dir, "migrate")
	if err := os.WriteFile(dst+".tmp", src, 0o755); err != nil {
		return "", err
	}
	if err := os.Chmod(dst+".tmp", 0o755); err != nil {
		return "", err
	}
	if err := os.Rename(dst+".tmp", dst); err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, dst, args...)
	cmd.Dir, cmd.Env = w, append(n.env(inst), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Credential: n.credential(inst)}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	tail := strings.TrimSpace(string(out))
	if len(tail) > 300 {
		tail = tail[len(tail)-300:]
	}
	if err != nil && ctx.Err() != nil {
		err = fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	return tail, err
}
