package e2e

import (
	"testing"
	"time"

	"github.com/rap-fabric/core/mesh/channel"
	"github.com/rap-fabric/core/mesh/routing"
)

// links is a synchronous in-memory link layer with static routes: frames
// are queued and delivered in order by pump, on the caller's goroutine.
type links struct {
	t         testing.TB
	f         map[string]*Forwarder
	keys      map[string]channel.Key
	queue     []qframe
	now       time.Time
	intercept func(from, to string, frame []byte) []byte
}

type qframe struct {
	from, to string
	frame    []byte
}

func newLinks(t testing.TB, routes map[string]staticRoutes, policy func(string) routing.Policy) *links {
	l := &links{t: t, f: map[string]*Forwarder{}, keys: map[string]channel.Key{}, now: time.Unix(1_700_000_000, 0)}
	rnd := newSeeded(7)
	privs := map[string]channel.Key{}
	for id := range routes {
		priv, pub, err := channel.GenerateKey(rnd)
		if err != nil {
			t.Fatal(err)
		}
		privs[id], l.keys[id] = priv, pub
	}
	i := 0
	for id, rt := range routes {
		var pol routing.Policy
		if policy != nil {
			pol = policy(id)
		}
		f, err := New(Config{
			Self: id, ClusterID: cluster, PrivateKey: privs[id], Routes: rt, Policy: pol,
			Clock: func() time.Time { return l.now }, Rand: newSeeded(byte(200 + i)),
			PeerKey: func(x string) (channel.Key, bool) { k, ok := l.keys[x]; return k, ok },
			Send: func(to string, frame []byte) error {
				l.queue = append(l.queue, qframe{id, to, frame})
				return nil
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		ServeEcho(f)
		l.f[id] = f
		i++
	}
	return l
}

func (l *links) pump() {
	for i := 0; i < len(l.queue); i++ {
		q := l.queue[i]
		fr := q.frame
		if l.intercept != nil {
			fr = l.intercept(q.from, q.to, fr)
		}
		if f := l.f[q.to]; f != nil && fr != nil {
			_ = f.HandleFrame(q.from, fr)
		}
	}
	l.queue = l.queue[:0]
}
