package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/apiclient"
)

// These tests need no root: they cover the proxy and the checkers on loopback
// and synthetic histories.

func echoTCP(t *testing.T) net.Listener {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(c, c); c.Close() }()
		}
	}()
	return l
}

func TestTCPProxyDelaysAndKeepsOrder(t *testing.T) {
	echo := echoTCP(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := NewTCPProxy(ln, echo.Addr().String(), (&net.Dialer{}).DialContext, rand.New(rand.NewPCG(1, 2)))
	defer p.Close()
	p.Set(LinkFaults{Delay: 20 * time.Millisecond, Jitter: 15 * time.Millisecond})
	c, err := net.Dial("tcp", p.Addr())
	require.NoError(t, err)
	defer c.Close()
	start := time.Now()
	var want []byte
	for i := 0; i < 40; i++ {
		msg := []byte(fmt.Sprintf("<%03d>", i))
		want = append(want, msg...)
		_, err := c.Write(msg)
		require.NoError(t, err)
		time.Sleep(time.Millisecond)
	}
	got := make([]byte, len(want))
	require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
	_, err = io.ReadFull(c, got)
	require.NoError(t, err)
	require.Equal(t, string(want), string(got), "bytes arrive complete and in order")
	// Both directions are delayed by at least Delay-Jitter.
	require.GreaterOrEqual(t, time.Since(start), 10*time.Millisecond)
	st := p.Stats()
	require.Equal(t, uint64(1), st.Conns)
	require.Equal(t, uint64(2*len(want)), st.Bytes)
}

func TestTCPProxyCloseEndsConnections(t *testing.T) {
	echo := echoTCP(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := NewTCPProxy(ln, echo.Addr().String(), (&net.Dialer{}).DialContext, rand.New(rand.NewPCG(1, 2)))
	c, err := net.Dial("tcp", p.Addr())
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Write([]byte("x"))
	require.NoError(t, err)
	b := make([]byte, 1)
	_, err = io.ReadFull(c, b)
	require.NoError(t, err)
	p.Close()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
	_, err = c.Read(b)
	require.Error(t, err, "the proxy closed the client side")
}

func udpPair(t *testing.T, f LinkFaults) (*UDPProxy, net.PacketConn, net.Addr) {
	echo, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { echo.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := echo.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = echo.WriteTo(buf[:n], from)
		}
	}()
	front, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	back, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	p := NewUDPProxy(front, back, echo.LocalAddr(), rand.New(rand.NewPCG(3, 4)))
	t.Cleanup(p.Close)
	p.Set(f)
	client, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { client.Close() })
	to, err := net.ResolveUDPAddr("udp", p.Addr())
	require.NoError(t, err)
	return p, client, to
}

func readAll(t *testing.T, c net.PacketConn, wait time.Duration) []string {
	var out []string
	buf := make([]byte, 2048)
	for {
		require.NoError(t, c.SetReadDeadline(time.Now().Add(wait)))
		n, _, err := c.ReadFrom(buf)
		if err != nil {
			return out
		}
		out = append(out, string(buf[:n]))
	}
}

func TestUDPProxyDuplicates(t *testing.T) {
	p, c, to := udpPair(t, LinkFaults{DupPct: 100})
	_, err := c.WriteTo([]byte("a"), to)
	require.NoError(t, err)
	got := readAll(t, c, 300*time.Millisecond)
	// duplicated on the way there (2 echoes) and each echo on the way back
	require.Equal(t, []string{"a", "a", "a", "a"}, got)
	require.Equal(t, uint64(3), p.Stats().Duplicated)
}

func TestUDPProxyReorders(t *testing.T) {
	sink, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	defer sink.Close()
	front, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	back, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	p := NewUDPProxy(front, back, sink.LocalAddr(), rand.New(rand.NewPCG(3, 4)))
	defer p.Close()
	p.Set(LinkFaults{ReorderPct: 100})
	c, err := net.Dial("udp", p.Addr())
	require.NoError(t, err)
	defer c.Close()
	for _, m := range []string{"1", "2", "3", "4", "5"} {
		_, err := c.Write([]byte(m))
		require.NoError(t, err)
		time.Sleep(5 * time.Millisecond)
	}
	got := readAll(t, sink, 300*time.Millisecond)
	require.Equal(t, []string{"2", "1", "4", "3", "5"}, got, "every other datagram is held back behind its successor; the last goes alone")
	require.Equal(t, uint64(3), p.Stats().Reordered)
}

