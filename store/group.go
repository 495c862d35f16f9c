package store

// Group commit of fenced writes: several fenced mutations share one fenced
// transaction (one BEGIN, one epoch declaration and fence check, one COMMIT),
// each inside its own savepoint so that a failed mutation rolls back alone.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// GroupJob is one fenced mutation of a FencedGroup. First and Fn have the
// meaning they have in FencedBatch, but apply to the job's savepoint: the
// statements in First run first (their result callbacks before Fn), then Fn,
// then the statements Fn queued in its last batch; the job is kept when all of
// them succeeded and rolled back to its savepoint otherwise.
type GroupJob struct {
	// First may be nil.
	First *pgx.Batch
	// Fn runs the job's own statements on tx; tx is only valid while Fn runs
	// and ignores the context its methods get (the group's context is used,
	// so one caller giving up cannot break the connection of the others).
	Fn func(tx pgx.Tx, last *pgx.Batch) error

	// Err is set by FencedGroup: the job's own failure (it was rolled back to
	// its savepoint, nothing of it is written). A job whose Err is nil shares
	// the group's outcome, which FencedGroup returns.
	Err error
	// Ran is set by FencedGroup when the job ran (its Err or the group's
	// outcome is final). A job that did not run was not started because the
	// group's time budget was spent; the caller submits it again.
	Ran bool
}

// savepoint statements of a group job.
const (
	sqlSavepoint        = `SAVEPOINT rap_group_job`
	sqlReleaseSavepoint = `RELEASE SAVEPOINT rap_group_job`
	sqlRollbackJob      = `ROLLBACK TO SAVEPOINT rap_group_job`
)

// FencedGroup runs jobs, in order, in one transaction that declares epoch as
// its authority epoch, with the guarantees of FencedBatch for each of them: the
// fence is checked when the transaction begins and on every fenced row, the
// fence lock is held until COMMIT. Each job runs inside a savepoint; a job that
// fails (its statements, Fn or its last statements) is rolled back to it, gets
// its error in Err and leaves the others untouched.
//
// The returned error is the group's outcome for every job that ran with a nil
// Err: nil when COMMIT succeeded; the mapped error when the transaction could
// not begin (ErrStaleEpoch included) or broke, in which case nothing
// committed; ErrOutcomeUnknown when COMMIT may or may not have reached the
// server.
//
// Round trips: the first job's First shares the round trip of BEGIN and the
// epoch declaration, every later job's First shares the round trip that ends
// the previous job (its last statements and RELEASE), and COMMIT follows the
// last job's last statements; a failed job costs one more round trip.
//
// The group stops starting jobs once it has run for half the fenced timeout;
// jobs not started keep Ran false.
func (db *DB) FencedGroup(ctx context.Context, epoch uint64, jobs []*GroupJob) error {
	if len(jobs) == 0 {
		return nil
	}
	if epoch == 0 {
		err := fmt.Errorf("%w: epoch 0 is never current", ErrStaleEpoch)
		for _, j := range jobs {
			j.Ran = true
		}
		return err
	}
	budget := time.Duration(0)
	if d := db.opts.FencedTimeout; d > 0 { // zero for a DB built without Open
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
		budget = d / 2
	}
	start := time.Now()
	c, err := db.Pool.Acquire(ctx)
	if err != nil {
		markRan(jobs)
		return mapErr(err)
	}
	defer func() { c.Release() }()
	// As in FencedBatch: a server this handle has not written to under epoch
	// (a promoted standby) gets the fence re-affirmed first (primary.go).
	if err := db.reaffirm(ctx, c.Conn(), epoch); err != nil {
		markRan(jobs)
		return err
	}
	if db.groupSavepointsOnly() {
		db.groups.savepointRuns.Add(1)
		return db.groupWithSavepoints(ctx, c.Conn(), epoch, jobs, start, budget)
	}
	done, err := db.groupOptimistic(ctx, c.Conn(), epoch, jobs, start, budget)
	if done {
		db.groups.optimistic.Add(1)
		return err
	}
	// A job failed after its statements ran: nothing of the group was
	// written (the transaction rolled back, or its connection closed). The
	// group runs again with a savepoint per job, so that the failed job
	// fails alone; the next groups use savepoints too for a while.
	db.groups.fallbacks.Add(1)
	db.groups.savepointLeft.Store(savepointGroupsAfterFallback)
	for _, j := range jobs {
		j.Ran, j.Err = false, nil
		j.First = CloneBatch(j.First)
	}
	if c.Conn().PgConn().IsClosed() {
		c.Release()
		if c, err = db.Pool.Acquire(ctx); err != nil {
			markRan(jobs)
			return mapErr(err)
		}
		if err := db.reaffirm(ctx, c.Conn(), epoch); err != nil {
			markRan(jobs)
			return err
		}
	}
	return db.groupWithSavepoints(ctx, c.Conn(), epoch, jobs, start, budget)
}

