package authority

import (
	"context"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/rap-fabric/core/domain"
	"github.com/rap-fabric/core/store"
)

// DisableMembership disables one membership like SetMembershipStatus, with
// the split/seed guard of the spec: a node that seeds the cluster (it joined
// it after another cluster it still belongs to) is refused with the unmet
// conditions listed until the cluster has its own healthy node set, current
// snapshots, role coverage and admin ingress. override (with a reason; the
// HTTP layer demands step-up) removes it anyway, audited with the unmet
// conditions and the reason.
func (a *Authority) DisableMembership(ctx context.Context, actor Actor, cluster, nodeID string, override bool, reason, idemKey string) (store.Membership, error) {
	reason = strings.TrimSpace(reason)
	if override && (reason == "" || len(reason) > 500) {
		return store.Membership{}, Errf(CodeInvalid, "an override needs a reason (1 to 500 characters)")
	}
	c, err := a.GetCluster(ctx, cluster)
	if err != nil {
		return store.Membership{}, err
	}
	details := map[string]any{}
	op := Op{Action: "membership.disable", Actor: actor, ClusterID: c.ID, TargetKind: "node", TargetID: nodeID, IdempotencyKey: idemKey, Details: details}
	return Fenced(ctx, a, op, func(tx pgx.Tx) (store.Membership, error) {
		m, err := store.GetMembership(ctx, tx, c.ID, nodeID)
		if err != nil {
			return m, err
		}
		if m.Status == string(domain.MembershipRevoked) {
			return m, Errf(CodeConflict, "membership is revoked; the host must enroll again")
		}
		seed, unmet, err := store.SeedGaps(ctx, tx, c.ID, nodeID)
		if err != nil {
			return m, err
		}
		if seed && len(unmet) > 0 {
			if !override {
				return m, &Error{Code: CodeConflict, Message: "this node seeds the cluster: removing it is refused until the cluster stands on its own (or override with step-up and a reason)",
					Details: map[string]any{"unmet": unmet}}
			}
			details["seed_override"] = true
			details["reason"] = reason
			details["unmet"] = unmet
		}
		if err := store.SetMembershipStatus(ctx, tx, c.ID, nodeID, string(domain.MembershipDisabled)); err != nil {
			return m, err
		}
		if _, err := store.DisableNodeRoles(ctx, tx, c.ID, nodeID); err != nil {
			return m, err
		}
		return store.GetMembership(ctx, tx, c.ID, nodeID)
	})
}
