package fsm

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/domain"
)

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }

type memSink struct {
	bytes.Buffer
	cancelled bool
}

func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Cancel() error { s.cancelled = true; return nil }
func (s *memSink) Close() error  { return nil }
func (s *memSink) reader() io.ReadCloser {
	return io.NopCloser(bytes.NewReader(s.Bytes()))
}

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// applier feeds commands to an FSM with increasing log indexes.
type applier struct {
	t     *testing.T
	f     *FSM
	index uint64
}

func newApplier(t *testing.T, opts Options) *applier { return &applier{t: t, f: New(opts)} }

func (a *applier) apply(rid string, c Command) Result {
	a.t.Helper()
	data, err := Encode(rid, c)
	require.NoError(a.t, err)
	return a.raw(data)
}

func (a *applier) raw(data []byte) Result {
	a.index++
	return a.f.Apply(&raft.Log{Index: a.index, Term: 1, Type: raft.LogCommand, Data: data}).(Result)
}

func ca(cluster, key string, at time.Time) CreateClusterCA {
	return CreateClusterCA{ClusterID: cluster, KeyID: key, PublicKey: []byte("pub-" + key),
		SealedPrivateKey: []byte("sealed-" + key), CertDER: []byte("cert-" + key), At: at}
}

func gk(cluster, key string, first bool) SetGossipKey {
	return SetGossipKey{ClusterID: cluster, KeyID: key, SealedKey: []byte("sealed-" + key), OnlyIfNone: first, At: t0}
}

func gkPool(cluster, pool, key string) SetGossipKey {
	return SetGossipKey{ClusterID: cluster, Pool: pool, KeyID: key, SealedKey: []byte("sealed-" + key), At: t0}
}

func rot(cluster, key string, at time.Time) RotateClusterCA {
	return RotateClusterCA(ca(cluster, key, at))
}

