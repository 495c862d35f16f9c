package authtest

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/daemon"
)

// Metric reads one unlabelled counter or gauge of authority d's collectors
// (the series its /metrics would show), failing the test when there is none.
func Metric(t testing.TB, d *daemon.Daemon, name string) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	for _, c := range d.Auth.Collectors() {
		require.NoError(t, reg.Register(c))
	}
	fams, err := reg.Gather()
	require.NoError(t, err)
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		m := f.GetMetric()[0]
		if m.GetGauge() != nil {
			return m.GetGauge().GetValue()
		}
		return m.GetCounter().GetValue()
	}
	t.Fatalf("no metric %s", name)
	return 0
}
