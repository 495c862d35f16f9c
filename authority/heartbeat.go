package authority

// Heartbeat ingest. Heartbeats are observations, not fenced writes: every
// authority takes them (leader or not, with or without a quorum), keeps the
// latest state per membership in memory and writes to PostgreSQL through a
// batcher that flushes every FlushInterval or MaxBatch rows with ONE statement
// for the append log and ONE upsert for node_heartbeat_latest per flush.
//
// The batcher is split into Flushers shards by node id: each shard holds the
// pending rows and latest state of its own nodes and flushes them on its own
// goroutine, so several flushes run on several PostgreSQL connections at once
// over disjoint node sets. A node always lands in the same shard and a shard
// runs one flush at a time, so a node's rows reach PostgreSQL in the order
// they arrived (the upsert keeps the newest besides: received_at guards it).
//
// The leader additionally derives health (healthy / late / stale / offline)
// from the last heartbeat time, records changes in node_heartbeat_latest and
// audits them (heartbeat_health.go), and deletes append-log rows older than
// Retention in batches (heartbeat_retention.go). The route's authentication
// cache is in heartbeat_auth.go.

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rap-fabric/core/agentapi"
	"github.com/rap-fabric/core/domain"
	"github.com/rap-fabric/core/store"
)

// HeartbeatConfig configures heartbeat ingest. Zero values take the defaults
// noted.
type HeartbeatConfig struct {
	// FlushInterval is the longest a heartbeat waits in memory; 0 means 100 ms.
	FlushInterval time.Duration
	// MaxBatch flushes early once this many rows wait; 0 means 5,000. With
	// several flushers, a shard flushes early at MaxBatch/Flushers rows.
	MaxBatch int
	// Flushers is the number of concurrent flushers (shards by node id, each
	// flushing on its own connection); 0 means DefaultHeartbeatFlushers, at
	// most MaxHeartbeatFlushers.
	Flushers int
	// MaxPending bounds the append-log rows held while PostgreSQL is slow or
	// down (older rows are dropped beyond it; latest state is never dropped);
	// 0 means 200,000.
	MaxPending int
	// LateAfter, StaleAfter and OfflineAfter are the derived-health
	// thresholds on the age of the last heartbeat; 0 means 15 s, 60 s, 5 min.
	LateAfter, StaleAfter, OfflineAfter time.Duration
	// SweepInterval is how often the leader derives and audits health; 0
	// means 2 s.
	SweepInterval time.Duration
	// Retention is how long the append log keeps rows; 0 means 24 h.
	Retention time.Duration
	// RetentionInterval is how often old rows are deleted; 0 means 1 min.
	RetentionInterval time.Duration
	// RetentionBatch is the number of rows one DELETE removes; 0 means 10,000.
	RetentionBatch int
	// AuthCacheTTL is how long a verified node certificate is reused without a
	// database check on the heartbeat route; 0 means 2 s.
	AuthCacheTTL time.Duration
	// Clock; nil means the authority's clock (or time.Now without one).
	Clock func() time.Time
	// AfterFlush, when set, is called after each successful flush with the
	// agents' send times and the authority's receive times of the appended
	// rows, and the time the flush committed (benchmarks measure visibility).
	AfterFlush func(sent, received []time.Time, committed time.Time)
}

func (c *HeartbeatConfig) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.FlushInterval, 100*time.Millisecond)
	def(&c.LateAfter, 15*time.Second)
	def(&c.StaleAfter, 60*time.Second)
	def(&c.OfflineAfter, 5*time.Minute)
	def(&c.SweepInterval, 2*time.Second)
	def(&c.Retention, 24*time.Hour)
	def(&c.RetentionInterval, time.Minute)
	def(&c.AuthCacheTTL, 2*time.Second)
	if c.MaxBatch <= 0 {
		c.MaxBatch = 5000
	}
	if c.MaxPending <= 0 {
		c.MaxPending = 200_000
	}
	if c.RetentionBatch <= 0 {
		c.RetentionBatch = 10_000
	}
	if c.Flushers <= 0 {
		c.Flushers = DefaultHeartbeatFlushers
	}
}

// Bounds of HeartbeatConfig.Flushers.
const (
	DefaultHeartbeatFlushers = 4
	MaxHeartbeatFlushers     = 64
)