// groupWithSavepoints runs jobs on conn in one transaction, each in its own
// savepoint (FencedGroup's contract).
func (db *DB) groupWithSavepoints(ctx context.Context, conn *pgx.Conn, epoch uint64, jobs []*GroupJob, start time.Time, budget time.Duration) error {
	g := &group{ctx: ctx, conn: conn, epoch: epoch, opts: db.opts}
	defer g.rollbackOpen()
	for i, j := range jobs {
		if i > 0 && budget > 0 && time.Since(start) > budget {
			break
		}
		j.Ran = true
		if err := g.run(j); err != nil {
			// The connection or the transaction broke outside a job's own
			// statements: nothing of the group commits, and the jobs not
			// started share that outcome.
			markRan(jobs)
			return err
		}
	}
	if g.tx == nil { // every job failed before the transaction began
		return nil
	}
	return g.commit()
}

// rollbackOpen rolls back whatever did not commit; the pool destroys a
// connection left in any other state.
func (g *group) rollbackOpen() {
	if pc := g.conn.PgConn(); g.tx != nil && !pc.IsClosed() && pc.TxStatus() != 'I' {
		_ = g.tx.Rollback(context.WithoutCancel(g.ctx))
	}
}

func markRan(jobs []*GroupJob) {
	for _, j := range jobs {
		j.Ran = true
	}
}

// group is the state of a FencedGroup between jobs: the transaction (nil
// until the first round trip began it) and the statements that end the
// previous job (its last batch and RELEASE), sent with the next job's First
// or with COMMIT.
type group struct {
	ctx     context.Context
	conn    *pgx.Conn
	epoch   uint64
	opts    Options
	tx      pgx.Tx
	pending *GroupJob  // the job whose end is in tail, or nil
	tail    *pgx.Batch // pending's last statements
}

// send sends b on the group's transaction; the first call begins it, with the
// epoch declaration in the same round trip. A failure to begin (stale epoch
// included) is returned as a non-statement error: the group fails.
func (g *group) send(b *pgx.Batch) (err error, groupErr error) {
	if g.tx != nil {
		return g.tx.SendBatch(g.ctx, b).Close(), nil
	}
	full := &pgx.Batch{}
	full.BeginTx(pgx.TxOptions{})
	began := false
	full.Queue(`SELECT rap_begin_fenced($1, $2, $3)`, int64(g.epoch),
		g.opts.LockTimeout.Milliseconds(), g.opts.StatementTimeout.Milliseconds()).
		Exec(func(pgconn.CommandTag) error { began = true; return nil })
	full.QueuedQueries = append(full.QueuedQueries, b.QueuedQueries...)
	br := g.conn.SendBatch(g.ctx, full)
	tx := br.Tx()
	err = br.Close()
	var pe pgx.ErrPreprocessingBatch
	if errors.As(err, &pe) && batchHas(b, pe.SQL()) {
		// Nothing ran: the transaction did not begin.
		return err, nil
	}
	if !began {
		if err == nil {
			err = errors.New("store: the fenced group did not begin")
		}
		return nil, mapErr(err)
	}
	g.tx = tx
	return err, nil
}

// endPending queues the end of the pending job: its last statements, then
// RELEASE, whose callback runs only when every one of them succeeded.
func (g *group) endPending(b *pgx.Batch, done *bool) {
	if g.pending == nil {
		*done = true
		return
	}
	b.QueuedQueries = append(b.QueuedQueries, g.tail.QueuedQueries...)
	b.Queue(sqlReleaseSavepoint).Exec(func(pgconn.CommandTag) error { *done = true; return nil })
}

