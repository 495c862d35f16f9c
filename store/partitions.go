package store

import (
	"context"
	"errors"
	"time"
)

// Partition is a row of cluster_partitions: the recorded partition state of
// a cluster (the authority FSM holds the agreed state; this is its record).
type Partition struct {
	ClusterID string    `json:"cluster_id"`
	State     string    `json:"state"`
	Reason    string    `json:"reason"`
	SetBy     string    `json:"set_by"`
	RaftIndex uint64    `json:"raft_index"`
	UpdatedAt time.Time `json:"updated_at"`
}

// PartitionEvent is a row of cluster_partition_events: one owner action.
type PartitionEvent struct {
	ID        int64     `json:"id"`
	ClusterID string    `json:"cluster_id"`
	Action    string    `json:"action"`
	FromState string    `json:"from_state"`
	ToState   string    `json:"to_state"`
	Reason    string    `json:"reason"`
	Actor     string    `json:"actor"`
	Epoch     int64     `json:"epoch"`
	At        time.Time `json:"at"`
}

// RecordPartition upserts a cluster's partition state and appends the event
// (fenced; both in the caller's transaction).
func RecordPartition(ctx context.Context, q Querier, p Partition, ev PartitionEvent) (PartitionEvent, error) {
	if _, err := q.Exec(ctx, `INSERT INTO cluster_partitions (cluster_id, state, reason, set_by, raft_index) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (cluster_id) DO UPDATE SET state = EXCLUDED.state, reason = EXCLUDED.reason, set_by = EXCLUDED.set_by,
			raft_index = EXCLUDED.raft_index, updated_at = now()`, p.ClusterID, p.State, p.Reason, p.SetBy, int64(p.RaftIndex)); err != nil {
		return PartitionEvent{}, mapErr(err)
	}
	err := q.QueryRow(ctx, `INSERT INTO cluster_partition_events (cluster_id, action, from_state, to_state, reason, actor, epoch)
		VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id, cluster_id::text, action, from_state, to_state, reason, actor, epoch, at`,
		ev.ClusterID, ev.Action, ev.FromState, ev.ToState, ev.Reason, ev.Actor, ev.Epoch).
		Scan(&ev.ID, &ev.ClusterID, &ev.Action, &ev.FromState, &ev.ToState, &ev.Reason, &ev.Actor, &ev.Epoch, &ev.At)
	return ev, mapErr(err)
}

// GetPartition returns a cluster's recorded partition state; a cluster
// without a row is normal (ErrNotFound is not returned for it).
func GetPartition(ctx context.Context, q Querier, clusterID string) (Partition, error) {
	p := Partition{ClusterID: clusterID, State: "normal"}
	var idx int64
	err := q.QueryRow(ctx, `SELECT state, reason, set_by, raft_index, updated_at FROM cluster_partitions WHERE cluster_id = rap_uuid($1)`, clusterID).
		Scan(&p.State, &p.Reason, &p.SetBy, &idx, &p.UpdatedAt)
	if err != nil {
		if err = mapErr(err); errors.Is(err, ErrNotFound) {
			return p, nil
		}
		return p, err
	}
	p.RaftIndex = uint64(idx)
	return p, nil
}

// ListPartitionEvents lists a cluster's partition history, newest first.
func ListPartitionEvents(ctx context.Context, q Querier, clusterID string, pg Page) ([]PartitionEvent, error) {
	lim, off := pg.norm()
	return collect(ctx, q, func(r scanner) (PartitionEvent, error) {
		var e PartitionEvent
		err := r.Scan(&e.ID, &e.ClusterID, &e.Action, &e.FromState, &e.ToState, &e.Reason, &e.Actor, &e.Epoch, &e.At)
		return e, mapErr(err)
	}, `SELECT id, cluster_id::text, action, from_state, to_state, reason, actor, epoch, at FROM cluster_partition_events
		WHERE cluster_id = rap_uuid($1) ORDER BY id DESC LIMIT $2 OFFSET $3`, clusterID, lim, off)
}