// Limits on heartbeat content.
const (
	MaxHeartbeatHealthBytes   = 16 << 10
	MaxHeartbeatServicesBytes = 64 << 10
)

// HeartbeatInput is the body of POST /v1/agent/heartbeat (the agentapi contract).
type HeartbeatInput = agentapi.Heartbeat

// HeartbeatAck answers a heartbeat (the agentapi contract).
type HeartbeatAck = agentapi.HeartbeatAck

func validateHeartbeat(in *HeartbeatInput) error {
	switch in.State {
	case "", "normal", "degraded":
	default:
		return Errf(CodeInvalid, "state must be normal or degraded")
	}
	if in.Seq < 0 || in.AppliedVersion < 0 {
		return Errf(CodeInvalid, "seq and applied_version must not be negative")
	}
	if len(in.AgentVersion) > 100 {
		return Errf(CodeInvalid, "agent_version is at most 100 characters")
	}
	if len(in.Health) > MaxHeartbeatHealthBytes || len(in.Services) > MaxHeartbeatServicesBytes || len(in.Facts) > MaxFactsBytes {
		return Errf(CodeTooLarge, "health, services or facts too large")
	}
	if err := jsonKind(in.Health, '{', "health must be a JSON object"); err != nil {
		return err
	}
	if err := jsonKind(in.Services, '[', "services must be a JSON array"); err != nil {
		return err
	}
	if err := jsonKind(in.Facts, '{', "facts must be a JSON object"); err != nil {
		return err
	}
	if len(in.Capabilities) > len(domain.AllCapabilities) {
		return Errf(CodeInvalid, "too many capabilities")
	}
	for _, c := range in.Capabilities {
		if !c.Valid() {
			return Errf(CodeInvalid, "unknown capability %q", c)
		}
	}
	if err := validateLoad(in.Load); err != nil {
		return err
	}
	if err := validatePing(in.LastPing); err != nil {
		return err
	}
	return validateHeartbeatUpdates(in.Updates)
}

// jsonKind checks that raw (when present) is valid JSON starting with open.
// The HTTP layer has decoded it already, so it is valid JSON; the kind is
// what matters for the database's jsonb columns.
func jsonKind(raw json.RawMessage, open byte, msg string) error {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	for _, c := range raw {
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		case open:
			return nil
		}
		break
	}
	return Errf(CodeInvalid, "%s", msg)
}

// HeartbeatWriter writes one flush. The store implementation issues exactly
// one append-log statement and one latest-state upsert. It must not keep rows
// or latest after it returns: the batcher reuses their arrays.
type HeartbeatWriter interface {
	WriteHeartbeats(ctx context.Context, rows []store.HeartbeatRow, latest []store.LatestHeartbeat) error
}

type storeWriter struct{ db *store.DB }

func (w storeWriter) WriteHeartbeats(ctx context.Context, rows []store.HeartbeatRow, latest []store.LatestHeartbeat) error {
	return store.WriteHeartbeats(ctx, w.db, rows, latest)
}

// StoreHeartbeatWriter writes flushes to db (one append statement and one
// upsert per flush, in one round trip).
func StoreHeartbeatWriter(db *store.DB) HeartbeatWriter { return storeWriter{db} }

type hbKey struct{ cluster, node string }

type latestEntry struct {
	row        store.LatestHeartbeat
	facts      json.RawMessage
	factsDirty bool
	caps       []domain.Capability
	capsDirty  bool
	// updates is the last update state the node sent; updatesDirty marks
	// a change not yet recorded as update runs (heartbeat_updates.go).
	updates      []agentapi.UpdateReport
	updatesDirty bool
	updatesAt    time.Time
}

// HeartbeatStats are counters of one authority's ingest.
type HeartbeatStats struct {
	Ingested    uint64 `json:"ingested"`
	Flushed     uint64 `json:"flushed"`
	Flushes     uint64 `json:"flushes"`
	FlushErrors uint64 `json:"flush_errors"`
	Dropped     uint64 `json:"dropped"`
	Pending     int    `json:"pending"`
	// AuthChecks counts full certificate checks (cache misses) on the
	// heartbeat route.
	AuthChecks uint64 `json:"auth_checks"`
	// AuthRefreshes counts background re-checks of every cached serial;
	// AuthRefreshesSkipped those that found the revocation counter unmoved
	// and re-checked nothing (heartbeat_auth.go).
	AuthRefreshes        uint64 `json:"auth_refreshes"`
	AuthRefreshesSkipped uint64 `json:"auth_refreshes_skipped"`
}

