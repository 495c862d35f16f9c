package chaos

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// NamespacePrefix starts the name of every namespace the harness creates:
// rapchaos-<pid>-<seq>-<host>. The pid lets a later run recognise namespaces
// left by a crashed one (see SweepStale).
const NamespacePrefix = "rapchaos-"

// Subnet is the harness's host network (inside 198.18.0.0/15, never routed out).
const Subnet = "198.18.0.0/24"

const netnsDir = "/run/netns"

var netSeq atomic.Int64

// onThread runs fn on a fresh OS thread that is never handed back to the Go
// scheduler: fn may switch the thread's network namespace, and the thread is
// destroyed when the goroutine ends, so no other goroutine ever runs in it.
func onThread(fn func() error) error {
	ch := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // deliberately never unlocked
		ch <- fn()
	}()
	return <-ch
}

// Network is a set of hosts, each a network namespace, joined by one bridge
// that lives in its own hub namespace. Nothing is created in the caller's
// (root) namespace, so deleting the namespaces removes every link and rule.
type Network struct {
	// Prefix is the namespace name prefix of this network (rapchaos-<pid>-<seq>).
	Prefix string
	// LogDir holds process logs; it is removed after a passing test and kept
	// (and named in the test log) after a failing one.
	LogDir string

	t      testing.TB
	hubNS  string
	hub    netns.NsHandle
	bridge int

	mu      sync.Mutex
	hosts   map[string]*Host
	order   []*Host
	procs   []*Process
	closers []func()
	closed  bool

	fwMu sync.Mutex
	fw   map[string]*hostRules
}

// Host is one namespace with one interface (eth0) on the bridge.
type Host struct {
	// Name is the short host name (auth1, pg, client, …).
	Name string
	// IP is the host's address in Subnet.
	IP net.IP
	// NSName is the namespace name, usable with `ip netns exec`.
	NSName string

	net *Network
	ns  netns.NsHandle
	// nsMu orders entering the namespace (Run, also from an HTTP
	// transport's background dial) before the teardown closes ns.
	nsMu sync.RWMutex
}

// NewNetwork creates the hub namespace and its bridge. Everything is removed
// by t.Cleanup; the cleanup fails the test when anything is left behind.
func NewNetwork(t testing.TB) (*Network, error) {
	if os.Geteuid() != 0 {
		return nil, ErrNotRoot
	}
	n := &Network{t: t, Prefix: fmt.Sprintf("%s%d-%d", NamespacePrefix, os.Getpid(), netSeq.Add(1)), hosts: map[string]*Host{}}
	logDir, err := os.MkdirTemp("", n.Prefix+"-logs-")
	if err != nil {
		return nil, err
	}
	n.LogDir = logDir
	t.Cleanup(n.teardown)
	n.hubNS = n.Prefix + "-hub"
	if n.hub, err = newNamedNS(n.hubNS); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoNamespaces, err)
	}
	h, err := netlink.NewHandleAt(n.hub)
	if err != nil {
		return nil, fmt.Errorf("%w: netlink in hub: %w", ErrNoNamespaces, err)
	}
	defer h.Close()
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br0"}}
	if err := h.LinkAdd(br); err != nil {
		return nil, fmt.Errorf("%w: bridge: %w", ErrNoNamespaces, err)
	}
	if err := h.LinkSetUp(br); err != nil {
		return nil, err
	}
	n.bridge = br.Attrs().Index
	if err := setLoUp(n.hub); err != nil {
		return nil, err
	}
	return n, nil
}

func newNamedNS(name string) (netns.NsHandle, error) {
	err := onThread(func() error {
		h, err := netns.NewNamed(name)
		if err != nil {
			return err
		}
		return h.Close()
	})
	if err != nil {
		return netns.None(), err
	}
	return netns.GetFromName(name)
}

func setLoUp(ns netns.NsHandle) error {
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return err
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err != nil {
		return err
	}
	return h.LinkSetUp(lo)
}

