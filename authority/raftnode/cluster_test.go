package raftnode_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/authority/raftnode"
	"github.com/rap-fabric/core/authority/raftnode/rafttest"
	"github.com/rap-fabric/core/domain"
	"github.com/rap-fabric/core/fsm"
)

const waitLeader = 10 * time.Second

var at = time.Date(2025, 5, 1, 0, 0, 0, 0, time.UTC)

func createCA(cluster, key string) fsm.CreateClusterCA {
	return fsm.CreateClusterCA{ClusterID: cluster, KeyID: key, PublicKey: []byte("pub-" + key),
		SealedPrivateKey: []byte("sealed-" + key), CertDER: []byte("cert-" + key), At: at}
}

func TestElectionApplyAndRedirect(t *testing.T) {
	c := rafttest.New(t, rafttest.Options{})
	leader := c.WaitLeader(waitLeader)
	ln := leader.Node()

	// Exactly one leader, and everyone agrees who it is.
	c.Eventually(5*time.Second, func() bool {
		for _, m := range c.Members {
			addr, id := m.Node().Leader()
			if id != leader.ID || addr != leader.Addr {
				return false
			}
		}
		return true
	}, "members disagree on the leader")
	for _, m := range c.Others(leader) {
		require.False(t, m.Node().IsLeader())
	}
	require.Equal(t, []uint64{ln.ClaimedEpoch()}, leader.Epochs())

	require.NoError(t, ln.VerifyLeader(t.Context()))
	res, err := ln.Apply(t.Context(), "ca-1", createCA("c1", "k1"))
	require.NoError(t, err)
	require.Equal(t, fsm.TypeCreateClusterCA, res.Type)
	again, err := ln.Apply(t.Context(), "ca-1", createCA("c1", "k1"))
	require.NoError(t, err)
	require.True(t, again.Replayed)
	require.Equal(t, res.Index, again.Index)
	_, err = ln.Apply(t.Context(), "", createCA("c1", "k2"))
	require.ErrorIs(t, err, fsm.ErrCAExists)

	// A follower redirects to the leader and proposes nothing.
	f := c.Others(leader)[0].Node()
	_, err = f.Apply(t.Context(), "ca-2", createCA("c2", "k1"))
	require.ErrorIs(t, err, raftnode.ErrNotLeader)
	var nle *raftnode.NotLeaderError
	require.True(t, errors.As(err, &nle))
	require.Equal(t, leader.ID, nle.LeaderID)
	require.Equal(t, leader.Addr, nle.LeaderAddr)
	require.ErrorIs(t, f.VerifyLeader(t.Context()), raftnode.ErrNotLeader)
	require.ErrorIs(t, f.AddVoter(t.Context(), "x", "127.0.0.1:1"), raftnode.ErrNotLeader)

	c.WaitConverged(5 * time.Second)
	for _, m := range c.Members {
		ca, ok := m.FSM().ClusterCA("c1")
		require.True(t, ok, m.ID)
		require.Equal(t, "k1", ca.Current.KeyID)
		_, ok = m.FSM().ClusterCA("c2")
		require.False(t, ok)
	}

	st := ln.Stats()
	require.Equal(t, "Leader", st.State)
	require.Equal(t, ln.ClaimedEpoch(), st.ClaimedEpoch)
	require.GreaterOrEqual(t, st.CommitIndex, res.Index)
	require.GreaterOrEqual(t, ln.ClaimedEpoch(), st.Term)
	fs := f.Stats()
	require.Equal(t, "Follower", fs.State)
	require.False(t, fs.LastContact.IsZero())
	require.Equal(t, uint64(0), fs.ClaimedEpoch)

	// Membership changes go through the leader.
	victim := c.Others(leader)[1]
	require.NoError(t, ln.RemoveServer(t.Context(), victim.ID))
	servers, err := ln.Servers()
	require.NoError(t, err)
	require.Len(t, servers, 2)
	require.NoError(t, ln.AddVoter(t.Context(), victim.ID, victim.Addr))
	servers, err = ln.Servers()
	require.NoError(t, err)
	require.Len(t, servers, 3)
	for _, s := range servers {
		require.Equal(t, fsm.SuffrageVoter, s.Suffrage)
	}
}

