package chaos

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// PGPort is the port of the harness's PostgreSQL server on its host.
const PGPort = 5432

// Postgres is a private PostgreSQL server running as the postgres user inside
// its own host namespace. It listens on the host's address (for the
// authorities, trust authentication limited to Subnet) and on a unix socket
// in its directory (for the harness's checkers, which therefore keep reading
// while the network is cut).
type Postgres struct {
	// Host is the namespace the server runs in.
	Host *Host
	// Dir holds the data directory, the socket and the server log.
	Dir string

	bindir string
	logDir string
	// name labels the server's log in the kept logs ("postgres", "standby").
	name     string
	uid, gid int
}

// FindPGBinDir finds initdb and pg_ctl (pg_config --bindir, then the newest
// /usr/lib/postgresql/*/bin).
func FindPGBinDir() (string, error) {
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		d := strings.TrimSpace(string(out))
		if fileExists(filepath.Join(d, "initdb")) && fileExists(filepath.Join(d, "pg_ctl")) {
			return d, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return pgMajor(dirs[i]) > pgMajor(dirs[j]) })
	for _, d := range dirs {
		if fileExists(filepath.Join(d, "initdb")) && fileExists(filepath.Join(d, "pg_ctl")) {
			return d, nil
		}
	}
	return "", fmt.Errorf("chaos: no PostgreSQL server binaries (initdb, pg_ctl); install Debian's postgresql package")
}

func pgMajor(dir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return v
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// StartPostgres initialises and starts a server on host and creates the
// database "rap". The network's teardown stops it.
func StartPostgres(n *Network, host *Host) (*Postgres, error) {
	bindir, err := FindPGBinDir()
	if err != nil {
		return nil, err
	}
	pgUser, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("chaos: the postgres user is needed (initdb refuses root): %w", err)
	}
	uid, _ := strconv.Atoi(pgUser.Uid)
	gid, _ := strconv.Atoi(pgUser.Gid)
	dir, err := os.MkdirTemp("/var/tmp", n.Prefix+"-pg-")
	if err != nil {
		return nil, err
	}
	pg := &Postgres{Host: host, Dir: dir, bindir: bindir, logDir: n.LogDir, name: "postgres", uid: uid, gid: gid}
	n.OnClose(pg.stop)
	if err := os.Chown(dir, uid, gid); err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "data")
	asPG := func(timeout time.Duration, args ...string) error {
		out, err := host.Exec(timeout, "/usr/sbin/runuser", append([]string{"-u", "postgres", "--"}, args...)...)
		if err != nil {
			return fmt.Errorf("chaos: %s: %w\n%s", args[0], err, out)
		}
		return nil
	}
	if err := asPG(60*time.Second, filepath.Join(bindir, "initdb"), "-D", data, "-U", "postgres", "--auth-local=trust", "--auth-host=reject",
		"--encoding=UTF8", "--no-locale", "--no-sync"); err != nil {
		return nil, err
	}
	conf := fmt.Sprintf(`
listen_addresses = '%s'
port = %d
unix_socket_directories = '%s'
max_connections = 200
shared_buffers = 32MB
fsync = off
synchronous_commit = on
full_page_writes = off
log_min_messages = warning
`, host.IP, PGPort, dir)
	if err := appendFile(filepath.Join(data, "postgresql.conf"), conf); err != nil {
		return nil, err
	}
	hba := "local all all trust\nhost all all " + Subnet + " trust\nhost replication all " + Subnet + " trust\n"
	if err := os.WriteFile(filepath.Join(data, "pg_hba.conf"), []byte(hba), 0o600); err != nil {
		return nil, err
	}
	_ = os.Chown(filepath.Join(data, "pg_hba.conf"), uid, gid)
	if err := asPG(60*time.Second, filepath.Join(bindir, "pg_ctl"), "-D", data, "-l", filepath.Join(dir, "server.log"), "-w", "-t", "60", "start"); err != nil {
		return nil, fmt.Errorf("%w\n%s", err, tailFile(filepath.Join(dir, "server.log"), 20))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, pg.socketURL("postgres"))
	if err != nil {
		return nil, err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE rap"); err != nil {
		return nil, err
	}
	return pg, nil
}

func appendFile(path, s string) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(s); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// URL is what the authorities use: TCP to the server's namespace address.
func (pg *Postgres) URL() string {
	return fmt.Sprintf("postgres://postgres@%s/rap?sslmode=disable", pg.Host.Addr(PGPort))
}

// MultiHostURL names every server, for a client that must reach whichever
// accepts writes (target_session_attrs=read-write).
func MultiHostURL(pgs ...*Postgres) string {
	var hosts []string
	for _, pg := range pgs {
		hosts = append(hosts, pg.Host.Addr(PGPort))
	}
	return fmt.Sprintf("postgres://postgres@%s/rap?sslmode=disable&target_session_attrs=read-write", strings.Join(hosts, ","))
}

func (pg *Postgres) socketURL(db string) string {
	return fmt.Sprintf("postgres://postgres@/%s?host=%s&port=%d&sslmode=disable", db, pg.Dir, PGPort)
}

// Pool opens a pool on the unix socket (unaffected by network faults).
func (pg *Postgres) Pool(ctx context.Context) (*pgxpool.Pool, error) {
	return pgxpool.New(ctx, pg.socketURL("rap"))
}

func (pg *Postgres) stop() {
	data := filepath.Join(pg.Dir, "data")
	if fileExists(filepath.Join(data, "postmaster.pid")) {
		_, _ = pg.Host.Exec(30*time.Second, "/usr/sbin/runuser", "-u", "postgres", "--", filepath.Join(pg.bindir, "pg_ctl"), "-D", data, "-m", "immediate", "-w", "stop")
	}
	if b, err := os.ReadFile(filepath.Join(pg.Dir, "server.log")); err == nil {
		_ = os.WriteFile(filepath.Join(pg.logDir, pg.name+".log"), b, 0o600)
	}
	_ = os.RemoveAll(pg.Dir)
}
