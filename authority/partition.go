package authority

// Partition decisions of the platform owner (spec: "Only platform owner
// authority should promote, merge, split, or recover partitions";
// ARCHITECTURE §13).
//
// Minority segments are already harmless without any decision: a minority of
// authorities cannot confirm leadership (no_quorum) and PostgreSQL refuses a
// deposed leader's epoch. What the owner decides here is how the majority side
// treats a cluster whose nodes are split, and whether a cluster is frozen:
//
//	normal   --split-->   degraded   the owner records that part of the
//	                                 cluster is cut off. Admissions stop: join
//	                                 approvals and new join tokens are refused
//	                                 (cluster_split), because nodes on the far
//	                                 side cannot learn of new identities; role,
//	                                 service, policy and routing changes go on
//	                                 so the owner can route around the cut.
//	degraded --promote--> promoted   the owner accepts the reachable side as
//	                                 the cluster; admissions resume. Far-side
//	                                 nodes take every change at merge through
//	                                 their next snapshot.
//	degraded|promoted --merge--> normal
//	any but fenced --fence--> fenced the cluster is frozen: every cluster change
//	                                 is refused (cluster_fenced) except
//	                                 revocations, certificate renewals of
//	                                 existing identities, snapshot publication
//	                                 and partition actions. Running nodes keep
//	                                 their last good config.
//	fenced   --recover--> normal
//
// The state is agreed through Raft (fsm.SetPartition): every authority
// enforces it from memory in Fenced, so the check costs no database round
// trip, and a minority cannot change it. It is recorded in PostgreSQL
// (cluster_partitions, cluster_partition_events) in a fenced transaction,
// which marks the cluster's snapshots dirty: every node receives the state
// in its next signed snapshot (membership.authority_state). Raft commits
// first; a failed record is repaired by retrying the action with the same
// Idempotency-Key (the FSM command is idempotent: same state again).

import (
	"context"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/rap-fabric/core/domain"
	"github.com/rap-fabric/core/fsm"
	"github.com/rap-fabric/core/store"
)

// PartitionAction is an owner action on a cluster's partition state.
type PartitionAction string

// Partition actions.
const (
	PartitionSplit   PartitionAction = "split"
	PartitionPromote PartitionAction = "promote"
	PartitionMerge   PartitionAction = "merge"
	PartitionFence   PartitionAction = "fence"
	PartitionRecover PartitionAction = "recover"
)

// partitionMoves lists, per action, the states it starts from and the state
// it leads to.
var partitionMoves = map[PartitionAction]struct {
	from []domain.PartitionState
	to   domain.PartitionState
}{
	PartitionSplit:   {[]domain.PartitionState{domain.PartitionNormal}, domain.PartitionDegraded},
	PartitionPromote: {[]domain.PartitionState{domain.PartitionDegraded}, domain.PartitionPromoted},
	PartitionMerge:   {[]domain.PartitionState{domain.PartitionDegraded, domain.PartitionPromoted}, domain.PartitionNormal},
	PartitionFence:   {[]domain.PartitionState{domain.PartitionNormal, domain.PartitionDegraded, domain.PartitionPromoted}, domain.PartitionFenced},
	PartitionRecover: {[]domain.PartitionState{domain.PartitionFenced}, domain.PartitionNormal},
}

// PartitionRequest is the body of POST /v1/clusters/{cluster}/partition.
type PartitionRequest struct {
	Action PartitionAction `json:"action"`
	Reason string          `json:"reason"`
}

// PartitionView is a cluster's partition state: the agreed state (FSM) and
// its record in PostgreSQL, with the most recent owner actions.
type PartitionView struct {
	ClusterID string                `json:"cluster_id"`
	State     domain.PartitionState `json:"state"`
	Reason    string                `json:"reason,omitempty"`
	SetBy     string                `json:"set_by,omitempty"`
	// RaftIndex is the log index of the decision (0: never changed).
	RaftIndex uint64 `json:"raft_index"`
	// Recorded is the state as recorded in PostgreSQL; it equals State unless
	// recording the last decision failed (retry it with the same
	// Idempotency-Key).
	Recorded string                 `json:"recorded_state"`
	History  []store.PartitionEvent `json:"history"`
	// Refuses lists what the authorities refuse in this state.
	Refuses string `json:"refuses"`
}

