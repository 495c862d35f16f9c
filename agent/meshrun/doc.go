// Package meshrun runs the mesh of one cluster membership inside the node
// agent: one UDP socket and mesh/link Manager (Noise channels authorized by
// the signed peer directory), a mesh/routing Router fed by the link probes
// (cost from RTT and loss, up/down from the probe verdict), and a mesh/e2e
// Forwarder with the synthetic echo and probe services on top.
//
// The caller (agent/runtime) verifies snapshots and hands this package the
// resulting Directory (FromSnapshot converts a verified snapshot.Body); peers
// revoked by a newer directory are torn down before Update returns. The
// package decides no authorization of its own, never talks to authorities
// and must not verify snapshots. Gossip (mesh/gossip) is not started: the
// signed directory does not carry the peers' Ed25519 identity keys that
// gossip records are verified against, so the mesh runs link-only with the
// endpoints of the directory.
package meshrun