// failPending records err as the pending job's outcome and rolls it back to
// its savepoint.
func (g *group) failPending(err error) error {
	g.pending.Err = mapErr(err)
	g.pending, g.tail = nil, nil
	return g.rollbackJob()
}

// rollbackJob rolls the current job back to its savepoint and drops the
// savepoint. It uses the simple protocol: an aborted transaction refuses to
// prepare statements.
func (g *group) rollbackJob() error {
	_, err := g.conn.PgConn().Exec(g.ctx, sqlRollbackJob+"; "+sqlReleaseSavepoint).ReadAll()
	return mapErr(err)
}

// preprocessFailure handles a batch that pgx refused before executing it (a
// statement that does not build or does not prepare); the batch ends the
// pending job (tail) and starts the job j (first; nil at COMMIT). It reports
// whether j failed. A statement that does not prepare aborts the
// transaction: the pending job rolls back too, and with no pending job to
// roll back to, the whole group fails.
func (g *group) preprocessFailure(pe pgx.ErrPreprocessingBatch, err error, first *pgx.Batch, j *GroupJob) (jFailed bool, groupErr error) {
	inTail := g.pending != nil && batchHas(g.tail, pe.SQL())
	inFirst := first != nil && batchHas(first, pe.SQL())
	built := strings.Contains(pe.Error(), "(build)")
	switch {
	case !inTail && !inFirst:
		return false, mapErr(err)
	case built && !inTail, g.tx == nil:
		// Nothing was sent, or the transaction has not begun: nothing
		// to roll back, and the pending job still ends with the next batch.
		j.Err = mapErr(err)
		return true, nil
	case g.pending == nil:
		return false, mapErr(err)
	}
	if inTail {
		g.pending.Err = mapErr(err)
	} else {
		g.pending.Err = fmt.Errorf("%w: rolled back with a group job whose statement did not prepare; retry", ErrUnavailable)
	}
	g.pending, g.tail = nil, nil
	if rerr := g.rollbackJob(); rerr != nil {
		return false, rerr
	}
	if inFirst {
		j.Err = mapErr(err)
		return true, nil
	}
	return false, nil
}

func batchHas(b *pgx.Batch, sql string) bool {
	if b == nil {
		return false
	}
	for _, q := range b.QueuedQueries {
		if q.SQL == sql {
			return true
		}
	}
	return false
}

// run runs job j: it ends the pending job and opens j's savepoint with j's
// First in one round trip, then runs j.Fn. It returns an error only when the
// group as a whole broke.
func (g *group) run(j *GroupJob) error {
	for {
		b := &pgx.Batch{}
		prevDone, opened := false, false
		g.endPending(b, &prevDone)
		b.Queue(sqlSavepoint).Exec(func(pgconn.CommandTag) error { opened = true; return nil })
		if j.First != nil {
			b.QueuedQueries = append(b.QueuedQueries, j.First.QueuedQueries...)
		}
		err, gerr := g.send(b)
		if gerr != nil {
			return gerr
		}
		if err == nil {
			g.pending, g.tail = nil, nil
			break
		}
		var pe pgx.ErrPreprocessingBatch
		if errors.As(err, &pe) {
			jFailed, gerr := g.preprocessFailure(pe, err, j.First, j)
			if gerr != nil {
				return gerr
			}
			if jFailed {
				return nil
			}
			continue
		}
		if !isStatementErr(err) {
			return mapErr(err)
		}
		if !prevDone {
			// The previous job's end failed; everything after it was skipped.
			if err := g.failPending(err); err != nil {
				return err
			}
			continue // send j's savepoint and First again
		}
		g.pending, g.tail = nil, nil
		if !opened {
			return mapErr(err)
		}
		j.Err = mapErr(err)
		return g.rollbackJob()
	}

	last, err := g.runFn(j, nil)
	if err != nil {
		j.Err = mapErr(err)
		if g.conn.PgConn().IsClosed() {
			return j.Err
		}
		return g.rollbackJob()
	}
	g.pending, g.tail = j, last
	return nil
}