// Partition returns a cluster's partition state (a read: any authority
// answers, from its replicated state).
func (a *Authority) Partition(ctx context.Context, idOrSlug string) (PartitionView, error) {
	c, err := a.GetCluster(ctx, idOrSlug)
	if err != nil {
		return PartitionView{}, err
	}
	return a.partitionView(ctx, c.ID)
}

func (a *Authority) partitionView(ctx context.Context, clusterID string) (PartitionView, error) {
	p, _ := a.state.Partition(clusterID)
	v := PartitionView{ClusterID: clusterID, State: p.State, Reason: p.Reason, SetBy: p.Actor, RaftIndex: p.Index, Refuses: refusesIn(p.State)}
	rec, err := store.GetPartition(ctx, a.db.Pool, clusterID)
	if err != nil {
		return PartitionView{}, asError(err)
	}
	v.Recorded = rec.State
	if v.History, err = store.ListPartitionEvents(ctx, a.db.Pool, clusterID, store.Page{Limit: 20}); err != nil {
		return PartitionView{}, asError(err)
	}
	return v, nil
}

func refusesIn(s domain.PartitionState) string {
	switch s {
	case domain.PartitionDegraded:
		return "join approvals and new join tokens (cluster_split)"
	case domain.PartitionFenced:
		return "every cluster change except revocations, certificate renewals and partition actions (cluster_fenced)"
	}
	return ""
}

// SetPartition applies an owner action to a cluster's partition state:
// agreed through Raft, then recorded and audited in a fenced transaction.
// It needs a quorum like every fenced mutation: a minority refuses with
// no_quorum.
func (a *Authority) SetPartition(ctx context.Context, actor Actor, idOrSlug string, req PartitionRequest, idemKey string) (PartitionView, error) {
	mv, ok := partitionMoves[req.Action]
	if !ok {
		return PartitionView{}, Errf(CodeInvalid, "action must be split, promote, merge, fence or recover")
	}
	req.Reason = strings.TrimSpace(req.Reason)
	if req.Reason == "" || len(req.Reason) > 500 {
		return PartitionView{}, Errf(CodeInvalid, "reason is required (at most 500 characters): it is shown to every operator and in the audit log")
	}
	c, err := a.GetCluster(ctx, idOrSlug)
	if err != nil {
		return PartitionView{}, err
	}
	cur, _ := a.state.Partition(c.ID)
	op := Op{Action: "partition." + string(req.Action), Actor: actor, ClusterID: c.ID, TargetKind: "cluster", TargetID: c.ID, IdempotencyKey: idemKey,
		Details: map[string]any{"from": string(cur.State), "to": string(mv.to), "reason": req.Reason}}
	// Partition decisions belong to the platform owner role only (spec): a
	// platform admin's session or a token of another role is refused, and
	// the refusal is audited.
	if err := requirePartitionRole(actor); err != nil {
		a.auditFailure(ctx, op, err)
		return PartitionView{}, err
	}
	// op.Details["from"] is what this authority saw; a retry's event row
	// carries the recorded state it moves from.
	reqID := ""
	if idemKey != "" {
		reqID = "partition|" + actor.ID + "|" + c.ID + "|" + idemKey
	}
	// A retry with the same key after Raft committed finds the state already
	// moved: it only records it.
	retry := idemKey != "" && cur.State == mv.to && cur.Actor == actor.ID && cur.Reason == req.Reason
	from := cur.State
	if retry {
		// The decision committed; what PostgreSQL still records is the state
		// it moved from (or already the new one, if only the answer was lost).
		if rec, err := store.GetPartition(ctx, a.db.Pool, c.ID); err == nil {
			from = domain.PartitionState(rec.State)
		}
	}
	if !retry {
		epoch, err := a.ensureLeader() // a follower answers not_leader, which clients follow
		if err != nil {
			return PartitionView{}, err
		}
		allowed := false
		for _, f := range mv.from {
			allowed = allowed || f == cur.State
		}
		if !allowed {
			e := Errf(CodeConflict, "cannot %s a cluster whose partition state is %s", req.Action, cur.State)
			e.Details = map[string]any{"state": string(cur.State), "action": string(req.Action)}
			a.auditFailure(ctx, op, e)
			return PartitionView{}, e
		}
		if _, err := a.apply(ctx, reqID, fsm.SetPartition{ClusterID: c.ID, State: mv.to, Reason: req.Reason, Actor: actor.ID, Epoch: epoch, At: a.cfg.Clock()}); err != nil {
			return PartitionView{}, err
		}
	}
	now, _ := a.state.Partition(c.ID)
	_, err = Fenced(ctx, a, op, func(tx pgx.Tx) (store.PartitionEvent, error) {
		return store.RecordPartition(ctx, tx, store.Partition{ClusterID: c.ID, State: string(now.State), Reason: now.Reason, SetBy: now.Actor, RaftIndex: now.Index},
			store.PartitionEvent{ClusterID: c.ID, Action: string(req.Action), FromState: string(from), ToState: string(mv.to), Reason: req.Reason,
				Actor: actor.ID, Epoch: int64(a.fenceEpoch.Load())})
	})
	if err != nil {
		return PartitionView{}, err
	}
	a.log.Info("cluster partition state changed", "cluster_id", c.ID, "action", req.Action, "from", from, "to", mv.to, "actor", actor.ID)
	return a.partitionView(ctx, c.ID)
}