func TestApply(t *testing.T) {
	tests := []struct {
		name    string
		prior   []Command
		cmd     Command
		wantErr error
		check   func(t *testing.T, f *FSM, r Result)
	}{
		{name: "first claim takes the term", cmd: ClaimEpoch{LeaderID: "a", Term: 5, At: t0},
			check: func(t *testing.T, f *FSM, r Result) {
				require.Equal(t, uint64(5), r.Epoch)
				require.Equal(t, uint64(5), f.AgreedEpoch())
				require.Equal(t, EpochClaim{Epoch: 5, LeaderID: "a", Term: 5, Index: 1, At: t0}, f.LastClaim())
			}},
		{name: "claim in same term still increases", prior: []Command{ClaimEpoch{LeaderID: "a", Term: 5}},
			cmd:   ClaimEpoch{LeaderID: "b", Term: 5},
			check: func(t *testing.T, f *FSM, r Result) { require.Equal(t, uint64(6), r.Epoch) }},
		{name: "claim jumps to a higher term", prior: []Command{ClaimEpoch{LeaderID: "a", Term: 2}},
			cmd:   ClaimEpoch{LeaderID: "b", Term: 9},
			check: func(t *testing.T, f *FSM, r Result) { require.Equal(t, uint64(9), r.Epoch) }},
		{name: "stale claim rejected", prior: []Command{ClaimEpoch{LeaderID: "a", Term: 7}},
			cmd: ClaimEpoch{LeaderID: "b", Term: 6}, wantErr: ErrStaleClaim,
			check: func(t *testing.T, f *FSM, r Result) { require.Equal(t, uint64(7), f.AgreedEpoch()) }},
		{name: "create CA", cmd: ca("c1", "k1", t0),
			check: func(t *testing.T, f *FSM, r Result) {
				got, ok := f.ClusterCA("c1")
				require.True(t, ok)
				require.Equal(t, "k1", got.Current.KeyID)
				require.Equal(t, CAKeyCurrent, got.Current.Status)
				require.Empty(t, got.History)
				require.Equal(t, []string{"c1"}, f.Clusters())
			}},
		{name: "first gossip key", cmd: gk("c1", "g1", true),
			check: func(t *testing.T, f *FSM, r Result) {
				got := f.GossipKeys("c1")
				require.Len(t, got, 1)
				require.Equal(t, GossipKey{KeyID: "g1", Status: GossipKeyCurrent, SealedKey: []byte("sealed-g1"), CreatedAt: t0, Index: 1}, got[0])
				require.Empty(t, f.GossipKeys("c2"))
			}},
		{name: "second first gossip key refused", prior: []Command{gk("c1", "g1", true)}, cmd: gk("c1", "g2", true), wantErr: ErrGossipKeyExists,
			check: func(t *testing.T, f *FSM, r Result) { require.Equal(t, "g1", f.GossipKeys("c1")[0].KeyID) }},
		{name: "gossip key rotation keeps one previous", prior: []Command{gk("c1", "g1", true), gk("c1", "g2", false), gkPool("c1", "edge", "e1")},
			cmd: gk("c1", "g3", false),
			check: func(t *testing.T, f *FSM, r Result) {
				got := f.GossipKeys("c1")
				require.Len(t, got, 3)
				require.Equal(t, []string{"g3", "g2", "e1"}, []string{got[0].KeyID, got[1].KeyID, got[2].KeyID})
				require.Equal(t, []string{GossipKeyCurrent, GossipKeyPrevious, GossipKeyCurrent}, []string{got[0].Status, got[1].Status, got[2].Status})
				require.Equal(t, "edge", got[2].Pool)
			}},
		{name: "gossip key id reused", prior: []Command{gk("c1", "g1", true), gk("c1", "g2", false)}, cmd: gk("c1", "g1", false), wantErr: ErrKeyIDReused},
		{name: "create CA twice", prior: []Command{ca("c1", "k1", t0)}, cmd: ca("c1", "k2", t0), wantErr: ErrCAExists},
		{name: "rotate without CA", cmd: rot("c1", "k2", t0), wantErr: ErrNoCA},
		{name: "rotate keeps history", prior: []Command{ca("c1", "k1", t0), rot("c1", "k2", t0.Add(time.Hour))},
			cmd: rot("c1", "k3", t0.Add(2*time.Hour)),
			check: func(t *testing.T, f *FSM, r Result) {
				got, _ := f.ClusterCA("c1")
				require.Equal(t, "k3", got.Current.KeyID)
				require.Len(t, got.History, 2)
				require.Equal(t, "k1", got.History[0].KeyID)
				require.Equal(t, CAKeyRotated, got.History[0].Status)
				require.Equal(t, t0.Add(time.Hour), got.History[0].RotatedAt)
				require.Equal(t, t0.Add(2*time.Hour), got.History[1].RotatedAt)
				k, ok := got.Key("k2")
				require.True(t, ok)
				require.Equal(t, CAKeyRotated, k.Status)
			}},
		{name: "rotate to a used key id", prior: []Command{ca("c1", "k1", t0), rot("c1", "k2", t0)},
			cmd: rot("c1", "k1", t0), wantErr: ErrKeyIDReused},
		{name: "clusters are separate", prior: []Command{ca("c1", "k1", t0)}, cmd: ca("c2", "k1", t0),
			check: func(t *testing.T, f *FSM, r Result) { require.Equal(t, []string{"c1", "c2"}, f.Clusters()) }},
		{name: "set partition", cmd: SetPartition{ClusterID: "c1", State: domain.PartitionFenced, Reason: "minority",
			Actor: "owner", Epoch: 3, At: t0},
			check: func(t *testing.T, f *FSM, r Result) {
				p, ok := f.Partition("c1")
				require.True(t, ok)
				require.Equal(t, PartitionInfo{ClusterID: "c1", State: domain.PartitionFenced, Reason: "minority",
					Actor: "owner", Epoch: 3, At: t0, Index: 1}, p)
				p, ok = f.Partition("other")
				require.False(t, ok)
				require.Equal(t, domain.PartitionNormal, p.State)
			}},
		{name: "unknown partition state", cmd: SetPartition{ClusterID: "c1", State: "split", Actor: "o", At: t0}, wantErr: ErrInvalid},
		{name: "members", prior: []Command{UpsertMember{ID: "b", RaftAddr: "b:1", Suffrage: SuffrageVoter}},
			cmd: UpsertMember{ID: "a", RaftAddr: "a:1", APIAddr: "a:2", Suffrage: SuffrageNonvoter},
			check: func(t *testing.T, f *FSM, r Result) {
				require.Equal(t, []Member{{ID: "a", RaftAddr: "a:1", APIAddr: "a:2", Suffrage: SuffrageNonvoter},
					{ID: "b", RaftAddr: "b:1", Suffrage: SuffrageVoter}}, f.Members())
			}},
		{name: "remove member", prior: []Command{UpsertMember{ID: "b", RaftAddr: "b:1", Suffrage: SuffrageVoter}},
			cmd:   RemoveMember{ID: "b"},
			check: func(t *testing.T, f *FSM, r Result) { require.Empty(t, f.Members()) }},
		{name: "remove unknown member", cmd: RemoveMember{ID: "x"}, wantErr: ErrUnknownMember},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := newApplier(t, Options{})
			for _, p := range tc.prior {
				require.NoError(t, a.apply("", p).Err)
			}
			var data []byte
			if err := tc.cmd.Validate(); err != nil {
				data = encodeUnchecked("", tc.cmd)
			} else {
				var err error
				data, err = Encode("", tc.cmd)
				require.NoError(t, err)
			}
			r := a.raw(data)
			if tc.wantErr != nil {
				require.ErrorIs(t, r.Err, tc.wantErr)
			} else {
				require.NoError(t, r.Err)
			}
			require.Equal(t, a.index, r.Index)
			require.Equal(t, tc.cmd.Type(), r.Type)
			require.Equal(t, a.index, a.f.AppliedIndex())
			if tc.check != nil {
				tc.check(t, a.f, r)
			}
		})
	}
}

