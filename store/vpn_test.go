package store_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/store"
)

// vpnSeed adds n member nodes to f's cluster and one VPN connection.
func vpnSeed(t *testing.T, db *store.DB, epoch uint64, f fixture, n int) (store.VPNConnection, []string) {
	t.Helper()
	ctx := context.Background()
	var c store.VPNConnection
	var nodes []string
	require.NoError(t, db.Fenced(ctx, epoch, func(tx pgx.Tx) error {
		for i := 0; i < n; i++ {
			nd, err := store.InsertNode(ctx, tx, store.Node{ID: store.NewID(), Name: "v" + string(rune('a'+i)), HostFingerprint: fp()})
			if err != nil {
				return err
			}
			if err := store.InsertMembership(ctx, tx, f.cluster.ID, nd.ID); err != nil {
				return err
			}
			nodes = append(nodes, nd.ID)
		}
		var err error
		c, err = store.InsertVPNConnection(ctx, tx, store.VPNConnection{ID: store.NewID(), ClusterID: f.cluster.ID, Name: "corp", DesiredState: "enabled",
			AddressFamily: "ipv4", ClientPrefixes: []string{"100.64.0.0/16"}, RemotePrefixes: []string{"10.0.0.0/8"}, DNSServers: []string{"10.0.0.53"},
			MTU: 1400, CredentialRef: "vault:kv/vpn/corp", LeaseTTLSeconds: 10, CreatedBy: "test"})
		return err
	}))
	return c, nodes
}

func TestVPNConnectionRoundTripAndConstraints(t *testing.T) {
	db := openDB(t)
	ctx := context.Background()
	claim(t, db, 2)
	f := seed(t, db, 2)
	c, nodes := vpnSeed(t, db, 2, f, 2)
	got, err := store.GetVPNConnection(ctx, db.Pool, f.cluster.ID, "corp")
	require.NoError(t, err)
	require.Equal(t, c.ID, got.ID)
	require.Equal(t, []string{"100.64.0.0/16"}, got.ClientPrefixes)
	require.Equal(t, []string{"10.0.0.0/8"}, got.RemotePrefixes)
	require.Equal(t, []string{"10.0.0.53"}, got.DNSServers)
	require.Equal(t, "vault:kv/vpn/corp", got.CredentialRef)

	// Outside a fenced transaction nothing is written.
	_, err = store.InsertVPNConnection(ctx, db.Pool, store.VPNConnection{ID: store.NewID(), ClusterID: f.cluster.ID, Name: "x", DesiredState: "enabled",
		AddressFamily: "ipv4", MTU: 1400, LeaseTTLSeconds: 10, CreatedBy: "test"})
	require.ErrorIs(t, err, store.ErrFenceRequired)

	// Prefixes are parsed by PostgreSQL too.
	err = db.Fenced(ctx, 2, func(tx pgx.Tx) error {
		_, err := store.InsertVPNConnection(ctx, tx, store.VPNConnection{ID: store.NewID(), ClusterID: f.cluster.ID, Name: "bad", DesiredState: "enabled",
			AddressFamily: "ipv4", ClientPrefixes: []string{"10.0.0.1/8"}, MTU: 1400, LeaseTTLSeconds: 10, CreatedBy: "test"})
		return err
	})
	require.Error(t, err)
	require.ErrorIs(t, err, store.ErrConstraint)

	// Allowed nodes: only members of the connection's cluster.
	var outsider string
	require.NoError(t, db.Fenced(ctx, 2, func(tx pgx.Tx) error {
		nd, err := store.InsertNode(ctx, tx, store.Node{ID: store.NewID(), Name: "west-1", HostFingerprint: fp()})
		if err != nil {
			return err
		}
		outsider = nd.ID
		return store.InsertMembership(ctx, tx, f.other.ID, nd.ID)
	}))
	err = db.Fenced(ctx, 2, func(tx pgx.Tx) error {
		return store.ReplaceVPNAllowedNodes(ctx, tx, f.cluster.ID, c.ID, []string{nodes[0], outsider}, "test")
	})
	require.ErrorIs(t, err, store.ErrConstraint)
	require.NoError(t, db.Fenced(ctx, 2, func(tx pgx.Tx) error {
		return store.ReplaceVPNAllowedNodes(ctx, tx, f.cluster.ID, c.ID, nodes, "test")
	}))
	require.NoError(t, db.Fenced(ctx, 2, func(tx pgx.Tx) error {
		return store.ReplaceVPNAllowedNodes(ctx, tx, f.cluster.ID, c.ID, nodes[1:], "test")
	}))
	allowed, err := store.ListVPNAllowedNodes(ctx, db.Pool, c.ID)
	require.NoError(t, err)
	require.Equal(t, nodes[1:], allowed)

	// A default route needs allow_default_route, in the database as well.
	err = db.Fenced(ctx, 2, func(tx pgx.Tx) error {
		_, err := store.InsertVPNRoutePolicy(ctx, tx, store.VPNRoutePolicy{ID: store.NewID(), ConnectionID: c.ID, ClusterID: f.cluster.ID, Name: "all",
			Prefixes: []string{"0.0.0.0/0"}, Priority: 100, CreatedBy: "test"})
		return err
	})
	require.ErrorIs(t, err, store.ErrConstraint)
	require.NoError(t, db.Fenced(ctx, 2, func(tx pgx.Tx) error {
		_, err := store.InsertVPNRoutePolicy(ctx, tx, store.VPNRoutePolicy{ID: store.NewID(), ConnectionID: c.ID, ClusterID: f.cluster.ID, Name: "all",
			Prefixes: []string{"0.0.0.0/0"}, Priority: 100, AllowDefaultRoute: true, CreatedBy: "test"})
		return err
	}))
}

