package authority

// Heartbeat ingest. Heartbeats are observations, not fenced writes: every
// authority takes them (leader or not, with or without a quorum), keeps the
// latest state per membership in memory and writes to PostgreSQL through a
// batcher that flushes every FlushInterval or MaxBatch rows with ONE statement
// for the append log and ONE upsert for node_heartbeat_latest per flush.
//
// The leader additionally derives health (healthy / late / stale / offline)
// from the last heartbeat time, records changes in node_heartbeat_latest and
// audits them, and deletes append-log rows older than Retention in batches.
//
// Authentication of the heartbeat route is cached per certificate for
// AuthCacheTTL; one background statement per refresh re-checks every cached
// serial, so a revoked node is refused within about AuthCacheTTL even on a
// kept-alive connection (new connections are refused at the TLS handshake).

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rap-fabric/core/agentapi"
	"github.com/rap-fabric/core/domain"
	"github.com/rap-fabric/core/fsm"
	"github.com/rap-fabric/core/pki"
	"github.com/rap-fabric/core/store"
)

// Health is the health an authority derives from the last heartbeat time.
type Health string

// Derived health values (the node_heartbeat_latest.derived_health spellings).
const (
	HealthHealthy Health = "healthy"
	HealthLate    Health = "late"
	HealthStale   Health = "stale"
	HealthOffline Health = "offline"
	HealthUnknown Health = "unknown"
)

// HeartbeatConfig configures heartbeat ingest. Zero values take the defaults
// noted.
type HeartbeatConfig struct {
	// FlushInterval is the longest a heartbeat waits in memory; 0 means 100 ms.
	FlushInterval time.Duration
	// MaxBatch flushes early once this many rows wait; 0 means 5,000.
	MaxBatch int
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
}

// HeartbeatConfigFromEnv reads thresholds from the environment, following
// rap-authority's RAP_<FLAG> convention: RAP_HEARTBEAT_LATE_AFTER,
// RAP_HEARTBEAT_STALE_AFTER, RAP_HEARTBEAT_OFFLINE_AFTER,
// RAP_HEARTBEAT_RETENTION, RAP_HEARTBEAT_FLUSH_INTERVAL (Go durations) and
// RAP_HEARTBEAT_MAX_BATCH. Unset or malformed values keep the defaults.
func HeartbeatConfigFromEnv() HeartbeatConfig {
	var c HeartbeatConfig
	dur := func(name string, d *time.Duration) {
		if v, err := time.ParseDuration(os.Getenv(name)); err == nil && v > 0 {
			*d = v
		}
	}
	dur("RAP_HEARTBEAT_LATE_AFTER", &c.LateAfter)
	dur("RAP_HEARTBEAT_STALE_AFTER", &c.StaleAfter)
	dur("RAP_HEARTBEAT_OFFLINE_AFTER", &c.OfflineAfter)
	dur("RAP_HEARTBEAT_RETENTION", &c.Retention)
	dur("RAP_HEARTBEAT_FLUSH_INTERVAL", &c.FlushInterval)
	if n, err := strconv.Atoi(os.Getenv("RAP_HEARTBEAT_MAX_BATCH")); err == nil && n > 0 {
		c.MaxBatch = n
	}
	return c
}

// DeriveHealth maps the age of the last heartbeat to a health value; a zero
// last time is unknown.
func DeriveHealth(last, now time.Time, c HeartbeatConfig) Health {
	c.defaults()
	if last.IsZero() {
		return HealthUnknown
	}
	switch age := now.Sub(last); {
	case age <= c.LateAfter:
		return HealthHealthy
	case age <= c.StaleAfter:
		return HealthLate
	case age <= c.OfflineAfter:
		return HealthStale
	default:
		return HealthOffline
	}
}

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
	return nil
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
}

type authEntry struct {
	p        NodePrincipal
	notAfter time.Time
	checked  time.Time
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
}

