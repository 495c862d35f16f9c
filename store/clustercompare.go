package store

// Cross-cluster comparison (spec C8): one row of facts per cluster, from
// memberships, role assignments, the latest heartbeats, partitions and
// snapshot heads.

import "context"

// ClusterComparison summarizes one cluster for the side-by-side view.
type ClusterComparison struct {
	ClusterID      string
	Slug           string
	Name           string
	Status         string
	PartitionState string
	// Members counts memberships by status (active, disabled, revoked).
	Members map[string]int
	// Health counts active members by heartbeat health (healthy, late,
	// stale, offline; "none" for a member that never sent one).
	Health map[string]int
	// Roles counts active role assignments by role.
	Roles map[string]int
	// AgentVersions counts active members by reported agent version.
	AgentVersions map[string]int
	// CPUs sums the CPU counts active members report in their facts.
	CPUs int
	// MemoryBytes sums the memory active members report in their facts
	// (capacity).
	MemoryBytes int64
	// Load from the latest heartbeats of active members that report one
	// (agentapi.Load): how many report, the sum of their one-minute load
	// averages, their memory in use and their mesh links up.
	LoadReporting int
	Load1         float64
	MemUsedBytes  int64
	LinksUp       int
	// SnapshotsLagging counts active members whose applied snapshot is
	// behind their newest; SnapshotsCurrent those that are not.
	SnapshotsLagging int
	SnapshotsCurrent int
}

// CompareClusters returns every cluster's comparison row, by slug.
func CompareClusters(ctx context.Context, q Querier) ([]ClusterComparison, error) {
	rows, err := collect(ctx, q, func(r scanner) (ClusterComparison, error) {
		c := ClusterComparison{Members: map[string]int{}, Health: map[string]int{}, Roles: map[string]int{}, AgentVersions: map[string]int{}}
		err := r.Scan(&c.ClusterID, &c.Slug, &c.Name, &c.Status, &c.PartitionState, &c.CPUs, &c.MemoryBytes, &c.LoadReporting, &c.Load1, &c.MemUsedBytes,
			&c.LinksUp, &c.SnapshotsLagging, &c.SnapshotsCurrent)
		return c, mapErr(err)
	}, `SELECT c.id::text, c.slug, c.name, c.status, coalesce(p.state, 'normal'),
	        coalesce((SELECT sum(CASE WHEN jsonb_typeof(hb.facts->'cpu_count') = 'number' THEN (hb.facts->>'cpu_count')::numeric::int ELSE 0 END)
	                    FROM node_heartbeat_latest hb JOIN cluster_memberships m ON m.cluster_id = hb.cluster_id AND m.node_id = hb.node_id
	                   WHERE hb.cluster_id = c.id AND m.membership_status = 'active'), 0)::int,
	        coalesce(ld.memory, 0)::bigint, coalesce(ld.reporting, 0)::int, coalesce(ld.load1, 0)::float8, coalesce(ld.mem_used, 0)::bigint,
	        coalesce(ld.links, 0)::int,
	        (SELECT count(*) FROM cluster_memberships m
	           LEFT JOIN node_snapshot_heads h ON h.cluster_id = m.cluster_id AND h.node_id = m.node_id
	           LEFT JOIN node_heartbeat_latest hb ON hb.cluster_id = m.cluster_id AND hb.node_id = m.node_id
	          WHERE m.cluster_id = c.id AND m.membership_status = 'active' AND coalesce(hb.applied_version, 0) < coalesce(h.version, 0))::int,
	        (SELECT count(*) FROM cluster_memberships m
	           LEFT JOIN node_snapshot_heads h ON h.cluster_id = m.cluster_id AND h.node_id = m.node_id
	           LEFT JOIN node_heartbeat_latest hb ON hb.cluster_id = m.cluster_id AND hb.node_id = m.node_id
	          WHERE m.cluster_id = c.id AND m.membership_status = 'active' AND coalesce(hb.applied_version, 0) >= coalesce(h.version, 0))::int
	   FROM clusters c LEFT JOIN cluster_partitions p ON p.cluster_id = c.id
	   LEFT JOIN LATERAL (
	        SELECT sum(CASE WHEN jsonb_typeof(hb.facts->'memory_total_bytes') = 'number' THEN (hb.facts->>'memory_total_bytes')::numeric ELSE 0 END) AS memory,
	               count(*) FILTER (WHERE jsonb_typeof(hb.health->'load') = 'object') AS reporting,
	               sum(CASE WHEN jsonb_typeof(hb.health->'load'->'load1') = 'number' THEN (hb.health->'load'->>'load1')::float8 ELSE 0 END) AS load1,
	               sum(CASE WHEN jsonb_typeof(hb.health->'load'->'mem_used_bytes') = 'number' THEN (hb.health->'load'->>'mem_used_bytes')::numeric ELSE 0 END) AS mem_used,
	               sum(CASE WHEN jsonb_typeof(hb.health->'load'->'links') = 'number' THEN (hb.health->'load'->>'links')::numeric ELSE 0 END) AS links
	          FROM node_heartbeat_latest hb JOIN cluster_memberships m ON m.cluster_id = hb.cluster_id AND m.node_id = hb.node_id
	         WHERE hb.cluster_id = c.id AND m.membership_status = 'active') ld ON true
	  ORDER BY c.slug`)
	if err != nil {
		return nil, err
	}
	byID := map[string]*ClusterComparison{}
	for i := range rows {
		byID[rows[i].ClusterID] = &rows[i]
	}
	count := func(sql string, into func(c *ClusterComparison) map[string]int) error {
		rs, err := q.Query(ctx, sql)
		if err != nil {
			return mapErr(err)
		}
		defer rs.Close()
		for rs.Next() {
			var id, key string
			var n int
			if err := rs.Scan(&id, &key, &n); err != nil {
				return mapErr(err)
			}
			if c := byID[id]; c != nil {
				into(c)[key] = n
			}
		}
		return mapErr(rs.Err())
	}
	for _, step := range []struct {
		sql  string
		into func(c *ClusterComparison) map[string]int
	}{
		{`SELECT cluster_id::text, membership_status, count(*)::int FROM cluster_memberships GROUP BY 1, 2`,
			func(c *ClusterComparison) map[string]int { return c.Members }},
		{`SELECT m.cluster_id::text, coalesce(hb.derived_health, 'none'), count(*)::int FROM cluster_memberships m
		    LEFT JOIN node_heartbeat_latest hb ON hb.cluster_id = m.cluster_id AND hb.node_id = m.node_id
		   WHERE m.membership_status = 'active' GROUP BY 1, 2`,
			func(c *ClusterComparison) map[string]int { return c.Health }},
		{`SELECT cluster_id::text, role, count(*)::int FROM node_role_assignments WHERE status = 'active' GROUP BY 1, 2`,
			func(c *ClusterComparison) map[string]int { return c.Roles }},
		{`SELECT m.cluster_id::text, coalesce(nullif(hb.agent_version, ''), 'unknown'), count(*)::int FROM cluster_memberships m
		    LEFT JOIN node_heartbeat_latest hb ON hb.cluster_id = m.cluster_id AND hb.node_id = m.node_id
		   WHERE m.membership_status = 'active' GROUP BY 1, 2`,
			func(c *ClusterComparison) map[string]int { return c.AgentVersions }},
	} {
		if err := count(step.sql, step.into); err != nil {
			return nil, err
		}
	}
	return rows, nil
}