func TestDecodeRejects(t *testing.T) {
	good, err := Encode("r", ClaimEpoch{LeaderID: "a", Term: 1})
	require.NoError(t, err)
	tests := []struct {
		name string
		data []byte
		want error
	}{
		{"empty", nil, ErrMalformed},
		{"one byte", []byte{1}, ErrMalformed},
		{"version 0", append([]byte{0}, good[1:]...), ErrUnknownVersion},
		{"version 2", append([]byte{2}, good[1:]...), ErrUnknownVersion},
		{"type 0", append([]byte{1, 0}, good[2:]...), ErrUnknownType},
		{"type 200", append([]byte{1, 200}, good[2:]...), ErrUnknownType},
		{"not json", []byte("\x01\x01{nope"), ErrMalformed},
		{"missing cmd", []byte("\x01\x01{}"), ErrMalformed},
		{"trailing data", append(append([]byte(nil), good...), " {}"...), ErrMalformed},
		{"trailing bracket", append(append([]byte(nil), good...), ']'), ErrMalformed},
		{"wrong field type", []byte(`` + "\x01\x01" + `{"cmd":{"leader_id":1}}`), ErrMalformed},
		{"invalid", []byte("\x01\x01" + `{"cmd":{"term":3}}`), ErrInvalid},
		{"long request id", []byte("\x01\x01" + `{"request_id":"` + strings.Repeat("x", 200) + `","cmd":{"leader_id":"a"}}`), ErrInvalid},
		{"huge", append([]byte{1, 1}, make([]byte, MaxCommandSize)...), ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode(tc.data)
			require.ErrorIs(t, err, tc.want)
			var ce *CommandError
			require.True(t, errors.As(err, &ce))
			// And Apply turns it into a result, not a panic.
			a := newApplier(t, Options{})
			r := a.raw(tc.data)
			require.ErrorIs(t, r.Err, tc.want)
			require.Equal(t, uint64(1), a.f.AppliedIndex())
		})
	}
	d, err := Decode(good)
	require.NoError(t, err)
	require.Equal(t, Decoded{Version: Version1, RequestID: "r", Command: ClaimEpoch{LeaderID: "a", Term: 1}}, d)
}

func TestEncodeValidates(t *testing.T) {
	_, err := Encode("", CreateClusterCA{ClusterID: "c"})
	require.ErrorIs(t, err, ErrInvalid)
	_, err = Encode(strings.Repeat("r", MaxRequestIDLen+1), RemoveMember{ID: "x"})
	require.ErrorIs(t, err, ErrInvalid)
	_, err = Encode("", nil)
	require.ErrorIs(t, err, ErrInvalid)
}

func TestIdempotency(t *testing.T) {
	a := newApplier(t, Options{})
	first := a.apply("req-1", ClaimEpoch{LeaderID: "a", Term: 3})
	require.NoError(t, first.Err)
	require.False(t, first.Replayed)

	again := a.apply("req-1", ClaimEpoch{LeaderID: "a", Term: 3})
	require.True(t, again.Replayed)
	require.Equal(t, first.Index, again.Index)
	require.Equal(t, first.Epoch, again.Epoch)
	require.Equal(t, uint64(3), a.f.AgreedEpoch(), "a retried claim must not claim again")

	// A failure is remembered too: the retry gets the same answer.
	f1 := a.apply("req-2", RemoveMember{ID: "ghost"})
	f2 := a.apply("req-2", RemoveMember{ID: "ghost"})
	require.ErrorIs(t, f1.Err, ErrUnknownMember)
	require.ErrorIs(t, f2.Err, ErrUnknownMember)
	require.True(t, f2.Replayed)

	// Same id, different command: refused, nothing applied.
	c := a.apply("req-1", ClaimEpoch{LeaderID: "b", Term: 9})
	require.ErrorIs(t, c.Err, ErrRequestIDConflict)
	require.Equal(t, uint64(3), a.f.AgreedEpoch())

	// Without a request id every command applies.
	require.Equal(t, uint64(4), a.apply("", ClaimEpoch{LeaderID: "a", Term: 3}).Epoch)
	require.Equal(t, uint64(5), a.apply("", ClaimEpoch{LeaderID: "a", Term: 3}).Epoch)

	// The table survives a snapshot.
	g := snapshotRestore(t, a.f)
	a.f = g
	require.True(t, a.apply("req-1", ClaimEpoch{LeaderID: "a", Term: 3}).Replayed)
	require.Equal(t, uint64(5), a.f.AgreedEpoch())
}

