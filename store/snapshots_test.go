package store_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/store"
)

func snap(f fixture, v uint64) store.StoredSnapshot {
	now := time.Now().UTC().Truncate(time.Microsecond)
	return store.StoredSnapshot{ClusterID: f.cluster.ID, NodeID: f.node.ID, Version: v, Epoch: 1, KeyID: "k1", Scope: "base",
		Digest: make([]byte, 32), Signed: []byte{byte(v)}, IssuedAt: now, ExpiresAt: now.Add(time.Hour)}
}

func TestSnapshotsVersionsIncreaseAndPrune(t *testing.T) {
	db := openDB(t)
	ctx := context.Background()
	claim(t, db, 1)
	f := seed(t, db, 1)
	save := func(v uint64) error {
		return db.Fenced(ctx, 1, func(tx pgx.Tx) error {
			return store.SaveSnapshots(ctx, tx, f.cluster.ID, []store.StoredSnapshot{snap(f, v)})
		})
	}

	// Outside the fence the database refuses.
	require.ErrorIs(t, store.SaveSnapshots(ctx, db.Pool, f.cluster.ID, []store.StoredSnapshot{snap(f, 1)}), store.ErrFenceRequired)

	for _, v := range []uint64{1, 2, 5, 6, 9} {
		require.NoError(t, save(v))
	}
	// Equal or older versions are refused by the database.
	require.ErrorIs(t, save(9), store.ErrConstraint)
	require.ErrorIs(t, save(3), store.ErrConstraint)

	vs, err := store.ListSnapshotVersions(ctx, db.Pool, f.cluster.ID, f.node.ID)
	require.NoError(t, err)
	require.Len(t, vs, store.KeepSnapshots)
	require.EqualValues(t, []uint64{9, 6, 5}, []uint64{vs[0].Version, vs[1].Version, vs[2].Version})
	latest, err := store.LatestSnapshot(ctx, db.Pool, f.cluster.ID, f.node.ID)
	require.NoError(t, err)
	require.EqualValues(t, 9, latest.Version)
	require.Equal(t, []byte{9}, latest.Signed)
	heads, err := store.SnapshotHeads(ctx, db.Pool, f.cluster.ID)
	require.NoError(t, err)
	require.EqualValues(t, 9, heads[f.node.ID].Version)

	// Desired vs applied: no heartbeat yet, so the node lags.
	st, err := store.ListSnapshotStatus(ctx, db.Pool, f.cluster.ID, "", true, store.Page{})
	require.NoError(t, err)
	require.Len(t, st, 1)
	require.EqualValues(t, 9, st[0].DesiredVersion)
	require.Zero(t, st[0].AppliedVersion)
	require.True(t, st[0].Lagging)
}

