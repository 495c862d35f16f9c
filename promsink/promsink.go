// Package promsink bridges go-metrics (through which hashicorp/raft and
// memberlist report their internals: commitTime, leader.lastContact, apply,
// fsm.apply, gossip and probe timings) into Prometheus.
//
// go-metrics keeps one process-wide sink, so Install sets it once per process
// and returns the one Sink; every registry that should expose those series
// registers that Sink (a prometheus.Collector). In a process that runs several
// Raft nodes (tests) their samples are summed.
//
// Names: keys are joined with "_" and turned to snake_case
// (raft.commitTime → raft_commit_time); timing samples, which go-metrics
// records in milliseconds, become histograms in seconds with a "_seconds"
// suffix; counters get "_total". Keys that raft also emits with a peer label
// carry the peer id in the key itself; those unlabelled copies are dropped so
// that no series name depends on a peer id.
//
// The package owns that translation only; it registers nothing by itself.
package promsink

import (
	"sort"
	"strings"
	"sync"
	"unicode"

	gometrics "github.com/hashicorp/go-metrics/compat"
	"github.com/prometheus/client_golang/prometheus"
)

// notTimings are sample keys that count things rather than time them.
var notTimings = map[string]bool{
	"raft.fsm.applyBatchNum":              true,
	"memberlist.queue.broadcasts":         true,
	"memberlist.size.remote":              true,
	"raft.leader.dispatchNumLogs":         true,
	"raft.commitNumLogs":                  true,
	"memberlist.node.instances":           true,
	"memberlist.health.score":             true,
	"memberlist.size.local":               true,
	"raft.peers":                          true,
	"raft.replication.appendEntries.logs": true,
}

// perPeerPrefixes are keys raft emits twice: with the peer id appended to the
// key, and with a peer_id label. Only the labelled form is kept.
var perPeerPrefixes = []string{
	"raft.replication.appendEntries.rpc.",
	"raft.replication.appendEntries.logs.",
	"raft.replication.heartbeat.",
	"raft.replication.installSnapshot.",
}

// timingBuckets cover 0.1 ms … ~13 s.
var timingBuckets = prometheus.ExponentialBuckets(0.0001, 2, 18)

// valueBuckets cover 1 … 65536 (batch sizes, queue lengths, bytes).
var valueBuckets = prometheus.ExponentialBuckets(1, 4, 9)

type kind int

const (
	kindGauge kind = iota
	kindCounter
	kindTiming
	kindValue
)

type family struct {
	desc   *prometheus.Desc
	kind   kind
	labels []string
	series map[string]*series
}

type series struct {
	labelValues []string
	value       float64    // gauge, counter
	hist        *histogram // timing, value
}

type histogram struct {
	buckets []float64
	counts  []uint64
	count   uint64
	sum     float64
}

func (h *histogram) observe(v float64) {
	for i, b := range h.buckets {
		if v <= b {
			h.counts[i]++
		}
	}
	h.count++
	h.sum += v
}

// Sink is a go-metrics MetricSink and a prometheus.Collector. Safe for
// concurrent use.
type Sink struct {
	mu       sync.Mutex
	families map[string]*family
}

// New returns an empty Sink (not installed as the go-metrics global).
func New() *Sink { return &Sink{families: map[string]*family{}} }

var (
	installOnce sync.Once
	installed   *Sink
)

// Install makes the process's go-metrics global report into one Sink (created
// on the first call) and returns it. Later calls return the same Sink.
func Install() *Sink {
	installOnce.Do(func() {
		installed = New()
		cfg := gometrics.DefaultConfig("")
		cfg.EnableHostname = false
		cfg.EnableHostnameLabel = false
		cfg.EnableRuntimeMetrics = false // the Go collector reports the runtime
		cfg.EnableServiceLabel = false
		_, _ = gometrics.NewGlobal(cfg, installed) // fails only on a nil config
	})
	return installed
}

// SnakeCase turns a go-metrics key part ("commitTime", "getRPCType") into
// snake_case ("commit_time", "get_rpc_type").
func SnakeCase(s string) string {
	var b strings.Builder
	rs := []rune(s)
	for i, r := range rs {
		if unicode.IsUpper(r) {
			prevLower := i > 0 && (unicode.IsLower(rs[i-1]) || unicode.IsDigit(rs[i-1]))
			nextLower := i > 0 && i+1 < len(rs) && unicode.IsLower(rs[i+1]) && unicode.IsUpper(rs[i-1])
			if prevLower || nextLower {
				b.WriteByte('_')
			}
			b.WriteRune(unicode.ToLower(r))
			continue
		}
		if r == '-' || r == ' ' || r == '/' || r == '=' || r == '.' {
			b.WriteByte('_')
			continue
		}
		if r == '_' || r < unicode.MaxASCII && (unicode.IsLetter(r) || unicode.IsDigit(r)) {
			b.WriteRune(r)
			continue
		}
		b.WriteByte('_')
	}
	return b.String()
}