// Heartbeats is one authority's heartbeat ingest: the in-memory latest state,
// the batcher, the health sweeper and retention.
type Heartbeats struct {
	a   *Authority
	cfg HeartbeatConfig
	w   HeartbeatWriter

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

	authMu sync.RWMutex
	auth   map[[32]byte]*authEntry

	ingested, flushed, flushes, flushErrors, dropped, authChecks atomic.Uint64
	running                                                      atomic.Bool
	afterFlush                                                   atomic.Pointer[func(sent, received []time.Time, committed time.Time)]
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
	h := &Heartbeats{a: a, cfg: cfg, w: w, dirty: map[hbKey]struct{}{}, latest: map[hbKey]*latestEntry{},
		kick: make(chan struct{}, 1), auth: map[[32]byte]*authEntry{}}
	h.OnFlush(cfg.AfterFlush)
	return h
}

var heartbeatsOf sync.Map // *Authority → *Heartbeats

// Heartbeats returns this authority's heartbeat ingest, created on first use
// with HeartbeatConfigFromEnv.
func (a *Authority) Heartbeats() *Heartbeats {
	if h, ok := heartbeatsOf.Load(a); ok {
		return h.(*Heartbeats)
	}
	h, _ := heartbeatsOf.LoadOrStore(a, NewHeartbeats(a, HeartbeatConfigFromEnv(), nil))
	return h.(*Heartbeats)
}

// RunHeartbeats runs this authority's heartbeat batcher, health sweeper and
// retention until stop is closed, then flushes what is pending and returns.
func (a *Authority) RunHeartbeats(stop <-chan struct{}) {
	a.Heartbeats().Run(stop)
	heartbeatsOf.Delete(a)
}

// Config returns the effective configuration.
func (h *Heartbeats) Config() HeartbeatConfig { return h.cfg }

// Stats returns the ingest counters.
func (h *Heartbeats) Stats() HeartbeatStats {
	h.mu.Lock()
	p := len(h.pending)
	h.mu.Unlock()
	return HeartbeatStats{Ingested: h.ingested.Load(), Flushed: h.flushed.Load(), Flushes: h.flushes.Load(),
		FlushErrors: h.flushErrors.Load(), Dropped: h.dropped.Load(), Pending: p, AuthChecks: h.authChecks.Load()}
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
	t := time.NewTicker(h.cfg.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			cancel()
			wg.Wait()
			fctx, fcancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = h.Flush(fctx)
			fcancel()
			return
		case <-t.C:
		case <-h.kick:
		}
		fctx, fcancel := context.WithTimeout(ctx, 10*time.Second)
		_ = h.Flush(fctx)
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
	row := store.HeartbeatRow{ClusterID: p.ClusterID, NodeID: p.NodeID, ReceivedAt: now, Seq: in.Seq, AppliedVersion: in.AppliedVersion,
		AgentVersion: in.AgentVersion, State: in.State, Health: in.Health, AuthorityID: authorityID}
	k := hbKey{p.ClusterID, p.NodeID}

	h.mu.Lock()
	e := h.latest[k]
	if e == nil {
		e = &latestEntry{}
		h.latest[k] = e
	}
	e.row = store.LatestHeartbeat{HeartbeatRow: row, Services: in.Services, SourceAddr: p.SourceAddr}
	if len(in.Facts) > 0 && string(in.Facts) != "null" {
		e.facts, e.factsDirty = in.Facts, true
	}
	if in.Capabilities != nil {
		e.caps, e.capsDirty = in.Capabilities, true
	}
	needFacts := e.facts == nil
	if len(h.pending) >= h.cfg.MaxPending {
		h.pending, h.sent = h.pending[1:], h.sent[1:]
		h.dropped.Add(1)
	}
	h.pending = append(h.pending, row)
	h.sent = append(h.sent, in.SentAt)
	h.dirty[k] = struct{}{}
	full := len(h.pending) >= h.cfg.MaxBatch
	h.mu.Unlock()

	h.ingested.Add(1)
	if full {
		select {
		case h.kick <- struct{}{}:
		default:
		}
	}
	return HeartbeatAck{ClusterID: p.ClusterID, NodeID: p.NodeID, Seq: in.Seq, ReceivedAt: now, AuthorityID: authorityID, NeedFacts: needFacts}, nil
}

