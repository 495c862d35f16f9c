package chaos

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

const (
	p1Agents  = 2
	p1Before  = 3 * time.Second  // workload under the synchronous pair before the kill
	p1Recover = 30 * time.Second // first committed fenced write after the kill, at the latest
	p1After   = 5 * time.Second  // workload on the new primary before the checks
	// p1ReplDelay delays the streaming link each way, so every COMMIT waits
	// ≥ 2×p1ReplDelay for the standby and the kill catches some in flight
	// (their outcome is unknown; the Idempotency-Key resolves them).
	p1ReplDelay = 40 * time.Millisecond
)

// P1: PostgreSQL primary failover under load (issue 25). A primary and a
// synchronous standby (pg_basebackup, streaming replication,
// synchronous_standby_names), three authorities given both hosts with
// target_session_attrs=read-write, agents heartbeating, the fenced workload
// with Idempotency-Keys. The primary is killed with SIGKILL (postmaster and
// every backend), the standby promoted; nothing is pointed at it by hand.
// Pass: the standard checks on the new primary (every acknowledged write
// present, none twice, none refused but written, no row under a stale epoch),
// every acknowledged write present exactly once, the leader's fence held
// on the new primary at its epoch and every authority connected to it, a
// committed fenced write within p1Recover of the kill (time reported), GET
// /v1/health ok on every authority naming the new primary, the audit chain
// continued there and verifying, and the agents running throughout with
// their heartbeats acknowledged and stored on the new primary again. Like
// every drill it fails, never skips, under CI when it cannot run (here: two
// PostgreSQL servers, run as the postgres user inside their namespaces).
func TestDrillP1PostgresPrimaryFailover(t *testing.T) { pgFailoverDrill(t, "P1", false) }

// P2: as P1, but the primary is cut off from every host (nftables) instead
// of killed: it stays up, its connections neither answer nor close, as a
// crashed machine or a partition leaves them. The authorities must notice
// the dead connections themselves (keepalive and TCP_USER_TIMEOUT,
// store/dial.go) and, for new connections, not wait on the silent host first
// (store.preferHost). Same checks as P1.
func TestDrillP2PostgresPrimaryPartitioned(t *testing.T) { pgFailoverDrill(t, "P2", true) }

