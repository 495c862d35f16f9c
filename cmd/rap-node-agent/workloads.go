package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/rap-fabric/core/agent/workload"
)

type wlFlags struct {
	statePath    *string
	dir          *string
	disabled     *bool
	users        *bool
	cgroupParent *string
	cgroupRoot   *string
	podman       *string
}

func workloadFlags(fs *flag.FlagSet, statePath *string) *wlFlags {
	return &wlFlags{statePath: statePath,
		dir:          fs.String("workloads-dir", "", "directory of the supervised workloads (default: workloads/ next to the state file)"),
		disabled:     fs.Bool("no-workloads", false, "supervise no service workloads"),
		users:        fs.Bool("workload-users", true, "run each native workload as its own unprivileged uid (when the agent runs as root)"),
		cgroupParent: fs.String("cgroup-parent", "rap-agent", "cgroup under which native workloads are placed"),
		cgroupRoot:   fs.String("cgroup-root", "/sys/fs/cgroup", `cgroup mount point ("-": no cgroups)`),
		podman:       fs.String("podman", "podman", "podman binary of the container driver"),
	}
}

func (w *wlFlags) root() string {
	if *w.dir != "" {
		return *w.dir
	}
	return filepath.Join(filepath.Dir(*w.statePath), "workloads")
}

// supervisor builds the workload supervisor; onChange (may be nil) is called
// when an instance changes state.
func (w *wlFlags) supervisor(log hclog.Logger, onChange func(cluster string)) (*workload.Supervisor, error) {
	if *w.disabled {
		return nil, nil
	}
	drivers := map[string]workload.Driver{
		"native":    workload.NewNative(workload.NativeOptions{Users: *w.users, CgroupRoot: *w.cgroupRoot, CgroupParent: *w.cgroupParent}),
		"container": workload.NewContainer(workload.ContainerOptions{Podman: *w.podman}),
	}
	return workload.New(workload.Options{Root: w.root(), Drivers: drivers, Logger: log.Named("workload"), OnChange: onChange})
}

func logsCmd(args []string) error {
	var service string
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		service, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet("logs", flag.ContinueOnError)
	statePath := fs.String("state", defaultState, "state file")
	dir := fs.String("workloads-dir", "", "directory of the supervised workloads (default: workloads/ next to the state file)")
	cluster := fs.String("cluster", "", "cluster id (when the service runs in several clusters)")
	follow := fs.Bool("follow", false, "keep printing what the workload writes")
	fs.BoolVar(follow, "f", false, "short for --follow")
	tail := fs.Int("tail", 50, "lines of the past output to print")
	if err := loadFlags(fs, args); err != nil {
		return err
	}
	if service == "" && fs.NArg() > 0 {
		service = fs.Arg(0)
	}
	if service == "" {
		return fmt.Errorf("%w: logs SERVICE (a service id, type, instance name or TYPE/INSTANCE)", flag.ErrHelp)
	}
	root := *dir
	if root == "" {
		root = filepath.Join(filepath.Dir(*statePath), "workloads")
	}
	path, err := workload.FindLog(root, *cluster, service)
	if err != nil {
		return err
	}
	lines, err := workload.TailLines(path, *tail)
	if err != nil {
		return err
	}
	for _, l := range lines {
		fmt.Println(l)
	}
	if !*follow {
		return nil
	}
	var from int64
	if fi, err := os.Stat(path); err == nil {
		from = fi.Size()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return workload.Follow(ctx, path, from, os.Stdout, 200*time.Millisecond)
}
