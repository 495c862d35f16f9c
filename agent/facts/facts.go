// Package facts gathers the host facts a node agent reports (hostname, OS,
// kernel, CPU, memory, network interfaces, agent version) and derives the
// node's capabilities: the explicit list from the agent's configuration plus
// a few conservatively detected ones.
//
// Capabilities are an upper bound of what the host can do, never a
// permission: roles are granted by the authority. Detection therefore only
// claims what it can observe locally and cheaply:
//   - can_route_mesh: at least one interface that is up, not loopback, and has
//     a global-unicast address (private ranges count), and a UDP socket can be
//     opened on this host;
//   - can_run_vpn_connector and can_run_vpn_exit: /dev/net/tun exists as a
//     character device and the agent holds CAP_NET_ADMIN (effective set).
//
// Everything else (ingress reachability, internet or private-network egress,
// workers, caches, storage) needs knowledge the host cannot prove to itself
// and comes only from configuration. Options.Deny removes detected
// capabilities.
//
// The package only reads local state (/proc, uname, netlink, one UDP socket
// bound to an ephemeral port and closed at once); it sends nothing on the
// network and writes nothing.
package facts

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/rap-fabric/core/domain"
)

// ErrUnknownCapability means the configuration names a capability that
// domain does not know.
var ErrUnknownCapability = errors.New("unknown capability")

// Size bounds of a Facts value.
const (
	DefaultMaxInterfaces     = 32
	DefaultMaxAddresses      = 16
	maxNotes                 = 16
	maxStringLen             = 256
	capNetAdminBit           = 12
	defaultProcRoot          = "/proc"
	defaultTunPath           = "/dev/net/tun"
	defaultOSReleasePath     = "/etc/os-release"
	defaultMaxAddrStringSize = 64
	maxFileBytes             = 1 << 20
)

// Interface is one network interface of the host.
type Interface struct {
	Name     string `json:"name"`
	MAC      string `json:"mac,omitempty"`
	MTU      int    `json:"mtu"`
	Up       bool   `json:"up"`
	Loopback bool   `json:"loopback"`
	// Addresses are CIDR strings ("10.0.0.2/24", "fe80::1/64").
	Addresses          []string `json:"addresses,omitempty"`
	AddressesTruncated bool     `json:"addresses_truncated,omitempty"`
}

// Facts is what the agent reports about its host. It is JSON-serialisable
// and bounded in size: at most MaxInterfaces interfaces with at most
// MaxAddresses addresses each, at most 16 notes, strings cut at 256 bytes.
type Facts struct {
	Hostname  string `json:"hostname"`
	OS        string `json:"os"`
	OSRelease string `json:"os_release,omitempty"`
	Arch      string `json:"arch"`
	// KernelVersion is the kernel release (uname -r).
	KernelVersion string `json:"kernel_version"`
	// KernelBuild is the kernel build string (uname -v).
	KernelBuild         string      `json:"kernel_build,omitempty"`
	CPUCount            int         `json:"cpu_count"`
	MemoryTotalBytes    uint64      `json:"memory_total_bytes"`
	Interfaces          []Interface `json:"interfaces"`
	InterfacesTruncated bool        `json:"interfaces_truncated,omitempty"`
	// InterfaceSource is "netlink" or "net" (the portable fallback).
	InterfaceSource string `json:"interface_source"`
	AgentVersion    string `json:"agent_version"`
	// Capabilities is the union of configured and detected capabilities
	// minus Deny, in domain.AllCapabilities order.
	Capabilities []domain.Capability `json:"capabilities"`
	// Detected lists the capabilities detection found (before Deny).
	Detected []domain.Capability `json:"detected_capabilities,omitempty"`
	// Notes explain degraded gathering (a source that failed, a fallback).
	Notes      []string  `json:"notes,omitempty"`
	GatheredAt time.Time `json:"gathered_at"`
}

