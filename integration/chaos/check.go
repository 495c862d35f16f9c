package chaos

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Check is the verdict of one invariant.
type Check struct {
	Name   string
	OK     bool
	Detail string
	// Gap, when set on a check that does not hold, names a known product gap
	// (reported as [GAP ] with this explanation) instead of failing the drill.
	Gap string
}

// ClaimSlack is how much later than a newer epoch's claim a row's transaction
// may have started and still legitimately carry the older epoch: a claim's
// transaction starts (claimed_at = now()) a round trip before it asks for the
// fence lock, and a fenced transaction that asked for the lock first commits
// under the old epoch. Stale writes by a deposed leader come seconds later.
const ClaimSlack = time.Second

// Term is a row of cluster_authority_terms.
type Term struct {
	Epoch     int64
	Leader    string
	ClaimedAt time.Time
}

// Row is a cluster row written by the drills.
type Row struct {
	Slug       string
	FenceEpoch int64
	CreatedAt  time.Time
}

// AuditOK is an "ok" audit event of a fenced write.
type AuditOK struct {
	// ID is the event's insertion number (bigserial, taken when the fenced
	// transaction inserted it, while it held the fence lock).
	ID    int64
	Epoch int64
	Slug  string
}

// DBState is what the checkers read from PostgreSQL at the end of a drill.
type DBState struct {
	Terms []Term
	Rows  map[string]Row
	Audit []AuditOK
	Fence int64
}

// ReadDB reads the fence, the terms, the cluster rows and the audit events.
func (e *Env) ReadDB(ctx context.Context) (DBState, error) {
	s := DBState{Rows: map[string]Row{}}
	if err := e.DB.QueryRow(ctx, `SELECT epoch FROM authority_fence WHERE id = 1`).Scan(&s.Fence); err != nil {
		return s, err
	}
	rows, err := e.DB.Query(ctx, `SELECT epoch, leader_id, claimed_at FROM cluster_authority_terms ORDER BY epoch`)
	if err != nil {
		return s, err
	}
	for rows.Next() {
		var t Term
		if err := rows.Scan(&t.Epoch, &t.Leader, &t.ClaimedAt); err != nil {
			rows.Close()
			return s, err
		}
		s.Terms = append(s.Terms, t)
	}
	rows.Close()
	rows, err = e.DB.Query(ctx, `SELECT slug, fence_epoch, created_at FROM clusters`)
	if err != nil {
		return s, err
	}
	for rows.Next() {
		var r Row
		if err := rows.Scan(&r.Slug, &r.FenceEpoch, &r.CreatedAt); err != nil {
			rows.Close()
			return s, err
		}
		s.Rows[r.Slug] = r
	}
	rows.Close()
	rows, err = e.DB.Query(ctx, `SELECT id, fence_epoch, coalesce(details->>'slug', '') FROM cluster_audit_events
		WHERE outcome = 'ok' AND fence_epoch IS NOT NULL AND fence_epoch > 0 ORDER BY id`)
	if err != nil {
		return s, err
	}
	for rows.Next() {
		var a AuditOK
		if err := rows.Scan(&a.ID, &a.Epoch, &a.Slug); err != nil {
			rows.Close()
			return s, err
		}
		s.Audit = append(s.Audit, a)
	}
	rows.Close()
	return s, rows.Err()
}

