package chaos

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Timing is the Raft timing given to every authority.
type Timing struct {
	Heartbeat, Election, Lease, Quorum time.Duration
}

// LANTiming is the timing of the process integration tests (fast failover).
var LANTiming = Timing{Heartbeat: 500 * time.Millisecond, Election: 500 * time.Millisecond, Lease: 250 * time.Millisecond, Quorum: time.Second}

// WANTiming suits links with 100±50 ms delay and loss (drill R4).
var WANTiming = Timing{Heartbeat: 2 * time.Second, Election: 2 * time.Second, Lease: 1500 * time.Millisecond, Quorum: 4 * time.Second}

// Host octets in Subnet.
const (
	octetPG     = 2
	octetClient = 3
	octetProxy  = 4
	octetAuth   = 11 // auth1 = .11, auth2 = .12, …
	octetAgent  = 21 // agent1 = .21, …
	octetOther  = 31 // attackers and helpers
	octetPG2    = 5  // the synchronous standby (Options.Standby)
	raftPort    = 7000
	apiPort     = 8443
)

// Options configure an Env.
type Options struct {
	// Name labels the drill in reports and idempotency keys.
	Name string
	// Authorities is the group size; 0 means 3.
	Authorities int
	// Timing is the Raft timing; zero means LANTiming.
	Timing Timing
	// RaftProxy routes every Raft connection through a TCPProxy on host
	// "proxy" (each authority advertises its proxy address).
	RaftProxy bool
	// Seed seeds the drill's randomness; 0 picks one (it is logged).
	Seed uint64
	// Standby adds a synchronous streaming standby of PostgreSQL on host
	// "pg2" and gives the authorities a two-host URL with
	// target_session_attrs=read-write.
	Standby bool
	// ReplicationDelay delays the standby's streaming link by this much per
	// direction (a TCPProxy on host pg2), so every synchronous COMMIT waits
	// at least twice as long for the standby's flush.
	ReplicationDelay time.Duration
}

// Env is one drill's world: the network, PostgreSQL, the authority group, a
// client host, the monitor and the history.
type Env struct {
	T    testing.TB
	Opts Options
	Net  *Network
	PG   *Postgres
	// PGStandby is the synchronous standby (Options.Standby), else nil.
	PGStandby *Postgres
	// ReplProxy carries the standby's streaming connection (Options.Standby).
	ReplProxy *TCPProxy
	// DB reads PostgreSQL over its unix socket (unaffected by faults).
	DB *pgxpool.Pool
	// Client is the host the workload and the monitor run on.
	Client *Host
	// ProxyHost holds the Raft proxies when Options.RaftProxy is set.
	ProxyHost *Host
	// Proxies are the Raft proxies by authority id.
	Proxies map[string]*TCPProxy
	// Auths is the authority group.
	Auths []*Authority
	// OwnerToken and CAPin come from the bootstrap line.
	OwnerToken, CAPin string
	// API reaches every authority from the client host.
	API *API
	// Mon watches every authority's status.
	Mon *Monitor
	// Hist records operations and faults.
	Hist *History
	// Rand is the drill's seeded randomness.
	Rand *rand.Rand
	// Seed is the seed of Rand.
	Seed uint64
	// Bin holds the built binaries.
	Bin string
	// Started is when the group was up.
	Started time.Time

	mu sync.Mutex
}

// Authority is one rap-authority process on its own host.
type Authority struct {
	ID            string
	Host          *Host
	RaftBind      string
	RaftAdvertise string
	APIAddr       string
	Dir           string
	Proc          *Process

	env  *Env
	base []string
}

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// Binaries builds rap-authority and rap-node-agent once per test binary, or
// uses the directory named by $RAP_CHAOS_BIN when set (it is not removed).
func Binaries() (string, error) {
	buildOnce.Do(func() {
		if dir := os.Getenv("RAP_CHAOS_BIN"); dir != "" {
			for _, b := range []string{"rap-authority", "rap-node-agent"} {
				if !fileExists(filepath.Join(dir, b)) {
					buildErr = fmt.Errorf("chaos: RAP_CHAOS_BIN=%s has no %s", dir, b)
					return
				}
			}
			buildDir = dir
			return
		}
		root, err := moduleRoot()
		if err != nil {
			buildErr = err
			return
		}
		dir, err := os.MkdirTemp("", "rapchaos-bin-")
		if err != nil {
			buildErr = err
			return
		}
		buildDir = dir
		cmd := exec.Command("go", "build", "-o", dir+"/", "./cmd/rap-authority", "./cmd/rap-node-agent")
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("chaos: go build: %w\n%s", err, out)
		}
	})
	return buildDir, buildErr
}

