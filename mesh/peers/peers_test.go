package peers

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rap-fabric/core/domain"
)

var t0 = time.Unix(1_700_000_000, 0)

type fakeClock struct{ now time.Time }

func (f *fakeClock) Now() time.Time          { return f.now }
func (f *fakeClock) Advance(d time.Duration) { f.now = f.now.Add(d) }

func good(id string, lat time.Duration) Candidate {
	return Candidate{ID: id, Region: "eu", Latency: lat, Reliability: 0.99, Load: 0.2, BandwidthMbps: 1000, Trust: 1}
}

func ids(ds []Decision) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.ID
	}
	return out
}

func many(n int) []Candidate {
	var out []Candidate
	for i := range n {
		out = append(out, good(fmt.Sprintf("p%02d", i), time.Duration(10+i)*time.Millisecond))
	}
	return out
}

func TestDefaultLimitsByClass(t *testing.T) {
	tests := []struct {
		class      Class
		cands      int
		wantActive int
	}{
		{ClassNormal, 30, 5},
		{ClassNormal, 2, 2},
		{ClassRelay, 30, 20},
		{ClassCore, 10, 10},
		{ClassThin, 30, 3},
		{"", 30, 5},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s/%d", tc.class, tc.cands), func(t *testing.T) {
			s, err := New(Config{Class: tc.class, Region: "eu", Clock: (&fakeClock{t0}).Now})
			if err != nil {
				t.Fatal(err)
			}
			sel := s.Select(many(tc.cands))
			if len(sel.Active) != tc.wantActive {
				t.Fatalf("active %d, want %d", len(sel.Active), tc.wantActive)
			}
			l := DefaultLimits(tc.class)
			if len(sel.Warm) > l.MaxWarm || len(sel.Active)+len(sel.Warm)+len(sel.Cold) != tc.cands {
				t.Fatalf("sets %d/%d/%d", len(sel.Active), len(sel.Warm), len(sel.Cold))
			}
			for _, d := range append(append(sel.Active, sel.Warm...), sel.Cold...) {
				if !strings.HasPrefix(d.Reason, string(d.Set)+": score") {
					t.Fatalf("reason %q", d.Reason)
				}
			}
		})
	}
}

// TestScoringComponents: each degraded component ranks a peer below an
// otherwise identical healthy one.
func TestScoringComponents(t *testing.T) {
	base := good("base", 20*time.Millisecond)
	base.Roles = []domain.Role{domain.RoleRelayNode}
	tests := []struct {
		name   string
		mod    func(*Candidate)
		inNote string
	}{
		{"latency", func(c *Candidate) { c.Latency = 200 * time.Millisecond }, "latency 200ms"},
		{"loss", func(c *Candidate) { c.Loss = 0.1 }, "loss 10.0%"},
		{"reliability", func(c *Candidate) { c.Reliability = 0.5 }, ""},
		{"region", func(c *Candidate) { c.Region = "ap" }, "distant region"},
		{"load", func(c *Candidate) { c.Load = 0.95 }, "loaded 95%"},
		{"bandwidth", func(c *Candidate) { c.BandwidthMbps = 10 }, ""},
		{"role", func(c *Candidate) { c.Roles = nil }, "role not preferred"},
		{"trust", func(c *Candidate) { c.Trust = 0.2 }, "low trust 0.20"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New(Config{Region: "eu", PreferredRoles: []domain.Role{domain.RoleRelayNode}, Limits: Limits{MinActive: 1, MaxActive: 1, MaxWarm: 1}, Clock: (&fakeClock{t0}).Now})
			if err != nil {
				t.Fatal(err)
			}
			worse := base
			worse.ID = "worse"
			tc.mod(&worse)
			sb, _ := s.Score(base)
			sw, _ := s.Score(worse)
			if sw >= sb {
				t.Fatalf("degraded %s scores %.3f >= %.3f", tc.name, sw, sb)
			}
			sel := s.Select([]Candidate{worse, base})
			if ids(sel.Active)[0] != "base" {
				t.Fatalf("active %v", ids(sel.Active))
			}
			d, _ := sel.ByID("worse")
			if !strings.Contains(d.Reason, tc.inNote) {
				t.Fatalf("reason %q lacks %q", d.Reason, tc.inNote)
			}
		})
	}
}