// Options configure Gather. The zero value gathers from the real host with
// no configured capabilities.
type Options struct {
	// AgentVersion is reported as is.
	AgentVersion string
	// Configured are the capabilities the operator declared in the agent's
	// configuration; each must be a known domain.Capability.
	Configured []domain.Capability
	// Deny removes capabilities from the detected set (not from Configured).
	Deny []domain.Capability
	// Now stamps GatheredAt; nil means time.Now.
	Now func() time.Time
	// MaxInterfaces and MaxAddresses bound the interface list; zero means
	// the defaults.
	MaxInterfaces, MaxAddresses int

	// Host sources; nil/empty means the real host. Tests replace them.

	// ProcRoot is the procfs mount ("/proc").
	ProcRoot string
	// TunPath is the TUN clone device ("/dev/net/tun").
	TunPath string
	// OSReleasePath is the os-release file ("/etc/os-release").
	OSReleasePath string
	// Interfaces lists interfaces; nil means netlink with a net.Interfaces
	// fallback. It returns the source name ("netlink"/"net") and notes.
	Interfaces func(maxIfaces, maxAddrs int) (ifs []Interface, truncated bool, source string, notes []string)
	// UDPProbe reports whether a UDP socket can be opened; nil means binding
	// an ephemeral port on all addresses and closing it.
	UDPProbe func() error
}

// Gather collects the host facts. It fails only on invalid options (an
// unknown configured or denied capability); a source that cannot be read is
// recorded in Notes and its fields are left empty.
func Gather(opts Options) (Facts, error) {
	if err := validCaps("configured", opts.Configured); err != nil {
		return Facts{}, err
	}
	if err := validCaps("denied", opts.Deny); err != nil {
		return Facts{}, err
	}
	fillDefaults(&opts)

	f := Facts{
		OS:           runtime.GOOS,
		Arch:         runtime.GOARCH,
		CPUCount:     runtime.NumCPU(),
		AgentVersion: clip(opts.AgentVersion),
		GatheredAt:   opts.Now().UTC(),
	}
	note := func(format string, args ...any) {
		if len(f.Notes) < maxNotes {
			f.Notes = append(f.Notes, clip(fmt.Sprintf(format, args...)))
		}
	}

	if h, err := os.Hostname(); err != nil {
		note("hostname: %v", err)
	} else {
		f.Hostname = clip(h)
	}
	if u, err := uname(); err != nil {
		note("uname: %v", err)
	} else {
		f.KernelVersion, f.KernelBuild = clip(u.release), clip(u.version)
	}
	if mem, err := memTotal(opts.ProcRoot + "/meminfo"); err != nil {
		note("memory: %v", err)
	} else {
		f.MemoryTotalBytes = mem
	}
	if rel, err := osRelease(opts.OSReleasePath); err != nil {
		note("os-release: %v", err)
	} else {
		f.OSRelease = clip(rel)
	}

	ifs, truncated, source, notes := opts.Interfaces(opts.MaxInterfaces, opts.MaxAddresses)
	f.Interfaces, f.InterfacesTruncated, f.InterfaceSource = ifs, truncated, source
	for _, n := range notes {
		note("%s", n)
	}

	probes := Probes{UDP: opts.UDPProbe() == nil}
	if tun, err := isCharDevice(opts.TunPath); err == nil {
		probes.Tun = tun
	}
	if netAdmin, err := hasCapNetAdmin(opts.ProcRoot + "/self/status"); err != nil {
		note("capabilities: %v", err)
	} else {
		probes.NetAdmin = netAdmin
	}
	f.Detected = Detect(f.Interfaces, probes)
	f.Capabilities = Merge(opts.Configured, f.Detected, opts.Deny)
	return f, nil
}

func fillDefaults(o *Options) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxInterfaces <= 0 {
		o.MaxInterfaces = DefaultMaxInterfaces
	}
	if o.MaxAddresses <= 0 {
		o.MaxAddresses = DefaultMaxAddresses
	}
	if o.ProcRoot == "" {
		o.ProcRoot = defaultProcRoot
	}
	if o.TunPath == "" {
		o.TunPath = defaultTunPath
	}
	if o.OSReleasePath == "" {
		o.OSReleasePath = defaultOSReleasePath
	}
	if o.Interfaces == nil {
		o.Interfaces = hostInterfaces
	}
	if o.UDPProbe == nil {
		o.UDPProbe = probeUDP
	}
}

