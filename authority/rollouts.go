package authority

// Rollouts (spec stage C19; docs/releases.md): rollout policy lives in
// PostgreSQL (rollout_policies), every change is fenced and audited and the
// owner's changes need step-up with a session; the desired versions reach
// each agent in its signed snapshot (updates section, built by
// loadUpdates); agents report their update state (node_update_runs); the
// leader's reconcile loop advances, completes or halts running rollouts with
// the pure planner of package rollout.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5"

	"github.com/rap-fabric/core/agentapi"
	"github.com/rap-fabric/core/release"
	"github.com/rap-fabric/core/rollout"
	"github.com/rap-fabric/core/snapshot"
	"github.com/rap-fabric/core/store"
)

// RolloutsConfig configures the rollout service. The zero value is usable.
type RolloutsConfig struct {
	// Interval is how often the leader re-evaluates running rollouts
	// (reports also trigger an evaluation); 0 means 2 s.
	Interval time.Duration
	// Logger; nil means the authority's logger.
	Logger hclog.Logger
}

// Validate reports the first unusable field of c as a *ConfigError (Field
// relative to RolloutsConfig). Zero values mean defaults.
func (c RolloutsConfig) Validate() error {
	if c.Interval < 0 {
		return configErr("Interval", "must not be negative (got %s)", c.Interval)
	}
	return nil
}

// Rollouts is the rollout service of one authority process.
type Rollouts struct {
	a    *Authority
	cfg  RolloutsConfig
	log  hclog.Logger
	kick chan struct{}
}

// newRollouts builds the rollout service on a. It performs no I/O.
func newRollouts(a *Authority, cfg RolloutsConfig) (*Rollouts, error) {
	if a == nil {
		return nil, errors.New("rollouts: nil authority")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Interval == 0 {
		cfg.Interval = 2 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = a.log
	}
	return &Rollouts{a: a, cfg: cfg, log: cfg.Logger.Named("rollouts"), kick: make(chan struct{}, 1)}, nil
}

// StartRolloutRequest is the body of POST /v1/clusters/{cluster}/rollouts.
// Zero policy fields take rollout.DefaultPolicy's values.
type StartRolloutRequest struct {
	Product          string `json:"product"`
	Version          string `json:"version"`
	CanaryCount      *int   `json:"canary_count,omitempty"`
	CanaryPercent    int    `json:"canary_percent,omitempty"`
	WavePercent      int    `json:"wave_percent,omitempty"`
	SoakSeconds      *int   `json:"soak_seconds,omitempty"`
	FailureThreshold int    `json:"failure_threshold,omitempty"`
	DeadlineSeconds  int    `json:"update_deadline_seconds,omitempty"`
	Reason           string `json:"reason,omitempty"`
}

func (r StartRolloutRequest) policy() rollout.Policy {
	p := rollout.DefaultPolicy()
	if r.CanaryCount != nil {
		p.CanaryCount = *r.CanaryCount
	}
	if r.CanaryPercent != 0 {
		p.CanaryPercent = r.CanaryPercent
	}
	if r.WavePercent != 0 {
		p.WavePercent = r.WavePercent
	}
	if r.SoakSeconds != nil {
		p.Soak = time.Duration(*r.SoakSeconds) * time.Second
	}
	if r.FailureThreshold != 0 {
		p.FailureThreshold = r.FailureThreshold
	}
	if r.DeadlineSeconds != 0 {
		p.Deadline = time.Duration(r.DeadlineSeconds) * time.Second
	}
	return p
}

func planOf(x store.Rollout) rollout.Rollout {
	r := rollout.Rollout{ID: x.ID, State: rollout.State(x.State), Target: x.TargetVersion, Rollback: x.RollbackVersion, CurrentWave: x.CurrentWave,
		Policy: rollout.Policy{CanaryCount: x.CanaryCount, CanaryPercent: x.CanaryPercent, WavePercent: x.WavePercent,
			Soak: time.Duration(x.SoakSeconds) * time.Second, FailureThreshold: x.FailureThreshold, Deadline: time.Duration(x.DeadlineSeconds) * time.Second}}
	if x.WaveStartedAt != nil {
		r.WaveStartedAt = *x.WaveStartedAt
	}
	return r
}

// publishedRelease returns a release that may be rolled out or pinned: it
// exists, is not blocklisted, has every artifact stored, and the
// control-plane schema it requires is applied.
func (s *Rollouts) publishedRelease(ctx context.Context, product, version string) (store.Release, error) {
	rel, err := store.GetReleaseByVersion(ctx, s.a.db.Pool, product, version)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return store.Release{}, Errf(CodeNotFound, "release %s %s is not published", product, version)
		}
		return store.Release{}, asError(err)
	}
	if rel.Status != "published" {
		return store.Release{}, &Error{Code: CodeConflict, Message: fmt.Sprintf("%s %s is blocklisted: %s", product, version, rel.StatusReason),
			Details: map[string]any{"reason": release.ReasonBlocklisted}}
	}
	if !rel.Available {
		return store.Release{}, &Error{Code: CodeConflict, Message: fmt.Sprintf("%s %s: not every artifact is uploaded yet", product, version),
			Details: map[string]any{"reason": "artifacts_missing"}}
	}
	applied, err := store.AppliedSchemaVersion(ctx, s.a.db.Pool)
	if err != nil {
		return store.Release{}, asError(err)
	}
	if rel.PostgresSchema > applied {
		return store.Release{}, &Error{Code: CodeConflict, Message: fmt.Sprintf("%s %s needs control-plane schema %d; %d is applied: upgrade the authorities first", product, version, rel.PostgresSchema, applied),
			Details: map[string]any{"reason": "schema_not_applied", "required": rel.PostgresSchema, "applied": applied}}
	}
	return rel, nil
}

