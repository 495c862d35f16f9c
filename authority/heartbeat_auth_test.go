package authority

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/fsm"
	"github.com/rap-fabric/core/store"
)

// TestAuthRefreshSkipsUntilRevocation: the background refresh of the
// heartbeat route's certificate cache re-checks the cached serials only when
// a revocation moved the counter (migration 020), and then drops exactly the
// revoked ones: a revoked certificate, a revoked membership. A change that
// revokes nothing (a membership disabled, a certificate issued) leaves the
// counter alone. An entry whose check began before the counter was last read
// is not carried forward by a skipped refresh.
func TestAuthRefreshSkipsUntilRevocation(t *testing.T) {
	db, counter, cluster, nodes := hbDB(t, 4)
	ctx := context.Background()
	a, err := New(Config{NodeID: "a1"}, nil, fsm.New(fsm.Options{}), db)
	require.NoError(t, err)
	clock := &fakeClock{t: time.Now()}
	h := NewHeartbeats(a, HeartbeatConfig{AuthCacheTTL: time.Hour, Clock: clock.Now}, nil)
	now := clock.Now()
	serial := func(i int) string { return fmt.Sprintf("0a%02d", i) }
	fenced := func(f func(tx pgx.Tx) error) { require.NoError(t, db.Fenced(ctx, 1, f)) }
	seedCerts(t, db, cluster, nodes, serial, now)
	cacheCerts(h, cluster, nodes, serial, now)
	cached := func() map[string]time.Time {
		h.authMu.RLock()
		defer h.authMu.RUnlock()
		out := map[string]time.Time{}
		for _, e := range h.auth {
			out[e.p.Serial] = e.checked
		}
		return out
	}
	const check = "SELECT c.serial FROM node_certificates"
	refresh := func() (full int) {
		counter.reset()
		clock.Add(time.Second)
		h.refreshAuth(ctx)
		return counter.take(check)
	}

	require.Equal(t, 1, refresh(), "the first refresh checks every cached serial")
	require.Len(t, cached(), 4)
	before := cached()[serial(0)]
	require.Equal(t, 0, refresh(), "nothing revoked: no serial re-checked")
	require.Equal(t, 0, refresh())
	require.True(t, cached()[serial(0)].After(before), "a skipped refresh still carries the entries forward")
	require.Len(t, cached(), 4)

	// Changes that revoke nothing leave the counter alone.
	fenced(func(tx pgx.Tx) error { return store.SetMembershipStatus(ctx, tx, cluster, nodes[3], "disabled") })
	fenced(func(tx pgx.Tx) error { return store.SetMembershipStatus(ctx, tx, cluster, nodes[3], "active") })
	require.Equal(t, 0, refresh(), "disabling and re-enabling a membership revokes nothing")

	// A revoked certificate: the next refresh checks, and drops only it.
	fenced(func(tx pgx.Tx) error {
		_, err := store.RevokeIdentities(ctx, tx, cluster, nodes[1], "test")
		return err
	})
	require.Equal(t, 1, refresh(), "a certificate revoked: the serials are re-checked")
	require.NotContains(t, cached(), serial(1))
	require.Len(t, cached(), 3)
	require.Equal(t, 0, refresh())

	// A revoked membership: the same.
	fenced(func(tx pgx.Tx) error { return store.SetMembershipStatus(ctx, tx, cluster, nodes[2], "revoked") })
	require.Equal(t, 1, refresh(), "a membership revoked: the serials are re-checked")
	require.NotContains(t, cached(), serial(2))
	require.Len(t, cached(), 2)

	// An entry whose full check began before the counter was last read
	// (a request that raced the refresh) is not carried forward by a
	// skipped refresh: it ages out and takes the full check again.
	h.authRefreshMu.Lock()
	raced := h.revAt.Add(-time.Millisecond)
	h.authRefreshMu.Unlock()
	h.authMu.Lock()
	h.auth[sha256.Sum256([]byte("raced"))] = &authEntry{p: NodePrincipal{ClusterID: cluster, NodeID: nodes[0], Serial: "raced"}, notAfter: now.Add(time.Hour), checked: raced}
	h.authMu.Unlock()
	require.Equal(t, 0, refresh())
	require.Equal(t, raced, cached()["raced"], "a raced entry keeps its own check time")
	require.True(t, cached()[serial(0)].After(raced))

	// The database goes back one revocation (restored, or a replica
	// promoted after losing it), then a revocation brings the counter to the
	// value already read: its new stamp still makes the refresh check.
	_, err = db.Pool.Exec(ctx, `UPDATE auth_revocation_seq SET seq = seq - 1`)
	require.NoError(t, err)
	fenced(func(tx pgx.Tx) error {
		_, err := store.RevokeIdentities(ctx, tx, cluster, nodes[0], "test")
		return err
	})
	require.Equal(t, 1, refresh(), "a revocation after the database went back: the serials are re-checked")
	require.NotContains(t, cached(), serial(0))

	st := h.Stats()
	require.Equal(t, uint64(4), st.AuthRefreshes)
	require.Equal(t, uint64(5), st.AuthRefreshesSkipped)
}

