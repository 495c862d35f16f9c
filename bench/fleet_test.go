package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	mrand "math/rand/v2"
	"net/http"
	_ "net/http/pprof" // FLEET_PPROF
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rap-fabric/core/agentapi"
	"github.com/rap-fabric/core/apiclient"
	"github.com/rap-fabric/core/authority"
	"github.com/rap-fabric/core/daemon"
	"github.com/rap-fabric/core/domain"
	"github.com/rap-fabric/core/internal/authtest"
	"github.com/rap-fabric/core/snapshot"
	"github.com/rap-fabric/core/store"
)

// Environment of the fleet child (this test binary re-executed).
const envFleetChild = "FLEET_CHILD" // path of the fleetSpec JSON

// fleetSpec is what the fleet child needs: the agents, every authority's
// address, the cluster's CA keys (to verify snapshots) and the rhythm.
type fleetSpec struct {
	simFleet
	ClusterID string        `json:"cluster_id"`
	Servers   []string      `json:"servers"`
	CAKeys    [][]byte      `json:"ca_keys"`
	Interval  time.Duration `json:"interval"`
	Wait      int           `json:"wait"` // long-poll wait, seconds
	ApplyCap  time.Duration `json:"apply_cap"`
	HBPath    string        `json:"hb_path"` // hbPathStream (agent/runtime's way) or hbPathPost
}

// fleetReport is the child's answer to "report": what its agents measured
// from the change (T0) until every agent applied a newer snapshot (or the
// cap), and the heartbeats they sent in the window the parent named.
type fleetReport struct {
	Agents       int             `json:"agents"`
	PollsOpen    int64           `json:"polls_open"` // long polls in flight at the mark
	Applied      []time.Duration `json:"applied"`    // T0 → newer snapshot verified, per agent that got one
	Missing      int             `json:"missing"`
	Rejected     int64           `json:"rejected"` // snapshots that failed verification
	PollErrors   int64           `json:"poll_errors"`
	HBAcked      int             `json:"hb_acked"` // heartbeats sent in [T0, end] and acknowledged
	HBFailed     int             `json:"hb_failed"`
	HBAck        []time.Duration `json:"hb_ack"`
	HBFallbacks  int64           `json:"hb_fallbacks"` // heartbeats sent by POST after a stream failed (whole run)
	CPU          time.Duration   `json:"cpu"`
	End          time.Time       `json:"end"`
	VersionAfter uint64          `json:"version_after"` // the highest version seen
	// Errors counts the failures of long polls and heartbeats by kind (the
	// error text up to its first 90 bytes), for the report.
	Errors map[string]int64 `json:"errors,omitempty"`
}

// merge adds k, another fleet process's report, to r.
func (r *fleetReport) merge(k fleetReport) {
	r.Agents += k.Agents
	r.PollsOpen += k.PollsOpen
	r.Applied = append(r.Applied, k.Applied...)
	r.Missing += k.Missing
	r.Rejected += k.Rejected
	r.PollErrors += k.PollErrors
	r.HBAcked += k.HBAcked
	r.HBFailed += k.HBFailed
	r.HBAck = append(r.HBAck, k.HBAck...)
	r.HBFallbacks += k.HBFallbacks
	r.CPU += k.CPU
	if k.End.After(r.End) {
		r.End = k.End
	}
	r.VersionAfter = max(r.VersionAfter, k.VersionAfter)
	for e, c := range k.Errors {
		if r.Errors == nil {
			r.Errors = map[string]int64{}
		}
		r.Errors[e] += c
	}
}

// errTally counts errors by kind, bounded to 20 kinds.
type errTally struct {
	mu sync.Mutex
	m  map[string]int64
}

func (e *errTally) add(what string, err error) {
	k := what + ": " + err.Error()
	if len(k) > 90 {
		k = k[:90]
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.m == nil {
		e.m = map[string]int64{}
	}
	if _, ok := e.m[k]; ok || len(e.m) < 20 {
		e.m[k]++
	} else {
		e.m["(other)"]++
	}
}

func (e *errTally) snapshot() map[string]int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return maps.Clone(e.m)
}

