package authority

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/domain"
	"github.com/rap-fabric/core/fsm"
	"github.com/rap-fabric/core/internal/pgtest"
	"github.com/rap-fabric/core/store"
)

func TestDeriveHealth(t *testing.T) {
	t0 := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	cfg := HeartbeatConfig{LateAfter: 10 * time.Second, StaleAfter: time.Minute, OfflineAfter: 5 * time.Minute}
	for _, tc := range []struct {
		name string
		last time.Time
		now  time.Time
		want Health
	}{
		{"never", time.Time{}, t0, HealthUnknown},
		{"just now", t0, t0, HealthHealthy},
		{"clock skew: from the future", t0.Add(time.Second), t0, HealthHealthy},
		{"at the late threshold", t0, t0.Add(10 * time.Second), HealthHealthy},
		{"past the late threshold", t0, t0.Add(10*time.Second + time.Millisecond), HealthLate},
		{"at the stale threshold", t0, t0.Add(time.Minute), HealthLate},
		{"stale", t0, t0.Add(2 * time.Minute), HealthStale},
		{"at the offline threshold", t0, t0.Add(5 * time.Minute), HealthStale},
		{"offline", t0, t0.Add(time.Hour), HealthOffline},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, DeriveHealth(tc.last, tc.now, cfg))
		})
	}
	// Defaults: 15 s / 60 s / 5 min.
	require.Equal(t, HealthHealthy, DeriveHealth(t0, t0.Add(15*time.Second), HeartbeatConfig{}))
	require.Equal(t, HealthLate, DeriveHealth(t0, t0.Add(16*time.Second), HeartbeatConfig{}))
	require.Equal(t, HealthOffline, DeriveHealth(t0, t0.Add(6*time.Minute), HeartbeatConfig{}))
}

// fakeClock is an injectable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// stmtCounter counts the statements that reach PostgreSQL through a pool.
type stmtCounter struct {
	mu    sync.Mutex
	stmts []string
}

func (c *stmtCounter) add(sql string) {
	c.mu.Lock()
	c.stmts = append(c.stmts, strings.Join(strings.Fields(sql), " "))
	c.mu.Unlock()
}

func (c *stmtCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	c.add(d.SQL)
	return ctx
}
func (c *stmtCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}
func (c *stmtCounter) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	return ctx
}
func (c *stmtCounter) TraceBatchQuery(_ context.Context, _ *pgx.Conn, d pgx.TraceBatchQueryData) {
	c.add(d.SQL)
}
func (c *stmtCounter) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}
func (c *stmtCounter) TraceCopyFromStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceCopyFromStartData) context.Context {
	c.add("COPY " + d.TableName.Sanitize())
	return ctx
}
func (c *stmtCounter) TraceCopyFromEnd(context.Context, *pgx.Conn, pgx.TraceCopyFromEndData) {}

// appendStatements counts the append-log writes recorded: an INSERT from
// arrays (a small flush) or a binary COPY (a large one).
func (c *stmtCounter) appendStatements() int {
	return c.take("INSERT INTO node_heartbeats ") + c.take(`COPY "node_heartbeats"`)
}

// take returns how many recorded statements start with prefix.
func (c *stmtCounter) take(prefix string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, s := range c.stmts {
		if strings.HasPrefix(s, prefix) {
			n++
		}
	}
	return n
}

func (c *stmtCounter) reset() { c.mu.Lock(); c.stmts = nil; c.mu.Unlock() }

// hbDB is a migrated database with one cluster and n members, reached
// through a pool whose statements are counted.
func hbDB(t testing.TB, n int) (*store.DB, *stmtCounter, string, []string) {
	t.Helper()
	ctx := context.Background()
	url := pgtest.New(t)
	cfg, err := pgxpool.ParseConfig(url)
	require.NoError(t, err)
	counter := &stmtCounter{}
	cfg.ConnConfig.Tracer = counter
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	db := &store.DB{Pool: pool}
	ok, err := db.ClaimFence(ctx, 1, "test")
	require.NoError(t, err)
	require.True(t, ok)
	cluster := store.NewID()
	var nodes []string
	require.NoError(t, db.Fenced(ctx, 1, func(tx pgx.Tx) error {
		if _, err := store.InsertCluster(ctx, tx, store.Cluster{ID: cluster, Name: "hb", Slug: "hb", CACertDER: []byte{1}}); err != nil {
			return err
		}
		for i := 0; i < n; i++ {
			node, err := store.InsertNode(ctx, tx, store.Node{ID: store.NewID(), Name: fmt.Sprintf("n%d", i), HostFingerprint: strings.Repeat(fmt.Sprintf("%x", i%16), 64)})
			if err != nil {
				return err
			}
			if err := store.InsertMembership(ctx, tx, cluster, node.ID); err != nil {
				return err
			}
			nodes = append(nodes, node.ID)
		}
		return nil
	}))
	counter.reset()
	return db, counter, cluster, nodes
}

