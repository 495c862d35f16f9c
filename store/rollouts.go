package store

import (
	"context"
	"time"
)

// Rollout is one rollout of a release in a cluster (table rollout_policies).
// TargetVersion and RollbackVersion are joined from releases.
type Rollout struct {
	ID                string     `json:"id"`
	ClusterID         string     `json:"cluster_id"`
	Product           string     `json:"product"`
	TargetReleaseID   string     `json:"target_release_id"`
	TargetVersion     string     `json:"target_version"`
	RollbackReleaseID *string    `json:"rollback_release_id,omitempty"`
	RollbackVersion   string     `json:"rollback_version,omitempty"`
	CanaryCount       int        `json:"canary_count"`
	CanaryPercent     int        `json:"canary_percent"`
	WavePercent       int        `json:"wave_percent"`
	SoakSeconds       int        `json:"soak_seconds"`
	FailureThreshold  int        `json:"failure_threshold"`
	DeadlineSeconds   int        `json:"update_deadline_seconds"`
	State             string     `json:"state"`
	CurrentWave       int        `json:"current_wave"`
	WaveStartedAt     *time.Time `json:"wave_started_at,omitempty"`
	StateReason       string     `json:"state_reason"`
	CreatedBy         string     `json:"created_by"`
	CreatedAt         time.Time  `json:"created_at"`
	UpdatedAt         time.Time  `json:"updated_at"`
}

const rolloutCols = `p.id::text, p.cluster_id::text, p.product, p.target_release_id::text, t.version, p.rollback_release_id::text, coalesce(b.version, ''),
	p.canary_count, p.canary_percent, p.wave_percent, p.soak_seconds, p.failure_threshold, p.update_deadline_seconds,
	p.state, p.current_wave, p.wave_started_at, p.state_reason, p.created_by, p.created_at, p.updated_at`

const rolloutFrom = ` FROM rollout_policies p JOIN releases t ON t.id = p.target_release_id LEFT JOIN releases b ON b.id = p.rollback_release_id `

func scanRollout(row scanner) (Rollout, error) {
	var x Rollout
	err := row.Scan(&x.ID, &x.ClusterID, &x.Product, &x.TargetReleaseID, &x.TargetVersion, &x.RollbackReleaseID, &x.RollbackVersion,
		&x.CanaryCount, &x.CanaryPercent, &x.WavePercent, &x.SoakSeconds, &x.FailureThreshold, &x.DeadlineSeconds,
		&x.State, &x.CurrentWave, &x.WaveStartedAt, &x.StateReason, &x.CreatedBy, &x.CreatedAt, &x.UpdatedAt)
	return x, mapErr(err)
}

// InsertRollout stores a new rollout (fenced). A second open rollout for the
// same cluster and product fails with ErrConflict.
func InsertRollout(ctx context.Context, q Querier, x Rollout) (Rollout, error) {
	if _, err := q.Exec(ctx, `INSERT INTO rollout_policies (id, cluster_id, product, target_release_id, rollback_release_id, canary_count,
		canary_percent, wave_percent, soak_seconds, failure_threshold, update_deadline_seconds, state, current_wave, wave_started_at, state_reason, created_by)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)`,
		x.ID, x.ClusterID, x.Product, x.TargetReleaseID, x.RollbackReleaseID, x.CanaryCount, x.CanaryPercent, x.WavePercent, x.SoakSeconds,
		x.FailureThreshold, x.DeadlineSeconds, x.State, x.CurrentWave, x.WaveStartedAt, x.StateReason, x.CreatedBy); err != nil {
		return Rollout{}, mapErr(err)
	}
	return GetRollout(ctx, q, x.ID)
}

// GetRollout returns a rollout by id.
func GetRollout(ctx context.Context, q Querier, id string) (Rollout, error) {
	return scanRollout(q.QueryRow(ctx, `SELECT `+rolloutCols+rolloutFrom+`WHERE p.id = rap_uuid($1)`, id))
}

// LockRollout returns a rollout locked until the transaction ends.
func LockRollout(ctx context.Context, q Querier, id string) (Rollout, error) {
	return scanRollout(q.QueryRow(ctx, `SELECT `+rolloutCols+rolloutFrom+`WHERE p.id = rap_uuid($1) FOR UPDATE OF p`, id))
}

// OpenRollout returns the open rollout (running, paused, halted or pinned)
// of a product in a cluster, ErrNotFound when there is none.
func OpenRollout(ctx context.Context, q Querier, clusterID, product string) (Rollout, error) {
	return scanRollout(q.QueryRow(ctx, `SELECT `+rolloutCols+rolloutFrom+`WHERE p.cluster_id = rap_uuid($1) AND p.product = $2
		AND p.state IN ('running', 'paused', 'halted', 'pinned')`, clusterID, product))
}

// ListRollouts lists a cluster's rollouts, newest first.
func ListRollouts(ctx context.Context, q Querier, clusterID string, p Page) ([]Rollout, error) {
	lim, off := p.norm()
	return collect(ctx, q, scanRollout, `SELECT `+rolloutCols+rolloutFrom+`WHERE p.cluster_id = rap_uuid($1)
		ORDER BY p.created_at DESC, p.id LIMIT $2 OFFSET $3`, clusterID, lim, off)
}

