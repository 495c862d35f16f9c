//go:build !(linux && (amd64 || arm64))

package udpconn

import (
	"errors"
	"net"
	"net/netip"
)

// errNoMmsg: this build reads and writes batches through x/net's
// ReadBatch and WriteBatch, without UDP GSO or GRO.
var errNoMmsg = errors.New("udpconn: no allocation-free recvmmsg on this platform")

type mmsgReader struct{}

func newMmsgReader(*net.UDPConn, [][]byte, bool) (*mmsgReader, error) { return nil, errNoMmsg }
func (*mmsgReader) read() (int, error)                                { return 0, errNoMmsg }
func (*mmsgReader) size(int) int                                      { return 0 }
func (*mmsgReader) segment(int) int                                   { return 0 }
func (*mmsgReader) from(int) netip.AddrPort                           { return netip.AddrPort{} }

// enableGRO: no UDP_GRO on this platform.
func enableGRO(*net.UDPConn) bool { return false }

// sockInfo: no fast write path on this platform.
type sockInfo struct{}

func probeSocket(*net.UDPConn) (*sockInfo, error) { return nil, errNoMmsg }

func (c *Conn) writeFast([][]byte, netip.AddrPort) (int, error) { return 0, errNoFastWrite }
