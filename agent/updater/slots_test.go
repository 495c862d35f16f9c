package updater

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/agent/state"
	"github.com/rap-fabric/core/release"
)

func art(b []byte) release.Artifact {
	s := sha256.Sum256(b)
	return release.Artifact{OS: "linux", Arch: "amd64", SHA256: hex.EncodeToString(s[:]), Size: int64(len(b))}
}

func TestSlots(t *testing.T) {
	s := Slots{Dir: t.TempDir()}
	_, err := s.Current()
	require.ErrorIs(t, err, ErrNoVersion)
	v1, v2 := []byte("binary one"), []byte("binary two!")
	require.NoError(t, s.Stage("1.0.0", art(v1), bytes.NewReader(v1)))
	require.True(t, s.Has("1.0.0"))
	fi, err := os.Stat(s.Binary("1.0.0"))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o755), fi.Mode().Perm())
	require.NoError(t, s.Promote("1.0.0"))
	prev, err := s.Previous()
	require.NoError(t, err)
	require.Empty(t, prev)

	// Flipped, short and endless inputs are refused and leave nothing staged.
	flipped := bytes.Clone(v2)
	flipped[3] ^= 1
	for name, r := range map[string]io.Reader{"flipped": bytes.NewReader(flipped), "short": bytes.NewReader(v2[:5]),
		"endless": io.MultiReader(bytes.NewReader(v2), bytes.NewReader(bytes.Repeat([]byte{0}, 1<<20)))} {
		err := s.Stage("2.0.0", art(v2), r)
		require.ErrorIs(t, err, release.ErrArtifactMismatch, name)
		require.False(t, s.Has("2.0.0"), name)
	}
	left, _ := filepath.Glob(filepath.Join(s.Dir, "versions", ".stage-*"))
	require.Empty(t, left, "no temporary files left behind")
	require.ErrorIs(t, s.Promote("2.0.0"), ErrNoVersion, "only staged versions are promoted")

	require.NoError(t, s.Stage("2.0.0", art(v2), bytes.NewReader(v2)))
	require.NoError(t, s.Stage("2.0.0", art(v2), bytes.NewReader(nil)), "already staged and verified: not read again")
	require.NoError(t, s.Promote("2.0.0"))
	cur, _ := s.Current()
	prev, _ = s.Previous()
	require.Equal(t, []string{"2.0.0", "1.0.0"}, []string{cur, prev})
	// A corrupted slot is replaced on the next staging.
	require.NoError(t, os.WriteFile(s.Binary("1.0.0"), []byte("rotten"), 0o755))
	require.Error(t, s.Verify("1.0.0", art(v1)))
	require.NoError(t, s.Stage("1.0.0", art(v1), bytes.NewReader(v1)))
	require.NoError(t, s.Verify("1.0.0", art(v1)))
	require.Error(t, s.Promote("../../etc"), "versions are semantic versions, not paths")
}

// memStore is an in-memory PendingStore for the step logic.
type memStore struct {
	recs  map[string]state.PendingUpdate
	puts  []string
	clust []string
}

func (m *memStore) Memberships() ([]string, error) { sort.Strings(m.clust); return m.clust, nil }
func (m *memStore) PendingUpdate(c string) (state.PendingUpdate, error) {
	u, ok := m.recs[c]
	if !ok {
		return u, state.ErrNotFound
	}
	return u, nil
}
func (m *memStore) PutPendingUpdate(c string, u state.PendingUpdate) error {
	m.recs[c] = u
	m.puts = append(m.puts, u.State)
	return nil
}
func (m *memStore) ClearPendingUpdate(c string) error { delete(m.recs, c); return nil }

func TestStageRecordsEachStepFirst(t *testing.T) {
	s := Slots{Dir: t.TempDir()}
	st := &memStore{recs: map[string]state.PendingUpdate{}, clust: []string{"c2", "c1"}}
	bin := []byte("agent 2.0.0")
	fetches := 0
	req := StageRequest{Cluster: "c1", Version: "2.0.0", Current: "1.0.0", Artifact: art(bin), Now: time.Unix(1, 0),
		Fetch: func() (io.ReadCloser, error) {
			fetches++
			require.Equal(t, StepDownloading, st.recs["c1"].State, "downloading is recorded before the download")
			return io.NopCloser(bytes.NewReader(bin)), nil
		}}
	require.NoError(t, Stage(st, s, req))
	require.Equal(t, []string{StepDownloading, StepStaged, StepSwitchRequested}, st.puts)
	c, u, ok, err := FindPending(st)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, "c1", c)
	require.Equal(t, "1.0.0", u.PreviousVersion)
	// Again (a crash after staging): nothing fetched again.
	require.NoError(t, Stage(st, s, req))
	require.Equal(t, 1, fetches)

	req.Version, req.Current = "1.5.0", "2.0.0"
	require.True(t, errors.Is(Stage(st, s, req), ErrDowngrade))
	req.AllowDowngrade = true
	req.Artifact = art([]byte("x"))
	req.Fetch = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader([]byte("x"))), nil }
	require.NoError(t, Stage(st, s, req), "a signed rollback/pin allows it")
	require.True(t, st.recs["c1"].AllowDowngrade)
}

// TestStageTriesSourcesInOrder: an unreachable mirror and a mirror whose
// copy has a flipped byte are skipped (the bytes are verified whoever
// serves them); the next source's good bytes are staged. No source with
// good bytes: nothing staged, and the error names each source.
func TestStageTriesSourcesInOrder(t *testing.T) {
	s := Slots{Dir: t.TempDir()}
	st := &memStore{recs: map[string]state.PendingUpdate{}, clust: []string{"c1"}}
	bin := []byte("agent 2.0.0 binary bytes")
	flipped := bytes.Clone(bin)
	flipped[3] ^= 0x01
	open := func(b []byte) func() (io.ReadCloser, error) {
		return func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	}
	var tried []string
	var errs []error
	req := StageRequest{Cluster: "c1", Version: "2.0.0", Current: "1.0.0", Artifact: art(bin), Now: time.Unix(1, 0),
		Sources: []Source{
			{Name: "update-cache down", Open: func() (io.ReadCloser, error) { return nil, errors.New("connection refused") }},
			{Name: "update-cache flipped", Open: open(flipped)},
			{Name: "update-cache long", Open: open(append(bytes.Clone(bin), 'x'))},
			{Name: "authority", Open: open(bin)},
			{Name: "never asked", Open: func() (io.ReadCloser, error) { t.Fatal("asked after a source served"); return nil, nil }},
		},
		OnSource: func(name string, err error) { tried, errs = append(tried, name), append(errs, err) }}
	require.NoError(t, Stage(st, s, req))
	require.Equal(t, []string{"update-cache down", "update-cache flipped", "update-cache long", "authority"}, tried)
	require.ErrorIs(t, errs[1], release.ErrArtifactMismatch, "flipped byte refused")
	require.ErrorIs(t, errs[2], release.ErrArtifactMismatch, "extra byte refused")
	require.NoError(t, errs[3])
	require.NoError(t, s.Verify("2.0.0", art(bin)))

	req.Version = "3.0.0"
	req.Sources, req.OnSource = req.Sources[1:2], nil
	err := Stage(st, s, req)
	require.ErrorIs(t, err, ErrNoSource)
	require.ErrorIs(t, err, release.ErrArtifactMismatch)
	require.Contains(t, err.Error(), "update-cache flipped")
	require.False(t, s.Has("3.0.0"), "nothing staged from bad bytes")
}
