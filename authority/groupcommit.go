package authority

// Group commit of fenced writes: concurrent fenced mutations on the leader are
// queued and run together in one fenced PostgreSQL transaction
// (store.DB.FencedGroup: one fence check, one epoch declaration, one COMMIT,
// each mutation in its own savepoint). A mutation that arrives alone runs in
// its own transaction as before (store.DB.FencedBatch), on the caller's
// goroutine.
//
// A fenced function must not itself call Fenced: with every group slot busy
// running it, the inner call would wait for ever.

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5"

	"github.com/rap-fabric/core/store"
)

// GroupCommitOptions tunes the group commit of fenced writes. The zero value
// is usable.
type GroupCommitOptions struct {
	// MaxJobs caps the mutations of one group transaction; 0 means 16, 1 turns
	// group commit off (every mutation its own transaction). Savepoints past 64
	// in one transaction overflow PostgreSQL's per-backend subtransaction cache,
	// so keep it at or below 64.
	MaxJobs int
	// MaxGroups caps the group transactions in flight at once; 0 means 4.
	// Waiting mutations are shared among the groups. A group runs its
	// mutations one after the other on one connection, so one big group is
	// bound by round-trip latency (measured: 32 writers in one group reach a
	// third of the ungrouped rate on a loaded 2-core machine); several groups
	// keep the database's cores busy. Mutations of different groups can wait
	// for each other's row locks as separate transactions always could; a
	// deadlock between two groups fails one mutation (timeout), not the group.
	MaxGroups int
	// Savepoints runs every group with a savepoint per mutation from the
	// start. By default a group first runs without savepoints (one round trip
	// per mutation fewer) and runs again with them only when one of its
	// mutations failed after its statements ran (store.DB.SetGroupSavepoints).
	Savepoints bool
}

// Validate checks the options' ranges.
func (o GroupCommitOptions) Validate() error {
	if o.MaxJobs < 0 || o.MaxJobs > 1000 {
		return &ConfigError{Field: "GroupCommit.MaxJobs", Reason: "must be between 0 and 1000"}
	}
	if o.MaxGroups < 0 || o.MaxGroups > 64 {
		return &ConfigError{Field: "GroupCommit.MaxGroups", Reason: "must be between 0 and 64"}
	}
	return nil
}

// SetGroupCommit changes the group commit options at run time (mutations
// already queued keep their place); benchmarks use it to measure grouped and
// ungrouped fenced writes side by side in one run.
func (a *Authority) SetGroupCommit(o GroupCommitOptions) error {
	if err := o.Validate(); err != nil {
		return err
	}
	n := newGroupCommitter(a.db, o)
	if a.db != nil {
		a.db.SetGroupSavepoints(o.Savepoints)
	}
	a.groups.mu.Lock()
	a.groups.maxJobs, a.groups.maxGroups = n.maxJobs, n.maxGroups
	a.groups.mu.Unlock()
	return nil
}

// errFencedPanic is the error a panicking fenced function leaves in its group.
var errFencedPanic = errors.New("authority: the fenced function panicked")

// groupCommitter queues fenced mutations and runs them in groups.
type groupCommitter struct {
	db        *store.DB
	maxJobs   int
	maxGroups int

	mu      sync.Mutex
	queue   []*groupReq
	running int // groups in flight (goroutines draining the queue)

	// groups and grouped count the group transactions of more than one
	// mutation and the mutations they ran.
	groups, grouped atomic.Uint64
}

// GroupCommitStats returns how many group transactions (of more than one
// fenced mutation) this authority ran and how many mutations they held.
func (a *Authority) GroupCommitStats() (groups, mutations uint64) {
	return a.groups.groups.Load(), a.groups.grouped.Load()
}

// groupReq is one queued fenced mutation.
type groupReq struct {
	ctx   context.Context
	epoch uint64
	job   store.GroupJob
	// state: 0 queued, 1 taken by a group, 2 given up by its caller.
	state atomic.Int32
	done  chan error
}

func newGroupCommitter(db *store.DB, o GroupCommitOptions) *groupCommitter {
	if o.MaxJobs == 0 {
		o.MaxJobs = 16
	}
	if o.MaxGroups == 0 {
		o.MaxGroups = 4
	}
	return &groupCommitter{db: db, maxJobs: o.MaxJobs, maxGroups: o.MaxGroups}
}

// deadlockRetries is how many times a fenced mutation chosen as a deadlock
// victim runs again before its caller sees the error.
const deadlockRetries = 3

