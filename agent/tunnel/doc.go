// Package tunnel is the data path of one VPN connection on one node: it
// brings up a TUN interface (github.com/vishvananda/netlink: address, MTU,
// routes for the connection's prefixes), reads IP packets from it, enforces
// the connection's route policy on every packet (a packet outside the
// policy is dropped and counted by reason) and hands the rest to a
// Transport that carries them to the peer end; packets from the peer are
// checked the same way and written to the TUN. At the exit, forwarding and
// masquerade toward the remote network are set up through
// github.com/google/nftables, and only where the route policy says so.
//
// Everything the package creates — the TUN link (its routes go with it)
// and the nftables table — is named by a fixed prefix (DefaultPrefix) plus
// a short form of the connection id, and removed by Stop; Cleanup removes
// leftovers of a previous run by that prefix and is meant to be called when
// the agent starts. A Tunnel decides nothing about leases or assignments:
// the agent's lease logic starts one when this node must carry the
// connection and stops it when it must not (see Start, Stop).
//
// Linux only; it needs CAP_NET_ADMIN in the target network namespace.
package tunnel