// AddHost creates a namespace named after host with eth0 at 198.18.0.<octet>/24
// on the bridge.
func (n *Network) AddHost(name string, octet byte) (*Host, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil, errors.New("chaos: network closed")
	}
	if _, ok := n.hosts[name]; ok {
		return nil, fmt.Errorf("chaos: host %s exists", name)
	}
	host := &Host{Name: name, IP: net.IPv4(198, 18, 0, octet).To4(), NSName: n.Prefix + "-" + name, net: n}
	ns, err := newNamedNS(host.NSName)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoNamespaces, err)
	}
	host.ns = ns
	n.hosts[name] = host
	n.order = append(n.order, host)
	hub, err := netlink.NewHandleAt(n.hub)
	if err != nil {
		return nil, err
	}
	defer hub.Close()
	hubSide := "v" + strconv.Itoa(int(octet))
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: hubSide, MasterIndex: n.bridge}, PeerName: "eth0", PeerNamespace: netlink.NsFd(int(ns))}
	if err := hub.LinkAdd(veth); err != nil {
		return nil, fmt.Errorf("%w: veth for %s: %w", ErrNoNamespaces, name, err)
	}
	hl, err := hub.LinkByName(hubSide)
	if err != nil {
		return nil, err
	}
	if hl.Attrs().MasterIndex != n.bridge {
		if err := hub.LinkSetMasterByIndex(hl, n.bridge); err != nil {
			return nil, err
		}
	}
	if err := hub.LinkSetUp(hl); err != nil {
		return nil, err
	}
	hh, err := netlink.NewHandleAt(ns)
	if err != nil {
		return nil, err
	}
	defer hh.Close()
	eth, err := hh.LinkByName("eth0")
	if err != nil {
		return nil, err
	}
	if err := hh.AddrAdd(eth, &netlink.Addr{IPNet: &net.IPNet{IP: host.IP, Mask: net.CIDRMask(24, 32)}}); err != nil {
		return nil, err
	}
	if err := hh.LinkSetUp(eth); err != nil {
		return nil, err
	}
	if err := setLoUp(ns); err != nil {
		return nil, err
	}
	return host, nil
}

// Host returns the named host or nil.
func (n *Network) Host(name string) *Host {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.hosts[name]
}

// Hosts returns every host in creation order.
func (n *Network) Hosts() []*Host {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]*Host(nil), n.order...)
}

// OnClose registers fn to run at teardown before processes are killed and
// namespaces deleted (proxies, database pools).
func (n *Network) OnClose(fn func()) {
	n.mu.Lock()
	n.closers = append(n.closers, fn)
	n.mu.Unlock()
}

// Addr returns ip:port of the host.
func (h *Host) Addr(port int) string { return net.JoinHostPort(h.IP.String(), strconv.Itoa(port)) }

// Run runs fn on a thread inside the host's namespace. Sockets created by fn
// stay in the namespace and may be used from any goroutine afterwards.
func (h *Host) Run(fn func() error) error {
	return onThread(func() error {
		h.nsMu.RLock()
		err := netns.Set(h.ns)
		h.nsMu.RUnlock()
		if err != nil {
			return fmt.Errorf("chaos: enter %s: %w", h.NSName, err)
		}
		return fn()
	})
}

// DialContext connects from inside the host's namespace. Connection failures
// are *DialError.
func (h *Host) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := h.Run(func() error {
		var err error
		c, err = (&net.Dialer{Timeout: 3 * time.Second}).DialContext(ctx, network, addr)
		return err
	})
	if err != nil {
		return nil, &DialError{Err: err}
	}
	return c, nil
}

// Listen listens inside the host's namespace.
func (h *Host) Listen(network, addr string) (net.Listener, error) {
	var l net.Listener
	err := h.Run(func() error {
		var err error
		l, err = net.Listen(network, addr)
		return err
	})
	return l, err
}

// ListenPacket opens a packet socket inside the host's namespace.
func (h *Host) ListenPacket(network, addr string) (net.PacketConn, error) {
	var l net.PacketConn
	err := h.Run(func() error {
		var err error
		l, err = net.ListenPacket(network, addr)
		return err
	})
	return l, err
}

// nsInode identifies the namespace for the process scan at teardown.
func (h *Host) nsInode() uint64 { return nsInodeOf(h.ns) }

func nsInodeOf(ns netns.NsHandle) uint64 {
	var st unix.Stat_t
	if err := unix.Fstat(int(ns), &st); err != nil {
		return 0
	}
	return st.Ino
}

// pidsInNamespaces lists processes whose network namespace is one of inodes.
func pidsInNamespaces(inodes map[uint64]string) map[int]string {
	out := map[int]string{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue // our own process: its main thread may sit in a namespace (see onThread)
		}
		link, err := os.Readlink(filepath.Join("/proc", e.Name(), "ns", "net"))
		if err != nil {
			continue
		}
		// net:[4026532xxx]
		s := strings.TrimSuffix(strings.TrimPrefix(link, "net:["), "]")
		ino, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			continue
		}
		if name, ok := inodes[ino]; ok {
			comm, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
			out[pid] = name + ":" + strings.TrimSpace(string(comm))
		}
	}
	return out
}

