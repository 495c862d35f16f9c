package authority

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/store"
)

func report(id, state, health string, restarts int, extra string) json.RawMessage {
	return json.RawMessage(fmt.Sprintf(`[{"service_id":%q,"type":"vpn-exit","state":%q,"health":%q,"version":"1.2.3","restarts":%d,"since":"2030-01-01T00:00:00Z"%s}]`,
		id, state, health, restarts, extra))
}

func TestServiceReportsWrittenWithTheFlush(t *testing.T) {
	db, counter, cluster, nodes := hbDB(t, 2)
	ctx := context.Background()
	var svc store.ServiceInstance
	require.NoError(t, db.Fenced(ctx, 1, func(tx pgx.Tx) error {
		var err error
		svc, err = store.UpsertService(ctx, tx, store.ServiceInstance{ID: store.NewID(), ClusterID: cluster, NodeID: nodes[0], ServiceType: "vpn-exit",
			ServiceInstanceID: "default", DesiredState: "enabled"})
		return err
	}))
	counter.reset()
	clock := &fakeClock{t: time.Date(2030, 1, 1, 0, 0, 1, 0, time.UTC)}
	// One flusher: with several, each shard writes its own reports in one
	// statement, and which shard a node falls in depends on its random id.
	h := NewHeartbeats(nil, HeartbeatConfig{Clock: clock.Now, MaxBatch: 1 << 20, Flushers: 1}, StoreHeartbeatWriter(db))
	p0 := NodePrincipal{ClusterID: cluster, NodeID: nodes[0]}
	_, err := h.Ingest(p0, HeartbeatInput{Seq: 1, Services: report(svc.ID, "healthy", "healthy", 0, `,"pid":42,"unknown_field":1`)})
	require.NoError(t, err)
	// Another node naming the same service id changes nothing.
	_, err = h.Ingest(NodePrincipal{ClusterID: cluster, NodeID: nodes[1]}, HeartbeatInput{Seq: 1, Services: report(svc.ID, "failed", "unknown", 9, "")})
	require.NoError(t, err)
	require.NoError(t, h.Flush(ctx))
	require.Equal(t, 1, counter.take("UPDATE node_service_instances"), "one statement for every report of the flush")
	require.Len(t, counter.stmts, 3, "append, latest upsert, service reports: %v", counter.stmts)

	got, err := store.ListServices(ctx, db.Pool, cluster, nodes[0], "", store.Page{})
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Equal(t, "healthy", got[0].ReportedState)
	require.Equal(t, "healthy", got[0].Health)
	require.Equal(t, "1.2.3", got[0].Version)
	require.Zero(t, got[0].Restarts)
	require.NotNil(t, got[0].ReportedAt)
	require.Equal(t, time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), got[0].ReportedSince.UTC())
	var stored string
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT services::text FROM node_heartbeat_latest WHERE node_id = $1`, nodes[0]).Scan(&stored))
	require.NotContains(t, stored, "unknown_field", "reports are re-encoded from their typed form")

	// Crash loop: recorded with the last exit and audited once.
	for seq := int64(2); seq <= 3; seq++ {
		clock.Add(time.Second)
		_, err = h.Ingest(p0, HeartbeatInput{Seq: seq, Services: report(svc.ID, "crash_loop", "unknown", 5,
			`,"reason":"crash loop: 5 quick failures","last_exit":{"code":7,"at":"2030-01-01T00:00:02Z","output":["boom"]}`)})
		require.NoError(t, err)
		require.NoError(t, h.Flush(ctx))
	}
	got, err = store.ListServices(ctx, db.Pool, cluster, nodes[0], "", store.Page{})
	require.NoError(t, err)
	require.Equal(t, "crash_loop", got[0].ReportedState)
	require.Equal(t, 5, got[0].Restarts)
	require.Contains(t, string(got[0].LastExit), `"boom"`)
	require.Equal(t, 1, count(t, db, `SELECT count(*) FROM cluster_audit_events WHERE action = 'service.reported.crash_loop' AND target_id = $1
		AND actor = $2 AND details->>'from' = 'healthy' AND details->'last_exit'->>'code' = '7'`, svc.ID, nodes[0]))
	// Desired state stays fenced: the report did not touch it.
	require.Equal(t, "enabled", got[0].DesiredState)
}

func TestServiceReportsValidated(t *testing.T) {
	h := NewHeartbeats(nil, HeartbeatConfig{}, &failingWriter{})
	p := NodePrincipal{ClusterID: "c", NodeID: "n"}
	for _, s := range []string{
		`[1]`,
		`[{"service_id":"","state":"healthy","health":"healthy","since":"2030-01-01T00:00:00Z"}]`,
		`[{"service_id":"a","state":"exploded","health":"healthy","since":"2030-01-01T00:00:00Z"}]`,
		`[{"service_id":"a","state":"healthy","health":"great","since":"2030-01-01T00:00:00Z"}]`,
		`[{"service_id":"a","state":"healthy","health":"healthy"}]`,
		`[{"service_id":"a","state":"healthy","health":"healthy","restarts":-1,"since":"2030-01-01T00:00:00Z"}]`,
	} {
		_, err := h.Ingest(p, HeartbeatInput{Services: json.RawMessage(s)})
		var e *Error
		require.ErrorAs(t, err, &e, s)
		require.Equal(t, CodeInvalid, e.Code)
	}
}
