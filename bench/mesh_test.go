package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rap-fabric/core/agent/meshrun"
	"github.com/rap-fabric/core/domain"
	"github.com/rap-fabric/core/internal/testwait"
	"github.com/rap-fabric/core/mesh/channel"
	"github.com/rap-fabric/core/mesh/e2e"
	"github.com/rap-fabric/core/snapshot"
)

// Mesh timers of these benchmarks: the agent's production defaults (zero
// values: probes every 250 ms, a probe lost after 4 × smoothed RTT but at
// least 400 ms and at most 1.5 s, a link down after two lost in a row), so the failover figure is what a deployed
// agent does. Only the routing and link ticks are shortened (20 ms) to keep
// the timer granularity out of the figure.
const (
	benchProbeInterval time.Duration = 0
	benchProbeTimeout  time.Duration = 0
)

type benchNode struct {
	id        string
	priv, pub channel.Key
	n         *meshrun.Node
}

// startMesh starts one meshrun node per id on loopback UDP. noDirect lists,
// per node, the peers it never links to directly. Nothing runs until
// runMesh.
func startMesh(b *testing.B, ids []string, noDirect map[string][]string) map[string]*benchNode {
	nodes := map[string]*benchNode{}
	for _, id := range ids {
		priv, pub, err := channel.GenerateKey(rand.Reader)
		if err != nil {
			b.Fatal(err)
		}
		n, err := meshrun.New(meshrun.Config{ClusterID: "bench", NodeID: id, NoiseKey: priv, Listen: "127.0.0.1:0", NoDirect: noDirect[id],
			Timers: channel.Timers{RekeyTimeout: 200 * time.Millisecond, MaxBackoff: time.Second, KeepaliveTimeout: 300 * time.Millisecond,
				RekeyAfterTime: 10 * time.Minute, RejectAfterTime: 15 * time.Minute, RekeyAttemptTime: 5 * time.Second, PersistentKeepalive: time.Second},
			LinkTick: 20 * time.Millisecond, ProbeInterval: benchProbeInterval, ProbeTimeout: benchProbeTimeout, Tick: 20 * time.Millisecond, RouteUpdate: time.Second})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = n.Close() })
		nodes[id] = &benchNode{id: id, priv: priv, pub: pub, n: n}
	}
	return nodes
}

// runMesh gives every node its directory (endpointOf says where node `of`
// reaches peer `peer`) and runs them until the benchmark ends.
func runMesh(b *testing.B, nodes map[string]*benchNode, endpointOf func(of, peer string) netip.AddrPort) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	b.Cleanup(func() { cancel(); wg.Wait() })
	ids := make([]string, 0, len(nodes))
	for id := range nodes {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, of := range ids {
		d := meshrun.Directory{Version: 1, Relay: true}
		for _, peer := range ids {
			if peer == of {
				continue
			}
			d.Peers = append(d.Peers, meshrun.Peer{NodeID: peer, NoiseKey: nodes[peer].pub, Endpoints: []netip.AddrPort{endpointOf(of, peer)},
				Relation: snapshot.RelationMesh, Roles: []domain.Role{domain.RoleRelayNode}})
		}
		if _, err := nodes[of].n.Update(d); err != nil {
			b.Fatal(err)
		}
		n := nodes[of].n
		wg.Add(1)
		go func() { defer wg.Done(); _ = n.Run(ctx) }()
	}
}

func realEndpoint(nodes map[string]*benchNode) func(of, peer string) netip.AddrPort {
	return func(_, peer string) netip.AddrPort { return nodes[peer].n.LocalAddr() }
}

func nextHop(n *meshrun.Node, dst string) string {
	for _, r := range n.Status().Routes {
		if r.Destination == dst {
			return r.NextHop
		}
	}
	return ""
}

func linkUp(n *meshrun.Node, peer string) bool {
	for _, l := range n.Status().Links {
		if l.NodeID == peer {
			return l.State == "up"
		}
	}
	return false
}

// dialEcho opens an end-to-end flow to dst's echo service and waits until a
// message comes back over it.
func dialEcho(b *testing.B, from *benchNode, dst string) *e2e.Conn {
	var c *e2e.Conn
	testwait.For(b, 10*time.Second, from.id+" echoes with "+dst, func() (bool, string) {
		if c == nil {
			var err error
			if c, err = from.n.DialEcho(dst); err != nil {
				return false, err.Error()
			}
		}
		if _, err := echoOnce(c, []byte("warm-up"), 200*time.Millisecond); err != nil {
			return false, err.Error()
		}
		return true, ""
	})
	b.Cleanup(func() { _ = c.Close() })
	return c
}

