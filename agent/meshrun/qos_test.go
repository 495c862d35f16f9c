package meshrun

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/rap-fabric/core/domain"
	"github.com/rap-fabric/core/internal/testwait"
	"github.com/rap-fabric/core/mesh/channel"
	"github.com/rap-fabric/core/mesh/e2e"
	"github.com/rap-fabric/core/mesh/qos"
	"github.com/rap-fabric/core/snapshot"
)

// startPair starts a and b linked directly on loopback UDP; cfg adjusts a's
// Config.
func startPair(t *testing.T, cfgA func(*Config)) map[string]*tnode {
	nodes := map[string]*tnode{}
	for _, id := range []string{"a", "b"} {
		priv, pub, err := channel.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		nodes[id] = &tnode{id: id, priv: priv, pub: pub}
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	for _, id := range []string{"a", "b"} {
		cfg := Config{ClusterID: "c1", NodeID: id, NoiseKey: nodes[id].priv, Listen: "127.0.0.1:0", Timers: fastTimers(),
			LinkTick: 20 * time.Millisecond, ProbeInterval: 50 * time.Millisecond, ProbeTimeout: 300 * time.Millisecond, Tick: 20 * time.Millisecond, RouteUpdate: time.Second}
		if id == "a" && cfgA != nil {
			cfgA(&cfg)
		}
		n, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = n.Close() })
		nodes[id].n = n
	}
	for _, id := range []string{"a", "b"} {
		d := Directory{Version: 1, Relay: true}
		for _, p := range []string{"a", "b"} {
			d.Peers = append(d.Peers, Peer{NodeID: p, NoiseKey: nodes[p].pub, Endpoints: ParseEndpoints(nodes[p].n.Endpoints()),
				Relation: snapshot.RelationMesh, Roles: []domain.Role{domain.RoleRelayNode}})
		}
		if _, err := nodes[id].n.Update(d); err != nil {
			t.Fatal(err)
		}
		n := nodes[id].n
		wg.Add(1)
		go func() { defer wg.Done(); _ = n.Run(ctx) }()
	}
	return nodes
}

// TestQoSClassesOrderBackedUpLinkOverLoopbackUDP paces a's link to b at
// 256 KiB/s, fills it with a backlog of bulk messages and then sends
// interactive and control messages: over real UDP sockets they arrive at b
// before the bulk backlog, while a later bulk message keeps its FIFO place.
func TestQoSClassesOrderBackedUpLinkOverLoopbackUDP(t *testing.T) {
	nodes := startPair(t, func(c *Config) { c.LinkRate, c.LinkBurst = 256<<10, 32<<10 })
	a, b := nodes["a"].n, nodes["b"].n
	type arrival struct {
		class qos.Class
		seq   uint32
	}
	var mu sync.Mutex
	var got []arrival
	b.HandleService("qos-test", func(c *e2e.Conn, msg []byte) {
		if len(msg) < 4 {
			return
		}
		mu.Lock()
		got = append(got, arrival{c.Class(), binary.BigEndian.Uint32(msg)})
		mu.Unlock()
	})
	testwait.For(t, 15*time.Second, "ping a→b", func() (bool, string) { return pingOK(a, "b") })
	conns := map[qos.Class]*e2e.Conn{}
	for _, c := range []qos.Class{qos.Control, qos.Interactive, qos.Bulk} {
		conn, err := a.DialServiceClass("b", "qos-test", c)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conns[c] = conn
	}
	msg := func(seq uint32, size int) []byte {
		m := make([]byte, size)
		binary.BigEndian.PutUint32(m, seq)
		return m
	}
	// Warm up: every flow established (one message each arrives).
	for _, conn := range conns {
		_ = conn.Send(msg(0, 16))
	}
	count := func() map[qos.Class]int {
		mu.Lock()
		defer mu.Unlock()
		m := map[qos.Class]int{}
		for _, x := range got {
			m[x.class]++
		}
		return m
	}
	testwait.For(t, 10*time.Second, "three flows established", func() (bool, string) {
		m := count()
		return m[qos.Control] >= 1 && m[qos.Interactive] >= 1 && m[qos.Bulk] >= 1, fmt.Sprint(m)
	})
	mu.Lock()
	got = nil
	mu.Unlock()
	before, _ := a.SendQueueStats("b")

	const nBulk, nHigh = 200, 5
	for i := 1; i <= nBulk; i++ { // 200 KB: ~0.65 s at 256 KiB/s after the 32 KiB burst
		if err := conns[qos.Bulk].Send(msg(uint32(i), 1000)); err != nil {
			t.Fatalf("bulk %d: %v", i, err)
		}
	}
	for i := 1; i <= nHigh; i++ {
		_ = conns[qos.Interactive].Send(msg(uint32(i), 100))
		_ = conns[qos.Control].Send(msg(uint32(i), 100))
	}
	_ = conns[qos.Bulk].Send(msg(nBulk+1, 1000)) // queued behind the backlog
	after, _ := a.SendQueueStats("b")
	if after.Queued-before.Queued < nBulk/2 {
		t.Fatalf("the link was not backed up: %+v → %+v", before, after)
	}
	testwait.For(t, 30*time.Second, "every message at b", func() (bool, string) {
		m := count()
		return m[qos.Control] == nHigh && m[qos.Interactive] == nHigh && m[qos.Bulk] == nBulk+1, fmt.Sprint(m)
	})
	mu.Lock()
	defer mu.Unlock()
	bulkBefore := map[qos.Class]int{}
	bulkSeen := 0
	lastBulk := uint32(0)
	for _, x := range got {
		switch x.class {
		case qos.Bulk:
			bulkSeen++
			if x.seq < lastBulk {
				t.Fatalf("bulk out of order: %d after %d", x.seq, lastBulk)
			}
			lastBulk = x.seq
		default:
			bulkBefore[x.class] = bulkSeen // bulk messages ahead of the last of this class
		}
	}
	// The burst lets ~32 bulk messages go before the link backs up; the
	// high classes must not wait for the rest of the backlog.
	for _, c := range []qos.Class{qos.Control, qos.Interactive} {
		if bulkBefore[c] > nBulk/2 {
			t.Fatalf("last %v message arrived after %d of %d bulk messages", c, bulkBefore[c], nBulk+1)
		}
	}
	if lastBulk != nBulk+1 {
		t.Fatalf("last bulk message %d", lastBulk)
	}
	t.Logf("bulk messages ahead of the last control: %d, of the last interactive: %d (of %d); queue %+v",
		bulkBefore[qos.Control], bulkBefore[qos.Interactive], nBulk+1, after)
}

