// Package netsim is an in-process, deterministic packet network for tests:
// endpoints attach at netip.AddrPort addresses and exchange datagrams through
// a router that can drop (seeded probability), delay, jitter, reorder,
// duplicate and partition, on a virtual clock.
//
// Nothing happens on its own: time and delivery advance only in Advance or
// Step, on the caller's goroutine, so a run is a pure function of the seed and
// the calls made. Handlers are called without the network's lock held and may
// send (which only enqueues). netsim owns no real sockets and must not be
// linked into production binaries; it imports nothing of the mesh.
package netsim

import (
	"container/heap"
	"math/rand/v2"
	"net/netip"
	"sync"
	"time"
)

// Handler receives a datagram. pkt belongs to the handler.
type Handler func(pkt []byte, from netip.AddrPort)

// LinkConfig describes the faults on a directed link. The zero value is a
// perfect link with no delay.
type LinkConfig struct {
	// Loss is the probability a datagram is dropped.
	Loss float64
	// Delay is the base one-way delay.
	Delay time.Duration
	// Jitter adds a uniform random delay in [0, Jitter).
	Jitter time.Duration
	// Duplicate is the probability a datagram is delivered twice.
	Duplicate float64
	// Reorder is the probability a datagram is held back by ReorderDelay,
	// letting later datagrams overtake it.
	Reorder      float64
	ReorderDelay time.Duration
}

// Stats count what the network did.
type Stats struct {
	Sent, Dropped, Blocked, Duplicated, Reordered, Delivered, Undeliverable uint64
}

type pair struct{ from, to netip.AddrPort }

type item struct {
	at       time.Time
	seq      uint64
	from, to netip.AddrPort
	pkt      []byte
}

type queue []*item

func (q queue) Len() int { return len(q) }
func (q queue) Less(i, j int) bool {
	if !q[i].at.Equal(q[j].at) {
		return q[i].at.Before(q[j].at)
	}
	return q[i].seq < q[j].seq
}
func (q queue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *queue) Push(x any)   { *q = append(*q, x.(*item)) }
func (q *queue) Pop() any {
	old := *q
	it := old[len(old)-1]
	*q = old[:len(old)-1]
	return it
}

// Network is the simulated network. Safe for concurrent use, but determinism
// holds only when one goroutine drives it.
type Network struct {
	mu      sync.Mutex
	rng     *rand.Rand
	now     time.Time
	seq     uint64
	q       queue
	nodes   map[netip.AddrPort]Handler
	def     LinkConfig
	links   map[pair]LinkConfig
	blocked map[pair]bool
	stats   Stats
}

// New creates a network whose virtual clock starts at start and whose random
// choices derive from seed.
func New(seed uint64, start time.Time) *Network {
	return &Network{
		rng:     rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		now:     start,
		nodes:   make(map[netip.AddrPort]Handler),
		links:   make(map[pair]LinkConfig),
		blocked: make(map[pair]bool),
	}
}

// Now returns the virtual time; use it as the endpoints' clock.
func (n *Network) Now() time.Time {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.now
}

// Attach connects a handler at addr, replacing any previous one.
func (n *Network) Attach(addr netip.AddrPort, h Handler) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.nodes[addr] = h
}

// Detach disconnects addr; datagrams to it are counted Undeliverable.
func (n *Network) Detach(addr netip.AddrPort) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.nodes, addr)
}

// SetDefault sets the faults of every link without its own config.
func (n *Network) SetDefault(c LinkConfig) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.def = c
}

// SetLink sets the faults of the directed link from → to.
func (n *Network) SetLink(from, to netip.AddrPort, c LinkConfig) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.links[pair{from, to}] = c
}

// Partition blocks both directions between a and b, including datagrams
// already in flight.
func (n *Network) Partition(a, b netip.AddrPort) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.blocked[pair{a, b}] = true
	n.blocked[pair{b, a}] = true
}

// Heal unblocks a and b.
func (n *Network) Heal(a, b netip.AddrPort) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.blocked, pair{a, b})
	delete(n.blocked, pair{b, a})
}

// Sender returns a send function bound to a source address, in the shape
// endpoints expect. The packet is copied.
func (n *Network) Sender(from netip.AddrPort) func(pkt []byte, to netip.AddrPort) {
	return func(pkt []byte, to netip.AddrPort) { n.Send(from, to, pkt) }
}

// Send enqueues a copy of pkt from → to, applying the link's faults.
func (n *Network) Send(from, to netip.AddrPort, pkt []byte) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.stats.Sent++
	if n.blocked[pair{from, to}] {
		n.stats.Blocked++
		return
	}
	c, ok := n.links[pair{from, to}]
	if !ok {
		c = n.def
	}
	if c.Loss > 0 && n.rng.Float64() < c.Loss {
		n.stats.Dropped++
		return
	}
	copies := 1
	if c.Duplicate > 0 && n.rng.Float64() < c.Duplicate {
		copies = 2
		n.stats.Duplicated++
	}
	for range copies {
		d := c.Delay
		if c.Jitter > 0 {
			d += time.Duration(n.rng.Int64N(int64(c.Jitter)))
		}
		if c.Reorder > 0 && n.rng.Float64() < c.Reorder {
			d += c.ReorderDelay
			n.stats.Reordered++
		}
		n.seq++
		heap.Push(&n.q, &item{at: n.now.Add(d), seq: n.seq, from: from, to: to, pkt: append([]byte(nil), pkt...)})
	}
}

// Step delivers the next queued datagram, moving the clock to its time. It
// reports false if nothing was queued.
func (n *Network) Step() bool {
	n.mu.Lock()
	if len(n.q) == 0 {
		n.mu.Unlock()
		return false
	}
	n.deliverLocked() // unlocks
	return true
}

// Advance moves the clock forward by d, delivering in time order every
// datagram due by then, including ones sent by handlers meanwhile. It returns
// the number delivered.
func (n *Network) Advance(d time.Duration) int {
	n.mu.Lock()
	target := n.now.Add(d)
	n.mu.Unlock()
	delivered := 0
	for {
		n.mu.Lock()
		if len(n.q) == 0 || n.q[0].at.After(target) {
			if target.After(n.now) {
				n.now = target
			}
			n.mu.Unlock()
			return delivered
		}
		if n.deliverLocked() {
			delivered++
		}
	}
}

// deliverLocked pops one datagram and calls its handler after unlocking.
func (n *Network) deliverLocked() bool {
	it := heap.Pop(&n.q).(*item)
	if it.at.After(n.now) {
		n.now = it.at
	}
	h := n.nodes[it.to]
	switch {
	case n.blocked[pair{it.from, it.to}]:
		n.stats.Blocked++
		h = nil
	case h == nil:
		n.stats.Undeliverable++
	default:
		n.stats.Delivered++
	}
	n.mu.Unlock()
	if h == nil {
		return false
	}
	h(it.pkt, it.from)
	return true
}

// Pending returns the number of datagrams in flight.
func (n *Network) Pending() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.q)
}

// Stats returns the counters.
func (n *Network) Stats() Stats {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.stats
}
