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
	// servers tracks which PostgreSQL server each connection reached and
	// the fence re-affirmed there (primary.go); nil without Open.
	servers *servers
	// groups counts fenced groups by the way they ran (group_optimistic.go).
	groups groupStats
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
	cfg.ConnConfig.DialFunc = dialer() // dead-peer detection (dial.go)
	srv := newServers()
	srv.hook(cfg)
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
	return &DB{Pool: pool, opts: opts, servers: srv}, nil
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

// ReadSnapshot runs fn in a read-only REPEATABLE READ transaction: every
// statement of fn sees the same committed state (a report made of several
// queries stays consistent). Errors are mapped to the package's typed errors.
func (db *DB) ReadSnapshot(ctx context.Context, fn func(tx pgx.Tx) error) error {
	tx, err := db.Pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return mapErr(err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if err := fn(tx); err != nil {
		return mapErr(err)
	}
	return mapErr(tx.Commit(ctx))
}

// Fenced runs fn in a transaction that declares epoch as its authority epoch.
//
// Before fn runs, the transaction takes the fence lock shared and checks that
// epoch is the current one (ErrStaleEpoch otherwise), so a newer leader's claim
// waits for this transaction and every later transaction of an older leader
// fails. The same check runs again inside PostgreSQL on every row fn writes to a
// fenced table, so fn cannot bypass it. lock_timeout and statement_timeout bound
// the transaction so nothing hangs behind a leadership change.
//
// Fenced is FencedBatch with nothing queued: BEGIN and the epoch declaration
// share one round trip, and COMMIT is one more.
func (db *DB) Fenced(ctx context.Context, epoch uint64, fn func(tx pgx.Tx) error) error {
	return db.FencedBatch(ctx, epoch, nil, func(tx pgx.Tx, _ *pgx.Batch) error { return fn(tx) })
}

// FencedBatch is Fenced in as few round trips as the work allows; it gives the
// same guarantees.
//
// The first round trip sends BEGIN, the epoch declaration (rap_begin_fenced:
// timeouts, shared fence lock, epoch check) and then the statements queued in
// first, which therefore run under the fence; their result callbacks
// (pgx.QueuedQuery.Exec, QueryRow, Query) run before fn. A failure of any of
// them (ErrStaleEpoch included) rolls back and fn does not run. first may be nil.
//
// fn then runs its own statements on tx and may queue statements in last: they
// are sent after fn returned nil, in the same round trip as COMMIT, and the
// transaction commits only if every one of them succeeded. Because COMMIT
// follows them before their results are read, statements in last must not carry
// result callbacks (FencedBatch refuses them); they are for writes whose only
// outcome is an error, such as the audit event. Network failures or timeouts
// once COMMIT was sent yield ErrOutcomeUnknown, as a failed COMMIT does in Tx.
//
// tx is only valid while fn runs; FencedBatch alone commits or rolls it back.
func (db *DB) FencedBatch(ctx context.Context, epoch uint64, first *pgx.Batch, fn func(tx pgx.Tx, last *pgx.Batch) error) error {
	if epoch == 0 {
		return fmt.Errorf("%w: epoch 0 is never current", ErrStaleEpoch)
	}
	if d := db.opts.FencedTimeout; d > 0 { // zero for a DB built without Open
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	c, err := db.Pool.Acquire(ctx)
	if err != nil {
		return mapErr(err)
	}
	defer c.Release()
	// A server this handle has not written to under epoch (a promoted
	// standby) gets the fence re-affirmed first (primary.go).
	if err := db.reaffirm(ctx, c.Conn(), epoch); err != nil {
		return err
	}

	b := &pgx.Batch{}
	b.BeginTx(pgx.TxOptions{})
	b.Queue(`SELECT rap_begin_fenced($1, $2, $3)`, int64(epoch),
		db.opts.LockTimeout.Milliseconds(), db.opts.StatementTimeout.Milliseconds())
	if first != nil {
		b.QueuedQueries = append(b.QueuedQueries, first.QueuedQueries...)
	}
	br := c.SendBatch(ctx, b)
	ptx := br.Tx()
	defer func() {
		// Roll back whatever did not commit (an open or failed transaction);
		// the pool destroys a connection left in any other state.
		if pc := c.Conn().PgConn(); !pc.IsClosed() && pc.TxStatus() != 'I' {
			_ = ptx.Rollback(context.WithoutCancel(ctx))
		}
	}()
	if err := br.Close(); err != nil {
		return mapErr(err)
	}

	tx := &fencedTx{Tx: ptx}
	last := &pgx.Batch{}
	err = fn(tx, last)
	tx.Tx = closedTx
	if err != nil {
		return mapErr(err)
	}
	for _, q := range last.QueuedQueries {
		if q.Fn != nil {
			return errors.New("store: statements queued to run with COMMIT cannot have result callbacks")
		}
	}
	reached := queueCommit(last)
	if err := ptx.SendBatch(ctx, last).Close(); err != nil {
		return commitFailure(err, *reached)
	}
	return nil
}

// queueCommit queues COMMIT on b; the flag it returns is set when the server
// ran COMMIT, that is when every statement queued before it succeeded.
func queueCommit(b *pgx.Batch) *bool {
	reached := new(bool)
	commit := b.Queue("commit")
	commit.Fn = func(br pgx.BatchResults) error {
		*reached = true
		tag, err := br.Exec()
		if err == nil && tag.String() == "ROLLBACK" {
			err = pgx.ErrTxCommitRollback
		}
		return err
	}
	return reached
}

// commitFailure maps the error of a batch that ended with COMMIT. A statement
// refused by the server before COMMIT means the server skipped COMMIT, and an
// error pgconn marks safe to retry means nothing was sent: known failures.
// Otherwise COMMIT may or may not have reached the server: ErrOutcomeUnknown.
func commitFailure(err error, reached bool) error {
	m := mapErr(err)
	var pgErr *pgconn.PgError
	known := pgconn.SafeToRetry(err) || (!reached && errors.As(err, &pgErr))
	if !known && (errors.Is(m, ErrTimeout) || errors.Is(m, ErrUnavailable)) {
		return fmt.Errorf("%w: %w", ErrOutcomeUnknown, m)
	}
	return m
}

// fencedTx is the transaction a fenced function sees. FencedBatch alone ends
// it: Commit and Rollback are refused, and once the function returned every
// method fails with pgx.ErrTxClosed, because the connection may already serve
// another transaction.
type fencedTx struct{ pgx.Tx }

var errFencedEnd = errors.New("store: a fenced transaction commits or rolls back when its function returns")

// Commit refuses: FencedBatch commits.
func (t *fencedTx) Commit(context.Context) error { return errFencedEnd }

// Rollback refuses: return an error from the function instead.
func (t *fencedTx) Rollback(context.Context) error { return errFencedEnd }

// closedTx is a pgx transaction that is already closed: every method fails with
// pgx.ErrTxClosed.
var closedTx = func() pgx.Tx {
	b := &pgx.Batch{}
	b.BeginTx(pgx.TxOptions{})
	return pgx.FailedBatchResults(b, pgx.ErrTxClosed).Tx()
}()

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
