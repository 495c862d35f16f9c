package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rap-fabric/core/agent/identity"
	"github.com/rap-fabric/core/agentapi"
	"github.com/rap-fabric/core/apiclient"
	"github.com/rap-fabric/core/authority"
	"github.com/rap-fabric/core/domain"
	"github.com/rap-fabric/core/httpapi"
	"github.com/rap-fabric/core/internal/authtest"
	"github.com/rap-fabric/core/store"
)

// simIdentity is one simulated agent's enrolled identity: what a load
// generator in another process needs to connect as that agent.
type simIdentity struct {
	NodeID string `json:"node_id"`
	Cert   []byte `json:"cert"`
	Key    []byte `json:"key"` // Ed25519 private key
}

// simAgent is one simulated agent: its own enrolled identity and its own
// HTTPS + mTLS client (own connection).
type simAgent struct {
	simIdentity
	c *apiclient.Client
}

// simFleet is what the load generator needs to reach the authority as every
// agent.
type simFleet struct {
	Addr       string        `json:"addr"`
	CAPin      string        `json:"ca_pin"`
	ServerName string        `json:"server_name"`
	Agents     []simIdentity `json:"agents"`
}

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// parallelDo runs fn(i) for i in [0, n) on w workers and returns the first
// error.
func parallelDo(n, w int, fn func(i int) error) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	var firstErr atomic.Value
	for range w {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := fn(i); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	e, _ := firstErr.Load().(error)
	return e
}

// enrollSim enrolls n agents through the authority's Go API (auto-approved
// join requests: real identities, memberships and certificates).
func enrollSim(b *testing.B, a *authority.Authority, apiAddr string, n int) (clusterID string, fleet simFleet) {
	clusterID, fleet, _ = enrollSimTimed(b, a, apiAddr, n)
	return clusterID, fleet
}