// TestBackedUpLinkSendsBatchesOverLoopbackUDP: when several flows send to
// one peer at once the link backs up, and its queued frames leave in
// batches: runs of equal-sized packets go out as UDP GSO messages and the
// peer reads them coalesced (UDP_GRO). Every message arrives, each flow's
// in order. The link is paced (8 MiB/s, 64 KiB bursts) so that it backs up
// on every run: unpaced, eight senders on loopback often never outran the
// socket (0 of 1,600 frames queued, two runs in four on an idle machine).
func TestBackedUpLinkSendsBatchesOverLoopbackUDP(t *testing.T) {
	nodes := startPair(t, func(c *Config) { c.LinkRate, c.LinkBurst = 8<<20, 64<<10 })
	a, b := nodes["a"].n, nodes["b"].n
	const flows, perFlow = 8, 200
	var mu sync.Mutex
	last := map[uint32]uint32{} // flow → last sequence number
	got, warm := 0, map[uint32]bool{}
	b.HandleService("batch-test", func(c *e2e.Conn, msg []byte) {
		if len(msg) < 8 {
			return
		}
		f, seq := binary.BigEndian.Uint32(msg), binary.BigEndian.Uint32(msg[4:])
		mu.Lock()
		defer mu.Unlock()
		if seq == 0 {
			warm[f] = true
			return
		}
		if seq != last[f]+1 {
			t.Errorf("flow %d: message %d after %d", f, seq, last[f])
		}
		last[f] = seq
		got++
	})
	testwait.For(t, 15*time.Second, "ping a→b", func() (bool, string) { return pingOK(a, "b") })
	conns := make([]*e2e.Conn, flows)
	msg := func(f, seq uint32) []byte {
		m := make([]byte, 1200)
		binary.BigEndian.PutUint32(m, f)
		binary.BigEndian.PutUint32(m[4:], seq)
		return m
	}
	for f := range conns {
		conn, err := a.DialServiceClass("b", "batch-test", qos.Bulk)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conns[f] = conn
		_ = conn.Send(msg(uint32(f), 0))
	}
	testwait.For(t, 15*time.Second, "every flow established", func() (bool, string) {
		mu.Lock()
		var missing []int
		for f := range conns {
			if !warm[uint32(f)] {
				missing = append(missing, f)
			}
		}
		mu.Unlock()
		for _, f := range missing {
			_ = conns[f].Send(msg(uint32(f), 0))
		}
		return len(missing) == 0, fmt.Sprint(missing)
	})
	before, beforeB := a.SocketStats(), b.SocketStats()
	var wg sync.WaitGroup
	for f, conn := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := uint32(1); seq <= perFlow; seq++ {
				err := conn.Send(msg(uint32(f), seq))
				for errors.Is(err, qos.ErrFull) { // the queue's bound: back off, send again
					time.Sleep(time.Millisecond)
					err = conn.Send(msg(uint32(f), seq))
				}
				if err != nil {
					t.Errorf("flow %d message %d: %v", f, seq, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	testwait.For(t, 20*time.Second, "every message at b", func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		return got == flows*perFlow, fmt.Sprint(got)
	})
	after, afterB := a.SocketStats(), b.SocketStats()
	q, _ := a.SendQueueStats("b")
	t.Logf("queued %d of %d frames; %d GSO messages; %d coalesced reads at b", q.Queued, flows*perFlow, after.GSOSends-before.GSOSends, afterB.GROReads-beforeB.GROReads)
	if after.GSOSends == before.GSOSends || afterB.GROReads == beforeB.GROReads {
		t.Fatalf("no batched sends: %+v → %+v (b: %+v → %+v), queue %+v", before, after, beforeB, afterB, q)
	}
}