// fleetAgent is one simulated agent as the real one behaves: one HTTPS +
// mTLS client for heartbeats and, sharing its connection (HTTP/2), one with
// the longer timeout of the snapshot long poll, as agent/runtime does.
type fleetAgent struct {
	id       simIdentity
	hb, poll *apiclient.Client
	mu       sync.Mutex
	applied  uint64
	markVer  uint64
	gotAt    time.Time // first newer snapshot after the mark
}

// hbRecord is one heartbeat a fleet child sent after the mark: when, and
// its ack time or error.
type hbRecord struct {
	sent time.Time
	ack  time.Duration
	err  error
}

// fleetChild is a fleet process (there is one per FLEET_PER_CHILD agents:
// a process holds one descriptor per agent). Protocol on stdin/stdout: it
// connects every agent (heartbeat with facts, first snapshot fetched and
// verified), starts their heartbeat and long-poll loops and prints "ready";
// "mark" records every agent's applied version, starts recording
// heartbeats and answers "marked <unix-nano>"; "change <unix-nano T0>"
// waits until every agent verified a newer snapshot (or the cap) and
// answers "applied <unix-nano>"; "report <start> <end>" (unix-nano: the
// heartbeat window, the same for every child) waits until the heartbeats
// sent in it were answered and answers one fleetReport JSON line; stdin
// closing ends it.
func fleetChild() error {
	data, err := os.ReadFile(os.Getenv(envFleetChild))
	if err != nil {
		return err
	}
	var f fleetSpec
	if err := json.Unmarshal(data, &f); err != nil {
		return err
	}
	var pubs []ed25519.PublicKey
	for _, k := range f.CAKeys {
		pubs = append(pubs, ed25519.PublicKey(k))
	}
	trusted := snapshot.TrustedKeys(pubs...)
	agents := make([]*fleetAgent, len(f.Agents))
	for i, id := range f.Agents {
		servers := slices.Clone(f.Servers)
		// Spread the agents over the authorities (the first answering wins).
		servers = append(servers[i%len(servers):], servers[:i%len(servers)]...)
		cert := &tls.Certificate{Certificate: [][]byte{id.Cert}, PrivateKey: ed25519.PrivateKey(id.Key)}
		hb, err := apiclient.New(apiclient.Options{Servers: servers, CAPin: f.CAPin, ServerName: f.ServerName, Certificate: cert, Timeout: 10 * time.Second})
		if err != nil {
			return err
		}
		// The long poll shares the heartbeats' connection (HTTP/2), as
		// agent/runtime's snapshot loop does.
		poll := hb.WithTimeout(time.Duration(f.Wait+7) * time.Second)
		agents[i] = &fleetAgent{id: id, hb: hb, poll: poll}
	}
	defer func() {
		for _, a := range agents {
			a.hb.Close()
			a.poll.Close()
		}
	}()
	var rejected, pollErrs, open, fallbacks atomic.Int64
	var errs errTally
	var maxVer atomic.Uint64
	verify := func(a *fleetAgent, w *agentapi.Snapshot) bool {
		signed, err := snapshot.Decode(bytes.NewReader(w.Snapshot), snapshot.DefaultMaxSize)
		if err == nil {
			a.mu.Lock()
			applied := a.applied
			a.mu.Unlock()
			_, err = snapshot.Verify(signed, snapshot.Expect{ClusterID: f.ClusterID, NodeID: a.id.NodeID, AppliedVersion: applied, Now: time.Now(), TrustedKeys: trusted})
		}
		if err != nil {
			rejected.Add(1)
			return false
		}
		now := time.Now()
		a.mu.Lock()
		a.applied = w.Version
		if a.markVer > 0 && w.Version > a.markVer && a.gotAt.IsZero() {
			a.gotAt = now
		}
		a.mu.Unlock()
		for v := maxVer.Load(); w.Version > v && !maxVer.CompareAndSwap(v, w.Version); v = maxVer.Load() {
		}
		return true
	}
	fetch := func(ctx context.Context, a *fleetAgent, wait int) error {
		a.mu.Lock()
		after := a.applied
		a.mu.Unlock()
		var w agentapi.Snapshot
		open.Add(1)
		err := a.poll.Do(ctx, http.MethodGet, fmt.Sprintf("/v1/agent/snapshot?after_version=%d&wait=%d", after, wait), nil, &w, nil)
		open.Add(-1)
		if err != nil {
			return err
		}
		if len(w.Snapshot) > 0 {
			verify(a, &w)
		}
		return nil
	}
	// Connect: first heartbeat (facts) and the current snapshot, 16 at a
	// time; a failed step is retried up to 5 times, 1 s apart, as the
	// agent's loops retry (counted as connect errors).
	retry := func(what string, f func() error) error {
		var err error
		for range 5 {
			if err = f(); err == nil {
				return nil
			}
			errs.add("connect "+what, err)
			time.Sleep(time.Second)
		}
		return err
	}
	if err := parallelDo(len(agents), 16, func(i int) error {
		a := agents[i]
		if err := retry("heartbeat", func() error {
			return a.hb.Do(context.Background(), http.MethodPost, "/v1/agent/heartbeat", authority.HeartbeatInput{Facts: json.RawMessage(`{"hostname":"sim"}`)}, nil, nil)
		}); err != nil {
			return err
		}
		return retry("snapshot", func() error { return fetch(context.Background(), a, 0) })
	}); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var hbMu sync.Mutex
	var recStart, recEnd time.Time // heartbeats sent in [recStart, recEnd] are recorded (recEnd zero: open)
	var hbRecs []hbRecord
	start := time.Now()
	var wg sync.WaitGroup
	for i, a := range agents {
		wg.Add(2)
		go func() { // the long poll, as agent/runtime's snapshot loop
			defer wg.Done()
			// After a failed poll, wait as agent/runtime does: 0.5 s
			// doubling to 5 s, ±10 % jitter, back to 0.5 s after a success.
			backoff := 500 * time.Millisecond
			for ctx.Err() == nil {
				err := fetch(ctx, a, f.Wait)
				if err == nil {
					backoff = 500 * time.Millisecond
					continue
				}
				if ctx.Err() != nil {
					return
				}
				pollErrs.Add(1)
				errs.add("poll", err)
				select {
				case <-ctx.Done():
					return
				case <-time.After(backoff + time.Duration(float64(backoff)*0.1*(2*mrand.Float64()-1))):
				}
				backoff = min(2*backoff, 5*time.Second)
			}
		}()
		go func() { // heartbeats at the agent's interval, spread over it
			defer wg.Done()
			// Over one stream per agent (reopened after a failure, that
			// heartbeat by POST), as agent/runtime sends them, or by POST.
			snd := newHBSender(a.hb, f.HBPath)
			defer snd.close()
			next := start.Add(time.Duration(int64(f.Interval) * int64(i) / int64(len(agents))))
			seq := int64(1)
			for {
				select {
				case <-ctx.Done():
					return
				case <-time.After(time.Until(next)):
				}
				seq++
				a.mu.Lock()
				applied := a.applied
				a.mu.Unlock()
				now := time.Now()
				fb := snd.fallbacks
				_, err := snd.send(ctx, authority.HeartbeatInput{Seq: seq, SentAt: now, AgentVersion: "bench", State: "normal",
					AppliedVersion: int64(applied), Health: json.RawMessage(`{"status":"ok"}`)})
				fallbacks.Add(int64(snd.fallbacks - fb))
				hbMu.Lock()
				if !recStart.IsZero() && !now.Before(recStart) && (recEnd.IsZero() || !now.After(recEnd)) {
					hbRecs = append(hbRecs, hbRecord{sent: now, ack: time.Since(now), err: err})
				}
				hbMu.Unlock()
				next = next.Add(f.Interval)
			}
		}()
	}
	defer wg.Wait()
	defer cancel()
	fmt.Println("ready")
	in := bufio.NewScanner(os.Stdin)
	var polls int64
	var c0 time.Duration
	var t0, end time.Time
	for in.Scan() {
		cmd := strings.Fields(in.Text())
		switch {
		case len(cmd) == 1 && cmd[0] == "mark":
			for _, a := range agents {
				a.mu.Lock()
				a.markVer, a.gotAt = max(a.applied, 1), time.Time{}
				a.mu.Unlock()
			}
			polls, c0 = open.Load(), cpuTime()
			hbMu.Lock()
			recStart, recEnd, hbRecs = time.Now(), time.Time{}, nil
			marked := recStart
			hbMu.Unlock()
			fmt.Println("marked", marked.UnixNano())
		case len(cmd) == 2 && cmd[0] == "change":
			var ns int64
			if _, err := fmt.Sscan(cmd[1], &ns); err != nil {
				return err
			}
			t0 = time.Unix(0, ns)
			deadline := t0.Add(f.ApplyCap)
			for time.Now().Before(deadline) {
				done := true
				for _, a := range agents {
					a.mu.Lock()
					got := !a.gotAt.IsZero()
					a.mu.Unlock()
					if !got {
						done = false
						break
					}
				}
				if done {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			end = time.Now()
			fmt.Println("applied", end.UnixNano())
		case len(cmd) == 3 && cmd[0] == "report":
			var startNs, endNs int64
			if _, err := fmt.Sscan(cmd[1], &startNs); err != nil {
				return err
			}
			if _, err := fmt.Sscan(cmd[2], &endNs); err != nil {
				return err
			}
			// Heartbeats sent in the window, once their acks are in (a
			// heartbeat's timeout is 10 s).
			winStart, winEnd := time.Unix(0, startNs), time.Unix(0, endNs)
			hbMu.Lock()
			recEnd = winEnd
			hbMu.Unlock()
			time.Sleep(time.Until(winEnd) + 12*time.Second)
			r := fleetReport{Agents: len(agents), PollsOpen: polls, Rejected: rejected.Load(), PollErrors: pollErrs.Load(), CPU: cpuTime() - c0, End: end, VersionAfter: maxVer.Load(),
				HBFallbacks: fallbacks.Load()}
			for _, a := range agents {
				a.mu.Lock()
				if a.gotAt.IsZero() {
					r.Missing++
				} else {
					r.Applied = append(r.Applied, a.gotAt.Sub(t0))
				}
				a.mu.Unlock()
			}
			hbMu.Lock()
			for _, h := range hbRecs {
				switch {
				case h.sent.Before(winStart) || h.sent.After(winEnd):
				case h.err != nil:
					r.HBFailed++
					errs.add("heartbeat", h.err)
				default:
					r.HBAcked++
					r.HBAck = append(r.HBAck, h.ack)
				}
			}
			hbMu.Unlock()
			r.Errors = errs.snapshot()
			line, _ := json.Marshal(r)
			fmt.Println(string(line))
		default:
			return fmt.Errorf("fleet child: unknown command %q", in.Text())
		}
	}
	return in.Err()
}

// procFiles holds a process's /proc files open from before the fleet
// connects: at the open-file limit a process has no descriptor left to open a
// file with (as at 10,000 agents when the three authorities shared one
// process and every agent held two connections).
type procFiles struct {
	status, limits, fd *os.File
}

func openProc(pid string) *procFiles {
	p := &procFiles{}
	p.status, _ = os.Open("/proc/" + pid + "/status")
	p.limits, _ = os.Open("/proc/" + pid + "/limits")
	p.fd, _ = os.Open("/proc/" + pid + "/fd")
	return p
}

func (p *procFiles) close() {
	for _, f := range []*os.File{p.status, p.limits, p.fd} {
		if f != nil {
			_ = f.Close()
		}
	}
}

// read reads a whole /proc file again from its start.
func readAgain(f *os.File) string {
	if f == nil {
		return ""
	}
	buf := make([]byte, 16<<10)
	n, _ := f.ReadAt(buf, 0)
	return string(buf[:n])
}

// openFDs counts the process's open file descriptors and reads its limit.
func (p *procFiles) openFDs() (n int, limit string) {
	if p.fd != nil {
		if _, err := p.fd.Seek(0, io.SeekStart); err == nil {
			names, _ := p.fd.Readdirnames(-1)
			n = len(names)
		}
	}
	for _, l := range strings.Split(readAgain(p.limits), "\n") {
		if f := strings.Fields(strings.TrimPrefix(l, "Max open files")); strings.HasPrefix(l, "Max open files") && len(f) >= 2 {
			limit = f[0] + "/" + f[1]
		}
	}
	return n, limit
}

// field reads a "VmRSS"-style field (kB) of the process's status.
func (p *procFiles) field(name string) float64 {
	for _, l := range strings.Split(readAgain(p.status), "\n") {
		if strings.HasPrefix(l, name+":") {
			var kb float64
			fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(l, name+":"), "kB")), &kb)
			return kb
		}
	}
	return 0
}