// CheckStaleEpoch: no row written under a stale epoch. Every row's
// fence_epoch is a claimed epoch; no row's transaction started more than
// ClaimSlack after a newer epoch was claimed; and in insertion order of the
// audit events the epochs of successful fenced writes never go down (an
// event is inserted while its transaction holds the fence lock shared, and a
// claim takes it exclusively, so every event of epoch e is inserted before
// the claim of e' > e commits and every event of e' after it).
func CheckStaleEpoch(s DBState) Check {
	c := Check{Name: "no row under a stale epoch", OK: true}
	claimed := map[int64]Term{}
	for _, t := range s.Terms {
		claimed[t.Epoch] = t
	}
	var bad []string
	for _, r := range sortedRows(s.Rows) {
		if _, ok := claimed[r.FenceEpoch]; !ok {
			bad = append(bad, fmt.Sprintf("%s carries unclaimed epoch %d", r.Slug, r.FenceEpoch))
			continue
		}
		for _, t := range s.Terms {
			if t.Epoch > r.FenceEpoch && r.CreatedAt.After(t.ClaimedAt.Add(ClaimSlack)) {
				bad = append(bad, fmt.Sprintf("%s written under epoch %d at %s, %v after epoch %d was claimed",
					r.Slug, r.FenceEpoch, r.CreatedAt.Format("15:04:05.000"), r.CreatedAt.Sub(t.ClaimedAt).Round(time.Millisecond), t.Epoch))
				break
			}
		}
	}
	var prev AuditOK
	for _, a := range s.Audit {
		if a.Epoch < prev.Epoch {
			bad = append(bad, fmt.Sprintf("audit event %d (epoch %d) inserted after event %d (epoch %d)", a.ID, a.Epoch, prev.ID, prev.Epoch))
		}
		if a.Epoch > prev.Epoch {
			prev = a
		}
	}
	for _, r := range s.Rows {
		for _, a := range s.Audit {
			if a.Slug == r.Slug && a.Epoch != r.FenceEpoch {
				bad = append(bad, fmt.Sprintf("%s row epoch %d but audit epoch %d", r.Slug, r.FenceEpoch, a.Epoch))
			}
		}
	}
	c.Detail = fmt.Sprintf("%d rows, %d epochs claimed, %d audited writes in order", len(s.Rows), len(s.Terms), len(s.Audit))
	if len(bad) > 0 {
		c.OK, c.Detail = false, strings.Join(limit(bad, 10), "; ")
	}
	return c
}

// CheckAcknowledged: every acknowledged write is present; no write refused
// with a definite error is present; no operation applied twice (one
// successful audit event per row); unknown outcomes are resolved by their
// retries.
func CheckAcknowledged(ops []Op, s DBState) (Check, int, int) {
	c := Check{Name: "acknowledged writes present, refused ones absent, none twice", OK: true}
	var bad []string
	audits := map[string]int{}
	for _, a := range s.Audit {
		if a.Slug != "" {
			audits[a.Slug]++
		}
	}
	acked, present, absent := 0, 0, 0
	for _, op := range ops {
		_, in := s.Rows[op.Slug]
		switch {
		case op.Outcome == OK:
			acked++
			if !in {
				bad = append(bad, fmt.Sprintf("%s acknowledged by %s but missing", op.Key, op.Server))
			}
		case op.Outcome == Fail && !op.Retry && in:
			bad = append(bad, fmt.Sprintf("%s refused with %s by %s but written", op.Key, op.Code, op.Server))
		case op.Outcome == Fail && op.Retry && op.Code == "conflict" && !in:
			bad = append(bad, fmt.Sprintf("%s retry says it exists but it is missing", op.Key))
		case op.Outcome == Unknown && !op.Retry:
			if in {
				present++
			} else {
				absent++
			}
		}
	}
	for slug, n := range audits {
		if n > 1 {
			bad = append(bad, fmt.Sprintf("%s applied %d times", slug, n))
		}
	}
	c.Detail = fmt.Sprintf("%d acknowledged present; unknown outcomes: %d took effect, %d did not", acked, present, absent)
	if len(bad) > 0 {
		c.OK, c.Detail = false, strings.Join(limit(bad, 10), "; ")
	}
	return c, present, absent
}

// CheckLeaders: at most one leader per Raft term (from every status answer
// seen) and each claimed epoch belongs to one leader, the one the monitor saw.
func CheckLeaders(obs []Observation, s DBState) Check {
	c := Check{Name: "at most one leader per term", OK: true}
	perTerm := map[uint64]map[string]bool{}
	perEpoch := map[uint64]map[string]bool{}
	for _, o := range obs {
		if o.State != "Leader" {
			continue
		}
		if perTerm[o.Term] == nil {
			perTerm[o.Term] = map[string]bool{}
		}
		perTerm[o.Term][o.Node] = true
		if o.FenceEpoch == o.Epoch && o.Epoch > 0 {
			if perEpoch[o.Epoch] == nil {
				perEpoch[o.Epoch] = map[string]bool{}
			}
			perEpoch[o.Epoch][o.Node] = true
		}
	}
	var bad []string
	for term, ls := range perTerm {
		if len(ls) > 1 {
			bad = append(bad, fmt.Sprintf("term %d has leaders %v", term, keys(ls)))
		}
	}
	for _, t := range s.Terms {
		if ls := perEpoch[uint64(t.Epoch)]; len(ls) > 0 && !ls[t.Leader] {
			bad = append(bad, fmt.Sprintf("epoch %d claimed by %s but %v led it", t.Epoch, t.Leader, keys(ls)))
		}
	}
	c.Detail = fmt.Sprintf("%d terms with a leader observed", len(perTerm))
	if len(bad) > 0 {
		c.OK, c.Detail = false, strings.Join(limit(bad, 10), "; ")
	}
	return c
}