// Start begins a rollout of product@version in a cluster: canary first, then
// waves (fenced, audited; step-up with a session). The last-known-good
// release (the product's stable channel head) becomes the rollback target.
func (s *Rollouts) Start(ctx context.Context, actor Actor, clusterRef string, req StartRolloutRequest, idemKey string) (RolloutView, error) {
	p := req.policy()
	if err := p.Validate(); err != nil {
		return RolloutView{}, Errf(CodeInvalid, "%s", strings.TrimPrefix(err.Error(), "rollout: invalid policy: "))
	}
	if !release.ValidProduct(req.Product) {
		return RolloutView{}, Errf(CodeInvalid, "product must be rap-node-agent or a service type")
	}
	c, err := s.a.GetCluster(ctx, clusterRef)
	if err != nil {
		return RolloutView{}, err
	}
	op := Op{Action: "rollout.start", Actor: actor, ClusterID: c.ID, TargetKind: "rollout", IdempotencyKey: idemKey,
		Details: map[string]any{"product": req.Product, "version": req.Version, "reason": req.Reason}}
	rel, err := s.publishedRelease(ctx, req.Product, req.Version)
	if err != nil {
		s.a.auditFailure(ctx, op, asError(err))
		return RolloutView{}, err
	}
	x := store.Rollout{ID: store.NewID(), ClusterID: c.ID, Product: req.Product, TargetReleaseID: rel.ID, CanaryCount: p.CanaryCount,
		CanaryPercent: p.CanaryPercent, WavePercent: p.WavePercent, SoakSeconds: int(p.Soak / time.Second), FailureThreshold: p.FailureThreshold,
		DeadlineSeconds: int(p.Deadline / time.Second), State: string(rollout.StateRunning), StateReason: req.Reason, CreatedBy: actor.ID}
	now := s.a.cfg.Clock().UTC()
	x.WaveStartedAt = &now
	if lkg, err := store.GetChannelHead(ctx, s.a.db.Pool, req.Product, string(release.ChannelStable)); err == nil && lkg.ReleaseID != rel.ID {
		x.RollbackReleaseID = &lkg.ReleaseID
		op.Details["rollback_version"] = lkg.Version
	}
	op.TargetID = x.ID
	out, err := Fenced(ctx, s.a, op, func(tx pgx.Tx) (store.Rollout, error) {
		out, err := store.InsertRollout(ctx, tx, x)
		if err != nil {
			return out, err
		}
		// A release being rolled out heads the candidate channel when its
		// manifest is eligible for it (nodes assigned to candidate take it).
		if slices.Contains(rel.Channels, string(release.ChannelCandidate)) {
			err = store.SetChannelHead(ctx, tx, req.Product, string(release.ChannelCandidate), rel.ID, "rollout:"+x.ID)
		}
		return out, err
	})
	if err != nil {
		if CodeOf(err) == CodeConflict {
			return RolloutView{}, Errf(CodeConflict, "a rollout of %s is already open in this cluster: pause, roll back or finish it first", req.Product)
		}
		return RolloutView{}, err
	}
	s.log.Info("rollout started", "cluster_id", c.ID, "product", req.Product, "version", req.Version, "rollout", out.ID, "actor", actor.ID)
	s.Kick()
	return s.view(ctx, out)
}