// fencedWrite runs one fenced mutation with FencedBatch's contract, grouped
// with the mutations waiting beside it. A mutation PostgreSQL rolled back as
// a deadlock victim (its own transaction, or its savepoint in a group: nothing
// of it was written, its idempotency key included) runs again, up to
// deadlockRetries times: mutations of different groups lock hot rows (a join
// token's use count, a cluster's dirty mark) in different orders, and a
// concurrent enrollment must not fail for it.
func (a *Authority) fencedWrite(ctx context.Context, epoch uint64, first *pgx.Batch, fn func(tx pgx.Tx, last *pgx.Batch) error) error {
	for attempt := 0; ; attempt++ {
		err := a.fencedWriteOnce(ctx, epoch, store.CloneBatch(first), fn)
		if !errors.Is(err, store.ErrDeadlock) || attempt == deadlockRetries || ctx.Err() != nil {
			return err
		}
		a.log.Debug("fenced mutation was a deadlock victim; running it again", "attempt", attempt+1)
	}
}

func (a *Authority) fencedWriteOnce(ctx context.Context, epoch uint64, first *pgx.Batch, fn func(tx pgx.Tx, last *pgx.Batch) error) error {
	g := a.groups
	g.mu.Lock()
	if g.maxJobs <= 1 {
		g.mu.Unlock()
		return a.db.FencedBatch(ctx, epoch, first, fn)
	}
	// fn may run on another goroutine (the group's): a panic there is caught,
	// rolls the mutation back and is raised again here, on the caller's
	// goroutine, as it would be without group commit.
	var panicked any
	guarded := func(tx pgx.Tx, last *pgx.Batch) (err error) {
		defer func() {
			if p := recover(); p != nil {
				panicked = p
				err = errFencedPanic
			}
		}()
		return fn(tx, last)
	}
	defer func() {
		if panicked != nil {
			panic(panicked)
		}
	}()
	r := &groupReq{ctx: ctx, epoch: epoch, job: store.GroupJob{First: first, Fn: guarded}, done: make(chan error, 1)}
	g.queue = append(g.queue, r)
	lead := g.running < g.maxGroups
	if lead {
		g.running++
	}
	g.mu.Unlock()
	if lead {
		// Run one group on this goroutine (usually with this mutation in
		// it), then hand the slot to a goroutine if more wait.
		g.drain(true)
	}
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
	}
	if r.state.CompareAndSwap(0, 2) {
		return store.ErrTimeout // not started: nothing written
	}
	return <-r.done // started: its outcome follows within the fenced timeout
}

// drain runs groups until the queue is empty. With once, it runs one group and
// hands the slot to a new goroutine when more mutations wait.
func (g *groupCommitter) drain(once bool) {
	for {
		batch := g.take()
		if batch == nil {
			return
		}
		g.runGroup(batch)
		if once {
			g.mu.Lock()
			if len(g.queue) == 0 {
				g.running--
				g.mu.Unlock()
				return
			}
			g.mu.Unlock()
			go g.drain(false)
			return
		}
	}
}

// take removes up to maxJobs queued mutations of the first one's epoch, or
// gives the slot back and returns nil when none is left.
func (g *groupCommitter) take() []*groupReq {
	g.mu.Lock()
	defer g.mu.Unlock()
	// Share the queue among the group slots: a group takes its part of what
	// waits, so that several groups run side by side under load.
	limit := (len(g.queue) + g.maxGroups - 1) / g.maxGroups
	if limit > g.maxJobs {
		limit = g.maxJobs
	}
	var batch []*groupReq
	rest := g.queue[:0]
	var epoch uint64
	for _, r := range g.queue {
		if r.state.Load() == 2 {
			continue
		}
		if len(batch) < limit && (len(batch) == 0 || r.epoch == epoch) && r.state.CompareAndSwap(0, 1) {
			epoch = r.epoch
			batch = append(batch, r)
			continue
		}
		rest = append(rest, r)
	}
	for i := len(rest); i < len(g.queue); i++ {
		g.queue[i] = nil
	}
	g.queue = rest
	if len(batch) == 0 {
		g.running--
		return nil
	}
	return batch
}

// runGroup runs batch in one fenced transaction (alone: in its own, under its
// caller's context) and answers every mutation that ran; the others go back to
// the front of the queue.
func (g *groupCommitter) runGroup(batch []*groupReq) {
	if len(batch) == 1 {
		r := batch[0]
		r.done <- g.db.FencedBatch(r.ctx, r.epoch, r.job.First, r.job.Fn)
		return
	}
	jobs := make([]*store.GroupJob, len(batch))
	for i, r := range batch {
		jobs[i] = &r.job
	}
	err := g.db.FencedGroup(context.Background(), batch[0].epoch, jobs)
	var again []*groupReq
	ran := 0
	for _, r := range batch {
		if r.job.Ran {
			ran++
		}
		switch {
		case !r.job.Ran:
			r.job.Err = nil
			r.state.Store(0)
			again = append(again, r)
		case r.job.Err != nil:
			r.done <- r.job.Err
		default:
			r.done <- err
		}
	}
	g.groups.Add(1)
	g.grouped.Add(uint64(ran))
	if len(again) > 0 {
		g.mu.Lock()
		g.queue = append(again, g.queue...)
		g.mu.Unlock()
	}
}