func validCaps(what string, caps []domain.Capability) error {
	for _, c := range caps {
		if !c.Valid() {
			return fmt.Errorf("%w: %s capability %q", ErrUnknownCapability, what, c)
		}
	}
	return nil
}

// Probes are the host observations capability detection uses besides the
// interface list.
type Probes struct {
	// UDP: a UDP socket could be opened.
	UDP bool
	// Tun: the TUN clone device exists as a character device.
	Tun bool
	// NetAdmin: the agent holds CAP_NET_ADMIN.
	NetAdmin bool
}

// Detect derives capabilities from observations, as documented in the
// package comment. It is pure; the result is in domain.AllCapabilities order.
func Detect(ifs []Interface, p Probes) []domain.Capability {
	var out []domain.Capability
	if p.UDP && hasRoutableInterface(ifs) {
		out = append(out, domain.CapRouteMesh)
	}
	if p.Tun && p.NetAdmin {
		out = append(out, domain.CapRunVPNExit, domain.CapRunVPNConnector)
	}
	return Merge(nil, out, nil)
}

// Merge returns (configured ∪ (detected − deny)) in domain.AllCapabilities
// order without duplicates, dropping unknown values.
func Merge(configured, detected, deny []domain.Capability) []domain.Capability {
	set := map[domain.Capability]bool{}
	for _, c := range detected {
		if !slices.Contains(deny, c) {
			set[c] = true
		}
	}
	for _, c := range configured {
		set[c] = true
	}
	out := []domain.Capability{}
	for _, c := range domain.AllCapabilities {
		if set[c] {
			out = append(out, c)
		}
	}
	return out
}

func hasRoutableInterface(ifs []Interface) bool {
	for _, i := range ifs {
		if !i.Up || i.Loopback {
			continue
		}
		for _, a := range i.Addresses {
			ip, _, err := net.ParseCIDR(a)
			if err == nil && ip.IsGlobalUnicast() {
				return true
			}
		}
	}
	return false
}

// hostInterfaces lists interfaces via netlink, falling back to the portable
// net.Interfaces (same names, flags and addresses) when netlink fails, e.g.
// in a sandbox without NETLINK_ROUTE or on a non-Linux host. The fallback is
// recorded in the notes.
func hostInterfaces(maxIfaces, maxAddrs int) ([]Interface, bool, string, []string) {
	ifs, truncated, err := netlinkInterfaces(maxIfaces, maxAddrs)
	if err == nil {
		return ifs, truncated, "netlink", nil
	}
	notes := []string{fmt.Sprintf("netlink unavailable (%v); interfaces from net.Interfaces", err)}
	ifs, truncated, err = netInterfaces(maxIfaces, maxAddrs)
	if err != nil {
		notes = append(notes, fmt.Sprintf("net.Interfaces: %v", err))
	}
	return ifs, truncated, "net", notes
}

func netlinkInterfaces(maxIfaces, maxAddrs int) ([]Interface, bool, error) {
	links, err := netlink.LinkList()
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return nil, false, err
	}
	var out []Interface
	truncated := false
	for _, l := range links {
		if len(out) == maxIfaces {
			truncated = true
			break
		}
		a := l.Attrs()
		i := Interface{
			Name:     clip(a.Name),
			MTU:      a.MTU,
			Up:       a.Flags&net.FlagUp != 0,
			Loopback: a.Flags&net.FlagLoopback != 0,
		}
		if len(a.HardwareAddr) > 0 {
			i.MAC = a.HardwareAddr.String()
		}
		addrs, err := netlink.AddrList(l, netlink.FAMILY_ALL)
		if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
			return nil, false, fmt.Errorf("addresses of %s: %w", a.Name, err)
		}
		for _, ad := range addrs {
			if ad.IPNet == nil {
				continue
			}
			if len(i.Addresses) == maxAddrs {
				i.AddressesTruncated = true
				break
			}
			i.Addresses = append(i.Addresses, clipN(ad.IPNet.String(), defaultMaxAddrStringSize))
		}
		out = append(out, i)
	}
	return out, truncated, nil
}

