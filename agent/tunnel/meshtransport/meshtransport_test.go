package meshtransport

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/rap-fabric/core/agent/meshrun"
	"github.com/rap-fabric/core/domain"
	"github.com/rap-fabric/core/internal/testwait"
	"github.com/rap-fabric/core/mesh/channel"
	"github.com/rap-fabric/core/snapshot"
)

// startMesh runs real meshrun nodes on loopback UDP: r relays, con and exit
// may not link directly, so their flows cross r.
func startMesh(t *testing.T) map[string]*meshrun.Node {
	ids := []string{"r", "con", "exit"}
	keys := map[string][2]channel.Key{}
	nodes := map[string]*meshrun.Node{}
	timers := channel.Timers{RekeyTimeout: 200 * time.Millisecond, MaxBackoff: time.Second, KeepaliveTimeout: 300 * time.Millisecond,
		RekeyAfterTime: 20 * time.Second, RejectAfterTime: 30 * time.Second, RekeyAttemptTime: 5 * time.Second, PersistentKeepalive: time.Second}
	for _, id := range ids {
		priv, pub, err := channel.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		keys[id] = [2]channel.Key{priv, pub}
		var nodi []string
		switch id {
		case "con":
			nodi = []string{"exit"}
		case "exit":
			nodi = []string{"con"}
		}
		n, err := meshrun.New(meshrun.Config{ClusterID: "c1", NodeID: id, NoiseKey: priv, Listen: "127.0.0.1:0", NoDirect: nodi, Timers: timers,
			LinkTick: 20 * time.Millisecond, ProbeInterval: 50 * time.Millisecond, ProbeTimeout: 300 * time.Millisecond, Tick: 20 * time.Millisecond, RouteUpdate: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = n.Close() })
		nodes[id] = n
	}
	d := meshrun.Directory{Version: 1, Relay: true}
	for _, id := range ids {
		d.Peers = append(d.Peers, meshrun.Peer{NodeID: id, NoiseKey: keys[id][1], Endpoints: meshrun.ParseEndpoints(nodes[id].Endpoints()),
			Relation: snapshot.RelationMesh, Roles: []domain.Role{domain.RoleRelayNode}})
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	for _, id := range ids {
		if _, err := nodes[id].Update(d); err != nil {
			t.Fatal(err)
		}
		n := nodes[id]
		wg.Add(1)
		go func() { defer wg.Done(); _ = n.Run(ctx) }()
	}
	return nodes
}

// exchange sends pkt until the other end receives it (routes converge).
func exchange(t *testing.T, from interface{ Send([]byte) error }, to interface {
	Recv(context.Context) ([]byte, error)
}, pkt []byte) {
	t.Helper()
	testwait.For(t, 15*time.Second, fmt.Sprintf("packet %q delivered", pkt), func() (bool, string) {
		err := from.Send(pkt)
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		got, rerr := to.Recv(ctx)
		return rerr == nil && bytes.Equal(got, pkt), fmt.Sprint(err, rerr)
	})
}

func TestConnectorExitOverRelayedMesh(t *testing.T) {
	nodes := startMesh(t)
	cfg := Config{ConnectionID: "conn-1", MaxPacket: 1400, Queue: 64}
	exit, err := NewExit(nodes["exit"], cfg, []string{"con"})
	if err != nil {
		t.Fatal(err)
	}
	defer exit.Close()
	con, err := NewConnector(nodes["con"], cfg, "")
	if err != nil {
		t.Fatal(err)
	}
	defer con.Close()
	if err := con.Send([]byte("x")); !errors.Is(err, ErrNoPeer) {
		t.Fatalf("send without exit: %v", err)
	}
	if err := exit.Send([]byte("x")); !errors.Is(err, ErrNoPeer) {
		t.Fatalf("exit send before any flow: %v", err)
	}
	con.SetExit("exit")
	exchange(t, con, exit, []byte("to-exit"))
	// The exit answers on the flow the packet came in on.
	exchange(t, exit, con, []byte("to-connector"))
	if nodes["r"].Status().E2EForwarded == 0 {
		t.Fatal("the relay forwarded nothing: the flow did not cross it")
	}

	// A node that is not a connector of the connection is not heard.
	intruder, err := NewConnector(nodes["r"], cfg, "exit")
	if err != nil {
		t.Fatal(err)
	}
	defer intruder.Close()
	testwait.For(t, 10*time.Second, "intruder's packets dropped as unauthorized", func() (bool, string) {
		_ = intruder.Send([]byte("intrude"))
		return exit.Stats().DroppedUnauthorized > 0, fmt.Sprintf("%+v", exit.Stats())
	})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	for {
		got, err := exit.Recv(ctx)
		if err != nil {
			break
		}
		if bytes.Equal(got, []byte("intrude")) {
			t.Fatal("the exit delivered an intruder's packet")
		}
	}

	// The lease moves to r: the connector follows.
	exit2, err := NewExit(nodes["r"], cfg, []string{"con"})
	if err != nil {
		t.Fatal(err)
	}
	defer exit2.Close()
	con.SetExit("r")
	if con.Exit() != "r" {
		t.Fatal(con.Exit())
	}
	exchange(t, con, exit2, []byte("to-new-exit"))
	exchange(t, exit2, con, []byte("back-from-new-exit"))

	// With a receiver set, packets bypass Recv.
	got := make(chan []byte, 16)
	con.SetReceiver(func(pkt []byte) {
		select {
		case got <- append([]byte(nil), pkt...):
		default:
		}
	})
	testwait.For(t, 10*time.Second, "packet to the receiver", func() (bool, string) {
		_ = exit2.Send([]byte("pushed"))
		select {
		case p := <-got:
			return bytes.Equal(p, []byte("pushed")), string(p)
		case <-time.After(200 * time.Millisecond):
			return false, "nothing"
		}
	})
	con.SetReceiver(nil)

	// Too large packets are dropped by the receiver, not delivered cut.
	big := bytes.Repeat([]byte{1}, 1401)
	_ = con.Send(big)
	testwait.For(t, 5*time.Second, "oversize packet counted", func() (bool, string) {
		return exit2.Stats().DroppedTooLarge == 1, fmt.Sprintf("%+v", exit2.Stats())
	})

	// Closing ends Recv.
	if err := con.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := con.Recv(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("recv after close: %v", err)
	}
	if err := con.Send([]byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("send after close: %v", err)
	}
}

func TestRingRecvAllocatesNothing(t *testing.T) {
	r := newRing(4, 64)
	msg := []byte("packet")
	ctx := context.Background()
	n := testing.AllocsPerRun(1000, func() {
		r.push(msg)
		if b, err := r.pop(ctx); err != nil || !bytes.Equal(b, msg) {
			t.Fatal(b, err)
		}
	})
	if n != 0 {
		t.Fatalf("%v allocations per packet", n)
	}
	for range 10 { // beyond the 4 buffers: dropped and counted, never blocking
		r.push(msg)
	}
	if r.queue.Load() == 0 {
		t.Fatal("full ring did not count drops")
	}
	if err := (&Config{}).validate(); !errors.Is(err, ErrConfig) {
		t.Fatal(err)
	}
}

func ipPkt(src, dst string, payload string) []byte {
	p := make([]byte, 20, 20+len(payload))
	p[0] = 0x45
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	copy(p[12:], s[:])
	copy(p[16:], d[:])
	return append(p, payload...)
}

// Two connectors carry one connection: the exit answers each client
// through the connector it was seen behind; a connector removed from the
// connection is no longer heard.
func TestExitServesTwoConnectors(t *testing.T) {
	nodes := startMesh(t)
	cfg := Config{ConnectionID: "conn-2", MaxPacket: 1400, Queue: 64}
	exit, err := NewExit(nodes["exit"], cfg, []string{"con", "r"})
	if err != nil {
		t.Fatal(err)
	}
	defer exit.Close()
	a, err := NewConnector(nodes["con"], cfg, "exit")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := NewConnector(nodes["r"], cfg, "exit")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	exchange(t, a, exit, ipPkt("198.18.2.2", "198.18.3.2", "from a"))
	exchange(t, b, exit, ipPkt("198.18.2.3", "198.18.3.2", "from b"))
	// b sent last, yet the reply to a's client goes to a.
	exchange(t, exit, a, ipPkt("198.18.3.2", "198.18.2.2", "to a"))
	exchange(t, exit, b, ipPkt("198.18.3.2", "198.18.2.3", "to b"))

	exit.SetConnectors([]string{"con"})
	before := exit.Stats().DroppedUnauthorized
	testwait.For(t, 5*time.Second, "removed connector not heard", func() (bool, string) {
		_ = b.Send(ipPkt("198.18.2.3", "198.18.3.2", "still b"))
		return exit.Stats().DroppedUnauthorized > before, fmt.Sprintf("%+v", exit.Stats())
	})
	// b's flow was the last heard: with it gone there is no fallback flow
	// until a sends again.
	if err := exit.Send(ipPkt("198.18.3.2", "198.18.2.3", "to removed b")); !errors.Is(err, ErrNoPeer) {
		t.Fatalf("send to a removed connector's client: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if got, err := b.Recv(ctx); err == nil {
		t.Fatalf("removed connector still answered: %q", got)
	}
}
