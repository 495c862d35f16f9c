package workload

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/rap-fabric/core/workloadspec"
)

// runner supervises one instance; its goroutine (run) owns the workload,
// status is shared under mu.
type runner struct {
	s       *Supervisor
	cluster string
	a       Assignment
	spec    *workloadspec.Spec
	drv     Driver
	inst    *Instance
	// block is why the instance must not run ("" when it may); fail why it
	// cannot (bad spec, no driver); idleReason why it has nothing to run (no
	// workload spec: the service is assigned but not yet packaged).
	block, fail, idleReason string
	// ident changes whenever the instance must be replaced.
	ident string
	prev  *runner

	stop       chan struct{}
	stopOnce   sync.Once
	detach     chan struct{}
	detachOnce sync.Once
	done       chan struct{}

	mu         sync.Mutex
	st         Status
	stopReason string
}

func newRunner(s *Supervisor, cluster string, a Assignment, grants []Grant) *runner {
	r := &runner{s: s, cluster: cluster, a: a, stop: make(chan struct{}), detach: make(chan struct{}), done: make(chan struct{})}
	r.inst = &Instance{Key: cluster + "/" + a.ServiceID, Name: dirName(a.ServiceID), Cluster: cluster, Assignment: a,
		Dir: InstanceDir(s.o.Root, cluster, a.ServiceID)}
	r.st = Status{ServiceID: a.ServiceID, Type: a.Type, Instance: a.Instance, State: StatePending, Health: HealthUnknown, Since: s.o.Now().UTC()}
	spec, err := workloadspec.FromConfig(a.Config)
	switch {
	case err != nil:
		r.fail = "invalid workload spec: " + err.Error()
	case spec == nil:
		r.idleReason = "the assignment has no workload spec; nothing to run"
	default:
		r.spec, r.inst.Spec = spec, spec
		r.st.Driver, r.st.Version = spec.Driver, spec.Version()
		if r.drv = s.o.Drivers[spec.Driver]; r.drv == nil {
			r.fail = "this agent has no " + spec.Driver + " driver"
		}
	}
	r.block = Authorize(a, grants)
	if r.block == "" && spec != nil && spec.Driver != workloadspec.DriverNative && workloadspec.NativeOnly(a.Type) {
		r.block = a.Type + " runs natively on the host, never in a container"
	}
	h := "-"
	if spec != nil {
		h = spec.Hash()
	}
	r.ident = h + "|" + r.block + "|" + r.fail + "|" + r.idleReason + "|" + a.Type + "|" + string(a.Role) + "|" + a.OrganizationID
	return r
}

func (r *runner) requestStop(reason string) {
	r.mu.Lock()
	if r.stopReason == "" {
		r.stopReason = reason
	}
	r.mu.Unlock()
	r.stopOnce.Do(func() { close(r.stop) })
}

func (r *runner) stopping() bool {
	select {
	case <-r.stop:
		return true
	default:
		return false
	}
}

func (r *runner) status() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.st
	if st.LastExit != nil {
		e := *st.LastExit
		st.LastExit = &e
	}
	return st
}

// set moves the instance to state (Since only changes with the state).
func (r *runner) set(state State, reason string, edit func(*Status)) {
	r.mu.Lock()
	changed := r.st.State != state || r.st.Reason != reason
	if r.st.State != state {
		r.st.Since = r.s.o.Now().UTC()
	}
	r.st.State, r.st.Reason = state, reason
	switch state {
	case StateHealthy:
		r.st.Health = HealthHealthy
	case StateUnhealthy:
		r.st.Health = HealthUnhealthy
	case StateRunning:
	default:
		r.st.Health = HealthUnknown
	}
	if edit != nil {
		edit(&r.st)
	}
	r.mu.Unlock()
	if changed {
		r.s.o.Logger.Info("workload state", "service", r.inst.Key, "type", r.a.Type, "state", state, "reason", reason)
		if r.s.o.OnChange != nil {
			r.s.o.OnChange(r.cluster)
		}
	}
}

// wait waits d; false when asked to stop or detach meanwhile.
func (r *runner) wait(d time.Duration) bool {
	select {
	case <-r.s.o.After(d):
		return true
	case <-r.stop:
		return false
	case <-r.detach:
		return false
	}
}

func (r *runner) stopped() {
	r.mu.Lock()
	reason := r.stopReason
	r.mu.Unlock()
	r.set(StateStopped, reason, func(st *Status) { st.PID, st.ContainerID = 0, "" })
}

// idle holds a blocked or failed instance until it is stopped or detached.
func (r *runner) idle() {
	select {
	case <-r.stop:
		r.stopped()
	case <-r.detach:
	}
}