func TestIdempotencyBounded(t *testing.T) {
	a := newApplier(t, Options{IdempotencyCapacity: 3})
	for i, id := range []string{"r1", "r2", "r3", "r4", "r5"} {
		r := a.apply(id, ClaimEpoch{LeaderID: "a", Term: 1})
		require.False(t, r.Replayed, "step %d", i)
	}
	require.Equal(t, uint64(5), a.f.AgreedEpoch())
	// r1, r2 were evicted: applying them again claims again; r5 is remembered.
	require.True(t, a.apply("r5", ClaimEpoch{LeaderID: "a", Term: 1}).Replayed)
	require.False(t, a.apply("r1", ClaimEpoch{LeaderID: "a", Term: 1}).Replayed)
	require.Equal(t, uint64(6), a.f.AgreedEpoch())
	require.Contains(t, a.f.Dump(), "idempotency 3\n")
	// Many evictions keep the index consistent.
	for i := range 1000 {
		a.apply("x"+string(rune('a'+i%26))+string(rune('a'+i/26)), ClaimEpoch{LeaderID: "a", Term: 1})
	}
	require.True(t, a.apply("x"+string(rune('a'+999%26))+string(rune('a'+999/26)), ClaimEpoch{LeaderID: "a", Term: 1}).Replayed)
	// Restoring into a smaller table keeps the newest entries.
	snap, err := a.f.Snapshot()
	require.NoError(t, err)
	sink := &memSink{}
	require.NoError(t, snap.Persist(sink))
	small := New(Options{IdempotencyCapacity: 1})
	require.NoError(t, small.Restore(sink.reader()))
	require.Contains(t, small.Dump(), "idempotency 1\n")
}

func TestSnapshotIsACopy(t *testing.T) {
	a := newApplier(t, Options{})
	a.apply("", ca("c1", "k1", t0))
	snap, err := a.f.Snapshot()
	require.NoError(t, err)
	before := a.f.Dump()
	a.apply("", rot("c1", "k2", t0))
	a.apply("", UpsertMember{ID: "m", RaftAddr: "x", Suffrage: SuffrageVoter})
	a.apply("r", ClaimEpoch{LeaderID: "m", Term: 2})
	sink := &memSink{}
	require.NoError(t, snap.Persist(sink))
	g := New(Options{})
	require.NoError(t, g.Restore(sink.reader()))
	require.Equal(t, before, g.Dump())
}

func TestRestoreRejects(t *testing.T) {
	f := New(Options{})
	err := f.Restore(io.NopCloser(strings.NewReader(`{"version":99}`)))
	require.ErrorIs(t, err, ErrSnapshotVersion)
	err = f.Restore(io.NopCloser(strings.NewReader(`{"version":`)))
	require.Error(t, err)
	require.Equal(t, uint64(0), f.AgreedEpoch())
}

// TestConcurrentReads runs readers beside Apply; -race checks the locking.
func TestConcurrentReads(t *testing.T) {
	a := newApplier(t, Options{})
	a.apply("", ca("c1", "k0", t0))
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				_ = a.f.AgreedEpoch()
				c, _ := a.f.ClusterCA("c1")
				_ = len(c.History)
				_, _ = a.f.Partition("c1")
				_ = a.f.Members()
				_ = a.f.Dump()
			}
		})
	}
	for i := range 200 {
		a.apply("", ClaimEpoch{LeaderID: "a", Term: uint64(i)})
		a.apply("", rot("c1", "k"+string(rune('A'+i%26))+string(rune('A'+i/26)), t0))
		if i%50 == 0 {
			_, err := a.f.Snapshot()
			require.NoError(t, err)
		}
	}
	close(stop)
	wg.Wait()
	c, _ := a.f.ClusterCA("c1")
	require.Len(t, c.History, 200)
}
