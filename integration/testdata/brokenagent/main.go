// Command brokenagent stands in for a broken rap-node-agent release in the
// self-update tests: with mode "exit" it exits at start, with mode "hang" it
// runs but never opens a status socket or heartbeats, with mode "migrate" it
// applies the node-local state migration its manifest declares (as the real
// agent does on start, updater.MigrateDeclared) and then exits. It writes its
// pid to $BROKEN_AGENT_PIDFILE when set.
package main

import (
	"fmt"
	"os"
	"time"

	"github.com/rap-fabric/core/agent/state"
	"github.com/rap-fabric/core/agent/updater"
)

var (
	version = "0.0.0"
	mode    = "exit"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "version" {
		fmt.Println(version)
		return
	}
	if p := os.Getenv("BROKEN_AGENT_PIDFILE"); p != "" {
		_ = os.WriteFile(p, []byte(fmt.Sprint(os.Getpid())), 0o644)
	}
	switch mode {
	case "exit":
		fmt.Fprintln(os.Stderr, "brokenagent", version, ": failing at start")
		os.Exit(3)
	case "migrate":
		statePath := ""
		for i, a := range os.Args {
			if a == "--state" && i+1 < len(os.Args) {
				statePath = os.Args[i+1]
			}
		}
		st, err := state.Open(statePath, state.Options{})
		if err != nil {
			fmt.Fprintln(os.Stderr, "brokenagent:", err)
			os.Exit(4)
		}
		migrated, err := updater.MigrateDeclared(st, version, nil)
		_ = st.Close()
		fmt.Fprintln(os.Stderr, "brokenagent", version, ": migrated", migrated, err, "; failing")
		os.Exit(3)
	}
	for {
		time.Sleep(time.Hour)
	}
}
