package runtime

import (
	"strings"
	"testing"

	"github.com/rap-fabric/core/agent/meshrun"
)

// TestWriteMeshTableEndToEndCounters: the people's mesh table ends each
// membership with its end-to-end counters and drops by reason, so that an
// operator sees a flow failing for want of a route without reading JSON.
func TestWriteMeshTableEndToEndCounters(t *testing.T) {
	var b strings.Builder
	WriteMeshTable(&b, []MeshStatus{{ClusterID: "c1", NodeID: "n1", Status: meshrun.Status{
		Listen: "127.0.0.1:1", E2ESent: 5, E2EDelivered: 2, E2EForwarded: 1, E2EHandshakes: 1,
		E2EDropped: map[string]uint64{"queue": 26, "no_route": 3},
	}}})
	want := "  e2e sent=5 delivered=2 forwarded=1 handshakes=1 dropped no_route=3 queue=26\n"
	if !strings.HasSuffix(b.String(), want) {
		t.Fatalf("table:\n%s\nwant it to end with %q", b.String(), want)
	}
	b.Reset()
	WriteMeshTable(&b, []MeshStatus{{ClusterID: "c1", NodeID: "n1"}})
	if !strings.HasSuffix(b.String(), "  e2e sent=0 delivered=0 forwarded=0 handshakes=0\n") {
		t.Fatalf("table without drops:\n%s", b.String())
	}
}
