package audit

import (
	"fmt"
	"iter"
	"time"
)

// VerifyOptions says where a verification starts and, optionally, where it
// must end.
type VerifyOptions struct {
	// Start is the head the first event must link to: Genesis(chainID) for a
	// whole chain, or a trusted checkpoint when older rows were archived.
	Start Head
	// Expect, if set, is an independently recorded head (for example kept in the
	// Raft FSM or a signed checkpoint). The chain must contain it exactly;
	// without it, deleting or rewriting the newest rows is undetectable.
	Expect *Head
	// ExpectMaxID, with Expect, is the highest store id among the events up to
	// Expect.Seq when that head was recorded. An event at or before Expect.Seq
	// with a higher id was inserted later: the rows from it to the recorded head
	// were replaced (ReasonReplaced names the first). Zero disables the check.
	ExpectMaxID int64
	// ExpectAt, with Expect, is when that head was recorded. Only used to
	// estimate where a chain that is behind Expect forked (Behind.ForkSeq):
	// rows at or before Expect.Seq written after it are newer than Expect.
	ExpectAt time.Time
}

// Result is the outcome of Verify.
type Result struct {
	Checked int64  // events that verified
	Head    Head   // last verified head (Start if none)
	Break   *Break // first broken link; nil when the chain is intact
	// Behind is set, next to a Break against opts.Expect (truncated,
	// head-mismatch or replaced), when every link of the chain is intact from
	// Start to its last row: the chain is consistent but does not contain the
	// recorded head. That is what restoring the store from a backup older
	// than the recorded head leaves (and what deleting the newest rows and
	// chaining on would leave): still a break, but not an edited row.
	Behind *Behind
}

// Behind describes a chain whose links are intact but that lost rows
// anchored by the recorded head (see Result.Behind).
type Behind struct {
	// Expect is the recorded head the chain is behind.
	Expect Head
	// ChainHead is the chain's last row (Start when it has none).
	ChainHead Head
	// ForkSeq is the first seq no longer anchored by Expect: the row after
	// the chain's end, or the first row at or before Expect.Seq that was
	// inserted after Expect was recorded (id above ExpectMaxID, or at after
	// ExpectAt — an estimate, as far as clocks agree; Expect.Seq when
	// neither tells).
	ForkSeq int64
	// Missing is how many anchored events are gone: Expect.Seq-ForkSeq+1.
	Missing int64
	// Continued is how many rows were chained after the fork (0 for a chain
	// that simply ends early).
	Continued int64
}

// OK reports whether the chain verified completely.
func (r Result) OK() bool { return r.Break == nil }

// Err returns the Break as an error (wrapping ErrChainBroken), or nil.
func (r Result) Err() error {
	if r.Break == nil {
		return nil
	}
	return r.Break
}

