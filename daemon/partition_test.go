package daemon_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/apiclient"
	"github.com/rap-fabric/core/authority"
	"github.com/rap-fabric/core/domain"
	"github.com/rap-fabric/core/internal/authtest"
	"github.com/rap-fabric/core/store"
)

// TestPartitionActions drives the owner's partition decisions on three
// authorities: transitions and their refusals, what each state refuses
// (admissions while split, every change but revocations while fenced), the
// state reaching the node in its signed snapshot, the record and history in
// PostgreSQL, idempotent retries, audit, other clusters untouched, and a
// minority that cannot decide anything.
func TestPartitionActions(t *testing.T) {
	g := authtest.New(t, 3)
	ctx := context.Background()
	g.Leader(10 * time.Second)
	owner := g.Client(g.DS...)
	cid, pin := mkClusterSnap(t, owner, "part")
	mkClusterSnap(t, owner, "other")
	var tok struct {
		ID    string `json:"id"`
		Token string `json:"token"`
	}
	require.NoError(t, owner.Do(ctx, http.MethodPost, "/v1/join-tokens", map[string]any{"cluster": "part", "max_uses": 5, "auto_approve": true, "allowed_roles": []string{"relay-node"}, "description": "partition"}, &tok, nil))
	n1 := enrollSnapAgent(t, g, pin, tok.Token, "p1", []string{"can_route_mesh", "can_accept_node_ingress"})
	s, ok := n1.fetch(t, n1.c, 10)
	require.True(t, ok)
	require.Empty(t, s.Body.Membership.AuthorityState, "a normal cluster says nothing")

	act := func(c *apiclient.Client, cluster, action, reason string, idem string) (authority.PartitionView, error) {
		var v authority.PartitionView
		var h map[string]string
		if idem != "" {
			h = map[string]string{"Idempotency-Key": idem}
		}
		err := c.Do(ctx, http.MethodPost, "/v1/clusters/"+cluster+"/partition/"+action, map[string]any{"reason": reason}, &v, h)
		return v, err
	}
	status := func(err error) int {
		var ae *apiclient.Error
		if errors.As(err, &ae) {
			return ae.Status
		}
		return 0
	}
	// The node's next snapshot carries the state (the record marks the
	// cluster's snapshots dirty).
	nodeSees := func(want domain.PartitionState) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for time.Now().Before(deadline) {
			if s, ok := n1.fetch(t, n1.c, 2); ok && s.Body.Membership.AuthorityState == want {
				return
			}
		}
		t.Fatalf("node never received authority_state %q", want)
	}
	everyAuthority := func(want domain.PartitionState) {
		t.Helper()
		g.Eventually(10*time.Second, "every authority agrees on "+string(want), func() bool {
			for _, d := range g.DS {
				if p, _ := d.FSM.Partition(cid); p.State != want {
					return false
				}
			}
			return true
		})
	}
	newToken := func(cluster string) error {
		return owner.Do(ctx, http.MethodPost, "/v1/join-tokens", map[string]any{"cluster": cluster, "max_uses": 1, "description": "x"}, nil, nil)
	}

	// Bad input and transitions that do not exist: typed errors, nothing moves.
	_, err := act(owner, "part", "split", "  ", "")
	require.Equal(t, "invalid_argument", apiCode(err))
	_, err = act(owner, "part", "promote", "nothing is split", "")
	require.Equal(t, "conflict", apiCode(err))
	require.Equal(t, http.StatusConflict, status(err))
	_, err = act(owner, "part", "recover", "nothing is fenced", "")
	require.Equal(t, "conflict", apiCode(err))
	_, err = act(owner, "nope", "split", "no such cluster", "")
	require.Equal(t, "not_found", apiCode(err))
	err = owner.Do(ctx, http.MethodPost, "/v1/clusters/part/partition/explode", map[string]any{"reason": "x"}, nil, nil)
	require.Error(t, err)
	var v authority.PartitionView
	require.NoError(t, owner.Do(ctx, http.MethodGet, "/v1/clusters/part/partition", nil, &v, nil))
	require.Equal(t, domain.PartitionNormal, v.State)
	require.Equal(t, "normal", v.Recorded)
	require.Empty(t, v.History)

	// split: admissions stop, routing-around changes go on.
	v, err = act(owner, "part", "split", "site B uplink down", "")
	require.NoError(t, err)
	require.Equal(t, domain.PartitionDegraded, v.State)
	require.Equal(t, "degraded", v.Recorded)
	require.Len(t, v.History, 1)
	require.Equal(t, "split", v.History[0].Action)
	require.Equal(t, "normal", v.History[0].FromState)
	require.Equal(t, "site B uplink down", v.History[0].Reason)
	everyAuthority(domain.PartitionDegraded)
	err = newToken("part")
	require.Equal(t, "cluster_split", apiCode(err), "err=%v", err)
	require.Equal(t, http.StatusConflict, status(err))
	require.NoError(t, newToken("other"), "another cluster is untouched")
	require.NoError(t, owner.Do(ctx, http.MethodPost, "/v1/clusters/part/nodes/"+n1.nodeID+"/roles", map[string]any{"role": "relay-node"}, nil, nil))
	nodeSees(domain.PartitionDegraded)

	// promote: admissions resume; merge: back to normal.
	v, err = act(owner, "part", "promote", "site A is the cluster for now", "")
	require.NoError(t, err)
	require.Equal(t, domain.PartitionPromoted, v.State)
	require.NoError(t, newToken("part"))
	nodeSees(domain.PartitionPromoted)
	v, err = act(owner, "part", "merge", "site B back", "")
	require.NoError(t, err)
	require.Equal(t, domain.PartitionNormal, v.State)
	nodeSees("")

	// fence, retried with the same Idempotency-Key: applied once.
	v, err = act(owner, "part", "fence", "suspected compromise", "fence-1")
	require.NoError(t, err)
	require.Equal(t, domain.PartitionFenced, v.State)
	again, err := act(owner, "part", "fence", "suspected compromise", "fence-1")
	require.NoError(t, err, "a retry with the same key answers, it does not conflict")
	require.Equal(t, domain.PartitionFenced, again.State)
	events, err := store.ListPartitionEvents(ctx, g.DS[0].DB.Pool, cid, store.Page{Limit: 100})
	require.NoError(t, err)
	require.Len(t, events, 4, "split, promote, merge, fence: the retry added nothing")
	everyAuthority(domain.PartitionFenced)
	nodeSees(domain.PartitionFenced)

	// Fenced: changes refused, revocations go on, other clusters untouched.
	err = owner.Do(ctx, http.MethodPost, "/v1/clusters/part/nodes/"+n1.nodeID+"/roles", map[string]any{"role": "core-mesh"}, nil, nil)
	require.Equal(t, "cluster_fenced", apiCode(err), "err=%v", err)
	require.Equal(t, http.StatusConflict, status(err))
	require.Equal(t, "cluster_fenced", apiCode(newToken("part")))
	require.Equal(t, "cluster_fenced", apiCode(owner.Do(ctx, http.MethodPost, "/v1/clusters/part/route-intents",
		map[string]any{"name": "x", "source": "*", "destination": "*", "action": "deny"}, nil, nil)))
	require.NoError(t, owner.Do(ctx, http.MethodPost, "/v1/join-tokens/"+tok.ID+"/revoke", nil, nil, nil), "revocation is never frozen")
	require.NoError(t, newToken("other"))
	_, err = act(owner, "part", "split", "cannot split a fenced cluster", "")
	require.Equal(t, "conflict", apiCode(err))

	// A minority decides nothing.
	old := g.Leader(10 * time.Second)
	g.Isolate(old)
	onlyOld, err := apiclient.New(apiclient.Options{Servers: []string{old.APIAddr()}, Token: g.Token, CAPin: g.Pin, MaxRedirects: -1})
	require.NoError(t, err)
	defer onlyOld.Close()
	_, err = act(onlyOld, "part", "recover", "from a minority", "")
	require.Contains(t, []string{"no_quorum", "not_leader"}, apiCode(err), "err=%v", err)
	g.Heal()
	g.Leader(10 * time.Second)
	everyAuthority(domain.PartitionFenced)

	// recover: changes work again.
	v, err = act(owner, "part", "recover", "investigated, clean", "")
	require.NoError(t, err)
	require.Equal(t, domain.PartitionNormal, v.State)
	require.Len(t, v.History, 5)
	require.NoError(t, owner.Do(ctx, http.MethodPost, "/v1/clusters/part/nodes/"+n1.nodeID+"/roles", map[string]any{"role": "core-mesh"}, nil, nil))
	nodeSees("")

	// Audit: every decision, and the refused change with its code.
	for _, a := range []string{"partition.split", "partition.promote", "partition.merge", "partition.fence", "partition.recover"} {
		evs, err := store.ListAudit(ctx, g.DS[0].DB.Pool, store.AuditFilter{ClusterID: cid, Action: a}, store.Page{Limit: 10})
		require.NoError(t, err)
		ok := false
		for _, e := range evs {
			ok = ok || e.Outcome == "ok"
		}
		require.True(t, ok, "%s audited", a)
	}
	evs, err := store.ListAudit(ctx, g.DS[0].DB.Pool, store.AuditFilter{ClusterID: cid, Action: "role.assign"}, store.Page{Limit: 50})
	require.NoError(t, err)
	refused := false
	for _, e := range evs {
		refused = refused || (e.Outcome == "failed" && strings.Contains(string(e.Details), "cluster_fenced"))
	}
	require.True(t, refused, "the refused role assignment is audited with its code")
}
