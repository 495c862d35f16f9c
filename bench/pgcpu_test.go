package bench

import (
	"context"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// clockTick is the unit of utime and stime in /proc/<pid>/stat (USER_HZ,
// 100 on every Linux this runs on).
const clockTick = 10 * time.Millisecond

// procStat returns a process's parent pid and its user + system CPU time.
func procStat(pid int) (ppid int, cpu time.Duration, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')') // the command may hold spaces
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(s[i+1:]) // f[0] is field 3 (state)
	if len(f) < 13 {
		return 0, 0, false
	}
	ppid, _ = strconv.Atoi(f[1])
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return ppid, time.Duration(ut+st) * clockTick, true
}

// pgCPU returns a function that reports the CPU time used so far by the
// PostgreSQL server behind pool (the postmaster and every process it
// started: backends, WAL writer, checkpointer…), or nil when the server is
// not a process on this machine. Backends that exited between two readings
// are not counted: measure with a pool whose connections stay open.
func pgCPU(ctx context.Context, pool *pgxpool.Pool) func() time.Duration {
	var backend int
	if err := pool.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&backend); err != nil {
		return nil
	}
	postmaster, _, ok := procStat(backend)
	if !ok {
		return nil // another machine (or container) runs the server
	}
	return func() time.Duration {
		var total time.Duration
		ents, err := os.ReadDir("/proc")
		if err != nil {
			return 0
		}
		for _, e := range ents {
			pid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			if ppid, cpu, ok := procStat(pid); ok && (ppid == postmaster || pid == postmaster) {
				total += cpu
			}
		}
		return total
	}
}

// selfCPU is this process's user + system CPU time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
