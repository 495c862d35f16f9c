package workload

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/rap-fabric/core/workloadspec"
)

// Options configure a Supervisor.
type Options struct {
	// Root is the directory of instance directories (Root/CLUSTER/SERVICE),
	// normally under the agent's state directory.
	Root string
	// Drivers by kind (workloadspec.DriverNative, DriverContainer). A spec
	// whose driver is missing is reported failed.
	Drivers map[string]Driver
	// Now and After are the clock; nil means the real one.
	Now   func() time.Time
	After func(time.Duration) <-chan time.Time
	// Rand returns a uniform number in [0, 1) for backoff jitter; nil means
	// math/rand/v2.
	Rand func() float64
	// MaxLogBytes rotates output logs above this size (0: 8 MiB); MaxLogFiles
	// rotated files are kept (0: 3).
	MaxLogBytes int64
	MaxLogFiles int
	// OutputLines is how many last lines of output an exit reports (0: 20).
	OutputLines int
	// ForgetAfter is how long a stopped instance is still reported (so the
	// authority learns it stopped) before it is forgotten (0: 10 min).
	ForgetAfter time.Duration
	// OnChange, when set, is called (without locks held) after an instance
	// changed state.
	OnChange func(cluster string)
	Logger   hclog.Logger
}

// Supervisor supervises the service workloads of every membership of an
// agent. Its methods are safe for concurrent use.
type Supervisor struct {
	o Options

	mu      sync.Mutex
	runners map[string]*runner // by key
	swept   map[string]bool    // clusters whose orphan records were looked at
	closed  bool
	wg      sync.WaitGroup
}

// New builds a supervisor; it starts nothing until Apply.
func New(o Options) (*Supervisor, error) {
	if o.Root == "" {
		return nil, errors.New("workload: Options.Root is required")
	}
	// Workloads run in their own working directories under Root, so every
	// path handed to a driver (artifact, logs, cgroup records) must not
	// depend on the agent's working directory: a relative Root (a state
	// file given as a relative path) is made absolute here, once.
	root, err := filepath.Abs(o.Root)
	if err != nil {
		return nil, fmt.Errorf("workload: Options.Root: %w", err)
	}
	o.Root = root
	if err := os.MkdirAll(o.Root, 0o711); err != nil {
		return nil, err
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.After == nil {
		o.After = time.After
	}
	if o.Rand == nil {
		o.Rand = rand.Float64
	}
	if o.MaxLogBytes <= 0 {
		o.MaxLogBytes = 8 << 20
	}
	if o.MaxLogFiles <= 0 {
		o.MaxLogFiles = 3
	}
	if o.OutputLines <= 0 {
		o.OutputLines = 20
	}
	if o.ForgetAfter <= 0 {
		o.ForgetAfter = 10 * time.Minute
	}
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
	return &Supervisor{o: o, runners: map[string]*runner{}, swept: map[string]bool{}}, nil
}

// dirName is a file-system-safe directory name for an id.
func dirName(id string) string {
	ok := len(id) > 0 && len(id) <= 100
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			ok = false
		}
	}
	if ok && id != "." && id != ".." {
		return id
	}
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:12])
}

// Apply makes the supervised instances of cluster those of assignments:
// new ones start (when authorized), changed ones restart, missing ones stop.
// grants are the node's active roles in cluster.
func (s *Supervisor) Apply(cluster string, assignments []Assignment, grants []Grant) {
	s.apply(cluster, assignments, grants, "unassigned")
}

// StopCluster stops every instance of cluster (revocation), reporting
// reason.
func (s *Supervisor) StopCluster(cluster, reason string) { s.apply(cluster, nil, nil, reason) }

func (s *Supervisor) apply(cluster string, assignments []Assignment, grants []Grant, stopReason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	want := map[string]bool{}
	for _, a := range assignments {
		key := cluster + "/" + a.ServiceID
		want[key] = true
		r := newRunner(s, cluster, a, grants)
		old := s.runners[key]
		if old != nil && old.ident == r.ident && !old.stopping() {
			continue
		}
		if old != nil {
			old.requestStop("configuration changed")
			r.prev = old
		}
		s.runners[key] = r
		s.start(r)
	}
	for key, r := range s.runners {
		if r.cluster == cluster && !want[key] {
			r.requestStop(stopReason)
		}
	}
	if !s.swept[cluster] {
		s.swept[cluster] = true
		s.sweepOrphans(cluster, want)
	}
}

