package chaos

import (
	"errors"
	"sort"
	"sync"
	"time"

	"github.com/rap-fabric/core/apiclient"
)

// Outcome is how a client operation ended.
type Outcome string

// Outcomes. Pending is an invoked operation not yet completed.
const (
	Pending Outcome = "invoke"
	OK      Outcome = "ok"
	Fail    Outcome = "fail"
	Unknown Outcome = "unknown"
)

// definiteCodes are API error codes after which the authority wrote nothing
// (the request was refused before or inside a rolled-back transaction).
// "unavailable" is the store's "database unavailable; nothing was written":
// the checker holds the server to that claim.
var definiteCodes = map[string]bool{
	"not_leader": true, "no_quorum": true, "stale_epoch": true, "invalid_argument": true, "conflict": true,
	"rate_limited": true, "unauthenticated": true, "forbidden": true, "unavailable": true,
}

// Op is one client operation.
type Op struct {
	// ID numbers operations in invocation order.
	ID int
	// Kind is the operation (cluster.create).
	Kind string
	// Key is the Idempotency-Key (a retry carries the same key).
	Key string
	// Slug identifies the row the operation writes.
	Slug string
	// Retry marks a retry of an earlier operation with the same key.
	Retry bool
	// Epoch is the leader epoch the client last saw when invoking.
	Epoch uint64
	// Invoke and Complete are the client's clock.
	Invoke, Complete time.Time
	// Outcome, Code (API error code or transport class) and Server (the API
	// address that answered).
	Outcome Outcome
	Code    string
	Server  string
	Err     string
	// Refusals are the definite refusals met on the way (server:code).
	Refusals []string
}

// Event is a fault or phase change on the timeline.
type Event struct {
	At   time.Time
	What string
}

// History records operations and events; it is safe for concurrent use.
type History struct {
	mu     sync.Mutex
	start  time.Time
	ops    []*Op
	events []Event
}

// NewHistory starts an empty history now.
func NewHistory() *History { return &History{start: time.Now()} }

// Start is when the history began.
func (h *History) Start() time.Time { return h.start }

// Invoke records the start of an operation.
func (h *History) Invoke(kind, key, slug string, epoch uint64, retry bool) *Op {
	h.mu.Lock()
	defer h.mu.Unlock()
	op := &Op{ID: len(h.ops) + 1, Kind: kind, Key: key, Slug: slug, Retry: retry, Epoch: epoch, Invoke: time.Now(), Outcome: Pending}
	h.ops = append(h.ops, op)
	return op
}

// Finish records the end of an operation from the call's result.
func (h *History) Finish(op *Op, info CallInfo, err error) {
	out, code := Classify(info, err)
	h.mu.Lock()
	defer h.mu.Unlock()
	op.Complete = time.Now()
	op.Outcome, op.Code, op.Server, op.Refusals = out, code, info.Server, info.Refusals
	if err != nil {
		op.Err = err.Error()
	}
}

// Classify maps a call's result to an outcome and a code.
func Classify(info CallInfo, err error) (Outcome, string) {
	if err == nil {
		return OK, ""
	}
	var ae *apiclient.Error
	if errors.As(err, &ae) {
		if definiteCodes[ae.Code] && !info.Ambiguous {
			return Fail, ae.Code
		}
		return Unknown, ae.Code
	}
	if !info.Ambiguous {
		return Fail, "unreachable" // no server accepted a connection: nothing was sent
	}
	return Unknown, "timeout"
}

// Event records a timeline entry.
func (h *History) Event(what string) {
	h.mu.Lock()
	h.events = append(h.events, Event{At: time.Now(), What: what})
	h.mu.Unlock()
}

// Ops returns a copy of the operations in invocation order.
func (h *History) Ops() []Op {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]Op, len(h.ops))
	for i, op := range h.ops {
		out[i] = *op
	}
	return out
}

// Events returns a copy of the timeline.
func (h *History) Events() []Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Event(nil), h.events...)
}

// Gap is an interval without an acknowledged operation.
type Gap struct {
	From, To time.Time
}

// Len is the gap's length.
func (g Gap) Len() time.Duration { return g.To.Sub(g.From) }

// LongestUnavailability is the longest interval within [from, to] in which no
// first-attempt operation was acknowledged.
func LongestUnavailability(ops []Op, from, to time.Time) Gap {
	var acks []time.Time
	for _, op := range ops {
		if op.Outcome == OK && !op.Retry && !op.Complete.Before(from) && !op.Complete.After(to) {
			acks = append(acks, op.Complete)
		}
	}
	sort.Slice(acks, func(i, j int) bool { return acks[i].Before(acks[j]) })
	best := Gap{From: from, To: to}
	if len(acks) == 0 {
		return best
	}
	best = Gap{From: from, To: acks[0]}
	prev := acks[0]
	for _, a := range acks[1:] {
		if a.Sub(prev) > best.Len() {
			best = Gap{From: prev, To: a}
		}
		prev = a
	}
	if to.Sub(prev) > best.Len() {
		best = Gap{From: prev, To: to}
	}
	return best
}
