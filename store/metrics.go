package store

import (
	"context"
	"math"
)

// ClusterCount is a count for one cluster (by slug) and one label value.
type ClusterCount struct {
	Cluster string
	Label   string
	Count   int64
}

// ClusterLag is the snapshot roll-out state of one cluster: members whose
// applied snapshot version is behind the newest signed one, and the largest
// gap in versions.
type ClusterLag struct {
	Cluster    string
	Lagging    int64
	MaxVersion int64
}

// FabricState is what the authority exports as gauges, read from the source
// of truth at scrape time (StateMetrics).
type FabricState struct {
	// NodesByHealth counts active memberships by derived heartbeat health
	// ("unknown" before the first heartbeat).
	NodesByHealth []ClusterCount
	// RolesByRole counts active role assignments.
	RolesByRole []ClusterCount
	// PendingJoins counts pending, unexpired join requests of every cluster
	// (0 included; Label "").
	PendingJoins []ClusterCount
	SnapshotLag  []ClusterLag
	// DirtyClusters is the snapshot rebuild queue: clusters marked dirty.
	DirtyClusters int64
	// AuditHeadSeq is the chained audit head; AuditUnchained the events not
	// chained yet.
	AuditHeadSeq   int64
	AuditUnchained int64
	// CertExpirySeconds is the time to the earliest not_after among the
	// current certificates of active identities (+Inf when there is none;
	// negative when one has expired).
	CertExpirySeconds float64
}

// StateMetrics reads FabricState in one round trip per family, all counts
// computed by SQL.
func StateMetrics(ctx context.Context, q Querier) (FabricState, error) {
	var st FabricState
	counts := func(sql string) ([]ClusterCount, error) {
		return collect(ctx, q, func(r scanner) (ClusterCount, error) {
			var c ClusterCount
			err := r.Scan(&c.Cluster, &c.Label, &c.Count)
			return c, mapErr(err)
		}, sql)
	}
	var err error
	if st.NodesByHealth, err = counts(`SELECT c.slug, coalesce(hb.derived_health, 'unknown'), count(*)
	      FROM cluster_memberships m JOIN clusters c ON c.id = m.cluster_id
	      LEFT JOIN node_heartbeat_latest hb ON hb.cluster_id = m.cluster_id AND hb.node_id = m.node_id
	     WHERE m.membership_status = 'active' GROUP BY 1, 2`); err != nil {
		return st, err
	}
	if st.RolesByRole, err = counts(`SELECT c.slug, r.role, count(*)
	      FROM node_role_assignments r JOIN clusters c ON c.id = r.cluster_id
	     WHERE r.status = 'active' GROUP BY 1, 2`); err != nil {
		return st, err
	}
	if st.PendingJoins, err = counts(`SELECT c.slug, '', count(j.id)
	      FROM clusters c LEFT JOIN node_join_requests j
	        ON j.cluster_id = c.id AND j.status = 'pending' AND j.expires_at > now()
	     GROUP BY 1`); err != nil {
		return st, err
	}
	if st.SnapshotLag, err = collect(ctx, q, func(r scanner) (ClusterLag, error) {
		var l ClusterLag
		err := r.Scan(&l.Cluster, &l.Lagging, &l.MaxVersion)
		return l, mapErr(err)
	}, `SELECT c.slug, count(*) FILTER (WHERE coalesce(hb.applied_version, 0) < h.version),
	           coalesce(max(h.version - coalesce(hb.applied_version, 0)) FILTER (WHERE coalesce(hb.applied_version, 0) < h.version), 0)
	      FROM node_snapshot_heads h
	      JOIN cluster_memberships m ON m.cluster_id = h.cluster_id AND m.node_id = h.node_id AND m.membership_status = 'active'
	      JOIN clusters c ON c.id = h.cluster_id
	      LEFT JOIN node_heartbeat_latest hb ON hb.cluster_id = h.cluster_id AND hb.node_id = h.node_id
	     GROUP BY 1`); err != nil {
		return st, err
	}
	var expiry *float64
	err = q.QueryRow(ctx, `SELECT (SELECT count(*) FROM snapshot_dirty_clusters),
	           (SELECT seq FROM audit_chain_head WHERE id = 1),
	           (SELECT count(*) FROM cluster_audit_events WHERE seq IS NULL),
	           (SELECT extract(epoch FROM min(i.certificate_not_after) - now())::float8
	              FROM node_identities i
	              JOIN cluster_memberships m ON m.cluster_id = i.cluster_id AND m.node_id = i.node_id AND m.membership_status = 'active'
	             WHERE i.identity_status = 'active' AND i.certificate_not_after IS NOT NULL)`).
		Scan(&st.DirtyClusters, &st.AuditHeadSeq, &st.AuditUnchained, &expiry)
	if err != nil {
		return st, mapErr(err)
	}
	st.CertExpirySeconds = math.Inf(1)
	if expiry != nil {
		st.CertExpirySeconds = *expiry
	}
	return st, nil
}
