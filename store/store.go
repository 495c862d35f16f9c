// Package store is the PostgreSQL side of the RAP Fabric Core: a pgx pool, a
// transaction helper, the fenced transaction, and one repository file per
// aggregate (clusters, nodes, identities, tokens, join requests, roles, groups,
// services, heartbeats, audit).
//
// PostgreSQL is the source of truth. The fence that keeps a deposed authority
// leader from landing a write lives in the schema (see migrations/001_core.sql);
// this package declares the transaction's epoch and maps the database's refusals
// to the typed errors in errors.go. It does not decide who may do what: that is
// the authority package's job.
package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Querier is what repository functions need: a pool or a transaction.
type Querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Options tunes the pool and the fenced transactions. The zero value is usable.
type Options struct {
	// MaxConns caps the pool; 0 means 32.
	MaxConns int32
	// LockTimeout bounds how long a fenced transaction waits for a lock
	// (including the fence row during a leadership change); 0 means 2 s.
	LockTimeout time.Duration
	// StatementTimeout bounds every statement of a fenced transaction; 0 means 3 s.
	StatementTimeout time.Duration
	// FencedTimeout bounds a whole fenced transaction on the client side, so a
	// database that stops answering (network cut) yields ErrTimeout instead of
	// a hang; 0 means LockTimeout + StatementTimeout.
	FencedTimeout time.Duration
}

// DB is the PostgreSQL handle shared by the repositories.
type DB struct {
	Pool *pgxpool.Pool
	opts Options
}

// Open connects a pool to databaseURL and checks that the server answers.
func Open(ctx context.Context, databaseURL string, opts Options) (*DB, error) {
	if opts.MaxConns == 0 {
		opts.MaxConns = 32
	}
	if opts.LockTimeout == 0 {
		opts.LockTimeout = 2 * time.Second
	}
	if opts.StatementTimeout == 0 {
		opts.StatementTimeout = 3 * time.Second
	}
	if opts.FencedTimeout == 0 {
		opts.FencedTimeout = opts.LockTimeout + opts.StatementTimeout
	}
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return nil, fmt.Errorf("store: parse database URL: %w", err)
	}
	cfg.MaxConns = opts.MaxConns
	cfg.ConnConfig.ConnectTimeout = 5 * time.Second
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("store: connect: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("store: ping: %w", mapErr(err))
	}
	return &DB{Pool: pool, opts: opts}, nil
}

// Close closes the pool.
func (db *DB) Close() { db.Pool.Close() }

// Tx runs fn in a READ COMMITTED transaction, committing when fn returns nil and
// rolling back otherwise. Errors are mapped to the package's typed errors.
func (db *DB) Tx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	tx, err := db.Pool.Begin(ctx)
	if err != nil {
		return mapErr(err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if err := fn(tx); err != nil {
		return mapErr(err)
	}
	if err := tx.Commit(ctx); err != nil {
		m := mapErr(err)
		if errors.Is(m, ErrTimeout) || errors.Is(m, ErrUnavailable) {
			// The COMMIT may or may not have reached the server.
			return fmt.Errorf("%w: %w", ErrOutcomeUnknown, m)
		}
		return m
	}
	return nil
}

// Fenced runs fn in a transaction that declares epoch as its authority epoch.
//
// Before fn runs, the transaction takes the fence lock shared and checks that
// epoch is the current one (ErrStaleEpoch otherwise), so a newer leader's claim
// waits for this transaction and every later transaction of an older leader
// fails. The same check runs again inside PostgreSQL on every row fn writes to a
// fenced table, so fn cannot bypass it. lock_timeout and statement_timeout bound
// the transaction so nothing hangs behind a leadership change.
func (db *DB) Fenced(ctx context.Context, epoch uint64, fn func(tx pgx.Tx) error) error {
	if epoch == 0 {
		return fmt.Errorf("%w: epoch 0 is never current", ErrStaleEpoch)
	}
	if d := db.opts.FencedTimeout; d > 0 { // zero for a DB built without Open
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	return db.Tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT rap_begin_fenced($1, $2, $3)`, int64(epoch),
			db.opts.LockTimeout.Milliseconds(), db.opts.StatementTimeout.Milliseconds()); err != nil {
			return err
		}
		return fn(tx)
	})
}

// ClaimFence moves the fence to epoch for leaderID. It returns false when the
// fence is already at epoch or newer: someone newer exists and the caller must
// step down. The claim waits for in-flight fenced transactions of older epochs.
func (db *DB) ClaimFence(ctx context.Context, epoch uint64, leaderID string) (bool, error) {
	var ok bool
	err := db.Tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT set_config('lock_timeout', $1, true)`,
			strconv.FormatInt((3*db.opts.LockTimeout).Milliseconds(), 10)); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `SELECT rap_claim_fence($1, $2)`, int64(epoch), leaderID).Scan(&ok)
	})
	return ok, err
}

// FenceState is the current row of authority_fence.
type FenceState struct {
	Epoch     uint64
	LeaderID  string
	ClaimedAt *time.Time
}

// Fence reads the current fence without locking it.
func (db *DB) Fence(ctx context.Context) (FenceState, error) {
	var f FenceState
	var e int64
	err := db.Pool.QueryRow(ctx, `SELECT epoch, leader_id, claimed_at FROM authority_fence WHERE id = 1`).Scan(&e, &f.LeaderID, &f.ClaimedAt)
	f.Epoch = uint64(e)
	return f, mapErr(err)
}

// errNoRows reports whether err is pgx's no-rows error.
func errNoRows(err error) bool { return errors.Is(err, pgx.ErrNoRows) }
