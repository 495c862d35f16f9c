package routing

import (
	"container/heap"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// testNet is a round-based in-memory link layer: a message sent during round
// k is delivered in round k+1 (one round = one link latency). Routers tick
// every tickEvery rounds on a virtual clock.
type testNet struct {
	t         testing.TB
	now       time.Time
	round     time.Duration
	tickEvery int
	rounds    int
	routers   map[string]*Router
	ids       []string
	cost      map[[2]string]Metric // live links (both directions)
	cut       map[[2]string]bool
	dead      map[string]bool
	queue     []tmsg
	sent      int
	tap       func(from, to string, msg []byte)
}

type tmsg struct {
	from, to string
	msg      []byte
}

func testConfig(c *Config) {
	c.UpdateInterval = time.Second
	c.RouteTimeout = 3500 * time.Millisecond
	c.GCTimeout = 2 * time.Second
	c.RequestInterval = 200 * time.Millisecond
}

func newTestNet(t testing.TB, ids []string, policy func(id string) Policy) *testNet {
	n := &testNet{
		t: t, now: time.Unix(1_700_000_000, 0), round: 10 * time.Millisecond, tickEvery: 10,
		routers: map[string]*Router{}, cost: map[[2]string]Metric{}, cut: map[[2]string]bool{}, dead: map[string]bool{},
	}
	for _, id := range ids {
		n.addNode(id, policy)
	}
	return n
}

func (n *testNet) addNode(id string, policy func(id string) Policy) {
	cfg := Config{Self: id, Clock: func() time.Time { return n.now }}
	testConfig(&cfg)
	if policy != nil {
		cfg.Policy = policy(id)
	}
	cfg.Send = func(to string, msg []byte) {
		n.sent++
		n.queue = append(n.queue, tmsg{from: id, to: to, msg: msg})
	}
	r, err := New(cfg)
	if err != nil {
		n.t.Fatal(err)
	}
	n.routers[id] = r
	n.ids = append(n.ids, id)
	delete(n.dead, id)
}

func key(a, b string) [2]string {
	if a > b {
		a, b = b, a
	}
	return [2]string{a, b}
}

// link brings up a bidirectional link of the given cost.
func (n *testNet) link(a, b string, c Metric) {
	n.cost[key(a, b)] = c
	delete(n.cut, key(a, b))
	must(n.t, n.routers[a].SetLink(b, c, true))
	must(n.t, n.routers[b].SetLink(a, c, true))
}

// cutLink drops the link's traffic and reports it down on both ends, as the
// link manager does when probes fail.
func (n *testNet) cutLink(a, b string) {
	n.cut[key(a, b)] = true
	must(n.t, n.routers[a].SetLink(b, n.cost[key(a, b)], false))
	must(n.t, n.routers[b].SetLink(a, n.cost[key(a, b)], false))
}

// silentCut drops traffic without any link-down report (only route
// timeouts can notice).
func (n *testNet) silentCut(a, b string) { n.cut[key(a, b)] = true }

func (n *testNet) heal(a, b string) { n.link(a, b, n.cost[key(a, b)]) }

// kill makes a node vanish; its neighbours' link managers report the links
// down.
func (n *testNet) kill(id string) {
	n.dead[id] = true
	for k := range n.cost {
		if k[0] == id || k[1] == id {
			other := k[0]
			if other == id {
				other = k[1]
			}
			n.cut[k] = true
			must(n.t, n.routers[other].SetLink(id, n.cost[k], false))
		}
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// step delivers one round of messages and ticks routers when due.
func (n *testNet) step() {
	q := n.queue
	n.queue = nil
	for _, m := range q {
		if n.dead[m.to] || n.dead[m.from] || n.cut[key(m.from, m.to)] {
			continue
		}
		if n.tap != nil {
			n.tap(m.from, m.to, m.msg)
		}
		_ = n.routers[m.to].HandleMessage(m.from, m.msg)
	}
	n.rounds++
	n.now = n.now.Add(n.round)
	if n.rounds%n.tickEvery == 0 {
		for _, id := range n.ids {
			if !n.dead[id] {
				n.routers[id].Tick()
			}
		}
	}
}

// runUntil steps until cond holds; it returns the rounds taken.
func (n *testNet) runUntil(cond func() error, maxRounds int) (int, error) {
	for i := 0; ; i++ {
		err := cond()
		if err == nil {
			return i, nil
		}
		if i >= maxRounds {
			return i, err
		}
		n.step()
	}
}

// dijkstra returns the shortest cost from src to every node over live links.
func (n *testNet) dijkstra(src string) map[string]Metric {
	dist := map[string]Metric{src: 0}
	pq := &distQ{{src, 0}}
	for pq.Len() > 0 {
		it := heap.Pop(pq).(qi)
		if it.d > dist[it.id] {
			continue
		}
		for k, c := range n.cost {
			if n.cut[k] || n.dead[k[0]] || n.dead[k[1]] {
				continue
			}
			var o string
			switch it.id {
			case k[0]:
				o = k[1]
			case k[1]:
				o = k[0]
			default:
				continue
			}
			nd := it.d + c
			if old, ok := dist[o]; !ok || nd < old {
				dist[o] = nd
				heap.Push(pq, qi{o, nd})
			}
		}
	}
	return dist
}

type qi struct {
	id string
	d  Metric
}
type distQ []qi

func (q distQ) Len() int           { return len(q) }
func (q distQ) Less(i, j int) bool { return q[i].d < q[j].d }
func (q distQ) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *distQ) Push(x any)        { *q = append(*q, x.(qi)) }
func (q *distQ) Pop() any {
	o := *q
	x := o[len(o)-1]
	*q = o[:len(o)-1]
	return x
}

// optimal checks every live router's table against shortest paths: every
// reachable node has a route of exactly the optimal cost whose next hop is
// consistent, and nothing else is routed.
func (n *testNet) optimal() error {
	for _, s := range n.ids {
		if n.dead[s] {
			continue
		}
		dist := n.dijkstra(s)
		r := n.routers[s]
		for _, d := range n.ids {
			if d == s {
				continue
			}
			nh, c, _, err := r.Lookup(d)
			want, reachable := dist[d]
			if !reachable || n.dead[d] {
				if err == nil {
					return fmt.Errorf("%s has a route to unreachable %s via %s", s, d, nh)
				}
				continue
			}
			if err != nil {
				return fmt.Errorf("%s: no route to %s (want cost %d)", s, d, want)
			}
			if c != want {
				return fmt.Errorf("%s→%s cost %d via %s, want %d", s, d, c, nh, want)
			}
			if lc, ok := n.cost[key(s, nh)]; !ok || n.cut[key(s, nh)] {
				return fmt.Errorf("%s→%s via non-neighbour %s", s, d, nh)
			} else if nd := n.dijkstra(nh)[d]; lc+nd != want {
				return fmt.Errorf("%s→%s via %s is not on a shortest path", s, d, nh)
			}
		}
	}
	return nil
}

// path follows next hops from src to dst (bounded).
func (n *testNet) path(src, dst string) ([]string, error) {
	p := []string{src}
	for cur := src; cur != dst; {
		nh, _, _, err := n.routers[cur].Lookup(dst)
		if err != nil {
			return p, err
		}
		p = append(p, nh)
		cur = nh
		if len(p) > 20 {
			return p, fmt.Errorf("loop: %v", p)
		}
	}
	return p, nil
}

func names(prefix string, k int) []string {
	out := make([]string, k)
	for i := range out {
		out[i] = fmt.Sprintf("%s%02d", prefix, i)
	}
	return out
}

// randomGraph builds a connected random graph: a random spanning tree plus
// extra edges, costs 1..20.
func randomGraph(n *testNet, seed uint64, extra int) {
	rng := rand.New(rand.NewPCG(seed, 1))
	ids := slices.Clone(n.ids)
	rng.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
	for i := 1; i < len(ids); i++ {
		n.link(ids[i], ids[rng.IntN(i)], Metric(1+rng.IntN(20)))
	}
	for added := 0; added < extra; {
		a, b := ids[rng.IntN(len(ids))], ids[rng.IntN(len(ids))]
		if a == b {
			continue
		}
		if _, ok := n.cost[key(a, b)]; ok {
			continue
		}
		n.link(a, b, Metric(1+rng.IntN(20)))
		added++
	}
}