// NodeProgress is one node's part in a rollout.
type NodeProgress struct {
	NodeID      string `json:"node_id"`
	Wave        int    `json:"wave"`
	Outcome     string `json:"outcome"` // succeeded | failed | pending | waiting
	State       string `json:"update_state,omitempty"`
	Current     string `json:"current_version,omitempty"`
	Target      string `json:"target_version,omitempty"`
	LastFailure string `json:"last_failure,omitempty"`
}

// WaveView is one wave's progress.
type WaveView struct {
	Index     int            `json:"index"`
	Canary    bool           `json:"canary"`
	Nodes     []NodeProgress `json:"nodes"`
	Succeeded int            `json:"succeeded"`
	Failed    int            `json:"failed"`
	Pending   int            `json:"pending"`
}

// RolloutView is a rollout with its waves and what the planner decides now.
type RolloutView struct {
	store.Rollout
	Waves    []WaveView `json:"waves"`
	Decision string     `json:"decision"`
	Next     string     `json:"next"`
}

func (s *Rollouts) view(ctx context.Context, x store.Rollout) (RolloutView, error) {
	members, err := store.ActiveMemberIDs(ctx, s.a.db.Pool, x.ClusterID)
	if err != nil {
		return RolloutView{}, asError(err)
	}
	runs, err := store.LatestUpdateRuns(ctx, s.a.db.Pool, x.ClusterID, x.Product)
	if err != nil {
		return RolloutView{}, asError(err)
	}
	plan := planOf(x)
	waves := rollout.Waves(x.ID, members, plan.Policy)
	reports, byNode := reportsOf(runs)
	now := s.a.cfg.Clock()
	d := rollout.Evaluate(plan, waves, reports, now)
	v := RolloutView{Rollout: x, Decision: string(d.Action), Next: d.Reason, Waves: []WaveView{}}
	// The current wave's nodes are classified as if it were running, so a
	// paused or halted rollout still shows who failed.
	classify := plan
	classify.State = rollout.StateRunning
	c := rollout.Evaluate(classify, waves, reports, now)
	outcome := map[string]string{}
	if x.State != string(rollout.StateCompleted) {
		for _, n := range c.Succeeded {
			outcome[n] = "succeeded"
		}
		for _, n := range c.Failed {
			outcome[n] = "failed"
		}
		for _, n := range c.Pending {
			outcome[n] = "pending"
		}
	}
	for i, w := range waves {
		wv := WaveView{Index: i, Canary: i == 0, Nodes: []NodeProgress{}}
		for _, n := range w {
			np := NodeProgress{NodeID: n, Wave: i, Outcome: outcome[n]}
			if np.Outcome == "" {
				np.Outcome = "waiting"
				if i < x.CurrentWave || x.State == string(rollout.StateCompleted) {
					np.Outcome = "succeeded"
				}
			}
			if r, ok := byNode[n]; ok {
				np.State, np.Current, np.Target, np.LastFailure = r.State, r.CurrentVersion, r.ToVersion, r.LastFailure
			}
			switch np.Outcome {
			case "succeeded":
				wv.Succeeded++
			case "failed":
				wv.Failed++
			case "pending":
				wv.Pending++
			}
			wv.Nodes = append(wv.Nodes, np)
		}
		v.Waves = append(v.Waves, wv)
	}
	return v, nil
}

