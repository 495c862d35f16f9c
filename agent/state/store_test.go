package state

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	mathrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/rap-fabric/core/domain"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newClock() *fakeClock {
	return &fakeClock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func openT(t *testing.T, path string, clk Clock) *Store {
	t.Helper()
	s, err := Open(path, Options{Clock: clk, LockTimeout: 200 * time.Millisecond})
	require.NoError(t, err)
	return s
}

func testIdentity(t *testing.T, cluster, node string) Identity {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	noise := make([]byte, 32)
	_, err = rand.Read(noise)
	require.NoError(t, err)
	return Identity{
		NodeID: node, ClusterID: cluster, SigningKey: priv, NoiseKey: noise,
		CertificatePEM: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
		CAPEM:          "-----BEGIN CERTIFICATE-----\nBBBB\n-----END CERTIFICATE-----\n",
		CAPin:          "sha256:" + string(bytes.Repeat([]byte("ab"), 32)),
		AuthorityURLs:  []string{"https://a1:8443", "https://a2:8443"},
	}
}

func TestOpenCreatesFileWithMode0600(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "state.db")
	s := openT(t, path, newClock())
	defer s.Close()
	fi, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	di, err := os.Stat(filepath.Dir(path))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o700), di.Mode().Perm())
	ms, err := s.Memberships()
	require.NoError(t, err)
	require.Empty(t, ms)
}

func TestOpenRefusesInsecurePermissions(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.db")
	s := openT(t, path, newClock())
	require.NoError(t, s.Close())

	for _, mode := range []os.FileMode{0o640, 0o604, 0o660, 0o666} {
		require.NoError(t, os.Chmod(path, mode))
		_, err := Open(path, Options{})
		require.ErrorIs(t, err, ErrInsecurePermissions, "mode %#o", mode)
		require.Contains(t, err.Error(), "chmod 0600")
	}
	require.NoError(t, os.Chmod(path, 0o600))

	link := filepath.Join(dir, "link.db")
	require.NoError(t, os.Symlink(path, link))
	_, err := Open(link, Options{})
	require.ErrorIs(t, err, ErrInsecurePermissions)

	_, err = Open(dir, Options{})
	require.ErrorIs(t, err, ErrInsecurePermissions)
}

func TestReopenPersistsEverything(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	clk := newClock()
	s := openT(t, path, clk)

	const c = "cluster-a"
	id := testIdentity(t, c, "node-1")
	require.NoError(t, s.PutIdentity(c, id))
	m := Membership{ClusterID: c, NodeID: "node-1", Status: domain.MembershipActive,
		Roles: []domain.Role{domain.RoleCoreMesh}, JoinedAt: clk.Now()}
	require.NoError(t, s.PutMembership(c, m))
	require.NoError(t, s.AdvanceAppliedVersion(c, 3, []byte("snapshot-v3")))
	peers := PeerCache{SnapshotVersion: 3, Peers: []Peer{{NodeID: "node-2", NoisePublicKey: bytes.Repeat([]byte{7}, 32),
		Endpoints: []string{"10.0.0.2:4500"}, Roles: []domain.Role{domain.RoleRelayNode}}}}
	require.NoError(t, s.PutPeerCache(c, peers))
	routes := RouteCache{SnapshotVersion: 3, Routes: []Route{{Destination: "node-9", NextHop: "node-2", Path: []string{"node-2", "node-9"}, Metric: 20}}}
	require.NoError(t, s.PutRouteCache(c, routes))
	svc := ServiceAssignments{SnapshotVersion: 3, Assignments: []ServiceAssignment{{ServiceID: "svc-1", Role: domain.RoleSSHWorker,
		Desired: "running", Config: json.RawMessage(`{"port":22}`)}}}
	require.NoError(t, s.PutServiceAssignments(c, svc))
	h := LocalHealth{LastHeartbeatOK: clk.Now(), Services: []ServiceHealth{{ServiceID: "svc-1", Status: "running"}}}
	require.NoError(t, s.PutHealth(c, h))
	clk.Advance(time.Minute)
	require.NoError(t, s.PutPartition(c, PartitionInfo{Mode: ModeDegraded, Reason: "no authority answered for 30s",
		AuthorityState: domain.PartitionNormal}))
	u := PendingUpdate{ReleaseID: "rel-1", Version: "1.2.3", PreviousVersion: "1.2.2", ArtifactSHA256: "ff", State: "staged", StartedAt: clk.Now()}
	require.NoError(t, s.PutPendingUpdate(c, u))
	require.NoError(t, s.Close())

	s = openT(t, path, clk)
	defer s.Close()
	ms, err := s.Memberships()
	require.NoError(t, err)
	require.Equal(t, []string{c}, ms)

	gotID, err := s.Identity(c)
	require.NoError(t, err)
	id.UpdatedAt = newClock().Now()
	require.Equal(t, id, gotID)

	gotM, err := s.Membership(c)
	require.NoError(t, err)
	require.Equal(t, m.Roles, gotM.Roles)
	require.Equal(t, domain.MembershipActive, gotM.Status)

	snap, err := s.AppliedSnapshot(c)
	require.NoError(t, err)
	require.Equal(t, uint64(3), snap.Version)
	require.Equal(t, []byte("snapshot-v3"), snap.Raw)
	require.True(t, snap.AppliedAt.Equal(newClock().Now()))

	gotP, err := s.PeerCache(c)
	require.NoError(t, err)
	require.Equal(t, peers.Peers, gotP.Peers)
	gotR, err := s.RouteCache(c)
	require.NoError(t, err)
	require.Equal(t, routes.Routes, gotR.Routes)
	gotS, err := s.ServiceAssignments(c)
	require.NoError(t, err)
	require.Equal(t, svc.Assignments, gotS.Assignments)
	gotH, err := s.Health(c)
	require.NoError(t, err)
	require.Equal(t, h.Services, gotH.Services)
	gotPart, err := s.Partition(c)
	require.NoError(t, err)
	require.Equal(t, ModeDegraded, gotPart.Mode)
	require.True(t, gotPart.Since.Equal(clk.Now()))
	require.Equal(t, "no authority answered for 30s", gotPart.Reason)
	gotU, err := s.PendingUpdate(c)
	require.NoError(t, err)
	require.Equal(t, "1.2.3", gotU.Version)

	require.NoError(t, s.ClearPendingUpdate(c))
	_, err = s.PendingUpdate(c)
	require.ErrorIs(t, err, ErrNotFound)
}