// CheckMinority: no operation invoked while the given servers were in a
// minority (between from and to) was acknowledged by one of them, and no row
// carrying the minority leader's epoch was started after from+ClaimSlack and
// before to.
func CheckMinority(ops []Op, s DBState, servers []string, minorityEpoch int64, from, to time.Time) Check {
	c := Check{Name: "no fenced write acknowledged by a minority", OK: true}
	in := map[string]bool{}
	for _, a := range servers {
		in[a] = true
	}
	var bad []string
	n := 0
	for _, op := range ops {
		if op.Invoke.Before(from) || op.Complete.After(to) {
			continue
		}
		for _, r := range op.Refusals {
			if srv, _, _ := strings.Cut(r, ":no_quorum"); in[srv] {
				n++
			}
		}
		if in[op.Server] {
			n++
			if op.Outcome == OK {
				bad = append(bad, fmt.Sprintf("%s acknowledged by %s inside the minority", op.Key, op.Server))
			}
		}
	}
	for _, r := range sortedRows(s.Rows) {
		if r.FenceEpoch == minorityEpoch && r.CreatedAt.After(from.Add(ClaimSlack)) && r.CreatedAt.Before(to) {
			bad = append(bad, fmt.Sprintf("%s written under the minority's epoch %d during the partition", r.Slug, minorityEpoch))
		}
	}
	c.Detail = fmt.Sprintf("%d answers from the minority during the fault, none ok", n)
	if len(bad) > 0 {
		c.OK, c.Detail = false, strings.Join(limit(bad, 10), "; ")
	}
	return c
}

// CheckConverged waits until every running authority reports the same term,
// leader, epoch, commit and applied index, with the leader holding the fence
// at its epoch: the replicated states are equal after the heal.
func (e *Env) CheckConverged(timeout time.Duration) Check {
	c := Check{Name: "FSM states equal after heal"}
	deadline := time.Now().Add(timeout)
	var why string
	for time.Now().Before(deadline) {
		var sts []Status
		ok := true
		for _, a := range e.Auths {
			if !a.Proc.Running() {
				continue
			}
			st, err := e.Status(a, time.Second)
			if err != nil {
				ok, why = false, a.ID+": "+err.Error()
				break
			}
			sts = append(sts, st)
		}
		if ok && len(sts) > 0 {
			f := sts[0]
			for _, st := range sts[1:] {
				if st.Term != f.Term || st.LeaderID != f.LeaderID || st.Epoch != f.Epoch || st.AppliedIndex != f.AppliedIndex || st.CommitIndex != f.CommitIndex {
					ok = false
					why = fmt.Sprintf("%s term %d leader %s epoch %d commit %d applied %d vs %s term %d leader %s epoch %d commit %d applied %d",
						f.NodeID, f.Term, f.LeaderID, f.Epoch, f.CommitIndex, f.AppliedIndex, st.NodeID, st.Term, st.LeaderID, st.Epoch, st.CommitIndex, st.AppliedIndex)
					break
				}
			}
			if ok && (f.LeaderID == "" || f.Epoch == 0) {
				ok, why = false, "no leader"
			}
			if ok {
				for _, st := range sts {
					if st.NodeID == f.LeaderID && st.FenceEpoch != st.Epoch {
						ok, why = false, fmt.Sprintf("leader %s epoch %d but fence %d", st.NodeID, st.Epoch, st.FenceEpoch)
					}
				}
			}
			if ok {
				c.OK = true
				c.Detail = fmt.Sprintf("%d authorities: term %d, leader %s, epoch %d, commit/applied %d", len(sts), f.Term, f.LeaderID, f.Epoch, f.AppliedIndex)
				return c
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	c.Detail = "not converged within " + timeout.String() + ": " + why
	return c
}

func sortedRows(m map[string]Row) []Row {
	out := make([]Row, 0, len(m))
	for _, r := range m {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Slug < out[j].Slug })
	return out
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func limit(s []string, n int) []string {
	if len(s) > n {
		return append(s[:n:n], fmt.Sprintf("… and %d more", len(s)-n))
	}
	return s
}
