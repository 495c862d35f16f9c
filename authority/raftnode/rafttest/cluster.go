package rafttest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/rap-fabric/core/authority/raftnode"
	"github.com/rap-fabric/core/fsm"
)

// T is the part of testing.TB the harness uses.
type T interface {
	Helper()
	Logf(format string, args ...any)
	Fatalf(format string, args ...any)
	Cleanup(func())
	TempDir() string
}

// Options configure a Cluster. Zero values take the defaults noted.
type Options struct {
	// Nodes is the group size (default 3).
	Nodes int
	// HeartbeatTimeout, ElectionTimeout, LeaderLeaseTimeout (defaults 300, 300,
	// 150 ms) and QuorumTimeout (default 1.5 s).
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	QuorumTimeout      time.Duration
	// LogLevel for Raft's logs, written through T.Logf. Default: the
	// RAFTTEST_LOG environment variable, else "warn".
	LogLevel string
	// Configure, if set, adjusts each member's Config last. Replacing OnLeader
	// or OnFollower disables the harness's epoch recording.
	Configure func(m *Member, cfg *raftnode.Config)
}

// Member is one node of the harness. Node and FSM are replaced by Restart.
type Member struct {
	ID   string
	Addr string
	Dir  string

	mu     sync.Mutex
	node   *raftnode.Node
	layer  *StreamLayer
	fsm    *fsm.FSM
	epochs []uint64
	ends   int
}

// Node returns the running node, or nil while killed.
func (m *Member) Node() *raftnode.Node { m.mu.Lock(); defer m.mu.Unlock(); return m.node }

// FSM returns the member's current state machine.
func (m *Member) FSM() *fsm.FSM { m.mu.Lock(); defer m.mu.Unlock(); return m.fsm }

// Layer returns the member's current stream layer.
func (m *Member) Layer() *StreamLayer { m.mu.Lock(); defer m.mu.Unlock(); return m.layer }

// Epochs returns the epochs OnLeader reported on this member, in order.
func (m *Member) Epochs() []uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]uint64(nil), m.epochs...)
}

// FollowerCalls returns how many times OnFollower ran on this member.
func (m *Member) FollowerCalls() int { m.mu.Lock(); defer m.mu.Unlock(); return m.ends }

// Cluster is a running group of members over loopback TCP.
type Cluster struct {
	t       T
	opts    Options
	Members []*Member
	logOut  *tWriter
}

// New starts opts.Nodes members, bootstraps them with the full configuration
// and registers Shutdown with t.Cleanup. It does not wait for a leader.
func New(t T, opts Options) *Cluster {
	t.Helper()
	if opts.Nodes == 0 {
		opts.Nodes = 3
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&opts.HeartbeatTimeout, 300*time.Millisecond)
	def(&opts.ElectionTimeout, 300*time.Millisecond)
	def(&opts.LeaderLeaseTimeout, 150*time.Millisecond)
	def(&opts.QuorumTimeout, 1500*time.Millisecond)
	if opts.LogLevel == "" {
		opts.LogLevel = os.Getenv("RAFTTEST_LOG")
	}
	if opts.LogLevel == "" {
		opts.LogLevel = "warn"
	}
	base := t.TempDir() // before Cleanup(Shutdown): cleanups run last-in first-out
	c := &Cluster{t: t, opts: opts, logOut: &tWriter{t: t}}
	t.Cleanup(c.Shutdown)
	layers := make([]*StreamLayer, opts.Nodes)
	var servers []raftnode.Server
	for i := range opts.Nodes {
		l, err := Listen("127.0.0.1:0")
		if err != nil {
			t.Fatalf("rafttest: listen: %v", err)
		}
		layers[i] = l
		m := &Member{ID: fmt.Sprintf("a%d", i+1), Addr: l.Addr().String(), Dir: filepath.Join(base, fmt.Sprintf("a%d", i+1))}
		c.Members = append(c.Members, m)
		servers = append(servers, raftnode.Server{ID: m.ID, Address: m.Addr, Suffrage: fsm.SuffrageVoter})
	}
	for i, m := range c.Members {
		if err := c.start(m, layers[i]); err != nil {
			t.Fatalf("rafttest: start %s: %v", m.ID, err)
		}
		if err := m.Node().Bootstrap(servers); err != nil {
			t.Fatalf("rafttest: bootstrap %s: %v", m.ID, err)
		}
	}
	return c
}

func (c *Cluster) start(m *Member, layer *StreamLayer) error {
	f := fsm.New(fsm.Options{})
	cfg := raftnode.DefaultConfig()
	cfg.NodeID, cfg.DataDir, cfg.FSM, cfg.StreamLayer = m.ID, m.Dir, f, layer
	cfg.HeartbeatTimeout, cfg.ElectionTimeout = c.opts.HeartbeatTimeout, c.opts.ElectionTimeout
	cfg.LeaderLeaseTimeout, cfg.QuorumTimeout = c.opts.LeaderLeaseTimeout, c.opts.QuorumTimeout
	cfg.CommitTimeout = 10 * time.Millisecond
	cfg.TransportTimeout = 2 * time.Second
	cfg.Logger = hclog.New(&hclog.LoggerOptions{Name: m.ID, Level: hclog.LevelFromString(c.opts.LogLevel),
		Output: c.logOut})
	cfg.OnLeader = func(e uint64) { m.mu.Lock(); m.epochs = append(m.epochs, e); m.mu.Unlock() }
	cfg.OnFollower = func() { m.mu.Lock(); m.ends++; m.mu.Unlock() }
	if c.opts.Configure != nil {
		c.opts.Configure(m, &cfg)
	}
	n, err := raftnode.New(cfg)
	if err != nil {
		_ = layer.Close()
		return err
	}
	m.mu.Lock()
	m.node, m.layer, m.fsm = n, layer, f
	m.mu.Unlock()
	return nil
}