func TestAdvanceAppliedVersionRefusesOlderAndEqualAcrossRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s := openT(t, path, newClock())
	const c = "c1"
	require.ErrorIs(t, s.AdvanceAppliedVersion(c, 1, []byte("x")), ErrNoMembership)
	require.NoError(t, s.PutIdentity(c, testIdentity(t, c, "n1")))

	v, err := s.AppliedVersion(c)
	require.NoError(t, err)
	require.Zero(t, v)
	require.ErrorIs(t, s.AdvanceAppliedVersion(c, 0, []byte("zero")), ErrStaleVersion)
	_, err = s.AppliedSnapshot(c)
	require.ErrorIs(t, err, ErrNotFound)

	require.NoError(t, s.AdvanceAppliedVersion(c, 5, []byte("v5")))
	err = s.AdvanceAppliedVersion(c, 5, []byte("v5-replay"))
	require.ErrorIs(t, err, ErrStaleVersion)
	require.Contains(t, err.Error(), "offered version 5, applied 5")
	require.ErrorIs(t, s.AdvanceAppliedVersion(c, 4, []byte("v4")), ErrStaleVersion)
	require.NoError(t, s.AdvanceAppliedVersion(c, 9, []byte("v9")))
	require.NoError(t, s.Close())

	s = openT(t, path, newClock())
	defer s.Close()
	for _, old := range []uint64{0, 1, 5, 8, 9} {
		require.ErrorIs(t, s.AdvanceAppliedVersion(c, old, []byte("old")), ErrStaleVersion, "version %d", old)
	}
	snap, err := s.AppliedSnapshot(c)
	require.NoError(t, err)
	require.Equal(t, uint64(9), snap.Version)
	require.Equal(t, []byte("v9"), snap.Raw, "a refused offer must not replace the snapshot")

	require.NoError(t, s.AdvanceAppliedVersion(c, 10, []byte("v10")))
	require.ErrorIs(t, s.AdvanceAppliedVersion(c, 10, []byte("v10")), ErrStaleVersion)

	require.ErrorIs(t, s.AdvanceAppliedVersion(c, 11, nil), ErrInvalidArgument)
}

