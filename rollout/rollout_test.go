package rollout

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func nodes(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("node-%02d", i)
	}
	return out
}

func TestWaves(t *testing.T) {
	for _, tc := range []struct {
		n     int
		p     Policy
		sizes []int
	}{
		{0, DefaultPolicy(), nil},
		{1, DefaultPolicy(), []int{1}},
		{5, DefaultPolicy(), []int{1, 2, 2}},
		{10, Policy{CanaryCount: 1, CanaryPercent: 20, WavePercent: 50}, []int{2, 5, 3}},
		{10, Policy{CanaryCount: 3, WavePercent: 100}, []int{3, 7}},
		{4, Policy{CanaryCount: 9, WavePercent: 10}, []int{4}},
		{7, Policy{CanaryCount: 0, CanaryPercent: 0, WavePercent: 1}, []int{1, 1, 1, 1, 1, 1, 1}},
	} {
		w := Waves("r1", nodes(tc.n), tc.p)
		var sizes []int
		seen := map[string]bool{}
		for _, x := range w {
			sizes = append(sizes, len(x))
			for _, n := range x {
				require.False(t, seen[n], "node in two waves")
				seen[n] = true
			}
		}
		require.Equal(t, tc.sizes, sizes, "n=%d %+v", tc.n, tc.p)
		require.Len(t, seen, tc.n)
	}
	// Deterministic per rollout, whatever the input order; differs across rollouts.
	a := Waves("r1", nodes(20), DefaultPolicy())
	rev := nodes(20)
	for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
		rev[i], rev[j] = rev[j], rev[i]
	}
	require.Equal(t, a, Waves("r1", append(rev, rev[0]), DefaultPolicy()), "order and duplicates do not matter")
	canaries := map[string]bool{}
	for i := range 10 {
		canaries[Waves(fmt.Sprint("r", i), nodes(20), DefaultPolicy())[0][0]] = true
	}
	require.Greater(t, len(canaries), 1, "not always the same canary")
}

func TestPolicyValidate(t *testing.T) {
	require.NoError(t, DefaultPolicy().Validate())
	for name, mut := range map[string]func(*Policy){
		"negative canary": func(p *Policy) { p.CanaryCount = -1 },
		"percent > 100":   func(p *Policy) { p.CanaryPercent = 101 },
		"zero wave":       func(p *Policy) { p.WavePercent = 0 },
		"negative soak":   func(p *Policy) { p.Soak = -time.Second },
		"zero threshold":  func(p *Policy) { p.FailureThreshold = 0 },
		"tiny deadline":   func(p *Policy) { p.Deadline = time.Millisecond },
	} {
		p := DefaultPolicy()
		mut(&p)
		require.ErrorIs(t, p.Validate(), ErrInvalidPolicy, name)
	}
}

func TestDesiredFor(t *testing.T) {
	waves := [][]string{{"a"}, {"b", "c"}, {"d"}}
	r := Rollout{ID: "r", Target: "2.0.0", Rollback: "1.0.0", CurrentWave: 1}
	for _, tc := range []struct {
		state State
		node  string
		want  Desired
		ok    bool
	}{
		{StateRunning, "a", Desired{Version: "2.0.0", Wave: 0}, true},
		{StateRunning, "c", Desired{Version: "2.0.0", Wave: 1}, true},
		{StateRunning, "d", Desired{}, false},
		{StateRunning, "joiner", Desired{}, false},
		{StatePaused, "b", Desired{Version: "2.0.0", Wave: 1}, true},
		{StatePaused, "d", Desired{}, false},
		{StateHalted, "a", Desired{}, false},
		{StateCompleted, "joiner", Desired{Version: "2.0.0", Wave: -1}, true},
		{StateRolledBack, "d", Desired{Version: "1.0.0", AllowDowngrade: true, Wave: 2}, true},
		{StatePinned, "a", Desired{Version: "2.0.0", AllowDowngrade: true, Wave: 0}, true},
	} {
		r.State = tc.state
		got, ok := DesiredFor(r, waves, tc.node)
		require.Equal(t, tc.ok, ok, "%s %s", tc.state, tc.node)
		require.Equal(t, tc.want, got, "%s %s", tc.state, tc.node)
	}
	r.State, r.Rollback = StateRolledBack, ""
	_, ok := DesiredFor(r, waves, "a")
	require.False(t, ok, "no last-known-good: nothing to roll back to")
}

