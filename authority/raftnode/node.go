// Package raftnode runs this authority's member of the Raft group: it wraps
// hashicorp/raft with a bolt log/stable store (raft-boltdb/v2), a file snapshot
// store and a TCP transport, and turns Raft's outcomes into the typed errors
// the fenced control plane needs (ErrNotLeader with the leader's address,
// ErrNoQuorum, ErrUnknownOutcome). On gaining leadership it runs a Barrier,
// commits a ClaimEpoch and hands the new authority epoch to Config.OnLeader.
//
// It owns no business rules and must not touch PostgreSQL: the state machine
// is package fsm, the fence is the caller's. Test support (a partitionable
// stream layer and an N-node harness) is in raftnode/rafttest, which
// production code must not import.
package raftnode

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"

	"github.com/rap-fabric/core/fsm"
)

// Server is one member of the Raft configuration.
type Server struct {
	ID      string
	Address string
	// Suffrage is fsm.SuffrageVoter or fsm.SuffrageNonvoter.
	Suffrage fsm.Suffrage
}

// Stats is a point-in-time view of the node.
type Stats struct {
	State        string
	Term         uint64
	CommitIndex  uint64
	AppliedIndex uint64
	LastIndex    uint64
	// LastContact is when a follower last heard from the leader (zero when
	// never, and meaningless on the leader).
	LastContact time.Time
	LeaderID    string
	LeaderAddr  string
	// ClaimedEpoch is the authority epoch claimed by this node's current
	// leadership, 0 when it does not lead (or has not claimed yet).
	ClaimedEpoch uint64
}

// Node is one Raft member. Its methods are safe for concurrent use.
type Node struct {
	cfg    Config
	logger hclog.Logger
	raft   *raft.Raft
	trans  *raft.NetworkTransport
	store  *raftboltdb.BoltStore
	snaps  raft.SnapshotStore

	notifyCh   chan bool
	shutdownCh chan struct{}
	wg         sync.WaitGroup
	closeOnce  sync.Once
	closeErr   error

	epoch   atomic.Uint64 // epoch claimed by the current leadership, else 0
	claimed atomic.Bool   // OnLeader was called and OnFollower is owed
	// claimedTerm is the term of the last successful claim; only the
	// leadership goroutine touches it.
	claimedTerm uint64
}

// New validates cfg, opens the stores under cfg.DataDir, starts the transport
// and Raft. A fresh node must be bootstrapped (Bootstrap) or added to an
// existing group (AddVoter on the leader); a restarted one resumes from disk.
func New(cfg Config) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.New(&hclog.LoggerOptions{Name: "raft", Level: hclog.Info})
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	n := &Node{cfg: cfg, logger: cfg.Logger.With("node_id", cfg.NodeID),
		notifyCh: make(chan bool, 16), shutdownCh: make(chan struct{})}
	var closers []func() error
	fail := func(err error) (*Node, error) {
		for i := len(closers) - 1; i >= 0; i-- {
			_ = closers[i]()
		}
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(cfg.DataDir, "snapshots"), 0o700); err != nil {
		return fail(fmt.Errorf("raftnode: data dir: %w", err))
	}
	store, err := raftboltdb.New(raftboltdb.Options{
		Path:        filepath.Join(cfg.DataDir, "raft.db"),
		BoltOptions: &bbolt.Options{Timeout: 2 * time.Second},
	})
	if err != nil {
		return fail(fmt.Errorf("raftnode: open log store: %w", err))
	}
	n.store = store
	closers = append(closers, store.Close)
	logs, err := raft.NewLogCache(512, store)
	if err != nil {
		return fail(fmt.Errorf("raftnode: log cache: %w", err))
	}
	n.snaps, err = raft.NewFileSnapshotStoreWithLogger(cfg.DataDir, cfg.SnapshotRetain, n.logger.Named("snapshot"))
	if err != nil {
		return fail(fmt.Errorf("raftnode: snapshot store: %w", err))
	}
	if cfg.StreamLayer != nil {
		n.trans = raft.NewNetworkTransportWithLogger(cfg.StreamLayer, cfg.MaxPool, cfg.TransportTimeout, n.logger.Named("net"))
	} else {
		var adv net.Addr
		if cfg.AdvertiseAddr != "" {
			if adv, err = net.ResolveTCPAddr("tcp", cfg.AdvertiseAddr); err != nil {
				return fail(fmt.Errorf("raftnode: advertise address: %w", err))
			}
		}
		n.trans, err = raft.NewTCPTransportWithLogger(cfg.BindAddr, adv, cfg.MaxPool, cfg.TransportTimeout, n.logger.Named("net"))
		if err != nil {
			return fail(fmt.Errorf("raftnode: transport: %w", err))
		}
	}
	closers = append(closers, n.trans.Close)

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.NodeID)
	rc.HeartbeatTimeout = cfg.HeartbeatTimeout
	rc.ElectionTimeout = cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = cfg.LeaderLeaseTimeout
	rc.CommitTimeout = cfg.CommitTimeout
	rc.SnapshotInterval = cfg.SnapshotInterval
	rc.SnapshotThreshold = cfg.SnapshotThreshold
	rc.NotifyCh = n.notifyCh
	rc.Logger = n.logger
	if err := raft.ValidateConfig(rc); err != nil {
		return fail(fmt.Errorf("%w: %w", ErrInvalidConfig, err))
	}
	n.raft, err = raft.NewRaft(rc, cfg.FSM, logs, store, n.snaps, n.trans)
	if err != nil {
		return fail(fmt.Errorf("raftnode: start raft: %w", err))
	}
	n.wg.Go(n.leadershipLoop)
	return n, nil
}

