// Package routing owns the Fabric Routing Engine's route computation: a
// policy-aware distance-vector protocol run by one Router per node over the
// node's authorized links.
//
// Each Router learns destinations and their costs only from its neighbours'
// advertisements (never the whole graph). The protocol is DSDV/Babel-like:
// destinations originate sequence numbers, a node keeps a feasibility
// distance per destination and accepts a route only if it is strictly newer
// or strictly shorter than anything it has advertised (loop freedom, no
// count-to-infinity), split horizon with poisoned reverse, a hop bound
// (MaxHops, 16 by default, beyond which a destination is unreachable),
// triggered updates on change plus periodic refresh, route timeout and
// garbage collection, and sequence-number requests to recover from starvation.
// Every destination keeps the ordered list of feasible alternates, so when a
// link is reported down the next route is used at once, and a direct link
// that comes up replaces a relayed route as soon as the neighbour advertises
// itself.
//
// A Policy supplied by the caller decides which destinations may be reached,
// via which neighbours, and for whom this node relays; a route the policy
// forbids is never installed nor advertised.
//
// The package is pure logic: time comes from Config.Clock, messages leave
// through Config.Send and arrive through HandleMessage, and timers run only
// when the caller calls Tick. It opens no sockets, starts no goroutines,
// does not measure links (the link manager reports cost and up/down through
// SetLink) and does not authorize neighbours (only links the caller declares
// are used). It must not carry or inspect user traffic (see mesh/e2e).
package routing
