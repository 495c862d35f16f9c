package fsm

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func keyIDs(ks []CAKey) []string {
	out := make([]string, 0, len(ks))
	for _, k := range ks {
		out = append(out, k.KeyID)
	}
	return out
}

// TestCARotationOverlapAndRetirement walks one cluster CA through create,
// rotate (overlap: both keys trusted, the old one publishes) and retire
// (only the new key trusted and publishing; the old one known as retired).
func TestCARotationOverlapAndRetirement(t *testing.T) {
	a := newApplier(t, Options{})
	require.NoError(t, a.apply("", ca("c1", "k1", t0)).Err)
	got, _ := a.f.ClusterCA("c1")
	require.Equal(t, []string{"k1"}, keyIDs(got.Trusted()))
	require.Equal(t, "k1", got.Publishing().KeyID)
	require.False(t, got.InOverlap())

	require.NoError(t, a.apply("", rot("c1", "k2", t0.Add(time.Hour))).Err)
	got, _ = a.f.ClusterCA("c1")
	require.Equal(t, []string{"k1", "k2"}, keyIDs(got.Trusted()))
	require.Equal(t, "k1", got.Publishing().KeyID, "the old root publishes during the overlap")
	require.Equal(t, "k2", got.Current.KeyID, "the new root issues")
	require.True(t, got.InOverlap())

	r := a.apply("retire-1", RetireClusterCA{ClusterID: "c1", KeyID: "k1", At: t0.Add(2 * time.Hour)})
	require.NoError(t, r.Err)
	require.Equal(t, TypeRetireClusterCA, r.Type)
	got, _ = a.f.ClusterCA("c1")
	require.Equal(t, []string{"k2"}, keyIDs(got.Trusted()))
	require.Equal(t, "k2", got.Publishing().KeyID)
	require.False(t, got.InOverlap())
	old, ok := got.Key("k1")
	require.True(t, ok)
	require.Equal(t, CAKeyRetired, old.Status)
	require.Equal(t, t0.Add(2*time.Hour), old.RetiredAt)
	require.Equal(t, t0.Add(time.Hour), old.RotatedAt)
	st, ok := a.f.CAKeyStatusOf("c1", "k1")
	require.True(t, ok)
	require.Equal(t, CAKeyRetired, st)
	st, _ = a.f.CAKeyStatusOf("c1", "k2")
	require.Equal(t, CAKeyCurrent, st)
	_, ok = a.f.CAKeyStatusOf("c1", "nope")
	require.False(t, ok)
	require.Contains(t, a.f.Dump(), "key k1 retired")
	require.Contains(t, a.f.Dump(), "retired=2025-03-01T14:00:00Z")

	// Replaying the same request id does not apply twice.
	r2 := a.apply("retire-1", RetireClusterCA{ClusterID: "c1", KeyID: "k1", At: t0.Add(2 * time.Hour)})
	require.True(t, r2.Replayed)

	// The state survives a snapshot/restore round trip.
	snap, err := a.f.Snapshot()
	require.NoError(t, err)
	sink := &memSink{}
	require.NoError(t, snap.Persist(sink))
	f2 := New(Options{})
	require.NoError(t, f2.Restore(sink.reader()))
	require.Equal(t, a.f.Dump(), f2.Dump())
}

// TestRetireClusterCARefusals: only a rotated (overlapping) key can be
// retired; the state is unchanged by a refusal.
func TestRetireClusterCARefusals(t *testing.T) {
	tests := []struct {
		name  string
		prior []Command
		cmd   RetireClusterCA
		want  error
	}{
		{name: "no CA", cmd: RetireClusterCA{ClusterID: "c1", KeyID: "k1", At: t0}, want: ErrNoCA},
		{name: "current key", prior: []Command{ca("c1", "k1", t0), rot("c1", "k2", t0)},
			cmd: RetireClusterCA{ClusterID: "c1", KeyID: "k2", At: t0}, want: ErrCANotRetirable},
		{name: "only key", prior: []Command{ca("c1", "k1", t0)},
			cmd: RetireClusterCA{ClusterID: "c1", KeyID: "k1", At: t0}, want: ErrCANotRetirable},
		{name: "unknown key", prior: []Command{ca("c1", "k1", t0), rot("c1", "k2", t0)},
			cmd: RetireClusterCA{ClusterID: "c1", KeyID: "k9", At: t0}, want: ErrCANotRetirable},
		{name: "twice", prior: []Command{ca("c1", "k1", t0), rot("c1", "k2", t0), RetireClusterCA{ClusterID: "c1", KeyID: "k1", At: t0}},
			cmd: RetireClusterCA{ClusterID: "c1", KeyID: "k1", At: t0.Add(time.Minute)}, want: ErrCANotRetirable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := newApplier(t, Options{})
			for _, p := range tc.prior {
				require.NoError(t, a.apply("", p).Err)
			}
			before, hadCA := a.f.ClusterCA("c1")
			r := a.apply("", tc.cmd)
			require.ErrorIs(t, r.Err, tc.want)
			after, hasCA := a.f.ClusterCA("c1")
			require.Equal(t, hadCA, hasCA)
			require.Equal(t, before, after, "a refused retirement changes nothing")
		})
	}
}

// TestRetireClusterCAValidate: missing fields are refused before Raft.
func TestRetireClusterCAValidate(t *testing.T) {
	require.ErrorIs(t, RetireClusterCA{KeyID: "k", At: t0}.Validate(), ErrInvalid)
	require.ErrorIs(t, RetireClusterCA{ClusterID: "c", At: t0}.Validate(), ErrInvalid)
	require.ErrorIs(t, RetireClusterCA{ClusterID: "c", KeyID: "k"}.Validate(), ErrInvalid)
	data, err := Encode("r", RetireClusterCA{ClusterID: "c", KeyID: "k", At: t0})
	require.NoError(t, err)
	d, err := Decode(data)
	require.NoError(t, err)
	require.Equal(t, RetireClusterCA{ClusterID: "c", KeyID: "k", At: t0}, d.Command)
	require.Equal(t, "retire-ca", TypeRetireClusterCA.String())
}
