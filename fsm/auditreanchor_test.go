package fsm

import (
	"bytes"
	"encoding/hex"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"
)

func TestReanchorAuditValidate(t *testing.T) {
	h := func(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }
	ok := ReanchorAudit{Seq: 5, Hash: h(1), MaxID: 7, SupersededSeq: 9, SupersededHash: h(2), Reason: "restored", Actor: "owner", At: t0}
	require.NoError(t, ok.Validate())
	for name, mut := range map[string]func(*ReanchorAudit){
		"no actor":           func(c *ReanchorAudit) { c.Actor = "" },
		"no reason":          func(c *ReanchorAudit) { c.Reason = "" },
		"long reason":        func(c *ReanchorAudit) { c.Reason = strings.Repeat("x", MaxReanchorReasonLen+1) },
		"bad utf8 reason":    func(c *ReanchorAudit) { c.Reason = "\xff" },
		"short hash":         func(c *ReanchorAudit) { c.Hash = []byte{1} },
		"short superseded":   func(c *ReanchorAudit) { c.SupersededHash = nil },
		"negative seq":       func(c *ReanchorAudit) { c.Seq = -1 },
		"negative maxid":     func(c *ReanchorAudit) { c.MaxID = -1 },
		"negative sup seq":   func(c *ReanchorAudit) { c.SupersededSeq = -1 },
		"no time":            func(c *ReanchorAudit) { c.At = time.Time{} },
		"same as superseded": func(c *ReanchorAudit) { c.SupersededSeq, c.SupersededHash = c.Seq, c.Hash },
	} {
		c := ok
		mut(&c)
		require.ErrorIs(t, c.Validate(), ErrInvalid, name)
	}
}

// A re-anchor may move the checkpoint back, but only from the checkpoint it
// names; it keeps v2_from, is remembered (with the superseded checkpoint and
// the reason) by every later checkpoint, and survives snapshot and restore.
func TestReanchorAudit(t *testing.T) {
	f := New(Options{})
	var index uint64
	apply := func(c Command) Result {
		index++
		data, err := Encode("", c)
		require.NoError(t, err)
		d, err := Decode(data)
		require.NoError(t, err)
		require.Equal(t, c, d.Command)
		return f.Apply(&raft.Log{Index: index, Data: data}).(Result)
	}
	h := func(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }
	re := ReanchorAudit{Seq: 6, Hash: h(9), MaxID: 8, SupersededSeq: 10, SupersededHash: h(1), Reason: "restored backup of 03-01", Actor: "owner", At: t0.Add(time.Hour)}

	require.ErrorIs(t, apply(re).Err, ErrAuditReanchorStale, "nothing to supersede yet")
	require.NoError(t, apply(SetAuditCheckpoint{Seq: 10, Hash: h(1), MaxID: 12, V2From: 4, Actor: "system", At: t0}).Err) // index 2
	wrong := re
	wrong.SupersededHash = h(2)
	require.ErrorIs(t, apply(wrong).Err, ErrAuditReanchorStale, "another checkpoint than the recorded one")
	cp, _ := f.AuditCheckpoint()
	require.Equal(t, int64(10), cp.Seq, "a refused re-anchor changes nothing")

	require.NoError(t, apply(re).Err) // index 4
	want := AuditReanchor{Seq: 6, Hash: h(9), SupersededSeq: 10, SupersededHash: h(1), SupersededMaxID: 12, SupersededIndex: 2,
		Reason: "restored backup of 03-01", Actor: "owner", At: t0.Add(time.Hour), Index: 4}
	cp, ok := f.AuditCheckpoint()
	require.True(t, ok)
	require.Equal(t, AuditCheckpoint{Seq: 6, Hash: h(9), MaxID: 8, V2From: 4, Actor: "owner", At: t0.Add(time.Hour), Index: 4,
		Reanchors: []AuditReanchor{want}}, cp)
	require.ErrorIs(t, apply(re).Err, ErrAuditReanchorStale, "a replayed re-anchor no longer names the recorded checkpoint")

	// Periodic checkpoints go on from the new anchor and carry the history.
	require.ErrorIs(t, apply(SetAuditCheckpoint{Seq: 5, Hash: h(3), MaxID: 7, V2From: 1, Actor: "system", At: t0}).Err, ErrAuditCheckpointStale)
	require.NoError(t, apply(SetAuditCheckpoint{Seq: 20, Hash: h(3), MaxID: 30, V2From: 1, Actor: "system", At: t0.Add(2 * time.Hour)}).Err)
	cp, _ = f.AuditCheckpoint()
	require.Equal(t, int64(20), cp.Seq)
	require.Equal(t, int64(4), cp.V2From)
	require.Equal(t, []AuditReanchor{want}, cp.Reanchors)
	cp.Reanchors[0].Hash[0] ^= 0xff
	again, _ := f.AuditCheckpoint()
	require.Equal(t, h(9), again.Reanchors[0].Hash, "accessor returns a copy")
	require.Contains(t, f.Dump(), `audit-reanchor seq=6 `)
	require.Contains(t, f.Dump(), `reason="restored backup of 03-01"`)

	g := snapshotRestore(t, f)
	require.Equal(t, f.Dump(), g.Dump())
	gcp, _ := g.AuditCheckpoint()
	require.Equal(t, cp.Reanchors[0].SupersededIndex, gcp.Reanchors[0].SupersededIndex)
}

