package authority

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/fsm"
	"github.com/rap-fabric/core/snapshot"
)

func TestDefaultConfigValidates(t *testing.T) {
	require.NoError(t, DefaultConfig().Validate())
	require.NoError(t, Config{}.Validate(), "a zero Config means the defaults")
}

func TestConfigValidateNamesTheField(t *testing.T) {
	for _, tc := range []struct {
		field string
		cfg   Config
	}{
		{"QuorumTimeout", Config{QuorumTimeout: -time.Second}},
		{"Admin.SetupTTL", Config{Admin: AdminOptions{SetupTTL: -1}}},
		{"Heartbeats.MaxBatch", Config{Heartbeats: HeartbeatConfig{MaxBatch: -1}}},
		{"Heartbeats.LateAfter", Config{Heartbeats: HeartbeatConfig{LateAfter: 2 * time.Minute}}},
		{"Heartbeats.StaleAfter", Config{Heartbeats: HeartbeatConfig{StaleAfter: 10 * time.Minute}}},
		{"Heartbeats.MaxBatch", Config{Heartbeats: HeartbeatConfig{MaxBatch: 10, MaxPending: 5}}},
		{"Snapshots.TTL", Config{Snapshots: SnapshotOptions{TTL: -time.Hour}}},
		{"Snapshots.DirtyShare", Config{Snapshots: SnapshotOptions{DirtyShare: -0.1}}},
		{"Snapshots.DirtyShare", Config{Snapshots: SnapshotOptions{DirtyShare: 1.5}}},
		{"Snapshots.CommitPart", Config{Snapshots: SnapshotOptions{CommitPart: -1}}},
		{"Snapshots.Builder", Config{Snapshots: SnapshotOptions{Builder: snapshot.Config{MeshFanout: -1}}}},
	} {
		err := tc.cfg.Validate()
		var ce *ConfigError
		require.True(t, errors.As(err, &ce), "%s: %v", tc.field, err)
		require.Equal(t, tc.field, ce.Field)
		require.ErrorIs(t, err, ErrInvalidConfig)
		_, err = New(tc.cfg, nil, fsm.New(fsm.Options{}), nil)
		require.ErrorAs(t, err, &ce, "New refuses what Validate refuses")
	}
}

func TestNewBuildsSubsystems(t *testing.T) {
	a, err := New(Config{Heartbeats: HeartbeatConfig{LateAfter: 5 * time.Second}}, nil, fsm.New(fsm.Options{}), nil)
	require.NoError(t, err)
	require.NotNil(t, a.Admin())
	require.NotNil(t, a.Heartbeats())
	require.Equal(t, 5*time.Second, a.Heartbeats().Config().LateAfter)
	require.Equal(t, DefaultConfig().Snapshots, a.snapshots.opts)
	b, err := New(Config{}, nil, fsm.New(fsm.Options{}), nil)
	require.NoError(t, err)
	require.NotSame(t, a.Admin(), b.Admin(), "each Authority owns its subsystems")
	require.NotSame(t, a.Heartbeats(), b.Heartbeats())
}

// TestDirtyRest: the rebuild loop rests so that dirty passes take at most
// their share of its time, never longer than maxDirtyRest, and not at all
// with a share of 1 or after a pass that took no time.
func TestDirtyRest(t *testing.T) {
	require.Equal(t, 0.5, SnapshotOptions{}.withDefaults().DirtyShare)
	require.Equal(t, 300*time.Millisecond, dirtyRest(300*time.Millisecond, 0.5))
	require.Equal(t, 900*time.Millisecond, dirtyRest(300*time.Millisecond, 0.25))
	require.Equal(t, 100*time.Millisecond, dirtyRest(400*time.Millisecond, 0.8))
	require.Equal(t, maxDirtyRest, dirtyRest(time.Minute, 0.5))
	require.Zero(t, dirtyRest(time.Second, 1))
	require.Zero(t, dirtyRest(0, 0.5))
}
