//go:build linux && (amd64 || arm64)

package udpconn

// recvmmsg without allocation. x/net's ReadBatch builds a *net.UDPAddr (and
// its IP slice) for every datagram: 96 % of the allocations of a batched
// Noise receiver. This reader keeps its message headers, iovecs and source
// address buffers for the life of the read loop and decodes each source
// address into a netip.AddrPort in place.
//
// With UDP_GRO on (newMmsgReader's gro), the kernel may hand one read
// several datagrams of one flow, coalesced, with their segment size in a
// control message (segment); the read loop splits them.

import (
	"encoding/binary"
	"net"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// mmsghdr is struct mmsghdr of <sys/socket.h> on 64-bit Linux.
type mmsghdr struct {
	hdr syscall.Msghdr
	n   uint32
	_   [4]byte
}

// mmsgReader reads up to len(bufs) datagrams per recvmmsg call.
type mmsgReader struct {
	rc    syscall.RawConn
	hdrs  []mmsghdr
	iovs  []syscall.Iovec
	names []syscall.RawSockaddrInet6 // large enough for either family
	bufs  [][]byte
	ctrl  []byte                // groCtrlSpace bytes per message; nil without UDP_GRO
	call  func(fd uintptr) bool // r.recvmmsg
	got   int
	errno syscall.Errno
}

// groCtrlSpace is CMSG_SPACE(sizeof(int)) on 64-bit Linux: room for the
// UDP_GRO control message of one read.
const groCtrlSpace = unix.SizeofCmsghdr + 8

// newMmsgReader makes a reader into bufs. gro says the socket has UDP_GRO
// on (enableGRO): the reader then takes each read's segment size from its
// control message.
func newMmsgReader(u *net.UDPConn, bufs [][]byte, gro bool) (*mmsgReader, error) {
	rc, err := u.SyscallConn()
	if err != nil {
		return nil, err
	}
	r := &mmsgReader{rc: rc, hdrs: make([]mmsghdr, len(bufs)), iovs: make([]syscall.Iovec, len(bufs)),
		names: make([]syscall.RawSockaddrInet6, len(bufs)), bufs: bufs}
	if gro {
		r.ctrl = make([]byte, len(bufs)*groCtrlSpace)
	}
	r.call = r.recvmmsg
	for i := range bufs {
		r.iovs[i].Base = &bufs[i][0]
		r.iovs[i].SetLen(len(bufs[i]))
		r.hdrs[i].hdr.Name = (*byte)(unsafe.Pointer(&r.names[i]))
		r.hdrs[i].hdr.Iov = &r.iovs[i]
		r.hdrs[i].hdr.Iovlen = 1
		if r.ctrl != nil {
			r.hdrs[i].hdr.Control = &r.ctrl[i*groCtrlSpace]
		}
	}
	return r, nil
}

// enableGRO turns UDP_GRO on for u; false where the kernel refuses (before
// 5.0). Only readers that split coalesced reads (newMmsgReader with gro)
// may then read u, into buffers of maxDatagram bytes.
func enableGRO(u *net.UDPConn) bool {
	rc, err := u.SyscallConn()
	if err != nil {
		return false
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_UDP, unix.UDP_GRO, 1)
	}); err != nil {
		return false
	}
	return serr == nil
}

// read blocks until at least one datagram is there and returns how many
// were read into bufs.
func (r *mmsgReader) read() (int, error) {
	for i := range r.hdrs {
		r.hdrs[i].hdr.Namelen = syscall.SizeofSockaddrInet6
		r.hdrs[i].hdr.Flags = 0
		if r.ctrl != nil {
			r.hdrs[i].hdr.SetControllen(groCtrlSpace)
		}
		r.hdrs[i].n = 0
	}
	r.got, r.errno = 0, 0
	if err := r.rc.Read(r.call); err != nil {
		return 0, err
	}
	if r.errno != 0 {
		return 0, r.errno
	}
	return r.got, nil
}

// recvmmsg is the RawConn.Read callback (bound once as r.call: a closure
// made per read would be an allocation per batch).
func (r *mmsgReader) recvmmsg(fd uintptr) bool {
	var ok bool
	r.got, r.errno, ok = mmsgCall(syscall.SYS_RECVMMSG, fd, r.hdrs)
	return ok
}

// mmsgCall makes the recvmmsg or sendmmsg system call trap on hdrs, again
// after EINTR. ok is false after EAGAIN: the RawConn callback then returns
// false and is called again once the socket is ready.
func mmsgCall(trap, fd uintptr, hdrs []mmsghdr) (n int, errno syscall.Errno, ok bool) {
	for {
		r1, _, e := syscall.Syscall6(trap, fd, uintptr(unsafe.Pointer(&hdrs[0])), uintptr(len(hdrs)), 0, 0, 0)
		switch e {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return 0, 0, false
		}
		return int(r1), e, true
	}
}

// size is the length of datagram i of the last read.
func (r *mmsgReader) size(i int) int { return int(r.hdrs[i].n) }

// segment is the segment size of read i when the kernel coalesced several
// datagrams into it (UDP_GRO), else 0.
func (r *mmsgReader) segment(i int) int {
	if r.ctrl == nil || r.hdrs[i].hdr.Controllen < unix.SizeofCmsghdr+4 {
		return 0
	}
	c := r.ctrl[i*groCtrlSpace:]
	h := (*unix.Cmsghdr)(unsafe.Pointer(&c[0]))
	if h.Level != unix.SOL_UDP || h.Type != unix.UDP_GRO || h.Len < unix.SizeofCmsghdr+4 {
		return 0
	}
	return int(*(*int32)(unsafe.Pointer(&c[unix.SizeofCmsghdr])))
}

// from is the source of datagram i of the last read (IPv4-mapped IPv6
// addresses unmapped, as the other read paths do).
func (r *mmsgReader) from(i int) netip.AddrPort {
	sa := &r.names[i]
	switch sa.Family {
	case syscall.AF_INET:
		in := (*syscall.RawSockaddrInet4)(unsafe.Pointer(sa))
		port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&in.Port))[:])
		return netip.AddrPortFrom(netip.AddrFrom4(in.Addr), port)
	case syscall.AF_INET6:
		port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:])
		a := netip.AddrFrom16(sa.Addr).Unmap()
		if sa.Scope_id != 0 && a.Is6() {
			if ifi, err := net.InterfaceByIndex(int(sa.Scope_id)); err == nil {
				a = a.WithZone(ifi.Name)
			}
		}
		return netip.AddrPortFrom(a, port)
	}
	return netip.AddrPort{}
}
