// Package authority is the fenced control-plane service of the RAP Fabric Core.
//
// It owns the rules of who may change what, and when: every partition-sensitive
// change (clusters, join tokens, join requests, approvals, certificates,
// revocations, roles, policy) runs through Fenced, which refuses unless this
// process leads the Raft group with a quorum and holds the newest authority
// epoch, and then writes the change and its audit event in one PostgreSQL
// transaction that PostgreSQL itself refuses if the epoch went stale.
//
// Usage, in order:
//  1. New(Config, Consensus, *fsm.FSM, *store.DB) validates the Config and
//     builds the subsystems (Admin, Heartbeats, snapshots) as fields — wiring
//     only, no I/O. The composition root (package daemon) runs their loops.
//  2. The Raft node calls OnLeader(epoch) after it has committed a ClaimEpoch
//     for its term; the authority claims the PostgreSQL fence with that epoch and
//     only then serves fenced writes. OnFollower() stops them at once.
//  3. Operations (CreateCluster, CreateJoinToken, SubmitJoinRequest, Approve…)
//     return *Error values with machine-readable codes.
//
// It does not speak HTTP (httpapi does) and does not hold Raft itself
// (authority/raftnode does); it depends on both only through the small
// interfaces declared here.
package authority

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rap-fabric/core/audit"
	"github.com/rap-fabric/core/fsm"
	"github.com/rap-fabric/core/store"
)

// Consensus is what the authority needs from its Raft node.
type Consensus interface {
	// IsLeader reports whether this node believes it is the Raft leader.
	IsLeader() bool
	// LeaderID returns the id of the current leader as known locally, or "".
	LeaderID() string
	// VerifyLeader confirms leadership with a quorum, failing within the
	// context's deadline when no quorum answers.
	VerifyLeader(ctx context.Context) error
	// Apply proposes cmd through the log and returns the FSM's result. requestID
	// makes the command idempotent in the FSM.
	Apply(ctx context.Context, requestID string, cmd fsm.Command) (fsm.Result, error)
}

// Errors a Consensus implementation returns, recognized with errors.Is.
var (
	// ErrConsensusNotLeader: this node is not the leader.
	ErrConsensusNotLeader = errors.New("not leader")
	// ErrConsensusNoQuorum: leadership or a commit could not be confirmed in time.
	ErrConsensusNoQuorum = errors.New("no quorum")
	// ErrConsensusUnknown: leadership was lost while the command was in flight.
	ErrConsensusUnknown = errors.New("outcome unknown")
)

// Config configures an Authority. Zero values take the defaults noted.
type Config struct {
	// NodeID is this authority's id (as in the Raft group).
	NodeID string
	// Clock returns the current time; nil means time.Now.
	Clock func() time.Time
	// Rand is the randomness source for keys and secrets; nil means crypto/rand.
	Rand io.Reader
	// Logger; nil means a null logger.
	Logger hclog.Logger
	// Sealer seals CA private keys before they enter the Raft log; nil means
	// fsm.NoopSealer (no key-encryption key configured).
	Sealer fsm.Sealer
	// QuorumTimeout bounds VerifyLeader and Apply on fenced requests; 0 means 1.5 s.
	QuorumTimeout time.Duration
	// NodeCertLifetime is the lifetime of node certificates; 0 means 24 h.
	NodeCertLifetime time.Duration
	// JoinRequestTTL is how long a pending join request waits for review; 0 means 24 h.
	JoinRequestTTL time.Duration
	// CALifetime is the lifetime of a new cluster CA; 0 means 10 years.
	CALifetime time.Duration

	// Admin configures the platform admin security service (Authority.Admin).
	Admin AdminOptions
	// Heartbeats configures heartbeat ingest (Authority.Heartbeats).
	Heartbeats HeartbeatConfig
	// Snapshots configures snapshot building and serving (RunSnapshots,
	// WaitSnapshot).
	Snapshots SnapshotOptions
	// VPN configures the VPN control plane (vpn.go).
	VPN VPNConfig
	// Releases configures version storage (releases.go).
	Releases ReleasesConfig
	// Rollouts configures the rollout reconcile loop (rollouts.go).
	Rollouts RolloutsConfig
	// GroupCommit tunes the group commit of fenced writes (groupcommit.go).
	GroupCommit GroupCommitOptions
	// Audit configures the audit chain's Raft checkpoints (auditchain.go).
	Audit AuditConfig
	// Orgs configures organization accounts and projections (orgs.go).
	Orgs OrgsConfig
}

