// Command rap-node-agent-launcher is the agent's watchdog: it starts the
// current rap-node-agent version from the slot directory, switches to a
// staged version when the agent's pending_update asks for it, promotes the
// new version once an authority acknowledged its heartbeat within the
// deadline, and otherwise restores the previous version, with no human
// action (see agent/updater).
//
//	rap-node-agent-launcher --slots DIR --state PATH [--status-socket PATH] [--deadline 60s] [--max-attempts 2]
//	    [--install VERSION=BINARY] [-- AGENT-RUN-FLAGS…]
//
// --install copies BINARY into VERSION's slot and makes it current when the
// directory has no current version yet (first installation). Flags after --
// are passed to `rap-node-agent run`.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/rap-fabric/core/agent/updater"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "rap-node-agent-launcher:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("rap-node-agent-launcher", flag.ContinueOnError)
	slotsDir := fs.String("slots", "/var/lib/rap-node-agent/slots", "version slot directory")
	statePath := fs.String("state", "/var/lib/rap-node-agent/state.db", "agent state file")
	socket := fs.String("status-socket", "", "agent status socket (default: agent.sock next to the state file)")
	deadline := fs.Duration("deadline", 60*time.Second, "a new version must heartbeat an authority within this long")
	attempts := fs.Int("max-attempts", 2, "trial restarts after an interrupted launcher")
	install := fs.String("install", "", "VERSION=BINARY: install the first version when there is none")
	level := fs.String("log-level", "info", "log level")
	if err := fs.Parse(args); err != nil {
		return err
	}
	agentArgs := fs.Args()
	if *socket == "" {
		*socket = filepath.Join(filepath.Dir(*statePath), "agent.sock")
	}
	log := hclog.New(&hclog.LoggerOptions{Name: "rap-node-agent-launcher", Level: hclog.LevelFromString(*level), Output: os.Stderr})
	slots := updater.Slots{Dir: *slotsDir}
	if *install != "" {
		v, bin, ok := strings.Cut(*install, "=")
		if !ok {
			return errors.New("--install wants VERSION=BINARY")
		}
		if _, err := slots.Current(); errors.Is(err, updater.ErrNoVersion) {
			if err := slots.Install(v, bin); err != nil {
				return err
			}
			if err := slots.Promote(v); err != nil {
				return err
			}
			log.Info("installed first version", "version", v)
		}
	}
	l, err := updater.NewLauncher(updater.LauncherConfig{
		Slots:     slots,
		OpenState: updater.OpenStateFile(*statePath),
		StatePath: *statePath,
		Command: func(bin string) *exec.Cmd {
			cmd := exec.Command(bin, append([]string{"run", "--state", *statePath, "--status-socket", *socket, "--slots", *slotsDir}, agentArgs...)...)
			cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
			return cmd
		},
		Probe:       updater.ProbeSocket(*socket),
		Deadline:    *deadline,
		MaxAttempts: *attempts,
		Logger:      log,
	})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return l.Run(ctx)
}