type capUpdate struct {
	node string
	caps []domain.Capability
}

// Flush writes what is pending: one append-log statement and one upsert of
// the latest state (through the writer), then any changed capabilities. On
// failure the latest state stays dirty and the rows are kept (up to
// MaxPending) for the next flush.
func (h *Heartbeats) Flush(ctx context.Context) error {
	h.mu.Lock()
	if len(h.pending) == 0 && len(h.dirty) == 0 {
		h.mu.Unlock()
		return nil
	}
	rows, sent := h.pending, h.sent
	h.pending, h.sent, h.spareRows, h.spareSent = h.spareRows, h.spareSent, nil, nil
	keys := h.dirty
	h.dirty, h.spareDirty = h.spareDirty, nil
	if h.dirty == nil {
		h.dirty = make(map[hbKey]struct{}, len(keys))
	}
	latest := h.spareLatest
	h.spareLatest = nil
	if cap(latest) < len(keys) {
		latest = make([]store.LatestHeartbeat, 0, len(keys))
	}
	var caps []capUpdate
	var factsSent []hbKey
	for k := range keys {
		e := h.latest[k]
		l := e.row
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
	h.mu.Unlock()
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
	}
	committed := h.cfg.Clock()
	if err != nil {
		h.flushErrors.Add(1)
		if h.a != nil {
			h.a.log.Warn("heartbeat flush failed; will retry", "rows", len(rows), "latest", len(latest), "error", err)
		}
		h.mu.Lock()
		for k := range keys {
			h.dirty[k] = struct{}{}
		}
		for _, k := range factsSent {
			if e := h.latest[k]; e != nil && e.row.ReceivedAt.Before(committed) {
				e.factsDirty = true
			}
		}
		for _, c := range caps {
			for k, e := range h.latest {
				if k.node == c.node && e.caps != nil {
					e.capsDirty = true
				}
			}
		}
		room := h.cfg.MaxPending - len(h.pending)
		if room < len(rows) {
			drop := len(rows) - max(room, 0)
			h.dropped.Add(uint64(drop))
			rows, sent = rows[drop:], sent[drop:]
		}
		h.pending = append(rows, h.pending...)
		h.sent = append(sent, h.sent...)
		h.recycleLocked(nil, nil, keys, latest)
		h.mu.Unlock()
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
	h.mu.Lock()
	h.recycleLocked(rows, sent, keys, latest)
	h.mu.Unlock()
	return nil
}

// recycleLocked keeps the buffers of a finished flush for the next one,
// cleared so they hold no heartbeat alive. Row buffers grown beyond twice
// MaxBatch (rows kept while the database was down) are left to the GC; the
// others are bounded by the number of memberships. nil skips one.
func (h *Heartbeats) recycleLocked(rows []store.HeartbeatRow, sent []time.Time, keys map[hbKey]struct{}, latest []store.LatestHeartbeat) {
	if rows != nil && h.spareRows == nil && cap(rows) <= 2*h.cfg.MaxBatch {
		rows, sent = rows[:cap(rows)], sent[:cap(sent)]
		clear(rows)
		clear(sent)
		h.spareRows, h.spareSent = rows[:0], sent[:0]
	}
	if keys != nil && h.spareDirty == nil {
		clear(keys)
		h.spareDirty = keys
	}
	if latest != nil && h.spareLatest == nil {
		latest = latest[:cap(latest)]
		clear(latest)
		h.spareLatest = latest[:0]
	}
}

// Authenticate verifies a node certificate for the heartbeat route, reusing a
// verification for up to AuthCacheTTL (refreshed in the background with one
// statement for all cached certificates).
func (h *Heartbeats) Authenticate(ctx context.Context, cert *x509.Certificate, source string) (NodePrincipal, error) {
	if p, ok := h.CachedPrincipal(cert, source); ok {
		return p, nil
	}
	key := sha256.Sum256(cert.Raw)
	now := h.cfg.Clock()
	h.authChecks.Add(1)
	p, err := h.a.AuthenticateNode(ctx, cert, source)
	if err != nil {
		h.authMu.Lock()
		delete(h.auth, key)
		h.authMu.Unlock()
		return p, err
	}
	h.authMu.Lock()
	h.auth[key] = &authEntry{p: NodePrincipal{ClusterID: p.ClusterID, NodeID: p.NodeID, Serial: p.Serial}, notAfter: cert.NotAfter, checked: now}
	h.authMu.Unlock()
	return p, nil
}

// CachedPrincipal returns the node of cert when a full check verified it less
// than AuthCacheTTL ago (and it has not expired): the cache-hit half of
// Authenticate, which never touches the database. ok false means Authenticate
// must check it.
func (h *Heartbeats) CachedPrincipal(cert *x509.Certificate, source string) (p NodePrincipal, ok bool) {
	key := sha256.Sum256(cert.Raw)
	now := h.cfg.Clock()
	// Copy the entry under the lock: refreshAuth moves checked forward while
	// requests read it.
	h.authMu.RLock()
	var e authEntry
	hit := false
	if pe := h.auth[key]; pe != nil {
		e, hit = *pe, true
	}
	h.authMu.RUnlock()
	if !hit || !now.Before(e.notAfter) || now.Sub(e.checked) >= h.cfg.AuthCacheTTL {
		return NodePrincipal{}, false
	}
	p = e.p
	p.SourceAddr = source
	return p, true
}

// refreshAuth re-checks every cached certificate with one statement; revoked
// ones leave the cache (their next request is refused by the full check).
func (h *Heartbeats) refreshAuth(ctx context.Context) {
	h.authMu.RLock()
	serials := make([]string, 0, len(h.auth))
	for _, e := range h.auth {
		serials = append(serials, e.p.Serial)
	}
	h.authMu.RUnlock()
	if len(serials) == 0 {
		return
	}
	start := h.cfg.Clock()
	good, err := store.GoodCertificateSerials(ctx, h.a.db.Pool, serials)
	if err != nil {
		return // entries age out; requests fall back to the full check
	}
	h.authMu.Lock()
	for k, e := range h.auth {
		switch {
		case !good[e.p.Serial] || !start.Before(e.notAfter):
			delete(h.auth, k)
		case e.checked.Before(start):
			e.checked = start
		}
	}
	h.authMu.Unlock()
}

// sweepIfLeader derives health for every membership with a heartbeat,
// records changes and audits them. Only the leader sweeps, so a change is
// audited once.
func (h *Heartbeats) sweepIfLeader(ctx context.Context) {
	if !h.a.raft.IsLeader() {
		return
	}
	if _, err := h.Sweep(ctx); err != nil {
		h.a.log.Warn("heartbeat health sweep failed", "error", err)
	}
}

// HealthChange is one derived-health transition found by a sweep.
type HealthChange struct {
	ClusterID     string    `json:"cluster_id"`
	NodeID        string    `json:"node_id"`
	From          Health    `json:"from"`
	To            Health    `json:"to"`
	LastHeartbeat time.Time `json:"last_heartbeat"`
}

// Sweep derives the health of every membership with a heartbeat, records the
// changes in one statement and audits each (action node.health).
func (h *Heartbeats) Sweep(ctx context.Context) ([]HealthChange, error) {
	rows, err := store.ListHeartbeatHealth(ctx, h.a.db.Pool)
	if err != nil {
		return nil, err
	}
	now := h.cfg.Clock()
	var changes []HealthChange
	var upd []store.HealthRow
	var from []string
	for _, r := range rows {
		d := DeriveHealth(r.ReceivedAt, now, h.cfg)
		if string(d) == r.DerivedHealth {
			continue
		}
		changes = append(changes, HealthChange{ClusterID: r.ClusterID, NodeID: r.NodeID, From: Health(r.DerivedHealth), To: d, LastHeartbeat: r.ReceivedAt})
		upd = append(upd, store.HealthRow{ClusterID: r.ClusterID, NodeID: r.NodeID, DerivedHealth: string(d)})
		from = append(from, r.DerivedHealth)
	}
	if len(upd) == 0 {
		return nil, nil
	}
	if _, err := store.SetDerivedHealth(ctx, h.a.db.Pool, upd, from); err != nil {
		return nil, err
	}
	for _, c := range changes {
		outcome := "ok"
		if err := h.a.Audit(ctx, Op{Action: "node.health", Actor: Actor{ID: "system", Kind: "system"}, ClusterID: c.ClusterID, TargetKind: "node", TargetID: c.NodeID,
			Details: map[string]any{"from": string(c.From), "to": string(c.To), "last_heartbeat": c.LastHeartbeat.UTC().Format(time.RFC3339Nano)}}, outcome); err != nil {
			h.a.log.Warn("auditing a health change failed", "node_id", c.NodeID, "error", err)
		}
	}
	return changes, nil
}

func (h *Heartbeats) pruneIfLeader(ctx context.Context) {
	if !h.a.raft.IsLeader() {
		return
	}
	if _, err := h.Prune(ctx); err != nil {
		h.a.log.Warn("heartbeat retention failed", "error", err)
	}
}

// Prune deletes append-log rows older than Retention, RetentionBatch rows per
// statement, and returns how many it deleted.
func (h *Heartbeats) Prune(ctx context.Context) (int64, error) {
	cut := h.cfg.Clock().Add(-h.cfg.Retention)
	var total int64
	for {
		n, err := store.DeleteHeartbeatsBefore(ctx, h.a.db.Pool, cut, h.cfg.RetentionBatch)
		total += n
		if err != nil || n < int64(h.cfg.RetentionBatch) {
			return total, err
		}
	}
}

// NodeHeartbeat is a node's latest heartbeat in one cluster with its health
// derived now.
type NodeHeartbeat struct {
	store.LatestHeartbeat
	Health Health `json:"health_state"`
	// AgeSeconds is the age of the heartbeat when read.
	AgeSeconds float64 `json:"age_seconds"`
}

// LatestHeartbeats returns a node's latest heartbeat per cluster. A newer
// heartbeat this authority holds in memory (not flushed yet) wins over the
// database row.
func (h *Heartbeats) LatestHeartbeats(ctx context.Context, nodeID string) ([]NodeHeartbeat, error) {
	if _, err := store.GetNode(ctx, h.a.db.Pool, nodeID); err != nil {
		return nil, asError(err)
	}
	rows, err := store.LatestHeartbeats(ctx, h.a.db.Pool, nodeID)
	if err != nil {
		return nil, asError(err)
	}
	now := h.cfg.Clock()
	out := make([]NodeHeartbeat, 0, len(rows))
	h.mu.Lock()
	for _, r := range rows {
		if e := h.latest[hbKey{r.ClusterID, r.NodeID}]; e != nil && e.row.ReceivedAt.After(r.ReceivedAt) {
			facts, dh := r.Facts, r.DerivedHealth
			r = e.row
			r.Facts, r.DerivedHealth = facts, dh
			if e.facts != nil {
				r.Facts = e.facts
			}
		}
		out = append(out, NodeHeartbeat{LatestHeartbeat: r, Health: DeriveHealth(r.ReceivedAt, now, h.cfg), AgeSeconds: now.Sub(r.ReceivedAt).Seconds()})
	}
	h.mu.Unlock()
	return out, nil
}

// History pages through a node's heartbeat log, newest first.
func (h *Heartbeats) History(ctx context.Context, cluster, nodeID string, p store.Page) ([]store.HeartbeatRow, error) {
	clusterID := ""
	if cluster != "" {
		c, err := h.a.GetCluster(ctx, cluster)
		if err != nil {
			return nil, err
		}
		clusterID = c.ID
	}
	rows, err := store.ListHeartbeats(ctx, h.a.db.Pool, clusterID, nodeID, p)
	return rows, asErrorOrNil(err)
}

// DesiredState is what a node should run in one cluster (GET
// /v1/agent/desired): its membership status and active role assignments. The
// signed snapshot replaces this path later.
type DesiredState struct {
	ClusterID        string                 `json:"cluster_id"`
	NodeID           string                 `json:"node_id"`
	MembershipStatus string                 `json:"membership_status"`
	Roles            []store.RoleAssignment `json:"roles"`
}

// Desired returns the node's desired state in its cluster (a read: any
// authority answers).
func (a *Authority) Desired(ctx context.Context, p NodePrincipal) (DesiredState, error) {
	m, err := store.GetMembership(ctx, a.db.Pool, p.ClusterID, p.NodeID)
	if err != nil {
		return DesiredState{}, asError(err)
	}
	roles, err := store.ActiveRoleAssignments(ctx, a.db.Pool, p.ClusterID, p.NodeID)
	if err != nil {
		return DesiredState{}, asError(err)
	}
	if m.Status != string(domain.MembershipActive) {
		roles = []store.RoleAssignment{}
	}
	return DesiredState{ClusterID: p.ClusterID, NodeID: p.NodeID, MembershipStatus: m.Status, Roles: roles}, nil
}

// Certificate states answered by CertificateStatus.
const (
	CertGood    = "good"
	CertRevoked = "revoked"
	CertExpired = "expired"
	CertUnknown = "unknown"
)

// CertificateStatusResult is the answer of CertificateStatus.
type CertificateStatusResult struct {
	Status    string `json:"status"`
	ClusterID string `json:"cluster_id,omitempty"`
	NodeID    string `json:"node_id,omitempty"`
	Serial    string `json:"serial,omitempty"`
}

// CertificateStatus tells whether a node certificate issued by a cluster CA is
// good, revoked or expired — public information, like a CRL entry. An agent
// whose TLS handshakes are refused asks this (without a client certificate)
// to tell revocation from an authority that cannot check right now.
func (a *Authority) CertificateStatus(ctx context.Context, der []byte) (CertificateStatusResult, error) {
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return CertificateStatusResult{}, Errf(CodeInvalid, "certificate must be DER")
	}
	id, err := pki.NodeIdentityOf(cert)
	if err != nil {
		return CertificateStatusResult{}, Errf(CodeInvalid, "not a node certificate")
	}
	ca, ok := a.state.ClusterCA(id.ClusterID)
	if !ok {
		return CertificateStatusResult{Status: CertUnknown}, nil
	}
	issued := false
	for _, k := range append([]fsm.CAKey{ca.Current}, ca.History...) {
		if caCert, err := x509.ParseCertificate(k.CertDER); err == nil && cert.CheckSignatureFrom(caCert) == nil {
			issued = true
			break
		}
	}
	res := CertificateStatusResult{Status: CertUnknown, ClusterID: id.ClusterID, NodeID: id.NodeID, Serial: id.Serial}
	if !issued {
		return CertificateStatusResult{Status: CertUnknown}, nil
	}
	err = a.CheckNodeCertificate(ctx, id.ClusterID, id.NodeID, id.Serial)
	switch {
	case CodeOf(err) == CodeRevoked:
		res.Status = CertRevoked
	case err != nil && CodeOf(err) != CodeUnauthorized:
		return CertificateStatusResult{}, asError(err)
	case err != nil:
		res.Status = CertUnknown
	case !a.cfg.Clock().Before(cert.NotAfter):
		res.Status = CertExpired
	default:
		res.Status = CertGood
	}
	return res, nil
}
