package chaos

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

const (
	r3Duration = 45 * time.Second // TESTING.md: 90 s
	r3Every    = 10 * time.Second // TESTING.md: 15 s
	r3Down     = 3 * time.Second  // TESTING.md: 5 s
)

// fenceLockHolders counts fenced transactions of the process at ip that hold
// the fence lock (advisory lock "RAPF") right now.
func fenceLockHolders(ctx context.Context, e *Env, ip string) (int, error) {
	var n int
	err := e.DB.QueryRow(ctx, `SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
		WHERE l.locktype = 'advisory' AND l.objid = 1380012102 AND l.granted AND a.client_addr = $1::inet`, ip).Scan(&n)
	return n, err
}

// lateWrite writes a cluster row declaring epoch, as a deposed leader would.
func lateWrite(ctx context.Context, e *Env, epoch uint64) error {
	tx, err := e.DB.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, `SELECT set_config('rap.fence_epoch', $1, true)`, fmt.Sprint(epoch)); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO clusters (id, name, slug) VALUES (gen_random_uuid(), 'late write', 'late-write')`); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// R2: the leader is paused (SIGSTOP) while it holds a fenced transaction open,
// stays paused until another authority leads, and is resumed. Pass: nothing
// it acknowledges or writes after the new leader's claim; a write declaring
// its old epoch is refused with stale_epoch; the standard checks.
func TestDrillR2LeaderPaused(t *testing.T) {
	requireChaos(t)
	e := NewEnv(t, Options{Name: "R2"})
	w := e.StartWorkload(opsPerSecond)
	waitAcks(t, e, w.started, 20, 30*time.Second)
	old := e.Leader()
	if old == nil {
		t.Fatal("no leader")
	}
	st, err := e.Status(old, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// Pause it the moment PostgreSQL shows it holding the fence lock; if the
	// transaction ended before the signal landed, resume and try again.
	held, tries := 0, 0
	var paused time.Time
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); tries++ {
		n, err := fenceLockHolders(ctx, e, old.Host.IP.String())
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			continue
		}
		old.Proc.Pause()
		paused = time.Now()
		if held, err = fenceLockHolders(ctx, e, old.Host.IP.String()); err != nil {
			t.Fatal(err)
		}
		if held > 0 {
			break
		}
		old.Proc.Resume()
		paused = time.Time{}
	}
	if paused.IsZero() {
		old.Proc.Pause()
		paused = time.Now()
	}
	e.Event("SIGSTOP leader %s (term %d, epoch %d) holding %d fenced transaction(s) open (attempt %d)", old.ID, st.Term, st.Epoch, held, tries+1)
	newLeader, took, err := e.WaitNewLeader(old, st.Term, paused, 15*time.Second)
	if err != nil {
		old.Proc.Resume()
		t.Fatal(err)
	}
	e.Event("new leader %s", newLeader.ID)
	nst, _ := e.Status(newLeader, time.Second)
	claimedWhilePaused := nst.FenceEpoch > st.Epoch
	old.Proc.Resume()
	resumed := time.Now()
	e.Event("SIGCONT %s (new leader's fence claim done while paused: %v)", old.ID, claimedWhilePaused)
	if _, err := e.WaitStable(30*time.Second, nil); err != nil {
		t.Fatal(err)
	}
	waitAcks(t, e, time.Now(), 20, 30*time.Second)
	late := lateWrite(ctx, e, st.Epoch)
	var pgErr *pgconn.PgError
	lateCheck := Check{Name: "late write with the paused leader's epoch refused", OK: errors.As(late, &pgErr) && pgErr.Code == "RF001"}
	lateCheck.Detail = fmt.Sprintf("epoch %d: %v", st.Epoch, late)
	r := finish(t, e, w, "leader paused (SIGSTOP) mid-transaction until a new leader took over, then resumed", func(s DBState) []Check {
		var claim time.Time
		for _, tm := range s.Terms {
			if tm.Epoch > int64(st.Epoch) {
				claim = tm.ClaimedAt
				break
			}
		}
		c := Check{Name: "paused leader acknowledges nothing after the new claim", OK: !claim.IsZero()}
		n := map[string]int{}
		for _, op := range e.Hist.Ops() {
			if op.Server != old.APIAddr || op.Complete.Before(resumed) {
				continue
			}
			n[string(op.Outcome)+"/"+op.Code]++
			if op.Outcome == OK && !claim.IsZero() && op.Invoke.After(claim) {
				c.OK = false
			}
		}
		c.Detail = fmt.Sprintf("its answers after SIGCONT: %v; new epoch claimed at %s", n, claim.Format("15:04:05.000"))
		return []Check{lateCheck, c}
	})
	r.NewLeader = took
	r.Notes = append(r.Notes, fmt.Sprintf("paused %.1fs; fenced transactions held open by the paused leader: %d", resumed.Sub(paused).Seconds(), held))
	if !claimedWhilePaused && held > 0 {
		r.Notes = append(r.Notes, "the new leader could not claim the fence while the paused leader held a fenced transaction open "+
			"(the claim waits for the fence lock; fenced transactions set no idle_in_transaction_session_timeout), so fenced writes stalled until SIGCONT")
	}
	e.Emit(r)
}

// R3: kill -9 of a random authority every r3Every for r3Duration, each
// restarted r3Down later, under the workload. Pass: the standard checks.
func TestDrillR3KillRestart(t *testing.T) {
	requireChaos(t)
	e := NewEnv(t, Options{Name: "R3"})
	w := e.StartWorkload(opsPerSecond)
	waitAcks(t, e, w.started, 20, 30*time.Second)
	start := time.Now()
	kills, leaderKills := 0, 0
	for k := 1; start.Add(time.Duration(k) * r3Every).Before(start.Add(r3Duration)); k++ {
		time.Sleep(time.Until(start.Add(time.Duration(k) * r3Every))) // the fault schedule
		victim := e.Auths[e.Rand.IntN(len(e.Auths))]
		wasLeader := e.Leader() == victim
		victim.Proc.Kill9()
		kills++
		if wasLeader {
			leaderKills++
		}
		e.Event("kill -9 %s (leader: %v)", victim.ID, wasLeader)
		time.Sleep(r3Down)
		if err := victim.Restart(); err != nil {
			t.Fatal(err)
		}
		e.Event("restart %s", victim.ID)
	}
	if _, err := e.WaitStable(30*time.Second, nil); err != nil {
		t.Fatal(err)
	}
	waitAcks(t, e, time.Now(), 20, 30*time.Second)
	r := finish(t, e, w, fmt.Sprintf("kill -9 of a random authority every %v for %v, restarted %v later", r3Every, r3Duration, r3Down), nil)
	r.Notes = append(r.Notes, fmt.Sprintf("%d kills, %d of them the leader", kills, leaderKills))
	e.Emit(r)
}
