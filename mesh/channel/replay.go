package channel

// replayWords is the number of 64-bit words in the replay bitmap (2048 bits).
const replayWords = 32

// ReplayWindowSize is how far behind the highest accepted counter a packet may
// arrive and still be accepted once (RFC 6479 style: one word is kept as slack
// so that advancing never clears bits still inside the window).
const ReplayWindowSize = (replayWords - 1) * 64

// ReplayWindow is a sliding anti-replay bitmap over 64-bit counters. The zero
// value is ready and accepts any first counter. It is not safe for concurrent
// use; the session guards it.
//
// The protocol is: Check before decrypting (cheap rejection), Accept only after
// the packet authenticated. Accept re-checks, so two concurrent copies of one
// packet are accepted once.
type ReplayWindow struct {
	top  uint64 // highest accepted counter
	seen bool   // whether anything was accepted
	bits [replayWords]uint64
}

// Check reports whether counter n would be accepted: newer than anything seen,
// or inside the window and not yet seen.
func (w *ReplayWindow) Check(n uint64) bool {
	if !w.seen || n > w.top {
		return true
	}
	if w.top-n >= ReplayWindowSize {
		return false
	}
	return w.bits[(n/64)%replayWords]&(1<<(n%64)) == 0
}

// Accept marks n as seen, sliding the window forward if n is the new highest.
// It returns false, changing nothing, if Check(n) is false.
func (w *ReplayWindow) Accept(n uint64) bool {
	if !w.Check(n) {
		return false
	}
	if !w.seen || n > w.top {
		cur, next := w.top/64, n/64
		if !w.seen || next-cur >= replayWords {
			w.bits = [replayWords]uint64{}
		} else {
			for i := cur + 1; i <= next; i++ {
				w.bits[i%replayWords] = 0
			}
		}
		w.top, w.seen = n, true
	}
	w.bits[(n/64)%replayWords] |= 1 << (n % 64)
	return true
}

// Reset forgets everything.
func (w *ReplayWindow) Reset() { *w = ReplayWindow{} }
