package facts

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/domain"
)

// TestGatherRealHost runs the real gathering on this machine.
func TestGatherRealHost(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	f, err := Gather(Options{
		AgentVersion: "0.1.0-test",
		Configured:   []domain.Capability{domain.CapRunSSHWorker},
		Now:          func() time.Time { return now },
	})
	require.NoError(t, err)
	t.Logf("facts: host=%q os=%s/%s (%s) kernel=%s cpus=%d mem=%d ifaces=%d source=%s caps=%v notes=%v",
		f.Hostname, f.OS, f.Arch, f.OSRelease, f.KernelVersion, f.CPUCount, f.MemoryTotalBytes,
		len(f.Interfaces), f.InterfaceSource, f.Capabilities, f.Notes)

	require.NotEmpty(t, f.Hostname)
	require.Equal(t, "linux", f.OS)
	require.NotEmpty(t, f.Arch)
	require.NotEmpty(t, f.KernelVersion)
	require.Regexp(t, `^\d+\.\d+`, f.KernelVersion)
	require.Positive(t, f.CPUCount)
	require.Greater(t, f.MemoryTotalBytes, uint64(64<<20))
	require.Equal(t, "0.1.0-test", f.AgentVersion)
	require.True(t, f.GatheredAt.Equal(now))
	// netlink is expected on Linux; the fallback must explain itself.
	require.Contains(t, []string{"netlink", "net"}, f.InterfaceSource)
	if f.InterfaceSource == "net" {
		require.NotEmpty(t, f.Notes)
	}

	var lo *Interface
	for i := range f.Interfaces {
		if f.Interfaces[i].Loopback {
			lo = &f.Interfaces[i]
		}
	}
	require.NotNil(t, lo, "loopback interface missing: %+v", f.Interfaces)
	require.True(t, lo.Up)
	require.Contains(t, lo.Addresses, "127.0.0.1/8")

	require.Contains(t, f.Capabilities, domain.CapRunSSHWorker)
	for _, c := range f.Capabilities {
		require.True(t, c.Valid(), c)
	}

	raw, err := json.Marshal(f)
	require.NoError(t, err)
	var back Facts
	require.NoError(t, json.Unmarshal(raw, &back))
	require.Equal(t, f.Hostname, back.Hostname)
	require.Equal(t, f.Capabilities, back.Capabilities)
}

func TestNetFallbackFindsLoopback(t *testing.T) {
	ifs, _, err := netInterfaces(DefaultMaxInterfaces, DefaultMaxAddresses)
	require.NoError(t, err)
	found := false
	for _, i := range ifs {
		found = found || (i.Loopback && len(i.Addresses) > 0)
	}
	require.True(t, found, "%+v", ifs)
}

func TestGatherIsBounded(t *testing.T) {
	f, err := Gather(Options{MaxInterfaces: 1, MaxAddresses: 1})
	require.NoError(t, err)
	require.LessOrEqual(t, len(f.Interfaces), 1)
	for _, i := range f.Interfaces {
		require.LessOrEqual(t, len(i.Addresses), 1)
	}

	many := func(int, int) ([]Interface, bool, string, []string) {
		notes := make([]string, 40)
		for i := range notes {
			notes[i] = strings.Repeat("x", 1000)
		}
		return nil, false, "fake", notes
	}
	f, err = Gather(Options{Interfaces: many, AgentVersion: strings.Repeat("v", 5000)})
	require.NoError(t, err)
	require.Len(t, f.Notes, maxNotes)
	for _, n := range f.Notes {
		require.LessOrEqual(t, len(n), maxStringLen)
	}
	require.Len(t, f.AgentVersion, maxStringLen)
}