// seedCerts gives each of nodes an identity (keys distinct per node) and a
// certificate serial(i) good for an hour from now, in one fenced transaction.
func seedCerts(tb testing.TB, db *store.DB, cluster string, nodes []string, serial func(int) string, now time.Time) {
	tb.Helper()
	ctx := context.Background()
	key := func(i int, kind byte) []byte {
		k := make([]byte, 32)
		binary.BigEndian.PutUint32(k, uint32(i))
		k[31] = kind
		return k
	}
	require.NoError(tb, db.Fenced(ctx, 1, func(tx pgx.Tx) error {
		for i, n := range nodes {
			id, err := store.InsertIdentity(ctx, tx, store.Identity{ID: store.NewID(), ClusterID: cluster, NodeID: n,
				PublicKey: key(i, 1), NoisePublicKey: key(i, 2)})
			if err != nil {
				return err
			}
			if err := store.InsertCertificate(ctx, tx, store.Certificate{Serial: serial(i), ClusterID: cluster, NodeID: n, IdentityID: id.ID,
				NotBefore: now.Add(-time.Minute), NotAfter: now.Add(time.Hour), DER: []byte{1}}); err != nil {
				return err
			}
		}
		return nil
	}))
}

// cacheCerts puts the certificates of seedCerts in h's cache, verified at now.
func cacheCerts(h *Heartbeats, cluster string, nodes []string, serial func(int) string, now time.Time) {
	h.authMu.Lock()
	defer h.authMu.Unlock()
	for i, n := range nodes {
		h.auth[sha256.Sum256([]byte(serial(i)))] = &authEntry{p: NodePrincipal{ClusterID: cluster, NodeID: n, Serial: serial(i)},
			notAfter: now.Add(time.Hour), checked: now}
	}
}