// Heartbeats is one authority's heartbeat ingest: the in-memory latest state,
// the batcher (Flushers shards), the health sweeper and retention.
type Heartbeats struct {
	a   *Authority
	cfg HeartbeatConfig
	w   HeartbeatWriter

	// shards split the memberships by node id (shardOf); shardBatch is a
	// shard's early-flush threshold.
	shards     []*hbShard
	shardBatch int
	// pendingRows counts the append-log rows waiting in every shard (the
	// MaxPending bound is over all of them).
	pendingRows atomic.Int64

	authMu sync.RWMutex
	auth   map[[32]byte]*authEntry
	// revSeq is the revocation counter as last read by refreshAuth, revAt
	// the time right after that read; revOK is false until a full re-check
	// of the cached serials succeeded (and after any error). Only
	// refreshAuth uses them, one call at a time (authRefreshMu).
	authRefreshMu sync.Mutex
	revSeq        store.AuthRevocation
	revAt         time.Time
	revOK         bool

	authRefreshes, authRefreshesSkipped atomic.Uint64

	ingested, flushed, flushes, flushErrors, dropped, authChecks atomic.Uint64
	running                                                      atomic.Bool
	afterFlush                                                   atomic.Pointer[func(sent, received []time.Time, committed time.Time)]
}

// hbShard is one flusher's part of the batcher: the nodes whose id hashes to
// it.
type hbShard struct {
	// flushMu makes the shard's flushes run one at a time (a node's rows
	// are written in order).
	flushMu sync.Mutex

	mu sync.Mutex
	// pending are the append-log rows waiting for a flush and sent the
	// agents' send times of the same rows (same length).
	pending []store.HeartbeatRow
	sent    []time.Time
	dirty   map[hbKey]struct{}
	latest  map[hbKey]*latestEntry
	kick    chan struct{}
	// Buffers of a finished flush, reused by the next one instead of growing
	// new ones at every flush (taken and given back under mu).
	spareRows   []store.HeartbeatRow
	spareSent   []time.Time
	spareDirty  map[hbKey]struct{}
	spareLatest []store.LatestHeartbeat
}

// shardOf returns the shard of a node (FNV-1a of its id).
func (h *Heartbeats) shardOf(node string) *hbShard {
	if len(h.shards) == 1 {
		return h.shards[0]
	}
	x := uint32(2166136261)
	for i := 0; i < len(node); i++ {
		x ^= uint32(node[i])
		x *= 16777619
	}
	return h.shards[x%uint32(len(h.shards))]
}

// OnFlush sets (nil: clears) the hook called after each successful flush,
// replacing HeartbeatConfig.AfterFlush; safe while running.
func (h *Heartbeats) OnFlush(fn func(sent, received []time.Time, committed time.Time)) {
	if fn == nil {
		h.afterFlush.Store(nil)
		return
	}
	h.afterFlush.Store(&fn)
}

// NewHeartbeats builds an ingest. a may be nil for a batcher alone (tests):
// then only the flush loop runs. w nil means the authority's store.
func NewHeartbeats(a *Authority, cfg HeartbeatConfig, w HeartbeatWriter) *Heartbeats {
	cfg.defaults()
	if cfg.Clock == nil {
		cfg.Clock = time.Now
		if a != nil {
			cfg.Clock = a.cfg.Clock
		}
	}
	if w == nil && a != nil {
		w = storeWriter{a.db}
	}
	cfg.Flushers = min(cfg.Flushers, MaxHeartbeatFlushers)
	h := &Heartbeats{a: a, cfg: cfg, w: w, auth: map[[32]byte]*authEntry{}, shardBatch: max(1, cfg.MaxBatch/cfg.Flushers)}
	for range cfg.Flushers {
		h.shards = append(h.shards, &hbShard{dirty: map[hbKey]struct{}{}, latest: map[hbKey]*latestEntry{}, kick: make(chan struct{}, 1)})
	}
	h.OnFlush(cfg.AfterFlush)
	return h
}

