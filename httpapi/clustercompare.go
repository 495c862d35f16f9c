package httpapi

// Cross-cluster platform view and the split/seed guard (spec C8):
//
//	GET  /v1/cluster-comparison                            every cluster side by side
//	POST /v1/clusters/{cluster}/nodes/{id}/disable-seed    override the seed guard of …/disable (step-up; body {reason})

import (
	"math"
	"net/http"

	"github.com/gorilla/mux"

	"github.com/rap-fabric/core/authority"
	"github.com/rap-fabric/core/store"
)

// ClusterComparison is one cluster of GET /v1/cluster-comparison.
type ClusterComparison struct {
	ClusterID      string         `json:"cluster_id"`
	Slug           string         `json:"slug"`
	Name           string         `json:"name"`
	Status         string         `json:"status"`
	PartitionState string         `json:"partition_state"`
	Members        map[string]int `json:"members"`
	Health         map[string]int `json:"health"`
	Roles          map[string]int `json:"roles"`
	AgentVersions  map[string]int `json:"agent_versions"`
	CPUs           int            `json:"cpus"`
	// MemoryBytes is the memory active members report in their facts.
	MemoryBytes int64 `json:"memory_bytes"`
	// Load from the latest heartbeats of the active members that report it:
	// how many do, the sum of their one-minute load averages, the memory
	// they use and their mesh links up; LoadPerCPU is Load1 over CPUs.
	LoadReporting    int     `json:"load_reporting"`
	Load1            float64 `json:"load1"`
	LoadPerCPU       float64 `json:"load_per_cpu"`
	MemUsedBytes     int64   `json:"memory_used_bytes"`
	LinksUp          int     `json:"links_up"`
	SnapshotsLagging int     `json:"snapshots_lagging"`
	SnapshotsCurrent int     `json:"snapshots_current"`
}

// ClusterComparisonList answers GET /v1/cluster-comparison.
type ClusterComparisonList struct {
	Items []ClusterComparison `json:"items"`
	// FenceEpoch is the authority epoch whose fence this authority holds
	// (0 when it does not lead).
	FenceEpoch uint64 `json:"fence_epoch_held"`
}

func newClusterComparison(c authority.ClusterComparison) ClusterComparison {
	out := ClusterComparison{ClusterID: c.ClusterID, Slug: c.Slug, Name: c.Name, Status: c.Status, PartitionState: c.PartitionState,
		Members: c.Members, Health: c.Health, Roles: c.Roles, AgentVersions: c.AgentVersions, CPUs: c.CPUs, MemoryBytes: c.MemoryBytes,
		LoadReporting: c.LoadReporting, Load1: c.Load1, MemUsedBytes: c.MemUsedBytes, LinksUp: c.LinksUp,
		SnapshotsLagging: c.SnapshotsLagging, SnapshotsCurrent: c.SnapshotsCurrent}
	if c.CPUs > 0 {
		out.LoadPerCPU = math.Round(c.Load1/float64(c.CPUs)*1000) / 1000
	}
	return out
}

func (s *Server) compareRoutes(r *mux.Router) {
	r.Handle("/v1/cluster-comparison", s.wrap("clusters.compare", s.ownerAuth(s.compareClusters))).Methods(http.MethodGet)
	r.Handle("/v1/clusters/{cluster}/nodes/{id}/disable-seed", s.wrap("nodes.disable_seed", s.ownerAuth(s.disableSeed))).Methods(http.MethodPost)
}

type seedBody struct {
	Reason string `json:"reason"`
}

// disableSeed disables a seed node's membership although the cluster does not
// stand on its own yet (platform owners; high risk: step-up; the unmet
// conditions and the reason are audited).
func (s *Server) disableSeed(w http.ResponseWriter, r *http.Request, actor authority.Actor) error {
	if p, ok := principalFrom(r.Context()); ok && p.User.Role != store.RolePlatformOwner {
		return authority.Errf(authority.CodeForbidden, "only platform owners override the seed guard")
	}
	return write(http.StatusOK, func(r *http.Request, a authority.Actor, b seedBody, k string) (store.Membership, error) {
		v := mux.Vars(r)
		return s.a.DisableMembership(r.Context(), a, v["cluster"], v["id"], true, b.Reason, k)
	})(w, r, actor)
}

func (s *Server) compareClusters(w http.ResponseWriter, r *http.Request, _ authority.Actor) error {
	cs, err := s.a.CompareClusters(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, ClusterComparisonList{Items: mapList(cs, newClusterComparison), FenceEpoch: s.a.FenceEpoch()})
	return nil
}
