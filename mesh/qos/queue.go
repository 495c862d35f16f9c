package qos

import (
	"errors"
	"fmt"
)

// Class is a QoS traffic class. Lower values are served first: Control
// strictly, the others by weighted round robin.
type Class uint8

// The traffic classes, in the order of the cluster's QoS policies
// (authority.TrafficClasses).
const (
	Control Class = iota
	Interactive
	Streaming
	Bulk
	BestEffort
	// NumClasses is the number of classes.
	NumClasses = 5
)

// Default is the class of traffic that names none (frames of older nodes,
// flows dialled without a class).
const Default = BestEffort

var names = [NumClasses]string{"control", "interactive", "streaming", "bulk", "best-effort"}

// String returns the class name as the QoS policies spell it.
func (c Class) String() string {
	if c.Valid() {
		return names[c]
	}
	return fmt.Sprintf("class(%d)", uint8(c))
}

// Valid reports whether c is one of the classes.
func (c Class) Valid() bool { return c < NumClasses }

// Parse returns the class named name ("control", "interactive", "streaming",
// "bulk" or "best-effort").
func Parse(name string) (Class, bool) {
	for i, n := range names {
		if n == name {
			return Class(i), true
		}
	}
	return 0, false
}

// Errors.
var (
	// ErrFull means the queue had no room for a frame and nothing of a lower
	// class to evict: the frame was dropped.
	ErrFull = errors.New("qos: queue full")
	// ErrClosed means the link is closed.
	ErrClosed = errors.New("qos: link closed")
)

// DefaultWeights are the round-robin weights of the non-control classes
// (the control entry is unused: control is served strictly first).
var DefaultWeights = [NumClasses]int{Control: 0, Interactive: 8, Streaming: 4, Bulk: 2, BestEffort: 1}

// Config bounds and weights a Queue. Zero values mean defaults.
type Config struct {
	// Weights of Interactive … BestEffort (default DefaultWeights); each
	// must be at least 1 when set.
	Weights [NumClasses]int
	// Quantum is the number of bytes one unit of weight lets a class send
	// per round (default 1500).
	Quantum int
	// MaxFrames and MaxBytes bound the queue (defaults 1024 frames, 4 MiB).
	MaxFrames, MaxBytes int
	// ControlBurst is how many control frames are served in a row while
	// other classes wait before one frame of another class goes out
	// (default 64): control is strictly first but cannot starve the rest
	// for ever.
	ControlBurst int
}

func (c Config) withDefaults() Config {
	set := false
	for _, w := range c.Weights[Interactive:] {
		set = set || w != 0
	}
	if !set {
		c.Weights = DefaultWeights
	}
	for i := Interactive; i < NumClasses; i++ {
		c.Weights[i] = max(c.Weights[i], 1)
	}
	if c.Quantum <= 0 {
		c.Quantum = 1500
	}
	if c.MaxFrames <= 0 {
		c.MaxFrames = 1024
	}
	if c.MaxBytes <= 0 {
		c.MaxBytes = 4 << 20
	}
	if c.ControlBurst <= 0 {
		c.ControlBurst = 64
	}
	return c
}

// fifo is a first-in first-out list of frames.
type fifo struct {
	items [][]byte
	head  int
}

func (f *fifo) len() int { return len(f.items) - f.head }

func (f *fifo) push(b []byte) { f.items = append(f.items, b) }

func (f *fifo) front() []byte { return f.items[f.head] }

func (f *fifo) pop() []byte {
	b := f.items[f.head]
	f.items[f.head] = nil
	f.head++
	switch {
	case f.head == len(f.items):
		f.items, f.head = f.items[:0], 0
	case f.head >= 64 && 2*f.head >= len(f.items):
		n := copy(f.items, f.items[f.head:])
		clear(f.items[n:])
		f.items, f.head = f.items[:n], 0
	}
	return b
}

// popBack removes the newest frame.
func (f *fifo) popBack() []byte {
	i := len(f.items) - 1
	b := f.items[i]
	f.items[i] = nil
	f.items = f.items[:i]
	if f.head == len(f.items) {
		f.items, f.head = f.items[:0], 0
	}
	return b
}

// Queue holds the frames waiting for one link. It is not safe for
// concurrent use (Link serializes it).
type Queue struct {
	cfg        Config
	q          [NumClasses]fifo
	bytes      [NumClasses]int
	deficit    [NumClasses]int
	cur        Class // class of the round robin being visited
	fresh      bool  // cur has received its quantum for this visit
	controlRun int
	frames     int
	total      int
	dropped    [NumClasses]uint64
}