func TestAdvanceAppliedVersionConcurrentSameVersionOneWins(t *testing.T) {
	s := openT(t, filepath.Join(t.TempDir(), "state.db"), newClock())
	defer s.Close()
	const c = "c1"
	require.NoError(t, s.PutIdentity(c, testIdentity(t, c, "n1")))
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { errs[i] = s.AdvanceAppliedVersion(c, 42, []byte(strconv.Itoa(i))) })
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		if err == nil {
			ok++
		} else {
			require.ErrorIs(t, err, ErrStaleVersion)
		}
	}
	require.Equal(t, 1, ok)
}

// TestAdvanceSurvivesKill covers TESTING.md N1 "also after the agent was
// killed": a child process advances and is SIGKILLed without Close.
func TestAdvanceSurvivesKill(t *testing.T) {
	if path := os.Getenv("RAP_STATE_KILL_CHILD"); path != "" {
		s, err := Open(path, Options{})
		if err != nil {
			os.Exit(3)
		}
		if err := s.AdvanceAppliedVersion("c1", 7, []byte("v7")); err != nil {
			os.Exit(4)
		}
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	}
	path := filepath.Join(t.TempDir(), "state.db")
	s := openT(t, path, newClock())
	require.NoError(t, s.PutIdentity("c1", testIdentity(t, "c1", "n1")))
	require.NoError(t, s.Close())

	cmd := exec.Command(os.Args[0], "-test.run=^TestAdvanceSurvivesKill$")
	cmd.Env = append(os.Environ(), "RAP_STATE_KILL_CHILD="+path)
	err := cmd.Run()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee)
	ws, ok := ee.Sys().(syscall.WaitStatus)
	require.True(t, ok)
	require.True(t, ws.Signaled(), "child should die by SIGKILL, got %v", err)
	require.Equal(t, syscall.SIGKILL, ws.Signal())

	s = openT(t, path, newClock())
	defer s.Close()
	require.ErrorIs(t, s.AdvanceAppliedVersion("c1", 7, []byte("v7 again")), ErrStaleVersion)
	require.ErrorIs(t, s.AdvanceAppliedVersion("c1", 6, []byte("v6")), ErrStaleVersion)
	require.NoError(t, s.AdvanceAppliedVersion("c1", 8, []byte("v8")))
}

func TestMembershipsAreIsolated(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s := openT(t, path, newClock())
	defer s.Close()
	idA := testIdentity(t, "A", "node-a")
	idB := testIdentity(t, "B", "node-b")
	require.NoError(t, s.PutIdentity("A", idA))
	require.NoError(t, s.PutIdentity("B", idB))
	require.NoError(t, s.AdvanceAppliedVersion("A", 10, []byte("A10")))
	require.NoError(t, s.AdvanceAppliedVersion("B", 2, []byte("B2")))
	require.NoError(t, s.PutPeerCache("B", PeerCache{Peers: []Peer{{NodeID: "b-peer"}}}))

	// Altering A leaves B alone.
	require.NoError(t, s.AdvanceAppliedVersion("A", 11, []byte("A11")))
	require.NoError(t, s.PutPeerCache("A", PeerCache{Peers: []Peer{{NodeID: "a-peer"}}}))
	require.NoError(t, s.PutPartition("A", PartitionInfo{Mode: ModeRevoked, Reason: "membership revoked"}))
	// B's version 3 is fine even though A is at 11: versions are per cluster.
	require.NoError(t, s.AdvanceAppliedVersion("B", 3, []byte("B3")))

	pb, err := s.PeerCache("B")
	require.NoError(t, err)
	require.Equal(t, "b-peer", pb.Peers[0].NodeID)
	partB, err := s.Partition("B")
	require.NoError(t, err)
	require.Equal(t, ModeNormal, partB.Mode)

	// Deleting A leaves B intact.
	require.NoError(t, s.DeleteMembership("A"))
	ms, err := s.Memberships()
	require.NoError(t, err)
	require.Equal(t, []string{"B"}, ms)
	_, err = s.Identity("A")
	require.ErrorIs(t, err, ErrNoMembership)
	_, err = s.PeerCache("A")
	require.ErrorIs(t, err, ErrNoMembership)
	gotB, err := s.Identity("B")
	require.NoError(t, err)
	require.Equal(t, idB.SigningKey, gotB.SigningKey)
	snapB, err := s.AppliedSnapshot("B")
	require.NoError(t, err)
	require.Equal(t, uint64(3), snapB.Version)
	require.Equal(t, []byte("B3"), snapB.Raw)

	// Re-joining A starts from a fresh namespace.
	require.NoError(t, s.PutIdentity("A", testIdentity(t, "A", "node-a2")))
	v, err := s.AppliedVersion("A")
	require.NoError(t, err)
	require.Zero(t, v)
}

