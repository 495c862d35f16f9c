package chaos

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Report is a drill's short human summary.
type Report struct {
	Drill, Title string
	Seed         uint64
	Duration     time.Duration
	// Operation counts (first attempts; retries are counted apart).
	Attempted, Acked, Failed, Unknown int
	FailCodes, UnknownCodes           map[string]int
	Retries, RetryOK, RetryExisted    int
	UnknownPresent, UnknownAbsent     int
	// Elections are epochs claimed during the drill.
	Elections []Term
	// NewLeader is how long after the fault a new leader led (0: n/a).
	NewLeader   time.Duration
	Unavailable Gap
	Events      []Event
	Checks      []Check
	Notes       []string
	// Unexpected lists answers other than ok, no_quorum, not_leader, a
	// timeout or an unreachable server (at most five), with their messages.
	Unexpected []string
	start      time.Time
}

// NewReport summarises the history from start to end.
func (e *Env) NewReport(title string, start, end time.Time, s DBState) *Report {
	r := &Report{Drill: e.Opts.Name, Title: title, Seed: e.Seed, Duration: end.Sub(start), FailCodes: map[string]int{}, UnknownCodes: map[string]int{}, start: e.Hist.Start()}
	ops := e.Hist.Ops()
	for _, op := range ops {
		if op.Retry {
			r.Retries++
			switch {
			case op.Outcome == OK:
				r.RetryOK++
			case op.Code == "conflict":
				r.RetryExisted++
			}
			continue
		}
		r.Attempted++
		switch op.Outcome {
		case OK:
			r.Acked++
		case Fail:
			r.Failed++
			r.FailCodes[op.Code]++
		default:
			r.Unknown++
			r.UnknownCodes[op.Code]++
			if _, ok := s.Rows[op.Slug]; ok {
				r.UnknownPresent++
			} else {
				r.UnknownAbsent++
			}
		}
	}
	for _, t := range s.Terms {
		if !t.ClaimedAt.Before(start) && !t.ClaimedAt.After(end) {
			r.Elections = append(r.Elections, t)
		}
	}
	expected := map[string]bool{"": true, "no_quorum": true, "not_leader": true, "timeout": true, "unreachable": true}
	for _, op := range ops {
		if !expected[op.Code] && !(op.Retry && op.Code == "conflict") && len(r.Unexpected) < 5 {
			r.Unexpected = append(r.Unexpected, fmt.Sprintf("%s (retry %v) %s/%s from %s: %s", op.Key, op.Retry, op.Outcome, op.Code, op.Server, op.Err))
		}
	}
	r.Unavailable = LongestUnavailability(ops, start, end)
	r.Events = e.Hist.Events()
	return r
}

// Passed reports whether every check held (known gaps aside).
func (r *Report) Passed() bool {
	for _, c := range r.Checks {
		if !c.OK && c.Gap == "" {
			return false
		}
	}
	return true
}

func codes(m map[string]int) string {
	if len(m) == 0 {
		return ""
	}
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	var parts []string
	for _, k := range ks {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

// String renders the report.
func (r *Report) String() string {
	var b strings.Builder
	verdict := "PASS"
	if !r.Passed() {
		verdict = "FAIL"
	}
	fmt.Fprintf(&b, "=== %s — %s: %s (%.0fs, seed %d)\n", r.Drill, r.Title, verdict, r.Duration.Seconds(), r.Seed)
	fmt.Fprintf(&b, "  operations  attempted %d, acknowledged %d, failed %d%s, unknown %d%s\n",
		r.Attempted, r.Acked, r.Failed, codes(r.FailCodes), r.Unknown, codes(r.UnknownCodes))
	if r.Unknown > 0 || r.Retries > 0 {
		fmt.Fprintf(&b, "  unknowns    %d retried after the heal with the same key: %d applied by the retry, %d had applied already (conflict); %d absent at the end\n",
			r.Retries, r.RetryOK, r.RetryExisted, r.UnknownAbsent)
	}
	var terms []string
	for _, t := range r.Elections {
		terms = append(terms, fmt.Sprintf("%d→%s", t.Epoch, t.Leader))
	}
	fmt.Fprintf(&b, "  elections   %d [%s]", len(r.Elections), strings.Join(terms, " "))
	if r.NewLeader > 0 {
		fmt.Fprintf(&b, "; new leader %.1fs after the fault", r.NewLeader.Seconds())
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "  unavailable longest %.1fs without an acknowledged write (+%.1fs → +%.1fs)\n",
		r.Unavailable.Len().Seconds(), r.Unavailable.From.Sub(r.start).Seconds(), r.Unavailable.To.Sub(r.start).Seconds())
	b.WriteString("  timeline   ")
	for i, ev := range r.Events {
		if i > 0 {
			b.WriteString("\n             ")
		}
		fmt.Fprintf(&b, " +%5.1fs %s", ev.At.Sub(r.start).Seconds(), ev.What)
	}
	b.WriteString("\n")
	for _, c := range r.Checks {
		mark := "ok  "
		switch {
		case !c.OK && c.Gap != "":
			mark = "GAP "
		case !c.OK:
			mark = "FAIL"
		}
		fmt.Fprintf(&b, "  [%s] %s: %s\n", mark, c.Name, c.Detail)
		if !c.OK && c.Gap != "" {
			fmt.Fprintf(&b, "         known gap, not failing the drill: %s\n", c.Gap)
		}
	}
	for _, u := range r.Unexpected {
		fmt.Fprintf(&b, "  unexpected  %s\n", u)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "  note: %s\n", n)
	}
	return b.String()
}

// Emit logs the report, appends it to $RAP_CHAOS_REPORT when set, and fails
// the test when a check failed.
func (e *Env) Emit(r *Report) {
	e.T.Helper()
	s := r.String()
	e.T.Log("\n" + s)
	if path := os.Getenv("RAP_CHAOS_REPORT"); path != "" {
		_ = os.MkdirAll(filepath.Dir(path), 0o755)
		if f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err == nil {
			_, _ = f.WriteString(s + "\n")
			_ = f.Close()
		}
	}
	for _, c := range r.Checks {
		if !c.OK && c.Gap == "" {
			e.T.Errorf("%s: check failed: %s: %s", r.Drill, c.Name, c.Detail)
		}
	}
}
