package httpapi

import (
	"encoding/json"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/agentapi"
)

// TestAckReplyMatchesEncodingJSON: the stream's hand-written ack line is
// byte for byte what encoding/json writes, or it gives up (and the caller
// uses encoding/json) for the values it does not write itself.
func TestAckReplyMatchesEncodingJSON(t *testing.T) {
	base := agentapi.HeartbeatAck{ClusterID: "0193a5f2-7c1e-7b7a-9d1e-5c4f1a2b3c4d", NodeID: "0193a5f2-7c1e-7b7a-9d1e-5c4f1a2b3c4e",
		Seq: 42, ReceivedAt: time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC), AuthorityID: "a1"}
	acks := []agentapi.HeartbeatAck{base, {}}
	vary := func(f func(a *agentapi.HeartbeatAck)) {
		a := base
		f(&a)
		acks = append(acks, a)
	}
	vary(func(a *agentapi.HeartbeatAck) { a.NeedFacts = true })
	vary(func(a *agentapi.HeartbeatAck) { a.Seq = -9223372036854775808 })
	vary(func(a *agentapi.HeartbeatAck) { a.Seq = 9223372036854775807 })
	vary(func(a *agentapi.HeartbeatAck) { a.ReceivedAt = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC) })
	vary(func(a *agentapi.HeartbeatAck) {
		a.ReceivedAt = time.Date(2030, 1, 2, 3, 4, 5, 120000000, time.FixedZone("x", 2*3600+30*60))
	})
	vary(func(a *agentapi.HeartbeatAck) {
		a.ReceivedAt = time.Date(2030, 1, 2, 3, 4, 5, 1, time.FixedZone("y", -7*3600))
	})
	vary(func(a *agentapi.HeartbeatAck) { a.ReceivedAt = time.Now() }) // monotonic reading, local zone
	vary(func(a *agentapi.HeartbeatAck) { a.ReceivedAt = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) })
	vary(func(a *agentapi.HeartbeatAck) { a.ReceivedAt = time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC) })
	vary(func(a *agentapi.HeartbeatAck) {
		a.ReceivedAt = time.Date(2030, 1, 1, 0, 0, 0, 0, time.FixedZone("z", 25*3600))
	})
	for _, s := range []string{"", `a"b`, `a\b`, "a\nb", "a<b", "a>b", "a&b", "é", "\u2028", "\x7f", "\xff", " ~!#$%'()*+,-./09:;=?@AZ[]^_`az{|}"} {
		vary(func(a *agentapi.HeartbeatAck) { a.ClusterID = s })
		vary(func(a *agentapi.HeartbeatAck) { a.NodeID = s })
		vary(func(a *agentapi.HeartbeatAck) { a.AuthorityID = s })
	}
	rng := rand.New(rand.NewPCG(24, 4))
	for range 2000 {
		vary(func(a *agentapi.HeartbeatAck) {
			a.Seq, a.NeedFacts = rng.Int64()-rng.Int64(), rng.IntN(2) == 0
			a.ReceivedAt = time.Unix(rng.Int64N(1<<36)-1<<35, rng.Int64N(1e9)).In(time.FixedZone("r", (rng.IntN(49)-24)*1800))
			b := make([]byte, rng.IntN(8))
			for i := range b {
				b[i] = byte(0x20 + rng.IntN(0x5f)) // printable ASCII, mostly
				if rng.IntN(20) == 0 {
					b[i] = byte(rng.IntN(256))
				}
			}
			a.AuthorityID = string(b)
		})
	}
	fast := 0
	for _, a := range acks {
		want, wantErr := json.Marshal(agentapi.HeartbeatStreamReply{Ack: &a})
		got, ok := appendAckReply([]byte("prefix"), &a)
		if !ok {
			require.Equal(t, "prefix", string(got), "gave up but changed dst for %+v", a)
			continue
		}
		fast++
		require.NoError(t, wantErr, "%+v: encoding/json refuses it, the fast path must give up", a)
		require.Equal(t, "prefix"+string(want), string(got), "%+v", a)
	}
	require.Greater(t, fast, len(acks)/2, "the fast path should write most acks")
}

// BenchmarkAckReply compares the hand-written ack line with encoding/json's.
func BenchmarkAckReply(b *testing.B) {
	a := agentapi.HeartbeatAck{ClusterID: "0193a5f2-7c1e-7b7a-9d1e-5c4f1a2b3c4d", NodeID: "0193a5f2-7c1e-7b7a-9d1e-5c4f1a2b3c4e",
		Seq: 42, ReceivedAt: time.Now().UTC(), AuthorityID: "a1"}
	b.Run("append", func(b *testing.B) {
		b.ReportAllocs()
		var out []byte
		for b.Loop() {
			out, _ = appendAckReply(out[:0], &a)
		}
	})
	b.Run("encoding_json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = json.Marshal(agentapi.HeartbeatStreamReply{Ack: &a})
		}
	})
}