// RunHeartbeats runs this authority's heartbeat batcher, health sweeper and
// retention until stop is closed, then flushes what is pending and returns.
func (a *Authority) RunHeartbeats(stop <-chan struct{}) {
	a.heartbeats.Run(stop)
}

// Config returns the effective configuration.
func (h *Heartbeats) Config() HeartbeatConfig { return h.cfg }

// Stats returns the ingest counters.
func (h *Heartbeats) Stats() HeartbeatStats {
	p := int(h.pendingRows.Load())
	return HeartbeatStats{Ingested: h.ingested.Load(), Flushed: h.flushed.Load(), Flushes: h.flushes.Load(),
		FlushErrors: h.flushErrors.Load(), Dropped: h.dropped.Load(), Pending: p, AuthChecks: h.authChecks.Load(),
		AuthRefreshes: h.authRefreshes.Load(), AuthRefreshesSkipped: h.authRefreshesSkipped.Load()}
}

// Run flushes, sweeps and prunes until stop is closed; it flushes once more
// before returning.
func (h *Heartbeats) Run(stop <-chan struct{}) {
	if !h.running.CompareAndSwap(false, true) {
		return
	}
	defer h.running.Store(false)
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	if h.a != nil {
		wg.Add(3)
		go func() { defer wg.Done(); h.every(ctx, h.cfg.SweepInterval, h.sweepIfLeader) }()
		go func() { defer wg.Done(); h.every(ctx, h.cfg.RetentionInterval, h.pruneIfLeader) }()
		go func() { defer wg.Done(); h.every(ctx, h.cfg.AuthCacheTTL/2, h.refreshAuth) }()
	}
	// One flush loop per shard: the shards' flushes overlap.
	var flushers sync.WaitGroup
	for _, sh := range h.shards {
		flushers.Add(1)
		go func() { defer flushers.Done(); h.flushLoop(ctx, sh) }()
	}
	<-stop
	cancel()
	wg.Wait()
	flushers.Wait()
	fctx, fcancel := context.WithTimeout(context.Background(), 5*time.Second)
	_ = h.Flush(fctx)
	fcancel()
}

// flushLoop flushes one shard every FlushInterval, or early when it holds a
// shard's share of MaxBatch, until ctx ends.
func (h *Heartbeats) flushLoop(ctx context.Context, sh *hbShard) {
	t := time.NewTicker(h.cfg.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-sh.kick:
		}
		fctx, fcancel := context.WithTimeout(ctx, 10*time.Second)
		_ = h.flushShard(fctx, sh)
		fcancel()
	}
}

func (h *Heartbeats) every(ctx context.Context, d time.Duration, fn func(context.Context)) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c, cancel := context.WithTimeout(ctx, 30*time.Second)
			fn(c)
			cancel()
		}
	}
}