func count(t *testing.T, db *store.DB, sql string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, db.Pool.QueryRow(context.Background(), sql, args...).Scan(&n))
	return n
}

func TestBatcherOneStatementPerFlush(t *testing.T) {
	db, counter, cluster, nodes := hbDB(t, 50)
	clock := &fakeClock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	h := NewHeartbeats(nil, HeartbeatConfig{Clock: clock.Now, MaxBatch: 1 << 20, Flushers: 1}, StoreHeartbeatWriter(db))
	ctx := context.Background()

	// 20 heartbeats from each of 50 nodes: 1,000 rows, one flush.
	for seq := 1; seq <= 20; seq++ {
		for i, n := range nodes {
			in := HeartbeatInput{Seq: int64(seq), AgentVersion: "v1", AppliedVersion: int64(seq), Health: json.RawMessage(`{"status":"ok"}`)}
			if seq == 1 {
				in.Facts = json.RawMessage(fmt.Sprintf(`{"hostname":"host-%d"}`, i))
			}
			ack, err := h.Ingest(NodePrincipal{ClusterID: cluster, NodeID: n, SourceAddr: "127.0.0.1"}, in)
			require.NoError(t, err)
			require.False(t, ack.NeedFacts, "facts came with the first heartbeat")
			clock.Add(time.Millisecond)
		}
	}
	require.NoError(t, h.Flush(ctx))
	require.Equal(t, 1, counter.take(`COPY "node_heartbeats"`), "one binary copy for 1,000 rows")
	require.Equal(t, 1, counter.take("INSERT INTO node_heartbeat_latest "), "one upsert for 50 memberships")
	require.Equal(t, 2, counter.take("begin")+counter.take("commit"), "in one transaction: %v", counter.stmts)
	require.Equal(t, 4, len(counter.stmts), "nothing else: %v", counter.stmts)
	require.Equal(t, 1000, count(t, db, `SELECT count(*) FROM node_heartbeats`))
	require.Equal(t, 50, count(t, db, `SELECT count(*) FROM node_heartbeat_latest WHERE seq = 20 AND applied_version = 20`))
	require.Equal(t, 1, count(t, db, `SELECT count(*) FROM node_heartbeat_latest WHERE node_id = $1 AND facts->>'hostname' = 'host-7'`, nodes[7]))
	st := h.Stats()
	require.Equal(t, uint64(1000), st.Flushed)
	require.Equal(t, uint64(1), st.Flushes)

	// A later flush without facts keeps the stored facts (the sentinel).
	counter.reset()
	for _, n := range nodes[:5] {
		_, err := h.Ingest(NodePrincipal{ClusterID: cluster, NodeID: n}, HeartbeatInput{Seq: 21})
		require.NoError(t, err)
	}
	require.NoError(t, h.Flush(ctx))
	require.Equal(t, 1, counter.take("INSERT INTO node_heartbeats "), "a small flush inserts from arrays")
	require.Equal(t, 2, len(counter.stmts), "in one round trip: %v", counter.stmts)
	require.Equal(t, 1, count(t, db, `SELECT count(*) FROM node_heartbeat_latest WHERE node_id = $1 AND seq = 21 AND facts->>'hostname' = 'host-3'`, nodes[3]))

	// Nothing pending: no statement at all.
	counter.reset()
	require.NoError(t, h.Flush(ctx))
	require.Empty(t, counter.stmts)
}

