// Package link is the node-local mesh link runtime. A Manager owns one
// channel.Endpoint per cluster on a single UDP socket (mesh/udpconn) and ties
// together:
//
//   - the signed peer directory (UpdateDirectory): the ONLY source of
//     authorization. Handshakes, in and out, are allowed only for noise keys
//     in the current directory and not revoked; peers removed or revoked by an
//     update are torn down synchronously, before UpdateDirectory returns;
//   - gossip candidates (Config.Candidates, from mesh/gossip): proposed
//     endpoints, load and RTTs for peers already in the directory; gossip
//     about anyone else is ignored;
//   - peers.Selector scoring into active / warm / cold sets: active peers are
//     persistent channels (AddPeer + Connect), warm peers are known but not
//     kept up, peers dropped to cold are closed;
//   - link probes over the channels (RTT and loss estimates), Tick of every
//     endpoint, and Status/Reports for `rap-node-agent status` and the
//     control plane's link inventory (mesh_links).
//
// Upper layers (routing) use Send(peerNodeID, payload) and Config.Deliver.
//
// Time comes from Config.Clock and Config.NewTicker, randomness from
// Config.Rand, the network from Config.PacketConn, so tests run it on
// mesh/netsim deterministically. The package must not decide who is a
// legitimate peer beyond applying the signed directory handed to it, must not
// verify snapshots (its caller does), and must not route: it only knows
// direct links.
package link