// Ingest takes one heartbeat of an authenticated node. It never touches the
// database: the row waits for the next flush.
func (h *Heartbeats) Ingest(p NodePrincipal, in HeartbeatInput) (HeartbeatAck, error) {
	if err := validateHeartbeat(&in); err != nil {
		return HeartbeatAck{}, err
	}
	now := h.cfg.Clock()
	authorityID := ""
	if h.a != nil {
		authorityID = h.a.cfg.NodeID
	}
	if in.State == "" {
		in.State = "normal"
	}
	if len(in.Health) == 0 || string(in.Health) == "null" {
		in.Health = json.RawMessage(`{}`)
	}
	services, err := normalizeServiceReports(in.Services)
	if err != nil {
		return HeartbeatAck{}, err
	}
	in.Services = services
	if in.Health, err = withUpdates(in.Health, in.Updates); err != nil {
		return HeartbeatAck{}, err
	}
	if in.Health, err = withLoad(in.Health, in.Load); err != nil {
		return HeartbeatAck{}, err
	}
	row := store.HeartbeatRow{ClusterID: p.ClusterID, NodeID: p.NodeID, ReceivedAt: now, Seq: in.Seq, AppliedVersion: in.AppliedVersion,
		AgentVersion: in.AgentVersion, State: in.State, Health: in.Health, AuthorityID: authorityID}
	// The last mesh ping goes with the latest heartbeat only, not the history.
	latestHealth, err := withPing(in.Health, in.LastPing)
	if err != nil {
		return HeartbeatAck{}, err
	}
	k := hbKey{p.ClusterID, p.NodeID}
	sh := h.shardOf(p.NodeID)

	sh.mu.Lock()
	e := sh.latest[k]
	if e == nil {
		e = &latestEntry{}
		sh.latest[k] = e
	}
	e.row = store.LatestHeartbeat{HeartbeatRow: row, Services: in.Services, SourceAddr: p.SourceAddr}
	e.row.Health = latestHealth
	if len(in.Facts) > 0 && string(in.Facts) != "null" {
		e.facts, e.factsDirty = in.Facts, true
	}
	if in.Capabilities != nil {
		e.caps, e.capsDirty = in.Capabilities, true
	}
	if len(in.Updates) > 0 && !slices.Equal(e.updates, in.Updates) {
		e.updates, e.updatesDirty, e.updatesAt = in.Updates, true, now
	}
	needFacts := e.facts == nil
	// Beyond MaxPending (over every shard) the shard drops its own oldest
	// row; a shard holding none may exceed the bound by one row.
	if h.pendingRows.Load() >= int64(h.cfg.MaxPending) && len(sh.pending) > 0 {
		sh.pending, sh.sent = sh.pending[1:], sh.sent[1:]
		h.pendingRows.Add(-1)
		h.dropped.Add(1)
	}
	sh.pending = append(sh.pending, row)
	sh.sent = append(sh.sent, in.SentAt)
	h.pendingRows.Add(1)
	sh.dirty[k] = struct{}{}
	full := len(sh.pending) >= h.shardBatch
	sh.mu.Unlock()

	h.ingested.Add(1)
	if full {
		select {
		case sh.kick <- struct{}{}:
		default:
		}
	}
	return HeartbeatAck{ClusterID: p.ClusterID, NodeID: p.NodeID, Seq: in.Seq, ReceivedAt: now, AuthorityID: authorityID, NeedFacts: needFacts}, nil
}

type capUpdate struct {
	node string
	caps []domain.Capability
}

