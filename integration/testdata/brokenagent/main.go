// Command brokenagent stands in for a broken rap-node-agent release in the
// self-update tests: with mode "exit" it exits at start, with mode "hang" it
// runs but never opens a status socket or heartbeats. It writes its pid to
// $BROKEN_AGENT_PIDFILE when set.
package main

import (
	"fmt"
	"os"
	"time"
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
	if mode == "exit" {
		fmt.Fprintln(os.Stderr, "brokenagent", version, ": failing at start")
		os.Exit(3)
	}
	for {
		time.Sleep(time.Hour)
	}
}