// Running returns the members that are not killed.
func (c *Cluster) Running() []*Member {
	var out []*Member
	for _, m := range c.Members {
		if m.Node() != nil {
			out = append(out, m)
		}
	}
	return out
}

// Member returns the member with the given id.
func (c *Cluster) Member(id string) *Member {
	for _, m := range c.Members {
		if m.ID == id {
			return m
		}
	}
	c.t.Fatalf("rafttest: no member %q", id)
	return nil
}

// Others returns every member but m.
func (c *Cluster) Others(m *Member) []*Member {
	var out []*Member
	for _, o := range c.Members {
		if o != m {
			out = append(out, o)
		}
	}
	return out
}

// Eventually polls cond every 10 ms until it is true or timeout passes, then
// fails the test with msg.
func (c *Cluster) Eventually(timeout time.Duration, cond func() bool, msg string, args ...any) {
	c.t.Helper()
	if err := Poll(timeout, cond); err != nil {
		c.t.Fatalf("rafttest: after %v: "+msg, append([]any{timeout}, args...)...)
	}
}

// Poll calls cond every 10 ms until it returns true (nil) or timeout passes.
func Poll(timeout time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("rafttest: condition not met")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// LeaderAmong returns the one member of ms that leads and has claimed its
// epoch, or nil.
func LeaderAmong(ms []*Member) *Member {
	var leader *Member
	for _, m := range ms {
		n := m.Node()
		if n != nil && n.IsLeader() && n.ClaimedEpoch() > 0 {
			if leader != nil {
				return nil
			}
			leader = m
		}
	}
	return leader
}

// WaitLeader waits until exactly one running member leads with a claimed
// epoch and returns it.
func (c *Cluster) WaitLeader(timeout time.Duration) *Member {
	c.t.Helper()
	return c.WaitLeaderAmong(timeout, c.Members...)
}

// WaitLeaderAmong is WaitLeader restricted to ms (e.g. the majority side).
func (c *Cluster) WaitLeaderAmong(timeout time.Duration, ms ...*Member) *Member {
	c.t.Helper()
	var leader *Member
	c.Eventually(timeout, func() bool { leader = LeaderAmong(ms); return leader != nil }, "no single leader")
	return leader
}

// Isolate cuts every link between m and the other members, both ways.
func (c *Cluster) Isolate(m *Member) {
	var others []raft.ServerAddress
	for _, o := range c.Others(m) {
		others = append(others, raft.ServerAddress(o.Addr))
		if l := o.Layer(); l != nil {
			l.Block(raft.ServerAddress(m.Addr))
		}
	}
	if l := m.Layer(); l != nil {
		l.Block(others...)
	}
}

// Heal removes every block on every member.
func (c *Cluster) Heal() {
	for _, m := range c.Members {
		if l := m.Layer(); l != nil {
			l.Heal()
		}
	}
}

// Kill shuts m's node down (no leadership transfer) and keeps its data dir.
func (c *Cluster) Kill(m *Member) {
	c.t.Helper()
	n := m.Node()
	if n == nil {
		return
	}
	if err := n.Shutdown(); err != nil {
		c.t.Logf("rafttest: shutdown %s: %v", m.ID, err)
	}
	m.mu.Lock()
	m.node = nil
	m.mu.Unlock()
}

// Restart starts a killed member again from its data dir, on the same address,
// with a fresh FSM that Raft rebuilds from the snapshot and log on disk.
func (c *Cluster) Restart(m *Member) {
	c.t.Helper()
	var layer *StreamLayer
	err := Poll(5*time.Second, func() bool {
		var err error
		layer, err = Listen(m.Addr)
		return err == nil
	})
	if err != nil {
		c.t.Fatalf("rafttest: relisten %s on %s: %v", m.ID, m.Addr, err)
	}
	if err := c.start(m, layer); err != nil {
		c.t.Fatalf("rafttest: restart %s: %v", m.ID, err)
	}
	if err := m.Node().Bootstrap(nil); !errors.Is(err, raftnode.ErrAlreadyBootstrapped) {
		c.t.Fatalf("rafttest: restarted %s: Bootstrap = %v, want ErrAlreadyBootstrapped", m.ID, err)
	}
}

// Shutdown kills every member. It is registered with t.Cleanup.
func (c *Cluster) Shutdown() {
	for _, m := range c.Members {
		c.Kill(m)
	}
	c.logOut.close()
}

// WaitConverged waits until every running member's FSM dumps the same state.
func (c *Cluster) WaitConverged(timeout time.Duration) {
	c.t.Helper()
	var last []string
	err := Poll(timeout, func() bool {
		last = last[:0]
		for _, m := range c.Running() {
			last = append(last, m.FSM().Dump())
		}
		for _, d := range last[1:] {
			if d != last[0] {
				return false
			}
		}
		return true
	})
	if err != nil {
		c.t.Fatalf("rafttest: FSMs did not converge:\n%s", strings.Join(last, "\n----\n"))
	}
}

// tWriter sends hclog output to T.Logf until closed (logging after a test
// ends panics).
type tWriter struct {
	mu     sync.Mutex
	t      T
	closed bool
}

func (w *tWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		w.t.Logf("%s", strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (w *tWriter) close() { w.mu.Lock(); w.closed = true; w.mu.Unlock() }

var _ net.Listener = (*StreamLayer)(nil)
