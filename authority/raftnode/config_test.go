package raftnode

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/fsm"
)

func TestConfigValidate(t *testing.T) {
	good := DefaultConfig()
	good.NodeID, good.BindAddr, good.DataDir, good.FSM = "a1", "127.0.0.1:0", t.TempDir(), fsm.New(fsm.Options{})
	require.NoError(t, good.Validate())

	tests := []struct {
		name   string
		mutate func(c *Config)
		want   []string
	}{
		{"missing basics", func(c *Config) { *c = DefaultConfig() }, []string{"NodeID", "DataDir", "FSM", "BindAddr"}},
		{"unspecified bind", func(c *Config) { c.BindAddr = "0.0.0.0:7000" }, []string{"AdvertiseAddr", "BindAddr"}},
		{"bad advertise", func(c *Config) { c.AdvertiseAddr = "nope" }, []string{"AdvertiseAddr"}},
		{"lease above heartbeat", func(c *Config) { c.LeaderLeaseTimeout = 2 * time.Second },
			[]string{"LeaderLeaseTimeout", "HeartbeatTimeout"}},
		{"election below heartbeat", func(c *Config) { c.ElectionTimeout = 500 * time.Millisecond },
			[]string{"ElectionTimeout", "HeartbeatTimeout"}},
		{"quorum below commit", func(c *Config) { c.QuorumTimeout = 10 * time.Millisecond },
			[]string{"QuorumTimeout", "CommitTimeout"}},
		{"zero knobs", func(c *Config) { c.SnapshotThreshold, c.SnapshotRetain, c.MaxPool = 0, 0, 0 },
			[]string{"SnapshotThreshold", "SnapshotRetain", "MaxPool"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := good
			tc.mutate(&c)
			err := c.Validate()
			require.ErrorIs(t, err, ErrInvalidConfig)
			for _, w := range tc.want {
				require.Contains(t, err.Error(), w)
			}
			_, err = New(c)
			require.ErrorIs(t, err, ErrInvalidConfig)
		})
	}
}

func TestNotLeaderError(t *testing.T) {
	var err error = &NotLeaderError{LeaderID: "a2", LeaderAddr: "127.0.0.1:9"}
	require.ErrorIs(t, err, ErrNotLeader)
	require.NotErrorIs(t, err, ErrNoQuorum)
	var nle *NotLeaderError
	require.True(t, errors.As(err, &nle))
	require.Contains(t, err.Error(), "127.0.0.1:9")
}

// A single node over real TCP (no StreamLayer): bootstrap, lead, claim an
// epoch, apply, refuse a second bootstrap, and come back from disk.
func TestSingleNodeTCP(t *testing.T) {
	dir := t.TempDir()
	var epochs []uint64
	leaderCh := make(chan uint64, 4)
	start := func() *Node {
		cfg := DefaultConfig()
		cfg.NodeID, cfg.BindAddr, cfg.DataDir, cfg.FSM = "solo", "127.0.0.1:0", dir, fsm.New(fsm.Options{})
		cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLeaseTimeout = 100*time.Millisecond, 100*time.Millisecond, 50*time.Millisecond
		cfg.OnLeader = func(e uint64) { leaderCh <- e }
		n, err := New(cfg)
		require.NoError(t, err)
		return n
	}
	n := start()
	require.NoError(t, n.Bootstrap([]Server{{ID: "solo", Address: n.Addr(), Suffrage: fsm.SuffrageVoter}}))
	select {
	case e := <-leaderCh:
		epochs = append(epochs, e)
	case <-time.After(10 * time.Second):
		t.Fatal("no leadership")
	}
	require.Equal(t, epochs[0], n.ClaimedEpoch())
	require.Equal(t, epochs[0], n.FSM().AgreedEpoch())
	res, err := n.Apply(t.Context(), "m1", fsm.UpsertMember{ID: "solo", RaftAddr: n.Addr(), Suffrage: fsm.SuffrageVoter})
	require.NoError(t, err)
	require.False(t, res.Replayed)
	_, err = n.Apply(t.Context(), "", fsm.RemoveMember{ID: "ghost"})
	require.ErrorIs(t, err, fsm.ErrUnknownMember)
	require.NoError(t, n.Snapshot())
	require.ErrorIs(t, n.Bootstrap(nil), ErrAlreadyBootstrapped)
	require.NoError(t, n.Shutdown())
	require.NoError(t, n.Shutdown())
	_, err = n.Apply(t.Context(), "", fsm.RemoveMember{ID: "x"})
	require.ErrorIs(t, err, ErrShutdown)

	n = start() // a new port: the single server's address is stale, but it is alone
	defer n.Shutdown()
	// The state is back from the snapshot before any election.
	_, ok := n.FSM().Member("solo")
	require.True(t, ok)
	require.Equal(t, epochs[0], n.FSM().AgreedEpoch())
}
