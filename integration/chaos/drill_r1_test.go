package chaos

import (
	"fmt"
	"testing"
	"time"
)

// Drill durations, shortened from TESTING.md so the suite fits in about ten
// minutes on two cores (docs/chaos.md lists them).
const (
	opsPerSecond = 20
	r1Isolation  = 10 * time.Second // TESTING.md: 20 s
	r1NewLeader  = 10 * time.Second // pass bound from TESTING.md
)

// R1: the leader is isolated in a minority (cut from the other authorities;
// PostgreSQL and the clients still reach it) under ~20 fenced ops/s, then
// healed. Pass: a new leader within 10 s, nothing acknowledged or written by
// the minority, no row under a stale epoch, every acknowledged write present.
func TestDrillR1LeaderIsolated(t *testing.T) {
	requireChaos(t)
	e := NewEnv(t, Options{Name: "R1"})
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
	others := e.Others(old)
	from := time.Now()
	if err := e.Net.Isolate(old.Host, HostsOf(others)...); err != nil {
		t.Fatal(err)
	}
	e.Event("isolate leader %s (term %d, epoch %d) from %v", old.ID, st.Term, st.Epoch, IDs(others))
	newLeader, took, err := e.WaitNewLeader(old, st.Term, from, r1NewLeader)
	leaderCheck := Check{Name: fmt.Sprintf("new leader within %v", r1NewLeader), OK: err == nil}
	if err == nil {
		leaderCheck.Detail = fmt.Sprintf("%s after %.1fs", newLeader.ID, took.Seconds())
		e.Event("new leader %s", newLeader.ID)
	} else {
		leaderCheck.Detail = err.Error()
	}
	time.Sleep(time.Until(from.Add(r1Isolation))) // the fault's scheduled length
	healed := time.Now()
	if err := e.Net.Heal(); err != nil {
		t.Fatal(err)
	}
	e.Event("heal")
	if _, err := e.WaitStable(30*time.Second, nil); err != nil {
		t.Fatal(err)
	}
	waitAcks(t, e, time.Now(), 20, 30*time.Second)
	r := finish(t, e, w, fmt.Sprintf("leader isolated in a minority for %v, healed", r1Isolation), func(s DBState) []Check {
		return []Check{leaderCheck, CheckMinority(e.Hist.Ops(), s, []string{old.APIAddr}, int64(st.Epoch), from, healed)}
	})
	r.NewLeader = took
	r.Notes = append(r.Notes, "clients (this workload, apiclient in rapctl and the agents) move on to the next authority after no_quorum or unavailable: "+
		"both mean nothing was written")
	e.Emit(r)
}