// enrollSimTimed is enrollSim that also returns when each enrollment
// completed, in completion order, as offsets from the first one's start.
func enrollSimTimed(b *testing.B, a *authority.Authority, apiAddr string, n int) (clusterID string, fleet simFleet, done []time.Duration) {
	ctx := context.Background()
	sys := authority.Actor{ID: "bench", Kind: "system"}
	cl, err := a.CreateCluster(ctx, sys, authority.CreateClusterRequest{Name: "hb", Slug: "hb"}, "")
	if err != nil {
		b.Fatal(err)
	}
	// A join token admits at most 10,000 nodes: one per 10,000 agents.
	var toks []authority.CreatedToken
	for lo := 0; lo < n; lo += 10000 {
		tok, err := a.CreateJoinToken(ctx, sys, authority.CreateTokenRequest{Cluster: "hb", MaxUses: min(n-lo, 10000), AutoApprove: true,
			AllowedRoles: []domain.Role{domain.RoleRelayNode}, TTL: time.Hour}, "")
		if err != nil {
			b.Fatal(err)
		}
		toks = append(toks, tok)
	}
	fleet = simFleet{Addr: apiAddr, CAPin: toks[0].CAPin, ServerName: httpapi.ServerNameForCluster(cl.ID), Agents: make([]simIdentity, n)}
	done = make([]time.Duration, n)
	var finished atomic.Int64
	t0 := time.Now()
	err = parallelDo(n, 8, func(i int) error {
		tok := toks[i/10000]
		keys, err := identity.GenerateKeys(nil)
		if err != nil {
			return err
		}
		poll := make([]byte, 32)
		_, _ = rand.Read(poll)
		host := sha256.Sum256([]byte(fmt.Sprintf("bench-host-%d-%x", i, poll[:4])))
		st, err := a.SubmitJoinRequest(ctx, "127.0.0.1", cl.ID, authority.JoinRequestInput{Token: tok.Token, NodeName: fmt.Sprintf("sim-%d", i),
			HostFingerprint: hex.EncodeToString(host[:]), PublicKey: keys.SigningPublic(), NoisePublicKey: keys.NoisePublic(), PollSecret: poll,
			Facts: json.RawMessage(`{"hostname":"sim"}`)})
		if err != nil || st.Status != "approved" {
			return fmt.Errorf("enroll %d: %v (status %q)", i, err, st.Status)
		}
		fleet.Agents[i] = simIdentity{NodeID: st.NodeID, Cert: st.Certificate, Key: keys.Signing}
		done[finished.Add(1)-1] = time.Since(t0)
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return cl.ID, fleet, done
}

// connectFleet builds one HTTPS + mTLS client per agent and connects each
// (TLS handshake, certificate check, first heartbeat with facts) 16 at a
// time, as a fleet would be connected already.
func connectFleet(f simFleet) ([]*simAgent, error) {
	agents := make([]*simAgent, len(f.Agents))
	for i, id := range f.Agents {
		c, err := apiclient.New(apiclient.Options{Servers: []string{f.Addr}, CAPin: f.CAPin, ServerName: f.ServerName,
			Certificate: &tls.Certificate{Certificate: [][]byte{id.Cert}, PrivateKey: ed25519.PrivateKey(id.Key)}, Timeout: 10 * time.Second})
		if err != nil {
			return nil, err
		}
		agents[i] = &simAgent{simIdentity: id, c: c}
	}
	err := parallelDo(len(agents), 16, func(i int) error {
		return agents[i].c.Do(context.Background(), http.MethodPost, "/v1/agent/heartbeat", authority.HeartbeatInput{Facts: json.RawMessage(`{"hostname":"sim"}`)}, nil, nil)
	})
	return agents, err
}

// loadPlan is one run of the load generator: every agent sends one heartbeat
// per Interval from Start (spread over the interval); results count from
// Start+Warm to Start+Warm+Dur. With Burst > 0 it is a burst instead: every
// agent sends BurstWarm heartbeats, then (once all have) Burst heartbeats
// back to back, each after the previous one's ack (see driveBurst). Path
// is hbPathPost (default) or hbPathStream.
type loadPlan struct {
	Start     time.Time     `json:"start"`
	Interval  time.Duration `json:"interval"`
	Warm      time.Duration `json:"warm"`
	Dur       time.Duration `json:"dur"`
	Path      string        `json:"path,omitempty"`
	Burst     int           `json:"burst,omitempty"`
	BurstWarm int           `json:"burst_warm,omitempty"`
}

func (p loadPlan) window() (time.Time, time.Time) {
	return p.Start.Add(p.Warm), p.Start.Add(p.Warm + p.Dur)
}

// loadResult is what the load generator measured in the window.
type loadResult struct {
	Ack    []time.Duration `json:"ack"`
	Failed int             `json:"failed"`
	// CPU is the load generator's user+system CPU time in the window when it
	// runs in its own process.
	CPU time.Duration `json:"cpu"`
	// Fallbacks counts heartbeats sent by POST because a stream failed.
	Fallbacks int `json:"fallbacks"`
	// Wall is a burst's duration (from every agent ready to the last ack).
	Wall time.Duration `json:"wall,omitempty"`
}

// driveLoad runs every agent at plan.Interval until the window ends.
func driveLoad(agents []*simAgent, plan loadPlan) loadResult {
	mStart, mEnd := plan.window()
	lat := make([][]time.Duration, len(agents))
	var failed, fallbacks atomic.Int64
	var wg sync.WaitGroup
	for i, ag := range agents {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			snd := newHBSender(ag.c, plan.Path)
			defer func() { snd.close(); fallbacks.Add(int64(snd.fallbacks)) }()
			// Spread the agents over the interval.
			next := plan.Start.Add(time.Duration(int64(plan.Interval) * int64(i) / int64(len(agents))))
			seq := int64(0)
			for {
				if wait := time.Until(next); wait > 0 {
					time.Sleep(wait)
				}
				now := time.Now()
				if now.After(mEnd) {
					return
				}
				seq++
				_, err := snd.send(ctx, authority.HeartbeatInput{Seq: seq, SentAt: now, AgentVersion: "bench", State: "normal",
					Health: json.RawMessage(`{"status":"ok"}`)})
				if now.After(mStart) {
					if err != nil {
						failed.Add(1)
					} else {
						lat[i] = append(lat[i], time.Since(now))
					}
				}
				next = next.Add(plan.Interval)
				if behind := time.Since(next); behind > plan.Interval {
					next = time.Now() // do not burst to catch up
				}
			}
		}()
	}
	wg.Wait()
	var r loadResult
	for _, l := range lat {
		r.Ack = append(r.Ack, l...)
	}
	r.Failed = int(failed.Load())
	r.Fallbacks = int(fallbacks.Load())
	return r
}

// burstHealth is the health a burst's heartbeats carry (a typical agent's).
var burstHealth = json.RawMessage(`{"status":"ok","consecutive_errors":0,"uptime_seconds":1234}`)

// driveBurst runs a burst plan: each agent sends plan.BurstWarm heartbeats
// (opening its stream, or its connection again after a stream), then, once
// every agent has, started() is called and each sends plan.Burst heartbeats
// back to back; measured() is called when the last ack is in, before the
// streams close. seq carries each agent's sequence number across bursts.
func driveBurst(agents []*simAgent, seq []int64, plan loadPlan, started, measured func()) loadResult {
	var ready, fin sync.WaitGroup
	release := make(chan struct{})
	closeNow := make(chan struct{})
	lat := make([][]time.Duration, len(agents))
	errs := make([]int, len(agents))
	fb := make([]int, len(agents))
	for i, ag := range agents {
		ready.Add(1)
		fin.Add(1)
		go func() {
			snd := newHBSender(ag.c, plan.Path)
			one := func() (time.Duration, error) {
				seq[i]++
				t := time.Now()
				_, err := snd.send(context.Background(), agentapi.Heartbeat{Seq: seq[i], SentAt: t.UTC(), AgentVersion: "bench", AppliedVersion: 7, State: "normal", Health: burstHealth})
				return time.Since(t), err
			}
			for range plan.BurstWarm {
				_, _ = one()
			}
			fb[i] = snd.fallbacks
			ready.Done()
			<-release
			lat[i] = make([]time.Duration, 0, plan.Burst)
			for range plan.Burst {
				d, err := one()
				if err != nil {
					errs[i]++
					continue
				}
				lat[i] = append(lat[i], d)
			}
			fb[i] = snd.fallbacks - fb[i]
			fin.Done()
			<-closeNow
			snd.close()
		}()
	}
	ready.Wait()
	started()
	t0 := time.Now()
	close(release)
	fin.Wait()
	wall := time.Since(t0)
	measured()
	close(closeNow)
	r := loadResult{Wall: wall}
	for i := range agents {
		r.Ack = append(r.Ack, lat[i]...)
		r.Failed += errs[i]
		r.Fallbacks += fb[i]
	}
	return r
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// sysTime is this process's system (kernel) CPU time, a part of cpuTime.
func sysTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Stime.Nano())
}