func reportsOf(runs []store.UpdateRun) (map[string]rollout.Report, map[string]store.UpdateRun) {
	reports := make(map[string]rollout.Report, len(runs))
	byNode := make(map[string]store.UpdateRun, len(runs))
	for _, r := range runs {
		reports[r.NodeID] = rollout.Report{Current: r.CurrentVersion, Target: r.ToVersion, State: r.State, At: r.UpdatedAt}
		byNode[r.NodeID] = r
	}
	return reports, byNode
}

// Get returns one rollout of a cluster with its waves.
func (s *Rollouts) Get(ctx context.Context, clusterRef, id string) (RolloutView, error) {
	c, err := s.a.GetCluster(ctx, clusterRef)
	if err != nil {
		return RolloutView{}, err
	}
	x, err := store.GetRollout(ctx, s.a.db.Pool, id)
	if err != nil || x.ClusterID != c.ID {
		return RolloutView{}, Errf(CodeNotFound, "no rollout %s in cluster %s", id, clusterRef)
	}
	return s.view(ctx, x)
}

// List lists a cluster's rollouts, newest first.
func (s *Rollouts) List(ctx context.Context, clusterRef string, p store.Page) ([]store.Rollout, error) {
	c, err := s.a.GetCluster(ctx, clusterRef)
	if err != nil {
		return nil, err
	}
	out, err := store.ListRollouts(ctx, s.a.db.Pool, c.ID, p)
	return out, asErrorOrNil(err)
}

// RolloutAction is an owner action on an open rollout.
type RolloutAction string

// Rollout actions.
const (
	RolloutPause    RolloutAction = "pause"
	RolloutResume   RolloutAction = "resume"
	RolloutRollback RolloutAction = "rollback"
)

// RolloutActionRequest is the body of a rollout action.
type RolloutActionRequest struct {
	Reason string `json:"reason"`
}

// Act pauses, resumes or rolls back a rollout (fenced, audited; step-up
// with a session). Resume restarts the current wave's clock (a halted wave
// gets a fresh deadline); resuming a pin ends it with the pinned version as
// the completed target. Rollback sends every node back to the
// last-known-good release, downgrade explicitly allowed.
func (s *Rollouts) Act(ctx context.Context, actor Actor, clusterRef, id string, act RolloutAction, req RolloutActionRequest, idemKey string) (RolloutView, error) {
	req.Reason = strings.TrimSpace(req.Reason)
	if req.Reason == "" || len(req.Reason) > 500 {
		return RolloutView{}, Errf(CodeInvalid, "reason is required (at most 500 characters)")
	}
	c, err := s.a.GetCluster(ctx, clusterRef)
	if err != nil {
		return RolloutView{}, err
	}
	op := Op{Action: "rollout." + string(act), Actor: actor, ClusterID: c.ID, TargetKind: "rollout", TargetID: id, IdempotencyKey: idemKey,
		Details: map[string]any{"reason": req.Reason}}
	out, err := Fenced(ctx, s.a, op, func(tx pgx.Tx) (store.Rollout, error) {
		x, err := store.LockRollout(ctx, tx, id)
		if err != nil || x.ClusterID != c.ID {
			return store.Rollout{}, Errf(CodeNotFound, "no rollout %s in cluster %s", id, clusterRef)
		}
		from := rollout.State(x.State)
		var to rollout.State
		switch {
		case act == RolloutPause && from == rollout.StateRunning:
			to = rollout.StatePaused
		case act == RolloutResume && (from == rollout.StatePaused || from == rollout.StateHalted):
			to = rollout.StateRunning
		case act == RolloutResume && from == rollout.StatePinned:
			to = rollout.StateCompleted
		case act == RolloutRollback && from != rollout.StateRolledBack:
			if x.RollbackReleaseID == nil {
				return store.Rollout{}, Errf(CodeConflict, "no last-known-good release of %s to roll back to (its stable channel is empty)", x.Product)
			}
			to = rollout.StateRolledBack
		default:
			return store.Rollout{}, &Error{Code: CodeConflict, Message: fmt.Sprintf("cannot %s a rollout that is %s", act, from),
				Details: map[string]any{"state": string(from)}}
		}
		now := s.a.cfg.Clock().UTC()
		return store.UpdateRolloutState(ctx, tx, x.ID, string(to), x.CurrentWave, &now, req.Reason, "")
	})
	if err != nil {
		return RolloutView{}, err
	}
	s.log.Info("rollout "+string(act), "cluster_id", c.ID, "rollout", id, "state", out.State, "actor", actor.ID)
	s.Kick()
	return s.view(ctx, out)
}