func TestUDPProxyLoses(t *testing.T) {
	p, c, to := udpPair(t, LinkFaults{LossPct: 100})
	_, err := c.WriteTo([]byte("gone"), to)
	require.NoError(t, err)
	require.Empty(t, readAll(t, c, 200*time.Millisecond))
	require.Equal(t, uint64(1), p.Stats().Dropped)
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		info CallInfo
		err  error
		out  Outcome
		code string
	}{
		{CallInfo{}, nil, OK, ""},
		{CallInfo{}, &apiclient.Error{Code: "no_quorum"}, Fail, "no_quorum"},
		{CallInfo{Ambiguous: true}, &apiclient.Error{Code: "not_leader"}, Unknown, "not_leader"},
		{CallInfo{}, &apiclient.Error{Code: "unknown_outcome"}, Unknown, "unknown_outcome"},
		{CallInfo{}, &apiclient.Error{Code: "internal"}, Unknown, "internal"},
		{CallInfo{}, fmt.Errorf("x: %w", &DialError{Err: errors.New("refused")}), Fail, "unreachable"},
		{CallInfo{Ambiguous: true}, context.DeadlineExceeded, Unknown, "timeout"},
	} {
		out, code := Classify(tc.info, tc.err)
		require.Equal(t, tc.out, out, "%v", tc.err)
		require.Equal(t, tc.code, code, "%v", tc.err)
	}
}

func TestCheckStaleEpoch(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	terms := []Term{{Epoch: 2, Leader: "a", ClaimedAt: t0}, {Epoch: 5, Leader: "b", ClaimedAt: t0.Add(10 * time.Second)}}
	good := DBState{Terms: terms, Rows: map[string]Row{
		"x": {Slug: "x", FenceEpoch: 2, CreatedAt: t0.Add(9 * time.Second)},
		"y": {Slug: "y", FenceEpoch: 2, CreatedAt: t0.Add(10*time.Second + 100*time.Millisecond)}, // within ClaimSlack
		"z": {Slug: "z", FenceEpoch: 5, CreatedAt: t0.Add(11 * time.Second)},
	}, Audit: []AuditOK{{ID: 1, Epoch: 2, Slug: "x"}, {ID: 2, Epoch: 2, Slug: "y"}, {ID: 3, Epoch: 5, Slug: "z"}}}
	require.True(t, CheckStaleEpoch(good).OK, CheckStaleEpoch(good).Detail)

	late := good
	late.Rows = map[string]Row{"x": {Slug: "x", FenceEpoch: 2, CreatedAt: t0.Add(15 * time.Second)}}
	late.Audit = []AuditOK{{ID: 1, Epoch: 2, Slug: "x"}}
	c := CheckStaleEpoch(late)
	require.False(t, c.OK)
	require.Contains(t, c.Detail, "after epoch 5 was claimed")

	unclaimed := good
	unclaimed.Rows = map[string]Row{"q": {Slug: "q", FenceEpoch: 3, CreatedAt: t0}}
	unclaimed.Audit = nil
	require.False(t, CheckStaleEpoch(unclaimed).OK)

	order := good
	order.Audit = []AuditOK{{ID: 1, Epoch: 2, Slug: "x"}, {ID: 2, Epoch: 5, Slug: "z"}, {ID: 3, Epoch: 2, Slug: "y"}}
	c = CheckStaleEpoch(order)
	require.False(t, c.OK)
	require.Contains(t, c.Detail, "inserted after")
}

