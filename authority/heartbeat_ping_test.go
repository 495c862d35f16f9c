package authority

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/agentapi"
	"github.com/rap-fabric/core/fsm"
	"github.com/rap-fabric/core/store"
)

// TestLastPingKeptWithTheLatestHeartbeatOnly: a heartbeat's last_ping lands
// in node_heartbeat_latest (where GET /pings reads it), never in the
// heartbeat history; a newer ping replaces the older one; a bad ping is a
// typed error that stores nothing.
func TestLastPingKeptWithTheLatestHeartbeatOnly(t *testing.T) {
	db, _, cluster, nodes := hbDB(t, 3)
	clock := &fakeClock{t: time.Now().UTC()}
	a, err := New(Config{NodeID: "a1", Clock: clock.Now}, nil, fsm.New(fsm.Options{}), db)
	require.NoError(t, err)
	h := a.Heartbeats()
	ctx := context.Background()
	from, relay, to := nodes[0], nodes[1], nodes[2]
	first := &agentapi.PingReport{Destination: relay, Path: []string{from, relay}, RTTMs: 0.8, At: clock.Now().Add(-time.Second)}
	_, err = h.Ingest(NodePrincipal{ClusterID: cluster, NodeID: from}, HeartbeatInput{Seq: 1, Health: json.RawMessage(`{"status":"ok"}`), LastPing: first})
	require.NoError(t, err)
	_, err = h.Ingest(NodePrincipal{ClusterID: cluster, NodeID: to}, HeartbeatInput{Seq: 1})
	require.NoError(t, err)
	require.NoError(t, h.Flush(ctx))

	ps, err := a.LastPings(ctx, "hb", "", store.Page{})
	require.NoError(t, err)
	require.Len(t, ps, 1, "only the node that pinged has a ping")
	require.Equal(t, from, ps[0].NodeID)
	require.Equal(t, []string{from, relay}, ps[0].Path)
	require.Equal(t, 0.8, ps[0].RTTMs)
	require.Equal(t, 0, count(t, db, `SELECT count(*) FROM node_heartbeats WHERE health ? 'last_ping'`), "the history never holds pings")
	require.Equal(t, 1, count(t, db, `SELECT count(*) FROM node_heartbeat_latest WHERE node_id = $1 AND health->>'status' = 'ok'`, from), "the agent's health is kept beside it")

	// A newer ping through the relay replaces the first one.
	clock.Add(time.Second)
	second := &agentapi.PingReport{Destination: to, Path: []string{from, relay, to}, Reverse: []string{to, relay, from}, RTTMs: 2.5, At: clock.Now()}
	_, err = h.Ingest(NodePrincipal{ClusterID: cluster, NodeID: from}, HeartbeatInput{Seq: 2, LastPing: second})
	require.NoError(t, err)
	require.NoError(t, h.Flush(ctx))
	ps, err = a.LastPings(ctx, "hb", from, store.Page{})
	require.NoError(t, err)
	require.Len(t, ps, 1)
	require.Equal(t, []string{from, relay, to}, ps[0].Path)
	require.Equal(t, to, ps[0].Destination)
	require.True(t, second.At.Equal(ps[0].At))
	require.Equal(t, 2, count(t, db, `SELECT count(*) FROM node_heartbeats WHERE node_id = $1`, from))
	require.Equal(t, 0, count(t, db, `SELECT count(*) FROM node_heartbeats WHERE health ? 'last_ping'`))

	// Bad pings are refused with a typed error before anything is kept.
	for _, bad := range []*agentapi.PingReport{
		{Destination: to, Path: []string{from}, At: clock.Now()},
		{Destination: to, Path: []string{from, relay}, At: clock.Now()},
		{Destination: to, Path: []string{from, to}, RTTMs: -1, At: clock.Now()},
		{Destination: to, Path: []string{from, to}},
		{Destination: "", Path: []string{from, ""}, At: clock.Now()},
	} {
		_, err := h.Ingest(NodePrincipal{ClusterID: cluster, NodeID: from}, HeartbeatInput{Seq: 3, LastPing: bad})
		require.Equal(t, CodeInvalid, CodeOf(err), "%+v", bad)
	}
	require.Equal(t, 0, h.Stats().Pending)
}

// TestEpochRowsNameLeadersAndDurations: the epoch history comes from the
// fence's claims: each epoch names its leader, when it started, and (all but
// the current one) when it ended and how long it lasted.
func TestEpochRowsNameLeadersAndDurations(t *testing.T) {
	db, _, _, _ := hbDB(t, 0) // claims epoch 1 for "test"
	ctx := context.Background()
	for i, leader := range []string{"auth-2", "auth-3"} {
		ok, err := db.ClaimFence(ctx, uint64(i+2), leader)
		require.NoError(t, err)
		require.True(t, ok)
	}
	// Spread the claims so durations are known: epoch 1 at T, 2 at T+90s, 3 at T+150s.
	base := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	_, err := db.Pool.Exec(ctx, `UPDATE cluster_authority_terms SET claimed_at = $1::timestamptz + (CASE epoch WHEN 1 THEN 0 WHEN 2 THEN 90 ELSE 150 END) * interval '1 second'`, base)
	require.NoError(t, err)
	now := base.Add(200 * time.Second)
	a, err := New(Config{NodeID: "a1", Clock: func() time.Time { return now }}, nil, fsm.New(fsm.Options{}), db)
	require.NoError(t, err)
	es, err := a.Epochs(ctx, store.Page{})
	require.NoError(t, err)
	require.Len(t, es, 3)
	require.Equal(t, uint64(3), es[0].Epoch, "newest first")
	require.Equal(t, "auth-3", es[0].LeaderID)
	require.True(t, es[0].Current)
	require.Nil(t, es[0].EndedAt)
	require.Equal(t, 50.0, es[0].DurationSeconds, "the current epoch lasts until now")
	require.Equal(t, "auth-2", es[1].LeaderID)
	require.False(t, es[1].Current)
	require.NotNil(t, es[1].EndedAt)
	require.True(t, base.Add(150*time.Second).Equal(*es[1].EndedAt))
	require.Equal(t, 60.0, es[1].DurationSeconds)
	require.Equal(t, "test", es[2].LeaderID)
	require.Equal(t, 90.0, es[2].DurationSeconds)
	require.True(t, base.Equal(es[2].StartedAt))
}
