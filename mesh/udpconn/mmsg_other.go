//go:build !(linux && (amd64 || arm64))

package udpconn

import (
	"errors"
	"net"
	"net/netip"
)

// errNoMmsg: this build reads batches through x/net's ReadBatch.
var errNoMmsg = errors.New("udpconn: no allocation-free recvmmsg on this platform")

type mmsgReader struct{}

func newMmsgReader(*net.UDPConn, [][]byte) (*mmsgReader, error) { return nil, errNoMmsg }
func (*mmsgReader) read() (int, error)                          { return 0, errNoMmsg }
func (*mmsgReader) size(int) int                                { return 0 }
func (*mmsgReader) from(int) netip.AddrPort                     { return netip.AddrPort{} }
