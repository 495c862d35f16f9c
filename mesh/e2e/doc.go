// Package e2e owns end-to-end encryption between a source and a destination
// node across relays, and the Forwarder that glues it to the routing engine.
//
// A frame carries a routing header in clear — {src, dst, ttl, flow id} — and
// a payload sealed under a second Noise session (Noise_IK_25519_ChaChaPoly_BLAKE2s,
// prologue binding the cluster id, "e2e", src, dst and flow id) that only the
// two end nodes hold. Data frames use explicit 64-bit counters as AEAD
// nonces, a sliding replay window (channel.ReplayWindow) and the header
// (everything but the TTL) as associated data, so a relay can neither read a
// payload nor redirect it undetected. A relay only checks policy, decrements
// the TTL (dropping at zero) and asks the router for the next hop.
//
// Service adapters use Dial / DialService and Accept / Handle and get a
// bidirectional message Conn; they never see or choose routes. A synthetic
// echo service (ServeEcho) and a path/RTT probe (Probe, StartProbe) are built
// on top.
//
// The package does no I/O of its own and starts no goroutines: frames leave
// through Config.Send (the hop-by-hop link to a neighbour, itself encrypted
// by mesh/channel) and arrive through HandleFrame; handshake retries run in
// Tick. It must not choose routes (Config.Routes does), must not authorize
// nodes (Config.PeerKey comes from the signed peer directory) and must not
// look inside payloads it relays.
package e2e
