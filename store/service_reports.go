package store

import (
	"time"

	"github.com/jackc/pgx/v5"
)

// Reported service states are observations written with each heartbeat
// flush (not fenced, see migration 010_service_reports): the services array of every latest
// heartbeat updates the rows of node_service_instances it names, and only
// rows of the reporting node in the reporting cluster.

// updateServiceReportsSQL applies the reports of a flush. The services
// arrays were normalized by the authority at ingest (typed entries only), so
// jsonb_to_recordset cannot fail on them. An older report never overwrites
// a newer one.
const updateServiceReportsSQL = `UPDATE node_service_instances AS s SET
    reported_state = r.state, health = coalesce(r.health, 'unknown'), version = left(coalesce(r.version, ''), 100), restarts = coalesce(r.restarts, 0),
    reported_since = r.since, reason = left(coalesce(r.reason, ''), 1000), last_exit = r.last_exit, last_heartbeat_at = u.at
  FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[]) AS u(c, n, at, sv),
       LATERAL jsonb_to_recordset(u.sv::jsonb) AS r(service_id text, state text, health text, version text, restarts int, since timestamptz, reason text, last_exit jsonb)
 WHERE s.cluster_id = u.c::uuid AND s.node_id = u.n::uuid AND s.id::text = r.service_id
   AND (s.last_heartbeat_at IS NULL OR s.last_heartbeat_at <= u.at)`

// queueServiceReports queues ONE statement applying the services arrays of
// latest (entries with an empty array are skipped).
func queueServiceReports(b *pgx.Batch, latest []LatestHeartbeat) {
	var c, n, sv []string
	var at []time.Time
	for _, x := range latest {
		if len(x.Services) < 3 { // "[]"
			continue
		}
		c, n, sv = append(c, x.ClusterID), append(n, x.NodeID), append(sv, string(x.Services))
		at = append(at, x.ReceivedAt)
	}
	if len(c) == 0 {
		return
	}
	b.Queue(updateServiceReportsSQL, c, n, at, sv)
}
