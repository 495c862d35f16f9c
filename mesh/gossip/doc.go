// Package gossip owns one node's membership gossip in one cluster: a
// hashicorp/memberlist instance encrypted with the cluster's gossip key, whose
// node metadata is a compact record {node id, cluster id, mesh UDP endpoints,
// region, load, incarnation} signed with the node's Ed25519 identity key.
//
// Receivers verify every record against a Directory (the signed peer
// directory of the cluster snapshot) and drop anything that does not verify,
// is revoked, belongs to another cluster, names another node than the
// memberlist member carrying it, or is older than a record already seen.
// What survives is offered as Candidates, with round-trip times measured by
// memberlist's probes.
//
// Gossip only PROPOSES: candidates, endpoints, load and RTTs. It must not
// authorize anything (memberlist is not Byzantine-tolerant): it never adds a
// peer to the directory, never opens a channel, and a forged, replayed or
// garbage record can at most be ignored. Channel authorization lives in the
// signed directory and mesh/channel's Authorize hook (see mesh/link).
package gossip
