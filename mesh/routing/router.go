package routing

import (
	"cmp"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Config configures a Router. Zero durations and limits take defaults.
type Config struct {
	// Self is this node's id (1..MaxIDLen bytes).
	Self string
	// Send transmits a routing message to a neighbour over its authorized
	// link. It is called without the Router's lock held; it must not block
	// for long. msg is not reused by the Router after the call.
	Send func(neighbour string, msg []byte)
	// Clock defaults to time.Now.
	Clock func() time.Time
	// Policy defaults to AllowAll.
	Policy Policy
	// UpdateInterval is the period of full-table refreshes (default 10 s).
	UpdateInterval time.Duration
	// RouteTimeout expires a learned route not refreshed for this long
	// (default 3.5 × UpdateInterval).
	RouteTimeout time.Duration
	// GCTimeout deletes an unreachable destination (after advertising its
	// retraction) once it has been unreachable this long (default
	// 2 × UpdateInterval).
	GCTimeout time.Duration
	// RequestInterval is the minimum gap between sequence-number requests
	// for one destination (default UpdateInterval / 4).
	RequestInterval time.Duration
	// MaxHops bounds path length: a route longer than this is unreachable
	// (default 16).
	MaxHops int
	// MaxDestinations bounds the table (default 4096).
	MaxDestinations int
	// MaxMessageLen bounds each routing message; updates are split (default
	// 1400 bytes).
	MaxMessageLen int
	// SwitchMargin is route selection hysteresis, a fraction of the current
	// route's cost: while the current next hop still has a feasible route, a
	// different next hop replaces it only if cheaper by more than this
	// margin, so two (nearly) equal-cost paths whose probe-derived costs
	// jitter do not alternate. 0 (the default) switches to any strictly
	// better route; must be in [0, 1).
	SwitchMargin float64
}

func (c *Config) setDefaults() error {
	if c.Self == "" || len(c.Self) > MaxIDLen {
		return fmt.Errorf("%w: Self must be 1..%d bytes", ErrConfig, MaxIDLen)
	}
	if c.Send == nil {
		return fmt.Errorf("%w: Send is required", ErrConfig)
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.Policy == nil {
		c.Policy = AllowAll{}
	}
	if c.UpdateInterval <= 0 {
		c.UpdateInterval = 10 * time.Second
	}
	if c.RouteTimeout <= 0 {
		c.RouteTimeout = c.UpdateInterval * 7 / 2
	}
	if c.GCTimeout <= 0 {
		c.GCTimeout = 2 * c.UpdateInterval
	}
	if c.RequestInterval <= 0 {
		c.RequestInterval = c.UpdateInterval / 4
	}
	if c.MaxHops <= 0 {
		c.MaxHops = 16
	}
	if c.MaxHops > 254 {
		return fmt.Errorf("%w: MaxHops %d > 254", ErrConfig, c.MaxHops)
	}
	if c.MaxDestinations <= 0 {
		c.MaxDestinations = 4096
	}
	if c.MaxMessageLen <= 0 {
		c.MaxMessageLen = 1400
	}
	if c.SwitchMargin < 0 || c.SwitchMargin >= 1 {
		return fmt.Errorf("%w: SwitchMargin %v not in [0, 1)", ErrConfig, c.SwitchMargin)
	}
	if c.MaxMessageLen < minMessageLen || c.MaxMessageLen > MaxMessageLen {
		return fmt.Errorf("%w: MaxMessageLen %d not in %d..%d", ErrConfig, c.MaxMessageLen, minMessageLen, MaxMessageLen)
	}
	return nil
}

// Route is a usable route to Dst through neighbour NextHop.
type Route struct {
	Dst     string
	NextHop string
	// Cost is the total metric (link costs summed along the path).
	Cost Metric
	// Hops is the path length in links.
	Hops int
	// Seq is the destination's sequence number the route was learned with.
	Seq uint32
}

// Stats count what a Router did.
type Stats struct {
	MessagesSent, MessagesReceived, EntriesSent    uint64
	TriggeredUpdates, PeriodicUpdates, RouteChange uint64
	SeqRequestsSent, SeqRequestsForwarded          uint64
	PolicyDenied, Malformed, Unfeasible, TableFull uint64
	// UnknownNeighbour counts messages dropped because they came from a
	// node without an up link here; FirstHeardDumps the full tables sent in
	// answer to a neighbour's first message after its link came up.
	UnknownNeighbour, FirstHeardDumps uint64
}

type link struct {
	cost Metric
	up   bool
	// heard is whether a message came from the neighbour since its link
	// came up here. The first one is answered with a full table: the two
	// ends learn of a new link independently, so the full table one end
	// sends on link-up can reach the other before that end has the link up,
	// and be dropped there (ErrUnknownNeighbour). The answer to its first
	// message repairs that within one round trip instead of one refresh.
	heard bool
}

// learned is the last advertisement of one destination by one neighbour.
type learned struct {
	seq     uint32
	metric  Metric // as advertised by the neighbour
	hops    uint8  // as advertised by the neighbour
	expires time.Time
}

type dest struct {
	routes map[string]*learned
	sel    string // selected neighbour, "" if none
	// feasibility distance: the best (seq, metric) this node advertised.
	fdValid  bool
	fdSeq    uint32
	fdMetric Metric
	adv      Entry // what we advertise (before poisoned reverse)
	// lastMetric is the metric of the last selected route; fallback is a
	// loop-free alternate (see fallbackLocked) used for data while starved.
	lastMetric Metric
	fallback   Route
	// unreachableSince is when the destination lost its last route; zero
	// while reachable.
	unreachableSince time.Time
	lastReq          time.Time
	lastFwdSeq       uint32
	lastFwd          time.Time
	dirty            bool
}

type outMsg struct {
	to  string
	msg []byte
}

// Router is one node's distance-vector state. Its methods are safe for
// concurrent use. It performs no I/O itself: messages leave through
// Config.Send after the lock is released.
type Router struct {
	cfg Config

	mu         sync.Mutex
	policy     Policy
	seq        uint32
	selfDirty  bool
	links      map[string]*link
	nbrSelf    map[string]Metric // each neighbour's advertised distance to us
	dests      map[string]*dest
	nextUpdate time.Time
	out        []outMsg
	stats      Stats
}

// New creates a Router. It sends nothing until links are added.
func New(cfg Config) (*Router, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	return &Router{
		cfg:        cfg,
		policy:     cfg.Policy,
		links:      make(map[string]*link),
		nbrSelf:    make(map[string]Metric),
		dests:      make(map[string]*dest),
		nextUpdate: cfg.Clock().Add(cfg.UpdateInterval),
	}, nil
}

// Self returns this node's id.
func (r *Router) Self() string { return r.cfg.Self }

// SetLink declares or updates the authorized link to neighbour with its
// current cost (from link score / RTT, see CostFromRTT) and health. A link
// reported down stops carrying routes at once: the next feasible alternate
// is selected before SetLink returns, and retractions are sent. A link that
// comes up gets a full table at once so that the neighbour (and through its
// reply, this node) learns the shortcut without waiting for a refresh.
func (r *Router) SetLink(neighbour string, cost Metric, up bool) error {
	if neighbour == "" || neighbour == r.cfg.Self || len(neighbour) > MaxIDLen {
		return fmt.Errorf("%w: bad neighbour id %q", ErrConfig, neighbour)
	}
	if cost < 1 {
		cost = 1
	}
	if cost >= Infinity {
		cost = Infinity - 1
	}
	r.mu.Lock()
	l := r.links[neighbour]
	if l == nil {
		l = &link{}
		r.links[neighbour] = l
	}
	wasUp, oldCost := l.up, l.cost
	l.up, l.cost = up, cost
	if !up || !wasUp {
		l.heard = false
	}
	switch {
	case !up:
		r.dropNeighbourLocked(neighbour)
	case cost != oldCost:
		for dst, d := range r.dests {
			if _, ok := d.routes[neighbour]; ok {
				r.reselectLocked(dst, d)
			}
		}
	}
	if up && !wasUp {
		r.fullDumpLocked(neighbour)
	}
	r.flushLocked()
	out := r.takeOutLocked()
	r.mu.Unlock()
	r.send(out)
	return nil
}

// RemoveLink forgets a neighbour (for example when it is revoked or leaves
// the active set); routes through it are withdrawn at once.
func (r *Router) RemoveLink(neighbour string) {
	r.mu.Lock()
	if _, ok := r.links[neighbour]; ok {
		r.dropNeighbourLocked(neighbour)
		delete(r.links, neighbour)
		r.flushLocked()
	}
	out := r.takeOutLocked()
	r.mu.Unlock()
	r.send(out)
}

// SetPolicy replaces the policy (new snapshot). Routes it forbids are
// removed and every neighbour gets a fresh table.
func (r *Router) SetPolicy(p Policy) {
	if p == nil {
		p = AllowAll{}
	}
	r.mu.Lock()
	r.policy = p
	for dst, d := range r.dests {
		for via := range d.routes {
			if !p.AllowDestination(dst) || !p.AllowTransit(via, dst) {
				delete(d.routes, via)
			}
		}
		r.reselectLocked(dst, d)
	}
	for n, l := range r.links {
		if l.up {
			r.fullDumpLocked(n)
		}
	}
	r.flushLocked()
	out := r.takeOutLocked()
	r.mu.Unlock()
	r.send(out)
}

// HandleMessage processes a routing message received from neighbour from
// (the authenticated peer of the link it arrived on). Errors are
// informational: a rejected message changes nothing.
func (r *Router) HandleMessage(from string, msg []byte) error {
	m, err := Decode(msg)
	r.mu.Lock()
	r.stats.MessagesReceived++
	if err != nil {
		r.stats.Malformed++
		r.mu.Unlock()
		return err
	}
	l := r.links[from]
	if l == nil || !l.up {
		r.stats.UnknownNeighbour++
		r.mu.Unlock()
		return fmt.Errorf("%w: %q", ErrUnknownNeighbour, from)
	}
	if !l.heard {
		l.heard = true
		r.fullDumpLocked(from)
		r.stats.FirstHeardDumps++
	}
	switch m.Kind {
	case KindUpdate:
		for _, e := range m.Entries {
			r.handleEntryLocked(from, e)
		}
	case KindSeqRequest:
		r.handleRequestLocked(from, m.Request)
	}
	r.flushLocked()
	out := r.takeOutLocked()
	r.mu.Unlock()
	r.send(out)
	return nil
}

// Tick runs the timers: expiry of unrefreshed routes, sequence-number
// requests for starved destinations, garbage collection of long-unreachable
// destinations, and the periodic full refresh. Call it every few hundred
// milliseconds; the periodic refresh happens every UpdateInterval.
func (r *Router) Tick() {
	r.mu.Lock()
	now := r.cfg.Clock()
	for dst, d := range r.dests {
		changed := false
		for via, l := range d.routes {
			if now.After(l.expires) {
				delete(d.routes, via)
				changed = true
			}
		}
		if changed {
			r.reselectLocked(dst, d)
		}
		r.maybeRequestLocked(dst, d, now)
		if d.sel == "" {
			if len(d.routes) == 0 && !d.unreachableSince.IsZero() && now.Sub(d.unreachableSince) >= r.cfg.GCTimeout {
				delete(r.dests, dst)
			}
		}
	}
	if !now.Before(r.nextUpdate) {
		r.nextUpdate = now.Add(r.cfg.UpdateInterval)
		for _, n := range r.upNeighboursLocked() {
			r.fullDumpLocked(n)
			r.stats.PeriodicUpdates++
		}
	}
	r.flushLocked()
	out := r.takeOutLocked()
	r.mu.Unlock()
	r.send(out)
}

// Lookup returns the next hop towards dst, the route's total cost and its
// path length. For dst == Self it returns Self, 0, 0.
func (r *Router) Lookup(dst string) (nextHop string, cost Metric, hops int, err error) {
	if dst == r.cfg.Self {
		return dst, 0, 0, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	d := r.dests[dst]
	switch {
	case d == nil:
	case d.sel == dst && r.preferRelayLocked(dst):
		if rt := r.relayAlternateLocked(dst, d); rt.NextHop != "" {
			return rt.NextHop, rt.Cost, rt.Hops, nil
		}
		return d.sel, d.adv.Metric, int(d.adv.Hops), nil
	case d.sel != "":
		return d.sel, d.adv.Metric, int(d.adv.Hops), nil
	case d.fallback.NextHop != "":
		return d.fallback.NextHop, d.fallback.Cost, d.fallback.Hops, nil
	}
	return "", Infinity, 0, fmt.Errorf("%w to %q", ErrNoRoute, dst)
}

// Alternates returns the usable, policy-allowed, loop-free routes to dst,
// best first; the first is the one Lookup returns (ties keep the current
// route). It is the failover order.
func (r *Router) Alternates(dst string) []Route {
	r.mu.Lock()
	defer r.mu.Unlock()
	d := r.dests[dst]
	if d == nil {
		return nil
	}
	c := r.candidatesLocked(dst, d)
	if i := slices.IndexFunc(c, func(rt Route) bool { return rt.NextHop == d.sel }); i > 0 {
		sel := c[i]
		copy(c[1:i+1], c[:i])
		c[0] = sel
	}
	return c
}

// Table returns the selected route of every reachable destination, sorted by
// destination.
func (r *Router) Table() []Route {
	r.mu.Lock()
	defer r.mu.Unlock()
	t := make([]Route, 0, len(r.dests))
	for dst, d := range r.dests {
		if d.sel != "" {
			t = append(t, Route{Dst: dst, NextHop: d.sel, Cost: d.adv.Metric, Hops: int(d.adv.Hops), Seq: d.adv.Seq})
		}
	}
	slices.SortFunc(t, func(a, b Route) int { return cmp.Compare(a.Dst, b.Dst) })
	return t
}

// Seq returns this node's own sequence number.
func (r *Router) Seq() uint32 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seq
}

// Stats returns the counters.
func (r *Router) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stats
}

func (r *Router) send(out []outMsg) {
	for _, o := range out {
		r.cfg.Send(o.to, o.msg)
	}
}

func (r *Router) takeOutLocked() []outMsg {
	out := r.out
	r.out = nil
	return out
}

func (r *Router) upNeighboursLocked() []string {
	ns := make([]string, 0, len(r.links))
	for n, l := range r.links {
		if l.up {
			ns = append(ns, n)
		}
	}
	slices.Sort(ns)
	return ns
}

func (r *Router) dropNeighbourLocked(n string) {
	delete(r.nbrSelf, n)
	for dst, d := range r.dests {
		if _, ok := d.routes[n]; ok {
			delete(d.routes, n)
			r.reselectLocked(dst, d)
		}
	}
}

func (r *Router) handleEntryLocked(from string, e Entry) {
	now := r.cfg.Clock()
	if e.Dst == r.cfg.Self {
		// Someone knows a newer sequence number of ours (we restarted):
		// jump past it so that our own advertisements win again.
		if seqNewer(e.Seq, r.seq) {
			r.seq = e.Seq + 1
			r.selfDirty = true
		}
		r.nbrSelf[from] = e.Metric
		return
	}
	d := r.dests[e.Dst]
	if !r.policy.AllowDestination(e.Dst) || !r.policy.AllowTransit(from, e.Dst) {
		r.stats.PolicyDenied++
		if d != nil {
			if _, ok := d.routes[from]; ok {
				delete(d.routes, from)
				r.reselectLocked(e.Dst, d)
			}
		}
		return
	}
	retract := e.Metric == Infinity || int(e.Hops)+1 > r.cfg.MaxHops
	if d == nil {
		if retract {
			return
		}
		if len(r.dests) >= r.cfg.MaxDestinations {
			r.stats.TableFull++
			return
		}
		d = &dest{routes: make(map[string]*learned)}
		r.dests[e.Dst] = d
	}
	if retract {
		if _, ok := d.routes[from]; ok {
			delete(d.routes, from)
			r.reselectLocked(e.Dst, d)
		}
		return
	}
	l := d.routes[from]
	if l == nil {
		l = &learned{}
		d.routes[from] = l
	}
	l.seq, l.metric, l.hops, l.expires = e.Seq, e.Metric, e.Hops, now.Add(r.cfg.RouteTimeout)
	if !r.feasibleLocked(d, l) {
		r.stats.Unfeasible++
	}
	r.reselectLocked(e.Dst, d)
}

func (r *Router) handleRequestLocked(from string, q SeqRequest) {
	now := r.cfg.Clock()
	if q.Dst == r.cfg.Self {
		if seqNewer(q.Seq, r.seq) {
			r.seq = q.Seq
			r.selfDirty = true
		} else {
			r.queueLocked(from, []Entry{{Dst: r.cfg.Self, Seq: r.seq}})
		}
		return
	}
	d := r.dests[q.Dst]
	if d == nil || d.sel == "" || d.sel == from {
		return
	}
	if !seqNewer(q.Seq, d.adv.Seq) {
		if e, ok := r.advertEntryLocked(from, q.Dst, d); ok {
			r.queueLocked(from, []Entry{e})
		}
		return
	}
	if q.HopLimit <= 1 || (d.lastFwdSeq == q.Seq && now.Sub(d.lastFwd) < r.cfg.RequestInterval) {
		return
	}
	d.lastFwdSeq, d.lastFwd = q.Seq, now
	r.stats.SeqRequestsForwarded++
	r.out = append(r.out, outMsg{to: d.sel, msg: EncodeSeqRequest(nil, SeqRequest{Dst: q.Dst, Seq: q.Seq, HopLimit: q.HopLimit - 1})})
	r.stats.MessagesSent++
}

// usableLocked returns the total metric and hop count of a learned route if
// it can carry traffic now (link up, finite, within MaxHops, allowed).
func (r *Router) usableLocked(dst, via string, l *learned) (Metric, int, bool) {
	lk := r.links[via]
	if lk == nil || !lk.up || l.metric == Infinity {
		return Infinity, 0, false
	}
	total := l.metric.add(lk.cost)
	hops := int(l.hops) + 1
	if total == Infinity || hops > r.cfg.MaxHops {
		return Infinity, 0, false
	}
	if !r.policy.AllowDestination(dst) || !r.policy.AllowTransit(via, dst) {
		return Infinity, 0, false
	}
	return total, hops, true
}

// feasibleLocked is the Babel/DSDV feasibility condition: the advertisement
// is strictly newer than, or as new and strictly better than, the best this
// node has advertised. A route through a loop back to this node can never
// satisfy it, which rules out count-to-infinity.
func (r *Router) feasibleLocked(d *dest, l *learned) bool {
	return !d.fdValid || seqNewer(l.seq, d.fdSeq) || (l.seq == d.fdSeq && l.metric < d.fdMetric)
}

func (r *Router) candidatesLocked(dst string, d *dest) []Route {
	var c []Route
	for via, l := range d.routes {
		total, hops, ok := r.usableLocked(dst, via, l)
		if !ok || !r.feasibleLocked(d, l) {
			continue
		}
		c = append(c, Route{Dst: dst, NextHop: via, Cost: total, Hops: hops, Seq: l.seq})
	}
	slices.SortFunc(c, func(a, b Route) int {
		return cmp.Or(cmp.Compare(a.Cost, b.Cost), cmp.Compare(a.Hops, b.Hops), cmp.Compare(a.NextHop, b.NextHop))
	})
	return c
}

// reselectLocked picks the best feasible route, updates the feasibility
// distance and marks the destination for a triggered update on change.
func (r *Router) reselectLocked(dst string, d *dest) {
	now := r.cfg.Clock()
	c := r.candidatesLocked(dst, d)
	var sel string
	var adv Entry
	if len(c) > 0 {
		best := c[0]
		for _, rt := range c[1:] { // on a tie keep the current route (stability)
			if rt.NextHop == d.sel && (rt.Cost == best.Cost && rt.Hops == best.Hops || r.keepLocked(rt, best)) {
				best = rt
				break
			}
		}
		sel = best.NextHop
		adv = Entry{Dst: dst, Seq: best.Seq, Metric: best.Cost, Hops: uint8(best.Hops)}
		if !d.fdValid || seqNewer(adv.Seq, d.fdSeq) || (adv.Seq == d.fdSeq && adv.Metric < d.fdMetric) {
			d.fdValid, d.fdSeq, d.fdMetric = true, adv.Seq, adv.Metric
		}
		d.unreachableSince = time.Time{}
		d.lastMetric = adv.Metric
		d.fallback = Route{}
	} else {
		d.fallback = r.fallbackLocked(dst, d)
		adv = Entry{Dst: dst, Seq: d.fdSeq, Metric: Infinity}
		if d.unreachableSince.IsZero() {
			d.unreachableSince = now
		}
	}
	if sel != d.sel || adv != d.adv {
		if sel != d.sel {
			r.stats.RouteChange++
		}
		d.dirty = true
	}
	d.sel, d.adv = sel, adv
	r.maybeRequestLocked(dst, d, now)
}

// keepLocked reports whether the current route cur stays selected over best
// under SwitchMargin: best is not cheaper by more than the margin.
func (r *Router) keepLocked(cur, best Route) bool {
	m := r.cfg.SwitchMargin
	return m > 0 && float64(best.Cost) >= float64(cur.Cost)*(1-m)
}

// fallbackLocked picks, for a starved destination, the best unfeasible
// route that is still a loop-free alternate in the RFC 5286 sense:
// dist(N,D) < dist(N,S) + dist(S,D), with dist(S,D) the metric this node had
// before losing its route and dist(N,S) the neighbour's advertised distance
// to us (the link cost when it poisons it, i.e. routes to us directly;
// costs are assumed symmetric). It is used for data only — it is never
// advertised and never changes the feasibility distance — until a newer
// sequence number makes a regular route feasible again. TTL bounds any
// transient loop if the assumption fails.
func (r *Router) fallbackLocked(dst string, d *dest) Route {
	if d.lastMetric == 0 || d.lastMetric == Infinity {
		return Route{}
	}
	var best Route
	for via, l := range d.routes {
		total, hops, ok := r.usableLocked(dst, via, l)
		if !ok {
			continue
		}
		back := r.links[via].cost
		if m, ok := r.nbrSelf[via]; ok && m != Infinity && m < back {
			back = m
		}
		if uint32(l.metric) >= uint32(back)+uint32(d.lastMetric) {
			continue
		}
		rt := Route{Dst: dst, NextHop: via, Cost: total, Hops: hops, Seq: l.seq}
		if best.NextHop == "" || cmp.Or(cmp.Compare(rt.Cost, best.Cost), cmp.Compare(rt.Hops, best.Hops), cmp.Compare(rt.NextHop, best.NextHop)) < 0 {
			best = rt
		}
	}
	return best
}

func (r *Router) preferRelayLocked(dst string) bool {
	rp, ok := r.policy.(RelayPreferrer)
	return ok && rp.PreferRelay(dst)
}

// relayAlternateLocked picks, for a destination whose selected route is the
// direct link but whose policy prefers a relay, the best usable route
// through another neighbour that is feasible or a loop-free alternate
// (the fallbackLocked condition, with the current metric as dist(S,D)). It
// serves data only: selection, advertisement and the feasibility distance
// stay those of the direct route, so routing stays loop-free as before.
func (r *Router) relayAlternateLocked(dst string, d *dest) Route {
	var best Route
	for via, l := range d.routes {
		if via == dst {
			continue
		}
		total, hops, ok := r.usableLocked(dst, via, l)
		if !ok {
			continue
		}
		if !r.feasibleLocked(d, l) {
			back := r.links[via].cost
			if m, ok := r.nbrSelf[via]; ok && m != Infinity && m < back {
				back = m
			}
			if uint32(l.metric) >= uint32(back)+uint32(d.adv.Metric) {
				continue
			}
		}
		rt := Route{Dst: dst, NextHop: via, Cost: total, Hops: hops, Seq: l.seq}
		if best.NextHop == "" || cmp.Or(cmp.Compare(rt.Cost, best.Cost), cmp.Compare(rt.Hops, best.Hops), cmp.Compare(rt.NextHop, best.NextHop)) < 0 {
			best = rt
		}
	}
	return best
}

// maybeRequestLocked asks for a newer sequence number of dst, at most once
// per RequestInterval, when an unfeasible route could be used: either no
// route is selected (starvation) or an unfeasible route is cheaper than the
// selected one (after a metric increase). The request goes to the
// neighbours holding usable routes, which forward it towards dst.
func (r *Router) maybeRequestLocked(dst string, d *dest, now time.Time) {
	if !d.lastReq.IsZero() && now.Sub(d.lastReq) < r.cfg.RequestInterval {
		return
	}
	var to []string
	better := false
	for via, l := range d.routes {
		if total, _, ok := r.usableLocked(dst, via, l); ok {
			to = append(to, via)
			if d.sel != "" && total < d.adv.Metric && !r.feasibleLocked(d, l) {
				better = true
			}
		}
	}
	if len(to) == 0 || (d.sel != "" && !better) {
		return
	}
	slices.Sort(to)
	d.lastReq = now
	msg := EncodeSeqRequest(nil, SeqRequest{Dst: dst, Seq: d.fdSeq + 1, HopLimit: uint8(r.cfg.MaxHops)})
	for _, n := range to {
		r.out = append(r.out, outMsg{to: n, msg: msg})
		r.stats.SeqRequestsSent++
		r.stats.MessagesSent++
	}
}

// advertEntryLocked is what this node tells neighbour n about dst: nothing if
// policy forbids relaying n's traffic there, a retraction (poisoned reverse)
// if the route goes through n.
func (r *Router) advertEntryLocked(n, dst string, d *dest) (Entry, bool) {
	if dst == n || !r.policy.AllowRelay(n, dst) {
		return Entry{}, false
	}
	e := d.adv
	if d.sel == n {
		e.Metric, e.Hops = Infinity, 0
	}
	return e, true
}

func (r *Router) selfEntryLocked() Entry {
	return Entry{Dst: r.cfg.Self, Seq: r.seq}
}

// fullDumpLocked queues this node's whole table for neighbour n.
func (r *Router) fullDumpLocked(n string) {
	entries := []Entry{r.selfEntryLocked()}
	dsts := make([]string, 0, len(r.dests))
	for dst := range r.dests {
		dsts = append(dsts, dst)
	}
	slices.Sort(dsts)
	for _, dst := range dsts {
		if e, ok := r.advertEntryLocked(n, dst, r.dests[dst]); ok {
			entries = append(entries, e)
		}
	}
	r.queueLocked(n, entries)
}

// flushLocked queues triggered updates for every changed destination.
func (r *Router) flushLocked() {
	var dirty []string
	for dst, d := range r.dests {
		if d.dirty {
			dirty = append(dirty, dst)
			d.dirty = false
		}
	}
	if len(dirty) == 0 && !r.selfDirty {
		return
	}
	slices.Sort(dirty)
	for _, n := range r.upNeighboursLocked() {
		var entries []Entry
		if r.selfDirty {
			entries = append(entries, r.selfEntryLocked())
		}
		for _, dst := range dirty {
			if e, ok := r.advertEntryLocked(n, dst, r.dests[dst]); ok {
				entries = append(entries, e)
			}
		}
		if len(entries) > 0 {
			r.stats.TriggeredUpdates++
			r.queueLocked(n, entries)
		}
	}
	r.selfDirty = false
}

// queueLocked encodes entries into as many messages as MaxMessageLen needs.
func (r *Router) queueLocked(n string, entries []Entry) {
	for len(entries) > 0 {
		size, k := headerLen+2, 0
		for k < len(entries) && k < 0xFFFF && size+EntryLen(entries[k]) <= r.cfg.MaxMessageLen {
			size += EntryLen(entries[k])
			k++
		}
		if k == 0 {
			k = 1 // unreachable: MaxMessageLen >= minMessageLen fits any entry
		}
		r.out = append(r.out, outMsg{to: n, msg: EncodeUpdate(make([]byte, 0, size), entries[:k])})
		r.stats.MessagesSent++
		r.stats.EntriesSent += uint64(k)
		entries = entries[k:]
	}
}
