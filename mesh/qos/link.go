package qos

import (
	"sync"
	"sync/atomic"
	"time"
)

// LinkConfig configures a Link. Zero values mean defaults.
type LinkConfig struct {
	// Queue bounds and weights the link's queue.
	Queue Config
	// Rate paces the link in bytes per second (0: unpaced). Frames beyond
	// the rate wait in the queue and leave in class order.
	Rate int64
	// Burst is how many bytes a paced link may send at once after being
	// idle (default Rate/20, at least 16 KiB).
	Burst int64
	// Clock defaults to time.Now.
	Clock func() time.Time
	// SendBatch, if set, sends queued frames several at a time (up to
	// MaxBatch, in queue order, each within the pacing rate): a backed-up
	// link then costs one batched write per drain round instead of one
	// write per frame. It returns how many frames it sent. The frames are
	// the Link's; SendBatch owns them during the call only.
	SendBatch func(frames [][]byte) (int, error)
	// MaxBatch bounds a batch (default 32).
	MaxBatch int
}

// LinkStats count what a Link did.
type LinkStats struct {
	// Direct frames went straight to the send function; Queued frames
	// waited in the queue (Dropped of them, or on arrival, were dropped);
	// SendErrors counts failed sends of queued frames (their error has no
	// caller to go to).
	Direct, Queued, Dropped, SendErrors uint64
	// Len and Bytes are what waits now.
	Len, Bytes int
}

// Link sends frames for one link in QoS order. Safe for concurrent use.
type Link struct {
	send  func([]byte) error
	batch func([][]byte) (int, error)
	max   int
	pend  [][]byte // the batch being sent (the busy goroutine's)
	rate  float64
	burst float64
	clock func() time.Time

	mu     sync.Mutex
	q      *Queue
	busy   bool // a goroutine is sending (and will drain the queue)
	closed bool
	tokens float64
	last   time.Time
	timer  *time.Timer

	direct, queued, sendErrs atomic.Uint64
}

// NewLink returns a Link that sends through send. send is called by one
// goroutine at a time, in the order the queue chooses; it owns the frame
// during the call only.
func NewLink(send func(frame []byte) error, cfg LinkConfig) *Link {
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	l := &Link{send: send, batch: cfg.SendBatch, max: cfg.MaxBatch, clock: cfg.Clock, q: NewQueue(cfg.Queue)}
	if l.max <= 0 {
		l.max = 32
	}
	if l.batch == nil { // one frame per round through send
		l.max = 1
		l.batch = func(bs [][]byte) (int, error) {
			if err := send(bs[0]); err != nil {
				return 0, err
			}
			return 1, nil
		}
	}
	if cfg.Rate > 0 {
		l.rate = float64(cfg.Rate)
		l.burst = float64(cfg.Burst)
		if l.burst <= 0 {
			l.burst = max(float64(cfg.Rate)/20, 16<<10)
		}
		l.tokens, l.last = l.burst, cfg.Clock()
	}
	return l
}

// Send sends frame in class c. When the link is idle it is sent at once on
// the calling goroutine and its error returned; when the link is backed up
// (another goroutine sends on it, or the pacing rate is used up) it is
// queued and Send returns nil, or ErrFull if it was dropped. The Link owns
// frame from the call on (a queued frame is sent later): the caller must not
// reuse it.
func (l *Link) Send(c Class, frame []byte) error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return ErrClosed
	}
	if !l.busy && l.q.Len() == 0 && l.mayLocked() {
		l.spendLocked(len(frame))
		l.busy = true
		l.mu.Unlock()
		l.direct.Add(1)
		err := l.send(frame)
		l.drain()
		return err
	}
	err := l.q.Push(c, frame)
	if err == nil {
		l.queued.Add(1)
	}
	if !l.busy {
		l.armLocked()
	}
	l.mu.Unlock()
	return err
}

// drain sends queued frames until the queue is empty or the pacing rate is
// used up (then a timer resumes); the caller holds the link (busy). With
// SendBatch it takes up to MaxBatch frames per round.
func (l *Link) drain() {
	for {
		l.mu.Lock()
		if l.closed || l.q.Len() == 0 {
			l.busy = false
			l.mu.Unlock()
			return
		}
		if !l.mayLocked() {
			l.busy = false
			l.armLocked()
			l.mu.Unlock()
			return
		}
		pend := l.pend[:0]
		for len(pend) < l.max && l.q.Len() > 0 && (len(pend) == 0 || l.mayLocked()) {
			b, _, _ := l.q.Pop()
			l.spendLocked(len(b))
			pend = append(pend, b)
		}
		l.mu.Unlock()
		if n, err := l.batch(pend); err != nil || n < len(pend) {
			l.sendErrs.Add(uint64(len(pend) - min(n, len(pend))))
		}
		clear(pend)
		l.pend = pend
	}
}

// mayLocked refills the token bucket and reports whether a frame may go.
// A paced link may overdraw by one frame (the debt delays the next).
func (l *Link) mayLocked() bool {
	if l.rate == 0 {
		return true
	}
	now := l.clock()
	if el := now.Sub(l.last); el > 0 {
		l.tokens = min(l.burst, l.tokens+l.rate*el.Seconds())
		l.last = now
	}
	return l.tokens > 0
}

func (l *Link) spendLocked(n int) {
	if l.rate > 0 {
		l.tokens -= float64(n)
	}
}

// armLocked starts the pacing timer unless it runs: it fires when the
// bucket is positive again.
func (l *Link) armLocked() {
	if l.rate == 0 || l.timer != nil || l.closed {
		return
	}
	wait := time.Duration((-l.tokens + 1) / l.rate * float64(time.Second))
	wait = max(wait, 100*time.Microsecond)
	l.timer = time.AfterFunc(wait, l.resume)
}

// resume is the pacing timer: it takes the link and drains.
func (l *Link) resume() {
	l.mu.Lock()
	l.timer = nil
	if l.closed || l.busy || l.q.Len() == 0 {
		l.mu.Unlock()
		return
	}
	l.busy = true
	l.mu.Unlock()
	l.drain()
}

// Stats returns the counters.
func (l *Link) Stats() LinkStats {
	l.mu.Lock()
	var dropped uint64
	for c := range Class(NumClasses) {
		dropped += l.q.Dropped(c)
	}
	s := LinkStats{Len: l.q.Len(), Bytes: l.q.Bytes(), Dropped: dropped}
	l.mu.Unlock()
	s.Direct, s.Queued, s.SendErrors = l.direct.Load(), l.queued.Load(), l.sendErrs.Load()
	return s
}

// Close drops what is queued and refuses later frames.
func (l *Link) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	if l.timer != nil {
		l.timer.Stop()
		l.timer = nil
	}
	l.q.Clear()
}