// R1 in miniature: the leader is cut off into a minority of one.
func TestLeaderIsolated(t *testing.T) {
	c := rafttest.New(t, rafttest.Options{})
	old := c.WaitLeader(waitLeader)
	oldEpoch := old.Node().ClaimedEpoch()
	_, err := old.Node().Apply(t.Context(), "m1", fsm.UpsertMember{ID: old.ID, RaftAddr: old.Addr, Suffrage: fsm.SuffrageVoter})
	require.NoError(t, err)

	c.Isolate(old)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	// Proposed at once, while it may still believe it leads: no quorum, and the
	// outcome is unknown when the entry already reached its log.
	start := time.Now()
	verr := make(chan error, 1)
	go func() { verr <- old.Node().VerifyLeader(ctx) }()
	_, err = old.Node().Apply(ctx, "p0", fsm.SetPartition{ClusterID: "c1", State: domain.PartitionFenced, Actor: "x", At: at})
	t.Logf("isolated leader: first Apply failed after %v: %v", time.Since(start), err)
	require.ErrorIs(t, err, raftnode.ErrNoQuorum)
	err = <-verr
	t.Logf("isolated leader: concurrent VerifyLeader failed after %v: %v", time.Since(start), err)
	require.ErrorIs(t, err, raftnode.ErrNoQuorum)
	require.NoError(t, ctx.Err())

	start = time.Now()
	err = old.Node().VerifyLeader(ctx)
	t.Logf("isolated leader: VerifyLeader failed after %v: %v", time.Since(start), err)
	require.ErrorIs(t, err, raftnode.ErrNoQuorum)
	require.NoError(t, ctx.Err(), "must fail on the node's own quorum deadline, not the caller's")

	start = time.Now()
	_, err = old.Node().Apply(ctx, "p1", fsm.SetPartition{ClusterID: "c1", State: domain.PartitionFenced, Actor: "x", At: at})
	t.Logf("isolated leader: Apply failed after %v: %v", time.Since(start), err)
	require.ErrorIs(t, err, raftnode.ErrNoQuorum)
	require.NotErrorIs(t, err, raftnode.ErrUnknownOutcome, "a node that knows it does not lead proposes nothing")

	// The majority elects a new leader with a higher epoch, and keeps working.
	majority := c.Others(old)
	nl := c.WaitLeaderAmong(waitLeader, majority...)
	require.Greater(t, nl.Node().ClaimedEpoch(), oldEpoch)
	_, err = nl.Node().Apply(t.Context(), "ca-1", createCA("c1", "k1"))
	require.NoError(t, err)
	require.False(t, old.Node().IsLeader())
	c.Eventually(5*time.Second, func() bool { return old.FollowerCalls() == 1 }, "OnFollower not called on the deposed leader")

	c.Heal()
	c.Eventually(waitLeader, func() bool {
		_, id := old.Node().Leader()
		return id == nl.ID && !old.Node().IsLeader()
	}, "old leader did not follow the new one")
	// A write after the heal reaches everyone, the old leader included.
	_, err = nl.Node().Apply(t.Context(), "ca-2", createCA("c2", "k1"))
	if errors.Is(err, raftnode.ErrNotLeader) || errors.Is(err, raftnode.ErrUnknownOutcome) {
		// The rejoining node's higher term may have forced one more election.
		nl = c.WaitLeader(waitLeader)
		_, err = nl.Node().Apply(t.Context(), "ca-2", createCA("c2", "k1"))
	}
	require.NoError(t, err)
	c.WaitConverged(10 * time.Second)
	_, ok := old.FSM().ClusterCA("c2")
	require.True(t, ok)
	require.Greater(t, old.FSM().AgreedEpoch(), oldEpoch)
	_, ok = old.FSM().Partition("c1")
	require.False(t, ok, "the write refused during isolation must not appear")
}