// The history is bounded: the oldest re-anchors are dropped first.
func TestReanchorAuditHistoryBounded(t *testing.T) {
	f := New(Options{})
	h := func(n int) []byte { return bytes.Repeat([]byte{byte(n)}, 32) }
	var index uint64
	apply := func(c Command) {
		index++
		data, err := Encode("", c)
		require.NoError(t, err)
		require.NoError(t, f.Apply(&raft.Log{Index: index, Data: data}).(Result).Err)
	}
	apply(SetAuditCheckpoint{Seq: 100, Hash: h(0), MaxID: 100, V2From: 1, Actor: "system", At: t0})
	for i := 1; i <= MaxAuditReanchors+3; i++ {
		apply(ReanchorAudit{Seq: int64(100 - i), Hash: h(i), MaxID: 1, SupersededSeq: int64(101 - i), SupersededHash: h(i - 1),
			Reason: "r", Actor: "owner", At: t0})
	}
	cp, _ := f.AuditCheckpoint()
	require.Len(t, cp.Reanchors, MaxAuditReanchors)
	require.Equal(t, int64(100-4), cp.Reanchors[0].Seq, "the three oldest were dropped")
	require.Equal(t, int64(100-MaxAuditReanchors-3), cp.Reanchors[MaxAuditReanchors-1].Seq)
}

// An FSM snapshot written before re-anchors existed (no "reanchors" key)
// restores with an empty history.
func TestAuditCheckpointSnapshotWithoutReanchors(t *testing.T) {
	old := `{"version":1,"applied_index":3,"epoch":0,"last_claim":{"leader_id":"","term":0},"cas":{},"partitions":{},"members":{},"idempotency":[],` +
		`"audit_checkpoint":{"seq":10,"hash":"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=","max_id":12,"v2_from":1,"actor":"system","at":"2025-03-01T12:00:00Z","index":2}}`
	g := New(Options{})
	require.NoError(t, g.Restore(io.NopCloser(strings.NewReader(old))))
	cp, ok := g.AuditCheckpoint()
	require.True(t, ok)
	require.Equal(t, int64(10), cp.Seq)
	require.Nil(t, cp.Reanchors)
}

// buildAuditCommand builds the script commands set-audit-checkpoint and
// reanchor-audit; hashes are hex, numbers decimal.
func buildAuditCommand(kind string, kv map[string]string, at time.Time) (Command, error) {
	var err error
	num := func(k string) int64 {
		if kv[k] == "" || err != nil {
			return 0
		}
		var n int64
		n, err = strconv.ParseInt(kv[k], 10, 64)
		return n
	}
	hx := func(k string) []byte {
		if err != nil {
			return nil
		}
		var b []byte
		b, err = hex.DecodeString(kv[k])
		return b
	}
	var c Command
	if kind == "set-audit-checkpoint" {
		c = SetAuditCheckpoint{Seq: num("seq"), Hash: hx("hash"), MaxID: num("max_id"), V2From: num("v2_from"), Actor: kv["actor"], At: at}
	} else {
		c = ReanchorAudit{Seq: num("seq"), Hash: hx("hash"), MaxID: num("max_id"), SupersededSeq: num("superseded_seq"),
			SupersededHash: hx("superseded_hash"), Reason: kv["reason"], Actor: kv["actor"], At: at}
	}
	return c, err
}
