package chaos

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// Process is a program running inside a host's namespace. Its output goes to
// LogPath. The network's teardown kills every Process it started.
type Process struct {
	// Name labels the process in logs and reports.
	Name string
	// Host is where it runs.
	Host *Host
	// LogPath is the file receiving stdout and stderr (appended across restarts).
	LogPath string

	path string
	args []string
	env  []string

	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{}
	exit   error
	paused bool
	starts int
}

// Start runs path with args inside the host's namespace.
func (h *Host) Start(name, path string, args ...string) (*Process, error) {
	p := &Process{Name: name, Host: h, LogPath: filepath.Join(h.net.LogDir, name+".log"), path: path, args: args}
	if err := p.start(); err != nil {
		return nil, err
	}
	h.net.mu.Lock()
	h.net.procs = append(h.net.procs, p)
	h.net.mu.Unlock()
	return p, nil
}

// Exec runs path with args inside the host's namespace to completion and
// returns its combined output.
func (h *Host) Exec(timeout time.Duration, path string, args ...string) ([]byte, error) {
	cmd := exec.Command(path, args...)
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := h.Run(cmd.Start); err != nil {
		return nil, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return out.Bytes(), err
	case <-time.After(timeout):
		_ = cmd.Process.Kill()
		<-done
		return out.Bytes(), fmt.Errorf("%w: %s after %v", ErrTimeout, path, timeout)
	}
}

func (p *Process) start() error {
	f, err := os.OpenFile(p.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.starts++
	fmt.Fprintf(f, "=== chaos: start #%d of %s at %s: %s %v\n", p.starts, p.Name, time.Now().Format(time.RFC3339Nano), p.path, p.args)
	p.mu.Unlock()
	cmd := exec.Command(p.path, p.args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), p.env...)
	// Own process group: signals from the terminal do not reach it, and the
	// teardown can signal it on its own.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.Host.Run(cmd.Start); err != nil {
		f.Close()
		return fmt.Errorf("chaos: start %s in %s: %w", p.Name, p.Host.NSName, err)
	}
	f.Close()
	done := make(chan struct{})
	p.mu.Lock()
	p.cmd, p.done, p.exit, p.paused = cmd, done, nil, false
	p.mu.Unlock()
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		p.exit = err
		p.mu.Unlock()
		close(done)
	}()
	return nil
}

// Pid is the current process id (0 before the first start).
func (p *Process) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

func (p *Process) alive() bool {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	if done == nil {
		return false
	}
	select {
	case <-done:
		return false
	default:
		return true
	}
}

// Running reports whether the process runs (also when paused).
func (p *Process) Running() bool { return p.alive() }

// Exited returns a channel closed when the current run ends.
func (p *Process) Exited() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.done
}

// Kill9 sends SIGKILL and waits for the process to end.
func (p *Process) Kill9() {
	p.signal(syscall.SIGKILL)
	<-p.Exited()
}

// Pause sends SIGSTOP.
func (p *Process) Pause() {
	p.signal(syscall.SIGSTOP)
	p.mu.Lock()
	p.paused = true
	p.mu.Unlock()
}

// Resume sends SIGCONT.
func (p *Process) Resume() {
	p.signal(syscall.SIGCONT)
	p.mu.Lock()
	p.paused = false
	p.mu.Unlock()
}

// Terminate sends SIGTERM and waits up to timeout, then SIGKILL.
func (p *Process) Terminate(timeout time.Duration) {
	p.signal(syscall.SIGTERM)
	select {
	case <-p.Exited():
	case <-time.After(timeout):
		p.Kill9()
	}
}

// Restart starts the process again with the same command line; it must have
// exited.
func (p *Process) Restart() error {
	if p.alive() {
		return fmt.Errorf("chaos: restart %s: still running", p.Name)
	}
	return p.start()
}

func (p *Process) signal(sig syscall.Signal) {
	p.mu.Lock()
	cmd := p.cmd
	p.mu.Unlock()
	if cmd != nil && cmd.Process != nil {
		_ = cmd.Process.Signal(sig)
	}
}

func (p *Process) kill() {
	if !p.alive() {
		return
	}
	p.signal(syscall.SIGCONT)
	p.signal(syscall.SIGKILL)
	select {
	case <-p.Exited():
	case <-time.After(10 * time.Second):
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b = append(s.b, p...)
	return len(p), nil
}

func (s *syncBuffer) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]byte(nil), s.b...)
}
