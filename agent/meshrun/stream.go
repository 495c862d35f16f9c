package meshrun

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"
)

// probeService is mesh/e2e's built-in probe service: it answers each
// message with its first 4 bytes and the forward route record (the relays
// the message crossed), so a stream of numbered probes over one flow shows
// the path of every message.
const probeService = "probe"

// MaxStreamCount bounds one EchoStream.
const MaxStreamCount = 100000

// StreamEcho is one numbered message of an EchoStream.
type StreamEcho struct {
	Seq uint32 `json:"seq"`
	// SentUnixNs and RecvUnixNs are wall-clock send and echo times (RecvUnixNs
	// 0: lost).
	SentUnixNs int64 `json:"sent_unix_ns"`
	RecvUnixNs int64 `json:"recv_unix_ns,omitempty"`
	// Relays are the relays the message crossed (empty: direct link).
	Relays []string `json:"relays"`
	// NextHop is this node's next hop towards the destination when sent.
	NextHop string `json:"next_hop,omitempty"`
}

// StreamReport is the outcome of an EchoStream.
type StreamReport struct {
	Destination string       `json:"destination"`
	Sent        int          `json:"sent"`
	Received    int          `json:"received"`
	Duplicates  int          `json:"duplicates"`
	Unexpected  int          `json:"unexpected"`
	Echoes      []StreamEcho `json:"echoes"`
}

// EchoStream sends count numbered messages to dst, one every interval, over
// one end-to-end flow and records which came back, when, over which relays,
// and whether any came back twice (a duplicate delivery) or carried a
// number never sent. It waits up to grace after the last send for late
// echoes. The flow survives route changes, so a stream running across a
// link failure measures failover: the gap between the last echo on the old
// path and the first on the new one.
func (n *Node) EchoStream(ctx context.Context, dst string, count int, interval, grace time.Duration) (StreamReport, error) {
	if _, ok := n.peerKey(dst); !ok {
		return StreamReport{}, fmt.Errorf("%w: %s", ErrUnknownNode, dst)
	}
	if count <= 0 || count > MaxStreamCount || interval <= 0 {
		return StreamReport{}, fmt.Errorf("%w: count must be 1..%d and interval > 0", ErrConfig, MaxStreamCount)
	}
	c, err := n.f.DialService(dst, probeService)
	if err != nil {
		return StreamReport{}, err
	}
	defer c.Close()
	rep := StreamReport{Destination: dst, Echoes: make([]StreamEcho, count)}
	type got struct {
		seq    uint32
		relays []string
		at     time.Time
	}
	recv := make(chan got, 256)
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		defer close(recv)
		for {
			msg, err := c.Recv(rctx)
			if err != nil {
				return
			}
			if len(msg) < 4 {
				continue
			}
			relays, _ := decodeIDs(msg[4:])
			select {
			case recv <- got{seq: binary.BigEndian.Uint32(msg), relays: relays, at: time.Now()}:
			case <-rctx.Done():
				return
			}
		}
	}()
	note := func(g got) {
		i := int(g.seq) - 1
		switch {
		case i < 0 || i >= rep.Sent:
			rep.Unexpected++
		case rep.Echoes[i].RecvUnixNs != 0:
			rep.Duplicates++
		default:
			rep.Echoes[i].RecvUnixNs = g.at.UnixNano()
			rep.Echoes[i].Relays = g.relays
			rep.Received++
		}
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	send := func() {
		seq := uint32(rep.Sent + 1)
		next, _, _, _ := n.r.Lookup(dst)
		rep.Echoes[rep.Sent] = StreamEcho{Seq: seq, SentUnixNs: time.Now().UnixNano(), NextHop: next, Relays: []string{}}
		rep.Sent++
		_ = c.Send(binary.BigEndian.AppendUint32(nil, seq)) // lost when there is no route: that is what is measured
	}
	send()
	var graceC <-chan time.Time
	settle := false
	for {
		select {
		case <-ctx.Done():
			rep.Echoes = rep.Echoes[:rep.Sent]
			return rep, ctx.Err()
		case g, ok := <-recv:
			if !ok {
				rep.Echoes = rep.Echoes[:rep.Sent]
				if err := c.Err(); err != nil && rep.Sent < count {
					return rep, err
				}
				return rep, nil
			}
			note(g)
		case <-t.C:
			if rep.Sent < count {
				send()
				if rep.Sent == count {
					graceC = time.After(grace)
				}
			}
		case <-graceC:
			rep.Echoes = rep.Echoes[:rep.Sent]
			return rep, nil
		}
		if !settle && rep.Sent == count && rep.Received == count {
			// Everything is back: wait a little longer only for duplicates.
			settle = true
			graceC = time.After(min(grace, 10*interval+100*time.Millisecond))
		}
	}
}

// decodeIDs reads mesh/e2e's route record encoding: a count byte, then
// length-prefixed ids.
func decodeIDs(b []byte) ([]string, bool) {
	if len(b) < 1 {
		return []string{}, false
	}
	n := int(b[0])
	off := 1
	out := make([]string, 0, n)
	for range n {
		if off >= len(b) {
			return out, false
		}
		l := int(b[off])
		off++
		if off+l > len(b) {
			return out, false
		}
		out = append(out, string(b[off:off+l]))
		off += l
	}
	return out, true
}
