// Package channel owns the mesh's encrypted point-to-point channels:
// Noise_IK_25519_ChaChaPoly_BLAKE2s handshakes bound to a cluster id, the
// session lifecycle (idle → handshaking → established → rekeying → closed,
// with backoff reconnect), explicit-counter transport encryption with a
// sliding replay window, handshake rate limits, and peer authorization and
// revocation hooks.
//
// It is a pure state machine. It does no I/O, starts no goroutines, and reads
// neither the wall clock nor the system random source on its own: time comes
// from Config.Clock, randomness from Config.Rand, packets leave through
// Config.Send (or are returned by Seal) and arrive through HandlePacket.
// Timers advance only when the integrator calls Tick. It must not decide who
// is a legitimate peer (Config.Authorize does, from the signed peer directory)
// and it must not open sockets (see mesh/udpconn).
//
// Usage loop:
//
//  1. NewEndpoint(cfg) with the node's X25519 private key and cluster id.
//  2. AddPeer(key, addr, opts) for peers this node should dial.
//  3. Feed every received datagram to HandlePacket; plaintext arrives via
//     Config.Deliver.
//  4. Send with Seal (caller buffer, zero allocations) or Send.
//  5. Call Tick every few hundred milliseconds: rekey, retries with backoff,
//     keepalives and expiry happen there.
//  6. RevokePeer when the signed revocation list names a peer.
//
// After the handshake, flynn/noise is used only to derive the two transport
// keys; its internal nonce is never driven by the wire. Each data packet
// carries an explicit 64-bit counter; the AEAD nonce is the 12 header bytes
// `receiver index ‖ counter`, unique per key because a session key is used
// with exactly one receiver index and the counter never repeats.
package channel