func TestRejectsInvalidArguments(t *testing.T) {
	s := openT(t, filepath.Join(t.TempDir(), "state.db"), newClock())
	defer s.Close()
	id := testIdentity(t, "c", "n")
	require.ErrorIs(t, s.PutIdentity("", id), ErrInvalidArgument)
	require.ErrorIs(t, s.PutIdentity("c/../x", id), ErrInvalidArgument)
	require.ErrorIs(t, s.PutIdentity("other", id), ErrInvalidArgument)
	bad := id
	bad.SigningKey = bad.SigningKey[:10]
	require.ErrorIs(t, s.PutIdentity("c", bad), ErrInvalidArgument)
	bad = id
	bad.NoiseKey = nil
	require.ErrorIs(t, s.PutIdentity("c", bad), ErrInvalidArgument)
	require.ErrorIs(t, s.PutPartition("c", PartitionInfo{Mode: "sleepy"}), ErrInvalidArgument)
	require.ErrorIs(t, s.PutHealth("c", LocalHealth{}), ErrNoMembership)
	_, err := s.Identity("c")
	require.ErrorIs(t, err, ErrNoMembership)

	small, err := Open(filepath.Join(t.TempDir(), "small.db"), Options{MaxSnapshotBytes: 4, MaxRecordBytes: 200})
	require.NoError(t, err)
	defer small.Close()
	require.NoError(t, small.PutMembership("c", Membership{ClusterID: "c"}))
	require.ErrorIs(t, small.AdvanceAppliedVersion("c", 1, []byte("12345")), ErrInvalidArgument)
	require.ErrorIs(t, small.PutPeerCache("c", PeerCache{Peers: make([]Peer, 10)}), ErrInvalidArgument)
}

func TestConcurrentOpenIsLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s := openT(t, path, newClock())
	_, err := Open(path, Options{LockTimeout: 150 * time.Millisecond})
	require.ErrorIs(t, err, ErrLocked)
	require.Contains(t, err.Error(), "gave up after 150ms")
	require.NoError(t, s.Close())

	s2, err := Open(path, Options{LockTimeout: 150 * time.Millisecond})
	require.NoError(t, err)
	require.NoError(t, s2.Close())
}

func TestUseAfterClose(t *testing.T) {
	s := openT(t, filepath.Join(t.TempDir(), "state.db"), newClock())
	require.NoError(t, s.Close())
	require.NoError(t, s.Close())
	_, err := s.Memberships()
	require.ErrorIs(t, err, ErrClosed)
	require.ErrorIs(t, s.PutMembership("c", Membership{ClusterID: "c"}), ErrClosed)
}

// validFile returns the bytes of a populated state file.
func validFile(t *testing.T) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "valid.db")
	s := openT(t, path, newClock())
	require.NoError(t, s.PutIdentity("c", testIdentity(t, "c", "n")))
	require.NoError(t, s.AdvanceAppliedVersion("c", 1, bytes.Repeat([]byte("snap"), 5000)))
	require.NoError(t, s.PutPeerCache("c", PeerCache{Peers: make([]Peer, 500)}))
	require.NoError(t, s.Close())
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	return raw
}

func TestCorruptFileIsErrCorrupt(t *testing.T) {
	valid := validFile(t)
	const page = 4096
	require.Greater(t, len(valid), 6*page)
	garbage := func(n int) []byte {
		b := make([]byte, n)
		_, err := rand.Read(b)
		require.NoError(t, err)
		return b
	}
	overwrite := func(from, to int) []byte {
		b := bytes.Clone(valid)
		copy(b[from:to], garbage(to-from))
		return b
	}
	cases := map[string][]byte{
		"random 100 bytes":      garbage(100),
		"random 64 KiB":         garbage(64 << 10),
		"text":                  []byte("this is not a database\n"),
		"zeros 32 KiB":          make([]byte, 32<<10),
		"meta pages overwrited": overwrite(0, 2*page),
		"truncated to 3 pages":  valid[:3*page],
		"truncated to half":     valid[:len(valid)/2],
		"data pages garbage":    overwrite(2*page, len(valid)),
	}
	for name, content := range cases {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state.db")
			require.NoError(t, os.WriteFile(path, content, 0o600))
			// Twice: a corrupt file must fail the same way on every attempt,
			// never crash or hang.
			for range 2 {
				s, err := Open(path, Options{LockTimeout: 200 * time.Millisecond})
				t.Log(err)
				require.ErrorIs(t, err, ErrCorrupt)
				require.Nil(t, s)
				require.Contains(t, err.Error(), path)
			}
		})
	}
}