// CurrentRollouts returns, per product, the newest rollout of a cluster:
// the one whose desired versions apply (snapshot builder's input).
func CurrentRollouts(ctx context.Context, q Querier, clusterID string) ([]Rollout, error) {
	return collect(ctx, q, scanRollout, `SELECT DISTINCT ON (p.product) `+rolloutCols+rolloutFrom+`WHERE p.cluster_id = rap_uuid($1)
		ORDER BY p.product, p.created_at DESC, p.id`, clusterID)
}

// RunningRollouts lists every running rollout (the reconciler's input).
func RunningRollouts(ctx context.Context, q Querier) ([]Rollout, error) {
	return collect(ctx, q, scanRollout, `SELECT `+rolloutCols+rolloutFrom+`WHERE p.state = 'running' ORDER BY p.created_at`)
}

// UpdateRolloutState moves a rollout (fenced). The caller locked it.
func UpdateRolloutState(ctx context.Context, q Querier, id, state string, wave int, waveStartedAt *time.Time, reason string, targetReleaseID string) (Rollout, error) {
	if _, err := q.Exec(ctx, `UPDATE rollout_policies SET state = $2, current_wave = $3, wave_started_at = $4, state_reason = $5,
		target_release_id = CASE WHEN $6 = '' THEN target_release_id ELSE $6::uuid END, updated_at = now() WHERE id = rap_uuid($1)`,
		id, state, wave, waveStartedAt, reason, targetReleaseID); err != nil {
		return Rollout{}, mapErr(err)
	}
	return GetRollout(ctx, q, id)
}

// SetReleaseStatus sets a release's status ('published' or 'blocklisted')
// and reason (fenced).
func SetReleaseStatus(ctx context.Context, q Querier, id, status, reason string) error {
	tag, err := q.Exec(ctx, `UPDATE releases SET status = $2, status_reason = $3 WHERE id = rap_uuid($1)`, id, status, reason)
	if err == nil && tag.RowsAffected() == 0 {
		return mapErr(ErrNotFound)
	}
	return mapErr(err)
}

// BlocklistedVersions lists the blocklisted versions of every product.
func BlocklistedVersions(ctx context.Context, q Querier) ([][2]string, error) {
	return collect(ctx, q, func(row scanner) ([2]string, error) {
		var x [2]string
		err := row.Scan(&x[0], &x[1])
		return x, mapErr(err)
	}, `SELECT product, version FROM releases WHERE status = 'blocklisted' ORDER BY product, version`)
}

// ReleaseChannel is the head of a product's channel (table release_channels).
type ReleaseChannel struct {
	Product   string    `json:"product"`
	Channel   string    `json:"channel"`
	ReleaseID string    `json:"release_id"`
	Version   string    `json:"version"`
	SetBy     string    `json:"set_by"`
	UpdatedAt time.Time `json:"updated_at"`
}

// SetChannelHead points a product's channel at a release (fenced).
func SetChannelHead(ctx context.Context, q Querier, product, channel, releaseID, setBy string) error {
	_, err := q.Exec(ctx, `INSERT INTO release_channels (product, channel, release_id, set_by) VALUES ($1, $2, $3, $4)
		ON CONFLICT (product, channel) DO UPDATE SET release_id = EXCLUDED.release_id, set_by = EXCLUDED.set_by, updated_at = now()`,
		product, channel, releaseID, setBy)
	return mapErr(err)
}

// GetChannelHead returns a product's channel head (ErrNotFound if unset).
func GetChannelHead(ctx context.Context, q Querier, product, channel string) (ReleaseChannel, error) {
	var c ReleaseChannel
	err := q.QueryRow(ctx, `SELECT c.product, c.channel, c.release_id::text, r.version, c.set_by, c.updated_at
		FROM release_channels c JOIN releases r ON r.id = c.release_id WHERE c.product = $1 AND c.channel = $2`, product, channel).
		Scan(&c.Product, &c.Channel, &c.ReleaseID, &c.Version, &c.SetBy, &c.UpdatedAt)
	return c, mapErr(err)
}

// ListChannelHeads lists every channel head.
func ListChannelHeads(ctx context.Context, q Querier) ([]ReleaseChannel, error) {
	return collect(ctx, q, func(row scanner) (ReleaseChannel, error) {
		var c ReleaseChannel
		err := row.Scan(&c.Product, &c.Channel, &c.ReleaseID, &c.Version, &c.SetBy, &c.UpdatedAt)
		return c, mapErr(err)
	}, `SELECT c.product, c.channel, c.release_id::text, r.version, c.set_by, c.updated_at
		FROM release_channels c JOIN releases r ON r.id = c.release_id ORDER BY c.product, c.channel`)
}

