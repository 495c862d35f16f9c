package chaos

import (
	"fmt"
	"testing"
	"time"
)

const (
	r4Duration  = 30 * time.Second // TESTING.md: "as R3"
	r4Delay     = 100 * time.Millisecond
	r4Jitter    = 50 * time.Millisecond
	r4LossPct   = 5
	r4DupPct    = 5
	r4Elections = 4                // "few elections" while the faults last
	r5Cut       = 10 * time.Second // TESTING.md: 15 s
	r5Recover   = 20 * time.Second
)

// R4: every Raft link runs through the fault proxy with 100±50 ms delay per
// direction, and nftables drops 5 % and duplicates 5 % of the packets on
// those links, for r4Duration under the workload. Raft timing is WANTiming.
// Pass: the standard checks, few elections, and most writes acknowledged.
func TestDrillR4SlowLossyLinks(t *testing.T) {
	requireChaos(t)
	e := NewEnv(t, Options{Name: "R4", RaftProxy: true, Timing: WANTiming})
	w := e.StartWorkload(opsPerSecond)
	waitAcks(t, e, w.started, 20, 30*time.Second)
	from := time.Now()
	for _, p := range e.Proxies {
		p.Set(LinkFaults{Delay: r4Delay, Jitter: r4Jitter})
	}
	for _, a := range e.Auths {
		if err := e.Net.SetLoss(a.Host, r4LossPct, e.ProxyHost); err != nil {
			t.Fatal(err)
		}
		if err := e.Net.SetDuplication(a.Host, r4DupPct, e.ProxyHost); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.Net.SetDuplication(e.ProxyHost, r4DupPct, e.AuthHosts()...); err != nil {
		t.Fatal(err)
	}
	e.Event("Raft links: delay %v±%v per direction (proxy), loss %d%%, duplication %d%% (nftables)", r4Delay, r4Jitter, r4LossPct, r4DupPct)
	time.Sleep(r4Duration) // the fault's scheduled length
	var matched uint64
	for _, h := range append(e.AuthHosts(), e.ProxyHost) {
		n, err := e.Net.DroppedPackets(h)
		if err != nil {
			t.Fatal(err)
		}
		matched += n
	}
	for _, p := range e.Proxies {
		p.Set(LinkFaults{})
	}
	if err := e.Net.Heal(); err != nil {
		t.Fatal(err)
	}
	healed := time.Now()
	e.Event("faults removed")
	if _, err := e.WaitStable(30*time.Second, nil); err != nil {
		t.Fatal(err)
	}
	waitAcks(t, e, time.Now(), 20, 30*time.Second)
	var chunks, bytes uint64
	for _, p := range e.Proxies {
		st := p.Stats()
		chunks += st.Chunks
		bytes += st.Bytes
	}
	r := finish(t, e, w, fmt.Sprintf("%v±%v delay, %d%% loss, %d%% duplication on Raft links for %v", r4Delay, r4Jitter, r4LossPct, r4DupPct, r4Duration), func(s DBState) []Check {
		elections := 0
		for _, tm := range s.Terms {
			if tm.ClaimedAt.After(from) && tm.ClaimedAt.Before(healed) {
				elections++
			}
		}
		acked, attempted := 0, 0
		for _, op := range e.Hist.Ops() {
			if op.Retry || op.Invoke.Before(from) || op.Invoke.After(healed) {
				continue
			}
			attempted++
			if op.Outcome == OK {
				acked++
			}
		}
		return []Check{
			{Name: fmt.Sprintf("few elections (≤ %d) under the faults", r4Elections), OK: elections <= r4Elections, Detail: fmt.Sprintf("%d", elections)},
			{Name: "bounded errors (≥ half the writes acknowledged under the faults)", OK: attempted > 0 && acked*2 >= attempted,
				Detail: fmt.Sprintf("%d of %d acknowledged", acked, attempted)},
		}
	})
	r.Notes = append(r.Notes, fmt.Sprintf("proxy forwarded %d chunks (%d KiB); nftables loss/duplication rules matched %d packets", chunks, bytes>>10, matched),
		"Raft runs over TLS over TCP: the proxy delays byte streams but never reorders or duplicates bytes (that would corrupt the stream); "+
			"segment duplication is nftables dup, segment reordering has no tool here (no netem) — UDPProxy reorders datagrams for UDP links")
	e.Emit(r)
}

// R5: PostgreSQL is cut off from the leader for r5Cut (the leader keeps its
// quorum). Pass: no acknowledgement without a commit, errors instead of
// acknowledgements during the cut, writes acknowledged again within
// r5Recover of the heal without restarting anything, the standard checks.
func TestDrillR5PostgresCutFromLeader(t *testing.T) {
	requireChaos(t)
	e := NewEnv(t, Options{Name: "R5"})
	w := e.StartWorkload(opsPerSecond)
	waitAcks(t, e, w.started, 20, 30*time.Second)
	leader := e.Leader()
	if leader == nil {
		t.Fatal("no leader")
	}
	pids := map[string]int{}
	for _, a := range e.Auths {
		pids[a.ID] = a.Proc.Pid()
	}
	from := time.Now()
	if err := e.Net.Isolate(leader.Host, e.PG.Host); err != nil {
		t.Fatal(err)
	}
	e.Event("cut PostgreSQL off from leader %s", leader.ID)
	time.Sleep(r5Cut) // the fault's scheduled length
	if err := e.Net.Heal(); err != nil {
		t.Fatal(err)
	}
	healed := time.Now()
	e.Event("heal")
	recovery := waitAcks(t, e, healed, 5, r5Recover)
	e.Event("writes acknowledged again")
	if _, err := e.WaitStable(30*time.Second, nil); err != nil {
		t.Fatal(err)
	}
	r := finish(t, e, w, fmt.Sprintf("PostgreSQL unreachable from the leader for %v", r5Cut), func(s DBState) []Check {
		restarted := []string{}
		for _, a := range e.Auths {
			if a.Proc.Pid() != pids[a.ID] {
				restarted = append(restarted, a.ID)
			}
		}
		during := map[string]int{}
		var slowest time.Duration
		leaderAcks, timeouts := 0, 0
		for _, op := range e.Hist.Ops() {
			if op.Retry || op.Invoke.Before(from) || op.Invoke.After(healed) {
				continue
			}
			during[string(op.Outcome)+"/"+op.Code]++
			if d := op.Complete.Sub(op.Invoke); d > slowest {
				slowest = d
			}
			if op.Outcome == OK && op.Server == leader.APIAddr && op.Complete.Before(healed) {
				leaderAcks++
			}
			if op.Outcome == Unknown && op.Code == "timeout" && op.Complete.Before(healed) {
				timeouts++
			}
		}
		return []Check{
			{Name: fmt.Sprintf("recovery without restart within %v", r5Recover), OK: len(restarted) == 0,
				Detail: fmt.Sprintf("first acknowledgements %.1fs after the heal; restarted: %v", recovery.Seconds(), restarted)},
			{Name: "no acknowledgement by the cut-off leader during the cut", OK: leaderAcks == 0,
				Detail: fmt.Sprintf("outcomes of operations invoked during the cut: %v; slowest answer %.1fs", during, slowest.Seconds())},
			{Name: "clean errors: the leader answers during the cut (no client timeouts)", OK: timeouts == 0,
				Detail: fmt.Sprintf("%d operations ended in a client timeout (%v) during the cut", timeouts, OpTimeout)},
		}
	})
	e.Emit(r)
}
