// Package meshtransport carries a VPN connection's IP packets between the
// connector and the exit over the mesh's end-to-end sealed flows
// (mesh/e2e): one flow per connection, dialled by the connector for the
// service "vpn/<connection-id>" on the exit node. Every packet is one
// message sealed under the flow's Noise session; relays on the path route
// the frame by its clear header and never see the packet.
//
// Connector and Exit implement tunnel.Transport. Received packets are
// copied once, from the mesh's receive goroutine into a fixed ring of
// preallocated buffers; Recv hands them out without allocating. A full
// ring drops the packet (counted) instead of blocking the mesh.
//
// The package follows, it does not decide: the agent's lease logic tells
// a Connector which node is the exit (SetExit) and an Exit which nodes are
// the connection's connectors (SetConnectors).
package meshtransport