// PinRequest is the body of POST /v1/clusters/{cluster}/rollouts/pin.
type PinRequest struct {
	Product string `json:"product"`
	Version string `json:"version"`
	Reason  string `json:"reason"`
}

// Pin makes every node of the cluster run product@version at once,
// downgrade allowed (emergency pin; fenced, audited, step-up). An open
// rollout of the product becomes the pin.
func (s *Rollouts) Pin(ctx context.Context, actor Actor, clusterRef string, req PinRequest, idemKey string) (RolloutView, error) {
	req.Reason = strings.TrimSpace(req.Reason)
	if req.Reason == "" || len(req.Reason) > 500 {
		return RolloutView{}, Errf(CodeInvalid, "reason is required (at most 500 characters)")
	}
	c, err := s.a.GetCluster(ctx, clusterRef)
	if err != nil {
		return RolloutView{}, err
	}
	op := Op{Action: "rollout.pin", Actor: actor, ClusterID: c.ID, TargetKind: "rollout", IdempotencyKey: idemKey,
		Details: map[string]any{"product": req.Product, "version": req.Version, "reason": req.Reason}}
	rel, err := s.publishedRelease(ctx, req.Product, req.Version)
	if err != nil {
		s.a.auditFailure(ctx, op, asError(err))
		return RolloutView{}, err
	}
	now := s.a.cfg.Clock().UTC()
	out, err := Fenced(ctx, s.a, op, func(tx pgx.Tx) (store.Rollout, error) {
		if open, err := store.OpenRollout(ctx, tx, c.ID, req.Product); err == nil {
			if _, err := store.LockRollout(ctx, tx, open.ID); err != nil {
				return store.Rollout{}, err
			}
			return store.UpdateRolloutState(ctx, tx, open.ID, string(rollout.StatePinned), open.CurrentWave, &now, req.Reason, rel.ID)
		} else if !errors.Is(err, store.ErrNotFound) {
			return store.Rollout{}, err
		}
		p := rollout.DefaultPolicy()
		return store.InsertRollout(ctx, tx, store.Rollout{ID: store.NewID(), ClusterID: c.ID, Product: req.Product, TargetReleaseID: rel.ID,
			CanaryCount: p.CanaryCount, WavePercent: p.WavePercent, SoakSeconds: int(p.Soak / time.Second), FailureThreshold: p.FailureThreshold,
			DeadlineSeconds: int(p.Deadline / time.Second), State: string(rollout.StatePinned), WaveStartedAt: &now, StateReason: req.Reason, CreatedBy: actor.ID})
	})
	if err != nil {
		return RolloutView{}, err
	}
	s.log.Warn("release pinned", "cluster_id", c.ID, "product", req.Product, "version", req.Version, "actor", actor.ID)
	return s.view(ctx, out)
}