func TestPolicyExcludes(t *testing.T) {
	s, err := New(Config{Region: "eu", Clock: (&fakeClock{t0}).Now, Policy: func(c Candidate) error {
		if c.Region == "cn" {
			return errors.New("data residency forbids region cn")
		}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	best := good("best-but-forbidden", time.Millisecond)
	best.Region = "cn"
	sel := s.Select(append(many(3), best))
	d, ok := sel.ByID("best-but-forbidden")
	if !ok || d.Set != Excluded || !strings.Contains(d.Reason, "data residency") {
		t.Fatalf("decision %+v", d)
	}
	if len(sel.Active) != 3 {
		t.Fatalf("active %v", ids(sel.Active))
	}
}

func TestFailuresDecay(t *testing.T) {
	clk := &fakeClock{t0}
	s, err := New(Config{Region: "eu", Limits: Limits{MinActive: 1, MaxActive: 1, MaxWarm: 2}, Clock: clk.Now, FailureHalfLife: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	a, b := good("a", 10*time.Millisecond), good("b", 15*time.Millisecond)
	if got := ids(s.Select([]Candidate{a, b}).Active); got[0] != "a" {
		t.Fatalf("active %v", got)
	}
	s.RecordFailure("a")
	s.RecordFailure("a")
	sel := s.Select([]Candidate{a, b})
	if got := ids(sel.Active); got[0] != "b" {
		t.Fatalf("after failures active %v", got)
	}
	if d, _ := sel.ByID("a"); !strings.Contains(d.Reason, "recent failures") {
		t.Fatalf("reason %q", d.Reason)
	}
	clk.Advance(10 * time.Minute) // ten half-lives
	// Ten half-lives later the two failures weigh ~0.002: a is ahead again.
	sa, _ := s.Score(a)
	sb, _ := s.Score(b)
	if sa <= sb {
		t.Fatalf("failures did not decay: a %.3f b %.3f", sa, sb)
	}
}

func TestHysteresis(t *testing.T) {
	w := DefaultWeights()
	w.Margin = 0.05
	s, err := New(Config{Region: "eu", Weights: &w, Limits: Limits{MinActive: 1, MaxActive: 1, MaxWarm: 1}, Clock: (&fakeClock{t0}).Now})
	if err != nil {
		t.Fatal(err)
	}
	inc := good("incumbent", 20*time.Millisecond)
	if got := ids(s.Select([]Candidate{inc}).Active); got[0] != "incumbent" {
		t.Fatal(got)
	}
	tests := []struct {
		name       string
		challenger time.Duration
		want       string
	}{
		{"slightly better challenger does not displace", 18 * time.Millisecond, "incumbent"},
		{"equal does not displace", 20 * time.Millisecond, "incumbent"},
		{"much better challenger displaces", 2 * time.Millisecond, "challenger"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s.active = map[string]bool{"incumbent": true}
			ch := good("challenger", tc.challenger)
			sel := s.Select([]Candidate{ch, inc})
			if got := ids(sel.Active); got[0] != tc.want {
				t.Fatalf("active %v", got)
			}
			if tc.want == "incumbent" && tc.challenger < 20*time.Millisecond {
				d, _ := sel.ByID("challenger")
				if !strings.Contains(d.Reason, "margin") {
					t.Fatalf("reason %q", d.Reason)
				}
			}
		})
	}
	// Alternating small fluctuations never flap the set.
	s.active = map[string]bool{"incumbent": true}
	for i := range 20 {
		lat := 19 * time.Millisecond
		if i%2 == 0 {
			lat = 21 * time.Millisecond
		}
		if got := ids(s.Select([]Candidate{good("challenger", lat), inc}).Active); got[0] != "incumbent" {
			t.Fatalf("flapped at round %d", i)
		}
	}
}

func TestMinActiveFillsWithWeakPeers(t *testing.T) {
	s, err := New(Config{Region: "eu", Class: ClassNormal, Clock: (&fakeClock{t0}).Now})
	if err != nil {
		t.Fatal(err)
	}
	var weak []Candidate
	for i := range 4 {
		c := Candidate{ID: fmt.Sprintf("w%d", i), Region: "far", Latency: time.Second, Loss: 0.5, Load: 1}
		weak = append(weak, c)
	}
	sel := s.Select(weak)
	if len(sel.Active) != 3 || len(sel.Warm) != 1 {
		t.Fatalf("active %v warm %v", ids(sel.Active), ids(sel.Warm))
	}
	if !strings.Contains(sel.Active[0].Reason, "needed to reach 3 active") {
		t.Fatalf("reason %q", sel.Active[0].Reason)
	}
}

func TestDeterministicTieBreak(t *testing.T) {
	s, _ := New(Config{Region: "eu", Limits: Limits{MinActive: 1, MaxActive: 2, MaxWarm: 5}, Clock: (&fakeClock{t0}).Now})
	c := []Candidate{good("c", 10*time.Millisecond), good("a", 10*time.Millisecond), good("b", 10*time.Millisecond)}
	if got := strings.Join(ids(s.Select(c).Active), ","); got != "a,b" {
		t.Fatalf("active %s", got)
	}
}

func TestConfigValidation(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"defaults", Config{}, true},
		{"min above max", Config{Limits: Limits{MinActive: 5, MaxActive: 3}}, false},
		{"zero max", Config{Limits: Limits{MaxWarm: 1}}, false},
		{"zero weights", Config{Weights: &Weights{}}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg)
			if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrConfig)) {
				t.Fatalf("New() = %v", err)
			}
		})
	}
}
