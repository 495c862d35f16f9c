package raftnode

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/rap-fabric/core/fsm"
)

// Config configures a Node. Start from DefaultConfig; New calls Validate.
type Config struct {
	// NodeID is this member's Raft server id. Required.
	NodeID string
	// BindAddr is the TCP address the Raft transport listens on ("host:port").
	// Required unless StreamLayer is set.
	BindAddr string
	// AdvertiseAddr is the address peers dial; empty means BindAddr, which must
	// then name a concrete (not unspecified) IP.
	AdvertiseAddr string
	// DataDir holds raft.db (bolt log and stable store) and snapshots/. Required.
	DataDir string

	// HeartbeatTimeout, ElectionTimeout, LeaderLeaseTimeout and CommitTimeout
	// are hashicorp/raft's timing knobs (see raft.Config). LeaderLeaseTimeout
	// bounds how long an isolated leader keeps believing it leads.
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	CommitTimeout      time.Duration
	// SnapshotInterval is how often Raft checks whether to snapshot;
	// SnapshotThreshold is how many new log entries trigger one.
	SnapshotInterval  time.Duration
	SnapshotThreshold uint64
	// SnapshotRetain is how many snapshots stay on disk.
	SnapshotRetain int

	// QuorumTimeout is how long Apply, VerifyLeader, Barrier and membership
	// changes wait for a quorum before failing with ErrNoQuorum (a caller's
	// context may shorten it).
	QuorumTimeout time.Duration
	// MaxPool is the number of pooled TCP connections per peer; TransportTimeout
	// is the transport's I/O deadline.
	MaxPool          int
	TransportTimeout time.Duration

	// Logger receives Raft's and the node's logs. Nil means an Info logger on
	// stderr named "raft".
	Logger hclog.Logger
	// FSM is the state machine. Required.
	FSM *fsm.FSM
	// StreamLayer, when set, replaces the TCP listener/dialer (tests wrap one to
	// inject partitions); BindAddr is then ignored. Nil in production.
	StreamLayer raft.StreamLayer
	// Now is the clock stamped into ClaimEpoch commands. Nil means time.Now.
	Now func() time.Time

	// OnLeader is called after this node became leader, ran a Barrier and
	// committed a ClaimEpoch; epoch is the claimed authority epoch. The caller
	// claims the PostgreSQL fence with it. Calls to OnLeader and OnFollower come
	// from one goroutine, in order, never concurrently; they must not call
	// Node.Shutdown (it waits for that goroutine) and should return promptly.
	// Nil is allowed.
	OnLeader func(epoch uint64)
	// OnFollower is called once after each OnLeader, when that leadership ends
	// (step-down, loss of quorum, or Shutdown). Nil is allowed.
	OnFollower func()
}

// DefaultConfig returns production defaults: hashicorp/raft's 1 s heartbeat
// and election timeouts, a 500 ms leader lease, and a 1.5 s quorum deadline.
// NodeID, BindAddr, DataDir and FSM must still be set.
func DefaultConfig() Config {
	return Config{
		HeartbeatTimeout:   time.Second,
		ElectionTimeout:    time.Second,
		LeaderLeaseTimeout: 500 * time.Millisecond,
		CommitTimeout:      50 * time.Millisecond,
		SnapshotInterval:   2 * time.Minute,
		SnapshotThreshold:  8192,
		SnapshotRetain:     2,
		QuorumTimeout:      1500 * time.Millisecond,
		MaxPool:            3,
		TransportTimeout:   10 * time.Second,
	}
}

// Validate reports every problem, naming the fields involved.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.NodeID == "" {
		bad("NodeID is required")
	}
	if c.DataDir == "" {
		bad("DataDir is required")
	}
	if c.FSM == nil {
		bad("FSM is required")
	}
	if c.StreamLayer == nil {
		if c.BindAddr == "" {
			bad("BindAddr is required when StreamLayer is nil")
		} else if host, _, err := net.SplitHostPort(c.BindAddr); err != nil {
			bad("BindAddr %q: %v", c.BindAddr, err)
		} else if c.AdvertiseAddr == "" {
			if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
				bad("AdvertiseAddr is required when BindAddr %q has no concrete IP", c.BindAddr)
			}
		}
		if c.AdvertiseAddr != "" {
			if _, err := net.ResolveTCPAddr("tcp", c.AdvertiseAddr); err != nil {
				bad("AdvertiseAddr %q: %v", c.AdvertiseAddr, err)
			}
		}
	}
	min := func(name string, d, m time.Duration) {
		if d < m {
			bad("%s (%v) must be at least %v", name, d, m)
		}
	}
	min("HeartbeatTimeout", c.HeartbeatTimeout, 5*time.Millisecond)
	min("ElectionTimeout", c.ElectionTimeout, 5*time.Millisecond)
	min("LeaderLeaseTimeout", c.LeaderLeaseTimeout, 5*time.Millisecond)
	min("CommitTimeout", c.CommitTimeout, time.Millisecond)
	min("SnapshotInterval", c.SnapshotInterval, 5*time.Millisecond)
	min("QuorumTimeout", c.QuorumTimeout, time.Millisecond)
	min("TransportTimeout", c.TransportTimeout, time.Millisecond)
	if c.LeaderLeaseTimeout > c.HeartbeatTimeout {
		bad("LeaderLeaseTimeout (%v) must not exceed HeartbeatTimeout (%v)", c.LeaderLeaseTimeout, c.HeartbeatTimeout)
	}
	if c.ElectionTimeout < c.HeartbeatTimeout {
		bad("ElectionTimeout (%v) must not be below HeartbeatTimeout (%v)", c.ElectionTimeout, c.HeartbeatTimeout)
	}
	if c.QuorumTimeout <= c.CommitTimeout {
		bad("QuorumTimeout (%v) must exceed CommitTimeout (%v)", c.QuorumTimeout, c.CommitTimeout)
	}
	if c.SnapshotThreshold == 0 {
		bad("SnapshotThreshold must be positive")
	}
	if c.SnapshotRetain < 1 {
		bad("SnapshotRetain must be at least 1")
	}
	if c.MaxPool < 1 {
		bad("MaxPool must be at least 1")
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrInvalidConfig, errors.Join(errs...))
}