// BlocklistRequest is the body of POST /v1/releases/{release}/blocklist.
type BlocklistRequest struct {
	Reason string `json:"reason"`
}

// Blocklist marks a release blocklisted everywhere (fenced, audited,
// step-up): agents refuse it (the blocklist is in every snapshot), its
// bytes are no longer served, and every open rollout targeting it halts.
func (s *Rollouts) Blocklist(ctx context.Context, actor Actor, ref string, req BlocklistRequest, idemKey string) (ReleaseView, error) {
	req.Reason = strings.TrimSpace(req.Reason)
	if req.Reason == "" || len(req.Reason) > 500 {
		return ReleaseView{}, Errf(CodeInvalid, "reason is required (at most 500 characters)")
	}
	var rel store.Release
	var err error
	if p, v, ok := strings.Cut(ref, "@"); ok {
		rel, err = store.GetReleaseByVersion(ctx, s.a.db.Pool, p, v)
	} else {
		rel, err = store.GetRelease(ctx, s.a.db.Pool, ref)
	}
	if err != nil {
		return ReleaseView{}, asError(err)
	}
	op := Op{Action: "release.blocklist", Actor: actor, TargetKind: "release", TargetID: rel.ID, IdempotencyKey: idemKey,
		Details: map[string]any{"product": rel.Product, "version": rel.Version, "reason": req.Reason}}
	out, err := Fenced(ctx, s.a, op, func(tx pgx.Tx) (store.Release, error) {
		if err := store.SetReleaseStatus(ctx, tx, rel.ID, "blocklisted", req.Reason); err != nil {
			return store.Release{}, err
		}
		if err := store.HaltRolloutsTargeting(ctx, tx, rel.ID, "target blocklisted: "+req.Reason); err != nil {
			return store.Release{}, err
		}
		return store.GetRelease(ctx, tx, rel.ID)
	})
	if err != nil {
		return ReleaseView{}, err
	}
	s.log.Warn("release blocklisted", "product", rel.Product, "version", rel.Version, "actor", actor.ID)
	return viewOf(out)
}

// UpdateReport is an agent's report on its update state for one product
// (POST /v1/agent/updates).
type UpdateReport = agentapi.UpdateReport

// Report records a node's update report (an observation, like a heartbeat:
// not fenced, any authority accepts it) and wakes the reconcile loop.
func (s *Rollouts) Report(ctx context.Context, node NodePrincipal, rep UpdateReport) (store.UpdateRun, error) {
	return s.report(ctx, node, rep, time.Time{})
}

// report records rep as observed at (zero: now); an observation older than
// what is recorded for the same version changes nothing.
func (s *Rollouts) report(ctx context.Context, node NodePrincipal, rep UpdateReport, at time.Time) (store.UpdateRun, error) {
	switch {
	case !release.ValidProduct(rep.Product):
		return store.UpdateRun{}, Errf(CodeInvalid, "product invalid")
	case !rollout.ValidUpdateState(rep.State):
		return store.UpdateRun{}, Errf(CodeInvalid, "state must be one of the update states (idle, checking, downloading, …, rolled_back, failed, fenced)")
	case len(rep.LastFailure) > 500:
		return store.UpdateRun{}, Errf(CodeInvalid, "last_failure is at most 500 characters")
	}
	for name, v := range map[string]string{"current_version": rep.CurrentVersion, "target_version": rep.TargetVersion, "from_version": rep.FromVersion} {
		if v == "" && name != "from_version" {
			return store.UpdateRun{}, Errf(CodeInvalid, "%s is required", name)
		}
		if v != "" {
			if _, err := release.ParseVersion(v); err != nil {
				return store.UpdateRun{}, Errf(CodeInvalid, "%s: %v", name, err)
			}
		}
	}
	run := store.UpdateRun{ClusterID: node.ClusterID, NodeID: node.NodeID, Product: rep.Product, CurrentVersion: rep.CurrentVersion,
		FromVersion: rep.FromVersion, ToVersion: rep.TargetVersion, State: rep.State, LastFailure: rep.LastFailure, Wave: -1, UpdatedAt: at}
	if open, err := store.OpenRollout(ctx, s.a.db.Pool, node.ClusterID, rep.Product); err == nil && open.TargetVersion == rep.TargetVersion {
		run.RolloutID = &open.ID
		if members, err := store.ActiveMemberIDs(ctx, s.a.db.Pool, node.ClusterID); err == nil {
			run.Wave = rollout.WaveOf(rollout.Waves(open.ID, members, planOf(open).Policy), node.NodeID)
		}
	}
	out, err := store.RecordUpdateRun(ctx, s.a.db.Pool, run)
	if err != nil {
		return store.UpdateRun{}, asError(err)
	}
	s.Kick()
	return out, nil
}

