package chaos

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rap-fabric/core/agent/meshrun"
	"github.com/rap-fabric/core/internal/testwait"
)

const (
	meshEvery    = 20 * time.Millisecond // one echo every meshEvery
	meshCount    = 300                   // echoes of a fault stream (6 s)
	meshFaultAt  = time.Second           // fault injected this long into a fault stream
	meshFailover = 5 * time.Second       // cut/kill → first echo over the new route
	meshShortcut = 30 * time.Second      // heal → first direct echo
	// meshDetect bounds failure detectable (e1's link to e2 down_since) →
	// first echo over the relay route (issue 9); the stream samples the route
	// only every meshEvery, so that is allowed on top as slack.
	meshDetect = time.Second
)

// TestDrillMeshFiveAgents: five agents in five namespaces — relays r1, r2
// (relay-node) and edges e1, e2, e3 (core-mesh: they link directly to each
// other, which a non-mesh consumer never does) — with roles assigned through
// the owner API so the snapshots carry the peer directories. e3 is never
// linked directly to e1 or e2 (--mesh-no-direct on both sides), so e1→e3
// crosses a single relay and e1–e2 can only fail over through r1 or r2.
// Echo e1→e2 over the direct link and e1→e3 over one relay; an nftables cut
// of e1–e2 during a numbered echo stream moves it to a relay (time from cut
// to first relayed echo, nothing delivered twice); heal → back to direct;
// cut again and kill -9 the relay in use → rerouted through the other.
func TestDrillMeshFiveAgents(t *testing.T) {
	requireChaos(t)
	e := NewEnv(t, Options{Name: "M1"})
	w := e.StartWorkload(opsPerSecond)
	token, pin, err := e.CreateClusterAndToken("m1-mesh", 5)
	if err != nil {
		t.Fatal(err)
	}
	names := []string{"r1", "r2", "e1", "e2", "e3"}
	ag := map[string]*Agent{}
	for i, n := range names {
		ag[n] = e.AddAgent(n, byte(octetAgent+i))
	}
	errs := make(chan error, len(names))
	for _, n := range names {
		go func(a *Agent) {
			_, err := a.MeshEnroll(token, pin, 60*time.Second)
			errs <- err
		}(ag[n])
	}
	for range names {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	// Node ids are needed for --mesh-no-direct: read them from the state
	// files (no agent runs yet).
	node := map[string]string{}
	for _, n := range names {
		st, err := ag[n].Status()
		if err != nil || st.NodeID == "" {
			t.Fatalf("node id of %s: %v (%+v)", n, err, st)
		}
		node[n] = st.NodeID
	}
	nameOf := map[string]string{}
	for n, id := range node {
		nameOf[id] = n
	}
	e.Event("5 agents enrolled: %s", idList(names, node))
	extra := map[string][]string{
		"e1": {"--mesh-no-direct", node["e3"]},
		"e2": {"--mesh-no-direct", node["e3"]},
		"e3": {"--mesh-no-direct", node["e1"], "--mesh-no-direct", node["e2"]},
	}
	for _, n := range names {
		if _, err := ag[n].StartDelay(meshDelay); err != nil {
			t.Fatal(err)
		}
		if err := ag[n].RunMesh(extra[n]...); err != nil {
			t.Fatal(err)
		}
	}
	role := map[string]string{"r1": "relay-node", "r2": "relay-node", "e1": "core-mesh", "e2": "core-mesh", "e3": "core-mesh"}
	for _, n := range names {
		var last error
		deadline := time.Now().Add(20 * time.Second)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			// Retried until the heartbeat carrying the capabilities is stored.
			_, last = e.API.Do(ctx, http.MethodPost, "/v1/clusters/m1-mesh/nodes/"+node[n]+"/roles", map[string]any{"role": role[n]}, nil, nil)
			cancel()
			if last == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("assign %s to %s: %v", role[n], n, last)
			}
			time.Sleep(300 * time.Millisecond)
		}
	}
	e.Event("roles assigned through the owner API: r1, r2 relay-node; e1, e2, e3 core-mesh")
	// Links expected up: e1, e2: 3 (each other, r1, r2); e3: 2; relays: 4.
	wantUp := map[string]int{"r1": 4, "r2": 4, "e1": 3, "e2": 3, "e3": 2}
	meshUp := time.Now()
	for _, n := range names {
		deadline := time.Now().Add(60 * time.Second)
		for {
			m, err := ag[n].Mesh()
			routes := 0
			for _, o := range names {
				if _, ok := RouteTo(m, node[o]); ok && o != n {
					routes++
				}
			}
			if err == nil && UpLinks(m) == wantUp[n] && routes == 4 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("mesh of %s not up within 60s: %v, %d links up (want %d), %d routes: %+v", n, err, UpLinks(m), wantUp[n], routes, m.Status)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	e.Event("mesh up: every agent has its links and routes to the 4 others (%.1fs)", time.Since(meshUp).Seconds())

	e1, e2 := ag["e1"], ag["e2"]
	isRelay := func(id string) bool { return id == node["r1"] || id == node["r2"] }
	direct := func(r []string) bool { return len(r) == 0 }
	oneRelay := func(r []string) bool { return len(r) == 1 && isRelay(r[0]) }
	var streams []meshrun.StreamReport
	totals := func() (sent, recv, dup, unexp int) {
		for _, r := range streams {
			sent, recv, dup, unexp = sent+r.Sent, recv+r.Received, dup+r.Duplicates, unexp+r.Unexpected
		}
		return
	}
	cut := func(on bool) {
		var err error
		if on {
			err = e.Net.Partition([]*Host{e1.Host}, []*Host{e2.Host})
		} else {
			err = e.Net.Heal()
		}
		if err != nil {
			t.Fatal(err)
		}
	}

	// 1. Echo over the direct link e1→e2 (once both ends route directly).
	directRoutes := func() bool {
		return directRoute(e1, node["e2"]) && directRoute(e2, node["e1"])
	}
	testwait.Until(t, 15*time.Second, "direct routes e1↔e2", directRoutes)
	rep, err := e1.Stream(node["e2"], 50, meshEvery)
	if err != nil {
		t.Fatal(err)
	}
	streams = append(streams, rep)
	directOK := rep.Received == rep.Sent && rep.Duplicates == 0 && allEchoes(rep, direct)
	e.Event("e1→e2 direct: %s", StreamSummary(rep, nameOf))

	// 2. Echo over a single relay e1→e3 (never linked directly). The edges
	// (core-mesh) may carry traffic too, so with sub-millisecond links the
	// distance vector may briefly prefer e1→e2→r→e3: wait until both ends
	// hold a two-hop route through r1 or r2, then stream (retried, attempts
	// reported, until one stream crosses exactly one relay throughout).
	relayOK, relayTries := false, 0
	var relayRep meshrun.StreamReport
	deadline := time.Now().Add(15 * time.Second)
	for !relayOK && time.Now().Before(deadline) {
		if !twoHopViaRelay(e1, node["e3"], isRelay) || !twoHopViaRelay(ag["e3"], node["e1"], isRelay) {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		relayTries++
		r, err := e1.Stream(node["e3"], 50, meshEvery)
		if err != nil {
			continue
		}
		streams = append(streams, r)
		relayRep = r
		relayOK = r.Received == r.Sent && r.Duplicates == 0 && allEchoes(r, oneRelay)
	}
	e.Event("e1→e3 over one relay (%d streams): %s", relayTries, StreamSummary(relayRep, nameOf))

	// 3. Cut e1–e2 during a stream: it moves to a relay route.
	faultStream := func(fault func()) (meshrun.StreamReport, time.Time, error) {
		type res struct {
			r   meshrun.StreamReport
			err error
		}
		ch := make(chan res, 1)
		go func() {
			r, err := e1.Stream(node["e2"], meshCount, meshEvery)
			ch <- res{r, err}
		}()
		time.Sleep(meshFaultAt)
		at := time.Now()
		fault()
		r := <-ch
		return r.r, at, r.err
	}
	testwait.Until(t, 15*time.Second, "direct routes e1↔e2 before the cut", directRoutes)
	downCh := make(chan linkDown, 1)
	rep, cutAt, err := faultStream(func() {
		cut(true)
		go func() { downCh <- watchDown(e1, node["e2"], 15*time.Second) }()
	})
	if err != nil {
		t.Fatal(err)
	}
	down := <-downCh
	streams = append(streams, rep)
	e.Event("cut e1–e2 (nftables) 1s into a %d-echo stream: %s", meshCount, StreamSummary(rep, nameOf))
	_, beforeCut := LastEchoBefore(rep, cutAt, direct)
	fo, foAt, foOK := FirstEchoAfter(rep, cutAt, oneRelay)
	failover := foAt.Sub(cutAt)
	stayed := foOK
	for _, x := range rep.Echoes {
		if foOK && x.RecvUnixNs != 0 && x.SentUnixNs > fo.SentUnixNs && !oneRelay(x.Relays) {
			stayed = false
		}
	}
	failDup := rep.Duplicates + rep.Unexpected
	foGap := echoGap(rep, cutAt, foAt)
	if foOK {
		e.Event("failover direct → relay %s: cut → first relayed echo %.0fms (seq %d); last echo before it → it %.0fms",
			nameOf[fo.Relays[0]], ms(failover), fo.Seq, ms(foGap))
	}
	detectOK := foOK && down.err == nil
	var detect time.Duration
	detectDetail := fmt.Sprintf("first relayed echo %v; e1's link to e2: %v", foOK, down.err)
	if detectOK {
		detect = foAt.Sub(down.since)
		detectOK = detect <= meshDetect+meshEvery
		detectDetail = fmt.Sprintf("e1→e2 link down_since %s (%.0fms after the cut, read as down %.0fms after it) → first relayed echo %.0fms",
			down.since.Format(time.RFC3339Nano), ms(down.since.Sub(cutAt)), ms(down.seen.Sub(cutAt)), ms(detect))
		e.Event("detection → reroute: %s", detectDetail)
	}

	// 4. Heal: the route shortcuts back to the direct link.
	healAt := time.Now()
	cut(false)
	e.Event("heal e1–e2")
	var shortcut time.Duration
	shortcutOK := false
	for time.Since(healAt) < meshShortcut {
		r, err := e1.Stream(node["e2"], 50, meshEvery)
		if err == nil {
			streams = append(streams, r)
			if _, at, ok := FirstEchoAfter(r, healAt, direct); ok && r.Duplicates == 0 {
				shortcut, shortcutOK = at.Sub(healAt), true
				e.Event("shortcut relay → direct: heal → first direct echo %.0fms: %s", ms(shortcut), StreamSummary(r, nameOf))
				break
			}
		}
	}

	// 5. Cut again, find the relay in use, kill it during a stream.
	cut(true)
	e.Event("cut e1–e2 again")
	// Wait until both ends route over a relay and a short stream crosses
	// one; the relay it crosses is the one in use.
	var via string
	deadline = time.Now().Add(20 * time.Second)
	for via == "" && time.Now().Before(deadline) {
		if !routesViaRelay(e1, node["e2"], isRelay) || !routesViaRelay(e2, node["e1"], isRelay) {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		r, err := e1.Stream(node["e2"], 25, meshEvery)
		if err == nil && r.Received == r.Sent && allEchoes(r, oneRelay) {
			streams = append(streams, r)
			via = r.Echoes[len(r.Echoes)-1].Relays[0]
		}
	}
	if via == "" {
		t.Fatalf("e1→e2 not carried over a relay within 20s of the second cut")
	}
	e.Event("e1→e2 over relay %s after the second cut", nameOf[via])
	// The relay in use is e1's next hop to e2 at the moment of the kill (the
	// two relay paths cost the same, so it may have changed since).
	var victim, other *Agent
	rep, killAt, err := faultStream(func() {
		if m, err := e1.Mesh(); err == nil {
			if r, ok := RouteTo(m, node["e2"]); ok && isRelay(r.NextHop) {
				via = r.NextHop
			}
		}
		victim, other = ag[nameOf[via]], ag["r1"]
		if victim == other {
			other = ag["r2"]
		}
		victim.Proc.Kill9()
	})
	if err != nil {
		t.Fatal(err)
	}
	streams = append(streams, rep)
	e.Event("kill -9 relay %s (in use) 1s into a %d-echo stream: %s", victim.Name, meshCount, StreamSummary(rep, nameOf))
	rr, rrAt, rrOK := FirstEchoAfter(rep, killAt, func(r []string) bool { return slices.Equal(r, []string{node[other.Name]}) })
	reroute := rrAt.Sub(killAt)
	lastOld, lastOldOK := LastEchoBefore(rep, killAt, func(r []string) bool { return true })
	wasInUse := lastOldOK && slices.Equal(lastOld.Relays, []string{via})
	rrGap := echoGap(rep, killAt, rrAt)
	if rrOK {
		e.Event("reroute %s → %s: kill → first echo through %s %.0fms (seq %d); last echo before it → it %.0fms",
			victim.Name, other.Name, other.Name, ms(reroute), rr.Seq, ms(rrGap))
	}
	killDup := rep.Duplicates + rep.Unexpected
	if err := e.Net.Heal(); err != nil {
		t.Fatal(err)
	}

	sent, recv, dup, unexp := totals()
	r := finish(t, e, w, "mesh routing across five agents: direct, relay, failover, shortcut, relay loss", func(DBState) []Check {
		return []Check{
			{Name: "echo over the direct link e1→e2", OK: directOK, Detail: StreamSummary(streams[0], nameOf)},
			{Name: "echo over a single relay e1→e3", OK: relayOK, Detail: fmt.Sprintf("%d streams; last: %s", relayTries, StreamSummary(relayRep, nameOf))},
			{Name: fmt.Sprintf("cut e1–e2 → echoes over a relay within %v, and stay there", meshFailover), OK: beforeCut && foOK && stayed && failover <= meshFailover,
				Detail: fmt.Sprintf("direct before the cut %v; first relayed echo %.0fms after the cut; later echoes all relayed %v", beforeCut, ms(failover), stayed)},
			{Name: fmt.Sprintf("failure detectable (link down_since) → first echo over a relay within %v (+%v echo interval)", meshDetect, meshEvery), OK: detectOK, Detail: detectDetail},
			{Name: "no echo delivered twice across the cut", OK: failDup == 0, Detail: fmt.Sprintf("%d duplicates or unexpected", failDup)},
			{Name: fmt.Sprintf("heal → back to the direct link within %v", meshShortcut), OK: shortcutOK, Detail: fmt.Sprintf("first direct echo %.0fms after the heal", ms(shortcut))},
			{Name: fmt.Sprintf("kill -9 the relay in use → rerouted through the other relay within %v", meshFailover), OK: wasInUse && rrOK && reroute <= meshFailover && killDup == 0,
				Detail: fmt.Sprintf("%s killed (carried the last echo before the kill: %v); first echo through %s %.0fms after; %d duplicates or unexpected", victim.Name, wasInUse, other.Name, ms(reroute), killDup)},
		}
	})
	r.Notes = append(r.Notes,
		fmt.Sprintf("echoes: %d streams, %d sent, %d received, %d duplicates, %d unexpected", len(streams), sent, recv, dup, unexp),
		fmt.Sprintf("times: failover (cut → first relayed echo) %.0fms, echo gap %.0fms; shortcut (heal → first direct echo) %.0fms; reroute (relay killed → first echo via the other relay) %.0fms, echo gap %.0fms",
			ms(failover), ms(foGap), ms(shortcut), ms(reroute), ms(rrGap)),
		fmt.Sprintf("detection → reroute (e1's link to e2 down_since → first relayed echo) %.0fms; issue 9 asks ≤ 1 s, checked with the %v echo interval as slack (a negative figure means the route moved before the link was declared down)", ms(detect), meshEvery),
		fmt.Sprintf("every agent receives its mesh datagrams through a %v delay in its own namespace, so a direct link costs half of a one-relay path", meshDelay),
		"edges carry core-mesh (a non-mesh node only gets uplinks in its directory, so two edges could never link directly); e3 is kept off direct links to e1 and e2 with --mesh-no-direct")
	e.Emit(r)
}

func allEchoes(r meshrun.StreamReport, ok func([]string) bool) bool {
	for _, x := range r.Echoes {
		if x.RecvUnixNs != 0 && !ok(x.Relays) {
			return false
		}
	}
	return r.Received > 0
}

func idList(names []string, node map[string]string) string {
	var s []string
	for _, n := range names {
		s = append(s, n+"="+node[n])
	}
	return strings.Join(s, " ")
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// routesViaRelay reports whether a's route to dst goes through a relay.
func routesViaRelay(a *Agent, dst string, isRelay func(string) bool) bool {
	m, err := a.Mesh()
	if err != nil {
		return false
	}
	r, ok := RouteTo(m, dst)
	return ok && isRelay(r.NextHop)
}

// twoHopViaRelay reports whether a's route to dst has two hops through a
// relay.
func twoHopViaRelay(a *Agent, dst string, isRelay func(string) bool) bool {
	m, err := a.Mesh()
	if err != nil {
		return false
	}
	r, ok := RouteTo(m, dst)
	return ok && r.Hops == 2 && isRelay(r.NextHop)
}

// directRoute reports whether a routes to dst over their direct link.
func directRoute(a *Agent, dst string) bool {
	m, err := a.Mesh()
	if err != nil {
		return false
	}
	r, ok := RouteTo(m, dst)
	return ok && r.Hops == 1 && r.NextHop == dst
}

// echoGap is the time from the last echo received before t to to (0 when
// none came back before t).
func echoGap(r meshrun.StreamReport, t, to time.Time) time.Duration {
	last, ok := LastEchoBefore(r, t, func([]string) bool { return true })
	if !ok || to.IsZero() {
		return 0
	}
	return to.Sub(time.Unix(0, last.RecvUnixNs))
}

// linkDown is what watchDown saw: the link's down_since and when it was first
// read as down.
type linkDown struct {
	since, seen time.Time
	err         error
}

// watchDown polls a's mesh status until its link to peer reports state
// "down" with a down_since, or timeout passes.
func watchDown(a *Agent, peer string, timeout time.Duration) linkDown {
	last := "no status"
	for end := time.Now().Add(timeout); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		m, err := a.Mesh()
		if err != nil {
			last = err.Error()
			continue
		}
		for _, l := range m.Links {
			if l.NodeID != peer {
				continue
			}
			last = fmt.Sprintf("state %s down_since %v", l.State, l.DownSince)
			if l.State == "down" && !l.DownSince.IsZero() {
				return linkDown{since: l.DownSince, seen: time.Now()}
			}
		}
	}
	return linkDown{err: fmt.Errorf("link to %s not reported down within %v: last %s", peer, timeout, last)}
}
