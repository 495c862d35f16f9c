package promsink

import (
	"strings"
	"testing"

	gometrics "github.com/hashicorp/go-metrics/compat"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	"github.com/stretchr/testify/require"
)

func TestSnakeCase(t *testing.T) {
	for in, want := range map[string]string{
		"commitTime": "commit_time", "getRPCType": "get_rpc_type", "lastContact": "last_contact",
		"heartbeat_timeout": "heartbeat_timeout", "appendEntries": "append_entries", "raft": "raft",
		"store_config": "store_config", "a.b-c": "a_b_c", "RPC": "rpc",
	} {
		require.Equal(t, want, SnakeCase(in), in)
	}
}

// TestSinkTranslatesRaftKeys: timings become histograms in seconds, counters
// get _total, per-peer key copies are dropped, and the result is promlint
// clean.
func TestSinkTranslatesRaftKeys(t *testing.T) {
	s := New()
	s.AddSample([]string{"raft", "commitTime"}, 250) // 250 ms
	s.AddSample([]string{"raft", "commitTime"}, 750)
	s.AddSample([]string{"raft", "leader", "lastContact"}, 40)
	s.AddSample([]string{"raft", "fsm", "applyBatchNum"}, 3)
	s.IncrCounter([]string{"raft", "apply"}, 1)
	s.IncrCounter([]string{"raft", "apply"}, 2)
	s.SetGauge([]string{"raft", "peers"}, 3)
	s.AddSample([]string{"raft", "replication", "heartbeat", "a2"}, 1)
	s.AddSampleWithLabels([]string{"raft", "replication", "heartbeat"}, 1, []gometrics.Label{{Name: "peer_id", Value: "a2"}})
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(s))

	n, err := testutil.GatherAndCount(reg)
	require.NoError(t, err)
	require.Equal(t, 6, n, "the per-peer key copy is dropped")
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP raft_apply_total go-metrics raft.apply
# TYPE raft_apply_total counter
raft_apply_total 3
# HELP raft_peers go-metrics raft.peers
# TYPE raft_peers gauge
raft_peers 3
`), "raft_apply_total", "raft_peers"))
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == "raft_commit_time_seconds" {
			h := mf.GetMetric()[0].GetHistogram()
			require.EqualValues(t, 2, h.GetSampleCount())
			require.InDelta(t, 1.0, h.GetSampleSum(), 1e-9, "milliseconds became seconds")
		}
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	require.NoError(t, err)
	require.Empty(t, problems)
}

// Samples whose labels come in another order land in the same series, a name
// reported with another label set keeps its first shape, and a sample of a
// known shape does no name translation (four small allocations: the dotted
// key, the shape key, the label values and the series key).
func TestSinkShapeCache(t *testing.T) {
	s := New()
	ab := []gometrics.Label{{Name: "peerId", Value: "a2"}, {Name: "kind", Value: "x"}}
	ba := []gometrics.Label{{Name: "kind", Value: "x"}, {Name: "peerId", Value: "a2"}}
	s.IncrCounterWithLabels([]string{"raft", "rpc"}, 1, ab)
	s.IncrCounterWithLabels([]string{"raft", "rpc"}, 2, ba)
	s.IncrCounterWithLabels([]string{"raft", "rpc"}, 4, []gometrics.Label{{Name: "kind", Value: "x"}}) // another shape
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(s))
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP raft_rpc_total go-metrics raft.rpc
# TYPE raft_rpc_total counter
raft_rpc_total{kind="x",peer_id="a2"} 3
`), "raft_rpc_total"))
	allocs := testing.AllocsPerRun(100, func() {
		s.AddSampleWithLabels([]string{"raft", "replication", "appendEntries", "rpc"}, 1.5, ab)
	})
	require.LessOrEqual(t, allocs, 4.0)
}