// ID returns this node's Raft id.
func (n *Node) ID() string { return n.cfg.NodeID }

// Addr returns the address peers reach this node's Raft transport at.
func (n *Node) Addr() string { return string(n.trans.LocalAddr()) }

// FSM returns the state machine this node applies to.
func (n *Node) FSM() *fsm.FSM { return n.cfg.FSM }

// HasExistingState reports whether this node has Raft state on disk (a log,
// a snapshot or a term): it was bootstrapped or has been replicated to as a
// member, so a restart needs neither a bootstrap nor a join.
func (n *Node) HasExistingState() (bool, error) {
	has, err := raft.HasExistingState(n.store, n.store, n.snaps)
	if err != nil {
		return false, fmt.Errorf("raftnode: check existing state: %w", err)
	}
	return has, nil
}

// Bootstrap writes the initial configuration. It only works on a node with no
// Raft state on disk; otherwise it returns ErrAlreadyBootstrapped, which a
// restarting process may ignore.
func (n *Node) Bootstrap(servers []Server) error {
	has, err := raft.HasExistingState(n.store, n.store, n.snaps)
	if err != nil {
		return fmt.Errorf("raftnode: check existing state: %w", err)
	}
	if has {
		return ErrAlreadyBootstrapped
	}
	conf := raft.Configuration{}
	for _, s := range servers {
		conf.Servers = append(conf.Servers, raft.Server{ID: raft.ServerID(s.ID), Address: raft.ServerAddress(s.Address),
			Suffrage: suffrage(s.Suffrage)})
	}
	if err := n.raft.BootstrapCluster(conf).Error(); err != nil {
		if errors.Is(err, raft.ErrCantBootstrap) {
			return ErrAlreadyBootstrapped
		}
		return fmt.Errorf("raftnode: bootstrap: %w", err)
	}
	return nil
}

func suffrage(s fsm.Suffrage) raft.ServerSuffrage {
	if s == fsm.SuffrageNonvoter {
		return raft.Nonvoter
	}
	return raft.Voter
}

// AddVoter adds (or promotes) a voting member. Leader only.
func (n *Node) AddVoter(ctx context.Context, id, addr string) error {
	if err := n.leaderCheck(); err != nil {
		return err
	}
	d := n.deadline(ctx)
	return n.waitFuture(ctx, d, n.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, time.Until(d)))
}

// RemoveServer removes a member from the configuration. Leader only.
func (n *Node) RemoveServer(ctx context.Context, id string) error {
	if err := n.leaderCheck(); err != nil {
		return err
	}
	d := n.deadline(ctx)
	return n.waitFuture(ctx, d, n.raft.RemoveServer(raft.ServerID(id), 0, time.Until(d)))
}

// Apply encodes cmd with the idempotency key requestID (empty for none) and
// proposes it. It returns the FSM's Result once committed and applied on this
// leader. A command the FSM rejected returns its Result and the
// *fsm.CommandError. Node-level failures: *NotLeaderError, ErrNoQuorum (nothing
// proposed), ErrUnknownOutcome (+ErrNoQuorum or ErrNotLeader as the cause).
func (n *Node) Apply(ctx context.Context, requestID string, cmd fsm.Command) (fsm.Result, error) {
	data, err := fsm.Encode(requestID, cmd)
	if err != nil {
		return fsm.Result{}, err
	}
	return n.ApplyEncoded(ctx, data)
}

// ApplyEncoded is Apply for a command already encoded with fsm.Encode.
func (n *Node) ApplyEncoded(ctx context.Context, data []byte) (fsm.Result, error) {
	if err := n.leaderCheck(); err != nil {
		return fsm.Result{}, err
	}
	d := n.deadline(ctx)
	f := n.raft.Apply(data, time.Until(d))
	if err := n.waitFuture(ctx, d, f); err != nil {
		return fsm.Result{}, err
	}
	res, ok := f.Response().(fsm.Result)
	if !ok {
		return fsm.Result{}, fmt.Errorf("raftnode: unexpected FSM response %T", f.Response())
	}
	return res, res.Err
}

