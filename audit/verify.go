package audit

import (
	"fmt"
	"iter"
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
}

// Result is the outcome of Verify.
type Result struct {
	Checked int64  // events that verified
	Head    Head   // last verified head (Start if none)
	Break   *Break // first broken link; nil when the chain is intact
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
// (else ReasonHashMismatch). It stops at the first break. The error return is
// reserved for failures of the iterator itself.
//
// Which row is named: an edited row names itself; a deleted row names its own
// (now missing) seq; a reordered, duplicated or inserted row names the first position
// that no longer fits; deleted newest rows are reported (ReasonTruncated) only
// with opts.Expect.
func Verify(events iter.Seq2[Event, error], opts VerifyOptions) (Result, error) {
	res := Result{Head: opts.Start}
	for e, err := range events {
		if err != nil {
			return res, fmt.Errorf("audit: reading events after seq %d: %w", res.Head.Seq, err)
		}
		if x := opts.Expect; x != nil && opts.ExpectMaxID > 0 && e.Seq <= x.Seq && e.ID > opts.ExpectMaxID {
			res.Break = &Break{Seq: e.Seq, ID: e.ID, Reason: ReasonReplaced,
				Detail: fmt.Sprintf("event id %d was inserted after the recorded head (seq %d, highest id %d): rows from here to seq %d were deleted and replaced", e.ID, x.Seq, opts.ExpectMaxID, x.Seq)}
			return res, nil
		}
		if b := checkLink(res.Head, e); b != nil {
			if b.Reason != ReasonSeqGap {
				b.ID = e.ID // a gap names the first missing seq, whose row is gone
			}
			res.Break = b
			return res, nil
		}
		res.Head = e.Head()
		res.Checked++
		if opts.Expect != nil && e.Seq == opts.Expect.Seq && e.Hash != opts.Expect.Hash {
			res.Break = &Break{Seq: e.Seq, ID: e.ID, Reason: ReasonHeadMismatch, Detail: "hash differs from the recorded head: the chain was rewritten up to here"}
			return res, nil
		}
	}
	if x := opts.Expect; x != nil {
		switch {
		case res.Head.Seq < x.Seq:
			res.Break = &Break{Seq: res.Head.Seq + 1, Reason: ReasonTruncated,
				Detail: fmt.Sprintf("chain ends at seq %d, recorded head is seq %d", res.Head.Seq, x.Seq)}
		case res.Head.Seq == x.Seq && res.Head.Hash != x.Hash:
			res.Break = &Break{Seq: res.Head.Seq, Reason: ReasonHeadMismatch, Detail: "hash differs from the recorded head"}
		}
	}
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
