package daemon_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/internal/authtest"
	"github.com/rap-fabric/core/snapshot"
)

// TestLongPollWakesAcrossLostListen: a long poll waits for the 'rap_snapshot'
// notification (no periodic re-read while the authority LISTENs: an idle
// 7 s poll reads PostgreSQL exactly once, where the former 5 s re-read made
// it two), so losing
// the LISTEN connection must wake it: a poll opened on a follower before its
// LISTEN connection is killed still returns the change published right after,
// within 3 s (the old 5 s re-read, or a waiter left asleep until its 20 s
// deadline, fails this), and once every authority LISTENs again a change
// wakes a new poll as promptly.
func TestLongPollWakesAcrossLostListen(t *testing.T) {
	g := authtest.New(t, 3)
	ctx := context.Background()
	l := g.Leader(10 * time.Second)
	owner := g.Client(g.DS...)
	_, pin := mkClusterSnap(t, owner, "east")
	var tok struct {
		Token string `json:"token"`
	}
	require.NoError(t, owner.Do(ctx, http.MethodPost, "/v1/join-tokens", map[string]any{"cluster": "east", "max_uses": 1, "auto_approve": true,
		"allowed_roles": []string{"relay-node"}, "description": "long poll"}, &tok, nil))
	m1 := enrollSnapAgent(t, g, pin, tok.Token, "m1", []string{"can_route_mesh", "can_accept_node_ingress"})
	_, ok := m1.fetch(t, m1.c, 10)
	require.True(t, ok, "the base snapshot")
	require.NoError(t, owner.Do(ctx, http.MethodPost, "/v1/clusters/east/nodes/"+m1.nodeID+"/roles", map[string]any{"role": "relay-node"}, nil, nil))
	_, ok = m1.fetch(t, m1.c, 10)
	require.True(t, ok, "the mesh snapshot")

	db, err := pgx.Connect(ctx, g.DBURL)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close(context.Background()) })
	listeners := func() int {
		var n int
		require.NoError(t, db.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN rap_snapshot%'`).Scan(&n))
		return n
	}
	g.Eventually(10*time.Second, "every authority LISTENs", func() bool { return listeners() == 3 })

	follower := g.Followers(l)[0]
	fc := m1.client(t, follower.APIAddr())

	// An idle poll with LISTEN held: one read, however long it waits.
	reads := authtest.Metric(t, follower, "rap_snapshot_long_poll_reads_total")
	var none map[string]any
	start := time.Now()
	require.NoError(t, fc.Do(ctx, http.MethodGet, "/v1/agent/snapshot?after_version="+itoa(m1.applied)+"&wait=7", nil, &none, nil))
	require.Greater(t, time.Since(start), 6*time.Second, "nothing newer: the poll waited")
	require.Equal(t, reads+1, authtest.Metric(t, follower, "rap_snapshot_long_poll_reads_total"), "an idle long poll reads PostgreSQL once")
	type res struct {
		s   snapshot.Snapshot
		ok  bool
		err error
	}
	poll := func() chan res {
		got := make(chan res, 1)
		go func() {
			defer func() {
				if r := recover(); r != nil {
					got <- res{err: fmt.Errorf("%v", r)}
				}
			}()
			s, ok := m1.fetch(t, fc, 20)
			got <- res{s: s, ok: ok}
		}()
		time.Sleep(500 * time.Millisecond) // the poll is waiting on the follower
		return got
	}
	intent := func(name string) time.Time {
		require.NoError(t, owner.Do(ctx, http.MethodPost, "/v1/clusters/east/route-intents",
			map[string]any{"name": name, "source": "*", "destination": "*", "action": "allow"}, nil, nil))
		return time.Now()
	}
	expect := func(got chan res, name string, published time.Time) {
		t.Helper()
		select {
		case r := <-got:
			require.NoError(t, r.err)
			require.True(t, r.ok, "the poll returned a snapshot")
			require.Contains(t, string(r.s.Body.RoutePolicy), `"`+name+`"`, "the new route intent is in the signed route policy")
			require.Less(t, time.Since(published), 3*time.Second)
		case <-time.After(3*time.Second + time.Until(published)):
			t.Fatalf("the long poll did not return within 3 s of publishing %s", name)
		}
	}

	// Kill every LISTEN connection with a poll waiting, then publish.
	got := poll()
	var killed int
	require.NoError(t, db.QueryRow(ctx, `SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = current_database() AND query LIKE 'LISTEN rap_snapshot%') k`).Scan(&killed))
	require.Equal(t, 3, killed)
	expect(got, "after-kill", intent("after-kill"))

	// LISTEN is held again; a notification wakes the next poll.
	g.Eventually(10*time.Second, "every authority LISTENs again", func() bool { return listeners() == 3 })
	got = poll()
	expect(got, "relistened", intent("relistened"))
}
