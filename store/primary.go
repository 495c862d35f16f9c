package store

// Which PostgreSQL server the pool talks to, and the fence on it.
//
// A database URL may name several hosts with target_session_attrs=read-write
// (postgres://u@pg1:5432,pg2:5432/rap?target_session_attrs=read-write): pgx
// then connects to whichever of them accepts writes, so after a standby is
// promoted every new connection (pool, LISTEN, heartbeat flusher, audit
// chainer alike) reaches the new primary, and connections to the dead one fail
// and are dropped by the pool.
//
// The fence lives in the database, and a promoted standby carries the fence of
// its last replayed transaction: with a synchronous standby that is the fence
// the leader claimed, with an asynchronous one it may be older. So the first
// fenced transaction on a server this handle has not seen under its claimed
// epoch re-affirms the fence there before it writes: if the fence is below the
// epoch it claims it again (the claim waits for in-flight fenced transactions
// and makes every older epoch stale on that server), if it is at the epoch
// nothing moves, if it is above it the write fails stale_epoch.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ServerInfo identifies one incarnation of a PostgreSQL server: its address
// as the server sees it and its postmaster's start time. A promoted standby,
// or the same server restarted (or restored), is a different incarnation.
type ServerInfo struct {
	// Addr is inet_server_addr():inet_server_port(), "local" over a unix socket.
	Addr string `json:"addr"`
	// Started is pg_postmaster_start_time().
	Started time.Time `json:"started"`
	// Seen is when this handle first connected to it.
	Seen time.Time `json:"seen"`

	id string // Addr@Started, computed once at connect
}

func (s ServerInfo) key() string {
	if s.id == "" && !s.Started.IsZero() {
		return s.Addr + "@" + s.Started.UTC().Format(time.RFC3339Nano)
	}
	return s.id
}

// servers tracks the incarnation behind every pooled connection and the fence
// this handle claimed and re-affirmed.
type servers struct {
	mu     sync.Mutex
	byConn map[*pgconn.PgConn]ServerInfo
	latest ServerInfo
	// changes counts incarnations after the first one.
	changes atomic.Uint64
	// held is the epoch (and leader) this handle last claimed the fence with.
	heldEpoch  uint64
	heldLeader string
	// verified maps an incarnation to the epoch whose fence is known to be in
	// place there.
	verified  map[string]uint64
	reaffirms atomic.Uint64
	moved     atomic.Uint64
	// lastDial is the remote address (ip:port) of the newest connection;
	// BeforeConnect tries it first.
	lastDial string
}

func newServers() *servers {
	return &servers{byConn: map[*pgconn.PgConn]ServerInfo{}, verified: map[string]uint64{}}
}

// hook installs the connect and close callbacks on cfg.
func (s *servers) hook(cfg *pgxpool.Config) {
	prevBefore := cfg.BeforeConnect
	cfg.BeforeConnect = func(ctx context.Context, cc *pgx.ConnConfig) error {
		if prevBefore != nil {
			if err := prevBefore(ctx, cc); err != nil {
				return err
			}
		}
		s.mu.Lock()
		last := s.lastDial
		s.mu.Unlock()
		preferHost(&cc.Config, last)
		return nil
	}
	prev := cfg.AfterConnect
	cfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
		if prev != nil {
			if err := prev(ctx, c); err != nil {
				return err
			}
		}
		var info ServerInfo
		if err := c.QueryRow(ctx, `SELECT coalesce(host(inet_server_addr()) || ':' || inet_server_port(), 'local'), pg_postmaster_start_time()`).
			Scan(&info.Addr, &info.Started); err != nil {
			return err
		}
		info.Seen = time.Now()
		info.id = info.key()
		s.mu.Lock()
		if s.latest.key() != info.key() {
			if !s.latest.Started.IsZero() {
				s.changes.Add(1)
			}
			s.latest = info
		} else {
			info.Seen = s.latest.Seen
		}
		s.byConn[c.PgConn()] = info
		if ra := c.PgConn().Conn().RemoteAddr(); ra != nil && ra.Network() == "tcp" {
			s.lastDial = ra.String()
		}
		s.mu.Unlock()
		return nil
	}
	cfg.BeforeClose = func(c *pgx.Conn) {
		s.mu.Lock()
		delete(s.byConn, c.PgConn())
		s.mu.Unlock()
	}
}

// preferHost moves the hosts of a multi-host configuration whose address is
// addr (ip:port, the newest connection's) to the front, keeping the order
// otherwise. pgx tries hosts in order, each within the connect timeout, so
// once the writable server is known a dead host listed before it (a machine
// that does not answer at all) no longer delays every new connection. Hosts
// given by name are compared as written (no DNS lookup here).
func preferHost(cc *pgconn.Config, addr string) {
	if addr == "" || len(cc.Fallbacks) == 0 {
		return
	}
	all := append([]*pgconn.FallbackConfig{{Host: cc.Host, Port: cc.Port, TLSConfig: cc.TLSConfig}}, cc.Fallbacks...)
	var first, rest []*pgconn.FallbackConfig
	for _, f := range all {
		if net.JoinHostPort(f.Host, strconv.Itoa(int(f.Port))) == addr {
			first = append(first, f)
		} else {
			rest = append(rest, f)
		}
	}
	if len(first) == 0 || first[0] == all[0] {
		return
	}
	all = append(first, rest...)
	cc.Host, cc.Port, cc.TLSConfig = all[0].Host, all[0].Port, all[0].TLSConfig
	cc.Fallbacks = all[1:]
}