func TestCheckAcknowledged(t *testing.T) {
	s := DBState{Rows: map[string]Row{"a": {Slug: "a"}, "c": {Slug: "c"}}, Audit: []AuditOK{{ID: 1, Epoch: 2, Slug: "a"}, {ID: 2, Epoch: 2, Slug: "c"}}}
	ops := []Op{
		{Key: "a", Slug: "a", Outcome: OK},
		{Key: "b", Slug: "b", Outcome: Fail, Code: "no_quorum"},
		{Key: "c", Slug: "c", Outcome: Unknown, Code: "timeout"},
		{Key: "c", Slug: "c", Outcome: Fail, Code: "conflict", Retry: true},
		{Key: "d", Slug: "d", Outcome: Unknown, Code: "timeout"},
	}
	c, present, absent := CheckAcknowledged(ops, s)
	require.True(t, c.OK, c.Detail)
	require.Equal(t, 1, present)
	require.Equal(t, 1, absent)

	c, _, _ = CheckAcknowledged([]Op{{Key: "m", Slug: "m", Outcome: OK, Server: "s1"}}, s)
	require.False(t, c.OK)
	require.Contains(t, c.Detail, "missing")

	c, _, _ = CheckAcknowledged([]Op{{Key: "a", Slug: "a", Outcome: Fail, Code: "stale_epoch"}}, s)
	require.False(t, c.OK)
	require.Contains(t, c.Detail, "but written")

	twice := s
	twice.Audit = append(twice.Audit, AuditOK{ID: 3, Epoch: 2, Slug: "a"})
	c, _, _ = CheckAcknowledged(nil, twice)
	require.False(t, c.OK)
	require.Contains(t, c.Detail, "applied 2 times")
}

func TestCheckLeadersAndMinority(t *testing.T) {
	obs := []Observation{
		{Node: "a", Status: Status{State: "Leader", Term: 2, Epoch: 2, FenceEpoch: 2}},
		{Node: "b", Status: Status{State: "Follower", Term: 2}},
		{Node: "b", Status: Status{State: "Leader", Term: 3, Epoch: 3, FenceEpoch: 3}},
	}
	s := DBState{Terms: []Term{{Epoch: 2, Leader: "a"}, {Epoch: 3, Leader: "b"}}}
	require.True(t, CheckLeaders(obs, s).OK)
	bad := append(obs, Observation{Node: "c", Status: Status{State: "Leader", Term: 3}})
	require.False(t, CheckLeaders(bad, s).OK)
	wrong := DBState{Terms: []Term{{Epoch: 2, Leader: "b"}}}
	require.False(t, CheckLeaders(obs, wrong).OK)

	t0 := time.Now()
	ops := []Op{
		{Key: "1", Slug: "1", Server: "m", Outcome: Fail, Code: "no_quorum", Invoke: t0.Add(time.Second), Complete: t0.Add(2 * time.Second)},
		{Key: "2", Slug: "2", Server: "x", Outcome: OK, Invoke: t0.Add(time.Second), Complete: t0.Add(2 * time.Second)},
		{Key: "0", Slug: "0", Server: "m", Outcome: OK, Invoke: t0.Add(-time.Second), Complete: t0.Add(time.Second)},
	}
	require.True(t, CheckMinority(ops, DBState{}, []string{"m"}, 2, t0, t0.Add(10*time.Second)).OK)
	ops = append(ops, Op{Key: "3", Slug: "3", Server: "m", Outcome: OK, Invoke: t0.Add(3 * time.Second), Complete: t0.Add(4 * time.Second)})
	require.False(t, CheckMinority(ops, DBState{}, []string{"m"}, 2, t0, t0.Add(10*time.Second)).OK)
	rows := DBState{Rows: map[string]Row{"r": {Slug: "r", FenceEpoch: 2, CreatedAt: t0.Add(5 * time.Second)}}}
	require.False(t, CheckMinority(nil, rows, []string{"m"}, 2, t0, t0.Add(10*time.Second)).OK)
}

func TestLongestUnavailability(t *testing.T) {
	t0 := time.Now()
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	ops := []Op{{Outcome: OK, Complete: at(1)}, {Outcome: OK, Complete: at(2)}, {Outcome: Fail, Complete: at(3)}, {Outcome: OK, Complete: at(7)},
		{Outcome: OK, Complete: at(8), Retry: true}}
	g := LongestUnavailability(ops, t0, at(9))
	require.Equal(t, at(2), g.From)
	require.Equal(t, at(7), g.To)
	require.Equal(t, 9*time.Second, LongestUnavailability(nil, t0, at(9)).Len())
}