// echoOnce sends msg and waits for the same bytes to come back.
func echoOnce(c *e2e.Conn, msg []byte, timeout time.Duration) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	start := time.Now()
	if err := c.Send(msg); err != nil {
		return 0, err
	}
	for {
		got, err := c.Recv(ctx)
		if err != nil {
			return 0, err
		}
		if bytes.Equal(got, msg) {
			return time.Since(start), nil
		}
		// A late answer to an earlier message: keep waiting for ours.
	}
}

// udpEcho is the raw UDP baseline: a ping-pong over two loopback sockets,
// no crypto, no routing.
type udpEcho struct {
	cli  *net.UDPConn
	srv  netip.AddrPort
	buf  []byte
	stop func()
}

func newUDPEcho(b *testing.B) *udpEcho {
	srv, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	cli, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for {
			n, from, err := srv.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			_, _ = srv.WriteToUDPAddrPort(buf[:n], from)
		}
	}()
	u := &udpEcho{cli: cli, srv: srv.LocalAddr().(*net.UDPAddr).AddrPort(), buf: make([]byte, 2048)}
	u.stop = func() { _ = srv.Close(); _ = cli.Close(); <-done }
	b.Cleanup(u.stop)
	return u
}

func (u *udpEcho) once(msg []byte) (time.Duration, error) {
	start := time.Now()
	if _, err := u.cli.WriteToUDPAddrPort(msg, u.srv); err != nil {
		return 0, err
	}
	_ = u.cli.SetReadDeadline(time.Now().Add(time.Second))
	n, _, err := u.cli.ReadFromUDPAddrPort(u.buf)
	if err != nil {
		return 0, err
	}
	if !bytes.Equal(u.buf[:n], msg) {
		return 0, fmt.Errorf("raw udp echo returned other bytes")
	}
	return time.Since(start), nil
}

