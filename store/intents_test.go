package store_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/store"
)

func TestRouteIntentsAndQoSConstraints(t *testing.T) {
	db := openDB(t)
	ctx := context.Background()
	claim(t, db, 1)
	f := seed(t, db, 1)
	intent := func(name, action string) store.RouteIntent {
		return store.RouteIntent{ID: store.NewID(), ClusterID: f.cluster.ID, Name: name, Source: "region:eu", Destination: "*", Action: action, Priority: 10, CreatedBy: "t"}
	}
	qos := func(name, class string) store.QoSPolicy {
		return store.QoSPolicy{ID: store.NewID(), ClusterID: f.cluster.ID, Name: name, TrafficClass: class, Priority: 5, MaxBandwidthKbps: 1000, LatencyTargetMs: 50, CreatedBy: "t"}
	}
	fenced := func(fn func(tx pgx.Tx) error) error { return db.Fenced(ctx, 1, fn) }

	// Outside the fence the database refuses both tables.
	_, err := store.InsertRouteIntent(ctx, db.Pool, intent("eu-out", "allow"))
	require.ErrorIs(t, err, store.ErrFenceRequired)
	_, err = store.InsertQoSPolicy(ctx, db.Pool, qos("voice", "interactive"))
	require.ErrorIs(t, err, store.ErrFenceRequired)

	// Bad values are refused by the database itself.
	for _, bad := range []store.RouteIntent{
		intent("eu-out", "drop"),
		func() store.RouteIntent { x := intent("eu-out", "allow"); x.Source = "galaxy:far"; return x }(),
		func() store.RouteIntent { x := intent("eu-out", "allow"); x.Destination = ""; return x }(),
		func() store.RouteIntent { x := intent("Bad Name", "allow"); return x }(),
		func() store.RouteIntent { x := intent("eu-out", "allow"); x.Priority = -1; return x }(),
	} {
		err := fenced(func(tx pgx.Tx) error { _, err := store.InsertRouteIntent(ctx, tx, bad); return err })
		require.ErrorIs(t, err, store.ErrConstraint, "%+v", bad)
	}
	for _, bad := range []store.QoSPolicy{
		qos("voice", "platinum"),
		func() store.QoSPolicy { x := qos("voice", "bulk"); x.MaxBandwidthKbps = -1; return x }(),
		func() store.QoSPolicy { x := qos("voice", "bulk"); x.LatencyTargetMs = -5; return x }(),
	} {
		err := fenced(func(tx pgx.Tx) error { _, err := store.InsertQoSPolicy(ctx, tx, bad); return err })
		require.ErrorIs(t, err, store.ErrConstraint, "%+v", bad)
	}

	// Clear the marks so far, then check that the new tables mark the cluster.
	clearMarks := func() {
		ds, err := store.DirtyClusters(ctx, db.Pool)
		require.NoError(t, err)
		for _, d := range ds {
			require.NoError(t, store.ClearDirty(ctx, db.Pool, d))
		}
	}
	expect := func(reason string) {
		t.Helper()
		ds, err := store.DirtyClusters(ctx, db.Pool)
		require.NoError(t, err)
		require.Len(t, ds, 1)
		require.Equal(t, f.cluster.ID, ds[0].ClusterID)
		require.Equal(t, reason, ds[0].Reason)
		clearMarks()
	}
	clearMarks()

	var ri store.RouteIntent
	var qp store.QoSPolicy
	require.NoError(t, fenced(func(tx pgx.Tx) error {
		var err error
		ri, err = store.InsertRouteIntent(ctx, tx, intent("eu-out", "prefer-relay"))
		return err
	}))
	expect("cluster_route_intents")
	require.NoError(t, fenced(func(tx pgx.Tx) error {
		var err error
		qp, err = store.InsertQoSPolicy(ctx, tx, qos("voice", "interactive"))
		return err
	}))
	expect("qos_policies")

	// Names are unique per cluster.
	err = fenced(func(tx pgx.Tx) error {
		_, err := store.InsertRouteIntent(ctx, tx, intent("eu-out", "deny"))
		return err
	})
	require.ErrorIs(t, err, store.ErrConflict)

	is, err := store.ListRouteIntents(ctx, db.Pool, f.cluster.ID, store.Page{})
	require.NoError(t, err)
	require.Len(t, is, 1)
	require.Equal(t, "prefer-relay", is[0].Action)
	qs, err := store.AllQoSPolicies(ctx, db.Pool, f.cluster.ID)
	require.NoError(t, err)
	require.Len(t, qs, 1)
	require.EqualValues(t, 1000, qs[0].MaxBandwidthKbps)
	other, err := store.AllRouteIntents(ctx, db.Pool, f.other.ID)
	require.NoError(t, err)
	require.Empty(t, other)

	// Deletes are fenced too, scoped to the cluster, and mark it.
	_, err = store.DeleteRouteIntent(ctx, db.Pool, f.cluster.ID, ri.ID)
	require.ErrorIs(t, err, store.ErrFenceRequired)
	err = fenced(func(tx pgx.Tx) error { _, err := store.DeleteRouteIntent(ctx, tx, f.other.ID, ri.ID); return err })
	require.ErrorIs(t, err, store.ErrNotFound)
	require.NoError(t, fenced(func(tx pgx.Tx) error { _, err := store.DeleteRouteIntent(ctx, tx, f.cluster.ID, ri.ID); return err }))
	expect("cluster_route_intents")
	require.NoError(t, fenced(func(tx pgx.Tx) error { _, err := store.DeleteQoSPolicy(ctx, tx, f.cluster.ID, qp.ID); return err }))
	expect("qos_policies")
	err = fenced(func(tx pgx.Tx) error {
		_, err := store.DeleteQoSPolicy(ctx, tx, f.cluster.ID, "not-a-uuid")
		return err
	})
	require.ErrorIs(t, err, store.ErrNotFound)
}
