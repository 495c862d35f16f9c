package console

// Pictures: server-rendered inline SVG (no scripts, no external assets, no
// style attributes, so the console's CSP holds). Colours are presentation
// attributes; every shape carries data-* attributes naming what it shows, and
// a <title> for the hover text.

import (
	"fmt"
	"html/template"
	"math"
	"sort"
	"strings"
	"time"
)

// topoNode is one agent in a topology picture.
type topoNode struct {
	ID    string
	Name  string
	Relay bool
}

// topoLink is one reported link (from node → peer).
type topoLink struct {
	From, To string
	State    string
	RTTMs    float64
	Loss     float64
}

// topoPing is the last `mesh ping` drawn on a topology: the pinging node's
// path to the destination, relays in between.
type topoPing struct {
	Path  []string
	RTTMs float64
	At    time.Time
}

func esc(s string) string { return template.HTMLEscapeString(s) }

// linkColour colours a link by state, and an up link by round-trip time.
func linkColour(l topoLink) (colour string, dashed bool) {
	switch l.State {
	case "up":
		switch {
		case l.RTTMs < 20:
			return "#1e7d32", false
		case l.RTTMs < 100:
			return "#9a6700", false
		default:
			return "#c2410c", false
		}
	case "down":
		return "#b3261e", true
	default: // idle, connecting, closed, anything new
		return "#8a93a3", true
	}
}

