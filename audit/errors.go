package audit

import (
	"errors"
	"fmt"
)

// Sentinel errors of the package; check with errors.Is.
var (
	// ErrInvalidEvent: an event cannot be chained (missing action, unknown
	// outcome or actor kind, invalid JSON, text PostgreSQL cannot store).
	ErrInvalidEvent = errors.New("audit: invalid event")
	// ErrChainBroken: Verify found a broken link; the error is a *Break.
	ErrChainBroken = errors.New("audit: hash chain broken")
	// ErrInvalidConfig: options are missing something required.
	ErrInvalidConfig = errors.New("audit: invalid config")
)

// Reason says how a link is broken.
type Reason string

// Reasons reported by Verify.
const (
	// ReasonHashMismatch: the row's content does not hash to its stored Hash —
	// the row was edited.
	ReasonHashMismatch Reason = "hash-mismatch"
	// ReasonPrevMismatch: the row's PrevHash is not the previous row's Hash — a
	// row before it was deleted, inserted or rewritten.
	ReasonPrevMismatch Reason = "prev-mismatch"
	// ReasonSeqGap: sequence numbers skip — rows before this one were deleted.
	ReasonSeqGap Reason = "seq-gap"
	// ReasonSeqOrder: the sequence number repeats or goes backwards — rows were
	// duplicated, inserted or reordered.
	ReasonSeqOrder Reason = "seq-order"
	// ReasonTruncated: the chain ends before the expected head — the newest rows
	// were deleted. Seq names the first missing row.
	ReasonTruncated Reason = "truncated"
	// ReasonHeadMismatch: the chain reaches the expected head's Seq with another
	// hash, or runs past it inconsistently — the tail was rewritten.
	ReasonHeadMismatch Reason = "head-mismatch"
	// ReasonReplaced: a row sits at or before the recorded head but was
	// inserted after it (its id is above the head's highest id): the rows from
	// here to the recorded head were deleted and replaced.
	ReasonReplaced Reason = "replaced"
)

// Break is the first broken link found by Verify. It is an error that wraps
// ErrChainBroken.
type Break struct {
	Seq    int64  // the row that does not fit (for deletions: the row after the gap)
	ID     int64  // that row's store id, when the store has ids and the row exists
	Reason Reason //
	Detail string // human-readable specifics
}

// Error describes the break.
func (b *Break) Error() string {
	if b.ID != 0 {
		return fmt.Sprintf("audit: chain broken at seq %d (event id %d): %s (%s)", b.Seq, b.ID, b.Reason, b.Detail)
	}
	return fmt.Sprintf("audit: chain broken at seq %d: %s (%s)", b.Seq, b.Reason, b.Detail)
}

// Unwrap returns ErrChainBroken.
func (b *Break) Unwrap() error { return ErrChainBroken }
