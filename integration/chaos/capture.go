package chaos

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Capture records what crosses one interface of a host (an AF_PACKET raw
// socket inside the host's namespace, both directions) and looks for
// byte patterns in every frame, so a drill can tell ciphertext from
// plaintext on the wire without tcpdump.
type Capture struct {
	fd       int
	patterns [][]byte
	done     chan struct{}
	wg       sync.WaitGroup

	mu     sync.Mutex
	frames uint64
	bytes  uint64
	udp    map[uint16]uint64 // UDP payload bytes by port (either side)
	found  map[int]uint64    // pattern index → frames containing it
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// StartCapture starts capturing on ifname inside h, counting frames that
// contain any of patterns.
func (h *Host) StartCapture(ifname string, patterns ...[]byte) (*Capture, error) {
	c := &Capture{fd: -1, patterns: patterns, done: make(chan struct{}), udp: map[uint16]uint64{}, found: map[int]uint64{}}
	err := h.Run(func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			return fmt.Errorf("AF_PACKET socket: %w", err)
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
			unix.Close(fd)
			return err
		}
		tv := unix.NsecToTimeval((100 * time.Millisecond).Nanoseconds())
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			unix.Close(fd)
			return err
		}
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 8<<20)
		c.fd = fd
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("chaos: capture on %s/%s: %w", h.Name, ifname, err)
	}
	c.wg.Add(1)
	go c.loop()
	return c, nil
}

func (c *Capture) loop() {
	defer c.wg.Done()
	buf := make([]byte, 1<<16+256)
	for {
		select {
		case <-c.done:
			return
		default:
		}
		n, _, err := unix.Recvfrom(c.fd, buf, 0)
		if err != nil || n <= 0 {
			continue
		}
		c.record(buf[:n])
	}
}

func (c *Capture) record(f []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.frames++
	c.bytes += uint64(len(f))
	for i, p := range c.patterns {
		if bytes.Contains(f, p) {
			c.found[i]++
		}
	}
	// Ethernet (14) + IPv4 + UDP: count UDP payload by port.
	if len(f) >= 14+20+8 && binary.BigEndian.Uint16(f[12:14]) == unix.ETH_P_IP && f[14+9] == unix.IPPROTO_UDP {
		ihl := int(f[14]&0x0f) * 4
		if len(f) >= 14+ihl+8 {
			u := f[14+ihl:]
			pl := uint64(len(u) - 8)
			c.udp[binary.BigEndian.Uint16(u[0:2])] += pl
			if dp := binary.BigEndian.Uint16(u[2:4]); dp != binary.BigEndian.Uint16(u[0:2]) {
				c.udp[dp] += pl
			}
		}
	}
}

// Stop ends the capture.
func (c *Capture) Stop() {
	select {
	case <-c.done:
		return
	default:
	}
	close(c.done)
	c.wg.Wait()
	unix.Close(c.fd)
}

// CaptureStats is what a capture saw.
type CaptureStats struct {
	Frames, Bytes uint64
	// UDPBytes is UDP payload bytes by port (source or destination).
	UDPBytes map[uint16]uint64
	// Found counts frames containing each pattern, by pattern index.
	Found map[int]uint64
}

// Stats returns what the capture saw so far.
func (c *Capture) Stats() CaptureStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := CaptureStats{Frames: c.frames, Bytes: c.bytes, UDPBytes: map[uint16]uint64{}, Found: map[int]uint64{}}
	for k, v := range c.udp {
		s.UDPBytes[k] = v
	}
	for k, v := range c.found {
		s.Found[k] = v
	}
	return s
}