func TestBatcherRunFlushesByCountAndInterval(t *testing.T) {
	db, counter, cluster, nodes := hbDB(t, 10)
	var mu sync.Mutex
	var flushedRows int
	h := NewHeartbeats(nil, HeartbeatConfig{MaxBatch: 100, FlushInterval: 50 * time.Millisecond, AfterFlush: func(sent, received []time.Time, committed time.Time) {
		mu.Lock()
		flushedRows += len(received)
		mu.Unlock()
	}}, StoreHeartbeatWriter(db))
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { h.Run(stop); close(done) }()
	for seq := 1; seq <= 100; seq++ {
		for _, n := range nodes {
			_, err := h.Ingest(NodePrincipal{ClusterID: cluster, NodeID: n}, HeartbeatInput{Seq: int64(seq)})
			require.NoError(t, err)
		}
	}
	require.Eventually(t, func() bool { return h.Stats().Flushed == 1000 }, 10*time.Second, 10*time.Millisecond)
	close(stop)
	<-done
	st := h.Stats()
	appends := counter.appendStatements()
	require.Equal(t, int(st.Flushes), appends, "exactly one append statement per flush")
	require.Equal(t, int(st.Flushes), counter.take("INSERT INTO node_heartbeat_latest "), "exactly one upsert per flush")
	require.Less(t, appends, 1000/10, "batched: far fewer statements than heartbeats")
	require.Equal(t, 1000, count(t, db, `SELECT count(*) FROM node_heartbeats`))
	mu.Lock()
	require.Equal(t, 1000, flushedRows)
	mu.Unlock()
	t.Logf("1,000 heartbeats in %d flushes", appends)
}

type failingWriter struct {
	mu    sync.Mutex
	fail  bool
	rows  int
	calls int
}

func (w *failingWriter) WriteHeartbeats(_ context.Context, rows []store.HeartbeatRow, latest []store.LatestHeartbeat) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.calls++
	if w.fail {
		return errors.New("database down")
	}
	w.rows += len(rows)
	return nil
}

func TestBatcherKeepsRowsWhileTheDatabaseFails(t *testing.T) {
	w := &failingWriter{fail: true}
	h := NewHeartbeats(nil, HeartbeatConfig{MaxPending: 30}, w)
	for i := 0; i < 20; i++ {
		_, err := h.Ingest(NodePrincipal{ClusterID: "c", NodeID: "n"}, HeartbeatInput{Seq: int64(i)})
		require.NoError(t, err)
	}
	require.Error(t, h.Flush(context.Background()))
	require.Equal(t, 20, h.Stats().Pending)
	for i := 20; i < 40; i++ {
		_, err := h.Ingest(NodePrincipal{ClusterID: "c", NodeID: "n"}, HeartbeatInput{Seq: int64(i)})
		require.NoError(t, err)
	}
	st := h.Stats()
	require.Equal(t, 30, st.Pending, "bounded by MaxPending")
	require.Equal(t, uint64(10), st.Dropped)
	w.mu.Lock()
	w.fail = false
	w.mu.Unlock()
	require.NoError(t, h.Flush(context.Background()))
	require.Equal(t, 30, w.rows)
	require.Equal(t, 0, h.Stats().Pending)
}

func TestHeartbeatInputValidation(t *testing.T) {
	h := NewHeartbeats(nil, HeartbeatConfig{}, &failingWriter{})
	p := NodePrincipal{ClusterID: "c", NodeID: "n"}
	for _, in := range []HeartbeatInput{
		{State: "weird"},
		{Seq: -1},
		{Health: json.RawMessage(`[1]`)},
		{Services: json.RawMessage(`{}`)},
		{Facts: json.RawMessage(`"x"`)},
		{Capabilities: []domain.Capability{"can_fly"}},
		{Health: json.RawMessage(`{"x":"` + strings.Repeat("a", MaxHeartbeatHealthBytes) + `"}`)},
	} {
		_, err := h.Ingest(p, in)
		require.Error(t, err, "%+v", in)
	}
	ack, err := h.Ingest(p, HeartbeatInput{State: "degraded", Capabilities: []domain.Capability{"can_route_mesh"}})
	require.NoError(t, err)
	require.True(t, ack.NeedFacts)
}

