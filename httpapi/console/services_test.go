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