// Actions a fenced (frozen) cluster still accepts: tightening trust and
// keeping existing identities alive never waits for the owner to recover.
var allowedWhenFenced = map[string]bool{
	"node.revoke": true, "join_token.revoke": true, "certificate.renew": true, "certificate.rotate": true,
	"snapshot.publish": true, "cluster.disable": true,
	// A running VPN keeps its lease; ending leases and disabling connections
	// only tighten.
	"vpn_lease.renew": true, "vpn_lease.release": true, "vpn_lease.expire": true, "vpn_lease.fence": true, "vpn_connection.disable": true,
}

// Actions a split (degraded) cluster refuses: admissions.
var refusedWhenSplit = map[string]bool{
	"join_request.approve": true, "join_request.receive": true, "join_token.create": true,
}

// partitionGate refuses a fenced operation that the cluster's agreed
// partition state does not allow. It runs inside Fenced, after the quorum
// check, for every operation with a cluster.
func (a *Authority) partitionGate(op Op) error {
	if op.ClusterID == "" || strings.HasPrefix(op.Action, "partition.") {
		return nil
	}
	p, ok := a.state.Partition(op.ClusterID)
	if !ok {
		return nil
	}
	switch p.State {
	case domain.PartitionFenced:
		if allowedWhenFenced[op.Action] {
			return nil
		}
		return &Error{Code: CodeClusterFenced, Message: "the cluster is fenced by the platform owner: changes are refused until it is recovered",
			Details: map[string]any{"cluster_id": op.ClusterID, "reason": p.Reason, "set_by": p.Actor}}
	case domain.PartitionDegraded:
		if refusedWhenSplit[op.Action] {
			return &Error{Code: CodeClusterSplit, Message: "the cluster is split: no node is admitted until the owner promotes the reachable side or merges",
				Details: map[string]any{"cluster_id": op.ClusterID, "reason": p.Reason, "set_by": p.Actor}}
		}
	}
	return nil
}

// requirePartitionRole admits the platform owner role (a user session or an
// owner API token of that role) and the authority itself (system).
func requirePartitionRole(actor Actor) *Error {
	if actor.Kind == "system" || actor.Role == store.RolePlatformOwner {
		return nil
	}
	return &Error{Code: CodeForbidden, Message: "partition actions (split, promote, merge, fence, recover) are for platform owners only",
		Details: map[string]any{"role": actor.Role}}
}