func TestSweepDerivesAndAuditsHealthChanges(t *testing.T) {
	db, _, cluster, nodes := hbDB(t, 3)
	clock := &fakeClock{t: time.Now().UTC()}
	a, err := New(Config{NodeID: "a1", Clock: clock.Now}, nil, fsm.New(fsm.Options{}), db)
	require.NoError(t, err)
	h := NewHeartbeats(a, HeartbeatConfig{Clock: clock.Now, LateAfter: 10 * time.Second, StaleAfter: 30 * time.Second, OfflineAfter: time.Minute}, nil)
	ctx := context.Background()
	for _, n := range nodes {
		_, err := h.Ingest(NodePrincipal{ClusterID: cluster, NodeID: n}, HeartbeatInput{Seq: 1})
		require.NoError(t, err)
	}
	require.NoError(t, h.Flush(ctx))
	ch, err := h.Sweep(ctx)
	require.NoError(t, err)
	require.Empty(t, ch, "fresh heartbeats are healthy already")

	clock.Add(20 * time.Second)
	_, err = h.Ingest(NodePrincipal{ClusterID: cluster, NodeID: nodes[0]}, HeartbeatInput{Seq: 2}) // node 0 stays healthy
	require.NoError(t, err)
	require.NoError(t, h.Flush(ctx))
	ch, err = h.Sweep(ctx)
	require.NoError(t, err)
	require.Len(t, ch, 2)
	for _, c := range ch {
		require.Equal(t, HealthHealthy, c.From)
		require.Equal(t, HealthLate, c.To)
		require.NotEqual(t, nodes[0], c.NodeID)
	}
	ch, err = h.Sweep(ctx)
	require.NoError(t, err)
	require.Empty(t, ch, "a change is recorded and audited once")

	clock.Add(2 * time.Minute)
	ch, err = h.Sweep(ctx)
	require.NoError(t, err)
	require.Len(t, ch, 3)
	for _, c := range ch {
		require.Equal(t, HealthOffline, c.To)
	}
	evs, err := store.ListAudit(ctx, db.Pool, store.AuditFilter{Action: "node.health"}, store.Page{Limit: 100})
	require.NoError(t, err)
	require.Len(t, evs, 5)
	require.Equal(t, 3, count(t, db, `SELECT count(*) FROM node_heartbeat_latest WHERE derived_health = 'offline'`))

	// The node comes back: offline → healthy, audited.
	_, err = h.Ingest(NodePrincipal{ClusterID: cluster, NodeID: nodes[1]}, HeartbeatInput{Seq: 3})
	require.NoError(t, err)
	require.NoError(t, h.Flush(ctx))
	ch, err = h.Sweep(ctx)
	require.NoError(t, err)
	require.Equal(t, []HealthChange{{ClusterID: cluster, NodeID: nodes[1], From: HealthOffline, To: HealthHealthy, LastHeartbeat: ch[0].LastHeartbeat}}, ch)
}

func TestPruneDeletesOldRowsInBatches(t *testing.T) {
	db, counter, cluster, nodes := hbDB(t, 2)
	clock := &fakeClock{t: time.Now().UTC().Add(-3 * time.Hour)}
	a, err := New(Config{NodeID: "a1", Clock: clock.Now}, nil, fsm.New(fsm.Options{}), db)
	require.NoError(t, err)
	h := NewHeartbeats(a, HeartbeatConfig{Clock: clock.Now, Retention: time.Hour, RetentionBatch: 7}, nil)
	ctx := context.Background()
	for i := 0; i < 25; i++ {
		_, err := h.Ingest(NodePrincipal{ClusterID: cluster, NodeID: nodes[i%2]}, HeartbeatInput{Seq: int64(i)})
		require.NoError(t, err)
	}
	require.NoError(t, h.Flush(ctx))
	clock.Add(3 * time.Hour)
	for i := 0; i < 5; i++ {
		_, err := h.Ingest(NodePrincipal{ClusterID: cluster, NodeID: nodes[0]}, HeartbeatInput{Seq: int64(100 + i)})
		require.NoError(t, err)
	}
	require.NoError(t, h.Flush(ctx))
	counter.reset()
	n, err := h.Prune(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(25), n)
	require.Equal(t, 4, counter.take("DELETE FROM node_heartbeats"), "25 rows in batches of 7")
	require.Equal(t, 5, count(t, db, `SELECT count(*) FROM node_heartbeats`))
	require.Equal(t, 2, count(t, db, `SELECT count(*) FROM node_heartbeat_latest`), "latest state is not pruned")
}