// NodeUpdates returns a node's newest update report per product in a
// cluster (the console's update state column).
func (s *Rollouts) NodeUpdates(ctx context.Context, clusterRef, nodeID string) ([]store.UpdateRun, error) {
	c, err := s.a.GetCluster(ctx, clusterRef)
	if err != nil {
		return nil, err
	}
	out, err := store.NodeUpdateRuns(ctx, s.a.db.Pool, c.ID, nodeID)
	return out, asErrorOrNil(err)
}

// Kick asks the reconcile loop for an evaluation soon.
func (s *Rollouts) Kick() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Run is the leader's reconcile loop: every Interval, and when kicked, it
// evaluates every running rollout and applies advance / complete / halt
// decisions in fenced, audited transactions. Followers do nothing. It
// returns when stop closes.
func (s *Rollouts) Run(stop <-chan struct{}) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-stop
		cancel()
	}()
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.kick:
		}
		if s.a.fenceEpoch.Load() == 0 || !s.a.raft.IsLeader() {
			continue
		}
		if err := s.Reconcile(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("rollout reconcile failed", "error", err)
		}
	}
}

// Reconcile evaluates every running rollout once (leader only).
func (s *Rollouts) Reconcile(ctx context.Context) error {
	running, err := store.RunningRollouts(ctx, s.a.db.Pool)
	if err != nil {
		return err
	}
	for _, x := range running {
		members, err := store.ActiveMemberIDs(ctx, s.a.db.Pool, x.ClusterID)
		if err != nil {
			return err
		}
		runs, err := store.LatestUpdateRuns(ctx, s.a.db.Pool, x.ClusterID, x.Product)
		if err != nil {
			return err
		}
		plan := planOf(x)
		waves := rollout.Waves(x.ID, members, plan.Policy)
		reports, _ := reportsOf(runs)
		d := rollout.Evaluate(plan, waves, reports, s.a.cfg.Clock())
		if d.Action == rollout.ActionNone {
			continue
		}
		if err := s.apply(ctx, x, d); err != nil {
			s.log.Warn("rollout decision not applied", "rollout", x.ID, "action", d.Action, "error", err)
		}
	}
	return nil
}

