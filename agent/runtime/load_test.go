package runtime

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestReadLoad: the load average and memory use are read from loadavg and
// meminfo; unreadable files leave zeros, never an error or a panic.
func TestReadLoad(t *testing.T) {
	dir := t.TempDir()
	old := procRoot
	t.Cleanup(func() { procRoot = old })
	procRoot = dir
	require.Equal(t, 3, readLoad(3).Links)
	require.Zero(t, readLoad(0).Load1)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "loadavg"), []byte("1.25 0.80 0.50 2/300 4242\n"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "meminfo"), []byte("MemTotal:        2048 kB\nMemFree:          100 kB\nMemAvailable:     512 kB\n"), 0o600))
	l := readLoad(2)
	require.InDelta(t, 1.25, l.Load1, 1e-9)
	require.Equal(t, uint64(2048*1024), l.MemTotalBytes)
	require.Equal(t, uint64((2048-512)*1024), l.MemUsedBytes)
	require.Equal(t, 2, l.Links)
}
