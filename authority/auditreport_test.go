package authority

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/audit"
)

// The verify report tells a chain that is only behind the checkpoint (a
// restore) from other breaks, names the checkpoint, the missing events and the
// re-anchor procedure, and lists acknowledged re-anchors when intact.
func TestAuditVerifyReport(t *testing.T) {
	h := func(b byte) audit.Hash {
		var x audit.Hash
		for i := range x {
			x[i] = b
		}
		return x
	}
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	anchor := &AuditAnchor{Seq: 120, Hash: h(1), MaxID: 130, V2From: 1, At: at, Index: 77}
	report := func(a *AuditAnchor, res audit.Result) (string, bool) {
		var b strings.Builder
		ok := WriteAuditVerifyReport(&b, a, res)
		return b.String(), ok
	}

	t.Run("behind", func(t *testing.T) {
		res := audit.Result{Checked: 120, Head: audit.Head{Seq: 120, Hash: h(3)},
			Break:  &audit.Break{Seq: 120, Reason: audit.ReasonHeadMismatch, Detail: "hash differs from the recorded head"},
			Behind: &audit.Behind{Expect: audit.Head{Seq: 120, Hash: h(1)}, ChainHead: audit.Head{Seq: 125, Hash: h(4)}, ForkSeq: 101, Missing: 20, Continued: 25}}
		out, ok := report(anchor, res)
		require.False(t, ok)
		require.Contains(t, out, "audit chain TRUNCATED behind the checkpoint (seq 120 hash "+h(1).String()+", raft index 77, taken 2026-03-01T12:00:00Z)")
		require.Contains(t, out, "20 event(s) anchored by the checkpoint are missing (seq 101..120)")
		require.Contains(t, out, "25 event(s) were chained after the fork at seq 101")
		require.Contains(t, out, "rapctl audit reanchor --reason")
		require.Contains(t, out, "first bad event seq 120 (head-mismatch)")
		require.NotContains(t, out, "BROKEN")
	})
	t.Run("plain truncation", func(t *testing.T) {
		res := audit.Result{Checked: 90, Head: audit.Head{Seq: 90, Hash: h(3)},
			Break:  &audit.Break{Seq: 91, Reason: audit.ReasonTruncated, Detail: "chain ends at seq 90, recorded head is seq 120"},
			Behind: &audit.Behind{Expect: audit.Head{Seq: 120, Hash: h(1)}, ChainHead: audit.Head{Seq: 90, Hash: h(3)}, ForkSeq: 91, Missing: 30}}
		out, ok := report(anchor, res)
		require.False(t, ok)
		require.Contains(t, out, "its links are intact up to its head seq 90, but 30 event(s) anchored by the checkpoint are missing (seq 91..120)\n")
		require.NotContains(t, out, "chained after the fork")
	})
	t.Run("tampering", func(t *testing.T) {
		res := audit.Result{Checked: 40, Break: &audit.Break{Seq: 41, ID: 44, Reason: audit.ReasonHashMismatch, Detail: "content does not match"}}
		out, ok := report(anchor, res)
		require.False(t, ok)
		require.Contains(t, out, "audit chain BROKEN: first bad event id 44 seq 41 (hash-mismatch) after 40 good events")
		require.NotContains(t, out, "TRUNCATED")
		require.NotContains(t, out, "reanchor")
	})
	t.Run("intact after a re-anchor", func(t *testing.T) {
		a := *anchor
		a.Seq, a.Hash, a.Index = 140, h(5), 90
		a.Reanchors = []AuditReanchor{{Seq: 125, Hash: h(4), SupersededSeq: 120, SupersededHash: h(1), SupersededIndex: 77,
			Reason: "restored the 03-01 dump", Actor: "owner-1", At: at.Add(time.Hour), Index: 85}}
		out, ok := report(&a, audit.Result{Checked: 140, Head: audit.Head{Seq: 140, Hash: h(5)}})
		require.True(t, ok)
		require.Contains(t, out, "re-anchored at raft index 85 (2026-03-01T13:00:00Z) by owner-1: superseded checkpoint seq 120 hash "+h(1).String()+
			" (raft index 77) with chain head seq 125 hash "+h(4).String()+`; reason: "restored the 03-01 dump"`)
		require.Contains(t, out, "audit chain intact: 140 events, head seq 140 hash "+h(5).String())
	})
}