func (c *Config) defaults() {
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.Rand == nil {
		c.Rand = rand.Reader
	}
	if c.Logger == nil {
		c.Logger = hclog.NewNullLogger()
	}
	if c.Sealer == nil {
		c.Sealer = fsm.NoopSealer{}
	}
	if c.QuorumTimeout == 0 {
		c.QuorumTimeout = 1500 * time.Millisecond
	}
	if c.NodeCertLifetime == 0 {
		c.NodeCertLifetime = 24 * time.Hour
	}
	if c.JoinRequestTTL == 0 {
		c.JoinRequestTTL = 24 * time.Hour
	}
	if c.CALifetime == 0 {
		c.CALifetime = 10 * 365 * 24 * time.Hour
	}
}

// Authority is the fenced control-plane service of one authority process.
type Authority struct {
	cfg   Config
	raft  Consensus
	state *fsm.FSM
	db    *store.DB
	log   hclog.Logger

	// fenceEpoch is the authority epoch whose PostgreSQL fence this process
	// holds, or 0 when it is not a leader with a claimed fence.
	fenceEpoch atomic.Uint64
	// claimMu serializes fence claims.
	claimMu sync.Mutex

	limiter    *failureLimiter
	verifyOnce sync.Once
	verifyReq  chan chan error

	// caKeys caches CA private keys opened from the FSM's sealed copies,
	// keyed by clusterID|keyID.
	caKeys sync.Map
	// chains remembers node certificate chain verifications (certchains.go).
	chains chainMemo
	// lastAuditBreak is the audit chain break the periodic checkpointer last
	// reported (auditchain.go), so a persisting break is audited once.
	lastAuditBreak atomic.Pointer[string]
	// auditBehind is set while the periodic checkpointer refuses to
	// checkpoint a chain that is behind the latest checkpoint
	// (auditreanchor.go); auditCheckpointRefusals counts those refusals.
	auditBehind             atomic.Pointer[AuditChainBehind]
	auditCheckpointRefusals atomic.Int64

	// Subsystems, built by New from the Config.
	admin      *Admin
	heartbeats *Heartbeats
	snapshots  *snapshotService
	vpn        *VPN
	releases   *Releases
	rollouts   *Rollouts
	// metrics are this process's Prometheus series (metrics.go).
	metrics *metrics
	// groups batches concurrent fenced mutations into group transactions.
	groups *groupCommitter
	orgs   *Orgs
}

// New validates cfg and wires an Authority with its subsystems. It performs no
// I/O; an invalid cfg is refused with a *ConfigError naming the field.
func New(cfg Config, raft Consensus, state *fsm.FSM, db *store.DB) (*Authority, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.defaults()
	a := &Authority{cfg: cfg, raft: raft, state: state, db: db, log: cfg.Logger.Named("authority"),
		limiter: newFailureLimiter(cfg.Clock)}
	a.metrics = newMetrics()
	a.groups = newGroupCommitter(db, cfg.GroupCommit)
	if db != nil {
		db.SetGroupSavepoints(cfg.GroupCommit.Savepoints)
	}
	var err error
	if a.admin, err = newAdmin(a, cfg.Admin); err != nil {
		return nil, &ConfigError{Field: "Admin", Reason: err.Error()}
	}
	a.heartbeats = NewHeartbeats(a, cfg.Heartbeats, nil)
	a.snapshots = newSnapshotService(cfg.Snapshots)
	if a.vpn, err = newVPN(a, cfg.VPN); err != nil {
		return nil, &ConfigError{Field: "VPN", Reason: err.Error()}
	}
	if a.releases, err = newReleases(a, cfg.Releases); err != nil {
		return nil, &ConfigError{Field: "Releases", Reason: err.Error()}
	}
	if a.rollouts, err = newRollouts(a, cfg.Rollouts); err != nil {
		return nil, &ConfigError{Field: "Rollouts", Reason: err.Error()}
	}
	if a.orgs, err = newOrgs(a, cfg.Orgs); err != nil {
		return nil, &ConfigError{Field: "Orgs", Reason: err.Error()}
	}
	return a, nil
}

// Orgs returns the organization subsystem (accounts, endpoints, resources,
// policies, audit of tenants).
func (a *Authority) Orgs() *Orgs { return a.orgs }

// Releases returns the version storage subsystem.
func (a *Authority) Releases() *Releases { return a.releases }

// Rollouts returns the rollout subsystem.
func (a *Authority) Rollouts() *Rollouts { return a.rollouts }

// VPN returns the VPN control-plane subsystem.
func (a *Authority) VPN() *VPN { return a.vpn }

// Admin returns the platform admin security service.
func (a *Authority) Admin() *Admin { return a.admin }