// RemoveBinaries deletes what Binaries built (TestMain calls it).
func RemoveBinaries() {
	if buildDir != "" && os.Getenv("RAP_CHAOS_BIN") == "" {
		_ = os.RemoveAll(buildDir)
	}
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if fileExists(filepath.Join(dir, "go.mod")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("chaos: go.mod not found")
		}
		dir = parent
	}
}

// NewEnv builds the network, starts PostgreSQL and the authority group and
// waits until the group has one leader holding the fence. It fails t on error.
func NewEnv(t testing.TB, o Options) *Env {
	t.Helper()
	if o.Authorities == 0 {
		o.Authorities = 3
	}
	if o.Timing == (Timing{}) {
		o.Timing = LANTiming
	}
	if o.Seed == 0 {
		o.Seed = uint64(time.Now().UnixNano())
	}
	e := &Env{T: t, Opts: o, Seed: o.Seed, Rand: rand.New(rand.NewPCG(o.Seed, o.Seed^0x9e3779b97f4a7c15)), Proxies: map[string]*TCPProxy{}}
	t.Logf("%s: seed %d", o.Name, o.Seed)
	bin, err := Binaries()
	if err != nil {
		t.Fatal(err)
	}
	e.Bin = bin
	if e.Net, err = NewNetwork(t); err != nil {
		t.Fatal(err)
	}
	pgHost := e.mustHost("pg", octetPG)
	e.Client = e.mustHost("client", octetClient)
	if o.RaftProxy {
		e.ProxyHost = e.mustHost("proxy", octetProxy)
	}
	if e.PG, err = StartPostgres(e.Net, pgHost); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if e.DB, err = e.PG.Pool(ctx); err != nil {
		t.Fatal(err)
	}
	e.Net.OnClose(e.DB.Close)
	dbURL := e.PG.URL()
	if o.Standby {
		h2 := e.mustHost("pg2", octetPG2)
		ln, err := h2.Listen("tcp", h2.Addr(PGPort+1))
		if err != nil {
			t.Fatal(err)
		}
		e.ReplProxy = NewTCPProxy(ln, e.PG.Host.Addr(PGPort), h2.DialContext, rand.New(rand.NewPCG(o.Seed, 11)))
		e.Net.OnClose(e.ReplProxy.Close)
		e.ReplProxy.Set(LinkFaults{Delay: o.ReplicationDelay})
		if e.PGStandby, err = StartStandby(e.Net, h2, e.PG, e.ReplProxy.Addr()); err != nil {
			t.Fatal(err)
		}
		dbURL = MultiHostURL(e.PG, e.PGStandby)
	}
	for i := 0; i < o.Authorities; i++ {
		id := fmt.Sprintf("auth%d", i+1)
		h := e.mustHost(id, byte(octetAuth+i))
		a := &Authority{ID: id, Host: h, RaftBind: h.Addr(raftPort), RaftAdvertise: h.Addr(raftPort), APIAddr: h.Addr(apiPort),
			Dir: filepath.Join(e.Net.LogDir, id+"-data"), env: e}
		if o.RaftProxy {
			ln, err := e.ProxyHost.Listen("tcp", e.ProxyHost.Addr(raftPort+i+1))
			if err != nil {
				t.Fatal(err)
			}
			p := NewTCPProxy(ln, a.RaftBind, e.ProxyHost.DialContext, rand.New(rand.NewPCG(o.Seed+uint64(i), 7)))
			e.Net.OnClose(p.Close)
			e.Proxies[id] = p
			a.RaftAdvertise = p.Addr()
		}
		a.base = []string{"run", "--id", id, "--data-dir", a.Dir, "--database-url", dbURL, "--raft-bind", a.RaftBind,
			"--raft-advertise", a.RaftAdvertise, "--api-listen", a.APIAddr,
			"--heartbeat-timeout", o.Timing.Heartbeat.String(), "--election-timeout", o.Timing.Election.String(),
			"--leader-lease-timeout", o.Timing.Lease.String(), "--quorum-timeout", o.Timing.Quorum.String(),
			"--metrics-listen", "127.0.0.1:0"}
		e.Auths = append(e.Auths, a)
	}
	// The first authority bootstraps and prints the owner token and CA pin.
	first := e.Auths[0]
	if first.Proc, err = first.Host.Start(first.ID, filepath.Join(bin, "rap-authority"), append(first.base, "--bootstrap")...); err != nil {
		t.Fatal(err)
	}
	if err := e.readBootstrap(first, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	var servers []string
	for _, a := range e.Auths {
		servers = append(servers, a.APIAddr)
	}
	e.API = NewAPI(e.Client, servers, e.OwnerToken, e.CAPin, 3*time.Second)
	e.Net.OnClose(e.API.Close)
	for _, a := range e.Auths[1:] {
		args := append(append([]string(nil), a.base...), "--join", first.APIAddr, "--join-token", e.OwnerToken, "--ca-pin", e.CAPin)
		if a.Proc, err = a.Host.Start(a.ID, filepath.Join(bin, "rap-authority"), args...); err != nil {
			t.Fatal(err)
		}
	}
	e.Mon = NewMonitor(e)
	e.Net.OnClose(e.Mon.Stop)
	e.Hist = NewHistory()
	if _, err := e.WaitStable(90*time.Second, nil); err != nil {
		t.Fatal(err)
	}
	e.Started = time.Now()
	return e
}

func (e *Env) mustHost(name string, octet byte) *Host {
	h, err := e.Net.AddHost(name, octet)
	if err != nil {
		e.T.Fatal(err)
	}
	return h
}

func (e *Env) readBootstrap(a *Authority, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if f, err := os.Open(a.Proc.LogPath); err == nil {
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				var boot struct {
					OwnerToken string `json:"owner_token"`
					CAPin      string `json:"ca_pin"`
				}
				if strings.HasPrefix(sc.Text(), "{") && json.Unmarshal(sc.Bytes(), &boot) == nil && boot.OwnerToken != "" {
					e.OwnerToken, e.CAPin = boot.OwnerToken, boot.CAPin
					f.Close()
					return nil
				}
			}
			f.Close()
		}
		if !a.Proc.Running() {
			return fmt.Errorf("%w: %s exited:\n%s", ErrBootstrap, a.ID, tailFile(a.Proc.LogPath, 30))
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%w: no bootstrap line from %s within %v:\n%s", ErrBootstrap, a.ID, timeout, tailFile(a.Proc.LogPath, 30))
}

// Authority returns the authority with that id.
func (e *Env) Authority(id string) *Authority {
	for _, a := range e.Auths {
		if a.ID == id {
			return a
		}
	}
	return nil
}

// AuthHosts returns the hosts of the authorities.
func (e *Env) AuthHosts() []*Host {
	var out []*Host
	for _, a := range e.Auths {
		out = append(out, a.Host)
	}
	return out
}

// Others returns every authority except a.
func (e *Env) Others(a *Authority) []*Authority {
	var out []*Authority
	for _, b := range e.Auths {
		if b != a {
			out = append(out, b)
		}
	}
	return out
}

// HostsOf returns the hosts of as.
func HostsOf(as []*Authority) []*Host {
	var out []*Host
	for _, a := range as {
		out = append(out, a.Host)
	}
	return out
}

// IDs returns the ids of as.
func IDs(as []*Authority) []string {
	var out []string
	for _, a := range as {
		out = append(out, a.ID)
	}
	return out
}

// Restart starts a stopped authority again from its data directory (no
// bootstrap or join flags: it rejoins as a member).
func (a *Authority) Restart() error {
	a.Proc.args = append([]string(nil), a.base...)
	return a.Proc.Restart()
}

// Status is GET /v1/authority/status of one authority.
type Status struct {
	NodeID       string `json:"node_id"`
	State        string `json:"state"`
	LeaderID     string `json:"leader_id"`
	Epoch        uint64 `json:"epoch"`
	FenceEpoch   uint64 `json:"fence_epoch"`
	Term         uint64 `json:"term"`
	CommitIndex  uint64 `json:"commit_index"`
	AppliedIndex uint64 `json:"applied_index"`
	Quorum       bool   `json:"quorum"`
	Members      []struct {
		ID string `json:"id"`
	} `json:"members"`
}

// Status asks one authority for its status, from the client host.
func (e *Env) Status(a *Authority, timeout time.Duration) (Status, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var st Status
	_, err := e.Mon.api[a.ID].Do(ctx, http.MethodGet, "/v1/authority/status", nil, &st, nil)
	return st, err
}

// WaitStable waits until every running authority answers, all agree on one
// leader and term, the leader's fence epoch equals its epoch, and every
// member list has all authorities. It returns the leader. Authorities in skip
// are not asked.
func (e *Env) WaitStable(timeout time.Duration, skip map[string]bool) (*Authority, error) {
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		leader, why := e.stableOnce(skip)
		if leader != nil {
			return leader, nil
		}
		last = why
		time.Sleep(100 * time.Millisecond)
	}
	return nil, fmt.Errorf("%w: group not stable after %v: %s", ErrTimeout, timeout, last)
}

