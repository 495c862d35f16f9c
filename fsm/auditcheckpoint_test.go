package fsm

import (
	"bytes"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"
)

func TestSetAuditCheckpointValidate(t *testing.T) {
	ok := SetAuditCheckpoint{Seq: 5, Hash: bytes.Repeat([]byte{1}, 32), MaxID: 7, V2From: 1, Actor: "system", At: t0}
	require.NoError(t, ok.Validate())
	for name, mut := range map[string]func(*SetAuditCheckpoint){
		"no actor":       func(c *SetAuditCheckpoint) { c.Actor = "" },
		"short hash":     func(c *SetAuditCheckpoint) { c.Hash = []byte{1} },
		"negative seq":   func(c *SetAuditCheckpoint) { c.Seq = -1 },
		"negative maxid": func(c *SetAuditCheckpoint) { c.MaxID = -1 },
		"zero v2_from":   func(c *SetAuditCheckpoint) { c.V2From = 0 },
		"no time":        func(c *SetAuditCheckpoint) { c.At = time.Time{} },
	} {
		c := ok
		mut(&c)
		require.ErrorIs(t, c.Validate(), ErrInvalid, name)
	}
}

// A checkpoint only moves forward, keeps the first v2_from, and survives
// snapshot and restore.
func TestAuditCheckpointMovesForwardOnly(t *testing.T) {
	f := New(Options{})
	var index uint64
	apply := func(c SetAuditCheckpoint) Result {
		index++
		data, err := Encode("", c)
		require.NoError(t, err)
		d, err := Decode(data)
		require.NoError(t, err)
		require.Equal(t, c, d.Command)
		return f.Apply(&raft.Log{Index: index, Data: data}).(Result)
	}
	h := func(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }
	_, ok := f.AuditCheckpoint()
	require.False(t, ok)

	require.NoError(t, apply(SetAuditCheckpoint{Seq: 10, Hash: h(1), MaxID: 12, V2From: 4, Actor: "system", At: t0}).Err)
	require.ErrorIs(t, apply(SetAuditCheckpoint{Seq: 9, Hash: h(2), MaxID: 11, V2From: 1, Actor: "system", At: t0}).Err, ErrAuditCheckpointStale)
	require.ErrorIs(t, apply(SetAuditCheckpoint{Seq: 10, Hash: h(2), MaxID: 12, V2From: 1, Actor: "system", At: t0}).Err, ErrAuditCheckpointConflict)
	require.NoError(t, apply(SetAuditCheckpoint{Seq: 10, Hash: h(1), MaxID: 12, V2From: 1, Actor: "owner", At: t0}).Err, "the same head again is fine")
	require.NoError(t, apply(SetAuditCheckpoint{Seq: 20, Hash: h(3), MaxID: 25, V2From: 1, Actor: "system", At: t0.Add(time.Minute)}).Err)

	cp, ok := f.AuditCheckpoint()
	require.True(t, ok)
	require.Equal(t, AuditCheckpoint{Seq: 20, Hash: h(3), MaxID: 25, V2From: 4, Actor: "system", At: t0.Add(time.Minute), Index: 5}, cp)
	cp.Hash[0] ^= 0xff
	again, _ := f.AuditCheckpoint()
	require.Equal(t, h(3), again.Hash, "accessor returns a copy")
	require.Contains(t, f.Dump(), "audit-checkpoint seq=20 ")

	g := snapshotRestore(t, f)
	require.Equal(t, f.Dump(), g.Dump())
}
