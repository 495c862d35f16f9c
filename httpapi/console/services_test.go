package console

import (
	"encoding/json"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/store"
)

// TestServicePagesShowReportedState renders the Service Workloads and Node
// Detail pages with the store's service rows: desired beside reported, the
// health, version, restarts and the reason of anything not healthy.
func TestServicePagesShowReportedState(t *testing.T) {
	since := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	rows := maps([]store.ServiceInstance{
		{ID: "s1", ClusterID: "c1", NodeID: "n1", ServiceType: "vpn-exit", ServiceInstanceID: "web", DesiredState: "enabled", Config: json.RawMessage(`{}`),
			ReportedState: "crash_loop", Health: "unknown", Version: "1.2.3", Restarts: 7, ReportedSince: &since,
			Reason: "crash loop: 5 quick failures in a row, last exit code 7", LastExit: json.RawMessage(`{"code":7}`)},
		{ID: "s2", ClusterID: "c1", NodeID: "n1", ServiceType: "update-cache", ServiceInstanceID: "default", DesiredState: "enabled", Config: json.RawMessage(`{}`),
			ReportedState: "unknown", Health: "unknown"},
	})
	c := newConsole(Options{})
	for _, page := range []string{"services", "node"} {
		rec := httptest.NewRecorder()
		c.render(rec, page, &view{Page: page, Now: since, Data: map[string]any{"Services": rows, "ByState": countBy(rows, "reported_state")}})
		require.Equal(t, 200, rec.Code, page)
		body := rec.Body.String()
		for _, want := range []string{"crash_loop", "crash loop: 5 quick failures in a row, last exit code 7", "1.2.3", "<td>7</td>", "not reported", "enabled"} {
			require.Contains(t, body, want, page)
		}
	}
}

// TestServicesPageSwitchesTypesPerCluster renders the per-type enable and
// disable actions of the selected cluster, named in words.
func TestServicesPageSwitchesTypesPerCluster(t *testing.T) {
	rows := maps([]store.ServiceInstance{
		{ID: "s1", ClusterID: "c1", NodeID: "n1", ServiceType: "vpn-exit", DesiredState: "enabled", Config: json.RawMessage(`{}`)},
		{ID: "s2", ClusterID: "c1", NodeID: "n2", ServiceType: "vpn-exit", DesiredState: "enabled", Config: json.RawMessage(`{}`)},
	})
	c := newConsole(Options{})
	rec := httptest.NewRecorder()
	c.render(rec, "services", &view{Page: "services", Cluster: "c1", Clusters: []map[string]any{{"id": "c1", "slug": "demo"}},
		Data: map[string]any{"Services": rows, "Types": countBy(rows, "service_type"), "NodeNames": map[string]string{"n1": "edge-1"}}})
	require.Equal(t, 200, rec.Code)
	body := rec.Body.String()
	require.Contains(t, body, `<td>vpn-exit</td><td>2</td>`)
	require.Contains(t, body, `data-path="/v1/clusters/c1/services/vpn-exit/disable"`)
	require.Contains(t, body, `data-what="Disable every vpn-exit service in demo"`)
	require.Contains(t, body, `title="n1">edge-1</a>`, "node names, ids on hover")
	require.Contains(t, body, `title="n2">n2</a>`, "unknown names fall back to the id")
}
