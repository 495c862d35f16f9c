// Package testport picks loopback TCP ports for tests that must listen on the
// same address again after a restart.
//
// A port the kernel hands out for "127.0.0.1:0" comes from the ephemeral range
// (net.ipv4.ip_local_port_range), which is also where outgoing connections get
// their local ports: once a test closes such a listener to restart it, any
// connection on the machine may take the port and the restart fails with
// "address already in use". The ports given here lie below the ephemeral range,
// where the kernel never assigns one by itself, so only another listener that
// asks for that exact port can take it. A port is handed out at most once per
// process: a test that takes several before starting anything (three
// authorities' Raft and API ports) would otherwise be given the same free
// port twice now and then, and one of its listeners would fail with "address
// already in use" (TestBackupAndRestore did, in CI). Test-only: production
// code must not import this package.
package testport

import (
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// given holds every port Stable returned in this process.
var (
	mu    sync.Mutex
	given = map[int]bool{}
)

// lowest is the bottom of the range ports are drawn from.
const lowest = 10000

// Stable returns "127.0.0.1:N" for a port N that is free now, lies below
// the kernel's ephemeral port range, and was not returned before in this
// process.
func Stable(tb testing.TB) string {
	tb.Helper()
	hi := ephemeralLow()
	mu.Lock()
	defer mu.Unlock()
	for range 200 {
		p := lowest + rand.IntN(hi-lowest)
		if given[p] {
			continue
		}
		addr := "127.0.0.1:" + strconv.Itoa(p)
		l, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		if err := l.Close(); err != nil {
			tb.Fatalf("testport: close %s: %v", addr, err)
		}
		given[p] = true
		return addr
	}
	tb.Fatalf("testport: no free port found in [%d, %d)", lowest, hi)
	return ""
}

// ephemeralLow is the first port of the ephemeral range (32768 when it
// cannot be read).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) < 1 {
		return 32768
	}
	n, err := strconv.Atoi(f[0])
	if err != nil || n <= lowest+1000 {
		return 32768
	}
	return n
}