func usOf(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// BenchmarkMeshEchoRTT measures one 64-byte echo round trip over real
// loopback UDP, three ways in the same run and interleaved (each iteration
// does one of each): raw UDP ping-pong (the baseline), an end-to-end echo
// to a directly linked meshrun node (Noise link + end-to-end session), and
// an end-to-end echo through one relay (b and c never link directly; a
// forwards). Reported: p50 and p99 in µs for each.
func BenchmarkMeshEchoRTT(b *testing.B) {
	nodes := startMesh(b, []string{"a", "b", "c"}, map[string][]string{"b": {"c"}, "c": {"b"}})
	runMesh(b, nodes, realEndpoint(nodes))
	testwait.For(b, 10*time.Second, "routes b→a direct and b→c via a", func() (bool, string) {
		return nextHop(nodes["b"].n, "a") == "a" && nextHop(nodes["b"].n, "c") == "a" && nextHop(nodes["c"].n, "b") == "a",
			fmt.Sprintf("%+v", nodes["b"].n.Status().Routes)
	})
	raw := newUDPEcho(b)
	direct := dialEcho(b, nodes["b"], "a")
	relay := dialEcho(b, nodes["b"], "c")
	fwd0 := nodes["a"].n.Status().E2EForwarded
	msg := make([]byte, 64)
	var rawS, directS, relayS []time.Duration
	sample := func(i int, record bool) {
		binary.BigEndian.PutUint64(msg, uint64(i))
		dr, err := raw.once(msg)
		if err != nil {
			b.Fatal("raw:", err)
		}
		dd, err := echoOnce(direct, msg, time.Second)
		if err != nil {
			b.Fatal("direct:", err)
		}
		dl, err := echoOnce(relay, msg, time.Second)
		if err != nil {
			b.Fatal("relay:", err)
		}
		if record {
			rawS, directS, relayS = append(rawS, dr), append(directS, dd), append(relayS, dl)
		}
	}
	for i := range 100 { // warm up
		sample(i, false)
	}
	i := 100
	for b.Loop() {
		sample(i, true)
		i++
	}
	b.StopTimer()
	if nodes["a"].n.Status().E2EForwarded <= fwd0 {
		b.Fatal("the relay forwarded nothing: the relayed echo did not cross a")
	}
	for _, r := range []struct {
		name string
		s    []time.Duration
	}{{"raw_udp", rawS}, {"direct", directS}, {"relay", relayS}} {
		b.ReportMetric(usOf(percentile(r.s, 0.5)), r.name+"_p50_us")
		b.ReportMetric(usOf(percentile(r.s, 0.99)), r.name+"_p99_us")
	}
	b.ReportMetric(float64(percentile(relayS, 0.5))/float64(percentile(directS, 0.5)), "relay/direct_p50")
	b.Logf("echo RTT over loopback UDP, %d samples each: raw UDP p50 %.0f µs p99 %.0f µs | direct p50 %.0f µs p99 %.0f µs | one relay p50 %.0f µs p99 %.0f µs",
		len(rawS), usOf(percentile(rawS, 0.5)), usOf(percentile(rawS, 0.99)), usOf(percentile(directS, 0.5)), usOf(percentile(directS, 0.99)),
		usOf(percentile(relayS, 0.5)), usOf(percentile(relayS, 0.99)))
}

// udpPair carries the UDP traffic of one node pair (u, v) through two
// loopback sockets: x faces u, y faces v. u's directory lists v at x, v's
// lists u at y. Packets can be delayed (one way) or dropped (the cut).
type udpPair struct {
	x, y  *net.UDPConn
	delay time.Duration
	drop  atomic.Bool
	wg    sync.WaitGroup
}

func newUDPPair(b *testing.B, u, v netip.AddrPort, delay time.Duration) *udpPair {
	p := &udpPair{delay: delay}
	for _, c := range []**net.UDPConn{&p.x, &p.y} {
		var err error
		if *c, err = net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}); err != nil {
			b.Fatal(err)
		}
	}
	p.wg.Add(2)
	go p.pump(p.x, p.y, v)
	go p.pump(p.y, p.x, u)
	b.Cleanup(func() { _ = p.x.Close(); _ = p.y.Close(); p.wg.Wait() })
	return p
}

// pump forwards what arrives on in, from out, to dst.
func (p *udpPair) pump(in, out *net.UDPConn, dst netip.AddrPort) {
	defer p.wg.Done()
	buf := make([]byte, 65536)
	for {
		n, _, err := in.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		if p.drop.Load() {
			continue
		}
		if p.delay <= 0 {
			_, _ = out.WriteToUDPAddrPort(buf[:n], dst)
			continue
		}
		pkt := bytes.Clone(buf[:n])
		time.AfterFunc(p.delay, func() { _, _ = out.WriteToUDPAddrPort(pkt, dst) })
	}
}

func (p *udpPair) addr(c *net.UDPConn) netip.AddrPort { return c.LocalAddr().(*net.UDPAddr).AddrPort() }