// Heartbeats returns this authority's heartbeat ingest.
func (a *Authority) Heartbeats() *Heartbeats { return a.heartbeats }

// DB returns the store (for read paths of other packages).
func (a *Authority) DB() *store.DB { return a.db }

// FSM returns the replicated state machine (read accessors only).
func (a *Authority) FSM() *fsm.FSM { return a.state }

// Now returns the authority's clock.
func (a *Authority) Now() time.Time { return a.cfg.Clock() }

// FenceEpoch returns the epoch whose PostgreSQL fence this process holds, or
// 0. It trails the FSM's AgreedEpoch: a new leader claims the fence with the
// epoch the log agreed on.
func (a *Authority) FenceEpoch() uint64 { return a.fenceEpoch.Load() }

// OnLeader is called by the Raft node after it committed a ClaimEpoch for its
// term. It claims the PostgreSQL fence with epoch, retrying while this node
// still leads; fenced writes are served only once the claim succeeded.
func (a *Authority) OnLeader(epoch uint64) {
	go a.claim(epoch)
}

// OnFollower is called when this node stops leading: fenced writes stop at once.
func (a *Authority) OnFollower() {
	a.fenceEpoch.Store(0)
}

// startVerifier starts the loop that runs quorum confirmations in rounds: it
// takes every request waiting when a round starts, confirms once, and answers
// them all.
func (a *Authority) startVerifier() {
	a.verifyOnce.Do(func() {
		a.verifyReq = make(chan chan error)
		go func() {
			for w := range a.verifyReq {
				batch := []chan error{w}
			drain:
				for {
					select {
					case more := <-a.verifyReq:
						batch = append(batch, more)
					default:
						break drain
					}
				}
				ctx, cancel := context.WithTimeout(context.Background(), a.cfg.QuorumTimeout)
				err := a.raft.VerifyLeader(ctx)
				cancel()
				for _, b := range batch {
					b <- err
				}
			}
		}()
	})
}

func (a *Authority) claim(epoch uint64) {
	a.claimMu.Lock()
	defer a.claimMu.Unlock()
	backoff := 50 * time.Millisecond
	for a.raft.IsLeader() && a.state.AgreedEpoch() == epoch {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		ok, err := a.db.ClaimFence(ctx, epoch, a.cfg.NodeID)
		cancel()
		if err == nil && ok {
			a.fenceEpoch.Store(epoch)
			a.log.Info("claimed authority fence", "epoch", epoch)
			return
		}
		if err == nil && !ok {
			f, _ := a.db.Fence(context.Background())
			a.log.Error("fence already at a newer epoch; not serving fenced writes", "epoch", epoch, "fence_epoch", f.Epoch, "fence_leader", f.LeaderID)
			return
		}
		a.log.Warn("claiming the authority fence failed; retrying", "epoch", epoch, "error", err)
		time.Sleep(backoff)
		if backoff < 2*time.Second {
			backoff *= 2
		}
	}
}

// Actor is who asks for an operation, recorded in the audit log.
type Actor struct {
	ID         string // user id, token id, node id or "system"
	Kind       string // user | api-token | node | system
	Device     string
	SourceAddr string
	// Risk holds the risk signals of the request (device trust, session, MFA
	// freshness, credential kind); every audit event of the request carries them.
	Risk map[string]string
	// Role is the platform role of a user session or owner API token
	// (store.RolePlatformOwner, store.RolePlatformAdmin); empty otherwise.
	Role string
}

// Op describes a fenced operation for the audit log and idempotency.
type Op struct {
	Action         string
	Actor          Actor
	ClusterID      string
	TargetKind     string
	TargetID       string
	IdempotencyKey string
	Details        map[string]any

	// OrganizationID puts the event into that organization's own audit view.
	OrganizationID string
}

// ensureLeader checks, without a quorum round trip, that this node leads with a
// claimed fence; it returns the epoch or a not_leader / no_quorum error.
func (a *Authority) ensureLeader() (uint64, error) {
	if !a.raft.IsLeader() {
		return 0, a.notLeader()
	}
	e := a.fenceEpoch.Load()
	if e == 0 {
		return 0, Errf(CodeNoQuorum, "this authority is taking leadership; retry shortly")
	}
	return e, nil
}

func (a *Authority) notLeader() *Error {
	id := a.raft.LeaderID()
	if id == "" {
		return &Error{Code: CodeNoQuorum, Message: "no authority leader is known: this authority may be in a minority partition"}
	}
	addr := ""
	if m, ok := a.state.Member(id); ok {
		addr = m.APIAddr
	}
	return &Error{Code: CodeNotLeader, Message: "this authority is not the leader", Details: map[string]any{"leader_id": id, "leader_api_addr": addr}}
}

