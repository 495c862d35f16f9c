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
// and must not verify snapshots. Gossip (mesh/gossip) runs when the
// directory carries the cluster's gossip key and peer identity keys: this
// node's record is signed with its identity key, received records are
// verified against the directory's identity keys, and gossip only proposes
// endpoints and RTTs to the link manager — it never authorizes. EchoStream
// measures paths, loss and duplicates of a numbered stream (failover drills).
package meshrun
