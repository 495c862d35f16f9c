package runtime

// The load an agent reports with every heartbeat (agentapi.Load, spec C8):
// the one-minute load average and memory use from /proc (Linux; zero where
// it cannot be read) and how many of its mesh links are up.

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"strings"

	"github.com/rap-fabric/core/agentapi"
)

// procRoot is where loadavg and meminfo are read (tests point it elsewhere).
var procRoot = "/proc"

// readLoad measures the host's load; links is the count of mesh links up.
func readLoad(links int) *agentapi.Load {
	l := &agentapi.Load{Links: links}
	if b, err := os.ReadFile(procRoot + "/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 0 {
			if v, err := strconv.ParseFloat(f[0], 64); err == nil && v >= 0 {
				l.Load1 = v
			}
		}
	}
	if b, err := os.ReadFile(procRoot + "/meminfo"); err == nil {
		var total, avail uint64
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			k, v, ok := strings.Cut(sc.Text(), ":")
			if !ok {
				continue
			}
			f := strings.Fields(v)
			if len(f) == 0 {
				continue
			}
			n, err := strconv.ParseUint(f[0], 10, 64)
			if err != nil {
				continue
			}
			if len(f) > 1 && f[1] == "kB" {
				n *= 1024
			}
			switch k {
			case "MemTotal":
				total = n
			case "MemAvailable":
				avail = n
			}
		}
		if total > 0 && avail <= total {
			l.MemTotalBytes, l.MemUsedBytes = total, total-avail
		}
	}
	return l
}

// linksUp counts the member's mesh links that are up (0 without a mesh).
func (m *member) linksUp() int {
	n := m.meshNode()
	if n == nil {
		return 0
	}
	up := 0
	for _, l := range n.Status().Links {
		if l.State == "up" {
			up++
		}
	}
	return up
}
