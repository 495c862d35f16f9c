// Package qos orders the traffic queued on one mesh link by QoS class.
//
// The classes are the traffic classes of the cluster's QoS policies
// (control, interactive, streaming, bulk, best-effort; see
// authority.TrafficClasses). A Queue holds the frames waiting for one link:
// the control class is served strictly first (routing messages, which keep
// the mesh converging however loaded a link is), and the other classes share
// what is left by deficit round robin with weights 8/4/2/1 by default, so a
// backlog of bulk transfers delays an interactive frame by at most a few
// frames and every non-empty class is served within one round (no
// starvation). A Queue is bounded in frames and bytes: when full, an
// arriving frame evicts the newest frame of the lowest non-empty class below
// its own, or is refused.
//
// A Link puts a Queue in front of a send function: while the link is idle a
// frame goes straight through (no copy, no allocation); while it is backed
// up — another goroutine is sending on it, or its optional pacing rate is
// exhausted — frames are queued and the goroutine that holds the link (or a
// pacing timer) sends them in class order.
//
// The class travels in the end-to-end frame header (mesh/e2e), so every
// relay on a path queues a frame in the class its source chose. The package
// knows nothing of frames, peers or sockets.
package qos
