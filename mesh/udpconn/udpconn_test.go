package udpconn

import (
	"crypto/rand"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/rap-fabric/core/mesh/channel"
)

// udpNode is a channel endpoint on a real loopback socket.
type udpNode struct {
	conn *Conn
	ep   *channel.Endpoint
	got  chan []byte
}

func newUDPNode(t testing.TB, conn *Conn, cluster string, prefix uint8, deliver func(channel.Key, []byte)) *udpNode {
	t.Helper()
	priv, _, err := channel.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	n := &udpNode{conn: conn, got: make(chan []byte, 1024)}
	cfg := channel.DefaultConfig()
	cfg.ClusterID, cfg.PrivateKey, cfg.IndexPrefix = cluster, priv, prefix
	cfg.Send = conn.Send
	cfg.Authorize = func([]byte) error { return nil }
	cfg.Deliver = deliver
	if deliver == nil {
		cfg.Deliver = func(_ channel.Key, p []byte) {
			select {
			case n.got <- append([]byte(nil), p...):
			default:
			}
		}
	}
	n.ep, err = channel.NewEndpoint(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.Attach(prefix, n.ep); err != nil {
		t.Fatal(err)
	}
	return n
}

func listen(t testing.TB) *Conn {
	t.Helper()
	c, err := ListenUDP("127.0.0.1:0", Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// ticker drives Tick on the endpoints until the test ends.
func ticker(t testing.TB, eps ...*channel.Endpoint) {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tk := time.NewTicker(50 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tk.C:
				for _, e := range eps {
					e.Tick()
				}
			}
		}
	}()
	t.Cleanup(func() { close(stop); wg.Wait() })
}

// establish dials b from a over real UDP and waits (with a deadline) until
// both sides can send.
func establish(t testing.TB, a, b *udpNode) {
	t.Helper()
	if err := a.ep.AddPeer(b.ep.PublicKey(), b.conn.LocalAddr(), channel.PeerOptions{Persistent: true}); err != nil {
		t.Fatal(err)
	}
	if err := a.ep.Connect(b.ep.PublicKey()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for a.ep.PeerState(b.ep.PublicKey()) != channel.StateEstablished || b.ep.PeerState(a.ep.PublicKey()) != channel.StateEstablished {
		if time.Now().After(deadline) {
			t.Fatalf("handshake over loopback did not complete: %v / %v", a.ep.PeerState(b.ep.PublicKey()), b.ep.PeerState(a.ep.PublicKey()))
		}
		time.Sleep(5 * time.Millisecond) // polling an observation with a deadline
	}
}

func recvN(t *testing.T, ch chan []byte, n int) [][]byte {
	t.Helper()
	var out [][]byte
	deadline := time.After(10 * time.Second)
	for len(out) < n {
		select {
		case p := <-ch:
			out = append(out, p)
		case <-deadline:
			t.Fatalf("received %d of %d", len(out), n)
		}
	}
	return out
}

func TestLoopbackTwoEndpoints(t *testing.T) {
	ca, cb := listen(t), listen(t)
	a, b := newUDPNode(t, ca, "c1", 0, nil), newUDPNode(t, cb, "c1", 0, nil)
	ca.Start()
	cb.Start()
	ticker(t, a.ep, b.ep)
	establish(t, a, b)
	for i := range 100 {
		if err := a.ep.Send(b.ep.PublicKey(), []byte(fmt.Sprintf("a->b %d", i))); err != nil {
			t.Fatal(err)
		}
		if err := b.ep.Send(a.ep.PublicKey(), []byte(fmt.Sprintf("b->a %d", i))); err != nil {
			t.Fatal(err)
		}
	}
	// Loopback UDP can drop under load; ask for most, check content.
	for _, p := range recvN(t, b.got, 90) {
		if string(p[:4]) != "a->b" {
			t.Fatalf("B got %q", p)
		}
	}
	recvN(t, a.got, 90)
	if ra, ok := b.ep.PeerAddr(a.ep.PublicKey()); !ok || ra != ca.LocalAddr() {
		t.Fatalf("B sees A at %v, want %v", ra, ca.LocalAddr())
	}
}

// TestDemuxTwoClustersOneSocket: two endpoints of different clusters share a
// socket; initiations find their endpoint by MAC, data by index prefix, and
// the clusters never mix.
func TestDemuxTwoClustersOneSocket(t *testing.T) {
	shared, c1peer, c2peer := listen(t), listen(t), listen(t)
	s1 := newUDPNode(t, shared, "c1", 1, nil)
	s2 := newUDPNode(t, shared, "c2", 2, nil)
	p1 := newUDPNode(t, c1peer, "c1", 0, nil)
	p2 := newUDPNode(t, c2peer, "c2", 0, nil)
	if err := shared.Attach(1, s2.ep); !errors.Is(err, ErrPrefixInUse) {
		t.Fatalf("double attach: %v", err)
	}
	for _, c := range []*Conn{shared, c1peer, c2peer} {
		c.Start()
	}
	ticker(t, s1.ep, s2.ep, p1.ep, p2.ep)
	establish(t, p1, s1)
	establish(t, p2, s2)
	if err := p1.ep.Send(s1.ep.PublicKey(), []byte("cluster one")); err != nil {
		t.Fatal(err)
	}
	if err := p2.ep.Send(s2.ep.PublicKey(), []byte("cluster two")); err != nil {
		t.Fatal(err)
	}
	if got := recvN(t, s1.got, 1); string(got[0]) != "cluster one" {
		t.Fatalf("s1 got %q", got[0])
	}
	if got := recvN(t, s2.got, 1); string(got[0]) != "cluster two" {
		t.Fatalf("s2 got %q", got[0])
	}
	if len(s1.ep.Peers()) != 1 || len(s2.ep.Peers()) != 1 {
		t.Fatal("a peer leaked into the other cluster's endpoint")
	}
}

// TestJunkAndCloseNoLeak: random datagrams do not panic the read loop, and
// Close stops every goroutine.
func TestJunkAndCloseNoLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	c, err := ListenUDP("127.0.0.1:0", Options{Readers: 2})
	if err != nil {
		t.Fatal(err)
	}
	n := newUDPNode(t, c, "c1", 0, nil)
	c.Start()
	pc, err := ListenUDP("127.0.0.1:0", Options{})
	if err != nil {
		t.Fatal(err)
	}
	peer := newUDPNode(t, pc, "c1", 0, nil)
	pc.Start()
	stopTicks := make(chan struct{})
	tickDone := make(chan struct{})
	go func() {
		defer close(tickDone)
		for {
			select {
			case <-stopTicks:
				return
			case <-time.After(50 * time.Millisecond):
				n.ep.Tick()
				peer.ep.Tick()
			}
		}
	}()
	establish(t, peer, n)
	buf := make([]byte, 1500)
	for i := range 500 {
		l := i % len(buf)
		_, _ = rand.Read(buf[:l])
		if l > 1 && i%3 == 0 {
			buf[0], buf[1] = byte(1+i%4), 0 // a valid type and this endpoint's index prefix
		}
		if err := pc.WriteTo(buf[:l], c.LocalAddr()); err != nil {
			t.Fatal(err)
		}
	}
	// The read loop survived the junk: a genuine packet still arrives.
	deadline := time.Now().Add(10 * time.Second)
	for len(n.got) == 0 && time.Now().Before(deadline) {
		if err := peer.ep.Send(n.ep.PublicKey(), []byte("genuine")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := recvN(t, n.got, 1); string(got[0]) != "genuine" {
		t.Fatalf("got %q", got[0])
	}
	s := n.ep.Stats()
	if c.Stats().Unclaimed == 0 || s.Malformed+s.UnknownIndex+s.BadMAC == 0 {
		t.Fatalf("junk was not exercised: conn %+v endpoint %+v", c.Stats(), s)
	}
	close(stopTicks)
	<-tickDone
	if err := pc.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if g := runtime.NumGoroutine(); g > before {
		t.Fatalf("goroutines %d -> %d after Close", before, g)
	}
}