func (e *Env) stableOnce(skip map[string]bool) (*Authority, string) {
	leaders := map[string]bool{}
	terms := map[uint64]bool{}
	var leaderSt Status
	for _, a := range e.Auths {
		if skip[a.ID] || !a.Proc.Running() {
			continue
		}
		st, err := e.Status(a, time.Second)
		if err != nil {
			return nil, a.ID + ": " + err.Error()
		}
		if st.LeaderID == "" || len(st.Members) != len(e.Auths) {
			return nil, fmt.Sprintf("%s: leader %q, %d members", a.ID, st.LeaderID, len(st.Members))
		}
		leaders[st.LeaderID] = true
		terms[st.Term] = true
		if st.State == "Leader" {
			leaderSt = st
		}
	}
	if len(leaders) != 1 || len(terms) != 1 {
		return nil, fmt.Sprintf("leaders %v terms %v", leaders, terms)
	}
	if leaderSt.NodeID == "" || leaderSt.FenceEpoch != leaderSt.Epoch || leaderSt.Epoch == 0 {
		return nil, fmt.Sprintf("leader %q epoch %d fence %d", leaderSt.NodeID, leaderSt.Epoch, leaderSt.FenceEpoch)
	}
	return e.Authority(leaderSt.NodeID), ""
}

// Leader returns the authority that currently reports itself leader (asking
// each running one), or nil.
func (e *Env) Leader() *Authority {
	for _, a := range e.Auths {
		if !a.Proc.Running() {
			continue
		}
		if st, err := e.Status(a, time.Second); err == nil && st.State == "Leader" {
			return a
		}
	}
	return nil
}

// WaitNewLeader waits until an authority other than old reports itself leader
// with a term above oldTerm and holds the fence; it returns it and how long
// that took from since.
func (e *Env) WaitNewLeader(old *Authority, oldTerm uint64, since time.Time, timeout time.Duration) (*Authority, time.Duration, error) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		for _, a := range e.Auths {
			if a == old || !a.Proc.Running() {
				continue
			}
			st, err := e.Status(a, 500*time.Millisecond)
			if err == nil && st.State == "Leader" && st.Term > oldTerm {
				return a, time.Since(since), nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil, 0, fmt.Errorf("%w: no new leader within %v", ErrTimeout, timeout)
}

// Event records a fault in the history's timeline and the test log.
func (e *Env) Event(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	e.Hist.Event(msg)
	e.T.Logf("%s +%5.1fs %s", e.Opts.Name, time.Since(e.Hist.Start()).Seconds(), msg)
}
