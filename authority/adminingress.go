package authority

import (
	"context"
	"errors"
	"slices"

	"github.com/rap-fabric/core/agentapi"
	"github.com/rap-fabric/core/domain"
	"github.com/rap-fabric/core/store"
	"github.com/rap-fabric/core/uimanifest"
)

// CodeAdminIngressRefused: the node may not serve the Cluster Admin
// Endpoint; details.reason is one of agentapi.AdminIngressRefused*.
const CodeAdminIngressRefused Code = "admin_ingress_refused"

func refuseIngress(reason, format string, args ...any) error {
	e := Errf(CodeAdminIngressRefused, format, args...)
	e.Details = map[string]any{"reason": reason}
	return e
}

// AdminIngress answers an agent's GET /v1/agent/admin-ingress: for a node
// with an active membership that holds an active admin-ingress assignment
// (an owner assigned it, fenced and audited) and no config-storage
// assignment, the page definitions of the Cluster Admin Endpoint with what
// its preconditions need (authority state, role coverage, the node's newest
// snapshot version). Anything else is refused with CodeAdminIngressRefused
// and a reason. It is a read: any authority answers.
func (a *Authority) AdminIngress(ctx context.Context, n NodePrincipal) (agentapi.AdminIngress, error) {
	c, err := store.GetCluster(ctx, a.db.Pool, n.ClusterID)
	if err != nil {
		return agentapi.AdminIngress{}, asError(err)
	}
	if c.Status != "active" {
		return agentapi.AdminIngress{}, refuseIngress(agentapi.AdminIngressRefusedCluster, "cluster %s is %s", c.Slug, c.Status)
	}
	m, err := store.GetMembership(ctx, a.db.Pool, n.ClusterID, n.NodeID)
	if errors.Is(err, store.ErrNotFound) || err == nil && m.Status != string(domain.MembershipActive) {
		return agentapi.AdminIngress{}, refuseIngress(agentapi.AdminIngressRefusedMembership, "the node's membership in cluster %s is not active", c.Slug)
	}
	if err != nil {
		return agentapi.AdminIngress{}, asError(err)
	}
	own, err := store.ActiveRoles(ctx, a.db.Pool, n.ClusterID, n.NodeID)
	if err != nil {
		return agentapi.AdminIngress{}, asError(err)
	}
	if slices.Contains(own, string(domain.RoleConfigStorage)) {
		return agentapi.AdminIngress{}, refuseIngress(agentapi.AdminIngressRefusedStorage,
			"config-storage nodes are not admin entry points: a storage role never implies admin ingress")
	}
	if !slices.Contains(own, string(domain.RoleAdminIngress)) {
		return agentapi.AdminIngress{}, refuseIngress(agentapi.AdminIngressRefusedNoRole,
			"the node holds no active admin-ingress assignment in cluster %s", c.Slug)
	}
	man, err := uimanifest.ClusterAdmin()
	if err != nil {
		return agentapi.AdminIngress{}, &Error{Code: CodeInternal, Message: "the built-in page definitions do not validate", Err: err}
	}
	covered, err := store.ActiveRoles(ctx, a.db.Pool, n.ClusterID, "")
	if err != nil {
		return agentapi.AdminIngress{}, asError(err)
	}
	missing := []string{}
	for _, r := range man.RequiresRoles {
		if !slices.Contains(covered, r) {
			missing = append(missing, r)
		}
	}
	p, _ := a.state.Partition(n.ClusterID)
	st := p.State
	if st == "" {
		st = domain.PartitionNormal
	}
	raw, err := man.Encode()
	if err != nil {
		return agentapi.AdminIngress{}, &Error{Code: CodeInternal, Message: "encoding the page definitions failed", Err: err}
	}
	return agentapi.AdminIngress{
		ClusterID: c.ID, ClusterSlug: c.Slug, NodeID: n.NodeID,
		AuthorityState:  string(st),
		Healthy:         st == domain.PartitionNormal && a.raft.LeaderID() != "",
		SnapshotVersion: a.snapshotVersion(ctx, n.ClusterID, n.NodeID),
		RequiredRoles:   append([]string{}, man.RequiresRoles...),
		MissingRoles:    missing,
		Manifest:        raw,
		CheckedAt:       a.Now().UTC(),
	}, nil
}
