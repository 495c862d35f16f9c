//go:build linux && (amd64 || arm64)

package udpconn

// sendmmsg with UDP generic segmentation offload (GSO). WriteBatch sends
// datagrams to one destination; runs of equal-sized datagrams (the last of
// a run may be shorter) go out as one message with a UDP_SEGMENT control
// message: the kernel (or the NIC) cuts it into datagrams, so a run costs
// one trip through the stack instead of one per datagram. Each datagram of
// a run is its own iovec, so nothing is copied. Where the kernel lacks
// UDP_SEGMENT (before 4.18) the Conn never tries. A GSO send refused as
// unsupported goes out again one datagram per message, still with
// sendmmsg; EIO (a device without checksum offload) and EOPNOTSUPP turn GSO
// off for the Conn at once, EINVAL (which also answers one batch the kernel
// cannot segment, say a segment above the path MTU) after gsoRefusals. A
// reader with UDP_GRO (mmsg_linux.go) receives such runs coalesced; a
// socket without it receives them as separate datagrams.

import (
	"encoding/binary"
	"net"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// maxGSOSegments is the kernel's UDP_MAX_SEGMENTS of older kernels (later
// ones allow 128).
const maxGSOSegments = 64

// maxGSOBytes bounds a run's bytes: a UDP datagram over IPv4 carries at
// most 65,507.
const maxGSOBytes = 65507

// gsoCtrlSpace is CMSG_SPACE(sizeof(uint16)) on 64-bit Linux.
const gsoCtrlSpace = unix.SizeofCmsghdr + 8

// mmsgWriter is the state of one WriteBatch call, pooled by its Conn.
type mmsgWriter struct {
	hdrs  []mmsghdr
	iovs  []syscall.Iovec
	ctrl  []byte
	segs  []int // datagrams per message
	name  syscall.RawSockaddrInet6
	fd    func(fd uintptr) bool // w.sendmmsg
	off   int                   // next message to send
	cnt   int                   // messages built
	sent  int                   // messages the last system call sent
	errno syscall.Errno
}

// sockInfo is what a Conn learns once about its socket for fast writes.
type sockInfo struct {
	rc  syscall.RawConn
	v6  bool // AF_INET6 (possibly dual-stack)
	gso bool // the kernel knows UDP_SEGMENT
}

// probeSocket reports the socket's family and whether the kernel has GSO.
func probeSocket(u *net.UDPConn) (*sockInfo, error) {
	rc, err := u.SyscallConn()
	if err != nil {
		return nil, err
	}
	si := &sockInfo{rc: rc}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		var sa unix.Sockaddr
		sa, serr = unix.Getsockname(int(fd))
		if serr != nil {
			return
		}
		_, si.v6 = sa.(*unix.SockaddrInet6)
		_, gerr := unix.GetsockoptInt(int(fd), unix.SOL_UDP, unix.UDP_SEGMENT)
		si.gso = gerr == nil
	}); err != nil {
		return nil, err
	}
	if serr != nil {
		return nil, serr
	}
	return si, nil
}

// setDest encodes to for the socket's family.
func (w *mmsgWriter) setDest(si *sockInfo, to netip.AddrPort) (uint32, error) {
	a := to.Addr()
	if a.Zone() != "" || !a.IsValid() {
		return 0, errNoFastWrite
	}
	w.name = syscall.RawSockaddrInet6{}
	port := (*[2]byte)(unsafe.Pointer(&w.name.Port))
	if si.v6 {
		w.name.Family = syscall.AF_INET6
		binary.BigEndian.PutUint16(port[:], to.Port())
		w.name.Addr = a.As16() // IPv4 as IPv4-mapped IPv6
		return syscall.SizeofSockaddrInet6, nil
	}
	a = a.Unmap()
	if !a.Is4() {
		return 0, errNoFastWrite
	}
	in := (*syscall.RawSockaddrInet4)(unsafe.Pointer(&w.name))
	in.Family = syscall.AF_INET
	binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&in.Port))[:], to.Port())
	in.Addr = a.As4()
	return syscall.SizeofSockaddrInet4, nil
}