// verifyQuorum confirms leadership with a quorum for this request. Concurrent
// requests share confirmation rounds, but every request waits for a round that
// started after it arrived: a leader cut off from its quorum refuses every
// request that arrives after the cut, however recent the last confirmation.
func (a *Authority) verifyQuorum(ctx context.Context) error {
	a.startVerifier()
	w := make(chan error, 1)
	select {
	case a.verifyReq <- w:
	case <-ctx.Done():
		return &Error{Code: CodeNoQuorum, Message: "leadership could not be confirmed before the request ended", Err: ctx.Err()}
	}
	var err error
	select {
	case err = <-w:
	case <-ctx.Done():
		return &Error{Code: CodeNoQuorum, Message: "leadership could not be confirmed before the request ended", Err: ctx.Err()}
	}
	if err != nil {
		if errors.Is(err, ErrConsensusNotLeader) {
			a.fenceEpoch.Store(0)
			return a.notLeader()
		}
		return &Error{Code: CodeNoQuorum, Message: "leadership could not be confirmed by a quorum of authorities; nothing was written", Err: err}
	}
	return nil
}

// apply proposes an FSM command as a fenced step (leader + quorum).
func (a *Authority) apply(ctx context.Context, requestID string, cmd fsm.Command) (fsm.Result, error) {
	if _, err := a.ensureLeader(); err != nil {
		return fsm.Result{}, err
	}
	// Confirm the quorum first, so a minority leader refuses with no_quorum
	// instead of proposing an entry whose outcome would be unknown.
	if err := a.verifyQuorum(ctx); err != nil {
		return fsm.Result{}, err
	}
	actx, cancel := context.WithTimeout(ctx, a.cfg.QuorumTimeout+time.Second)
	defer cancel()
	res, err := a.raft.Apply(actx, requestID, cmd)
	switch {
	case err == nil:
	case errors.Is(err, ErrConsensusNotLeader):
		return res, a.notLeader()
	case errors.Is(err, ErrConsensusUnknown):
		return res, &Error{Code: CodeUnknownOutcome, Message: "leadership was lost while the change was in flight; retry with the same Idempotency-Key", Err: err}
	default:
		return res, &Error{Code: CodeNoQuorum, Message: "the change could not be committed by a quorum of authorities", Err: err}
	}
	if res.Err != nil {
		return res, &Error{Code: CodeInvalid, Message: res.Err.Error(), Err: res.Err}
	}
	return res, nil
}

// Fenced runs fn as a fenced mutation: leader with a claimed fence, leadership
// confirmed by a quorum, then one PostgreSQL transaction under the fence that
// also appends the audit event and, with an idempotency key, stores the
// response so that a retry returns it instead of applying again.
func Fenced[T any](ctx context.Context, a *Authority, op Op, fn func(tx pgx.Tx) (T, error)) (_ T, err error) {
	start := time.Now()
	defer func() { a.metrics.observeFenced(op, start, err) }()
	var zero T
	epoch, err := a.ensureLeader()
	if err != nil {
		return zero, err
	}
	if err := a.verifyQuorum(ctx); err != nil {
		return zero, err
	}
	if err := a.partitionGate(op); err != nil {
		a.auditFailure(ctx, op, asError(err))
		return zero, err
	}
	var out T
	replayed := false
	// An Idempotency-Key is scoped to the actor and the action. Its row is
	// inserted first (in the round trip that begins the transaction and
	// declares the epoch), so a concurrent duplicate waits for this transaction
	// and then reads the stored response instead of applying again.
	key := op.Actor.ID + "|" + op.Action + "|" + op.IdempotencyKey
	var first *pgx.Batch
	inserted := false
	if op.IdempotencyKey != "" {
		first = &pgx.Batch{}
		first.Queue(`INSERT INTO idempotency_keys (key, actor, action) VALUES ($1, $2, $3) ON CONFLICT (key) DO NOTHING`, key, op.Actor.ID, op.Action).
			Exec(func(tag pgconn.CommandTag) error { inserted = tag.RowsAffected() != 0; return nil })
	}
	// The audit event (and the stored response) are sent with COMMIT, in the
	// same transaction.
	err = a.fencedWrite(ctx, epoch, first, func(tx pgx.Tx, last *pgx.Batch) error {
		if op.IdempotencyKey != "" && !inserted {
			var stored []byte
			if err := tx.QueryRow(ctx, `SELECT response FROM idempotency_keys WHERE key = $1`, key).Scan(&stored); err != nil {
				return err
			}
			replayed = true
			hash, resp, wrapped := unwrapResponse(stored)
			if wrapped && hash != requestHashFrom(ctx) {
				return idempotencyReused(op)
			}
			return json.Unmarshal(resp, &out)
		}
		v, err := fn(tx)
		if err != nil {
			return err
		}
		out = v
		ev, err := a.auditEvent(op, "ok", int64(epoch), nil)
		if err != nil {
			return err
		}
		store.QueueAudit(last, ev)
		if op.IdempotencyKey != "" {
			resp, err := wrapResponse(requestHashFrom(ctx), v)
			if err != nil {
				return err
			}
			last.Queue(`UPDATE idempotency_keys SET response = $2 WHERE key = $1`, key, resp)
		}
		return nil
	})
	if err != nil {
		ae := asError(err)
		if ae.Code == CodeStaleEpoch {
			a.fenceEpoch.CompareAndSwap(epoch, 0)
		}
		if ae.Code != CodeNoQuorum && ae.Code != CodeNotLeader && ae.Code != CodeUnavailable && !replayed {
			a.auditFailure(ctx, op, ae)
		}
		return zero, ae
	}
	return out, nil
}

