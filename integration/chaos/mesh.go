package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/rap-fabric/core/agent/meshrun"
	"github.com/rap-fabric/core/agent/runtime"
)

// Mesh helpers for the mesh drill: agents that report the mesh capabilities,
// run a mesh socket on their host's address, and answer echo streams and
// mesh status over their status socket (a unix socket, reached from the test
// process outside the namespaces).

// meshPort is the advertised UDP mesh port of every agent: a DelayUDP in the
// agent's namespace listens there and forwards to the agent's real mesh
// socket on meshPort+1.
const meshPort = 7100

// meshDelay is added by DelayUDP to every datagram an agent receives, so a
// link's RTT (the routing cost) is dominated by it rather than by the
// sub-millisecond noise of veth pairs: a direct link costs about half of a
// path over one relay (as integration/failover_test.go does on loopback).
const meshDelay = 3 * time.Millisecond

// meshCaps are the capabilities a relay-node or core-mesh role needs.
const meshCaps = "can_route_mesh,can_accept_node_ingress"

// MeshEnroll runs `rap-node-agent enroll` reporting the mesh capabilities.
func (a *Agent) MeshEnroll(token, pin string, timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	out, err := a.Host.Exec(timeout, filepath.Join(a.env.Bin, "rap-node-agent"), "enroll", "--authority", a.env.APIAddrs(), "--token", token,
		"--ca-pin", pin, "--state", a.State, "--name", a.Name, "--machine-id-file", filepath.Join(a.Dir, "machine-id"), "--poll-interval", "300ms",
		"--capability", meshCaps)
	took := time.Since(start)
	_ = os.WriteFile(filepath.Join(a.env.Net.LogDir, a.Name+"-enroll.log"), out, 0o600)
	if err != nil {
		return took, fmt.Errorf("enroll %s: %w\n%s", a.Name, err, out)
	}
	return took, nil
}

// RunMesh starts `rap-node-agent run` with fast heartbeats and snapshot
// polling, the mesh capabilities and the mesh socket on the host's address
// (port meshPort+1), advertising meshPort (a DelayUDP, see StartDelay);
// extra is appended (e.g. --mesh-no-direct NODE).
func (a *Agent) RunMesh(extra ...string) error {
	args := append([]string{"run", "--state", a.State, "--interval", "300ms", "--desired-every", "600ms", "--degraded-after", "3",
		"--request-timeout", "1s", "--snapshot-wait", "2s", "--status-socket", a.socket(), "--capability", meshCaps,
		"--mesh-listen", a.Host.Addr(meshPort + 1), "--mesh-advertise", a.Host.Addr(meshPort), "--mesh-report-every", "500ms"}, extra...)
	p, err := a.Host.Start(a.Name, filepath.Join(a.env.Bin, "rap-node-agent"), args...)
	a.Proc = p
	return err
}

func (a *Agent) socket() string { return filepath.Join(a.Dir, "agent.sock") }

// Mesh returns the agent's one running mesh (links, routes).
func (a *Agent) Mesh() (runtime.MeshStatus, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	ms, err := runtime.MeshStatusVia(ctx, a.socket())
	if err != nil {
		return runtime.MeshStatus{}, err
	}
	if len(ms) != 1 {
		return runtime.MeshStatus{}, fmt.Errorf("%s: %d meshes running", a.Name, len(ms))
	}
	return ms[0], nil
}

// UpLinks counts the agent's links in state up.
func UpLinks(m runtime.MeshStatus) int {
	n := 0
	for _, l := range m.Links {
		if l.State == "up" {
			n++
		}
	}
	return n
}

// RouteTo returns the agent's route to dst, if any.
func RouteTo(m runtime.MeshStatus, dst string) (meshrun.RouteStatus, bool) {
	for _, r := range m.Routes {
		if r.Destination == dst {
			return r, true
		}
	}
	return meshrun.RouteStatus{}, false
}

// Stream runs a numbered echo stream from the agent to node dst through its
// status socket (POST /v1/mesh/stream): count messages, one every interval.
func (a *Agent) Stream(dst string, count int, every time.Duration) (meshrun.StreamReport, error) {
	hc := &http.Client{Timeout: time.Duration(count)*every + 20*time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", a.socket())
		}}}
	defer hc.CloseIdleConnections()
	body, _ := json.Marshal(runtime.StreamRequest{Node: dst, Count: count, IntervalMs: int(every / time.Millisecond), GraceMs: 1500})
	resp, err := hc.Post("http://agent/v1/mesh/stream", "application/json", bytes.NewReader(body))
	if err != nil {
		return meshrun.StreamReport{}, err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return meshrun.StreamReport{}, fmt.Errorf("stream %s→%s: %s: %s", a.Name, dst, resp.Status, data)
	}
	var r meshrun.StreamReport
	return r, json.Unmarshal(data, &r)
}

