package runtime

import (
	"encoding/json"
	"slices"

	"github.com/hashicorp/go-hclog"

	"github.com/rap-fabric/core/agent/workload"
	"github.com/rap-fabric/core/domain"
	"github.com/rap-fabric/core/snapshot"
)

// Workloads is the service supervisor the agent drives
// (agent/workload.Supervisor): the verified snapshot's assignments and roles
// go in, the instances' reported states come out in every heartbeat.
type Workloads interface {
	Apply(cluster string, assignments []workload.Assignment, grants []workload.Grant)
	StopCluster(cluster, reason string)
	Statuses(cluster string) []workload.Status
}

// applyWorkloads hands a verified snapshot's service assignments and active
// roles to the supervisor. A membership that is not active, or an identity
// the snapshot shows revoked, stops every workload of the cluster. Partition
// states (degraded, promoted, fenced) change nothing: running workloads keep
// their last good config (docs/partitions.md).
func (m *member) applyWorkloads(snap snapshot.Snapshot, log hclog.Logger) {
	w := m.a.o.Workloads
	if w == nil {
		return
	}
	b := snap.Body
	if b.Membership.Status != domain.MembershipActive || b.Self.IdentityStatus == domain.IdentityRevoked || slices.Contains(b.Revocations.NodeIDs, b.Self.NodeID) {
		log.Warn("the snapshot shows this node is not active in the cluster; stopping its workloads", "membership", b.Membership.Status, "identity", b.Self.IdentityStatus)
		w.StopCluster(m.cluster, "membership "+string(b.Membership.Status)+", identity "+string(b.Self.IdentityStatus))
		return
	}
	grants := make([]workload.Grant, 0, len(b.Roles))
	for _, r := range b.Roles {
		grants = append(grants, workload.Grant{Role: r.Role, OrganizationID: r.OrganizationID})
	}
	as := make([]workload.Assignment, 0, len(b.Services))
	for _, s := range b.Services {
		as = append(as, workload.Assignment{ServiceID: s.ID, Type: s.Type, Instance: s.Instance, Role: s.Role, OrganizationID: s.OrganizationID,
			Config: m.workloadConfig(s, log)})
	}
	w.Apply(m.cluster, as, grants)
}

// stopWorkloads stops every workload of the membership (revocation).
func (m *member) stopWorkloads(reason string) {
	if w := m.a.o.Workloads; w != nil {
		w.StopCluster(m.cluster, reason)
	}
}

// workloadReport is the heartbeat's services array.
func (m *member) workloadReport() json.RawMessage {
	w := m.a.o.Workloads
	if w == nil {
		return json.RawMessage(`[]`)
	}
	b, err := json.Marshal(w.Statuses(m.cluster))
	if err != nil || len(b) > 60<<10 {
		return json.RawMessage(`[]`)
	}
	return b
}