// NewQueue returns an empty queue.
func NewQueue(cfg Config) *Queue {
	return &Queue{cfg: cfg.withDefaults(), cur: Interactive}
}

// Len returns the number of queued frames.
func (q *Queue) Len() int { return q.frames }

// Bytes returns the number of queued bytes.
func (q *Queue) Bytes() int { return q.total }

// LenClass returns the number of queued frames of class c.
func (q *Queue) LenClass(c Class) int {
	if !c.Valid() {
		return 0
	}
	return q.q[c].len()
}

// Dropped returns how many frames of class c were dropped (refused or
// evicted) since the queue was made.
func (q *Queue) Dropped(c Class) uint64 {
	if !c.Valid() {
		return 0
	}
	return q.dropped[c]
}

// Push queues frame (the queue keeps it; the caller must not reuse it) in
// class c (an invalid class is Default). When the queue is full, newer
// frames of lower classes are evicted to make room; if even evicting all of
// them would not, the frame is dropped and ErrFull returned (nothing is
// evicted then).
func (q *Queue) Push(c Class, frame []byte) error {
	if !c.Valid() {
		c = Default
	}
	n := len(frame)
	if q.frames+1 > q.cfg.MaxFrames || q.total+n > q.cfg.MaxBytes {
		ef, eb := 0, 0
		for lc := c + 1; lc < NumClasses; lc++ {
			ef, eb = ef+q.q[lc].len(), eb+q.bytes[lc]
		}
		if q.frames-ef+1 > q.cfg.MaxFrames || q.total-eb+n > q.cfg.MaxBytes {
			q.dropped[c]++
			return ErrFull
		}
		for lc := Class(NumClasses - 1); q.frames+1 > q.cfg.MaxFrames || q.total+n > q.cfg.MaxBytes; {
			if q.q[lc].len() == 0 {
				lc--
				continue
			}
			b := q.q[lc].popBack()
			q.removed(lc, len(b))
			q.dropped[lc]++
		}
	}
	q.q[c].push(frame)
	q.added(c, n)
	return nil
}

// added and removed keep the counters in step with the lists.
func (q *Queue) added(c Class, n int) {
	q.bytes[c] += n
	q.total += n
	q.frames++
}

func (q *Queue) removed(c Class, n int) {
	q.bytes[c] -= n
	q.total -= n
	q.frames--
	if q.q[c].len() == 0 {
		q.deficit[c] = 0
	}
}

// Pop removes and returns the next frame to send and its class; ok is false
// when the queue is empty. Control frames go first (at most ControlBurst in
// a row while others wait); the other classes are served by deficit round
// robin: visiting a class adds Weight × Quantum bytes to its deficit, and it
// sends frames while the next one fits.
func (q *Queue) Pop() (frame []byte, c Class, ok bool) {
	if q.frames == 0 {
		return nil, 0, false
	}
	others := q.frames - q.q[Control].len()
	if q.q[Control].len() > 0 && (others == 0 || q.controlRun < q.cfg.ControlBurst) {
		q.controlRun++
		b := q.q[Control].pop()
		q.removed(Control, len(b))
		return b, Control, true
	}
	q.controlRun = 0
	for {
		c := q.cur
		f := &q.q[c]
		if f.len() == 0 {
			q.deficit[c] = 0
			q.next()
			continue
		}
		if !q.fresh {
			q.deficit[c] += q.cfg.Weights[c] * q.cfg.Quantum
			q.fresh = true
		}
		if n := len(f.front()); n <= q.deficit[c] {
			q.deficit[c] -= n
			b := f.pop()
			q.removed(c, n)
			if f.len() == 0 {
				q.next()
			}
			return b, c, true
		}
		q.next()
	}
}

// next moves the round robin to the next non-control class.
func (q *Queue) next() {
	q.cur++
	if q.cur >= NumClasses {
		q.cur = Interactive
	}
	q.fresh = false
}

// Clear drops every queued frame (they are not counted as dropped).
func (q *Queue) Clear() {
	for c := range q.q {
		q.q[c] = fifo{}
		q.bytes[c], q.deficit[c] = 0, 0
	}
	q.frames, q.total, q.controlRun = 0, 0, 0
	q.cur, q.fresh = Interactive, false
}
