package integration

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/internal/authtest"
	"github.com/rap-fabric/core/pki"
)

// TestRapctlCAExport: `rapctl ca export` prints the platform CA certificate
// the authorities present, verified against the pin: its pin is the pin, it
// signed the API certificate, and a wrong or missing pin exports nothing.
func TestRapctlCAExport(t *testing.T) {
	bin := binaries(t)
	g := authtest.New(t, 1)
	g.Leader(10 * time.Second)
	servers := strings.Join(apiAddrs(g), ",")

	out, errOut, rc := runRapctl(t, bin, "--server", servers, "--ca-pin", g.Pin, "ca", "export")
	require.Equal(t, 0, rc, errOut)
	block, rest := pem.Decode([]byte(out))
	require.NotNil(t, block, out)
	require.Empty(t, strings.TrimSpace(string(rest)))
	ca, err := x509.ParseCertificate(block.Bytes)
	require.NoError(t, err)
	require.True(t, ca.IsCA)
	require.Equal(t, g.Pin, pki.Pin(ca))
	require.Contains(t, errOut, g.Pin)

	out, errOut, rc = runRapctl(t, bin, "--server", servers, "--ca-pin", g.Pin, "-o", "json", "ca", "export")
	require.Equal(t, 0, rc, errOut)
	var j struct {
		Pin string `json:"ca_pin"`
		PEM string `json:"pem"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &j))
	require.Equal(t, g.Pin, j.Pin)
	require.Equal(t, string(pem.EncodeToMemory(block)), j.PEM)

	wrong := "sha256:" + strings.Repeat("0", 64)
	out, errOut, rc = runRapctl(t, bin, "--server", servers, "--ca-pin", wrong, "ca", "export")
	require.NotEqual(t, 0, rc)
	require.Empty(t, out)
	require.Contains(t, errOut, "pin")
	out, errOut, rc = runRapctl(t, bin, "--server", servers, "ca", "export")
	require.NotEqual(t, 0, rc)
	require.Empty(t, out)
	require.Contains(t, errOut, "CA pin is needed")
}