// BenchmarkFleet is issue #24 item 5: FLEET_AGENTS simulated agents
// (default 2000) against a 3-authority group and PostgreSQL. Authority 1 runs
// in this process; authorities 2 and 3 each in their own (this test binary
// re-executed), so each one's RSS, CPU and open files are measured apart. The
// agents run in other child processes (one per FLEET_PER_CHILD agents,
// default 12,500: each holds a descriptor per agent), each agent with its own enrolled identity and
// one HTTPS + mTLS connection (HTTP/2) carrying its heartbeats and its snapshot
// long poll, like agent/runtime's, spread over the three authorities. Every
// agent heartbeats at the agent's default interval (5 s, FLEET_INTERVAL_MS)
// over one long-lived heartbeat stream (POST /v1/agent/heartbeat/stream, as
// agent/runtime does; FLEET_HB=post sends one POST per heartbeat instead, for
// comparison; hb_stream_fallbacks counts heartbeats that went by POST because
// a stream failed) and keeps a long poll open (wait 25 s, the agent's
// default). Then one cluster-wide policy edit (a route intent "* → *", fenced
// and audited like an owner's) is made at T0, and the benchmark reports: the
// time from T0 until each agent fetched and verified (Ed25519, audience,
// version) a newer snapshot (p50/p99/max, and the first agent as the same-run
// baseline of one agent), agents missing at the cap (FLEET_CAP_S, default
// 60 s), each authority's RSS and peak RSS (a1 includes the harness: an upper
// bound) and CPU over the change, PostgreSQL's CPU over the same window
// (pg_cpu_s, when the server runs on this machine), its connections, and heartbeats
// during the change: acked by the agents vs committed in PostgreSQL (lost =
// acked − committed), the heartbeat → committed p99. FLEET_CPUPROFILE=dir
// writes every authority's CPU profile over the change (dir/a1.pprof …).
// FLEET_NICE=n runs the agent processes at nice n (they stand for other
// machines; at 50,000 they otherwise starve the authorities of these cores).
//
// FLEET_AGENTS=10000 go test -run '^$' -bench BenchmarkFleet -benchtime 1x -timeout 60m ./bench/
func BenchmarkFleet(b *testing.B) {
	if f := flag.Lookup("test.benchtime"); f == nil || f.Value.String() != "1x" {
		b.Skip("one run per invocation: -benchtime 1x (make bench's fleet step)")
	}
	n := envInt("FLEET_AGENTS", 2000)
	interval := time.Duration(envInt("FLEET_INTERVAL_MS", 5000)) * time.Millisecond
	capd := time.Duration(envInt("FLEET_CAP_S", 60)) * time.Second
	hbPath := hbPathStream
	if os.Getenv("FLEET_HB") == hbPathPost {
		hbPath = hbPathPost
	}
	if addr := os.Getenv("FLEET_PPROF"); addr != "" {
		// Authority 1's profiles (this process) while the fleet runs
		// (FLEET_CPUPROFILE profiles all three over the change), e.g.
		// FLEET_PPROF=127.0.0.1:6060 then go tool pprof http://127.0.0.1:6060/debug/pprof/profile?seconds=20
		go func() { _ = http.ListenAndServe(addr, nil) }()
	}
	load0 := loadAvg()
	// The production Raft timing (raftnode.DefaultConfig: 1 s heartbeat and
	// election timeouts), not the tests' 500 ms profile: the group under a
	// fleet is the one an operator runs.
	//
	// Authority 1 runs in this process (it bootstraps the group and the
	// benchmark drives it: enrolment, the edit); authorities 2 and 3 run in
	// their own processes, so that each one's memory, CPU and open files are
	// its own. All three speak the production Raft transport (mutual TLS over
	// TCP).
	g := authtest.NewPlainWithConfig(b, 1, func(_ int, c *daemon.Config) {
		c.HeartbeatTimeout, c.ElectionTimeout, c.LeaderLeaseTimeout, c.QuorumTimeout = 0, 0, 0, 0
	})
	l := g.Leader(20 * time.Second)
	others := startAuthorityChildren(b, l, g.DBURL, 2)
	g.Eventually(20*time.Second, "the leader knows three members", func() bool { return len(l.FSM.Members()) == 3 })
	t := time.Now()
	cluster, fleet := enrollSim(b, l.Auth, l.APIAddr(), n)
	// Every agent is a relay node (a mesh role: route intents are in its
	// snapshot). Setup only: the rows are written directly and the cluster
	// rebuilt once (a fenced AssignRole per agent would rebuild it N times).
	// 500 rows per fenced transaction: one of 10,000 exceeds its time bound.
	for lo := 0; lo < n; lo += 500 {
		part := fleet.Agents[lo:min(n, lo+500)]
		if _, err := authority.Fenced(context.Background(), l.Auth, authority.Op{Action: "bench.roles", Actor: authority.Actor{ID: "bench", Kind: "system"},
			ClusterID: cluster, TargetKind: "cluster", TargetID: cluster}, func(tx pgx.Tx) (int, error) {
			for _, ag := range part {
				if _, err := store.InsertRoleAssignment(context.Background(), tx, store.RoleAssignment{ID: store.NewID(), ClusterID: cluster,
					NodeID: ag.NodeID, Role: string(domain.RoleRelayNode), Policy: json.RawMessage(`{}`), AssignedBy: "bench"}); err != nil {
					return 0, err
				}
			}
			return len(part), nil
		}); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := l.Auth.RebuildSnapshots(context.Background(), authority.Actor{ID: "bench", Kind: "system"}, cluster, false); err != nil {
		b.Fatalf("rebuilding %d mesh snapshots: %v", n, err)
	}
	enrollS := time.Since(t).Seconds()
	trust, err := l.Auth.ClusterTrust(cluster)
	if err != nil {
		b.Fatal(err)
	}
	spec := fleetSpec{simFleet: fleet, ClusterID: cluster, Interval: interval, Wait: 25, ApplyCap: capd, HBPath: hbPath}
	spec.Servers = []string{l.APIAddr()}
	for _, o := range others {
		spec.Servers = append(spec.Servers, o.api)
	}
	for _, k := range trust.Keys {
		spec.CAKeys = append(spec.CAKeys, k.PublicKey)
	}
	t = time.Now()
	// One fleet process per FLEET_PER_CHILD agents (default 12,500): each
	// agent holds a descriptor, and a process may open 20,000 here.
	per := envInt("FLEET_PER_CHILD", 12500)
	var kids []*childProc
	for lo := 0; lo < n; lo += per {
		part := spec
		part.Agents = fleet.Agents[lo:min(n, lo+per)]
		kids = append(kids, startChild(b, envFleetChild, part))
	}
	self := openProc(fmt.Sprint(os.Getpid()))
	defer self.close()
	loadFile, _ := os.Open("/proc/loadavg")
	if loadFile != nil {
		defer loadFile.Close()
	}
	for _, p := range kids {
		if s, err := p.line(""); err != nil || s != "ready" {
			b.Fatalf("fleet child: %q %v", s, err)
		}
	}
	connectS := time.Since(t).Seconds()
	// all sends cmd to every fleet child, then reads each one's answer.
	all := func(cmd string) []string {
		for _, p := range kids {
			if _, err := io.WriteString(p.stdin, cmd+"\n"); err != nil {
				b.Fatal(err)
			}
		}
		out := make([]string, len(kids))
		for i, p := range kids {
			l, err := p.line("")
			if err != nil {
				b.Fatalf("fleet child %d: %q: %v", i, cmd, err)
			}
			out[i] = l
		}
		return out
	}
	// Steady state: two heartbeat intervals, every long poll open.
	time.Sleep(2 * interval)
	// Heartbeats committed in PostgreSQL, by send time, on every authority.
	var flushes flushLog
	flushes.record(l.Auth.Heartbeats())
	b.Cleanup(func() { l.Auth.Heartbeats().OnFlush(nil) })
	for _, o := range others {
		if err := o.expectOK("record"); err != nil {
			b.Fatal(err)
		}
	}
	// stats are every authority's figures: authority 1 (this process, with
	// the harness) first.
	stats := func() []procStats {
		all := []procStats{statsOf(self, cpuTime())}
		for _, o := range others {
			var st procStats
			if err := o.call("stats", &st); err != nil {
				b.Fatal(err)
			}
			all = append(all, st)
		}
		return all
	}
	// The heartbeat window starts when the last fleet process marked.
	var winStart time.Time
	for _, l := range all("mark") {
		var ns int64
		if _, err := fmt.Sscanf(l, "marked %d", &ns); err != nil {
			b.Fatalf("fleet child answered %q to mark", l)
		}
		if at := time.Unix(0, ns); at.After(winStart) {
			winStart = at
		}
	}
	ctx := context.Background()
	pgConns := func() (db, all int) {
		_ = l.DB.Pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE datname = current_database()), count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'`).Scan(&db, &all)
		return
	}
	// PostgreSQL's CPU over the same window as the authorities' (its
	// postmaster and live backends; the pools keep their connections).
	pgc := pgCPU(ctx, l.DB.Pool)
	var pg0 time.Duration
	if pgc != nil {
		pg0 = pgc()
	}
	st0 := stats()
	type fds struct {
		n     int
		limit string
	}
	var kidFDs []fds
	for _, p := range kids {
		n, limit := p.files.openFDs()
		kidFDs = append(kidFDs, fds{n, limit})
	}
	t0 := time.Now()
	var maxDB, maxAll int
	stopPG := make(chan struct{})
	pgDone := make(chan struct{})
	go func() { // PostgreSQL connections, sampled through the change
		defer close(pgDone)
		for {
			d, a := pgConns()
			maxDB, maxAll = max(maxDB, d), max(maxAll, a)
			select {
			case <-stopPG:
				return
			case <-time.After(250 * time.Millisecond):
			}
		}
	}()
	// FLEET_CPUPROFILE=dir: every authority's CPU profile from T0 until
	// every agent applied (dir/a1.pprof …).
	profDir := os.Getenv("FLEET_CPUPROFILE")
	if profDir != "" {
		if err := startProfile(filepath.Join(profDir, "a1.pprof")); err != nil {
			b.Fatal(err)
		}
		for i, o := range others {
			if err := o.expectOK(fmt.Sprintf("profile %s", filepath.Join(profDir, fmt.Sprintf("a%d.pprof", i+2)))); err != nil {
				b.Fatal(err)
			}
		}
	}
	// The edit goes to the current leader, whichever process it is in
	// (leadership may move under load), and is retried (same idempotency
	// key) while the group has none, as an owner's client would;
	// edit_attempts counts the tries, all inside T0 → applied.
	attempts := 0
	for {
		attempts++
		err := fleetEdit(l, cluster)
		for _, o := range others {
			if err == nil {
				break
			}
			if cerr := o.expectOK("edit " + cluster); cerr != nil {
				err = errors.Join(err, cerr)
			} else {
				err = nil
			}
		}
		if err == nil {
			break
		}
		if time.Since(t0) > capd {
			b.Fatalf("policy edit: %d attempts: %v", attempts, err)
		}
		b.Logf("policy edit attempt %d: %v", attempts, err)
		time.Sleep(time.Second)
	}
	editMs := float64(time.Since(t0).Microseconds()) / 1000
	// The heartbeat window: from the mark through the change and at least
	// one full interval (every agent heartbeats in it).
	winEnd := winStart.Add(interval)
	for _, l := range all(fmt.Sprint("change ", t0.UnixNano())) {
		var ns int64
		if _, err := fmt.Sscanf(l, "applied %d", &ns); err != nil {
			b.Fatalf("fleet child answered %q to change", l)
		}
		if at := time.Unix(0, ns); at.After(winEnd) {
			winEnd = at
		}
	}
	st1 := stats()
	var pgUsed time.Duration
	if pgc != nil {
		pgUsed = pgc() - pg0
	}
	if profDir != "" {
		pprof.StopCPUProfile()
		for _, o := range others {
			if err := o.expectOK("profile-stop"); err != nil {
				b.Fatal(err)
			}
		}
	}
	load1 := loadFields(readAgain(loadFile))
	close(stopPG)
	<-pgDone
	var r fleetReport
	for _, line := range all(fmt.Sprint("report ", winStart.UnixNano(), " ", winEnd.UnixNano())) {
		var k fleetReport
		if err := json.Unmarshal([]byte(line), &k); err != nil {
			b.Fatalf("fleet child answered %q: %v", line, err)
		}
		r.merge(k)
	}
	var childRSS float64
	for _, p := range kids {
		childRSS += p.files.field("VmRSS")
	}
	// Let the last acknowledged heartbeats reach PostgreSQL.
	time.Sleep(2 * time.Second)
	w := flushes.window(winStart, winEnd)
	committed, vis := w.Committed, w.Visible
	for _, o := range others {
		var fr flushedReport
		if err := o.call(fmt.Sprint("flushed ", winStart.UnixNano(), " ", winEnd.UnixNano()), &fr); err != nil {
			b.Fatal(err)
		}
		committed += fr.Committed
		vis = append(vis, fr.Visible...)
	}
	s := func(d time.Duration) float64 { return d.Seconds() }
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	slices.Sort(r.Applied)
	first := time.Duration(0)
	if len(r.Applied) > 0 {
		first = r.Applied[0]
	}
	maxApplied := percentile(r.Applied, 1)
	if r.Missing > 0 {
		maxApplied = capd
	}
	b.ReportMetric(float64(n), "agents")
	b.ReportMetric(float64(r.PollsOpen), "long_polls_open")
	b.ReportMetric(s(percentile(r.Applied, 0.5)), "applied_p50_s")
	b.ReportMetric(s(percentile(r.Applied, 0.99)), "applied_p99_s")
	b.ReportMetric(s(maxApplied), "applied_max_s")
	b.ReportMetric(s(first), "first_agent_applied_s")
	b.ReportMetric(float64(r.Missing), "agents_not_applied")
	b.ReportMetric(float64(r.Rejected), "snapshots_rejected")
	b.ReportMetric(editMs, "policy_edit_ms")
	b.ReportMetric(float64(attempts), "edit_attempts")
	b.ReportMetric(s(maxApplied)/10, "applied_max/aim_10s")
	var cpu time.Duration
	var peak float64
	for i := range st1 {
		// a1 is authority 1 (the leader) with the harness in its process.
		b.ReportMetric(st1[i].RSSKB/1024, fmt.Sprintf("a%d_rss_MiB", i+1))
		b.ReportMetric(st1[i].HWMKB/1024, fmt.Sprintf("a%d_peak_rss_MiB", i+1))
		b.ReportMetric(s(st1[i].CPU-st0[i].CPU), fmt.Sprintf("a%d_cpu_s", i+1))
		cpu += st1[i].CPU - st0[i].CPU
		peak = max(peak, st1[i].HWMKB)
	}
	b.ReportMetric(peak/1024/1024, "authority_peak_rss/aim_1GiB")
	b.ReportMetric(childRSS/1024, "fleet_rss_MiB")
	b.ReportMetric(float64(len(kids)), "fleet_processes")
	b.ReportMetric(s(cpu), "authorities_cpu_s")
	b.ReportMetric(s(r.CPU), "fleet_cpu_s")
	if pgc != nil {
		b.ReportMetric(s(pgUsed), "pg_cpu_s")
	}
	b.ReportMetric(float64(maxDB), "pg_conns_db_max")
	b.ReportMetric(float64(maxAll), "pg_conns_all_max")
	b.ReportMetric(float64(r.HBAcked), "hb_acked")
	b.ReportMetric(float64(committed), "hb_committed")
	b.ReportMetric(float64(max(0, r.HBAcked-committed)), "hb_lost")
	b.ReportMetric(float64(r.HBFailed), "hb_failed")
	b.ReportMetric(float64(r.HBFallbacks), "hb_stream_fallbacks")
	b.ReportMetric(ms(percentile(r.HBAck, 0.99)), "hb_ack_p99_ms")
	b.ReportMetric(ms(percentile(vis, 0.99)), "hb_visible_p99_ms")
	b.ReportMetric(interval.Seconds(), "hb_interval_s")
	fmt.Printf("fleet %d agents, 3 authorities (one process each), heartbeat every %v by %s, enrolled in %.0f s, connected in %.0f s, versions up to %d, poll errors %d (load %s → %s)\n",
		n, interval, hbPath, enrollS, connectS, r.VersionAfter, r.PollErrors, load0, load1)
	for i, st := range st0 {
		fmt.Printf("  authority %d at the mark: RSS %.0f MiB, open files %d (limit soft/hard %s)\n", i+1, st.RSSKB/1024, st.FDs, st.FDLimit)
	}
	for i, f := range kidFDs {
		fmt.Printf("  fleet process %d at the mark: open files %d (limit %s)\n", i+1, f.n, f.limit)
	}
	for _, k := range slices.Sorted(maps.Keys(r.Errors)) {
		fmt.Printf("  errors %6d × %s\n", r.Errors[k], k)
	}
}
