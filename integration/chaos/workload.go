package chaos

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The fenced operation of every drill is cluster creation, POST /v1/clusters
// with an Idempotency-Key: it commits a CA through the Raft log and then writes
// the cluster row and its audit event in one fenced PostgreSQL transaction.

// OpTimeout bounds one operation (including a failover to another server).
const OpTimeout = 6 * time.Second

// Workload issues fenced operations at a steady rate from the client host.
type Workload struct {
	env  *Env
	rate int

	stop    chan struct{}
	loop    sync.WaitGroup
	ops     sync.WaitGroup
	n       atomic.Int64
	started time.Time
	stopped time.Time
}

// maxInFlight bounds concurrent operations; ticks beyond it are skipped (and
// show up as a lower attempted count, not as errors).
const maxInFlight = 24

// StartWorkload starts issuing rate operations per second.
func (e *Env) StartWorkload(rate int) *Workload {
	w := &Workload{env: e, rate: rate, stop: make(chan struct{}), started: time.Now()}
	w.loop.Add(1)
	go w.run()
	e.Event("workload: %d cluster creations/s", rate)
	return w
}

func (w *Workload) run() {
	defer w.loop.Done()
	t := time.NewTicker(time.Second / time.Duration(w.rate))
	defer t.Stop()
	sem := make(chan struct{}, maxInFlight)
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
		}
		select {
		case sem <- struct{}{}:
		default:
			continue
		}
		n := w.n.Add(1)
		w.ops.Add(1)
		go func() {
			defer w.ops.Done()
			defer func() { <-sem }()
			key := fmt.Sprintf("%s-%05d", strings.ToLower(w.env.Opts.Name), n)
			w.env.CreateCluster(key, "c-"+key, false)
		}()
	}
}

// Stop stops issuing and waits for operations in flight.
func (w *Workload) Stop() {
	select {
	case <-w.stop:
		return
	default:
	}
	close(w.stop)
	w.loop.Wait()
	w.ops.Wait()
	w.stopped = time.Now()
	w.env.Event("workload stopped after %d operations", w.n.Load())
}

// Window is when the workload ran.
func (w *Workload) Window() (time.Time, time.Time) { return w.started, w.stopped }

// CreateCluster runs one recorded cluster creation.
func (e *Env) CreateCluster(key, slug string, retry bool) *Op {
	op := e.Hist.Invoke("cluster.create", key, slug, e.Mon.LeaderEpoch(), retry)
	ctx, cancel := context.WithTimeout(context.Background(), OpTimeout)
	defer cancel()
	info, err := e.API.Do(ctx, http.MethodPost, "/v1/clusters", map[string]any{"name": "Chaos " + slug, "slug": slug}, nil,
		map[string]string{"Idempotency-Key": key})
	e.Hist.Finish(op, info, err)
	return op
}

// ResolveUnknown retries every first-attempt operation with an unknown
// outcome once, with the same Idempotency-Key (after the faults healed): the
// answer (ok, or conflict because the first attempt created the row) says
// whether it took effect, and a retry must never apply twice.
func (e *Env) ResolveUnknown() {
	for _, op := range e.Hist.Ops() {
		if op.Outcome == Unknown && !op.Retry {
			e.CreateCluster(op.Key, op.Slug, true)
		}
	}
}
