package runtime

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/agent/workload"
	"github.com/rap-fabric/core/domain"
	"github.com/rap-fabric/core/snapshot"
)

type recWorkloads struct {
	applied []workload.Assignment
	grants  []workload.Grant
	stopped string
}

func (r *recWorkloads) Apply(_ string, as []workload.Assignment, gs []workload.Grant) {
	r.applied, r.grants = as, gs
}
func (r *recWorkloads) StopCluster(_ string, reason string) { r.stopped = reason }
func (r *recWorkloads) Statuses(string) []workload.Status {
	return []workload.Status{{ServiceID: "s1", Type: "vpn-exit", State: workload.StateHealthy, Health: workload.HealthHealthy, Since: time.Unix(0, 0).UTC()}}
}

func TestApplyWorkloadsFollowsTheSnapshot(t *testing.T) {
	rec := &recWorkloads{}
	m := &member{a: &Agent{o: RunOptions{Workloads: rec}}, cluster: "c1"}
	snap := snapshot.Snapshot{Body: snapshot.Body{
		Self:       snapshot.Identity{NodeID: "n1", IdentityStatus: domain.IdentityActive},
		Membership: snapshot.Membership{Status: domain.MembershipActive, AuthorityState: domain.PartitionState("fenced")},
		Roles:      []snapshot.RoleGrant{{Role: domain.RoleVPNExit, OrganizationID: "o1"}},
		Services:   []snapshot.ServiceConfig{{ID: "s1", Type: "vpn-exit", Instance: "web", Role: domain.RoleVPNExit, OrganizationID: "o1", Config: json.RawMessage(`{}`)}},
	}}
	m.applyWorkloads(snap, hclog.NewNullLogger())
	require.Empty(t, rec.stopped, "a partition state does not stop workloads")
	require.Equal(t, []workload.Assignment{{ServiceID: "s1", Type: "vpn-exit", Instance: "web", Role: domain.RoleVPNExit, OrganizationID: "o1", Config: json.RawMessage(`{}`)}}, rec.applied)
	require.Equal(t, []workload.Grant{{Role: domain.RoleVPNExit, OrganizationID: "o1"}}, rec.grants)

	for _, mod := range []func(*snapshot.Snapshot){
		func(s *snapshot.Snapshot) { s.Body.Membership.Status = domain.MembershipRevoked },
		func(s *snapshot.Snapshot) { s.Body.Membership.Status = domain.MembershipDisabled },
		func(s *snapshot.Snapshot) { s.Body.Self.IdentityStatus = domain.IdentityRevoked },
		func(s *snapshot.Snapshot) { s.Body.Revocations.NodeIDs = []string{"n1"} },
	} {
		rec.stopped = ""
		s := snap
		mod(&s)
		m.applyWorkloads(s, hclog.NewNullLogger())
		require.NotEmpty(t, rec.stopped)
	}

	var report []map[string]any
	require.NoError(t, json.Unmarshal(m.workloadReport(), &report))
	require.Equal(t, "healthy", report[0]["state"])
	none := &member{a: &Agent{}, cluster: "c1"}
	require.JSONEq(t, `[]`, string(none.workloadReport()))
}
