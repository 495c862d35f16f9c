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
	shapes   map[string]*shape
}

// New returns an empty Sink (not installed as the go-metrics global).
func New() *Sink { return &Sink{families: map[string]*family{}, shapes: map[string]*shape{}} }

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

func dropped(dotted string, labels []gometrics.Label) bool {
	if len(labels) > 0 {
		return false
	}
	for _, p := range perPeerPrefixes {
		if strings.HasPrefix(dotted, p) {
			return true
		}
	}
	return false
}

// shape is what record derives from a key, a kind and the label names of a
// sample, kept per Sink so that a sample costs no name translation: Raft
// reports several samples per committed entry.
type shape struct {
	dropped bool
	name    string
	lnames  []string // snake_case, sorted
	order   []int    // order[i]: the caller's index of the i-th sorted label
	fam     *family  // the family its samples go to, once resolved
}

// shapeKey identifies a shape: the dotted key, the kind and the label names
// in the caller's order.
func shapeKey(dotted string, k kind, labels []gometrics.Label) string {
	n := len(dotted) + 2
	for _, l := range labels {
		n += len(l.Name) + 1
	}
	var b strings.Builder
	b.Grow(n)
	b.WriteString(dotted)
	b.WriteByte(0)
	b.WriteByte(byte('0' + k))
	for _, l := range labels {
		b.WriteByte(0)
		b.WriteString(l.Name)
	}
	return b.String()
}

func newShape(parts []string, dotted string, labels []gometrics.Label, k kind) *shape {
	if dropped(dotted, labels) {
		return &shape{dropped: true}
	}
	sh := &shape{name: name(parts, k), lnames: make([]string, len(labels)), order: make([]int, len(labels))}
	for i := range sh.order {
		sh.order[i] = i
	}
	sort.SliceStable(sh.order, func(i, j int) bool { return labels[sh.order[i]].Name < labels[sh.order[j]].Name })
	for i, j := range sh.order {
		sh.lnames[i] = SnakeCase(labels[j].Name)
	}
	return sh
}

func (s *Sink) record(parts []string, labels []gometrics.Label, k kind, v float64, add bool) {
	if len(parts) == 0 {
		return
	}
	s.recordDotted(parts, strings.Join(parts, "."), labels, k, v, add)
}

func (s *Sink) recordDotted(parts []string, dotted string, labels []gometrics.Label, k kind, v float64, add bool) {
	key := shapeKey(dotted, k, labels)
	s.mu.Lock()
	defer s.mu.Unlock()
	sh := s.shapes[key]
	if sh == nil {
		sh = newShape(parts, dotted, labels, k)
		s.shapes[key] = sh
	}
	if sh.dropped {
		return
	}
	if sh.fam == nil {
		f := s.families[sh.name]
		if f == nil {
			f = &family{kind: k, labels: sh.lnames, series: map[string]*series{},
				desc: prometheus.NewDesc(sh.name, "go-metrics "+dotted, sh.lnames, nil)}
			s.families[sh.name] = f
		}
		if f.kind != k || strings.Join(f.labels, ",") != strings.Join(sh.lnames, ",") {
			sh.dropped = true // the same name with another shape: keep the first
			return
		}
		sh.fam = f
	}
	f := sh.fam
	lvals := make([]string, len(labels))
	for i, j := range sh.order {
		lvals[i] = labels[j].Value
	}
	skey := strings.Join(lvals, "\xff")
	se := f.series[skey]
	if se == nil {
		se = &series{labelValues: lvals}
		switch k {
		case kindTiming:
			se.hist = &histogram{buckets: timingBuckets, counts: make([]uint64, len(timingBuckets))}
		case kindValue:
			se.hist = &histogram{buckets: valueBuckets, counts: make([]uint64, len(valueBuckets))}
		}
		f.series[skey] = se
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
	if len(key) == 0 {
		return
	}
	dotted := strings.Join(key, ".")
	if notTimings[dotted] {
		s.recordDotted(key, dotted, labels, kindValue, float64(val), false)
		return
	}
	s.recordDotted(key, dotted, labels, kindTiming, float64(val)/1000, false)
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