// TestAuthRevocationSeqTriggers: every way a certificate can stop being
// good for GoodCertificateSerials moves the counter, in the transaction that
// does it (a rolled-back revocation does not).
func TestAuthRevocationSeqTriggers(t *testing.T) {
	db, _, cluster, nodes := hbDB(t, 3)
	ctx := context.Background()
	stamps := map[string]bool{}
	seq := func() int64 {
		s, err := store.AuthRevocationSeq(ctx, db.Pool)
		require.NoError(t, err)
		stamps[s.Stamp] = true
		return s.Seq
	}
	seedCerts(t, db, cluster, nodes, func(i int) string { return fmt.Sprintf("0b%02d", i) }, time.Now())
	exec := func(stmt string) error {
		return db.Fenced(ctx, 1, func(tx pgx.Tx) error { _, err := tx.Exec(ctx, stmt); return err })
	}
	s0 := seq()
	require.Equal(t, int64(0), s0, "issuing certificates revokes nothing")

	// Rolled back: no move.
	err := db.Fenced(ctx, 1, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE node_certificates SET revoked_at = now() WHERE serial = '0b00'`); err != nil {
			return err
		}
		return fmt.Errorf("roll back")
	})
	require.Error(t, err)
	require.Equal(t, s0, seq())

	for i, stmt := range []string{
		`UPDATE node_certificates SET revoked_at = now() WHERE serial = '0b00'`,
		`UPDATE cluster_memberships SET membership_status = 'revoked' WHERE node_id = '` + nodes[1] + `'`,
		`DELETE FROM node_certificates WHERE serial = '0b02'`,
	} {
		require.NoError(t, exec(stmt), stmt)
		require.Equal(t, s0+int64(i)+1, seq(), stmt)
	}
	// Already revoked: revoking again is no new revocation.
	require.NoError(t, exec(`UPDATE node_certificates SET revoked_at = now() WHERE serial = '0b00'`))
	require.NoError(t, exec(`UPDATE cluster_memberships SET membership_status = 'revoked' WHERE node_id = '`+nodes[1]+`'`))
	require.Equal(t, s0+3, seq())
	require.Len(t, stamps, 4, "every move draws a new stamp")

	// A database that went back (restored, or a replica promoted after
	// losing the last transactions) and then moves again reaches a seq
	// already read, with a stamp never read.
	before, err := store.AuthRevocationSeq(ctx, db.Pool)
	require.NoError(t, err)
	_, err = db.Pool.Exec(ctx, `UPDATE auth_revocation_seq SET seq = seq - 1`)
	require.NoError(t, err)
	require.NoError(t, exec(`UPDATE cluster_memberships SET membership_status = 'revoked' WHERE node_id = '`+nodes[2]+`'`))
	after, err := store.AuthRevocationSeq(ctx, db.Pool)
	require.NoError(t, err)
	require.Equal(t, before.Seq, after.Seq)
	require.NotEqual(t, before.Stamp, after.Stamp)
}

// BenchmarkAuthRefresh measures one background refresh of the heartbeat
// route's certificate cache with AUTH_BENCH_NODES (default 10,000) cached
// certificates, two ways in the same run, alternating: "full" re-checks every
// serial in one statement (what every refresh did before migration 020, and
// what one does after a revocation; the baseline), "skipped" reads the
// revocation counter, finds it unmoved and carries the entries forward. It
// reports each one's mean time and skipped/full.
//
// go test -run '^$' -bench BenchmarkAuthRefresh -benchtime 20x ./authority/
func BenchmarkAuthRefresh(b *testing.B) {
	n := 10000
	if v, err := strconv.Atoi(os.Getenv("AUTH_BENCH_NODES")); err == nil && v > 0 {
		n = v
	}
	db, _, cluster, nodes := hbDB(b, n)
	ctx := context.Background()
	a, err := New(Config{NodeID: "a1"}, nil, fsm.New(fsm.Options{}), db)
	require.NoError(b, err)
	h := NewHeartbeats(a, HeartbeatConfig{AuthCacheTTL: time.Hour}, nil)
	now := time.Now()
	serial := func(i int) string { return fmt.Sprintf("%x", i+1) }
	seedCerts(b, db, cluster, nodes, serial, now)
	cacheCerts(h, cluster, nodes, serial, now)
	h.refreshAuth(ctx)
	var took [2]time.Duration // full, skipped
	run := func(full bool) {
		if full {
			h.authRefreshMu.Lock()
			h.revOK = false
			h.authRefreshMu.Unlock()
		}
		t0 := time.Now()
		h.refreshAuth(ctx)
		if full {
			took[0] += time.Since(t0)
		} else {
			took[1] += time.Since(t0)
		}
	}
	b.ResetTimer()
	for range b.N {
		run(true)
		run(false)
		run(false)
		run(true)
	}
	b.StopTimer()
	h.authMu.RLock()
	kept := len(h.auth)
	h.authMu.RUnlock()
	if kept != n {
		b.Fatalf("%d of %d cached certificates kept", kept, n)
	}
	st := h.Stats()
	if st.AuthRefreshes != uint64(2*b.N+1) || st.AuthRefreshesSkipped != uint64(2*b.N) {
		b.Fatalf("refreshes: %d full, %d skipped; want %d and %d", st.AuthRefreshes, st.AuthRefreshesSkipped, 2*b.N+1, 2*b.N)
	}
	full := took[0].Seconds() * 1000 / float64(2*b.N)
	skipped := took[1].Seconds() * 1000 / float64(2*b.N)
	b.ReportMetric(float64(n), "cached")
	b.ReportMetric(full, "full_refresh_ms")
	b.ReportMetric(skipped, "skipped_refresh_ms")
	b.ReportMetric(skipped/full, "skipped/full")
}
