package gossip

import (
	"bytes"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Log rate limit defaults: memberlist logs one line per packet it cannot
// decode, so junk at the gossip port would otherwise write a line per packet
// (megabytes per second). At most DefaultLogBurst lines pass per
// DefaultLogInterval; the rest are counted (Stats.LogSuppressed) and summed
// up in one warning when the next interval begins.
const (
	DefaultLogBurst    = 5
	DefaultLogInterval = 10 * time.Second
)

// logThrottle is the io.Writer memberlist's standard logger writes to: it
// forwards at most burst lines per interval to the hclog logger (levels
// inferred from memberlist's "[ERR]"-style prefixes) and counts the rest.
type logThrottle struct {
	log      hclog.Logger
	clock    func() time.Time
	burst    int
	interval time.Duration

	mu         sync.Mutex
	start      time.Time // beginning of the current interval
	passed     int       // lines forwarded in this interval
	suppressed int       // lines dropped in this interval
	total      atomic.Uint64
}

func newLogThrottle(log hclog.Logger, clock func() time.Time, burst int, interval time.Duration) *logThrottle {
	if burst <= 0 {
		burst = DefaultLogBurst
	}
	if interval <= 0 {
		interval = DefaultLogInterval
	}
	return &logThrottle{log: log, clock: clock, burst: burst, interval: interval}
}

// Write takes one log line (the standard logger writes each line whole).
func (l *logThrottle) Write(p []byte) (int, error) {
	line := strings.TrimRight(string(bytes.ToValidUTF8(p, []byte("?"))), "\n")
	level, msg := inferLevel(line)
	if level < l.log.GetLevel() {
		return len(p), nil // filtered anyway: costs no budget
	}
	now := l.clock()
	l.mu.Lock()
	var dropped int
	if now.Sub(l.start) >= l.interval || now.Before(l.start) {
		dropped = l.suppressed
		l.start, l.passed, l.suppressed = now, 0, 0
	}
	pass := l.passed < l.burst
	if pass {
		l.passed++
	} else {
		l.suppressed++
		l.total.Add(1)
	}
	l.mu.Unlock()
	if dropped > 0 {
		l.log.Warn("gossip log lines suppressed by the rate limit", "lines", dropped, "interval", l.interval.String())
	}
	if pass {
		l.log.Log(level, msg)
	}
	return len(p), nil
}

// inferLevel splits a memberlist line into its level and message.
func inferLevel(line string) (hclog.Level, string) {
	for _, lv := range []struct {
		tag   string
		level hclog.Level
	}{{"[TRACE]", hclog.Trace}, {"[DEBUG]", hclog.Debug}, {"[INFO]", hclog.Info}, {"[WARN]", hclog.Warn}, {"[ERR]", hclog.Error}, {"[ERROR]", hclog.Error}} {
		if i := strings.Index(line, lv.tag); i >= 0 {
			return lv.level, strings.TrimSpace(line[i+len(lv.tag):])
		}
	}
	return hclog.Info, line
}
