package store

// The optimistic pass of a fenced group: the jobs run one after the other in
// one transaction without savepoints, and the statements each job queued to
// run with COMMIT are sent together with COMMIT. That costs one round trip per
// job (its own statements) where the savepoint pass costs two (SAVEPOINT and
// the previous job's end, then its statements), and no subtransaction.
//
// A job that fails after its statements ran cannot be undone alone without a
// savepoint: the pass then rolls the whole transaction back (nothing of the
// group is written) and FencedGroup runs the group again with savepoints,
// where the failed job fails alone and the others commit. Fenced functions
// already run again after a deadlock, so running one again is part of their
// contract. A job that fails before it sent a statement (a refused request)
// fails alone in this pass too.

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// savepointGroupsAfterFallback is how many groups use savepoints from the
// start after a group fell back to them: where mutations keep failing (a
// burst of conflicting requests), running each group twice would cost more
// than the savepoints.
const savepointGroupsAfterFallback = 16

// groupStats counts the fenced groups by the way they ran.
type groupStats struct {
	optimistic    atomic.Uint64 // committed (or failed as a group) in the optimistic pass
	fallbacks     atomic.Uint64 // rolled back by the optimistic pass and run with savepoints
	savepointRuns atomic.Uint64 // run with savepoints from the start
	savepointLeft atomic.Int32  // groups still to run with savepoints from the start
	savepointsOn  atomic.Bool   // SetGroupSavepoints
}

// SetGroupSavepoints makes every later group of fenced mutations
// (FencedGroup) run with a savepoint per mutation from the start (on), or
// first without savepoints, one round trip per mutation fewer, and again with
// them only when a mutation fails after its statements ran (off, the
// default). Benchmarks and tests compare the two.
func (db *DB) SetGroupSavepoints(on bool) { db.groups.savepointsOn.Store(on) }

// GroupStats counts this handle's FencedGroup calls (of more than one job) by
// the way they ran.
type GroupStats struct {
	// Optimistic groups ran without savepoints.
	Optimistic uint64
	// Fallbacks were rolled back by the optimistic pass (a job failed after
	// its statements ran) and ran again with a savepoint per job.
	Fallbacks uint64
	// Savepoints ran with a savepoint per job from the start (after a
	// fallback, or with SetGroupSavepoints).
	Savepoints uint64
}

// GroupStats returns how this handle's fenced groups ran.
func (db *DB) GroupStats() GroupStats {
	return GroupStats{
		Optimistic: db.groups.optimistic.Load(),
		Fallbacks:  db.groups.fallbacks.Load(),
		Savepoints: db.groups.savepointRuns.Load(),
	}
}

// groupSavepointsOnly reports whether the next group skips the optimistic
// pass.
func (db *DB) groupSavepointsOnly() bool {
	if db.groups.savepointsOn.Load() {
		return true
	}
	for {
		n := db.groups.savepointLeft.Load()
		if n <= 0 {
			return false
		}
		if db.groups.savepointLeft.CompareAndSwap(n, n-1) {
			return true
		}
	}
}

// CloneBatch copies b's queued statements into a new batch: pgx keeps a sent
// statement's description (prepared on the connection that sent it) in the
// queued query, so a batch that runs again is sent as a fresh copy.
func CloneBatch(b *pgx.Batch) *pgx.Batch {
	if b == nil {
		return nil
	}
	c := &pgx.Batch{QueuedQueries: make([]*pgx.QueuedQuery, len(b.QueuedQueries))}
	for i, q := range b.QueuedQueries {
		c.QueuedQueries[i] = &pgx.QueuedQuery{SQL: q.SQL, Arguments: q.Arguments, Fn: q.Fn}
	}
	return c
}

// groupOptimistic runs jobs on conn in one transaction without savepoints. It
// returns done=false when the group must run again with savepoints; nothing
// of it was written then (the transaction rolled back, or its connection
// closed before COMMIT was sent), and the jobs' Ran, Err and First are to be
// reset by the caller. With done=true the jobs' Ran and Err and the returned
// error have FencedGroup's meaning.
func (db *DB) groupOptimistic(ctx context.Context, conn *pgx.Conn, epoch uint64, jobs []*GroupJob, start time.Time, budget time.Duration) (done bool, err error) {
	g := &group{ctx: ctx, conn: conn, epoch: epoch, opts: db.opts}
	defer g.rollbackOpen()
	// tails holds the statements of the jobs that succeeded so far, queued to
	// run with COMMIT (or before the next job's First).
	tails := &pgx.Batch{}
	for i, j := range jobs {
		if i > 0 && budget > 0 && time.Since(start) > budget {
			break
		}
		j.Ran = true
		if j.First != nil || g.tx == nil {
			// The job's First (and the transaction's beginning) in one round
			// trip, after the earlier jobs' last statements: a job that
			// inserts an idempotency key another job of the group inserted
			// reads that job's stored response, as in the savepoint pass.
			b := &pgx.Batch{QueuedQueries: append(tails.QueuedQueries, batchQueries(j.First)...)}
			tails = &pgx.Batch{}
			err, gerr := g.send(b)
			if gerr != nil {
				markRan(jobs)
				return true, gerr
			}
			if err != nil {
				var pe pgx.ErrPreprocessingBatch
				preprocess := errors.As(err, &pe)
				switch {
				case conn.PgConn().IsClosed() && (preprocess || isStatementErr(err)):
					return false, nil // COMMIT was not sent: nothing committed
				case g.tx == nil && preprocess && batchHas(j.First, pe.SQL()):
					// The transaction has not begun (nothing ran): the job
					// fails alone.
					j.Err = mapErr(err)
					continue
				case preprocess || isStatementErr(err):
					return false, nil
				}
				markRan(jobs)
				return true, mapErr(err)
			}
		}
		used := j.First != nil // its First ran: a failure has something to undo
		last, err := g.runFn(j, &used)
		if err != nil {
			if conn.PgConn().IsClosed() {
				markRan(jobs)
				return true, mapErr(err)
			}
			if used {
				return false, nil
			}
			// Refused before any statement: nothing to undo.
			j.Err = mapErr(err)
			continue
		}
		tails.QueuedQueries = append(tails.QueuedQueries, last.QueuedQueries...)
	}
	if g.tx == nil { // every job failed before the transaction began
		return true, nil
	}
	return g.commitOptimistic(tails)
}

// commitOptimistic sends the jobs' last statements and COMMIT in one round
// trip. A failed last statement (the server then skips COMMIT) sends the
// group to the savepoint pass; a failed COMMIT is the group's outcome, as in
// the savepoint pass.
func (g *group) commitOptimistic(tails *pgx.Batch) (bool, error) {
	reached := queueCommit(tails)
	err := g.tx.SendBatch(g.ctx, tails).Close()
	if err == nil {
		return true, nil
	}
	var pe pgx.ErrPreprocessingBatch
	if !*reached && (errors.As(err, &pe) || isStatementErr(err)) {
		return false, nil // COMMIT was not run: nothing committed
	}
	return true, commitFailure(err, *reached)
}

func batchQueries(b *pgx.Batch) []*pgx.QueuedQuery {
	if b == nil {
		return nil
	}
	return b.QueuedQueries
}
