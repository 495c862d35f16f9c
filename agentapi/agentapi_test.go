package agentapi

import (
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
