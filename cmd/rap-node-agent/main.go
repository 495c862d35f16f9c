// Command rap-node-agent is the native host agent of the RAP Fabric Core:
// enrollment, local state, heartbeats, desired state, workload supervision and
// the mesh. See docs/STATUS.md for what is implemented.
package main

import (
	"fmt"
	"os"
)

var version = "dev"

func main() {
	if len(os.Args) > 1 && os.Args[1] == "version" {
		fmt.Println(version)
		return
	}
	fmt.Fprintln(os.Stderr, "usage: rap-node-agent version")
	os.Exit(2)
}