// profileWindow starts a CPU profile into path (when not "") and returns
// the function that stops it: HB_CPUPROFILE profiles the authority's process
// and HB_LOADGEN_CPUPROFILE the load generator's during the measured window
// only (go test -cpuprofile would include enrollment and handshakes).
func profileWindow(path string) (stop func()) {
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return func() {}
	}
	return func() { pprof.StopCPUProfile(); f.Close() }
}

// Environment of the load generator child (this test binary re-executed).
const (
	envChildFleet  = "HB_LOADGEN_FLEET"  // path of the simFleet JSON
	envChildResult = "HB_LOADGEN_RESULT" // path the child writes loadResults to
)

// TestMain runs the load generator process of BenchmarkHeartbeatIngest when
// this test binary is re-executed with envChildFleet set, and the package's
// tests and benchmarks otherwise.
func TestMain(m *testing.M) {
	if os.Getenv(envFleetChild) != "" {
		if err := fleetChild(); err != nil {
			fmt.Fprintln(os.Stderr, "fleet:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if os.Getenv(envAuthorityChild) != "" {
		if err := authorityChild(); err != nil {
			fmt.Fprintln(os.Stderr, "authority:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if os.Getenv(envChildFleet) != "" {
		if err := loadgenChild(); err != nil {
			fmt.Fprintln(os.Stderr, "load generator:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// loadgenChild is the load generator process. Protocol: it connects every
// agent and prints "ready"; then each stdin line is a loadPlan JSON, answered
// by "done" once the run's loadResult is appended to the result file. stdin
// closing ends it.
func loadgenChild() error {
	data, err := os.ReadFile(os.Getenv(envChildFleet))
	if err != nil {
		return err
	}
	var f simFleet
	if err := json.Unmarshal(data, &f); err != nil {
		return err
	}
	agents, err := connectFleet(f)
	if err != nil {
		return err
	}
	defer func() {
		for _, a := range agents {
			a.c.Close()
		}
	}()
	out, err := os.OpenFile(os.Getenv(envChildResult), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	defer out.Close()
	fmt.Println("ready")
	seq := make([]int64, len(agents))
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		var plan loadPlan
		if err := json.Unmarshal(in.Bytes(), &plan); err != nil {
			return err
		}
		if plan.Burst > 0 {
			// "start" when every agent is warm, "end" when the last ack is
			// in (the parent's CPU between the two is the authority's),
			// "done" once the result is written.
			var c0, c1 time.Duration
			stop := func() {}
			r := driveBurst(agents, seq, plan, func() {
				fmt.Println("start")
				stop = profileWindow(os.Getenv("HB_LOADGEN_CPUPROFILE"))
				c0 = cpuTime()
			}, func() { c1 = cpuTime(); stop(); fmt.Println("end") })
			r.CPU = c1 - c0
			line, _ := json.Marshal(r)
			if _, err := out.Write(append(line, '\n')); err != nil {
				return err
			}
			fmt.Println("done")
			continue
		}
		mStart, mEnd := plan.window()
		var c0, c1 time.Duration
		wait := measureWindow(mStart, mEnd, "HB_LOADGEN_CPUPROFILE", func() { c0 = cpuTime() }, func() { c1 = cpuTime() })
		r := driveLoad(agents, plan)
		wait()
		r.CPU = c1 - c0
		line, _ := json.Marshal(r)
		if _, err := out.Write(append(line, '\n')); err != nil {
			return err
		}
		fmt.Println("done")
	}
	return in.Err()
}

// loadgen drives the fleet, either in this process (HB_LOADGEN=inproc, the
// figure then includes the clients' cost) or in a child process.
type loadgen interface {
	run(plan loadPlan) (loadResult, error)
	close()
}

type inprocLoad struct{ agents []*simAgent }

func (l inprocLoad) run(plan loadPlan) (loadResult, error) { return driveLoad(l.agents, plan), nil }
func (l inprocLoad) close() {
	for _, a := range l.agents {
		a.c.Close()
	}
}

type childLoad struct {
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	stdout  *bufio.Scanner
	results *os.File
	dec     *json.Decoder
}

func startChildLoad(b *testing.B, f simFleet) (*childLoad, error) {
	dir := b.TempDir()
	data, err := json.Marshal(f)
	if err != nil {
		return nil, err
	}
	fleetPath, resPath := filepath.Join(dir, "fleet.json"), filepath.Join(dir, "results.jsonl")
	if err := os.WriteFile(fleetPath, data, 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(resPath, nil, 0o600); err != nil {
		return nil, err
	}
	cmd := exec.Command(os.Args[0], "-test.run", "^$") // TestMain runs the load generator (envChildFleet)
	cmd.Env = append(os.Environ(), envChildFleet+"="+fleetPath, envChildResult+"="+resPath)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	results, err := os.Open(resPath)
	if err != nil {
		return nil, err
	}
	l := &childLoad{cmd: cmd, stdin: stdin, stdout: bufio.NewScanner(stdout), results: results, dec: json.NewDecoder(results)}
	if err := l.expect("ready"); err != nil {
		l.close()
		return nil, err
	}
	return l, nil
}

func (l *childLoad) expect(want string) error {
	for l.stdout.Scan() {
		if strings.TrimSpace(l.stdout.Text()) == want {
			return nil
		}
	}
	return fmt.Errorf("load generator child ended before %q (%v)", want, l.stdout.Err())
}

func (l *childLoad) run(plan loadPlan) (loadResult, error) {
	line, _ := json.Marshal(plan)
	if _, err := l.stdin.Write(append(line, '\n')); err != nil {
		return loadResult{}, err
	}
	if err := l.expect("done"); err != nil {
		return loadResult{}, err
	}
	var r loadResult
	err := l.dec.Decode(&r)
	return r, err
}

// burst runs a burst plan (loadPlan.Burst) in the child, calling started
// when the child says every agent is warm and measured when its last ack
// is in.
func (l *childLoad) burst(plan loadPlan, started, measured func()) (loadResult, error) {
	line, _ := json.Marshal(plan)
	if _, err := l.stdin.Write(append(line, '\n')); err != nil {
		return loadResult{}, err
	}
	if err := l.expect("start"); err != nil {
		return loadResult{}, err
	}
	started()
	if err := l.expect("end"); err != nil {
		return loadResult{}, err
	}
	measured()
	if err := l.expect("done"); err != nil {
		return loadResult{}, err
	}
	var r loadResult
	err := l.dec.Decode(&r)
	return r, err
}

func (l *childLoad) close() {
	_ = l.stdin.Close()
	_ = l.cmd.Wait()
	_ = l.results.Close()
}

type hbResult struct {
	acked     int
	failed    int
	fallbacks int
	rate      float64
	ack       []time.Duration
	visible   []time.Duration
	flushes   uint64
	flushRow  float64
	auth      uint64
	// CPU in the window: this process (the authority, plus the clients when
	// in-process) and the load generator child.
	cpu, loadCPU time.Duration
	sys          time.Duration // the authority's kernel share of cpu
	allocBytes   uint64
	allocs       uint64
	gcs          uint32
}

// drive runs the fleet at a fixed interval for d (after a warm-up) and
// measures acks, heartbeat → committed-in-PostgreSQL latency of the
// heartbeats sent in the window, and this process's CPU and allocations.
func drive(h *authority.Heartbeats, lg loadgen, path string, interval, warm, d time.Duration) (hbResult, error) {
	plan := loadPlan{Start: time.Now().Add(200 * time.Millisecond), Interval: interval, Warm: warm, Dur: d, Path: path}
	mStart, mEnd := plan.window()
	var mu sync.Mutex
	var visible []time.Duration
	h.OnFlush(func(sent, _ []time.Time, committed time.Time) {
		mu.Lock()
		for _, s := range sent {
			if !s.Before(mStart) && !s.After(mEnd) {
				visible = append(visible, committed.Sub(s))
			}
		}
		mu.Unlock()
	})
	defer h.OnFlush(nil)
	var f0, f1 authority.HeartbeatStats
	var m0, m1 runtime.MemStats
	var c0, c1, s0, s1 time.Duration
	wait := measureWindow(mStart, mEnd, "HB_CPUPROFILE",
		func() { f0, c0, s0 = h.Stats(), cpuTime(), sysTime(); runtime.ReadMemStats(&m0) },
		func() { f1, c1, s1 = h.Stats(), cpuTime(), sysTime(); runtime.ReadMemStats(&m1) })
	lr, err := lg.run(plan)
	wait()
	if err != nil {
		return hbResult{}, err
	}
	// Let the heartbeats sent in the window reach PostgreSQL.
	for h.Stats().Pending > 0 {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(2 * h.Config().FlushInterval)
	mu.Lock()
	defer mu.Unlock()
	r := hbResult{acked: len(lr.Ack), failed: lr.Failed, fallbacks: lr.Fallbacks, rate: float64(len(lr.Ack)) / d.Seconds(), ack: lr.Ack, visible: visible,
		flushes: f1.Flushes - f0.Flushes, auth: f1.AuthChecks - f0.AuthChecks, cpu: c1 - c0, sys: s1 - s0, loadCPU: lr.CPU,
		allocBytes: m1.TotalAlloc - m0.TotalAlloc, allocs: m1.Mallocs - m0.Mallocs, gcs: m1.NumGC - m0.NumGC}
	if r.flushes > 0 {
		r.flushRow = float64(f1.Flushed-f0.Flushed) / float64(r.flushes)
	}
	return r, nil
}

// plainUpsert writes rows rows for the agents' memberships with a plain
// batched upsert (unnest … ON CONFLICT) of batch rows per statement, one
// connection, no HTTP — the baseline — and returns rows/s.
func plainUpsert(b *testing.B, db *store.DB, cluster string, agents []simIdentity, rows, batch int) float64 {
	ctx := context.Background()
	if batch < 1 {
		batch = 1
	}
	if batch > len(agents) {
		batch = len(agents) // one row per membership per statement (ON CONFLICT needs distinct keys)
	}
	start := time.Now()
	done := 0
	for done < rows {
		n := min(batch, rows-done)
		c, nd := make([]string, n), make([]string, n)
		r, s := make([]time.Time, n), make([]int64, n)
		now := time.Now()
		for i := 0; i < n; i++ {
			ag := agents[(done+i)%len(agents)]
			c[i], nd[i], r[i], s[i] = cluster, ag.NodeID, now, int64(done+i)
		}
		slices.Sort(nd) // the same lock order as the ingest's flushes
		if _, err := db.Pool.Exec(ctx, `INSERT INTO node_heartbeat_latest AS l (cluster_id, node_id, received_at, seq, agent_version, state, health)
			SELECT c::uuid, n::uuid, r, s, 'bench', 'normal', '{"status":"ok"}'::jsonb FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::int8[]) AS u(c, n, r, s)
			ON CONFLICT (cluster_id, node_id) DO UPDATE SET received_at = EXCLUDED.received_at, seq = EXCLUDED.seq, health = EXCLUDED.health`, c, nd, r, s); err != nil {
			b.Fatal(err)
		}
		done += n
	}
	return float64(rows) / time.Since(start).Seconds()
}

func loadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	return loadFields(string(b))
}

// loadFields keeps the three load averages of a /proc/loadavg line.
func loadFields(line string) string {
	f := strings.Fields(line)
	return strings.Join(f[:min(3, len(f))], " ")
}

// BenchmarkHeartbeatIngest drives N simulated agents (each its own enrolled
// identity and HTTPS + mTLS connection) against one in-process authority at
// fixed intervals and reports the sustained heartbeats/s, the p99 ack latency
// and the heartbeat → committed in PostgreSQL p99, beside a plain batched
// upsert of the same number of rows measured in the same run.
//
// The agents run in a load generator child process (this test binary
// re-executed), so the CPU split is measured: authority_cpu_us/hb is this
// process's CPU per acknowledged heartbeat (HTTPS, mTLS, JSON, ingest,
// batcher, PostgreSQL client; authority_sys_us/hb is its kernel share),
// loadgen_cpu_us/hb the child's. Both share the
// machine's cores, as PostgreSQL does. HB_LOADGEN=inproc runs the agents in
// this process instead (the figure then includes their cost).
// HB_CPUPROFILE and HB_LOADGEN_CPUPROFILE write CPU profiles of the measured
// window of each process (the last run wins). Each offered rate runs once
// per path of HB_PATH (comma-separated, default "stream,post": one stream
// per agent, POST /v1/agent/heartbeat/stream as agent/runtime sends them,
// then one POST /v1/agent/heartbeat per heartbeat), so both are measured
// in the same run. HB_AGENTS
// (default 1000), HB_SECONDS (default 5) and HB_OFFERED (comma-separated
// offered rates, default 10000,25000,40000) change the size.
func BenchmarkHeartbeatIngest(b *testing.B) {
	n := envInt("HB_AGENTS", 1000)
	secs := envInt("HB_SECONDS", 5)
	paths := []string{hbPathStream, hbPathPost}
	if v := os.Getenv("HB_PATH"); v != "" {
		paths = nil
		for _, p := range strings.Split(v, ",") {
			if p == hbPathStream || p == hbPathPost {
				paths = append(paths, p)
			}
		}
	}
	g := authtest.New(b, 1)
	l := g.Leader(10 * time.Second)
	cluster, fleet := enrollSim(b, l.Auth, l.APIAddr(), n)
	var lg loadgen
	if os.Getenv("HB_LOADGEN") == "inproc" {
		agents, err := connectFleet(fleet)
		if err != nil {
			b.Fatal(err)
		}
		lg = inprocLoad{agents}
	} else {
		cl, err := startChildLoad(b, fleet)
		if err != nil {
			b.Fatal(err)
		}
		lg = cl
	}
	b.Cleanup(lg.close)
	h := l.Auth.Heartbeats()
	levels := []int{10_000, 25_000, 40_000}
	if v := os.Getenv("HB_OFFERED"); v != "" {
		levels = nil
		for _, f := range strings.Split(v, ",") {
			if x, err := strconv.Atoi(f); err == nil && x > 0 {
				levels = append(levels, x)
			}
		}
	}
	for _, offered := range levels {
		for _, path := range paths {
			interval := time.Duration(float64(time.Second) * float64(n) / float64(offered))
			b.Run(fmt.Sprintf("agents=%d/offered=%d/s/path=%s", n, offered, path), func(b *testing.B) {
				load0 := loadAvg()
				r, err := drive(h, lg, path, interval, 2*time.Second, time.Duration(secs)*time.Second)
				if err != nil {
					b.Fatal(err)
				}
				base := plainUpsert(b, l.DB, cluster, fleet.Agents, max(r.acked, 10_000), int(r.flushRow))
				ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
				per := func(x float64) float64 {
					if r.acked == 0 {
						return 0
					}
					return x / float64(r.acked)
				}
				b.ReportMetric(r.rate, "heartbeats/s")
				b.ReportMetric(ms(percentile(r.ack, 0.5)), "ack_p50_ms")
				b.ReportMetric(ms(percentile(r.ack, 0.99)), "ack_p99_ms")
				b.ReportMetric(ms(percentile(r.visible, 0.5)), "visible_p50_ms")
				b.ReportMetric(ms(percentile(r.visible, 0.99)), "visible_p99_ms")
				b.ReportMetric(r.flushRow, "rows/flush")
				b.ReportMetric(float64(r.failed), "failed")
				b.ReportMetric(float64(r.fallbacks), "stream_fallbacks")
				b.ReportMetric(float64(r.auth), "full_auth_checks")
				b.ReportMetric(base, "plain_upsert_rows/s")
				b.ReportMetric(r.rate/base, "ingest/plain_upsert")
				b.ReportMetric(per(float64(r.cpu.Microseconds())), "authority_cpu_us/hb")
				b.ReportMetric(per(float64(r.sys.Microseconds())), "authority_sys_us/hb")
				b.ReportMetric(per(float64(r.loadCPU.Microseconds())), "loadgen_cpu_us/hb")
				b.ReportMetric(per(float64(r.allocBytes)), "authority_B/hb")
				b.ReportMetric(per(float64(r.allocs)), "authority_allocs/hb")
				b.ReportMetric(float64(r.gcs), "authority_gcs")
				b.Logf("heartbeats by %s; load average %s → %s; visible samples %d", path, load0, loadAvg(), len(r.visible))
			})
		}
	}
}

// discardWriter is a minimal http.ResponseWriter for BenchmarkHeartbeatRoute.
type discardWriter struct {
	h    http.Header
	code int
	n    int
}

func (w *discardWriter) Header() http.Header { return w.h }
func (w *discardWriter) WriteHeader(code int) {
	w.code = code
}
func (w *discardWriter) Write(p []byte) (int, error) { w.n += len(p); return len(p), nil }

// BenchmarkHeartbeatRoute measures the authority's own cost of one heartbeat
// on its route, without the network, TLS records and net/http's connection
// handling: the API handler (routing, middleware, certificate cache, JSON
// decoding, ingest, response) called directly with an enrolled node's
// verified certificate, as net/http would after the mTLS handshake. Flushes
// run as usual in the background.
func BenchmarkHeartbeatRoute(b *testing.B) {
	g := authtest.New(b, 1)
	l := g.Leader(10 * time.Second)
	_, fleet := enrollSim(b, l.Auth, l.APIAddr(), 64)
	certs := make([]*x509.Certificate, len(fleet.Agents))
	for i, a := range fleet.Agents {
		c, err := x509.ParseCertificate(a.Cert)
		if err != nil {
			b.Fatal(err)
		}
		certs[i] = c
	}
	hd := l.API.Handler()
	body, _ := json.Marshal(authority.HeartbeatInput{Seq: 1, SentAt: time.Now(), AgentVersion: "bench", State: "normal", Health: json.RawMessage(`{"status":"ok"}`)})
	rd := bytes.NewReader(body)
	req := httptest.NewRequest(http.MethodPost, "https://127.0.0.1/v1/agent/heartbeat", io.NopCloser(rd))
	req.RemoteAddr = "127.0.0.1:40000"
	req.Header.Set("Content-Type", "application/json")
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		rd.Reset(body)
		req.TLS = &tls.ConnectionState{PeerCertificates: certs[i%len(certs) : i%len(certs)+1]}
		clear(w.h)
		w.code = 0
		hd.ServeHTTP(w, req)
		if w.code != http.StatusOK {
			b.Fatalf("status %d", w.code)
		}
	}
}

// measureWindow calls atStart at start and atEnd at end (in a goroutine),
// with a CPU profile of the window when the environment variable profileEnv
// names a file; the returned wait blocks until atEnd ran.
func measureWindow(start, end time.Time, profileEnv string, atStart, atEnd func()) (wait func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		time.Sleep(time.Until(start))
		stop := profileWindow(os.Getenv(profileEnv))
		atStart()
		time.Sleep(time.Until(end))
		atEnd()
		stop()
	}()
	return func() { <-done }
}