func TestGatherWithFakeHost(t *testing.T) {
	dir := t.TempDir()
	proc := filepath.Join(dir, "proc")
	require.NoError(t, os.MkdirAll(filepath.Join(proc, "self"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(proc, "meminfo"), []byte("MemTotal:        2048 kB\nMemFree: 1 kB\n"), 0o644))
	// CapEff with only CAP_NET_ADMIN (bit 12).
	require.NoError(t, os.WriteFile(filepath.Join(proc, "self", "status"), []byte("Name:\tx\nCapEff:\t0000000000001000\n"), 0o644))
	osrel := filepath.Join(dir, "os-release")
	require.NoError(t, os.WriteFile(osrel, []byte("NAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\n"), 0o644))

	ifs := []Interface{
		{Name: "lo", Up: true, Loopback: true, Addresses: []string{"127.0.0.1/8"}},
		{Name: "eth0", Up: true, Addresses: []string{"fe80::1/64", "10.1.2.3/24"}},
	}
	fake := func(int, int) ([]Interface, bool, string, []string) { return ifs, false, "fake", nil }
	base := Options{ProcRoot: proc, OSReleasePath: osrel, TunPath: filepath.Join(dir, "no-tun"),
		Interfaces: fake, UDPProbe: func() error { return nil }}

	f, err := Gather(base)
	require.NoError(t, err)
	require.Equal(t, uint64(2048*1024), f.MemoryTotalBytes)
	require.Equal(t, "Debian GNU/Linux 12", f.OSRelease)
	require.Equal(t, []domain.Capability{domain.CapRouteMesh}, f.Capabilities, "no TUN device: no VPN capabilities")

	// A regular file is not a TUN device.
	o := base
	o.TunPath = osrel
	f, err = Gather(o)
	require.NoError(t, err)
	require.NotContains(t, f.Capabilities, domain.CapRunVPNExit)

	// UDP unavailable: no mesh routing.
	o = base
	o.UDPProbe = func() error { return errors.New("no udp") }
	f, err = Gather(o)
	require.NoError(t, err)
	require.Empty(t, f.Capabilities)

	// Missing procfs: notes, no crash.
	o = base
	o.ProcRoot = filepath.Join(dir, "nowhere")
	f, err = Gather(o)
	require.NoError(t, err)
	require.Zero(t, f.MemoryTotalBytes)
	require.NotEmpty(t, f.Notes)

	_, err = Gather(Options{Configured: []domain.Capability{"can_fly"}})
	require.ErrorIs(t, err, ErrUnknownCapability)
	_, err = Gather(Options{Deny: []domain.Capability{"nope"}})
	require.ErrorIs(t, err, ErrUnknownCapability)
}

func TestDetect(t *testing.T) {
	lo := Interface{Name: "lo", Up: true, Loopback: true, Addresses: []string{"127.0.0.1/8", "::1/128"}}
	linkLocal := Interface{Name: "eth0", Up: true, Addresses: []string{"fe80::1/64", "169.254.1.1/16"}}
	down := Interface{Name: "eth1", Up: false, Addresses: []string{"192.168.1.5/24"}}
	up := Interface{Name: "eth2", Up: true, Addresses: []string{"192.168.1.5/24"}}
	all := Probes{UDP: true, Tun: true, NetAdmin: true}

	require.Empty(t, Detect([]Interface{lo, linkLocal, down}, Probes{UDP: true}))
	require.Equal(t, []domain.Capability{domain.CapRouteMesh}, Detect([]Interface{lo, up}, Probes{UDP: true}))
	require.Empty(t, Detect([]Interface{up}, Probes{}))
	require.Empty(t, Detect(nil, Probes{Tun: true}), "TUN without CAP_NET_ADMIN is not enough")
	require.Equal(t, []domain.Capability{domain.CapRouteMesh, domain.CapRunVPNExit, domain.CapRunVPNConnector},
		Detect([]Interface{up}, all))
}

func TestMerge(t *testing.T) {
	got := Merge(
		[]domain.Capability{domain.CapRunConfigStorage, domain.CapAcceptClientIngress, domain.CapRunVPNExit},
		[]domain.Capability{domain.CapRouteMesh, domain.CapRunVPNExit, domain.CapRunVPNConnector},
		[]domain.Capability{domain.CapRunVPNConnector, domain.CapRunVPNExit},
	)
	// Deny drops detected capabilities only; configured ones stay.
	require.Equal(t, []domain.Capability{domain.CapAcceptClientIngress, domain.CapRouteMesh,
		domain.CapRunVPNExit, domain.CapRunConfigStorage}, got)
	require.NotNil(t, Merge(nil, nil, nil))
}

func TestParsers(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
		return p
	}
	_, err := memTotal(write("m1", "MemFree: 3 kB\n"))
	require.Error(t, err)
	_, err = memTotal(write("m2", "MemTotal: lots kB\n"))
	require.Error(t, err)
	_, err = hasCapNetAdmin(write("s1", "CapEff:\tzz\n"))
	require.Error(t, err)
	ok, err := hasCapNetAdmin(write("s2", "CapEff:\t0000000000000000\n"))
	require.NoError(t, err)
	require.False(t, ok)
	rel, err := osRelease(write("r1", "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n"))
	require.NoError(t, err)
	require.Equal(t, "Debian GNU/Linux 12 (bookworm)", rel)
	_, err = readSmall(write("big", strings.Repeat("x", maxFileBytes+1)))
	require.ErrorContains(t, err, "larger than")
}