// FirstEchoAfter returns the first echo received at or after t whose relays
// satisfy ok, and when it came back.
func FirstEchoAfter(r meshrun.StreamReport, t time.Time, ok func(relays []string) bool) (meshrun.StreamEcho, time.Time, bool) {
	for _, e := range r.Echoes {
		if e.RecvUnixNs != 0 && e.RecvUnixNs >= t.UnixNano() && ok(e.Relays) {
			return e, time.Unix(0, e.RecvUnixNs), true
		}
	}
	return meshrun.StreamEcho{}, time.Time{}, false
}

// LastEchoBefore returns the last echo received before t whose relays
// satisfy ok.
func LastEchoBefore(r meshrun.StreamReport, t time.Time, ok func(relays []string) bool) (meshrun.StreamEcho, bool) {
	var out meshrun.StreamEcho
	found := false
	for _, e := range r.Echoes {
		if e.RecvUnixNs != 0 && e.RecvUnixNs < t.UnixNano() && ok(e.Relays) {
			out, found = e, true
		}
	}
	return out, found
}

// StreamSummary renders counts and path changes of a stream; names maps node
// ids to agent names.
func StreamSummary(r meshrun.StreamReport, names map[string]string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "sent %d received %d duplicates %d unexpected %d; paths:", r.Sent, r.Received, r.Duplicates, r.Unexpected)
	last := "?"
	for _, e := range r.Echoes {
		p := "lost"
		if e.RecvUnixNs != 0 {
			var hops []string
			for _, id := range e.Relays {
				if n := names[id]; n != "" {
					id = n
				}
				hops = append(hops, id)
			}
			p = "[" + strings.Join(hops, ",") + "]"
		}
		if p != last {
			fmt.Fprintf(&b, " #%d %s", e.Seq, p)
			last = p
		}
	}
	return b.String()
}

// DelayUDP stands in front of one agent's mesh socket inside the agent's
// namespace: datagrams to host:meshPort are delayed by delay and forwarded to
// host:meshPort+1 from one upstream socket per client, and the answers come
// back the same way (delayed again).
type DelayUDP struct {
	host   *Host
	front  net.PacketConn
	target *net.UDPAddr
	delay  time.Duration

	mu      sync.Mutex
	clients map[string]*net.UDPConn
	closed  bool
	wg      sync.WaitGroup
}

// StartDelay starts the agent's DelayUDP; the network's teardown stops it.
func (a *Agent) StartDelay(delay time.Duration) (*DelayUDP, error) {
	front, err := a.Host.ListenPacket("udp", a.Host.Addr(meshPort))
	if err != nil {
		return nil, err
	}
	d := &DelayUDP{host: a.Host, front: front, target: &net.UDPAddr{IP: a.Host.IP, Port: meshPort + 1}, delay: delay, clients: map[string]*net.UDPConn{}}
	d.wg.Add(1)
	go d.serve()
	a.env.Net.OnClose(d.Close)
	return d, nil
}

func (d *DelayUDP) serve() {
	defer d.wg.Done()
	buf := make([]byte, 64<<10)
	for {
		n, from, err := d.front.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		up := d.upstream(from)
		if up == nil {
			continue
		}
		pkt := bytes.Clone(buf[:n])
		time.AfterFunc(d.delay, func() { _, _ = up.Write(pkt) })
	}
}

func (d *DelayUDP) upstream(client net.Addr) *net.UDPConn {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	key := client.String()
	if up := d.clients[key]; up != nil {
		return up
	}
	var up *net.UDPConn
	if err := d.host.Run(func() error {
		var err error
		up, err = net.DialUDP("udp", &net.UDPAddr{IP: d.host.IP}, d.target)
		return err
	}); err != nil {
		return nil
	}
	d.clients[key] = up
	d.wg.Add(1)
	go d.back(up, client)
	return up
}

func (d *DelayUDP) back(up *net.UDPConn, client net.Addr) {
	defer d.wg.Done()
	buf := make([]byte, 64<<10)
	for {
		n, err := up.Read(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue // ECONNREFUSED while the agent is down
		}
		pkt := bytes.Clone(buf[:n])
		time.AfterFunc(d.delay, func() { _, _ = d.front.WriteTo(pkt, client) })
	}
}

// Close stops forwarding.
func (d *DelayUDP) Close() {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return
	}
	d.closed = true
	for _, c := range d.clients {
		_ = c.Close()
	}
	d.mu.Unlock()
	_ = d.front.Close()
	d.wg.Wait()
}