// build lays pkts out as messages: with gso, runs of equal-sized datagrams
// become one message each.
func (w *mmsgWriter) build(pkts [][]byte, namelen uint32, gso bool) {
	if cap(w.hdrs) < len(pkts) {
		w.hdrs = make([]mmsghdr, len(pkts))
		w.iovs = make([]syscall.Iovec, len(pkts))
		w.ctrl = make([]byte, len(pkts)*gsoCtrlSpace)
		w.segs = make([]int, len(pkts))
	}
	w.hdrs, w.iovs, w.segs = w.hdrs[:len(pkts)], w.iovs[:len(pkts)], w.segs[:len(pkts)]
	for i, p := range pkts {
		w.iovs[i] = syscall.Iovec{}
		if len(p) > 0 {
			w.iovs[i].Base = &p[0]
			w.iovs[i].SetLen(len(p))
		}
	}
	w.cnt, w.off = 0, 0
	for i := 0; i < len(pkts); {
		j, total, seg := i+1, len(pkts[i]), len(pkts[i])
		if gso && seg > 0 {
			for j < len(pkts) && j-i < maxGSOSegments && total+len(pkts[j]) <= maxGSOBytes && len(pkts[j]) > 0 && len(pkts[j]) <= seg {
				total += len(pkts[j])
				j++
				if len(pkts[j-1]) < seg {
					break // a shorter datagram ends a run
				}
			}
		}
		h := &w.hdrs[w.cnt]
		*h = mmsghdr{}
		h.hdr.Name = (*byte)(unsafe.Pointer(&w.name))
		h.hdr.Namelen = namelen
		h.hdr.Iov = &w.iovs[i]
		h.hdr.Iovlen = uint64(j - i)
		if j-i > 1 {
			c := w.ctrl[w.cnt*gsoCtrlSpace : (w.cnt+1)*gsoCtrlSpace]
			clear(c)
			ch := (*unix.Cmsghdr)(unsafe.Pointer(&c[0]))
			ch.Level, ch.Type = unix.SOL_UDP, unix.UDP_SEGMENT
			ch.SetLen(unix.CmsgLen(2))
			*(*uint16)(unsafe.Pointer(&c[unix.SizeofCmsghdr])) = uint16(seg)
			h.hdr.Control = &c[0]
			h.hdr.SetControllen(gsoCtrlSpace)
		}
		w.segs[w.cnt] = j - i
		w.cnt++
		i = j
	}
}

// sendmmsg is the RawConn.Write callback (bound once as w.fd).
func (w *mmsgWriter) sendmmsg(fd uintptr) bool {
	var ok bool
	w.sent, w.errno, ok = mmsgCall(unix.SYS_SENDMMSG, fd, w.hdrs[w.off:w.cnt])
	return ok
}

// gsoRefusals is how many GSO sends the kernel may refuse with EINVAL
// before a Conn stops trying: EINVAL also answers one batch it cannot
// segment (a segment larger than the path MTU allows), which is no reason
// to give up on the rest.
const gsoRefusals = 8

// gsoRefused reports whether a GSO send's error means "send this without
// GSO", and turns GSO off for the Conn when it will not work here at all
// (EIO: a device without checksum offload; no UDP_SEGMENT; repeated EINVAL).
func (c *Conn) gsoRefused(e syscall.Errno) bool {
	switch e {
	case syscall.EIO, syscall.EOPNOTSUPP, syscall.ENOPROTOOPT:
		c.gsoOff.Store(true)
		return true
	case syscall.EINVAL:
		if c.gsoEinval.Add(1) >= gsoRefusals {
			c.gsoOff.Store(true)
		}
		return true
	}
	return false
}

// writeFast sends pkts to `to` with sendmmsg (and GSO while the Conn has
// it). It returns the datagrams sent and the first error; errNoFastWrite
// before anything was sent means: use the portable path.
func (c *Conn) writeFast(pkts [][]byte, to netip.AddrPort) (int, error) {
	si := c.sock
	if si == nil {
		return 0, errNoFastWrite
	}
	w, _ := c.writers.Get().(*mmsgWriter)
	if w == nil {
		w = &mmsgWriter{}
		w.fd = w.sendmmsg
	}
	defer func() {
		for i := range w.iovs {
			w.iovs[i].Base = nil // do not keep callers' buffers
		}
		c.writers.Put(w)
	}()
	namelen, err := w.setDest(si, to)
	if err != nil {
		return 0, err
	}
	gso := si.gso && !c.opts.DisableOffload && !c.gsoOff.Load()
	w.build(pkts, namelen, gso)
	done := 0 // datagrams sent; w holds pkts[done:] from w.off on
	for w.off < w.cnt {
		if err := si.rc.Write(w.fd); err != nil {
			return done, err
		}
		if w.errno != 0 {
			if gso && w.segs[w.off] > 1 && c.gsoRefused(w.errno) {
				// Send the rest one datagram per message.
				gso = false
				w.build(pkts[done:], namelen, false)
				continue
			}
			return done, w.errno
		}
		if w.sent <= 0 {
			return done, syscall.EIO
		}
		for k := w.off; k < w.off+w.sent; k++ {
			done += w.segs[k]
			if w.segs[k] > 1 {
				c.gsoSends.Add(1)
			}
		}
		w.off += w.sent
	}
	return done, nil
}