func TestSnapshotDirtyMarksFromTriggers(t *testing.T) {
	db := openDB(t)
	ctx := context.Background()
	claim(t, db, 1)
	f := seed(t, db, 1) // the membership insert marks the cluster
	marks := func() map[string]store.DirtyCluster {
		ds, err := store.DirtyClusters(ctx, db.Pool)
		require.NoError(t, err)
		m := map[string]store.DirtyCluster{}
		for _, d := range ds {
			m[d.ClusterID] = d
		}
		return m
	}
	m := marks()
	require.Contains(t, m, f.cluster.ID)
	require.NotContains(t, m, f.other.ID, "only the changed cluster is marked")
	require.Equal(t, "cluster_memberships", m[f.cluster.ID].Reason)

	// Clearing with a stale generation keeps the mark; with the current one removes it.
	stale := m[f.cluster.ID]
	stale.Generation--
	require.NoError(t, store.ClearDirty(ctx, db.Pool, stale))
	require.Contains(t, marks(), f.cluster.ID)
	require.NoError(t, store.ClearDirty(ctx, db.Pool, m[f.cluster.ID]))
	require.Empty(t, marks())

	// Every snapshot input marks its cluster: roles, services (desired state
	// only), flags, policies, revocations (identities).
	fenced := func(fn func(tx pgx.Tx) error) { require.NoError(t, db.Fenced(ctx, 1, fn)) }
	expect := func(reason string) {
		t.Helper()
		m := marks()
		require.Contains(t, m, f.cluster.ID)
		require.Equal(t, reason, m[f.cluster.ID].Reason)
		require.NoError(t, store.ClearDirty(ctx, db.Pool, m[f.cluster.ID]))
	}
	fenced(func(tx pgx.Tx) error {
		_, err := store.InsertRoleAssignment(ctx, tx, store.RoleAssignment{ID: store.NewID(), ClusterID: f.cluster.ID, NodeID: f.node.ID, Role: "remote-access", AssignedBy: "t"})
		return err
	})
	expect("node_role_assignments")
	var svc store.ServiceInstance
	fenced(func(tx pgx.Tx) error {
		var err error
		svc, err = store.UpsertService(ctx, tx, store.ServiceInstance{ID: store.NewID(), ClusterID: f.cluster.ID, NodeID: f.node.ID, ServiceType: "remote-access",
			ServiceInstanceID: "default", DesiredState: "enabled", Config: json.RawMessage(`{"adapters":["rdp"]}`)})
		return err
	})
	expect("node_service_instances")
	// A reported-state update by an agent needs no fence and marks nothing.
	_, err := db.Pool.Exec(ctx, `UPDATE node_service_instances SET reported_state = 'running' WHERE id = $1`, svc.ID)
	require.NoError(t, err)
	require.Empty(t, marks())
	cid := f.cluster.ID
	fenced(func(tx pgx.Tx) error {
		_, err := store.UpsertTelemetryFlag(ctx, tx, store.TelemetryFlag{ID: store.NewID(), Scope: "cluster", ClusterID: &cid, Name: "trace", Enabled: true, UpdatedBy: "t"})
		return err
	})
	expect("telemetry_flags")
	fenced(func(tx pgx.Tx) error {
		_, err := store.SetClusterPolicy(ctx, tx, store.ClusterPolicy{ClusterID: cid, RoutePolicy: json.RawMessage(`{"max_hops":4}`), QoSPolicy: json.RawMessage(`{}`), EntryPolicies: json.RawMessage(`[]`)})
		return err
	})
	expect("cluster_snapshot_policies")
	fenced(func(tx pgx.Tx) error {
		return store.SetMembershipStatus(ctx, tx, f.cluster.ID, f.node.ID, "revoked")
	})
	expect("cluster_memberships")

	// A flag for an organization in every cluster marks every cluster.
	fenced(func(tx pgx.Tx) error {
		o, err := store.InsertOrganization(ctx, tx, store.Organization{ID: store.NewID(), Name: "Acme", Slug: "acme"})
		if err != nil {
			return err
		}
		_, err = store.UpsertTelemetryFlag(ctx, tx, store.TelemetryFlag{ID: store.NewID(), Scope: "organization", OrganizationID: &o.ID, Name: "trace", Enabled: true, UpdatedBy: "t"})
		return err
	})
	m = marks()
	require.Contains(t, m, f.cluster.ID)
	require.Contains(t, m, f.other.ID)

	// The flag shape is checked by the database.
	err = db.Fenced(ctx, 1, func(tx pgx.Tx) error {
		_, err := store.UpsertTelemetryFlag(ctx, tx, store.TelemetryFlag{ID: store.NewID(), Scope: "node", ClusterID: &cid, Name: "trace", Enabled: true, UpdatedBy: "t"})
		return err
	})
	require.ErrorIs(t, err, store.ErrConstraint)
}

// TestLatestSnapshotUsesPrimaryKey: every long poll reads a node's newest
// snapshot, so the reads must go through the primary key. With sequential
// scans disabled a usable index is taken; the former "cluster_id::text = $1"
// form could only scan (10,000 agents: 30,000 rows read per poll).
func TestLatestSnapshotUsesPrimaryKey(t *testing.T) {
	db := openDB(t)
	ctx := context.Background()
	claim(t, db, 1)
	f := seed(t, db, 1)
	for _, v := range []uint64{1, 2} {
		require.NoError(t, db.Fenced(ctx, 1, func(tx pgx.Tx) error {
			return store.SaveSnapshots(ctx, tx, f.cluster.ID, []store.StoredSnapshot{snap(f, v)})
		}))
	}
	plan := func(sql string, args ...any) string {
		tx, err := db.Pool.Begin(ctx)
		require.NoError(t, err)
		defer func() { _ = tx.Rollback(ctx) }()
		_, err = tx.Exec(ctx, `SET LOCAL enable_seqscan = off`)
		require.NoError(t, err)
		rows, err := tx.Query(ctx, `EXPLAIN `+sql, args...)
		require.NoError(t, err)
		var out string
		for rows.Next() {
			var line string
			require.NoError(t, rows.Scan(&line))
			out += line + "\n"
		}
		require.NoError(t, rows.Err())
		return out
	}
	for _, p := range []string{plan(store.LatestSnapshotSQL, f.cluster.ID, f.node.ID), plan(store.LatestSnapshotsSQL, f.cluster.ID, []string{f.node.ID})} {
		require.NotContains(t, p, "Seq Scan", p)
		require.Contains(t, p, "node_config_snapshots_pkey", p)
	}

	s, err := store.LatestSnapshot(ctx, db.Pool, f.cluster.ID, f.node.ID)
	require.NoError(t, err)
	require.Equal(t, uint64(2), s.Version)
	ss, err := store.LatestSnapshots(ctx, db.Pool, f.cluster.ID, []string{f.node.ID, "not-a-uuid", strings.ToUpper(f.node.ID)})
	require.NoError(t, err)
	require.Len(t, ss, 1)
	require.Equal(t, uint64(2), ss[0].Version)
	// Ids the text comparison never matched are still not found, without a
	// cast error from PostgreSQL.
	for _, bad := range [][2]string{{f.cluster.ID, "x"}, {"x", f.node.ID}, {strings.ToUpper(f.cluster.ID), f.node.ID}, {f.cluster.ID, ""}} {
		_, err := store.LatestSnapshot(ctx, db.Pool, bad[0], bad[1])
		require.ErrorIs(t, err, store.ErrNotFound, "%q", bad)
	}
	ss, err = store.LatestSnapshots(ctx, db.Pool, "x", []string{f.node.ID})
	require.NoError(t, err)
	require.Empty(t, ss)
}

