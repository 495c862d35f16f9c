package gossip

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/rap-fabric/core/internal/testwait"
)

type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *lockedBuf) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// TestJunkFloodLogIsRateLimited floods a node's gossip port with junk UDP
// (each packet makes memberlist log an error): the log keeps at most the
// burst of lines per interval plus a suppression summary, and Stats counts
// the suppressed lines.
func TestJunkFloodLogIsRateLimited(t *testing.T) {
	out := &lockedBuf{}
	dir := newTestDir()
	k := key("victim")
	dir.add("victim", k.Public().(ed25519.PublicKey))
	g, err := New(Config{NodeID: "victim", ClusterID: "c1", IdentityKey: k, GossipKey: gossipKey, Directory: dir,
		Endpoints: nil, BindAddr: "127.0.0.1", BindPort: 0, Base: fastConfig(),
		Logger: hclog.New(&hclog.LoggerOptions{Name: "gossip", Level: hclog.Info, Output: out}), LogBurst: 3, LogInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Shutdown() })
	c, err := net.Dial("udp", g.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const packets = 2000
	junk := make([]byte, 300)
	for i := 0; i < packets; i++ {
		_, _ = rand.Read(junk)
		_, _ = c.Write(junk)
		if i%200 == 0 {
			time.Sleep(5 * time.Millisecond) // let the receive buffer drain
		}
	}
	// Poll until memberlist has handled (and tried to log) a good share.
	testwait.For(t, 20*time.Second, "junk packets handled", func() (bool, string) {
		s := g.Stats()
		return s.LogSuppressed >= 100, "suppressed " + itoa(s.LogSuppressed)
	})
	lines := strings.Count(out.String(), "\n")
	t.Logf("%d junk packets: %d log lines written, %d suppressed", packets, lines, g.Stats().LogSuppressed)
	if lines > 3 {
		t.Fatalf("the log has %d lines, want at most the burst of 3:\n%s", lines, out.String())
	}
}

func itoa(n uint64) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return string(b[i:])
		}
	}
}

// TestLogThrottleIntervals checks the limiter with a fake clock: burst lines
// pass per interval, the next interval starts with one summary of what was
// dropped, filtered levels cost nothing.
func TestLogThrottleIntervals(t *testing.T) {
	out := &lockedBuf{}
	now := time.Unix(1000, 0)
	l := newLogThrottle(hclog.New(&hclog.LoggerOptions{Level: hclog.Info, Output: out}), func() time.Time { return now }, 2, time.Second)
	for i := 0; i < 50; i++ {
		_, _ = l.Write([]byte("2030/01/01 00:00:00 [DEBUG] memberlist: noise\n"))
	}
	for i := 0; i < 10; i++ {
		_, _ = l.Write([]byte("2030/01/01 00:00:00 [ERR] memberlist: junk\n"))
	}
	if got := strings.Count(out.String(), "memberlist: junk"); got != 2 {
		t.Fatalf("first interval: %d lines passed, want 2:\n%s", got, out.String())
	}
	if l.total.Load() != 8 {
		t.Fatalf("suppressed %d, want 8", l.total.Load())
	}
	now = now.Add(time.Second)
	_, _ = l.Write([]byte("[WARN] memberlist: next\n"))
	s := out.String()
	if !strings.Contains(s, "suppressed by the rate limit: lines=8") || !strings.Contains(s, "[WARN]  memberlist: next") {
		t.Fatalf("second interval: want the summary then the line:\n%s", s)
	}
	if strings.Contains(s, "noise") || !strings.Contains(s, "[ERROR] memberlist: junk") {
		t.Fatalf("levels: %s", s)
	}
}