func (r *runner) run() {
	defer close(r.done)
	if r.prev != nil {
		<-r.prev.done
	}
	if r.block != "" {
		r.set(StateBlocked, r.block, nil)
		r.idle()
		return
	}
	if r.fail != "" {
		r.set(StateFailed, r.fail, nil)
		r.idle()
		return
	}
	if r.idleReason != "" {
		r.set(StatePending, r.idleReason, nil)
		r.idle()
		return
	}
	if err := os.MkdirAll(r.inst.Dir, 0o711); err != nil {
		r.set(StateFailed, "instance directory: "+err.Error(), nil)
		r.idle()
		return
	}
	writeMeta(r.inst)
	b := BackoffFor(r.spec)
	tr := &tracker{b: b}
	stopTimeout := r.spec.StopTimeout.D(workloadspec.DefaultStopTimeout)

	var h Handle
	var started time.Time
	restarts := 0
	rec, hasRec := readRecord(r.inst.Dir)
	if hasRec {
		restarts = rec.Restarts
		if ah, ok := r.drv.Adopt(r.inst, rec); ok {
			if rec.SpecHash == r.spec.Hash() && rec.Driver == r.spec.Driver {
				h, started = ah, rec.Started
				r.inst.User = rec.User
				r.set(StateRunning, "", func(st *Status) {
					st.Adopted, st.Restarts, st.User = true, restarts, rec.User
					if rec.Version != "" {
						st.Version = rec.Version
					}
				})
			} else {
				ah.Stop(stopTimeout)
				removeRecord(r.inst.Dir)
			}
		} else {
			removeRecord(r.inst.Dir)
		}
	}
	for {
		if h == nil {
			r.set(StateStarting, "", nil)
			version, err := r.drv.Prepare(r.inst)
			var be *BlockedError
			if errors.As(err, &be) {
				r.set(StateBlocked, be.Reason, nil)
				r.idle()
				return
			}
			if err == nil {
				started = r.s.o.Now()
				h, err = r.drv.Start(r.inst)
			}
			if err != nil {
				delay, _ := tr.exited(0, r.s.o.Rand())
				r.set(StateFailed, "cannot start: "+err.Error(), nil)
				if !r.wait(delay) {
					if r.stopping() {
						r.stopped()
					}
					return
				}
				continue
			}
			rec := h.Record()
			rec.Driver, rec.SpecHash, rec.Started, rec.User, rec.Version, rec.Restarts = r.spec.Driver, r.spec.Hash(), started, r.inst.User, version, restarts
			if err := writeRecord(r.inst.Dir, rec); err != nil {
				r.s.o.Logger.Warn("recording the workload failed; a restarted agent will not re-adopt it", "service", r.inst.Key, "error", err)
			}
			r.set(StateRunning, "", func(st *Status) {
				st.Adopted, st.User, st.PID, st.ContainerID = false, r.inst.User, rec.PID, rec.ContainerID
				if version != "" {
					st.Version = version
				}
			})
		} else {
			hr := h.Record()
			r.set(StateRunning, "", func(st *Status) { st.PID, st.ContainerID = hr.PID, hr.ContainerID })
		}

		why := r.monitor(h, started)
		switch why {
		case endDetach:
			return
		case endStop:
			h.Stop(stopTimeout)
			removeRecord(r.inst.Dir)
			r.stopped()
			return
		}
		reason := "exited"
		if why == endUnhealthy {
			reason = "restarted after failing its health check"
			h.Stop(stopTimeout)
		}
		<-h.Done()
		h.Stop(0) // releases what the exited workload left (stragglers, cgroup, container)
		removeRecord(r.inst.Dir)
		ex := h.Exit()
		ex.Output, _ = TailLines(r.inst.LogPath(), r.s.o.OutputLines)
		restarts++
		delay, loop := tr.exited(r.s.o.Now().Sub(started), r.s.o.Rand())
		state := StateRestarting
		if loop {
			state = StateCrashLoop
			reason = fmt.Sprintf("crash loop: %d quick failures in a row, last %s; next start in %s", tr.failures, ex.String(), delay.Round(time.Millisecond))
		} else if why != endUnhealthy {
			reason = ex.String()
		}
		r.set(state, reason, func(st *Status) {
			st.LastExit, st.Restarts, st.PID, st.ContainerID, st.Adopted = &ex, restarts, 0, "", false
		})
		h = nil
		if !r.wait(delay) {
			if r.stopping() {
				r.stopped()
			}
			return
		}
	}
}

type endReason int

const (
	endExit endReason = iota
	endUnhealthy
	endStop
	endDetach
)

// monitor watches a running workload: its exit, its health check and the
// stop/detach requests. It also rotates the output log.
func (r *runner) monitor(h Handle, started time.Time) endReason {
	hc := r.spec.Health
	interval := time.Second
	threshold := 3
	if hc != nil {
		interval = hc.Interval.D(5 * time.Second)
		if hc.FailureThreshold > 0 {
			threshold = hc.FailureThreshold
		}
	}
	fails := 0
	// The first check comes soon after the start (a workload is reported
	// healthy without waiting a whole interval), then every interval.
	next := min(interval, 100*time.Millisecond)
	for {
		select {
		case <-h.Done():
			return endExit
		case <-r.stop:
			return endStop
		case <-r.detach:
			return endDetach
		case <-r.s.o.After(next):
		}
		next = interval
		if hc != nil && fails == 0 && r.status().State == StateRunning {
			// Until the first success, check at a quicker pace.
			next = min(interval, 250*time.Millisecond)
		}
		if r.spec.Driver == workloadspec.DriverNative { // podman rotates its own log
			_ = rotate(r.inst.LogPath(), r.s.o.MaxLogBytes, r.s.o.MaxLogFiles)
		}
		if hc == nil {
			continue
		}
		err := Check(context.Background(), hc, h)
		select {
		case <-h.Done():
			return endExit
		default:
		}
		if err == nil {
			fails = 0
			r.set(StateHealthy, "", nil)
			continue
		}
		if r.s.o.Now().Sub(started) < hc.StartPeriod.D(0) {
			continue
		}
		fails++
		switch {
		case fails >= 2*threshold:
			return endUnhealthy
		case fails >= threshold:
			r.set(StateUnhealthy, fmt.Sprintf("health check failed %d times: %v", fails, err), nil)
		}
	}
}