func TestEvaluate(t *testing.T) {
	p := Policy{CanaryCount: 1, WavePercent: 50, Soak: 10 * time.Minute, FailureThreshold: 1, Deadline: 5 * time.Minute}
	waves := [][]string{{"a"}, {"b", "c"}}
	run := func(wave int) Rollout {
		return Rollout{ID: "r", State: StateRunning, Target: "2.0.0", Policy: p, CurrentWave: wave, WaveStartedAt: t0}
	}
	ok := func(at time.Duration) Report {
		return Report{Current: "2.0.0", Target: "2.0.0", State: UpdateRunning, At: t0.Add(at)}
	}
	for _, tc := range []struct {
		name    string
		r       Rollout
		reports map[string]Report
		now     time.Duration
		want    Action
	}{
		{"nothing reported yet", run(0), nil, time.Minute, ActionNone},
		{"still downloading", run(0), map[string]Report{"a": {Current: "1.0.0", Target: "2.0.0", State: UpdateDownloading, At: t0}}, time.Minute, ActionNone},
		{"deadline passed", run(0), nil, 6 * time.Minute, ActionHalt},
		{"canary rolled back", run(0), map[string]Report{"a": {Current: "1.0.0", Target: "2.0.0", State: UpdateRolledBack, At: t0}}, time.Minute, ActionHalt},
		{"canary failed", run(0), map[string]Report{"a": {Current: "1.0.0", Target: "2.0.0", State: UpdateFailed, At: t0}}, time.Minute, ActionHalt},
		{"old failure of another target ignored", run(0), map[string]Report{"a": {Current: "1.0.0", Target: "1.9.0", State: UpdateFailed, At: t0}}, time.Minute, ActionNone},
		{"canary ok, soaking", run(0), map[string]Report{"a": ok(time.Minute)}, 5 * time.Minute, ActionNone},
		{"canary ok and soaked", run(0), map[string]Report{"a": ok(time.Minute)}, 11 * time.Minute, ActionAdvance},
		{"soak counts from the last success even past the deadline", run(0), map[string]Report{"a": ok(4 * time.Minute)}, 12 * time.Minute, ActionNone},
		{"last wave ok and soaked", run(1), map[string]Report{"b": ok(0), "c": ok(time.Minute)}, 20 * time.Minute, ActionComplete},
		{"last wave half done", run(1), map[string]Report{"b": ok(0)}, 2 * time.Minute, ActionNone},
		{"paused never moves", Rollout{State: StatePaused, Target: "2.0.0", Policy: p}, map[string]Report{"a": ok(0)}, time.Hour, ActionNone},
	} {
		d := Evaluate(tc.r, waves, tc.reports, t0.Add(tc.now))
		require.Equal(t, tc.want, d.Action, "%s: %s", tc.name, d.Reason)
	}
	// Threshold 2: one failure in a wave of two only waits.
	r := run(1)
	r.Policy.FailureThreshold = 2
	d := Evaluate(r, waves, map[string]Report{"b": {Target: "2.0.0", State: UpdateRolledBack, At: t0}}, t0.Add(time.Minute))
	require.Equal(t, ActionNone, d.Action)
	require.Equal(t, []string{"b"}, d.Failed)
	require.Equal(t, []string{"c"}, d.Pending)
	require.Equal(t, ActionNone, Evaluate(run(0), nil, nil, t0.Add(time.Hour)).Action, "an empty cluster proves nothing: it waits")
	require.True(t, ValidUpdateState(UpdateHealthChecking))
	require.False(t, ValidUpdateState("exploded"))
}