func TestCorruptRecordIsErrCorrupt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s := openT(t, path, newClock())
	require.NoError(t, s.PutIdentity("c", testIdentity(t, "c", "n")))
	require.NoError(t, s.Close())

	db, err := bolt.Open(path, 0o600, nil)
	require.NoError(t, err)
	require.NoError(t, db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketClusters).Bucket([]byte("c"))
		if err := b.Put(keyIdentity, []byte("{not json")); err != nil {
			return err
		}
		return b.Put(keyAppliedVersion, []byte{1, 2, 3})
	}))
	require.NoError(t, db.Close())

	s = openT(t, path, newClock())
	defer s.Close()
	_, err = s.Identity("c")
	require.ErrorIs(t, err, ErrCorrupt)
	require.ErrorIs(t, s.AdvanceAppliedVersion("c", 100, []byte("x")), ErrCorrupt)
}

func TestForeignBoltFileIsErrCorrupt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	db, err := bolt.Open(path, 0o600, nil)
	require.NoError(t, err)
	require.NoError(t, db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucket([]byte("raft-logs"))
		return err
	}))
	require.NoError(t, db.Close())
	_, err = Open(path, Options{})
	require.ErrorIs(t, err, ErrCorrupt)
}

func TestNewerSchemaIsRefusedAndFileUntouched(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s := openT(t, path, newClock())
	require.NoError(t, s.PutIdentity("c", testIdentity(t, "c", "n")))
	require.NoError(t, s.Close())

	db, err := bolt.Open(path, 0o600, nil)
	require.NoError(t, err)
	require.NoError(t, db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keySchemaVersion, u64(SchemaVersion+1))
	}))
	require.NoError(t, db.Close())
	before, err := os.ReadFile(path)
	require.NoError(t, err)

	_, err = Open(path, Options{})
	require.ErrorIs(t, err, ErrNewerSchema)
	require.False(t, errors.Is(err, ErrCorrupt))
	require.Contains(t, err.Error(), fmt.Sprintf("schema %d", SchemaVersion+1))

	after, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, sha256.Sum256(before), sha256.Sum256(after))
}

// TestRandomDamageNeverPanics flips bytes at random offsets of a valid file.
// Every outcome must be a clean Open (and then clean operations) or ErrCorrupt.
func TestRandomDamageNeverPanics(t *testing.T) {
	valid := validFile(t)
	rng := mathrand.New(mathrand.NewPCG(1, 2))
	dir := t.TempDir()
	opened, corrupt := 0, 0
	for i := range 150 {
		b := bytes.Clone(valid)
		for range 1 + rng.IntN(8) {
			b[rng.IntN(len(b))] ^= byte(1 + rng.IntN(255))
		}
		path := filepath.Join(dir, fmt.Sprintf("s%d.db", i))
		require.NoError(t, os.WriteFile(path, b, 0o600))
		s, err := Open(path, Options{LockTimeout: 200 * time.Millisecond})
		if err != nil {
			require.ErrorIs(t, err, ErrCorrupt)
			corrupt++
			continue
		}
		opened++
		allowed := func(err error) {
			if err != nil && !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrNotFound) &&
				!errors.Is(err, ErrNoMembership) && !errors.Is(err, ErrStaleVersion) && !errors.Is(err, ErrInvalidArgument) {
				t.Fatalf("case %d: unexpected error %v", i, err)
			}
		}
		_, err = s.Memberships()
		allowed(err)
		_, err = s.Identity("c")
		allowed(err)
		_, err = s.AppliedSnapshot("c")
		allowed(err)
		_, err = s.PeerCache("c")
		allowed(err)
		allowed(s.AdvanceAppliedVersion("c", 2, []byte("v2")))
		require.NoError(t, s.Close())
	}
	t.Logf("opened %d, refused as corrupt %d", opened, corrupt)
	require.Equal(t, 150, opened+corrupt)
}
