package httpapi

// Cross-cluster platform view (spec C8):
//
//	GET /v1/cluster-comparison   every cluster side by side

import (
	"net/http"

	"github.com/gorilla/mux"

	"github.com/rap-fabric/core/authority"
)

// ClusterComparison is one cluster of GET /v1/cluster-comparison.
type ClusterComparison struct {
	ClusterID        string         `json:"cluster_id"`
	Slug             string         `json:"slug"`
	Name             string         `json:"name"`
	Status           string         `json:"status"`
	PartitionState   string         `json:"partition_state"`
	Members          map[string]int `json:"members"`
	Health           map[string]int `json:"health"`
	Roles            map[string]int `json:"roles"`
	AgentVersions    map[string]int `json:"agent_versions"`
	CPUs             int            `json:"cpus"`
	SnapshotsLagging int            `json:"snapshots_lagging"`
	SnapshotsCurrent int            `json:"snapshots_current"`
}

// ClusterComparisonList answers GET /v1/cluster-comparison.
type ClusterComparisonList struct {
	Items []ClusterComparison `json:"items"`
	// FenceEpoch is the authority epoch whose fence this authority holds
	// (0 when it does not lead).
	FenceEpoch uint64 `json:"fence_epoch_held"`
}

func newClusterComparison(c authority.ClusterComparison) ClusterComparison {
	return ClusterComparison{ClusterID: c.ClusterID, Slug: c.Slug, Name: c.Name, Status: c.Status, PartitionState: c.PartitionState,
		Members: c.Members, Health: c.Health, Roles: c.Roles, AgentVersions: c.AgentVersions, CPUs: c.CPUs,
		SnapshotsLagging: c.SnapshotsLagging, SnapshotsCurrent: c.SnapshotsCurrent}
}

func (s *Server) compareRoutes(r *mux.Router) {
	r.Handle("/v1/cluster-comparison", s.wrap("clusters.compare", s.ownerAuth(s.compareClusters))).Methods(http.MethodGet)
}

func (s *Server) compareClusters(w http.ResponseWriter, r *http.Request, _ authority.Actor) error {
	cs, err := s.a.CompareClusters(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, ClusterComparisonList{Items: mapList(cs, newClusterComparison), FenceEpoch: s.a.FenceEpoch()})
	return nil
}