// UpdateRun is a node's report on one update attempt (table
// node_update_runs; an observation like a heartbeat, not fenced).
type UpdateRun struct {
	ID             int64      `json:"id"`
	RolloutID      *string    `json:"rollout_id,omitempty"`
	ClusterID      string     `json:"cluster_id"`
	NodeID         string     `json:"node_id"`
	Product        string     `json:"product"`
	CurrentVersion string     `json:"current_version"`
	FromVersion    string     `json:"from_version"`
	ToVersion      string     `json:"to_version"`
	Wave           int        `json:"wave"`
	State          string     `json:"state"`
	LastFailure    string     `json:"last_failure"`
	StartedAt      time.Time  `json:"started_at"`
	UpdatedAt      time.Time  `json:"updated_at"`
	FinishedAt     *time.Time `json:"finished_at,omitempty"`
}

const runCols = `id, rollout_id::text, cluster_id::text, node_id::text, product, current_version, from_version, to_version, wave, state,
	last_failure, started_at, updated_at, finished_at`

func scanRun(row scanner) (UpdateRun, error) {
	var x UpdateRun
	err := row.Scan(&x.ID, &x.RolloutID, &x.ClusterID, &x.NodeID, &x.Product, &x.CurrentVersion, &x.FromVersion, &x.ToVersion, &x.Wave,
		&x.State, &x.LastFailure, &x.StartedAt, &x.UpdatedAt, &x.FinishedAt)
	return x, mapErr(err)
}

// RecordUpdateRun inserts or updates the node's run for x.ToVersion.
// Terminal states (running, rolled_back, failed, fenced) set finished_at.
//
// x.UpdatedAt, when set, is when the node was observed in this state (a
// heartbeat's receive time; zero means now): an observation older than the
// stored row changes nothing and returns ErrNotFound, so a late heartbeat
// flush never overrides a newer report.
func RecordUpdateRun(ctx context.Context, q Querier, x UpdateRun) (UpdateRun, error) {
	var at *time.Time
	if !x.UpdatedAt.IsZero() {
		at = &x.UpdatedAt
	}
	return scanRun(q.QueryRow(ctx, `INSERT INTO node_update_runs (rollout_id, cluster_id, node_id, product, current_version, from_version,
		to_version, wave, state, last_failure, finished_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, CASE WHEN $9 IN ('running', 'rolled_back', 'failed', 'fenced') THEN coalesce($11, now()) END, coalesce($11, now()))
		ON CONFLICT (cluster_id, node_id, product, to_version) DO UPDATE SET rollout_id = coalesce(EXCLUDED.rollout_id, node_update_runs.rollout_id),
			current_version = EXCLUDED.current_version, from_version = EXCLUDED.from_version, wave = EXCLUDED.wave, state = EXCLUDED.state,
			last_failure = EXCLUDED.last_failure, updated_at = EXCLUDED.updated_at, finished_at = EXCLUDED.finished_at
		WHERE node_update_runs.updated_at <= EXCLUDED.updated_at
		RETURNING `+runCols,
		x.RolloutID, x.ClusterID, x.NodeID, x.Product, x.CurrentVersion, x.FromVersion, x.ToVersion, x.Wave, x.State, x.LastFailure, at))
}

// LatestUpdateRuns returns each node's newest run of a product in a cluster.
func LatestUpdateRuns(ctx context.Context, q Querier, clusterID, product string) ([]UpdateRun, error) {
	return collect(ctx, q, scanRun, `SELECT DISTINCT ON (node_id) `+runCols+` FROM node_update_runs
		WHERE cluster_id = rap_uuid($1) AND product = $2 ORDER BY node_id, updated_at DESC, id DESC`, clusterID, product)
}

// ActiveMemberIDs lists the ids of a cluster's active members.
func ActiveMemberIDs(ctx context.Context, q Querier, clusterID string) ([]string, error) {
	return collect(ctx, q, func(row scanner) (string, error) {
		var s string
		return s, mapErr(row.Scan(&s))
	}, `SELECT node_id::text FROM cluster_memberships WHERE cluster_id = rap_uuid($1) AND membership_status = 'active' ORDER BY node_id`, clusterID)
}

// AppliedSchemaVersion returns the control-plane schema version applied to
// this database (tern's version table).
func AppliedSchemaVersion(ctx context.Context, q Querier) (int, error) {
	var v int
	err := q.QueryRow(ctx, `SELECT version FROM rap_schema_version`).Scan(&v)
	return v, mapErr(err)
}

// NodeUpdateRuns returns a node's newest run per product in a cluster.
func NodeUpdateRuns(ctx context.Context, q Querier, clusterID, nodeID string) ([]UpdateRun, error) {
	return collect(ctx, q, scanRun, `SELECT DISTINCT ON (product) `+runCols+` FROM node_update_runs
		WHERE cluster_id = rap_uuid($1) AND node_id = rap_uuid($2) ORDER BY product, updated_at DESC, id DESC`, clusterID, nodeID)
}

// HaltRolloutsTargeting halts every running or paused rollout whose target
// is releaseID (fenced).
func HaltRolloutsTargeting(ctx context.Context, q Querier, releaseID, reason string) error {
	_, err := q.Exec(ctx, `UPDATE rollout_policies SET state = 'halted', state_reason = $2, updated_at = now()
		WHERE target_release_id = rap_uuid($1) AND state IN ('running', 'paused')`, releaseID, reason)
	return mapErr(err)
}