// Name returns the Prometheus name of a key of the given kind.
func name(parts []string, k kind) string {
	out := make([]string, len(parts))
	for i, p := range parts {
		out[i] = SnakeCase(p)
	}
	n := strings.Join(out, "_")
	switch k {
	case kindCounter:
		n += "_total"
	case kindTiming:
		n += "_seconds"
	}
	return n
}

func dropped(parts []string, labels []gometrics.Label) bool {
	if len(labels) > 0 {
		return false
	}
	key := strings.Join(parts, ".")
	for _, p := range perPeerPrefixes {
		if strings.HasPrefix(key, p) {
			return true
		}
	}
	return false
}

func (s *Sink) record(parts []string, labels []gometrics.Label, k kind, v float64, add bool) {
	if len(parts) == 0 || dropped(parts, labels) {
		return
	}
	n := name(parts, k)
	lnames := make([]string, len(labels))
	lvals := make([]string, len(labels))
	sorted := append([]gometrics.Label(nil), labels...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	for i, l := range sorted {
		lnames[i], lvals[i] = SnakeCase(l.Name), l.Value
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.families[n]
	if f == nil {
		f = &family{kind: k, labels: lnames, series: map[string]*series{},
			desc: prometheus.NewDesc(n, "go-metrics "+strings.Join(parts, "."), lnames, nil)}
		s.families[n] = f
	}
	if f.kind != k || len(f.labels) != len(lnames) || strings.Join(f.labels, ",") != strings.Join(lnames, ",") {
		return // the same name with another shape: keep the first
	}
	key := strings.Join(lvals, "\xff")
	se := f.series[key]
	if se == nil {
		se = &series{labelValues: lvals}
		switch k {
		case kindTiming:
			se.hist = &histogram{buckets: timingBuckets, counts: make([]uint64, len(timingBuckets))}
		case kindValue:
			se.hist = &histogram{buckets: valueBuckets, counts: make([]uint64, len(valueBuckets))}
		}
		f.series[key] = se
	}
	switch {
	case se.hist != nil:
		se.hist.observe(v)
	case add:
		se.value += v
	default:
		se.value = v
	}
}

// SetGauge implements go-metrics' MetricSink.
func (s *Sink) SetGauge(key []string, val float32) { s.SetGaugeWithLabels(key, val, nil) }

// SetGaugeWithLabels implements go-metrics' MetricSink.
func (s *Sink) SetGaugeWithLabels(key []string, val float32, labels []gometrics.Label) {
	s.record(key, labels, kindGauge, float64(val), false)
}

// EmitKey implements go-metrics' MetricSink (as a gauge).
func (s *Sink) EmitKey(key []string, val float32) { s.SetGauge(key, val) }

// IncrCounter implements go-metrics' MetricSink.
func (s *Sink) IncrCounter(key []string, val float32) { s.IncrCounterWithLabels(key, val, nil) }

// IncrCounterWithLabels implements go-metrics' MetricSink.
func (s *Sink) IncrCounterWithLabels(key []string, val float32, labels []gometrics.Label) {
	s.record(key, labels, kindCounter, float64(val), true)
}

// AddSample implements go-metrics' MetricSink.
func (s *Sink) AddSample(key []string, val float32) { s.AddSampleWithLabels(key, val, nil) }

// AddSampleWithLabels implements go-metrics' MetricSink: a timing (go-metrics
// measures in milliseconds) becomes a histogram in seconds.
func (s *Sink) AddSampleWithLabels(key []string, val float32, labels []gometrics.Label) {
	if notTimings[strings.Join(key, ".")] {
		s.record(key, labels, kindValue, float64(val), false)
		return
	}
	s.record(key, labels, kindTiming, float64(val)/1000, false)
}

// Describe implements prometheus.Collector. The Sink is unchecked: its
// families appear as the libraries report them.
func (s *Sink) Describe(chan<- *prometheus.Desc) {}

// Collect implements prometheus.Collector.
func (s *Sink) Collect(ch chan<- prometheus.Metric) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range s.families {
		for _, se := range f.series {
			var m prometheus.Metric
			var err error
			switch f.kind {
			case kindGauge:
				m, err = prometheus.NewConstMetric(f.desc, prometheus.GaugeValue, se.value, se.labelValues...)
			case kindCounter:
				m, err = prometheus.NewConstMetric(f.desc, prometheus.CounterValue, se.value, se.labelValues...)
			default:
				b := make(map[float64]uint64, len(se.hist.buckets))
				for i, ub := range se.hist.buckets {
					b[ub] = se.hist.counts[i]
				}
				m, err = prometheus.NewConstHistogram(f.desc, se.hist.count, se.hist.sum, b, se.labelValues...)
			}
			if err == nil {
				ch <- m
			}
		}
	}
}