// BenchmarkMeshFailover measures failover over real loopback UDP: three
// meshrun nodes, every pair's traffic through a UDP pair forwarder; the
// relay's links (a–b, a–c) carry 250 µs of one-way delay so that b and c
// prefer their direct link. A trial cuts the direct b–c link (its forwarder
// drops every packet, in both directions; nothing is revoked or
// reconfigured) while b keeps sending echoes to c over one end-to-end flow,
// and measures the time from the cut to the first echo that comes back
// (over the relay a; checked with a's forwarded counter), then heals the
// link and waits for both routes to shortcut back to direct. Reported over
// 10 trials: median and max failover (ms), the median time until b saw the
// link down, and duplicated echoes (must be 0). The loop afterwards times
// echoes over the healed direct link.
func BenchmarkMeshFailover(b *testing.B) {
	const trials = 10
	nodes := startMesh(b, []string{"a", "b", "c"}, nil)
	addr := func(id string) netip.AddrPort { return nodes[id].n.LocalAddr() }
	bc := newUDPPair(b, addr("b"), addr("c"), 0)
	ab := newUDPPair(b, addr("a"), addr("b"), 250*time.Microsecond)
	ac := newUDPPair(b, addr("a"), addr("c"), 250*time.Microsecond)
	pairs := map[[2]string]*udpPair{{"b", "c"}: bc, {"a", "b"}: ab, {"a", "c"}: ac}
	runMesh(b, nodes, func(of, peer string) netip.AddrPort {
		if p, ok := pairs[[2]string{of, peer}]; ok {
			return p.addr(p.x)
		}
		p := pairs[[2]string{peer, of}]
		return p.addr(p.y)
	})
	direct := func() (bool, string) {
		return linkUp(nodes["b"].n, "c") && nextHop(nodes["b"].n, "c") == "c" && nextHop(nodes["c"].n, "b") == "b",
			fmt.Sprintf("b routes %+v; c routes %+v", nodes["b"].n.Status().Routes, nodes["c"].n.Status().Routes)
	}
	testwait.For(b, 15*time.Second, "direct routes b↔c and links to a", func() (bool, string) {
		ok, d := direct()
		return ok && linkUp(nodes["b"].n, "a") && linkUp(nodes["c"].n, "a"), d
	})
	conn := dialEcho(b, nodes["b"], "c")

	var failover, detect []time.Duration
	dups := 0
	seq := uint64(0)
	msg := make([]byte, 64)
	for trial := range trials {
		testwait.For(b, 15*time.Second, fmt.Sprintf("direct b↔c before trial %d", trial), direct)
		seq++
		binary.BigEndian.PutUint64(msg, seq)
		if _, err := echoOnce(conn, msg, time.Second); err != nil {
			b.Fatalf("trial %d: echo over the direct link: %v", trial, err)
		}
		fwd0 := nodes["a"].n.Status().E2EForwarded
		sent := map[uint64]bool{}
		got := map[uint64]int{}
		var down time.Duration
		cut := time.Now()
		bc.drop.Store(true)
		var first time.Duration
		for first == 0 {
			if time.Since(cut) > 10*time.Second {
				b.Fatalf("trial %d: no echo over the relay 10 s after the cut", trial)
			}
			seq++
			binary.BigEndian.PutUint64(msg, seq)
			sent[seq] = true
			_ = conn.Send(msg) // ErrNoRoute while no route is known: lost, like on a wire
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
			for {
				r, err := conn.Recv(ctx)
				if err != nil {
					break
				}
				if len(r) >= 8 {
					s := binary.BigEndian.Uint64(r)
					got[s]++
					if sent[s] && first == 0 {
						first = time.Since(cut)
					}
				}
			}
			cancel()
			if down == 0 && !linkUp(nodes["b"].n, "c") {
				down = time.Since(cut)
			}
		}
		if nodes["a"].n.Status().E2EForwarded <= fwd0 {
			b.Fatalf("trial %d: the first echo after the cut did not cross the relay", trial)
		}
		// Late answers to this trial's messages (a duplicate would show here).
		time.Sleep(50 * time.Millisecond)
		for {
			r, ok := conn.TryRecv()
			if !ok {
				break
			}
			if len(r) >= 8 {
				got[binary.BigEndian.Uint64(r)]++
			}
		}
		for _, n := range got {
			if n > 1 {
				dups += n - 1
			}
		}
		failover = append(failover, first)
		if down > 0 {
			detect = append(detect, down)
		}
		bc.drop.Store(false)
	}
	testwait.For(b, 15*time.Second, "direct b↔c after the last trial", direct)
	var healed []time.Duration
	for b.Loop() {
		seq++
		binary.BigEndian.PutUint64(msg, seq)
		d, err := echoOnce(conn, msg, time.Second)
		if err != nil {
			b.Fatal("echo over the healed link:", err)
		}
		healed = append(healed, d)
	}
	b.StopTimer()
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(percentile(failover, 0.5)), "failover_median_ms")
	b.ReportMetric(ms(slices.Max(failover)), "failover_max_ms")
	b.ReportMetric(ms(percentile(detect, 0.5)), "link_down_seen_median_ms")
	b.ReportMetric(float64(dups), "duplicated_echoes")
	b.ReportMetric(usOf(percentile(healed, 0.5)), "healed_direct_p50_us")
	b.Logf("failover over %d trials (probe interval and timeout: agent defaults): link cut → first echo over the relay: median %.0f ms, max %.0f ms; b saw the link down after median %.0f ms; %d duplicated echoes; all trials %v",
		trials, ms(percentile(failover, 0.5)), ms(slices.Max(failover)), ms(percentile(detect, 0.5)), dups, failover)
}