func TestRestartAllFromDisk(t *testing.T) {
	c := rafttest.New(t, rafttest.Options{Configure: func(m *rafttest.Member, cfg *raftnode.Config) {
		cfg.SnapshotThreshold, cfg.SnapshotInterval = 8, 50*time.Millisecond // exercise snapshot restore
	}})
	l := c.WaitLeader(waitLeader).Node()
	ctx := t.Context()
	_, err := l.Apply(ctx, "", createCA("c1", "k1"))
	require.NoError(t, err)
	_, err = l.Apply(ctx, "", fsm.RotateClusterCA(createCA("c1", "k2")))
	require.NoError(t, err)
	for _, m := range c.Members {
		_, err = l.Apply(ctx, "member/"+m.ID, fsm.UpsertMember{ID: m.ID, RaftAddr: m.Addr, Suffrage: fsm.SuffrageVoter})
		require.NoError(t, err)
	}
	for i := range 20 {
		_, err = l.Apply(ctx, fmt.Sprintf("p%d", i), fsm.SetPartition{ClusterID: "c1", State: domain.PartitionDegraded,
			Reason: fmt.Sprint(i), Actor: "owner", At: at})
		require.NoError(t, err)
	}
	require.NoError(t, l.Snapshot())
	c.WaitConverged(5 * time.Second)
	epochBefore := l.FSM().AgreedEpoch()
	caBefore, _ := l.FSM().ClusterCA("c1")
	membersBefore := l.FSM().Members()

	for _, m := range c.Members {
		c.Kill(m)
	}
	for _, m := range c.Members {
		c.Restart(m)
	}
	nl := c.WaitLeader(waitLeader)
	require.Greater(t, nl.Node().ClaimedEpoch(), epochBefore, "a new leadership claims a newer epoch")
	c.WaitConverged(10 * time.Second)
	for _, m := range c.Members {
		f := m.FSM()
		ca, ok := f.ClusterCA("c1")
		require.True(t, ok)
		require.Equal(t, caBefore, ca)
		require.Equal(t, membersBefore, f.Members())
		p, _ := f.Partition("c1")
		require.Equal(t, "19", p.Reason)
		require.Equal(t, nl.Node().ClaimedEpoch(), f.AgreedEpoch())
	}
	// Idempotency keys survived too.
	res, err := nl.Node().Apply(ctx, "p3", fsm.SetPartition{ClusterID: "c1", State: domain.PartitionDegraded,
		Reason: "3", Actor: "owner", At: at})
	require.NoError(t, err)
	require.True(t, res.Replayed)
}

func TestLeaderKilled(t *testing.T) {
	c := rafttest.New(t, rafttest.Options{})
	old := c.WaitLeader(waitLeader)
	_, err := old.Node().Apply(t.Context(), "", createCA("c1", "k1"))
	require.NoError(t, err)
	oldEpoch := old.Node().ClaimedEpoch()

	start := time.Now()
	c.Kill(old)
	require.Equal(t, 1, old.FollowerCalls(), "Shutdown ends the leadership")
	nl := c.WaitLeaderAmong(waitLeader, c.Others(old)...)
	_, err = nl.Node().Apply(t.Context(), "", fsm.RotateClusterCA(createCA("c1", "k2")))
	require.NoError(t, err)
	t.Logf("leader killed → first Apply on the new leader: %v", time.Since(start))
	require.Greater(t, nl.Node().ClaimedEpoch(), oldEpoch)

	c.Restart(old)
	c.WaitConverged(10 * time.Second)
	ca, _ := old.FSM().ClusterCA("c1")
	require.Equal(t, "k2", ca.Current.KeyID)
}