// Verify walks events, which must be yielded in ascending Seq order as stored,
// and returns the first broken link. Checks per event, in order: Seq is the
// previous Seq+1 (else ReasonSeqGap or ReasonSeqOrder), PrevHash is the
// previous Hash (else ReasonPrevMismatch), and the content hashes to Hash
// (else ReasonHashMismatch). It stops at the first broken link. The error
// return is reserved for failures of the iterator itself.
//
// Which row is named: an edited row names itself; a deleted row names its own
// (now missing) seq; a reordered, duplicated or inserted row names the first position
// that no longer fits; deleted newest rows are reported (ReasonTruncated) only
// with opts.Expect.
//
// A break against opts.Expect (ReasonTruncated, ReasonHeadMismatch,
// ReasonReplaced) does not stop the walk: the links of the remaining rows are
// still checked, and when all of them hold, Result.Behind says how far the
// chain is behind the recorded head. Checked and Head stay those of the break.
func Verify(events iter.Seq2[Event, error], opts VerifyOptions) (Result, error) {
	res := Result{Head: opts.Start}
	x := opts.Expect
	tail := opts.Start // last linked row, also after an anchor break
	var fork int64     // first row at or before x.Seq known to be newer than x
	anchorBroken := false
	for e, err := range events {
		if err != nil {
			return res, fmt.Errorf("audit: reading events after seq %d: %w", tail.Seq, err)
		}
		if x != nil && !anchorBroken && opts.ExpectMaxID > 0 && e.Seq <= x.Seq && e.ID > opts.ExpectMaxID {
			res.Break = &Break{Seq: e.Seq, ID: e.ID, Reason: ReasonReplaced,
				Detail: fmt.Sprintf("event id %d was inserted after the recorded head (seq %d, highest id %d): rows from here to seq %d were deleted and replaced", e.ID, x.Seq, opts.ExpectMaxID, x.Seq)}
			anchorBroken = true
		}
		if b := checkLink(tail, e); b != nil {
			if b.Reason != ReasonSeqGap {
				b.ID = e.ID // a gap names the first missing seq, whose row is gone
			}
			if !anchorBroken {
				res.Break = b
			}
			res.Behind = nil
			return res, nil
		}
		tail = e.Head()
		if x == nil {
			res.Head = tail
			res.Checked++
			continue
		}
		newer := e.Seq <= x.Seq && ((opts.ExpectMaxID > 0 && e.ID > opts.ExpectMaxID) || (!opts.ExpectAt.IsZero() && e.At.After(opts.ExpectAt)))
		if newer && fork == 0 {
			fork = e.Seq
		}
		if anchorBroken {
			continue
		}
		res.Head = tail
		res.Checked++
		if e.Seq == x.Seq && e.Hash != x.Hash {
			res.Break = &Break{Seq: e.Seq, ID: e.ID, Reason: ReasonHeadMismatch, Detail: "hash differs from the recorded head: the chain was rewritten up to here"}
			anchorBroken = true
		}
	}
	if x == nil {
		return res, nil
	}
	if !anchorBroken {
		switch {
		case res.Head.Seq < x.Seq:
			res.Break = &Break{Seq: res.Head.Seq + 1, Reason: ReasonTruncated,
				Detail: fmt.Sprintf("chain ends at seq %d, recorded head is seq %d", res.Head.Seq, x.Seq)}
		case res.Head.Seq == x.Seq && res.Head.Hash != x.Hash:
			res.Break = &Break{Seq: res.Head.Seq, Reason: ReasonHeadMismatch, Detail: "hash differs from the recorded head"}
		default:
			return res, nil
		}
	}
	// Every link held: the chain is consistent, only behind the recorded head.
	b := &Behind{Expect: *x, ChainHead: tail}
	switch {
	case fork != 0:
		b.ForkSeq = fork
	case tail.Seq < x.Seq:
		b.ForkSeq = tail.Seq + 1
	default:
		b.ForkSeq = x.Seq
	}
	b.Missing = x.Seq - b.ForkSeq + 1
	b.Continued = max(0, tail.Seq-b.ForkSeq+1)
	res.Behind = b
	return res, nil
}

func checkLink(prev Head, e Event) *Break {
	switch {
	case e.Seq > prev.Seq+1:
		return &Break{Seq: prev.Seq + 1, Reason: ReasonSeqGap,
			Detail: fmt.Sprintf("rows %d..%d missing (the next row present is seq %d)", prev.Seq+1, e.Seq-1, e.Seq)}
	case e.Seq != prev.Seq+1:
		return &Break{Seq: e.Seq, Reason: ReasonSeqOrder,
			Detail: fmt.Sprintf("expected seq %d after %d", prev.Seq+1, prev.Seq)}
	case e.PrevHash != prev.Hash:
		return &Break{Seq: e.Seq, Reason: ReasonPrevMismatch,
			Detail: "prev_hash is not the previous row's hash: a row before this one was deleted, inserted or rewritten"}
	}
	h, err := ComputeHash(e)
	if err != nil {
		return &Break{Seq: e.Seq, Reason: ReasonHashMismatch, Detail: "row is not a valid event: " + err.Error()}
	}
	if h != e.Hash {
		return &Break{Seq: e.Seq, Reason: ReasonHashMismatch, Detail: "content does not match the stored hash: the row was edited"}
	}
	return nil
}

// Slice adapts a slice of events (in stored order) to Verify's iterator.
func Slice(events []Event) iter.Seq2[Event, error] {
	return func(yield func(Event, error) bool) {
		for _, e := range events {
			if !yield(e, nil) {
				return
			}
		}
	}
}