// runFn runs j.Fn on the group's transaction and returns the statements it
// queued to run after it; used (when not nil) is set when Fn sent a statement.
func (g *group) runFn(j *GroupJob, used *bool) (*pgx.Batch, error) {
	tx := &groupTx{fencedTx: fencedTx{Tx: g.tx}, ctx: g.ctx, used: used}
	last := &pgx.Batch{}
	err := j.Fn(tx, last)
	tx.Tx = closedTx
	if err != nil {
		return nil, err
	}
	for _, q := range last.QueuedQueries {
		if q.Fn != nil {
			return nil, errors.New("store: statements queued to run with COMMIT cannot have result callbacks")
		}
	}
	return last, nil
}

// commit ends the pending job and commits, in one round trip when the pending
// job's end succeeds.
func (g *group) commit() error {
	for {
		b := &pgx.Batch{}
		prevDone := false
		g.endPending(b, &prevDone)
		reached := queueCommit(b)
		err := g.tx.SendBatch(g.ctx, b).Close()
		if err == nil {
			return nil
		}
		var pe pgx.ErrPreprocessingBatch
		if errors.As(err, &pe) {
			if _, gerr := g.preprocessFailure(pe, err, nil, nil); gerr != nil {
				return gerr
			}
			continue
		}
		if !prevDone && isStatementErr(err) {
			if err := g.failPending(err); err != nil {
				return err
			}
			continue
		}
		return commitFailure(err, *reached)
	}
}

// isStatementErr reports whether err is a statement the server refused (the
// transaction is aborted but the connection and the savepoints still work).
// A timeout (statement_timeout, lock_timeout) is one too; a network failure or
// a cancelled context is not.
func isStatementErr(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	// Class 08 (connection exception) and 57P0x (shutdown) end the session.
	return !strings.HasPrefix(pgErr.Code, "08") && !strings.HasPrefix(pgErr.Code, "57P0")
}

// groupTx is the transaction a group job sees: a fencedTx whose statements run
// under the group's context, whatever context the job passes. When used is
// set, every method that may send a statement marks it (the optimistic pass
// then knows whether a failed job left anything to undo).
type groupTx struct {
	fencedTx
	ctx  context.Context
	used *bool
}

func (t *groupTx) mark() {
	if t.used != nil {
		*t.used = true
	}
}

// Exec runs sql under the group's context.
func (t *groupTx) Exec(_ context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	t.mark()
	return t.Tx.Exec(t.ctx, sql, args...)
}

// Query runs sql under the group's context.
func (t *groupTx) Query(_ context.Context, sql string, args ...any) (pgx.Rows, error) {
	t.mark()
	return t.Tx.Query(t.ctx, sql, args...)
}

// QueryRow runs sql under the group's context.
func (t *groupTx) QueryRow(_ context.Context, sql string, args ...any) pgx.Row {
	t.mark()
	return t.Tx.QueryRow(t.ctx, sql, args...)
}

// SendBatch sends b under the group's context.
func (t *groupTx) SendBatch(_ context.Context, b *pgx.Batch) pgx.BatchResults {
	t.mark()
	return t.Tx.SendBatch(t.ctx, b)
}

// CopyFrom copies under the group's context.
func (t *groupTx) CopyFrom(_ context.Context, table pgx.Identifier, cols []string, src pgx.CopyFromSource) (int64, error) {
	t.mark()
	return t.Tx.CopyFrom(t.ctx, table, cols, src)
}

// Begin opens a nested savepoint under the group's context.
func (t *groupTx) Begin(_ context.Context) (pgx.Tx, error) {
	t.mark()
	return t.Tx.Begin(t.ctx)
}

// Prepare prepares under the group's context.
func (t *groupTx) Prepare(_ context.Context, name, sql string) (*pgconn.StatementDescription, error) {
	t.mark()
	return t.Tx.Prepare(t.ctx, name, sql)
}

// LargeObjects gives the transaction's large objects.
func (t *groupTx) LargeObjects() pgx.LargeObjects {
	t.mark()
	return t.Tx.LargeObjects()
}

// Conn gives the transaction's connection; what runs on it counts as sent.
func (t *groupTx) Conn() *pgx.Conn {
	t.mark()
	return t.Tx.Conn()
}
