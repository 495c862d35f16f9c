// Package peers owns peer scoring and the choice of active, warm and cold
// peer sets for one node, with hysteresis so the active set does not flap and
// a human-readable reason for every decision.
//
// It is pure: measurements come in as Candidates, time from an injected
// clock, and nothing is dialled here. It must not authorize anyone: the
// candidates are assumed to come from the signed peer directory, and the
// Policy hook can only exclude, never admit.
package peers

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/rap-fabric/core/domain"
)

// Class is the node class that sets the default set sizes.
type Class string

// Node classes.
const (
	ClassNormal Class = "normal"
	ClassRelay  Class = "relay"
	ClassCore   Class = "core"
	ClassThin   Class = "thin"
)

// Limits bound the set sizes.
type Limits struct {
	// MinActive is filled even with low-scoring peers, if any are eligible.
	MinActive int
	// MaxActive is filled with peers scoring at least Weights.MinScore.
	MaxActive int
	// MaxWarm peers are kept as standby (handshake-ready); the rest are cold.
	MaxWarm int
}

// DefaultLimits returns the architecture's defaults: normal 3–5 active,
// relay/core 8–20, thin 1–3; warm equals MaxActive.
func DefaultLimits(c Class) Limits {
	switch c {
	case ClassRelay, ClassCore:
		return Limits{MinActive: 8, MaxActive: 20, MaxWarm: 20}
	case ClassThin:
		return Limits{MinActive: 1, MaxActive: 3, MaxWarm: 3}
	default:
		return Limits{MinActive: 3, MaxActive: 5, MaxWarm: 5}
	}
}

// Candidate is what is known about one authorized peer.
type Candidate struct {
	ID string
	// Region of the peer; distance comes from Config.RegionDistance.
	Region string
	// Latency is the EWMA of round-trip times; zero means unmeasured.
	Latency time.Duration
	// Loss is the recent loss ratio, 0..1.
	Loss float64
	// Reliability is the long-run availability, 0..1.
	Reliability float64
	// Load is the peer's reported load, 0..1.
	Load float64
	// BandwidthMbps is the measured or advertised bandwidth.
	BandwidthMbps float64
	// Roles are the peer's assigned roles, for role suitability.
	Roles []domain.Role
	// Trust is the trust level, 0..1 (for example 1 for authority-attested
	// core nodes, lower for recently enrolled ones).
	Trust float64
}

// Weights are the score's component weights; the score is their weighted
// mean, times a recent-failure penalty.
type Weights struct {
	Latency, Loss, Reliability, Region, Load, Bandwidth, Role, Trust float64
	// MinScore is the score a peer needs to take an active slot beyond MinActive.
	MinScore float64
	// Margin is what a challenger must beat an incumbent active peer by.
	Margin float64
}

// DefaultWeights favour latency, loss and reliability.
func DefaultWeights() Weights {
	return Weights{Latency: 3, Loss: 3, Reliability: 2, Region: 1, Load: 1, Bandwidth: 1, Role: 1, Trust: 1, MinScore: 0.3, Margin: 0.05}
}

// Config configures a Selector. Zero fields take defaults.
type Config struct {
	// Class sets Limits when Limits is zero.
	Class  Class
	Limits Limits
	// Weights default to DefaultWeights.
	Weights *Weights
	// Region is this node's region.
	Region string
	// RegionDistance returns 0 (same place) … 1 (far). Default: 0 for the
	// same region, 1 otherwise.
	RegionDistance func(from, to string) float64
	// PreferredRoles make a peer suitable (e.g. relay-node, core-mesh for a
	// normal node). Empty: every peer is equally suitable.
	PreferredRoles []domain.Role
	// Policy excludes a candidate by returning a reason (hard constraint).
	Policy func(Candidate) error
	// FailureHalfLife is how fast recorded failures are forgiven (default 5 min).
	FailureHalfLife time.Duration
	// Clock defaults to time.Now.
	Clock func() time.Time
}

// Set names a selection outcome.
type Set string

// Sets.
const (
	Active   Set = "active"
	Warm     Set = "warm"
	Cold     Set = "cold"
	Excluded Set = "excluded"
)

// Decision is the outcome for one candidate.
type Decision struct {
	ID     string
	Set    Set
	Score  float64
	Reason string
}

// Selection is the result of Select. Each list is in rank order.
type Selection struct {
	Active, Warm, Cold, Excluded []Decision
}

// ByID returns the decision for id.
func (s Selection) ByID(id string) (Decision, bool) {
	for _, l := range [][]Decision{s.Active, s.Warm, s.Cold, s.Excluded} {
		for _, d := range l {
			if d.ID == id {
				return d, true
			}
		}
	}
	return Decision{}, false
}