func (s *Rollouts) apply(ctx context.Context, x store.Rollout, d rollout.Decision) error {
	op := Op{Action: "rollout." + string(d.Action), Actor: Actor{ID: "system", Kind: "system"}, ClusterID: x.ClusterID, TargetKind: "rollout",
		TargetID: x.ID, Details: map[string]any{"wave": x.CurrentWave, "reason": d.Reason, "failed": d.Failed}}
	_, err := Fenced(ctx, s.a, op, func(tx pgx.Tx) (store.Rollout, error) {
		cur, err := store.LockRollout(ctx, tx, x.ID)
		if err != nil {
			return store.Rollout{}, err
		}
		if cur.State != x.State || cur.CurrentWave != x.CurrentWave {
			return cur, Errf(CodeConflict, "rollout changed while it was evaluated")
		}
		now := s.a.cfg.Clock().UTC()
		switch d.Action {
		case rollout.ActionAdvance:
			return store.UpdateRolloutState(ctx, tx, x.ID, string(rollout.StateRunning), x.CurrentWave+1, &now, d.Reason, "")
		case rollout.ActionHalt:
			return store.UpdateRolloutState(ctx, tx, x.ID, string(rollout.StateHalted), x.CurrentWave, x.WaveStartedAt, d.Reason, "")
		default: // complete: the target becomes the last known good
			for _, ch := range []release.Channel{release.ChannelCurrent, release.ChannelStable} {
				if err := store.SetChannelHead(ctx, tx, x.Product, string(ch), x.TargetReleaseID, "rollout:"+x.ID); err != nil {
					return store.Rollout{}, err
				}
			}
			return store.UpdateRolloutState(ctx, tx, x.ID, string(rollout.StateCompleted), x.CurrentWave, x.WaveStartedAt, d.Reason, "")
		}
	})
	if err == nil {
		s.log.Info("rollout "+string(d.Action), "cluster_id", x.ClusterID, "rollout", x.ID, "wave", x.CurrentWave, "reason", d.Reason)
	}
	return err
}

// loadUpdates builds the updates section input of a cluster's snapshots:
// release roots (FSM), the blocklist, and each member's desired versions
// from the newest rollout per product. Nil without release roots.
func (a *Authority) loadUpdates(ctx context.Context, clusterID string) (*snapshot.UpdateState, error) {
	fr, ok := a.state.ReleaseRoots()
	if !ok {
		return nil, nil
	}
	u := &snapshot.UpdateState{Roots: snapshot.ReleaseRoots{Version: fr.Version, Threshold: fr.Threshold, Keys: fr.Keys},
		Desired: map[string][]snapshot.DesiredVersion{}}
	blocked, err := store.BlocklistedVersions(ctx, a.db.Pool)
	if err != nil {
		return nil, err
	}
	for _, b := range blocked {
		u.Blocklist = append(u.Blocklist, snapshot.BlockedVersion{Product: b[0], Version: b[1]})
	}
	rollouts, err := store.CurrentRollouts(ctx, a.db.Pool, clusterID)
	if err != nil {
		return nil, err
	}
	members, err := store.ActiveMemberIDs(ctx, a.db.Pool, clusterID)
	if err != nil {
		return nil, err
	}
	// Which product@node pairs a rollout decided: an open one wins over a
	// channel assignment, a completed one yields to it (channels.go).
	fromOpen, fromCompleted := map[string]bool{}, map[string]bool{}
	digests := map[string]string{}
	for _, x := range rollouts {
		plan := planOf(x)
		waves := rollout.Waves(x.ID, members, plan.Policy)
		for _, n := range members {
			d, ok := rollout.DesiredFor(plan, waves, n)
			if !ok {
				continue
			}
			dg, seen := digests[x.Product+"@"+d.Version]
			if !seen {
				rel, err := store.GetReleaseByVersion(ctx, a.db.Pool, x.Product, d.Version)
				if err != nil {
					return nil, err
				}
				dg = rel.Digest
				digests[x.Product+"@"+d.Version] = dg
			}
			u.Desired[n] = append(u.Desired[n], snapshot.DesiredVersion{Product: x.Product, Version: d.Version, ManifestDigest: dg,
				RolloutID: x.ID, Wave: d.Wave, AllowDowngrade: d.AllowDowngrade, DeadlineSeconds: x.DeadlineSeconds})
			if openRollout(x.State) {
				fromOpen[x.Product+"@"+n] = true
			} else {
				fromCompleted[x.Product+"@"+n] = true
			}
		}
	}
	if err := a.desiredFromChannels(ctx, clusterID, members, u, fromOpen, fromCompleted); err != nil {
		return nil, err
	}
	return u, nil
}
