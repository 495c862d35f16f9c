package fsm

import (
	"encoding/hex"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"
)

// buildSetReleaseRoots builds the script command
// `set-release-roots prev=N threshold=T keys=HEX,HEX actor=A reason=R at=…`.
func buildSetReleaseRoots(kv map[string]string, prev uint64, at time.Time) (Command, error) {
	c := SetReleaseRoots{PrevVersion: prev, Actor: kv["actor"], Reason: kv["reason"], At: at}
	if kv["threshold"] != "" {
		n, err := strconv.Atoi(kv["threshold"])
		if err != nil {
			return nil, err
		}
		c.Threshold = n
	}
	for _, h := range strings.Split(kv["keys"], ",") {
		if h == "" {
			continue
		}
		k, err := hex.DecodeString(h)
		if err != nil {
			return nil, err
		}
		c.Keys = append(c.Keys, k)
	}
	return c, nil
}

func rootKey(n byte) []byte {
	k := make([]byte, 32)
	for i := range k {
		k[i] = n
	}
	return k
}

func TestSetReleaseRootsValidate(t *testing.T) {
	ok := SetReleaseRoots{Threshold: 2, Keys: [][]byte{rootKey(1), rootKey(2), rootKey(3)}, Actor: "owner:alice", At: t0}
	require.NoError(t, ok.Validate())
	for name, mut := range map[string]func(*SetReleaseRoots){
		"no keys":        func(c *SetReleaseRoots) { c.Keys = nil },
		"too many keys":  func(c *SetReleaseRoots) { c.Keys = make([][]byte, MaxReleaseRootKeys+1) },
		"short key":      func(c *SetReleaseRoots) { c.Keys = [][]byte{rootKey(1), {1, 2}}; c.Threshold = 1 },
		"duplicate key":  func(c *SetReleaseRoots) { c.Keys = [][]byte{rootKey(1), rootKey(1)} },
		"zero threshold": func(c *SetReleaseRoots) { c.Threshold = 0 },
		"threshold > n":  func(c *SetReleaseRoots) { c.Threshold = 4 },
		"no actor":       func(c *SetReleaseRoots) { c.Actor = "" },
		"no time":        func(c *SetReleaseRoots) { c.At = time.Time{} },
		"long reason":    func(c *SetReleaseRoots) { c.Reason = strings.Repeat("x", 513) },
	} {
		c := ok
		mut(&c)
		require.ErrorIs(t, c.Validate(), ErrInvalid, name)
		_, err := Encode("", c)
		require.ErrorIs(t, err, ErrInvalid, name)
	}
}

// Round trip through the wire encoding, apply on two replicas, snapshot and
// restore: equal state; the accessor returns copies.
func TestReleaseRootsReplicateAndRestore(t *testing.T) {
	c := SetReleaseRoots{Threshold: 2, Keys: [][]byte{rootKey(1), rootKey(2), rootKey(3)}, Actor: "owner:alice", Reason: "bootstrap", At: t0}
	data, err := Encode("rr-1", c)
	require.NoError(t, err)
	d, err := Decode(data)
	require.NoError(t, err)
	require.Equal(t, c, d.Command)

	a, b := New(Options{}), New(Options{})
	for _, f := range []*FSM{a, b} {
		r := f.Apply(&raft.Log{Index: 1, Data: data}).(Result)
		require.NoError(t, r.Err)
		require.Equal(t, TypeSetReleaseRoots, r.Type)
	}
	require.Equal(t, a.Dump(), b.Dump())
	roots, ok := a.ReleaseRoots()
	require.True(t, ok)
	require.Equal(t, uint64(1), roots.Version)
	require.Equal(t, 2, roots.Threshold)
	roots.Keys[0][0] ^= 0xff
	again, _ := a.ReleaseRoots()
	require.Equal(t, rootKey(1), again.Keys[0], "accessor returns a copy")

	// Replay of the same request id applies nothing twice.
	r := a.Apply(&raft.Log{Index: 2, Data: data}).(Result)
	require.True(t, r.Replayed)
	roots, _ = a.ReleaseRoots()
	require.Equal(t, uint64(1), roots.Version)

	g := snapshotRestore(t, a)
	require.Equal(t, a.Dump(), g.Dump())
	gr, ok := g.ReleaseRoots()
	require.True(t, ok)
	require.Equal(t, roots, gr)

	// An FSM that never had release roots restores without them.
	empty := snapshotRestore(t, New(Options{}))
	_, ok = empty.ReleaseRoots()
	require.False(t, ok)
}
