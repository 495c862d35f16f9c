package runtime

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/agent/state"
)

func TestHostFingerprint(t *testing.T) {
	dir := t.TempDir()
	mid := filepath.Join(dir, "machine-id")
	require.NoError(t, os.WriteFile(mid, []byte("abc\n"), 0o644))
	a, err := HostFingerprint(mid, dir)
	require.NoError(t, err)
	require.Equal(t, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", a, "sha256 of the trimmed machine id")

	// No machine id: a random id is created once in the state directory.
	b, err := HostFingerprint(filepath.Join(dir, "missing"), dir)
	require.NoError(t, err)
	c, err := HostFingerprint(filepath.Join(dir, "missing"), dir)
	require.NoError(t, err)
	require.Equal(t, b, c)
	require.NotEqual(t, a, b)
	fi, err := os.Stat(filepath.Join(dir, "host-id"))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
}

func TestJitterStaysWithinTenPercent(t *testing.T) {
	for i := 0; i < 1000; i++ {
		d := jitter(time.Second)
		require.GreaterOrEqual(t, d, 900*time.Millisecond)
		require.LessOrEqual(t, d, 1100*time.Millisecond)
	}
}

func TestEnrollValidatesOptionsAndRefusesASecondEnrollment(t *testing.T) {
	st, err := state.Open(filepath.Join(t.TempDir(), "state.db"), state.Options{})
	require.NoError(t, err)
	defer st.Close()
	ctx := context.Background()
	_, err = Enroll(ctx, st, EnrollOptions{})
	require.ErrorIs(t, err, ErrInvalidOptions)
	_, err = Enroll(ctx, st, EnrollOptions{Authorities: []string{"127.0.0.1:1"}, Token: "x", CAPin: "md5:00"})
	require.Error(t, err)

	pin := "sha256:" + string(bytes.Repeat([]byte("ab"), 32))
	require.NoError(t, st.PutIdentity("c1", state.Identity{ClusterID: "c1", NodeID: "n1", SigningKey: make([]byte, 64), NoiseKey: make([]byte, 32),
		CAPin: pin, CertificatePEM: "cert"}))
	_, err = Enroll(ctx, st, EnrollOptions{Authorities: []string{"127.0.0.1:1"}, Token: "x", CAPin: pin})
	require.ErrorIs(t, err, ErrAlreadyEnrolled)
}

func TestStatusFromStateAndTable(t *testing.T) {
	st, err := state.Open(filepath.Join(t.TempDir(), "state.db"), state.Options{})
	require.NoError(t, err)
	defer st.Close()
	require.NoError(t, st.PutIdentity("c1", state.Identity{ClusterID: "c1", NodeID: "n1", SigningKey: make([]byte, 64), NoiseKey: make([]byte, 32), AuthorityURLs: []string{"a:1"}}))
	require.NoError(t, st.PutMembership("c1", state.Membership{ClusterID: "c1", NodeID: "n1", Status: "active"}))
	require.NoError(t, st.PutPartition("c1", state.PartitionInfo{Mode: state.ModeDegraded, Reason: "no authority answers"}))
	r, err := StatusFromState(st)
	require.NoError(t, err)
	require.Equal(t, "state-file", r.Source)
	require.Len(t, r.Memberships, 1)
	m := r.Memberships[0]
	require.Equal(t, "degraded", m.Mode)
	require.Equal(t, "degraded", m.Health())
	var buf bytes.Buffer
	require.NoError(t, WriteStatusTable(&buf, r))
	require.Contains(t, buf.String(), "no authority answers")
	require.Contains(t, buf.String(), "n1")

	_, err = ReadStatus(context.Background(), filepath.Join(t.TempDir(), "none.sock"))
	require.ErrorIs(t, err, ErrAgentNotRunning)
}