// VerifyLeader confirms with a quorum that this node still leads. It fails
// with *NotLeaderError, or ErrNoQuorum when that cannot be confirmed within
// QuorumTimeout (or ctx).
func (n *Node) VerifyLeader(ctx context.Context) error {
	if err := n.leaderCheck(); err != nil {
		return err
	}
	d := n.deadline(ctx)
	err := n.wait(ctx, d, n.raft.VerifyLeader())
	// A verification has no side effect, so its outcome is never "unknown":
	// report why leadership was not confirmed.
	switch {
	case err == nil:
		return nil
	case errors.Is(err, raft.ErrRaftShutdown):
		return ErrShutdown
	case errors.Is(err, errDeadline):
		return fmt.Errorf("%w: leadership not confirmed within %v", ErrNoQuorum, n.cfg.QuorumTimeout)
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipLost):
		return fmt.Errorf("leadership lost while verifying: %w", n.notLeaderErr())
	case ctx.Err() != nil:
		return fmt.Errorf("%w: %w", ErrNoQuorum, ctx.Err())
	}
	return fmt.Errorf("raftnode: verify leader: %w", err)
}

// Barrier waits until every entry committed before it is applied to the FSM.
// Leader only.
func (n *Node) Barrier(ctx context.Context) error {
	if err := n.leaderCheck(); err != nil {
		return err
	}
	d := n.deadline(ctx)
	return n.waitFuture(ctx, d, n.raft.Barrier(time.Until(d)))
}

// IsLeader reports whether this node currently believes it leads. Only
// VerifyLeader proves it.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

// Leader returns the leader's address and id as this node knows them (empty
// when unknown).
func (n *Node) Leader() (addr, id string) {
	a, i := n.raft.LeaderWithID()
	return string(a), string(i)
}

// State returns the Raft state: Follower, Candidate, Leader or Shutdown.
func (n *Node) State() raft.RaftState { return n.raft.State() }

// ClaimedEpoch returns the authority epoch this node claimed in its current
// leadership (committed through the log as a ClaimEpoch), or 0.
func (n *Node) ClaimedEpoch() uint64 { return n.epoch.Load() }

// Stats returns a snapshot of indexes, term, contact and leader.
func (n *Node) Stats() Stats {
	m := n.raft.Stats()
	u := func(k string) uint64 { v, _ := strconv.ParseUint(m[k], 10, 64); return v }
	addr, id := n.Leader()
	return Stats{
		State:        n.raft.State().String(),
		Term:         n.raft.CurrentTerm(),
		CommitIndex:  u("commit_index"),
		AppliedIndex: n.raft.AppliedIndex(),
		LastIndex:    n.raft.LastIndex(),
		LastContact:  n.raft.LastContact(),
		LeaderID:     id,
		LeaderAddr:   addr,
		ClaimedEpoch: n.epoch.Load(),
	}
}

// Servers returns the current Raft configuration.
func (n *Node) Servers() ([]Server, error) {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, fmt.Errorf("raftnode: configuration: %w", err)
	}
	var out []Server
	for _, s := range f.Configuration().Servers {
		sf := fsm.SuffrageVoter
		if s.Suffrage != raft.Voter {
			sf = fsm.SuffrageNonvoter
		}
		out = append(out, Server{ID: string(s.ID), Address: string(s.Address), Suffrage: sf})
	}
	return out, nil
}

// Shutdown stops Raft, the transport and the stores. It does not transfer
// leadership: the rest of the group elects a new leader after the election
// timeout. Safe to call more than once.
func (n *Node) Shutdown() error {
	n.closeOnce.Do(func() {
		close(n.shutdownCh)
		errs := []error{n.raft.Shutdown().Error()}
		n.wg.Wait()
		n.endLeadership()
		errs = append(errs, n.trans.Close(), n.store.Close())
		if err := errors.Join(errs...); err != nil {
			n.closeErr = fmt.Errorf("raftnode: shutdown: %w", err)
		}
	})
	return n.closeErr
}

// leaderCheck fails fast, proposing nothing, when this node is not the leader.
func (n *Node) leaderCheck() error {
	select {
	case <-n.shutdownCh:
		return ErrShutdown
	default:
	}
	if n.raft.State() == raft.Leader {
		return nil
	}
	return n.notLeaderErr()
}

// notLeaderErr is *NotLeaderError when a leader other than us is known, else
// ErrNoQuorum.
func (n *Node) notLeaderErr() error {
	addr, id := n.raft.LeaderWithID()
	if id != "" && string(id) != n.cfg.NodeID {
		return &NotLeaderError{LeaderID: string(id), LeaderAddr: string(addr)}
	}
	select {
	case <-n.shutdownCh:
		return ErrShutdown
	default:
	}
	return fmt.Errorf("%w: no leader known", ErrNoQuorum)
}

