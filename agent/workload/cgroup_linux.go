package workload

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/rap-fabric/core/workloadspec"
)

// cgroups places native workloads in a cgroup of their own under Parent,
// in the unified (v2) hierarchy when the host has it, else in the v1
// memory, pids and cpu controllers it finds.
type cgroups struct {
	root, parent string
	v2           bool
	v1           []string // v1 controllers present
}

func detectCgroups(root, parent string) *cgroups {
	c := &cgroups{root: root, parent: parent}
	if _, err := os.Stat(filepath.Join(root, "cgroup.controllers")); err == nil {
		c.v2 = true
		return c
	}
	for _, ctl := range []string{"memory", "pids", "cpu"} {
		if fi, err := os.Stat(filepath.Join(root, ctl)); err == nil && fi.IsDir() {
			c.v1 = append(c.v1, ctl)
		}
	}
	return c
}

func (c *cgroups) available() bool { return c != nil && (c.v2 || len(c.v1) > 0) }

func writeFile(dir, name, v string) error {
	return os.WriteFile(filepath.Join(dir, name), []byte(v), 0o644)
}

// create makes the instance's cgroup(s) with limits and returns the
// directories.
func (c *cgroups) create(name string, l workloadspec.Limits) ([]string, error) {
	if !c.available() {
		if l != (workloadspec.Limits{}) {
			return nil, errors.New("resource limits requested but this host has no usable cgroup hierarchy")
		}
		return nil, nil
	}
	if c.v2 {
		base := filepath.Join(c.root, c.parent)
		if err := os.MkdirAll(base, 0o755); err != nil {
			return nil, err
		}
		// Delegate the controllers down to the instance's cgroup.
		for _, d := range []string{c.root, base} {
			_ = writeFile(d, "cgroup.subtree_control", "+memory +pids +cpu")
		}
		dir := filepath.Join(base, name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		if l.MemoryBytes > 0 {
			if err := writeFile(dir, "memory.max", strconv.FormatInt(l.MemoryBytes, 10)); err != nil {
				return nil, fmt.Errorf("memory limit: %w", err)
			}
		}
		if l.Pids > 0 {
			if err := writeFile(dir, "pids.max", strconv.FormatInt(l.Pids, 10)); err != nil {
				return nil, fmt.Errorf("pids limit: %w", err)
			}
		}
		if l.CPUMillis > 0 {
			if err := writeFile(dir, "cpu.max", strconv.FormatInt(l.CPUMillis*100, 10)+" 100000"); err != nil {
				return nil, fmt.Errorf("cpu limit: %w", err)
			}
		}
		return []string{dir}, nil
	}
	var dirs []string
	has := map[string]bool{}
	for _, ctl := range c.v1 {
		has[ctl] = true
		dir := filepath.Join(c.root, ctl, c.parent, name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return dirs, err
		}
		dirs = append(dirs, dir)
		var err error
		switch ctl {
		case "memory":
			if l.MemoryBytes > 0 {
				err = writeFile(dir, "memory.limit_in_bytes", strconv.FormatInt(l.MemoryBytes, 10))
			}
		case "pids":
			if l.Pids > 0 {
				err = writeFile(dir, "pids.max", strconv.FormatInt(l.Pids, 10))
			}
		case "cpu":
			if l.CPUMillis > 0 {
				if err = writeFile(dir, "cpu.cfs_period_us", "100000"); err == nil {
					err = writeFile(dir, "cpu.cfs_quota_us", strconv.FormatInt(l.CPUMillis*100, 10))
				}
			}
		}
		if err != nil {
			return dirs, fmt.Errorf("%s limit: %w", ctl, err)
		}
	}
	for ctl, set := range map[string]bool{"memory": l.MemoryBytes > 0, "pids": l.Pids > 0, "cpu": l.CPUMillis > 0} {
		if set && !has[ctl] {
			return dirs, fmt.Errorf("a %s limit is requested but the host has no %s cgroup controller", ctl, ctl)
		}
	}
	return dirs, nil
}

// add moves pid into every directory.
func addToCgroups(dirs []string, pid int) error {
	for _, d := range dirs {
		if err := writeFile(d, "cgroup.procs", strconv.Itoa(pid)); err != nil {
			return err
		}
	}
	return nil
}

// cgroupPids lists the processes of the directories.
func cgroupPids(dirs []string) []int {
	seen := map[int]bool{}
	var out []int
	for _, d := range dirs {
		b, _ := os.ReadFile(filepath.Join(d, "cgroup.procs"))
		for _, f := range strings.Fields(string(b)) {
			if p, err := strconv.Atoi(f); err == nil && !seen[p] {
				seen[p] = true
				out = append(out, p)
			}
		}
	}
	return out
}

// removeCgroups removes the (empty) directories, retrying briefly while the
// kernel finishes tearing the processes down.
func removeCgroups(dirs []string) {
	for _, d := range dirs {
		for i := 0; i < 20; i++ {
			if err := os.Remove(d); err == nil || errors.Is(err, os.ErrNotExist) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}
