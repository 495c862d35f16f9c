package console

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestTopologySVGDrawsEveryNodeAndLink(t *testing.T) {
	nodes := []topoNode{{ID: "n1", Name: "a"}, {ID: "n2", Name: "b", Relay: true}}
	links := []topoLink{{From: "n1", To: "n2", State: "up", RTTMs: 5}, {From: "n2", To: "n1", State: "up", RTTMs: 150},
		{From: "n2", To: "ghost-peer-id", State: "down"}}
	svg := string(topologySVG("demo", nodes, links, nil))
	require.Len(t, regexp.MustCompile(`<g class="node" data-node-id="[^"]+" data-kind="agent"`).FindAllString(svg, -1), 2)
	require.Len(t, regexp.MustCompile(`<g class="node" data-node-id="ghost-peer-id" data-kind="unknown"`).FindAllString(svg, -1), 1,
		"a peer that is not a member is drawn as unknown")
	require.Len(t, regexp.MustCompile(`<line class="link" `).FindAllString(svg, -1), 3)
	require.Contains(t, svg, `data-relay="true"`)
	require.Contains(t, svg, `class="relay-ring"`)
	require.Contains(t, svg, `stroke="#1e7d32"`, "fast link green")
	require.Contains(t, svg, `stroke="#c2410c"`, "slow link orange")
	require.Contains(t, svg, `stroke="#b3261e" stroke-width="2.5" stroke-dasharray="6 4"`, "down link red, dashed")
	require.NotContains(t, svg, "style=", "no inline styles: the CSP forbids them")
	require.NotContains(t, svg, "<script")
	// Names are escaped.
	svg = string(topologySVG("x", []topoNode{{ID: "i", Name: `<b>&"`}}, nil, nil))
	require.NotContains(t, svg, "<b>")
	require.Contains(t, svg, "&lt;b&gt;")
}

// TestTopologySVGHighlightsThePingPath: the last mesh ping's path is drawn
// hop by hop over the links (through the relay), its nodes are marked, the
// nodes off the path are not, and the caption names the path in node names.
func TestTopologySVGHighlightsThePingPath(t *testing.T) {
	nodes := []topoNode{{ID: "n1", Name: "edge-a"}, {ID: "r1", Name: "relay-1", Relay: true}, {ID: "n2", Name: "edge-b"}, {ID: "n3", Name: "edge-c"}}
	links := []topoLink{{From: "n1", To: "r1", State: "up", RTTMs: 2}, {From: "r1", To: "n2", State: "up", RTTMs: 3}, {From: "n1", To: "n3", State: "up", RTTMs: 1}}
	at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	svg := string(topologySVG("demo", nodes, links, &topoPing{Path: []string{"n1", "r1", "n2"}, RTTMs: 4.2, At: at}))
	hops := regexp.MustCompile(`<line class="ping-hop" data-from="([^"]+)" data-to="([^"]+)"`).FindAllStringSubmatch(svg, -1)
	require.Len(t, hops, 2, "one highlighted segment per hop")
	require.Equal(t, []string{"n1", "r1"}, hops[0][1:])
	require.Equal(t, []string{"r1", "n2"}, hops[1][1:])
	require.Contains(t, svg, `<g class="ping-path" data-hops="2">`)
	for id, on := range map[string]bool{"n1": true, "r1": true, "n2": true, "n3": false} {
		require.Regexp(t, `data-node-id="`+id+`" data-kind="agent" data-relay="(true|false)" data-ping-path="`+map[bool]string{true: "true", false: "false"}[on]+`"`, svg, id)
	}
	require.Len(t, regexp.MustCompile(`class="ping-mark"`).FindAllString(svg, -1), 3)
	require.Contains(t, svg, "last mesh ping edge-a → relay-1 → edge-b, RTT 4.2 ms at 2030-01-02 03:04:05Z")
	// Drawn after the links, so it lies on top of them; and before the nodes.
	require.Less(t, strings.Index(svg, `<g class="links">`), strings.Index(svg, `class="ping-path"`))
	require.Less(t, strings.Index(svg, `class="ping-path"`), strings.Index(svg, `<g class="nodes">`))
	require.NotContains(t, svg, "style=")

	// A hop through a node that is no member is still drawn (as unknown).
	svg = string(topologySVG("demo", nodes, nil, &topoPing{Path: []string{"n1", "ghost", "n2"}, RTTMs: 1, At: at}))
	require.Contains(t, svg, `data-node-id="ghost" data-kind="unknown"`)
	require.Len(t, regexp.MustCompile(`<line class="ping-hop"`).FindAllString(svg, -1), 2)
	// Without a ping nothing is highlighted.
	svg = string(topologySVG("demo", nodes, links, nil))
	require.NotContains(t, svg, "ping-hop")
	require.NotContains(t, svg, `data-ping-path="true"`)
}