func (n *Node) deadline(ctx context.Context) time.Time {
	d := time.Now().Add(n.cfg.QuorumTimeout)
	if cd, ok := ctx.Deadline(); ok && cd.Before(d) {
		return cd
	}
	return d
}

var errDeadline = errors.New("quorum deadline passed")

// wait waits for f until the deadline, ctx or Shutdown and returns Raft's
// error, errDeadline, ctx.Err() or raft.ErrRaftShutdown.
func (n *Node) wait(ctx context.Context, deadline time.Time, f raft.Future) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case err := <-done:
		return err
	case <-timer.C:
		return errDeadline
	case <-ctx.Done():
		return ctx.Err()
	case <-n.shutdownCh:
		return raft.ErrRaftShutdown
	}
}

// waitFuture waits for a future with side effects and classifies the result.
func (n *Node) waitFuture(ctx context.Context, deadline time.Time, f raft.Future) error {
	err := n.wait(ctx, deadline, f)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, raft.ErrNotLeader):
		return n.notLeaderErr()
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return fmt.Errorf("%w: %w", ErrNoQuorum, err)
	case errors.Is(err, raft.ErrLeadershipLost):
		return fmt.Errorf("%w: %w", ErrUnknownOutcome, n.notLeaderErr())
	case errors.Is(err, raft.ErrRaftShutdown):
		return fmt.Errorf("%w: %w", ErrUnknownOutcome, ErrShutdown)
	case errors.Is(err, errDeadline):
		return fmt.Errorf("%w: %w: not committed within %v", ErrUnknownOutcome, ErrNoQuorum, n.cfg.QuorumTimeout)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%w: %w", ErrUnknownOutcome, err)
	}
	return fmt.Errorf("raftnode: %w", err)
}

// leadershipLoop turns Raft's leadership notifications into epoch claims and
// OnLeader/OnFollower calls, one at a time. Notifications are coalesced and
// the loop acts on Raft's current state, so a quick lose-and-regain is one
// OnFollower followed by one OnLeader with the new term's epoch.
func (n *Node) leadershipLoop() {
	for {
		select {
		case <-n.shutdownCh:
			return
		case <-n.notifyCh:
		}
		for drained := false; !drained; {
			select {
			case <-n.notifyCh:
			default:
				drained = true
			}
		}
		if n.raft.State() != raft.Leader {
			n.endLeadership()
			continue
		}
		if n.claimed.Load() && n.claimedTerm == n.raft.CurrentTerm() {
			continue // still the leadership we claimed for
		}
		n.endLeadership()
		n.claimEpoch()
	}
}

// claimEpoch runs a Barrier (so the FSM has every earlier entry) and commits
// ClaimEpoch, retrying while this node still leads. The request id is fixed
// per term, so a retry after an unknown outcome cannot claim twice.
func (n *Node) claimEpoch() {
	backoff := 20 * time.Millisecond
	for n.raft.State() == raft.Leader {
		select {
		case <-n.shutdownCh:
			return
		default:
		}
		err := n.Barrier(context.Background())
		if err == nil {
			term := n.raft.CurrentTerm()
			var res fsm.Result
			res, err = n.Apply(context.Background(), fmt.Sprintf("claim/%s/%d", n.cfg.NodeID, term),
				fsm.ClaimEpoch{LeaderID: n.cfg.NodeID, Term: term, At: n.cfg.Now()})
			if err == nil {
				n.epoch.Store(res.Epoch)
				n.claimedTerm = term
				n.claimed.Store(true)
				n.logger.Info("leadership claimed", "epoch", res.Epoch, "term", term)
				if n.cfg.OnLeader != nil {
					n.cfg.OnLeader(res.Epoch)
				}
				return
			}
			var ce *fsm.CommandError
			if errors.As(err, &ce) {
				n.logger.Error("epoch claim rejected", "error", err, "term", term)
				return
			}
		}
		n.logger.Warn("epoch claim failed, retrying", "error", err)
		select {
		case <-n.shutdownCh:
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 500*time.Millisecond)
	}
}

func (n *Node) endLeadership() {
	n.epoch.Store(0)
	if n.claimed.Swap(false) {
		n.logger.Info("leadership ended")
		if n.cfg.OnFollower != nil {
			n.cfg.OnFollower()
		}
	}
}

// Snapshot asks Raft to take a snapshot now (and compact the log). Any node may
// call it; it returns when the snapshot is on disk.
func (n *Node) Snapshot() error {
	if err := n.raft.Snapshot().Error(); err != nil {
		return fmt.Errorf("raftnode: snapshot: %w", err)
	}
	return nil
}
