package agentapi

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestServerNamesRoundTrip(t *testing.T) {
	pin := "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	n := ServerNameForPin(pin)
	require.Equal(t, "0123456789abcdef.pin.rap-fabric", n)
	require.Equal(t, "0123456789abcdef", PinPrefixOf(n))
	require.Empty(t, ClusterOf(n))
	c := ServerNameForCluster("9b1d1c9e-4a3f-4f0e-9f57-3c1c1c1c1c1c")
	require.Equal(t, "9b1d1c9e-4a3f-4f0e-9f57-3c1c1c1c1c1c", ClusterOf(c))
	require.Empty(t, PinPrefixOf(c))
	require.Empty(t, PinPrefixOf("short.pin.rap-fabric"))
	require.Empty(t, ClusterOf("authority.example.com"))
}

// TestNoAgentPathOutsideTheContract: the agent and the authority spell agent
// route paths only through this package (no string copies that could drift).
func TestNoAgentPathOutsideTheContract(t *testing.T) {
	for _, dir := range []string{"../agent/runtime", "../httpapi", "../authority"} {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		require.NoError(t, err)
		require.NotEmpty(t, files, dir)
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			data, err := os.ReadFile(f)
			require.NoError(t, err)
			require.NotContains(t, string(data), `"/v1/agent`, "%s spells an agent route path; use the agentapi constant", f)
		}
	}
}