func TestStripSVGHasOneCellPerBucket(t *testing.T) {
	start := time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)
	cells := make([]stripCell, 5)
	for i := range cells {
		cells[i].Start = start.Add(time.Duration(i) * time.Minute)
	}
	cells[1].Count = 3
	cells[3].Count, cells[3].Degraded = 2, 1
	svg := string(stripSVG("edge-1 in demo", "heartbeats", time.Minute, cells))
	got := regexp.MustCompile(`data-state="(\w+)"`).FindAllStringSubmatch(svg, -1)
	var states []string
	for _, g := range got {
		states = append(states, g[1])
	}
	require.Equal(t, []string{"missing", "normal", "missing", "degraded", "missing"}, states)
	require.Contains(t, svg, `aria-label="Health of edge-1 in demo over the last 5m in 5 buckets of 1m: 3 without a heartbeat"`)
	require.True(t, strings.HasPrefix(svg, "<svg"))
}

func TestHumanFigures(t *testing.T) {
	require.Equal(t, "not measured", humanMs(0))
	require.Equal(t, "500 µs", humanMs(0.5))
	require.Equal(t, "2.5 ms", humanMs(2.5))
	require.Equal(t, "180 ms", humanMs(180))
	require.Equal(t, "45s", humanDuration(45*time.Second))
	require.Equal(t, "30m", humanDuration(30*time.Minute))
	require.Equal(t, "2h", humanDuration(2*time.Hour))
	require.Equal(t, "1h 30m", humanDuration(90*time.Minute))
}

func TestRolloutSVGSplitsAppliedAndLagging(t *testing.T) {
	svg := string(rolloutSVG("demo", 3, 1))
	require.Contains(t, svg, `data-applied="3" data-lagging="1"`)
	require.Contains(t, svg, `<rect class="applied" x="0" y="0" width="240"`)
	require.Contains(t, svg, `<rect class="lagging" x="240" y="0" width="80"`)
	require.Contains(t, svg, "3 of 4 nodes on their desired snapshot, 1 behind")
	empty := string(rolloutSVG("none", 0, 0))
	require.NotContains(t, empty, `class="applied"`)
	require.NotContains(t, empty, `class="lagging"`)
}

func TestExpirySVGMarksEveryCertificate(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	svg := string(expirySVG("demo", now, []certMark{
		{Node: "fresh", Serial: "3", NotBefore: now.Add(-time.Hour), NotAfter: now.Add(23 * time.Hour)},
		{Node: "failing", Serial: "1", NotBefore: now.Add(-22 * time.Hour), NotAfter: now.Add(2 * time.Hour)},
		{Node: "gone", Serial: "0", NotBefore: now.Add(-day - time.Hour), NotAfter: now.Add(-time.Hour)},
		{Node: "late", Serial: "2", NotBefore: now.Add(-18 * time.Hour), NotAfter: now.Add(6 * time.Hour)},
	}))
	got := regexp.MustCompile(`<g class="cert" data-state="(\w+)">`).FindAllStringSubmatch(svg, -1)
	var states []string
	for _, g := range got {
		states = append(states, g[1])
	}
	require.Equal(t, []string{"expired", "soon", "late", "ok"}, states, "sorted by expiry, judged by lifetime left")
	require.Contains(t, svg, "over the next 24h")
	require.Contains(t, svg, "failing: certificate 1 expires 2026-01-01 02:00Z (in 2h)")
	require.Contains(t, svg, ">+12h</text>")
	require.NotContains(t, svg, "style=")
	long := string(expirySVG("ca", now, []certMark{{Node: "x", NotBefore: now, NotAfter: now.Add(90 * day)}}))
	require.Contains(t, long, "over the next 90 days")
}

func TestViewHumaneFigures(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	v := &view{Now: now, Clusters: []map[string]any{{"id": "c-1", "slug": "demo"}}}
	require.Equal(t, "demo", v.ClusterName("c-1"))
	require.Equal(t, "c-2", v.ClusterName("c-2"), "unknown ids stay visible")
	require.Equal(t, "1h 30m ago", v.Ago("2026-01-01T10:30:00Z"))
	require.Equal(t, "just now", v.Ago("2026-01-01T12:00:05Z"))
	require.Equal(t, "42s", v.Seconds(42.4))
	require.Equal(t, "2.5 ms", v.RTT(2.5))
	require.Equal(t, "12.5%", v.Percent(0.125))
	require.Equal(t, "x", v.Percent("x"))
}