// sweepOrphans stops workloads recorded on disk for cluster that no
// assignment names any more (the agent was down when they were unassigned).
func (s *Supervisor) sweepOrphans(cluster string, want map[string]bool) {
	dir := filepath.Join(s.o.Root, dirName(cluster))
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		idir := filepath.Join(dir, e.Name())
		rec, ok := readRecord(idir)
		if !ok {
			continue
		}
		known := false
		for key := range want {
			if dirName(strings.TrimPrefix(key, cluster+"/")) == e.Name() {
				known = true
			}
		}
		if known {
			continue
		}
		d := s.o.Drivers[rec.Driver]
		if d == nil {
			continue
		}
		inst := &Instance{Key: cluster + "/" + e.Name(), Name: e.Name(), Cluster: cluster, Dir: idir}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if h, ok := d.Adopt(inst, rec); ok {
				s.o.Logger.Info("stopping a workload that is no longer assigned", "dir", idir, "pid", rec.PID)
				h.Stop(workloadspec.DefaultStopTimeout)
			}
			removeRecord(idir)
		}()
	}
}

func (s *Supervisor) start(r *runner) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		r.run()
	}()
}

// Statuses are the reported states of cluster's instances, sorted by
// service id. Instances stopped longer than ForgetAfter ago are forgotten.
func (s *Supervisor) Statuses(cluster string) []Status {
	s.mu.Lock()
	rs := make([]*runner, 0, len(s.runners))
	for _, r := range s.runners {
		if r.cluster == cluster {
			rs = append(rs, r)
		}
	}
	s.mu.Unlock()
	out := make([]Status, 0, len(rs))
	now := s.o.Now()
	for _, r := range rs {
		st := r.status()
		if st.State == StateStopped && now.Sub(st.Since) > s.o.ForgetAfter {
			s.mu.Lock()
			if s.runners[r.inst.Key] == r {
				delete(s.runners, r.inst.Key)
			}
			s.mu.Unlock()
			continue
		}
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b Status) int { return strings.Compare(a.ServiceID, b.ServiceID) })
	return out
}

// InstanceDir is where the instance of serviceID in cluster keeps its
// record and logs.
func InstanceDir(root, cluster, serviceID string) string {
	return filepath.Join(root, dirName(cluster), dirName(serviceID))
}

// Close stops supervising WITHOUT stopping the workloads (the agent exits;
// a later agent re-adopts them). It waits for the supervising goroutines.
func (s *Supervisor) Close() {
	s.mu.Lock()
	s.closed = true
	for _, r := range s.runners {
		r.detachOnce.Do(func() { close(r.detach) })
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// Wait waits until every instance that was asked to stop has stopped (tests
// and shutdown of a revoked membership).
func (s *Supervisor) Wait(ctx context.Context, cluster string) error {
	s.mu.Lock()
	var rs []*runner
	for _, r := range s.runners {
		if r.cluster == cluster && r.stopping() {
			rs = append(rs, r)
		}
	}
	s.mu.Unlock()
	for _, r := range rs {
		select {
		case <-r.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// ImageLoader is a driver that loads image archives (the container driver).
type ImageLoader interface {
	LoadImage(ctx context.Context, archive, name string) (string, error)
}

// LoadImage loads an image archive through the container driver and returns
// its reference by digest (see Container.LoadImage).
func (s *Supervisor) LoadImage(ctx context.Context, archive, name string) (string, error) {
	l, ok := s.o.Drivers[workloadspec.DriverContainer].(ImageLoader)
	if !ok {
		return "", errors.New("workload: no container driver loads images on this agent")
	}
	return l.LoadImage(ctx, archive, name)
}

// Migrator is a driver that runs service-local migration programs (the
// native driver).
type Migrator interface {
	Migrate(ctx context.Context, inst *Instance, program string, args, env []string) (string, error)
}

// Migrate runs a service-local migration program for the instance of
// serviceID in cluster (see Native.Migrate), before its new release starts.
func (s *Supervisor) Migrate(ctx context.Context, cluster, serviceID, program string, args, env []string) (string, error) {
	s.mu.Lock()
	r := s.runners[cluster+"/"+serviceID]
	s.mu.Unlock()
	if r == nil || r.spec == nil {
		return "", fmt.Errorf("workload: service %s is not supervised here", serviceID)
	}
	mg, ok := s.o.Drivers[r.spec.Driver].(Migrator)
	if !ok {
		return "", fmt.Errorf("workload: the %s driver runs no migration programs", r.spec.Driver)
	}
	inst := &Instance{Key: r.inst.Key, Name: r.inst.Name, Cluster: r.inst.Cluster, Assignment: r.a, Spec: r.spec, Dir: r.inst.Dir}
	return mg.Migrate(ctx, inst, program, args, env)
}