// pgFailoverDrill runs P1 (isolate false: kill -9) or P2 (isolate true: the
// primary cut off from every host).
func pgFailoverDrill(t *testing.T, name string, isolate bool) {
	requireChaos(t)
	e := NewEnv(t, Options{Name: name, Standby: true, ReplicationDelay: p1ReplDelay})
	fault := "kill -9 of the PostgreSQL primary"
	if isolate {
		fault = "PostgreSQL primary cut off from every host"
	}
	e.Event("PostgreSQL: primary %s, synchronous standby %s (%s), streaming through a proxy adding %v per direction", e.PG.Host.IP, e.PGStandby.Host.IP, StandbyName, p1ReplDelay)
	token, pin, err := e.CreateClusterAndToken("p1-agents", p1Agents)
	if err != nil {
		t.Fatal(err)
	}
	var agents []*Agent
	for i := 0; i < p1Agents; i++ {
		ag := e.AddAgent(fmt.Sprintf("agent%d", i+1), byte(octetAgent+i))
		if _, err := ag.Enroll(token, pin, 60*time.Second); err != nil {
			t.Fatal(err)
		}
		if err := ag.Run(); err != nil {
			t.Fatal(err)
		}
		agents = append(agents, ag)
	}
	for _, ag := range agents {
		if _, _, err := ag.WaitAgent(30*time.Second, "heartbeating", func(m AgentMembership) bool {
			return m.Running && m.HeartbeatsAcked >= 2 && m.Mode == "normal"
		}); err != nil {
			t.Fatal(err)
		}
	}
	w := e.StartWorkload(opsPerSecond)
	waitAcks(t, e, w.started, 20, 30*time.Second)
	time.Sleep(p1Before)
	leader := e.Leader()
	if leader == nil {
		t.Fatal("no leader")
	}
	before, err := e.Status(leader, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	pids := map[string]int{}
	for _, a := range e.Auths {
		pids[a.ID] = a.Proc.Pid()
	}
	agentPids := map[string]int{}
	acked := map[string]uint64{}
	for _, ag := range agents {
		agentPids[ag.Name] = ag.Proc.Pid()
		if st, err := ag.Status(); err == nil {
			acked[ag.Name] = st.HeartbeatsAcked
		}
	}

	if isolate {
		if err := e.Net.Isolate(e.PG.Host, append(e.AuthHosts(), e.PGStandby.Host, e.Client)...); err != nil {
			t.Fatal(err)
		}
		e.Event("primary cut off from every host (it keeps running); leader %s at epoch %d", leader.ID, before.Epoch)
	} else {
		n, err := e.PG.Kill9()
		if err != nil {
			t.Fatal(err)
		}
		e.Event("kill -9 of the primary (%d processes); leader %s at epoch %d", n, leader.ID, before.Epoch)
	}
	// After every process got SIGKILL (or the cut), nothing the old primary
	// commits reaches the standby, so a write invoked later and acknowledged
	// was committed on the new primary.
	killed := time.Now()
	if err := e.PGStandby.Promote(); err != nil {
		t.Fatal(err)
	}
	promoted := time.Now()
	e.Event("standby promoted (pg_ctl promote took %.2fs)", promoted.Sub(killed).Seconds())

	// Agents: sampled throughout, until each has heartbeats acknowledged
	// after the promotion.
	agentsDown := map[string]string{}
	agentsResumed := map[string]time.Duration{}
	deadline := time.Now().Add(p1Recover)
	for time.Now().Before(deadline) && len(agentsResumed) < len(agents) {
		for _, ag := range agents {
			st, err := ag.Status()
			switch {
			case !ag.Proc.Running() || ag.Proc.Pid() != agentPids[ag.Name]:
				agentsDown[ag.Name] = "process exited or restarted"
			case err != nil:
				agentsDown[ag.Name] = err.Error()
			case !st.Running:
				agentsDown[ag.Name] = "status says not running"
			case st.HeartbeatsAcked > acked[ag.Name]+1 && st.LastHeartbeatAck.After(promoted):
				if _, ok := agentsResumed[ag.Name]; !ok {
					agentsResumed[ag.Name] = time.Since(killed)
					e.Event("%s heartbeats acknowledged again (%d → %d, mode %s)", ag.Name, acked[ag.Name], st.HeartbeatsAcked, st.Mode)
				}
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	recovered := waitAcks(t, e, killed, 20, p1Recover)
	e.Event("writes acknowledged again")
	time.Sleep(p1After)
	if _, err := e.WaitStable(30*time.Second, nil); err != nil {
		t.Fatal(err)
	}

	// The checkers read the new primary from now on.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	newDB, err := e.PGStandby.Pool(ctx)
	if err != nil {
		t.Fatal(err)
	}
	e.Net.OnClose(newDB.Close)
	e.DB = newDB

	// The authorities' audit chainer links the events committed on the new
	// primary: every event committed when this check starts gets chained
	// (the workload keeps adding events, so "none unchained at all" is a
	// race with it), and the whole chain verifies there. Each query has its
	// own bound: the pool's connect above may have used much of ctx's.
	var target int64
	var unchained, chainedAfter int
	query := func(sql string, args []any, dst ...any) {
		t.Helper()
		qctx, qcancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer qcancel()
		if err := e.DB.QueryRow(qctx, sql, args...).Scan(dst...); err != nil {
			t.Fatal(err)
		}
	}
	query(`SELECT coalesce(max(id), 0) FROM cluster_audit_events`, nil, &target)
	for end := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		query(`SELECT count(*) FILTER (WHERE seq IS NULL AND id <= $2), count(*) FILTER (WHERE seq IS NOT NULL AND at > $1)
			FROM cluster_audit_events`, []any{promoted, target}, &unchained, &chainedAfter)
		if unchained == 0 || time.Now().After(end) {
			break
		}
	}
	// Verify against the latest Raft checkpoint, read from the authorities
	// (from the client host, which reaches them).
	var servers []string
	for _, a := range e.Auths {
		servers = append(servers, a.APIAddr)
	}
	verify, verifyErr := e.Client.Exec(60*time.Second, filepath.Join(e.Bin, "rap-authority"), "audit", "verify", "--database-url", e.PGStandby.socketURL("rap"),
		"--server", strings.Join(servers, ","), "--token", e.OwnerToken, "--ca-pin", e.CAPin)

	statuses := map[string]Status{}
	dbSeen := map[string]string{}
	var healthSeen []string
	healthy := 0
	for _, a := range e.Auths {
		st, raw, err := e.statusRaw(a)
		if err != nil {
			t.Fatal(err)
		}
		statuses[a.ID] = st
		dbSeen[a.ID] = raw
		var h struct {
			Status         string   `json:"status"`
			Problems       []string `json:"problems"`
			DatabaseServer string   `json:"database_server"`
		}
		hctx, hcancel := context.WithTimeout(context.Background(), 3*time.Second)
		if _, err := e.Mon.api[a.ID].Do(hctx, http.MethodGet, "/v1/health?standbyok", nil, &h, nil); err != nil {
			healthSeen = append(healthSeen, a.ID+": "+err.Error())
		} else {
			healthSeen = append(healthSeen, fmt.Sprintf("%s %s on %s %v", a.ID, h.Status, h.DatabaseServer, h.Problems))
			if h.Status == "ok" && h.DatabaseServer == e.PGStandby.Host.Addr(PGPort) {
				healthy++
			}
		}
		hcancel()
	}
	var agentRows []string
	heartbeatsStored := 0
	rows, err := e.DB.Query(ctx, `SELECT n.name, l.received_at FROM node_heartbeat_latest l JOIN nodes n ON n.id = l.node_id`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var name string
		var at time.Time
		if err := rows.Scan(&name, &at); err != nil {
			t.Fatal(err)
		}
		agentRows = append(agentRows, fmt.Sprintf("%s %s", name, at.Sub(promoted).Round(100*time.Millisecond)))
		if at.After(promoted) {
			heartbeatsStored++
		}
	}
	rows.Close()
	sort.Strings(agentRows)

	// The first fenced write invoked after the kill and acknowledged: its
	// commit reached the new primary.
	var first time.Duration
	for _, op := range e.Hist.Ops() {
		if op.Outcome == OK && !op.Retry && op.Invoke.After(killed) {
			if d := op.Complete.Sub(killed); first == 0 || d < first {
				first = d
			}
		}
	}
	t.Logf("%s: %s → first committed fenced write %.2fs (promotion took %.2fs)", name, fault, first.Seconds(), promoted.Sub(killed).Seconds())

	r := finish(t, e, w, fault+" under load, synchronous standby promoted", func(s DBState) []Check {
		restarted := []string{}
		for _, a := range e.Auths {
			if a.Proc.Pid() != pids[a.ID] {
				restarted = append(restarted, a.ID)
			}
		}
		// Exactly once: every acknowledged key has its row and one audit
		// event on the new primary.
		audits := map[string]int{}
		for _, a := range s.Audit {
			audits[a.Slug]++
		}
		var bad []string
		ackd := 0
		for _, op := range e.Hist.Ops() {
			if op.Outcome != OK {
				continue
			}
			ackd++
			if _, ok := s.Rows[op.Slug]; !ok || audits[op.Slug] != 1 {
				bad = append(bad, fmt.Sprintf("%s: row %v, %d audit events", op.Key, ok, audits[op.Slug]))
			}
		}
		once := Check{Name: "every acknowledged write present exactly once on the new primary", OK: len(bad) == 0 && ackd > 0,
			Detail: fmt.Sprintf("%d acknowledged (first attempts and retries), each one row and one audit event", ackd)}
		if len(bad) > 0 {
			once.Detail = strings.Join(limit(bad, 10), "; ")
		}
		lst := statuses[leaderOf(statuses)]
		fence := Check{Name: "the leader's fence held on the new primary at its epoch", OK: s.Fence > 0 && uint64(s.Fence) == lst.Epoch && lst.FenceEpoch == lst.Epoch,
			Detail: fmt.Sprintf("fence %d on the new primary; leader %s epoch %d (before the fault: %s epoch %d)", s.Fence, lst.NodeID, lst.Epoch, leader.ID, before.Epoch)}
		var notThere []string
		for id, addr := range dbSeen {
			if addr != e.PGStandby.Host.Addr(PGPort) {
				notThere = append(notThere, id+"→"+addr)
			}
		}
		found := Check{Name: "every authority found the new primary by itself (multi-host URL)", OK: len(notThere) == 0 && len(restarted) == 0,
			Detail: fmt.Sprintf("all on %s; restarted: %v", e.PGStandby.Host.Addr(PGPort), restarted)}
		if len(notThere) > 0 {
			found.Detail = "still elsewhere: " + strings.Join(notThere, ", ")
		}
		fail := Check{Name: fmt.Sprintf("a committed fenced write within %v of the fault", p1Recover), OK: first > 0 && first <= p1Recover,
			Detail: fmt.Sprintf("first after %.2fs; 20 after %.1fs", first.Seconds(), recovered.Seconds())}
		down := []string{}
		for name, why := range agentsDown {
			down = append(down, name+": "+why)
		}
		resumed := []string{}
		for _, ag := range agents {
			if d, ok := agentsResumed[ag.Name]; ok {
				resumed = append(resumed, fmt.Sprintf("%s %.1fs", ag.Name, d.Seconds()))
			}
		}
		ags := Check{Name: "agents keep running; their heartbeats resume and are stored on the new primary",
			OK:     len(down) == 0 && len(agentsResumed) == len(agents) && heartbeatsStored == len(agents),
			Detail: fmt.Sprintf("acknowledged again after the fault: %v; latest heartbeats vs promotion: %v; problems: %v", resumed, agentRows, down)}
		health := Check{Name: "GET /v1/health ok on every authority, naming the new primary", OK: healthy == len(e.Auths),
			Detail: strings.Join(healthSeen, "; ")}
		chain := Check{Name: "audit chain continued on the new primary and verifies", OK: unchained == 0 && chainedAfter > 0 && verifyErr == nil,
			Detail: fmt.Sprintf("%d events chained since the promotion, %d of those committed when the check began still unchained; %s", chainedAfter, unchained, strings.TrimSpace(string(verify)))}
		if verifyErr != nil {
			chain.Detail += " (" + verifyErr.Error() + ")"
		}
		return []Check{once, fence, found, health, chain, fail, ags}
	})
	if s, err := e.ReadDB(ctx); err == nil {
		var firstTook, retryApplied, missing int
		for _, op := range e.Hist.Ops() {
			if op.Retry || op.Outcome != Unknown {
				continue
			}
			switch row, ok := s.Rows[op.Slug]; {
			case !ok:
				missing++
			case row.CreatedAt.Before(killed):
				firstTook++ // committed on the primary and replicated before the kill
			default:
				retryApplied++
			}
		}
		r.Notes = append(r.Notes, fmt.Sprintf("unknown outcomes at the fault: %d first attempts had reached the standby (the retry returned the stored response), %d were applied by their retry, %d absent",
			firstTook, retryApplied, missing))
	}
	r.Notes = append(r.Notes, fmt.Sprintf("failover: %s → first committed fenced write %.2fs (pg_ctl promote %.2fs of it)", fault, first.Seconds(), promoted.Sub(killed).Seconds()))
	e.Emit(r)
}

// statusRaw is Status plus the database server the authority reports.
func (e *Env) statusRaw(a *Authority) (Status, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var st struct {
		Status
		Database *struct {
			Server struct {
				Addr string `json:"addr"`
			} `json:"server"`
			ServerChanges  uint64 `json:"server_changes"`
			FenceReaffirms uint64 `json:"fence_reaffirms"`
		} `json:"database"`
	}
	if _, err := e.Mon.api[a.ID].Do(ctx, http.MethodGet, "/v1/authority/status", nil, &st, nil); err != nil {
		return Status{}, "", err
	}
	if st.Database == nil {
		return st.Status, "", nil
	}
	e.T.Logf("%s: %s database %s, %d server changes, %d fence re-affirmations", e.Opts.Name, a.ID, st.Database.Server.Addr, st.Database.ServerChanges, st.Database.FenceReaffirms)
	return st.Status, st.Database.Server.Addr, nil
}

func leaderOf(sts map[string]Status) string {
	for id, st := range sts {
		if st.State == "Leader" {
			return id
		}
	}
	return ""
}