// Flush writes what is pending in every shard, the shards concurrently: per
// shard one append-log statement and one upsert of the latest state (through
// the writer), then any changed capabilities. On failure the latest state
// stays dirty and the rows are kept (up to MaxPending) for the next flush; the
// first error is returned.
func (h *Heartbeats) Flush(ctx context.Context) error {
	if len(h.shards) == 1 {
		return h.flushShard(ctx, h.shards[0])
	}
	errs := make([]error, len(h.shards))
	var wg sync.WaitGroup
	for i, sh := range h.shards {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = h.flushShard(ctx, sh) }()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// flushShard writes what one shard holds; the shard's flushes run one at a
// time.
func (h *Heartbeats) flushShard(ctx context.Context, sh *hbShard) error {
	sh.flushMu.Lock()
	defer sh.flushMu.Unlock()
	sh.mu.Lock()
	if len(sh.pending) == 0 && len(sh.dirty) == 0 {
		sh.mu.Unlock()
		return nil
	}
	if h.a != nil {
		defer h.a.metrics.observeHeartbeatFlush(time.Now())
	}
	rows, sent := sh.pending, sh.sent
	sh.pending, sh.sent, sh.spareRows, sh.spareSent = sh.spareRows, sh.spareSent, nil, nil
	h.pendingRows.Add(-int64(len(rows)))
	keys := sh.dirty
	sh.dirty, sh.spareDirty = sh.spareDirty, nil
	if sh.dirty == nil {
		sh.dirty = make(map[hbKey]struct{}, len(keys))
	}
	latest := sh.spareLatest
	sh.spareLatest = nil
	if cap(latest) < len(keys) {
		latest = make([]store.LatestHeartbeat, 0, len(keys))
	}
	var caps []capUpdate
	var factsSent []hbKey
	var runs []updateRuns
	for k := range keys {
		e := sh.latest[k]
		l := e.row
		if e.updatesDirty {
			runs = append(runs, updateRuns{key: k, reports: e.updates, at: e.updatesAt})
			e.updatesDirty = false
		}
		if e.factsDirty {
			l.Facts = e.facts
			e.factsDirty = false
			factsSent = append(factsSent, k)
		}
		if e.capsDirty {
			caps = append(caps, capUpdate{node: k.node, caps: e.caps})
			e.capsDirty = false
		}
		latest = append(latest, l)
	}
	sh.mu.Unlock()
	// A stable order: two authorities (or a flush and a sweep) upserting the
	// same memberships lock them in the same order and cannot deadlock.
	slices.SortFunc(latest, func(x, y store.LatestHeartbeat) int {
		if c := strings.Compare(x.ClusterID, y.ClusterID); c != 0 {
			return c
		}
		return strings.Compare(x.NodeID, y.NodeID)
	})

	err := h.w.WriteHeartbeats(ctx, rows, latest)
	if err == nil && h.a != nil {
		for _, c := range caps {
			if cerr := store.ReplaceReportedCapabilities(ctx, h.a.db.Pool, c.node, c.caps); cerr != nil {
				h.a.log.Warn("recording reported capabilities failed", "node_id", c.node, "error", cerr)
			}
		}
		h.recordUpdateRuns(ctx, runs)
	}
	if err != nil && len(runs) > 0 {
		sh.mu.Lock()
		for _, r := range runs {
			if e := sh.latest[r.key]; e != nil && slices.Equal(e.updates, r.reports) {
				e.updatesDirty = true
			}
		}
		sh.mu.Unlock()
	}
	committed := h.cfg.Clock()
	if err != nil {
		h.flushErrors.Add(1)
		if h.a != nil {
			h.a.log.Warn("heartbeat flush failed; will retry", "rows", len(rows), "latest", len(latest), "error", err)
		}
		sh.mu.Lock()
		for k := range keys {
			sh.dirty[k] = struct{}{}
		}
		for _, k := range factsSent {
			if e := sh.latest[k]; e != nil && e.row.ReceivedAt.Before(committed) {
				e.factsDirty = true
			}
		}
		for _, c := range caps {
			for k, e := range sh.latest {
				if k.node == c.node && e.caps != nil {
					e.capsDirty = true
				}
			}
		}
		room := h.cfg.MaxPending - int(h.pendingRows.Load())
		if room < len(rows) {
			drop := len(rows) - max(room, 0)
			h.dropped.Add(uint64(drop))
			rows, sent = rows[drop:], sent[drop:]
		}
		sh.pending = append(rows, sh.pending...)
		sh.sent = append(sent, sh.sent...)
		h.pendingRows.Add(int64(len(rows)))
		sh.recycleLocked(h.cfg.MaxBatch, nil, nil, keys, latest)
		sh.mu.Unlock()
		return err
	}
	h.flushes.Add(1)
	h.flushed.Add(uint64(len(rows)))
	if fn := h.afterFlush.Load(); fn != nil && len(rows) > 0 {
		s, recv := make([]time.Time, len(rows)), make([]time.Time, len(rows))
		copy(s, sent)
		for i := range rows {
			recv[i] = rows[i].ReceivedAt
		}
		(*fn)(s, recv, committed)
	}
	sh.mu.Lock()
	sh.recycleLocked(h.cfg.MaxBatch, rows, sent, keys, latest)
	sh.mu.Unlock()
	return nil
}

// recycleLocked keeps the buffers of a finished flush for the next one,
// cleared so they hold no heartbeat alive. Row buffers grown beyond twice
// MaxBatch (rows kept while the database was down) are left to the GC; the
// others are bounded by the number of memberships. nil skips one.
func (sh *hbShard) recycleLocked(maxBatch int, rows []store.HeartbeatRow, sent []time.Time, keys map[hbKey]struct{}, latest []store.LatestHeartbeat) {
	if rows != nil && sh.spareRows == nil && cap(rows) <= 2*maxBatch {
		rows, sent = rows[:cap(rows)], sent[:cap(sent)]
		clear(rows)
		clear(sent)
		sh.spareRows, sh.spareSent = rows[:0], sent[:0]
	}
	if keys != nil && sh.spareDirty == nil {
		clear(keys)
		sh.spareDirty = keys
	}
	if latest != nil && sh.spareLatest == nil {
		latest = latest[:cap(latest)]
		clear(latest)
		sh.spareLatest = latest[:0]
	}
}
