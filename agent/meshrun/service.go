package meshrun

import (
	"github.com/rap-fabric/core/mesh/e2e"
	"github.com/rap-fabric/core/mesh/qos"
)

// DialService opens an end-to-end flow to dst's named service (for example
// a VPN tunnel's "vpn/<connection-id>"): relays on the path see only
// ciphertext. The flow is usable at once; messages sent before the
// handshake completes are queued.
func (n *Node) DialService(dst, service string) (*e2e.Conn, error) {
	return n.f.DialService(dst, service)
}

// DialServiceClass is DialService for a flow whose frames carry QoS class
// class both ways: every link on the path queues them in that class when it
// is backed up.
func (n *Node) DialServiceClass(dst, service string, class qos.Class) (*e2e.Conn, error) {
	return n.f.DialServiceClass(dst, service, class)
}

// HandleService registers h for inbound flows dialled for service; h runs
// on the mesh's receive goroutine and must not block (see e2e.Handler).
func (n *Node) HandleService(service string, h e2e.Handler) { n.f.Handle(service, h) }

// UnhandleService removes the handler registered for service.
func (n *Node) UnhandleService(service string) { n.f.Unhandle(service) }