// auditFailure records a refused or failed fenced operation (outside the fenced
// transaction, which rolled back).
func (a *Authority) auditFailure(ctx context.Context, op Op, e *Error) {
	outcome := "failed"
	if e.Code == CodeForbidden || e.Code == CodeStepUp || e.Code == CodeUnauthorized || e.Code == CodeTokenInvalid || e.Code == CodeRateLimited {
		outcome = "denied"
	}
	if op.Details == nil {
		op.Details = map[string]any{}
	}
	op.Details["error_code"] = string(e.Code)
	op.Details["error"] = e.Message
	err := a.db.Tx(ctx, func(tx pgx.Tx) error { return a.appendAudit(ctx, tx, op, outcome, 0, nil) })
	if err != nil {
		a.log.Warn("could not audit a failed operation", "action", op.Action, "error", err)
	}
}

// Audit records an event that is not part of a fenced mutation (heartbeat
// health changes, refused attempts, agent reports) in its own transaction.
func (a *Authority) Audit(ctx context.Context, op Op, outcome string) error {
	return a.db.Tx(ctx, func(tx pgx.Tx) error { return a.appendAudit(ctx, tx, op, outcome, 0, nil) })
}

func (a *Authority) appendAudit(ctx context.Context, tx pgx.Tx, op Op, outcome string, epoch int64, risk map[string]any) error {
	ev, err := a.auditEvent(op, outcome, epoch, risk)
	if err != nil {
		return err
	}
	return store.AppendAudit(ctx, tx, ev)
}

// auditEvent builds and validates the audit row of op.
func (a *Authority) auditEvent(op Op, outcome string, epoch int64, risk map[string]any) (store.AuditEvent, error) {
	details, err := json.Marshal(op.Details)
	if err != nil {
		return store.AuditEvent{}, fmt.Errorf("audit details: %w", err)
	}
	if op.Details == nil {
		details = []byte(`{}`)
	}
	riskJSON := []byte(`{}`)
	if risk == nil && len(op.Actor.Risk) > 0 {
		risk = make(map[string]any, len(op.Actor.Risk))
		for k, v := range op.Actor.Risk {
			risk[k] = v
		}
	}
	if risk != nil {
		if riskJSON, err = json.Marshal(risk); err != nil {
			return store.AuditEvent{}, err
		}
	}
	ev := store.AuditEvent{
		At: a.cfg.Clock(), Actor: op.Actor.ID, ActorKind: op.Actor.Kind, Device: op.Actor.Device, SourceAddr: op.Actor.SourceAddr,
		Action: op.Action, TargetKind: op.TargetKind, TargetID: op.TargetID, Outcome: outcome, Details: details, Risk: riskJSON,
	}
	if ev.ActorKind == "" {
		ev.ActorKind = "system"
	}
	if ev.Actor == "" {
		ev.Actor = "system"
	}
	if op.ClusterID != "" {
		c := op.ClusterID
		ev.ClusterID = &c
	}
	if op.OrganizationID != "" {
		o := op.OrganizationID
		ev.OrganizationID = &o
	}
	if epoch > 0 {
		ev.FenceEpoch = &epoch
	}
	if _, perr := netip.ParseAddr(ev.SourceAddr); ev.SourceAddr != "" && perr != nil {
		ev.SourceAddr = ""
	}
	if _, err := audit.Normalize(toAuditEvent(ev, 0)); err != nil {
		return store.AuditEvent{}, fmt.Errorf("audit event: %w", err)
	}
	return ev, nil
}