// ErrConfig means a Config is invalid.
var ErrConfig = errors.New("peers: invalid config")

// Selector scores candidates and keeps the active set stable across calls.
// Safe for concurrent use.
type Selector struct {
	cfg Config
	w   Weights

	mu       sync.Mutex
	failures map[string]failure
	active   map[string]bool
}

type failure struct {
	weight float64 // decayed count at `at`
	at     time.Time
}

// New validates cfg and returns a Selector.
func New(cfg Config) (*Selector, error) {
	if cfg.Limits == (Limits{}) {
		cfg.Limits = DefaultLimits(cfg.Class)
	}
	w := DefaultWeights()
	if cfg.Weights != nil {
		w = *cfg.Weights
	}
	if cfg.RegionDistance == nil {
		cfg.RegionDistance = func(a, b string) float64 {
			if a == b {
				return 0
			}
			return 1
		}
	}
	if cfg.FailureHalfLife == 0 {
		cfg.FailureHalfLife = 5 * time.Minute
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	l := cfg.Limits
	if l.MinActive < 0 || l.MaxActive < l.MinActive || l.MaxActive < 1 || l.MaxWarm < 0 {
		return nil, fmt.Errorf("%w: Limits need 0 <= MinActive <= MaxActive, MaxActive >= 1, MaxWarm >= 0 (got %+v)", ErrConfig, l)
	}
	if sum := w.Latency + w.Loss + w.Reliability + w.Region + w.Load + w.Bandwidth + w.Role + w.Trust; sum <= 0 {
		return nil, fmt.Errorf("%w: Weights sum to %v", ErrConfig, sum)
	}
	return &Selector{cfg: cfg, w: w, failures: map[string]failure{}, active: map[string]bool{}}, nil
}

// RecordFailure notes a failed probe, handshake or route for id. Failures
// decay with FailureHalfLife.
func (s *Selector) RecordFailure(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.Clock()
	f := s.failures[id]
	s.failures[id] = failure{weight: s.decayed(f, now) + 1, at: now}
}

func (s *Selector) decayed(f failure, now time.Time) float64 {
	if f.weight == 0 {
		return 0
	}
	age := now.Sub(f.at).Seconds()
	return f.weight * math.Exp2(-age/s.cfg.FailureHalfLife.Seconds())
}

type scored struct {
	c      Candidate
	score  float64
	fail   float64
	parts  map[string]float64
	incumb bool
}

// Score returns a candidate's score (0..1) and its per-component values.
func (s *Selector) Score(c Candidate) (float64, map[string]float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sc := s.score(c, s.cfg.Clock())
	return sc.score, sc.parts
}

func clamp01(x float64) float64 { return math.Max(0, math.Min(1, x)) }

func (s *Selector) score(c Candidate, now time.Time) scored {
	w := s.w
	parts := map[string]float64{
		"latency":     0.5, // unmeasured: neutral
		"loss":        1 - clamp01(c.Loss/0.2),
		"reliability": clamp01(c.Reliability),
		"region":      1 - clamp01(s.cfg.RegionDistance(s.cfg.Region, c.Region)),
		"load":        1 - clamp01(c.Load),
		"bandwidth":   c.BandwidthMbps / (c.BandwidthMbps + 100),
		"role":        1,
		"trust":       clamp01(c.Trust),
	}
	if c.Latency > 0 {
		parts["latency"] = 1 / (1 + float64(c.Latency)/float64(50*time.Millisecond))
	}
	if parts["bandwidth"] < 0 || math.IsNaN(parts["bandwidth"]) {
		parts["bandwidth"] = 0
	}
	if len(s.cfg.PreferredRoles) > 0 {
		parts["role"] = 0.3
		for _, r := range c.Roles {
			for _, p := range s.cfg.PreferredRoles {
				if r == p {
					parts["role"] = 1
				}
			}
		}
	}
	sum := w.Latency*parts["latency"] + w.Loss*parts["loss"] + w.Reliability*parts["reliability"] +
		w.Region*parts["region"] + w.Load*parts["load"] + w.Bandwidth*parts["bandwidth"] +
		w.Role*parts["role"] + w.Trust*parts["trust"]
	total := w.Latency + w.Loss + w.Reliability + w.Region + w.Load + w.Bandwidth + w.Role + w.Trust
	fail := s.decayed(s.failures[c.ID], now)
	score := sum / total / (1 + fail)
	parts["failures"] = fail
	return scored{c: c, score: score, fail: fail, parts: parts}
}

// Select scores the candidates and splits them into sets. An incumbent
// active peer keeps its slot unless a challenger scores more than Margin
// above it. The chosen active set is remembered for the next call.
func (s *Selector) Select(cands []Candidate) Selection {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.Clock()
	var sel Selection
	var ok []scored
	seen := map[string]bool{}
	for _, c := range cands {
		if seen[c.ID] {
			continue
		}
		seen[c.ID] = true
		if s.cfg.Policy != nil {
			if err := s.cfg.Policy(c); err != nil {
				sel.Excluded = append(sel.Excluded, Decision{ID: c.ID, Set: Excluded, Reason: "excluded by policy: " + err.Error()})
				continue
			}
		}
		sc := s.score(c, now)
		sc.incumb = s.active[c.ID]
		ok = append(ok, sc)
	}
	// Rank by score with the incumbency bonus; ties by ID for determinism.
	eff := func(x scored) float64 {
		if x.incumb {
			return x.score + s.w.Margin
		}
		return x.score
	}
	sort.SliceStable(ok, func(i, j int) bool {
		if ei, ej := eff(ok[i]), eff(ok[j]); ei != ej {
			return ei > ej
		}
		return ok[i].c.ID < ok[j].c.ID
	})
	l := s.cfg.Limits
	next := map[string]bool{}
	var bestOut *scored // best candidate left out of the active set, for reasons
	for i := range ok {
		x := &ok[i]
		n := len(sel.Active)
		switch {
		case n < l.MinActive || (n < l.MaxActive && x.score >= s.w.MinScore):
			why := "ranked " + fmt.Sprint(n+1)
			if n >= l.MinActive {
				why += fmt.Sprintf(", score above %.2f", s.w.MinScore)
			} else if x.score < s.w.MinScore {
				why += fmt.Sprintf(", below %.2f but needed to reach %d active", s.w.MinScore, l.MinActive)
			}
			if x.incumb {
				why += ", incumbent"
			}
			sel.Active = append(sel.Active, Decision{ID: x.c.ID, Set: Active, Score: x.score, Reason: reason(Active, x, why)})
			next[x.c.ID] = true
		case len(sel.Warm) < l.MaxWarm:
			if bestOut == nil {
				bestOut = x
			}
			why := "active set full"
			if n < l.MaxActive {
				why = fmt.Sprintf("score below %.2f", s.w.MinScore)
			} else if last := lastActive(ok, next); last != nil && x.score > last.score && last.incumb {
				why = fmt.Sprintf("beats incumbent %s (%.2f) by less than the %.2f margin", last.c.ID, last.score, s.w.Margin)
			}
			sel.Warm = append(sel.Warm, Decision{ID: x.c.ID, Set: Warm, Score: x.score, Reason: reason(Warm, x, why)})
		default:
			sel.Cold = append(sel.Cold, Decision{ID: x.c.ID, Set: Cold, Score: x.score, Reason: reason(Cold, x, "active and warm sets full")})
		}
	}
	s.active = next
	return sel
}

// lastActive returns the lowest-ranked active candidate.
func lastActive(ok []scored, active map[string]bool) *scored {
	var last *scored
	for i := range ok {
		if active[ok[i].c.ID] {
			last = &ok[i]
		}
	}
	return last
}

// reason renders a decision: the set rationale, then the notable strengths
// and weaknesses.
func reason(set Set, x *scored, why string) string {
	var notes []string
	c, p := x.c, x.parts
	if c.Latency > 0 {
		notes = append(notes, fmt.Sprintf("latency %v", c.Latency.Round(time.Millisecond)))
	} else {
		notes = append(notes, "latency unmeasured")
	}
	if c.Loss > 0 {
		notes = append(notes, fmt.Sprintf("loss %.1f%%", 100*c.Loss))
	}
	if p["region"] == 1 {
		notes = append(notes, "same region")
	} else if p["region"] < 0.5 {
		notes = append(notes, "distant region")
	}
	if c.Load > 0.8 {
		notes = append(notes, fmt.Sprintf("loaded %.0f%%", 100*c.Load))
	}
	if p["role"] < 1 {
		notes = append(notes, "role not preferred")
	}
	if c.Trust < 0.5 {
		notes = append(notes, fmt.Sprintf("low trust %.2f", c.Trust))
	}
	if x.fail >= 0.05 {
		notes = append(notes, fmt.Sprintf("recent failures %.2f", x.fail))
	}
	return fmt.Sprintf("%s: score %.2f (%s); %s", set, x.score, why, strings.Join(notes, ", "))
}