// teardown stops everything and verifies that nothing is left behind.
func (n *Network) teardown() {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return
	}
	n.closed = true
	closers := n.closers
	procs := n.procs
	hosts := n.order
	n.mu.Unlock()
	for i := len(closers) - 1; i >= 0; i-- {
		closers[i]()
	}
	for _, p := range procs {
		p.kill()
	}
	inodes := map[uint64]string{}
	for _, h := range hosts {
		if ino := h.nsInode(); ino != 0 {
			inodes[ino] = h.NSName
		}
	}
	if ino := nsInodeOf(n.hub); ino != 0 {
		inodes[ino] = n.hubNS
	}
	// Anything still running in our namespaces (e.g. PostgreSQL children that
	// outlived pg_ctl stop) is killed and reported.
	var problems []string
	deadline := time.Now().Add(10 * time.Second)
	for {
		left := pidsInNamespaces(inodes)
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			for pid, what := range left {
				problems = append(problems, fmt.Sprintf("process %d (%s) survives SIGKILL", pid, what))
			}
			break
		}
		for pid := range left {
			_ = syscall.Kill(pid, syscall.SIGCONT)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, h := range hosts {
		h.nsMu.Lock()
		_ = h.ns.Close()
		h.nsMu.Unlock()
		if err := netns.DeleteNamed(h.NSName); err != nil && !errors.Is(err, os.ErrNotExist) {
			problems = append(problems, fmt.Sprintf("delete namespace %s: %v", h.NSName, err))
		}
	}
	_ = n.hub.Close()
	if err := netns.DeleteNamed(n.hubNS); err != nil && !errors.Is(err, os.ErrNotExist) {
		problems = append(problems, fmt.Sprintf("delete namespace %s: %v", n.hubNS, err))
	}
	if left := Leftovers(n.Prefix); len(left) > 0 {
		problems = append(problems, left...)
	}
	for _, p := range procs {
		if p.alive() {
			problems = append(problems, fmt.Sprintf("process %s (pid %d) still alive", p.Name, p.Pid()))
		}
	}
	if len(problems) > 0 {
		n.t.Errorf("%v: %s", ErrLeftovers, strings.Join(problems, "; "))
	}
	if n.t.Failed() {
		n.t.Logf("process logs kept in %s", n.LogDir)
		for _, p := range procs {
			n.t.Logf("--- tail of %s (%s):\n%s", p.Name, p.LogPath, tailFile(p.LogPath, 40))
		}
	} else {
		_ = os.RemoveAll(n.LogDir)
	}
}

// Leftovers lists namespaces whose name starts with prefix and links in the
// caller's namespace named like the harness's (none are ever created there).
func Leftovers(prefix string) []string {
	var out []string
	ents, _ := os.ReadDir(netnsDir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix) {
			out = append(out, "namespace "+e.Name()+" left")
		}
	}
	links, _ := netlink.LinkList()
	for _, l := range links {
		if strings.HasPrefix(l.Attrs().Name, "rapchaos") {
			out = append(out, "link "+l.Attrs().Name+" left in the root namespace")
		}
	}
	sort.Strings(out)
	return out
}

// SweepStale removes namespaces left by harness processes that no longer run
// (a test binary killed by a timeout cannot run its cleanups). Namespaces of
// live processes — other test binaries running now — are not touched.
func SweepStale() []string {
	var removed []string
	ents, _ := os.ReadDir(netnsDir)
	for _, e := range ents {
		name := e.Name()
		if !strings.HasPrefix(name, NamespacePrefix) {
			continue
		}
		rest := strings.TrimPrefix(name, NamespacePrefix)
		pidStr, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidStr)
		if err != nil || pid == os.Getpid() || syscall.Kill(pid, 0) == nil {
			continue
		}
		if h, err := netns.GetFromName(name); err == nil {
			ino := nsInodeOf(h)
			_ = h.Close()
			for p := range pidsInNamespaces(map[uint64]string{ino: name}) {
				_ = syscall.Kill(p, syscall.SIGKILL)
			}
		}
		if netns.DeleteNamed(name) == nil {
			removed = append(removed, name)
		}
	}
	return removed
}

func tailFile(path string, lines int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	ls := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	return strings.Join(ls, "\n")
}