func TestIsCanonicalUUID(t *testing.T) {
	require.True(t, store.IsCanonicalUUID(store.NewID()))
	require.True(t, store.IsCanonicalUUID("00000000-0000-0000-0000-000000000000"))
	for _, s := range []string{"", "x", "0000000000000000000000000000000000000", "00000000-0000-0000-0000-00000000000G", "00000000-0000-0000-0000-00000000000A",
		"000000000-000-0000-0000-000000000000", "{00000000-0000-0000-0000-000000000000}", "00000000000000000000000000000000"} {
		require.False(t, store.IsCanonicalUUID(s), s)
	}
}

// A rebuild larger than one statement's part (2,500 nodes) is stored whole:
// every head advanced and every snapshot stored, in the caller's transaction.
func TestSaveSnapshotsInParts(t *testing.T) {
	db := openDB(t)
	ctx := context.Background()
	claim(t, db, 1)
	f := seed(t, db, 1)
	const n = 2500
	var ids []string
	require.NoError(t, db.Fenced(ctx, 1, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `INSERT INTO nodes (id, name, host_fingerprint)
			SELECT gen_random_uuid(), 'bulk-' || i, encode(sha256(i::text::bytea), 'hex') FROM generate_series(1, $1) i RETURNING id::text`, n)
		if err != nil {
			return err
		}
		if ids, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO cluster_memberships (cluster_id, node_id) SELECT $1, unnest($2::uuid[])`, f.cluster.ID, ids)
		return err
	}))
	save := func(v uint64) error {
		snaps := make([]store.StoredSnapshot, len(ids))
		for i, id := range ids {
			snaps[i] = snap(f, v)
			snaps[i].NodeID = id
		}
		return db.Fenced(ctx, 1, func(tx pgx.Tx) error { return store.SaveSnapshots(ctx, tx, f.cluster.ID, snaps) })
	}
	require.NoError(t, save(1))
	require.NoError(t, save(2))
	heads, err := store.SnapshotHeads(ctx, db.Pool, f.cluster.ID)
	require.NoError(t, err)
	require.Len(t, heads, n)
	for _, id := range ids {
		require.EqualValues(t, 2, heads[id].Version)
	}
	var stored int
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM node_config_snapshots WHERE cluster_id = $1`, f.cluster.ID).Scan(&stored))
	require.Equal(t, 2*n, stored)
	// A failed part fails the call, and the parts stored before it roll back
	// with the transaction.
	snaps := make([]store.StoredSnapshot, len(ids))
	for i, id := range ids {
		snaps[i] = snap(f, 3)
		snaps[i].NodeID = id
	}
	snaps[n-1].Version = 2 // not newer than the head: refused
	err = db.Fenced(ctx, 1, func(tx pgx.Tx) error { return store.SaveSnapshots(ctx, tx, f.cluster.ID, snaps) })
	require.ErrorIs(t, err, store.ErrConstraint)
	heads, err = store.SnapshotHeads(ctx, db.Pool, f.cluster.ID)
	require.NoError(t, err)
	require.EqualValues(t, 2, heads[ids[0]].Version)
}