// Exactly one of 20 concurrent acquirers wins, with no authority check at
// all: the partial unique index refuses every second active lease.
func TestVPNLeaseSingleActiveUnderConcurrentAcquirers(t *testing.T) {
	db := openDB(t)
	ctx := context.Background()
	claim(t, db, 3)
	f := seed(t, db, 3)
	c, nodes := vpnSeed(t, db, 3, f, 20)

	now := time.Now()
	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make([]error, len(nodes))
	for i, n := range nodes {
		wg.Add(1)
		go func(i int, n string) {
			defer wg.Done()
			<-start
			errs[i] = db.Fenced(ctx, 3, func(tx pgx.Tx) error {
				// No lock, no check: straight to the insert.
				_, err := store.InsertVPNLease(ctx, tx, store.VPNLease{ID: store.NewID(), ConnectionID: c.ID, ClusterID: f.cluster.ID, OwnerNodeID: n,
					AcquiredAt: now, ExpiresAt: now.Add(10 * time.Second)})
				return err
			})
		}(i, n)
	}
	close(start)
	wg.Wait()
	wins := 0
	for _, err := range errs {
		if err == nil {
			wins++
			continue
		}
		require.ErrorIs(t, err, store.ErrLeaseHeld)
		require.ErrorIs(t, err, store.ErrConflict)
	}
	require.Equal(t, 1, wins, "exactly one acquirer wins")
	var active int
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM vpn_connection_leases WHERE connection_id = $1 AND status = 'active'`, c.ID).Scan(&active))
	require.Equal(t, 1, active)
	l, err := store.ActiveVPNLease(ctx, db.Pool, c.ID)
	require.NoError(t, err)
	require.EqualValues(t, 1, l.Generation)
	require.EqualValues(t, 3, l.Epoch, "the lease carries the fence epoch that granted it")

	// Even raw SQL with the current epoch cannot add a second active lease.
	_, err = db.Pool.Exec(ctx, `BEGIN; SELECT rap_begin_fenced(3, 500, 500);
		INSERT INTO vpn_connection_leases (id, connection_id, cluster_id, owner_node_id, generation, status, epoch, acquired_at, renewed_at, expires_at)
		VALUES ('`+store.NewID()+`', '`+c.ID+`', '`+f.cluster.ID+`', '`+nodes[0]+`', 99, 'active', 3, now(), now(), now() + interval '1 minute'); COMMIT;`)
	require.ErrorIs(t, store.MapError(err), store.ErrConflict)
}

// A lease acquired or renewed under a deposed leader's epoch is refused by
// PostgreSQL; an ended lease never becomes active again.
func TestVPNLeaseStaleEpochAndHistory(t *testing.T) {
	db := openDB(t)
	ctx := context.Background()
	claim(t, db, 4)
	f := seed(t, db, 4)
	c, nodes := vpnSeed(t, db, 4, f, 2)
	now := time.Now()
	var l store.VPNLease
	require.NoError(t, db.Fenced(ctx, 4, func(tx pgx.Tx) error {
		var err error
		l, err = store.InsertVPNLease(ctx, tx, store.VPNLease{ID: store.NewID(), ConnectionID: c.ID, ClusterID: f.cluster.ID, OwnerNodeID: nodes[0],
			AcquiredAt: now, ExpiresAt: now.Add(5 * time.Second)})
		return err
	}))

	// A new leader claims epoch 5: the old leader (epoch 4) can neither renew
	// nor grant a lease.
	claim(t, db, 5)
	err := db.Fenced(ctx, 4, func(tx pgx.Tx) error {
		_, err := store.RenewVPNLease(ctx, tx, c.ID, nodes[0], l.Generation, now.Add(time.Second), now.Add(6*time.Second))
		return err
	})
	require.ErrorIs(t, err, store.ErrStaleEpoch)
	// Declaring the old epoch by hand in SQL does not help: the trigger refuses.
	_, err = db.Pool.Exec(ctx, `BEGIN; SELECT set_config('rap.fence_epoch', '4', true);
		UPDATE vpn_connection_leases SET status = 'fenced', ended_at = now() WHERE id = '`+l.ID+`';
		INSERT INTO vpn_connection_leases (id, connection_id, cluster_id, owner_node_id, generation, status, epoch, acquired_at, renewed_at, expires_at)
		VALUES ('`+store.NewID()+`', '`+c.ID+`', '`+f.cluster.ID+`', '`+nodes[1]+`', 2, 'active', 4, now(), now(), now() + interval '1 minute'); COMMIT;`)
	require.ErrorIs(t, store.MapError(err), store.ErrStaleEpoch)
	cur, err := store.ActiveVPNLease(ctx, db.Pool, c.ID)
	require.NoError(t, err)
	require.Equal(t, nodes[0], cur.OwnerNodeID)
	require.EqualValues(t, 4, cur.Epoch)

	// The new epoch renews it; the epoch column follows.
	require.NoError(t, db.Fenced(ctx, 5, func(tx pgx.Tx) error {
		l, err = store.RenewVPNLease(ctx, tx, c.ID, nodes[0], l.Generation, now.Add(time.Second), now.Add(6*time.Second))
		return err
	}))
	require.EqualValues(t, 5, l.Epoch)

	// A renewal after the expiry is refused; the reclaimer lists it.
	err = db.Fenced(ctx, 5, func(tx pgx.Tx) error {
		_, err := store.RenewVPNLease(ctx, tx, c.ID, nodes[0], l.Generation, now.Add(7*time.Second), now.Add(12*time.Second))
		return err
	})
	require.ErrorIs(t, err, store.ErrLeaseNotActive)
	exp, err := store.ExpiredVPNLeases(ctx, db.Pool, now.Add(7*time.Second), 10)
	require.NoError(t, err)
	require.Len(t, exp, 1)
	require.NoError(t, db.Fenced(ctx, 5, func(tx pgx.Tx) error {
		_, err := store.EndVPNLease(ctx, tx, c.ID, l.Generation, "expired", l.ExpiresAt, "missed renewals", "system")
		return err
	}))
	// Ending twice: no active lease of that generation.
	err = db.Fenced(ctx, 5, func(tx pgx.Tx) error {
		_, err := store.EndVPNLease(ctx, tx, c.ID, l.Generation, "released", now, "", "x")
		return err
	})
	require.ErrorIs(t, err, store.ErrLeaseNotActive)
	// An ended lease is never revived, even by raw SQL under the current epoch.
	_, err = db.Pool.Exec(ctx, `BEGIN; SELECT rap_begin_fenced(5, 500, 500);
		UPDATE vpn_connection_leases SET status = 'active', ended_at = NULL WHERE id = '`+l.ID+`'; COMMIT;`)
	require.ErrorIs(t, store.MapError(err), store.ErrConstraint)
	// And history is kept.
	_, err = db.Pool.Exec(ctx, `BEGIN; SELECT rap_begin_fenced(5, 500, 500); DELETE FROM vpn_connection_leases WHERE id = '`+l.ID+`'; COMMIT;`)
	require.ErrorIs(t, store.MapError(err), store.ErrAppendOnly)

	// The next lease gets the next generation.
	require.NoError(t, db.Fenced(ctx, 5, func(tx pgx.Tx) error {
		l2, err := store.InsertVPNLease(ctx, tx, store.VPNLease{ID: store.NewID(), ConnectionID: c.ID, ClusterID: f.cluster.ID, OwnerNodeID: nodes[1],
			AcquiredAt: now.Add(8 * time.Second), ExpiresAt: now.Add(18 * time.Second)})
		require.EqualValues(t, 2, l2.Generation)
		return err
	}))
	hist, err := store.ListVPNLeases(ctx, db.Pool, c.ID, store.Page{})
	require.NoError(t, err)
	require.Len(t, hist, 2)
	require.Equal(t, "active", hist[0].Status)
	require.Equal(t, "expired", hist[1].Status)
}

func TestVPNStatusReports(t *testing.T) {
	db := openDB(t)
	ctx := context.Background()
	claim(t, db, 2)
	f := seed(t, db, 2)
	c, nodes := vpnSeed(t, db, 2, f, 1)
	now := time.Now()
	rep := store.VPNStatusReport{ClusterID: f.cluster.ID, ConnectionID: c.ID, NodeID: nodes[0], Status: "lease_required", ReceivedAt: now}
	prev, err := store.RecordVPNStatus(ctx, db.Pool, rep)
	require.NoError(t, err)
	require.Equal(t, "", prev)
	rep.Status, rep.ReceivedAt, rep.LeaseGeneration = "assigned", now.Add(time.Second), 1
	prev, err = store.RecordVPNStatus(ctx, db.Pool, rep)
	require.NoError(t, err)
	require.Equal(t, "lease_required", prev)
	rep.Status = "running"
	_, err = store.RecordVPNStatus(ctx, db.Pool, rep)
	require.ErrorIs(t, err, store.ErrConstraint, "the database refuses an unknown status too")
	latest, err := store.ListVPNStatusLatest(ctx, db.Pool, c.ID)
	require.NoError(t, err)
	require.Len(t, latest, 1)
	require.Equal(t, "assigned", latest[0].Status)
	require.EqualValues(t, 1, latest[0].LeaseGeneration)
	var n int
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM vpn_assignment_status_reports WHERE connection_id = $1`, c.ID).Scan(&n))
	require.Equal(t, 2, n)
}
