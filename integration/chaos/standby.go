package chaos

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// StandbyName is the standby's application_name, the one the primary's
// synchronous_standby_names lists.
const StandbyName = "standby1"

// StartStandby makes a streaming standby of primary on host: pg_basebackup
// over the network (as the postgres user, inside host's namespace), its own
// listen address and socket directory, standby.signal and primary_conninfo
// with application_name StandbyName. Then the primary lists it in
// synchronous_standby_names (ALTER SYSTEM, reload) with synchronous_commit =
// on, and StartStandby waits until pg_stat_replication shows it 'sync'. The
// standby's own configuration has no synchronous_standby_names (ALTER SYSTEM
// runs after the copy), so once promoted it commits without waiting for a
// standby it does not have. The network's teardown stops it.
//
// via, when not empty, is the host:port the standby streams from instead of
// the primary's address (a fault proxy on the replication link); the base
// backup always copies directly.
func StartStandby(n *Network, host *Host, primary *Postgres, via string) (*Postgres, error) {
	dir, err := os.MkdirTemp("/var/tmp", n.Prefix+"-pg2-")
	if err != nil {
		return nil, err
	}
	sb := &Postgres{Host: host, Dir: dir, bindir: primary.bindir, logDir: n.LogDir, name: "standby", uid: primary.uid, gid: primary.gid}
	n.OnClose(sb.stop)
	if err := os.Chown(dir, sb.uid, sb.gid); err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "data")
	if err := sb.asPG(120*time.Second, "pg_basebackup", "-h", primary.Host.IP.String(), "-p", strconv.Itoa(PGPort), "-U", "postgres",
		"-D", data, "-X", "stream", "--checkpoint=fast", "--no-sync"); err != nil {
		return nil, err
	}
	upstreamHost, upstreamPort := primary.Host.IP.String(), strconv.Itoa(PGPort)
	if via != "" {
		if upstreamHost, upstreamPort, err = net.SplitHostPort(via); err != nil {
			return nil, err
		}
	}
	conf := fmt.Sprintf(`
# standby (appended after the primary's copy: the last setting wins)
listen_addresses = '%s'
unix_socket_directories = '%s'
primary_conninfo = 'host=%s port=%s user=postgres application_name=%s'
hot_standby = on
# retry streaming (and notice a promotion request) every 200 ms, not 5 s
wal_retrieve_retry_interval = '200ms'
`, host.IP, dir, upstreamHost, upstreamPort, StandbyName)
	if err := appendFile(filepath.Join(data, "postgresql.conf"), conf); err != nil {
		return nil, err
	}
	signal := filepath.Join(data, "standby.signal")
	if err := os.WriteFile(signal, nil, 0o600); err != nil {
		return nil, err
	}
	_ = os.Chown(signal, sb.uid, sb.gid)
	if err := sb.asPG(60*time.Second, "pg_ctl", "-D", data, "-l", filepath.Join(dir, "server.log"), "-w", "-t", "60", "start"); err != nil {
		return nil, fmt.Errorf("%w\n%s", err, tailFile(filepath.Join(dir, "server.log"), 20))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, primary.socketURL("postgres"))
	if err != nil {
		return nil, err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `ALTER SYSTEM SET synchronous_standby_names = '`+StandbyName+`'`); err != nil {
		return nil, err
	}
	if _, err := conn.Exec(ctx, `SELECT pg_reload_conf()`); err != nil {
		return nil, err
	}
	for {
		var state string
		err := conn.QueryRow(ctx, `SELECT sync_state FROM pg_stat_replication WHERE application_name = $1`, StandbyName).Scan(&state)
		if err == nil && state == "sync" {
			return sb, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: standby not synchronous (state %q, %v)\n%s", ErrTimeout, state, err, tailFile(filepath.Join(dir, "server.log"), 20))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// asPG runs one of the server binaries as the postgres user inside the
// server's namespace.
func (pg *Postgres) asPG(timeout time.Duration, bin string, args ...string) error {
	out, err := pg.Host.Exec(timeout, "/usr/sbin/runuser", append([]string{"-u", "postgres", "--", filepath.Join(pg.bindir, bin)}, args...)...)
	if err != nil {
		return fmt.Errorf("chaos: %s: %w\n%s", bin, err, out)
	}
	return nil
}

// Kill9 kills the server the way a crashed machine loses it: SIGKILL to the
// postmaster and to every process it had started (backends, WAL sender,
// checkpointer), nothing flushed or shut down. It returns how many processes
// it killed.
func (pg *Postgres) Kill9() (int, error) {
	b, err := os.ReadFile(filepath.Join(pg.Dir, "data", "postmaster.pid"))
	if err != nil {
		return 0, err
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil {
		return 0, fmt.Errorf("chaos: postmaster.pid: %w", err)
	}
	children := childrenOf(pid) // before the kill: then they are reparented
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		return 0, err
	}
	for _, c := range children {
		_ = syscall.Kill(c, syscall.SIGKILL)
	}
	return 1 + len(children), nil
}

// childrenOf lists the processes whose parent is pid (from /proc).
func childrenOf(pid int) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid …; comm may hold spaces, so cut at the last ')'.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) > 1 {
			if pp, _ := strconv.Atoi(f[1]); pp == pid {
				out = append(out, p)
			}
		}
	}
	return out
}

// Promote promotes a standby (pg_ctl promote, waiting until it accepts
// writes).
func (pg *Postgres) Promote() error {
	return pg.asPG(60*time.Second, "pg_ctl", "-D", filepath.Join(pg.Dir, "data"), "-w", "-t", "60", "promote")
}