// topologySVG draws a cluster's mesh: the agents on a circle (relays as
// double rings) and one line per reported link, coloured by state and RTT.
// Links to peers that are not in nodes get a grey "unknown peer" node.
//
// ping, when not nil, is the last mesh ping: its path is drawn over the
// links as a thick violet line per hop, and the nodes on it are marked.
func topologySVG(title string, nodes []topoNode, links []topoLink, ping *topoPing) template.HTML {
	known := map[string]bool{}
	for _, n := range nodes {
		known[n.ID] = true
	}
	all := append([]topoNode(nil), nodes...)
	var pingPath []string
	if ping != nil && len(ping.Path) >= 2 {
		pingPath = ping.Path
	}
	onPath := map[string]bool{}
	for _, id := range pingPath {
		onPath[id] = true
	}
	ends := make([]string, 0, 2*len(links)+len(pingPath))
	for _, l := range links {
		ends = append(ends, l.From, l.To)
	}
	for _, id := range append(ends, pingPath...) {
		if !known[id] {
			known[id] = true
			all = append(all, topoNode{ID: id, Name: short(id)})
		}
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].Name < all[j].Name })
	const w, h = 640, 420
	cx, cy := float64(w)/2, float64(h)/2-10
	r := math.Min(cx, cy) - 60
	pos := map[string][2]float64{}
	for i, n := range all {
		a := -math.Pi/2 + 2*math.Pi*float64(i)/float64(len(all))
		if len(all) == 1 {
			pos[n.ID] = [2]float64{cx, cy}
			continue
		}
		pos[n.ID] = [2]float64{cx + r*math.Cos(a), cy + r*math.Sin(a)}
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="topology" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="%d" height="%d" role="img" aria-labelledby="topo-t-%s">`, w, h, w, h, esc(title))
	fmt.Fprintf(&b, `<title id="topo-t-%s">Mesh topology of %s: %d nodes, %d reported links</title>`, esc(title), esc(title), len(all), len(links))
	b.WriteString(`<g class="links">`)
	for _, l := range links {
		p, q := pos[l.From], pos[l.To]
		// Both directions of a pair are reported separately: shift each
		// line a little to its left so the two stay visible.
		dx, dy := q[0]-p[0], q[1]-p[1]
		d := math.Hypot(dx, dy)
		ox, oy := 0.0, 0.0
		if d > 0 {
			ox, oy = -dy/d*3, dx/d*3
		}
		col, dashed := linkColour(l)
		dash := ""
		if dashed {
			dash = ` stroke-dasharray="6 4"`
		}
		fmt.Fprintf(&b, `<line class="link" data-from="%s" data-to="%s" data-state="%s" data-rtt-ms="%.1f" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="2.5"%s><title>%s → %s: %s, RTT %s, loss %.0f%%</title></line>`,
			esc(l.From), esc(l.To), esc(l.State), l.RTTMs, p[0]+ox, p[1]+oy, q[0]+ox, q[1]+oy, col, dash,
			esc(nameOf(all, l.From)), esc(nameOf(all, l.To)), esc(l.State), humanMs(l.RTTMs), l.Loss*100)
	}
	b.WriteString(`</g>`)
	if len(pingPath) > 0 {
		names := make([]string, len(pingPath))
		for i, id := range pingPath {
			names[i] = nameOf(all, id)
		}
		desc := fmt.Sprintf("last mesh ping %s, RTT %s at %s", strings.Join(names, " → "), humanMs(ping.RTTMs), ping.At.UTC().Format("2006-01-02 15:04:05Z"))
		fmt.Fprintf(&b, `<g class="ping-path" data-hops="%d"><title>%s</title>`, len(pingPath)-1, esc(desc))
		for i := 0; i+1 < len(pingPath); i++ {
			p, q := pos[pingPath[i]], pos[pingPath[i+1]]
			fmt.Fprintf(&b, `<line class="ping-hop" data-from="%s" data-to="%s" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#6d28d9" stroke-width="6" stroke-opacity="0.55" stroke-linecap="round"><title>ping hop %d: %s → %s</title></line>`,
				esc(pingPath[i]), esc(pingPath[i+1]), p[0], p[1], q[0], q[1], i+1, esc(names[i]), esc(names[i+1]))
		}
		fmt.Fprintf(&b, `<text class="ping-caption" x="10" y="18" fill="#6d28d9">%s</text></g>`, esc(desc))
	}
	b.WriteString(`<g class="nodes">`)
	for _, n := range all {
		p := pos[n.ID]
		kind, fill := "agent", "#e8eefa"
		if !contains(nodes, n.ID) {
			kind, fill = "unknown", "#eef1f5"
		}
		fmt.Fprintf(&b, `<g class="node" data-node-id="%s" data-kind="%s" data-relay="%t" data-ping-path="%t"><title>%s (%s)%s</title>`, esc(n.ID), kind, n.Relay, onPath[n.ID], esc(n.Name), esc(n.ID), map[bool]string{true: ", relay", false: ""}[n.Relay])
		if onPath[n.ID] {
			fmt.Fprintf(&b, `<circle class="ping-mark" cx="%.1f" cy="%.1f" r="24" fill="none" stroke="#6d28d9" stroke-width="2" stroke-dasharray="3 3"/>`, p[0], p[1])
		}
		if n.Relay {
			fmt.Fprintf(&b, `<circle class="relay-ring" cx="%.1f" cy="%.1f" r="20" fill="none" stroke="#1f5fbf" stroke-width="2"/>`, p[0], p[1])
		}
		fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="14" fill="%s" stroke="#1d2330" stroke-width="1.5"/>`, p[0], p[1], fill)
		label := n.Name
		if n.Relay {
			label += " (relay)"
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text></g>`, p[0], p[1]+32, esc(label))
	}
	b.WriteString(`</g>`)
	// Legend.
	y := float64(h - 12)
	x := 10.0
	for _, it := range []struct {
		label string
		l     topoLink
	}{{"up, RTT < 20 ms", topoLink{State: "up", RTTMs: 1}}, {"up, < 100 ms", topoLink{State: "up", RTTMs: 50}}, {"up, ≥ 100 ms", topoLink{State: "up", RTTMs: 500}}, {"down", topoLink{State: "down"}}, {"idle/connecting", topoLink{State: "idle"}}} {
		col, dashed := linkColour(it.l)
		dash := ""
		if dashed {
			dash = ` stroke-dasharray="6 4"`
		}
		fmt.Fprintf(&b, `<g class="legend"><line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="%s" stroke-width="2.5"%s/><text x="%.0f" y="%.0f">%s</text></g>`, x, y-4, x+22, y-4, col, dash, x+26, y, esc(it.label))
		x += 26 + float64(len([]rune(it.label)))*6 + 14
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

func contains(nodes []topoNode, id string) bool {
	for _, n := range nodes {
		if n.ID == id {
			return true
		}
	}
	return false
}

func nameOf(nodes []topoNode, id string) string {
	for _, n := range nodes {
		if n.ID == id {
			return n.Name
		}
	}
	return short(id)
}

// humanMs renders a round-trip time for people.
func humanMs(ms float64) string {
	switch {
	case ms <= 0:
		return "not measured"
	case ms < 1:
		return fmt.Sprintf("%.0f µs", ms*1000)
	case ms < 10:
		return fmt.Sprintf("%.1f ms", ms)
	default:
		return fmt.Sprintf("%.0f ms", ms)
	}
}

// stripCell is one time bucket of a health strip.
type stripCell struct {
	Start    time.Time
	Count    int
	Degraded int
}

// cellState names a bucket: no heartbeat, degraded (any heartbeat in
// degraded mode) or normal.
func (c stripCell) state() string {
	switch {
	case c.Count == 0:
		return "missing"
	case c.Degraded > 0:
		return "degraded"
	default:
		return "normal"
	}
}

// stripSVG draws health over time: one cell per bucket, oldest on the left;
// unit names what a cell's count counts (heartbeats of a node, nodes of a
// cluster).
func stripSVG(label, unit string, width time.Duration, cells []stripCell) template.HTML {
	const cw, ch, gap = 12, 18, 2
	w := len(cells)*(cw+gap) + 2
	var b strings.Builder
	missing := 0
	for _, c := range cells {
		if c.Count == 0 {
			missing++
		}
	}
	fmt.Fprintf(&b, `<svg class="strip" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="%d" height="%d" role="img" aria-label="%s">`, w, ch+2, w, ch+2,
		esc(fmt.Sprintf("Health of %s over the last %s in %d buckets of %s: %d without a heartbeat", label, humanDuration(width*time.Duration(len(cells))), len(cells), humanDuration(width), missing)))
	for i, c := range cells {
		fill := map[string]string{"missing": "#d9dde5", "degraded": "#e0a800", "normal": "#1e7d32"}[c.state()]
		fmt.Fprintf(&b, `<rect class="cell" data-state="%s" data-count="%d" x="%d" y="1" width="%d" height="%d" rx="2" fill="%s"><title>%s: %s, %d %s</title></rect>`,
			c.state(), c.Count, 1+i*(cw+gap), cw, ch, fill, c.Start.UTC().Format("15:04"), c.state(), c.Count, unit)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// humanDuration renders a duration for people (90m → "1h 30m").
func humanDuration(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", int(d.Hours()))
	default:
		return fmt.Sprintf("%dh %dm", int(d.Hours()), int(d.Minutes())%60)
	}
}

// rolloutSVG draws a cluster's snapshot roll-out: the share of members on
// their desired snapshot (green) and behind it (amber).
func rolloutSVG(cluster string, applied, lagging int) template.HTML {
	const w, h = 320, 16
	total := applied + lagging
	aw := 0
	if total > 0 {
		aw = applied * w / total
	}
	label := fmt.Sprintf("Snapshot roll-out of %s: %d of %d nodes on their desired snapshot, %d behind", cluster, applied, total, lagging)
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="rollout-bar" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="%d" height="%d" role="img" aria-label="%s" data-applied="%d" data-lagging="%d">`,
		w, h, w, h, esc(label), applied, lagging)
	fmt.Fprintf(&b, `<rect x="0" y="0" width="%d" height="%d" fill="#d9dde5"/>`, w, h)
	if aw > 0 {
		fmt.Fprintf(&b, `<rect class="applied" x="0" y="0" width="%d" height="%d" fill="#1e7d32"/>`, aw, h)
	}
	if lagging > 0 {
		fmt.Fprintf(&b, `<rect class="lagging" x="%d" y="0" width="%d" height="%d" fill="#e0a800"/>`, aw, w-aw, h)
	}
	fmt.Fprintf(&b, `<title>%s</title></svg>`, esc(label))
	return template.HTML(b.String())
}

// certMark is one certificate on the expiry timeline.
type certMark struct {
	Node      string
	Serial    string
	NotBefore time.Time
	NotAfter  time.Time
}

// certState judges a certificate by the share of its lifetime left: agents
// renew at two thirds, so under a third left means renewal is late ("late",
// amber) and under a sixth that it is failing ("soon", red).
func certState(c certMark, now time.Time) string {
	left := c.NotAfter.Sub(now)
	life := c.NotAfter.Sub(c.NotBefore)
	switch {
	case left <= 0:
		return "expired"
	case life > 0 && left < life/6:
		return "soon"
	case life > 0 && left < life/3:
		return "late"
	default:
		return "ok"
	}
}

// expirySVG draws certificate expiry on a time axis from now: one mark per
// certificate, coloured by certState; expired ones sit on the left edge.
func expirySVG(cluster string, now time.Time, certs []certMark) template.HTML {
	const w, left, right = 640, 30, 60
	span := 24 * time.Hour
	for _, c := range certs {
		if d := c.NotAfter.Sub(now); d > span {
			span = d
		}
	}
	height := 40 + len(certs)*16
	x := func(t time.Time) float64 {
		d := t.Sub(now)
		if d < 0 {
			d = 0
		}
		return left + float64(w-left-right)*float64(d)/float64(span)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="expiry" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="%d" height="%d" role="img" aria-label="%s">`,
		w, height, w, height, esc(fmt.Sprintf("Certificate expiry of %s: %d certificates over the next %s", cluster, len(certs), humanSpan(span))))
	fmt.Fprintf(&b, `<line x1="%d" y1="20" x2="%d" y2="20" stroke="#5d6677" stroke-width="1"/>`, left, w-right)
	for i := 0; i <= 4; i++ {
		tick := span * time.Duration(i) / 4
		tx := x(now.Add(tick))
		label := "now"
		if i > 0 {
			label = "+" + humanSpan(tick)
		}
		fmt.Fprintf(&b, `<line x1="%.1f" y1="16" x2="%.1f" y2="24" stroke="#5d6677"/><text x="%.1f" y="12" text-anchor="middle" font-size="10">%s</text>`, tx, tx, tx, esc(label))
	}
	sorted := append([]certMark(nil), certs...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].NotAfter.Before(sorted[j].NotAfter) })
	for i, c := range sorted {
		state := certState(c, now)
		col := map[string]string{"expired": "#b3261e", "soon": "#b3261e", "late": "#9a6700", "ok": "#1e7d32"}[state]
		y := 36 + i*16
		cx := x(c.NotAfter)
		end := cx > w/2
		fmt.Fprintf(&b, `<g class="cert" data-state="%s"><circle cx="%.1f" cy="%d" r="5" fill="%s"/><text x="%.1f" y="%d" font-size="11" text-anchor="%s">%s</text><title>%s: certificate %s expires %s (%s)</title></g>`,
			state, cx, y, col, cx+map[bool]float64{true: -8, false: 8}[end], y+4, map[bool]string{true: "end", false: "start"}[end], esc(c.Node),
			esc(c.Node), esc(c.Serial), c.NotAfter.UTC().Format("2006-01-02 15:04Z"), esc(humanLeft(c.NotAfter.Sub(now))))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// humanSpan renders an axis distance: hours up to two days, then days.
func humanSpan(d time.Duration) string {
	if d < 48*time.Hour {
		return humanDuration(d.Round(time.Hour))
	}
	return humanDays(d)
}

// humanDays renders a long duration in days.
func humanDays(d time.Duration) string {
	days := int(d.Hours() / 24)
	if days == 1 {
		return "1 day"
	}
	return fmt.Sprintf("%d days", days)
}

// humanLeft says how long until (or since) an expiry.
func humanLeft(d time.Duration) string {
	switch {
	case d <= 0:
		return "expired"
	case d < 48*time.Hour:
		return "in " + humanDuration(d.Round(time.Minute))
	default:
		return "in " + humanDays(d)
	}
}
