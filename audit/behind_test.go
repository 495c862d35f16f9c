package audit

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestVerifyBehind: a chain whose links hold but that lost rows anchored by
// the recorded head (a restore from an older backup) is still a break, and
// Result.Behind says which head, where the chain forked and how many anchored
// events are gone; any other tampering leaves Behind nil.
func TestVerifyBehind(t *testing.T) {
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	// chain appends n events to r (or starts at genesis), the i-th with id
	// firstID+i and timestamp at+i minutes.
	chain := func(r []Event, n int, firstID int64, at time.Time) []Event {
		prev := Genesis("c1")
		if len(r) > 0 {
			prev = r[len(r)-1].Head()
		}
		for i := range n {
			e := sample(len(r) + i)
			e.ID = firstID + int64(i)
			e.At = at.Add(time.Duration(i) * time.Minute)
			c, err := Chain(prev, e)
			require.NoError(t, err)
			r = append(r, c)
			prev = c.Head()
		}
		return r
	}
	all := chain(nil, 10, 101, base) // seq 1..10, ids 101..110
	rows := func() []Event { return append([]Event(nil), all...) }
	head := all[9].Head()
	recordedAt := all[9].At.Add(time.Second) // the checkpoint came after the row it anchors
	opts := func(expectMaxID int64) VerifyOptions {
		return VerifyOptions{Start: Genesis("c1"), Expect: &head, ExpectMaxID: expectMaxID, ExpectAt: recordedAt}
	}
	// continueFrom chains n events written after the checkpoint onto r (ids
	// from firstID: a restored id sequence reuses lost ids).
	continueFrom := func(r []Event, n int, firstID int64) []Event {
		return chain(r, n, firstID, recordedAt.Add(time.Minute))
	}

	t.Run("truncated", func(t *testing.T) {
		res, err := Verify(Slice(rows()[:7]), opts(110))
		require.NoError(t, err)
		require.Equal(t, ReasonTruncated, res.Break.Reason)
		require.Equal(t, &Behind{Expect: head, ChainHead: all[6].Head(), ForkSeq: 8, Missing: 3}, res.Behind)
		require.Equal(t, int64(7), res.Checked)
	})
	t.Run("restored and continued past the head", func(t *testing.T) {
		r := continueFrom(rows()[:6], 6, 107) // seq 7..12, ids 107..112
		res, err := Verify(Slice(r), opts(110))
		require.NoError(t, err)
		require.Equal(t, ReasonHeadMismatch, res.Break.Reason)
		require.Equal(t, int64(10), res.Break.Seq)
		require.Equal(t, &Behind{Expect: head, ChainHead: r[11].Head(), ForkSeq: 7, Missing: 4, Continued: 6}, res.Behind)
		require.Equal(t, int64(10), res.Checked, "checked up to the break")
	})
	t.Run("restored and continued, not up to the head", func(t *testing.T) {
		r := continueFrom(rows()[:5], 2, 106) // seq 6..7
		res, err := Verify(Slice(r), opts(110))
		require.NoError(t, err)
		require.Equal(t, ReasonTruncated, res.Break.Reason)
		require.Equal(t, &Behind{Expect: head, ChainHead: r[6].Head(), ForkSeq: 6, Missing: 5, Continued: 2}, res.Behind)
	})
	t.Run("new rows with ids above the recorded highest", func(t *testing.T) {
		r := continueFrom(rows()[:8], 4, 500)
		res, err := Verify(Slice(r), opts(110))
		require.NoError(t, err)
		require.Equal(t, ReasonReplaced, res.Break.Reason)
		require.Equal(t, int64(9), res.Break.Seq)
		require.Equal(t, &Behind{Expect: head, ChainHead: r[11].Head(), ForkSeq: 9, Missing: 2, Continued: 4}, res.Behind)
	})
	t.Run("fork unknown without timestamps", func(t *testing.T) {
		r := continueFrom(rows()[:6], 4, 107)
		o := opts(110)
		o.ExpectAt = time.Time{}
		res, err := Verify(Slice(r), o)
		require.NoError(t, err)
		require.Equal(t, ReasonHeadMismatch, res.Break.Reason)
		require.Equal(t, &Behind{Expect: head, ChainHead: r[9].Head(), ForkSeq: 10, Missing: 1, Continued: 1}, res.Behind, "only the head row is known to differ")
	})
	t.Run("a broken link after the fork is tampering", func(t *testing.T) {
		r := continueFrom(rows()[:6], 6, 107)
		r[10].Outcome = OutcomeDenied // seq 11, after the head mismatch at 10
		res, err := Verify(Slice(r), opts(110))
		require.NoError(t, err)
		require.Equal(t, ReasonHeadMismatch, res.Break.Reason, "the first break is still reported")
		require.Nil(t, res.Behind)
	})
	t.Run("an edited row is tampering", func(t *testing.T) {
		r := rows()
		r[3].Actor = "someone-else"
		res, err := Verify(Slice(r), opts(110))
		require.NoError(t, err)
		require.Equal(t, ReasonHashMismatch, res.Break.Reason)
		require.Nil(t, res.Behind)
	})
	t.Run("a deleted middle row is tampering", func(t *testing.T) {
		r := append(rows()[:3], rows()[4:7]...)
		res, err := Verify(Slice(r), opts(110))
		require.NoError(t, err)
		require.Equal(t, ReasonSeqGap, res.Break.Reason)
		require.Nil(t, res.Behind)
	})
	t.Run("intact chain", func(t *testing.T) {
		res, err := Verify(Slice(rows()), opts(110))
		require.NoError(t, err)
		require.True(t, res.OK(), "%v", res.Break)
		require.Nil(t, res.Behind)
	})
}