// TestAuthCacheRefreshWhileServing runs cache hits on the heartbeat route
// while the background refresh moves the cached entries forward; under -race
// it fails if a request reads an entry the refresh writes (a CI run caught
// exactly that once).
func TestAuthCacheRefreshWhileServing(t *testing.T) {
	db, _, cluster, nodes := hbDB(t, 1)
	ctx := context.Background()
	a, err := New(Config{NodeID: "a1"}, nil, fsm.New(fsm.Options{}), db)
	require.NoError(t, err)
	h := NewHeartbeats(a, HeartbeatConfig{AuthCacheTTL: time.Hour}, nil)
	now := time.Now()
	require.NoError(t, db.Fenced(ctx, 1, func(tx pgx.Tx) error {
		id, err := store.InsertIdentity(ctx, tx, store.Identity{ID: store.NewID(), ClusterID: cluster, NodeID: nodes[0],
			PublicKey: make([]byte, 32), NoisePublicKey: make([]byte, 32)})
		if err != nil {
			return err
		}
		return store.InsertCertificate(ctx, tx, store.Certificate{Serial: "0a0b", ClusterID: cluster, NodeID: nodes[0], IdentityID: id.ID,
			NotBefore: now.Add(-time.Minute), NotAfter: now.Add(time.Hour), DER: []byte{1}})
	}))
	cert := &x509.Certificate{Raw: []byte("cached certificate"), NotAfter: now.Add(time.Hour)}
	key := sha256.Sum256(cert.Raw)
	h.auth[key] = &authEntry{p: NodePrincipal{ClusterID: cluster, NodeID: nodes[0], Serial: "0a0b"}, notAfter: cert.NotAfter, checked: now}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
				h.refreshAuth(ctx)
			}
		}
	}()
	for i := 0; i < 2000; i++ {
		p, err := h.Authenticate(ctx, cert, "192.0.2.1:1")
		require.NoError(t, err)
		require.Equal(t, nodes[0], p.NodeID)
		require.Equal(t, "192.0.2.1:1", p.SourceAddr)
	}
	close(stop)
	wg.Wait()
	require.Zero(t, h.authChecks.Load(), "every request was a cache hit")
	h.authMu.RLock()
	require.Len(t, h.auth, 1, "a good certificate stays cached through refreshes")
	h.authMu.RUnlock()
}

// recordingWriter records every row it writes (copied: the batcher reuses its
// buffers) and fails every third call.
type recordingWriter struct {
	mu     sync.Mutex
	calls  int
	rows   map[string]int // node/seq → times written
	health map[string]string
}

func (w *recordingWriter) WriteHeartbeats(_ context.Context, rows []store.HeartbeatRow, latest []store.LatestHeartbeat) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.calls++
	if w.calls%3 == 0 {
		return errors.New("database down")
	}
	seen := map[string]bool{}
	for _, l := range latest {
		k := l.ClusterID + "/" + l.NodeID
		if seen[k] {
			return fmt.Errorf("membership %s twice in one upsert", k)
		}
		seen[k] = true
	}
	for _, r := range rows {
		k := fmt.Sprintf("%s/%d", r.NodeID, r.Seq)
		w.rows[k]++
		w.health[k] = string(r.Health)
	}
	return nil
}

// TestBatcherReusesBuffersWithoutLosingRows ingests from several goroutines
// while two flushers run and every third flush fails: every heartbeat is
// written exactly once with its own content, although the batcher reuses its
// buffers between flushes (run with -race).
func TestBatcherReusesBuffersWithoutLosingRows(t *testing.T) {
	w := &recordingWriter{rows: map[string]int{}, health: map[string]string{}}
	h := NewHeartbeats(nil, HeartbeatConfig{MaxBatch: 50}, w)
	const nodes, per = 8, 300
	stop := make(chan struct{})
	var flushers sync.WaitGroup
	for range 2 {
		flushers.Add(1)
		go func() {
			defer flushers.Done()
			for {
				select {
				case <-stop:
					return
				default:
					_ = h.Flush(context.Background())
				}
			}
		}()
	}
	var agents sync.WaitGroup
	for n := range nodes {
		agents.Add(1)
		go func() {
			defer agents.Done()
			for seq := 1; seq <= per; seq++ {
				_, err := h.Ingest(NodePrincipal{ClusterID: "c", NodeID: fmt.Sprint("n", n)},
					HeartbeatInput{Seq: int64(seq), Health: json.RawMessage(fmt.Sprintf(`{"n":%d,"seq":%d}`, n, seq))})
				require.NoError(t, err)
			}
		}()
	}
	agents.Wait()
	close(stop)
	flushers.Wait()
	for h.Stats().Pending > 0 {
		_ = h.Flush(context.Background())
	}
	st := h.Stats()
	require.Zero(t, st.Dropped)
	require.Equal(t, uint64(nodes*per), st.Flushed)
	w.mu.Lock()
	defer w.mu.Unlock()
	require.Len(t, w.rows, nodes*per)
	for n := range nodes {
		for seq := 1; seq <= per; seq++ {
			k := fmt.Sprintf("n%d/%d", n, seq)
			require.Equal(t, 1, w.rows[k], k)
			require.Equal(t, fmt.Sprintf(`{"n":%d,"seq":%d}`, n, seq), w.health[k], k)
		}
	}
}