func netInterfaces(maxIfaces, maxAddrs int) ([]Interface, bool, error) {
	ifaces, err := net.Interfaces()
	if err != nil {
		return nil, false, err
	}
	var out []Interface
	truncated := false
	for _, ni := range ifaces {
		if len(out) == maxIfaces {
			truncated = true
			break
		}
		i := Interface{
			Name:     clip(ni.Name),
			MAC:      ni.HardwareAddr.String(),
			MTU:      ni.MTU,
			Up:       ni.Flags&net.FlagUp != 0,
			Loopback: ni.Flags&net.FlagLoopback != 0,
		}
		addrs, _ := ni.Addrs()
		for _, ad := range addrs {
			if len(i.Addresses) == maxAddrs {
				i.AddressesTruncated = true
				break
			}
			i.Addresses = append(i.Addresses, clipN(ad.String(), defaultMaxAddrStringSize))
		}
		out = append(out, i)
	}
	return out, truncated, nil
}

func probeUDP() error {
	c, err := net.ListenPacket("udp", ":0")
	if err != nil {
		return err
	}
	return c.Close()
}

func isCharDevice(path string) (bool, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return false, err
	}
	return fi.Mode()&os.ModeCharDevice != 0, nil
}

// readSmall reads a file of at most 1 MiB (procfs files report size 0, so
// the size is enforced while reading).
func readSmall(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, maxFileBytes+1))
	if err != nil {
		return nil, err
	}
	if len(raw) > maxFileBytes {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, maxFileBytes)
	}
	return raw, nil
}

// memTotal parses MemTotal (kB) from a meminfo file. It is the host's
// memory; a cgroup limit on the agent is not reflected.
func memTotal(path string) (uint64, error) {
	raw, err := readSmall(path)
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:")
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) != 2 || fields[1] != "kB" {
			return 0, fmt.Errorf("malformed MemTotal line %q", sc.Text())
		}
		kb, err := strconv.ParseUint(fields[0], 10, 64)
		if err != nil || kb > (1<<64-1)/1024 {
			return 0, fmt.Errorf("malformed MemTotal value %q", fields[0])
		}
		return kb * 1024, nil
	}
	return 0, fmt.Errorf("no MemTotal in %s", path)
}

// hasCapNetAdmin reads CapEff from a /proc/<pid>/status file.
func hasCapNetAdmin(statusPath string) (bool, error) {
	raw, err := readSmall(statusPath)
	if err != nil {
		return false, err
	}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "CapEff:")
		if !ok {
			continue
		}
		v, err := strconv.ParseUint(strings.TrimSpace(rest), 16, 64)
		if err != nil {
			return false, fmt.Errorf("malformed CapEff %q", rest)
		}
		return v&(1<<capNetAdminBit) != 0, nil
	}
	return false, fmt.Errorf("no CapEff in %s", statusPath)
}

// osRelease returns PRETTY_NAME (or NAME VERSION_ID) from an os-release file.
func osRelease(path string) (string, error) {
	raw, err := readSmall(path)
	if err != nil {
		return "", err
	}
	kv := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if ok {
			kv[k] = strings.Trim(v, `"'`)
		}
	}
	if kv["PRETTY_NAME"] != "" {
		return kv["PRETTY_NAME"], nil
	}
	if kv["NAME"] != "" {
		return strings.TrimSpace(kv["NAME"] + " " + kv["VERSION_ID"]), nil
	}
	return "", fmt.Errorf("no PRETTY_NAME or NAME in %s", path)
}

func clip(s string) string { return clipN(s, maxStringLen) }

func clipN(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
}