// Detach forgets a connection hijacked from the pool (the pool will not
// report its close); call it right after pgxpool.Conn.Hijack.
func (db *DB) Detach(c *pgx.Conn) {
	if s := db.servers; s != nil {
		s.mu.Lock()
		delete(s.byConn, c.PgConn())
		s.mu.Unlock()
	}
}

func (s *servers) of(c *pgx.Conn) (ServerInfo, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	info, ok := s.byConn[c.PgConn()]
	return info, ok
}

// PrimaryStatus is what an operator reads about the database side: the
// server the pool last connected to and how often the fence was re-affirmed.
type PrimaryStatus struct {
	// Server is the newest server incarnation a connection reached.
	Server ServerInfo `json:"server"`
	// ServerChanges counts new incarnations after the first (failovers,
	// restarts).
	ServerChanges uint64 `json:"server_changes"`
	// FenceReaffirms counts fence re-affirmations on a newly seen server;
	// FenceMoved those that had to move the fence forward there (the server
	// had lost the claim: asynchronous replication or a restore).
	FenceReaffirms uint64 `json:"fence_reaffirms"`
	FenceMoved     uint64 `json:"fence_moved"`
}

// Primary reports the server the pool talks to. A handle built without Open
// reports the zero value.
func (db *DB) Primary() PrimaryStatus {
	s := db.servers
	if s == nil {
		return PrimaryStatus{}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return PrimaryStatus{Server: s.latest, ServerChanges: s.changes.Load(), FenceReaffirms: s.reaffirms.Load(), FenceMoved: s.moved.Load()}
}

// claimOn runs the claim of epoch for leaderID on c in its own transaction.
// held is true when the fence is at epoch for leaderID afterwards: moved now,
// or already there (a retried claim whose first COMMIT's answer was lost, or
// the fence replicated to a promoted standby). Only the Raft leader of an
// epoch claims it, so an equal epoch with the same leader is this leader's own
// claim. moved tells whether this call moved the fence.
func (db *DB) claimOn(ctx context.Context, c *pgx.Conn, epoch uint64, leaderID string) (held, moved bool, err error) {
	tx, err := c.Begin(ctx)
	if err != nil {
		return false, false, mapErr(err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, `SELECT set_config('lock_timeout', $1, true)`,
		strconv.FormatInt((3*db.opts.LockTimeout).Milliseconds(), 10)); err != nil {
		return false, false, mapErr(err)
	}
	if err := tx.QueryRow(ctx, `SELECT rap_claim_fence($1, $2)`, int64(epoch), leaderID).Scan(&moved); err != nil {
		return false, false, mapErr(err)
	}
	held = moved
	if !moved {
		var cur int64
		var leader string
		if err := tx.QueryRow(ctx, `SELECT epoch, leader_id FROM authority_fence WHERE id = 1`).Scan(&cur, &leader); err != nil {
			return false, false, mapErr(err)
		}
		held = uint64(cur) == epoch && leader == leaderID
	}
	if err := tx.Commit(ctx); err != nil {
		m := mapErr(err)
		if errors.Is(m, ErrTimeout) || errors.Is(m, ErrUnavailable) {
			return false, false, fmt.Errorf("%w: %w", ErrOutcomeUnknown, m)
		}
		return false, false, m
	}
	return held, moved, nil
}

// ClaimFence moves the fence to epoch for leaderID. It returns false when the
// fence is already at a newer epoch, or at epoch for another leader: someone
// newer exists and the caller must step down. It returns true when the fence
// is already at epoch for leaderID (a retried claim whose first answer was
// lost, possibly on a standby promoted since). The claim waits for in-flight
// fenced transactions of older epochs.
func (db *DB) ClaimFence(ctx context.Context, epoch uint64, leaderID string) (bool, error) {
	c, err := db.Pool.Acquire(ctx)
	if err != nil {
		return false, mapErr(err)
	}
	defer c.Release()
	held, _, err := db.claimOn(ctx, c.Conn(), epoch, leaderID)
	if err != nil || !held {
		return false, err
	}
	if s := db.servers; s != nil {
		info, _ := s.of(c.Conn())
		s.mu.Lock()
		s.heldEpoch, s.heldLeader = epoch, leaderID
		s.verified[info.key()] = epoch
		s.mu.Unlock()
	}
	return true, nil
}

// reaffirm makes sure, before a fenced transaction of epoch runs on c, that
// the fence this handle claimed for epoch is in place on c's server. It does
// nothing on a server already verified for epoch, or when this handle did not
// claim epoch itself (the transaction's own fence check then decides).
func (db *DB) reaffirm(ctx context.Context, c *pgx.Conn, epoch uint64) error {
	s := db.servers
	if s == nil {
		return nil
	}
	s.mu.Lock() // one short critical section on the hot path
	info, ok := s.byConn[c.PgConn()]
	k := info.key()
	leader, need := s.heldLeader, ok && s.heldEpoch == epoch && s.verified[k] != epoch
	s.mu.Unlock()
	if !need {
		return nil
	}
	held, moved, err := db.claimOn(ctx, c, epoch, leader)
	if errors.Is(err, ErrOutcomeUnknown) {
		// Only the claim's outcome is unknown; nothing of the caller's
		// transaction was sent. The next attempt re-affirms again.
		return fmt.Errorf("%w: re-affirming the fence on %s: %w", ErrUnavailable, info.Addr, err)
	}
	if err != nil {
		return err
	}
	if !held {
		return fmt.Errorf("%w: the fence on %s is past epoch %d", ErrStaleEpoch, info.Addr, epoch)
	}
	s.reaffirms.Add(1)
	if moved {
		s.moved.Add(1)
	}
	s.mu.Lock()
	s.verified[k] = epoch
	s.mu.Unlock()
	return nil
}
