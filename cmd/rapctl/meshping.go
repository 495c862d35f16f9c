package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rap-fabric/core/agent/statusclient"
)

// meshPingCmd is `rapctl mesh ping NODE`: it asks the node agent running on
// this host (through its 0600 status socket) to send echo probes to NODE over
// the mesh and prints the path taken and the RTT. The authorities are not in
// the mesh and never pick routes, so the probe starts at a local agent; the
// command is the same as `rap-node-agent mesh ping`.
func meshPingCmd(args []string) error {
	fs := flag.NewFlagSet("mesh ping", flag.ContinueOnError)
	statePath := fs.String("state", envOr("RAP_AGENT_STATE", envOr("RAP_STATE", "/var/lib/rap-node-agent/state.db")), "the local agent's state file (env RAP_AGENT_STATE)")
	socket := fs.String("status-socket", "", "the agent's status socket (default: agent.sock next to the state file)")
	cluster := fs.String("cluster", "", "cluster id (needed when several memberships run a mesh)")
	timeout := fs.Duration("timeout", 5*time.Second, "ping timeout")
	fs.StringVar(&output, "o", output, "output: table or json")
	var node string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		node, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if node == "" && fs.NArg() > 0 {
		node = fs.Arg(0)
	}
	if node == "" {
		return errArgs("NODE (rapctl mesh ping NODE [--state FILE] [--cluster ID])")
	}
	if *timeout <= 0 || *timeout > time.Minute {
		return fmt.Errorf("--timeout must be between 1ms and 1m")
	}
	if *socket == "" {
		*socket = filepath.Join(filepath.Dir(*statePath), "agent.sock")
	}
	return statusclient.Ping(*socket, *cluster, node, *timeout, output == "json", os.Stdout)
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
