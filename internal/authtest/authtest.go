// Package authtest runs groups of in-process authorities over real TCP (Raft and
// the TLS API) sharing one real PostgreSQL database, with Raft links that can be
// cut and healed. Test-only: production code must not import it.
package authtest

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/apiclient"
	"github.com/rap-fabric/core/authority"
	"github.com/rap-fabric/core/authority/raftnode/rafttest"
	"github.com/rap-fabric/core/daemon"
	"github.com/rap-fabric/core/internal/pgtest"
	"github.com/rap-fabric/core/internal/testport"
)

// Group is a harness of in-process authorities over real TCP (Raft and TLS API)
// sharing one real PostgreSQL database.
type Group struct {
	t testing.TB
	// DBURL is the shared database.
	DBURL string
	// DS are the authorities (nil when stopped).
	DS     []*daemon.Daemon
	layers []*rafttest.StreamLayer
	dirs   []string
	apis   []string
	// Token is an owner API token; Pin the platform CA pin.
	Token string
	Pin   string
	Logs  *Logs
	// plain uses the production TCP transport (no partition hooks).
	plain bool
	// dbURL, when set, picks each authority's database URL.
	dbURL func(int, string) string
	// configure, when set, adjusts each authority's daemon.Config before start.
	configure func(int, *daemon.Config)
}

// Logs collects every authority's log output (Info and up) so tests can
// search it for secrets; warnings and errors also go to t.Log.
type Logs struct {
	mu  sync.Mutex
	buf bytes.Buffer
	t   testing.TB
}

// Write implements io.Writer.
func (l *Logs) Write(p []byte) (int, error) {
	l.mu.Lock()
	l.buf.Write(p)
	l.mu.Unlock()
	if bytes.Contains(p, []byte("[WARN]")) || bytes.Contains(p, []byte("[ERROR]")) {
		func() {
			defer func() { _ = recover() }() // the test may have ended
			l.t.Log(strings.TrimSpace(string(p)))
		}()
	}
	return len(p), nil
}

// String returns everything logged so far.
func (l *Logs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// Start starts authority i (again, after a stop: same addresses and data dir).
func (g *Group) Start(i int) *daemon.Daemon {
	t := g.t
	// Ports below the ephemeral range: a restart listens on the same
	// addresses again, and no outgoing connection can take them meanwhile.
	addr, api := testport.Stable(t), testport.Stable(t)
	if g.layers[i] != nil { // a restart keeps its addresses
		addr, api = g.layers[i].Addr().String(), g.apis[i]
	}
	var layer *rafttest.StreamLayer
	var sl raft.StreamLayer
	if !g.plain {
		var err error
		layer, err = rafttest.Listen(addr)
		require.NoError(t, err)
		addr, sl = layer.Addr().String(), layer
	}
	dbURL := g.DBURL
	if g.dbURL != nil {
		dbURL = g.dbURL(i, g.DBURL)
	}
	cfg := daemon.Config{
		NodeID: fmt.Sprintf("a%d", i+1), DataDir: g.dirs[i], DatabaseURL: dbURL, RaftBind: addr,
		APIListen: api, StreamLayer: sl, Logger: hclog.New(&hclog.LoggerOptions{Name: fmt.Sprintf("a%d", i+1), Level: hclog.Info, Output: g.Logs}),
		// The "500 ms timeouts" profile of PERFORMANCE.md: fast failover, but
		// a leader starved of CPU for a moment (race detector, several test
		// packages and the chaos drills on 2 cores) does not step down.
		HeartbeatTimeout: 500 * time.Millisecond, ElectionTimeout: 500 * time.Millisecond, LeaderLeaseTimeout: 500 * time.Millisecond,
		QuorumTimeout: time.Second,
	}
	if g.configure != nil {
		g.configure(i, &cfg)
	}
	d, err := daemon.Start(context.Background(), cfg)
	require.NoError(t, err)
	g.DS[i] = d
	if layer != nil {
		g.layers[i] = layer
	}
	g.apis[i] = d.APIAddr()
	return d
}

// New starts n authorities: the first bootstraps, the others are added. Their
// Raft links run over rafttest stream layers, so Isolate and Heal work.
func New(t testing.TB, n int) *Group { return newGroup(t, n, false, nil, nil) }

// NewWithConfig is New with each authority's daemon.Config adjusted by
// configure (given the authority's index) before it starts, e.g. to set the
// authority subsystems' options (fast Argon2, a fake admin clock).
func NewWithConfig(t testing.TB, n int, configure func(i int, c *daemon.Config)) *Group {
	return newGroup(t, n, false, nil, configure)
}

// NewWithDB is New with each authority's database URL chosen by dbURL (given
// the authority's index and the test database's URL), e.g. to put a fault
// proxy between one authority and PostgreSQL.
func NewWithDB(t testing.TB, n int, dbURL func(i int, url string) string) *Group {
	return newGroup(t, n, false, dbURL, nil)
}

// NewPlain is New with the production Raft transport (mutual TLS over plain
// TCP listeners), for tests that probe the Raft port itself. Isolate, Heal and
// restarting on the same Raft address are not available.
func NewPlain(t testing.TB, n int) *Group { return newGroup(t, n, true, nil, nil) }

// NewPlainWithConfig is NewPlain with each authority's daemon.Config
// adjusted by configure before it starts, e.g. for a group whose other
// members run in other processes (they can only speak the production
// transport).
func NewPlainWithConfig(t testing.TB, n int, configure func(i int, c *daemon.Config)) *Group {
	return newGroup(t, n, true, nil, configure)
}

func newGroup(t testing.TB, n int, plain bool, dbURL func(int, string) string, configure func(int, *daemon.Config)) *Group {
	g := &Group{Logs: &Logs{t: t}, t: t, DBURL: pgtest.New(t), DS: make([]*daemon.Daemon, n), layers: make([]*rafttest.StreamLayer, n), dirs: make([]string, n), apis: make([]string, n), plain: plain, dbURL: dbURL,
		configure: configure}
	for i := range g.dirs {
		g.dirs[i] = t.TempDir()
	}
	for i := 0; i < n; i++ {
		g.Start(i)
	}
	t.Cleanup(func() {
		for _, d := range g.DS {
			if d != nil {
				_ = d.Close()
			}
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(t, g.DS[0].Bootstrap(ctx))
	sys := authority.Actor{ID: "test", Kind: "system"}
	for i := 1; i < n; i++ {
		cert, ca, err := g.DS[0].IssueMemberCert(ctx, sys, g.DS[i].Node(), g.DS[i].MemberPublicKey())
		require.NoError(t, err)
		require.NoError(t, g.DS[i].InstallMemberCert(cert, ca))
		require.NoError(t, g.DS[0].AddMember(ctx, sys, g.DS[i].Node(), g.DS[i].RaftAddr(), g.DS[i].APIAddr()))
	}
	tok, err := g.DS[0].Auth.CreateOwnerToken(ctx, sys, "test owner", "")
	require.NoError(t, err)
	g.Token = tok
	g.Pin = g.DS[0].PlatformPin()
	require.NotEmpty(t, g.Pin)
	g.Eventually(10*time.Second, "all authorities know the members", func() bool {
		for _, d := range g.DS {
			if len(d.FSM.Members()) != n {
				return false
			}
		}
		return true
	})
	return g
}

// DataDir returns the data directory of authority i (kept across restarts).
func (g *Group) DataDir(i int) string { return g.dirs[i] }

// Eventually polls cond until it holds or fails the test after timeout.
func (g *Group) Eventually(timeout time.Duration, what string, cond func() bool) {
	g.t.Helper()
	require.NoError(g.t, rafttest.Poll(timeout, cond), "timed out waiting: %s", what)
}

// Leader waits for a leader (among the running ones) that holds the fence.
func (g *Group) Leader(timeout time.Duration) *daemon.Daemon {
	g.t.Helper()
	var l *daemon.Daemon
	g.Eventually(timeout, "a leader holding the fence", func() bool {
		for _, d := range g.DS {
			if d != nil && d.Raft.IsLeader() && d.Auth.FenceEpoch() > 0 {
				l = d
				return true
			}
		}
		return false
	})
	return l
}

// LeaderAmong waits for a fenced leader among ds.
func (g *Group) LeaderAmong(timeout time.Duration, ds ...*daemon.Daemon) *daemon.Daemon {
	g.t.Helper()
	var l *daemon.Daemon
	g.Eventually(timeout, "a leader among the given authorities", func() bool {
		for _, d := range ds {
			if d.Raft.IsLeader() && d.Auth.FenceEpoch() > 0 {
				l = d
				return true
			}
		}
		return false
	})
	return l
}

// Followers returns the running authorities other than l.
func (g *Group) Followers(l *daemon.Daemon) []*daemon.Daemon {
	var out []*daemon.Daemon
	for _, d := range g.DS {
		if d != nil && d != l {
			out = append(out, d)
		}
	}
	return out
}

// Index returns the position of d in DS.
func (g *Group) Index(d *daemon.Daemon) int {
	for i, x := range g.DS {
		if x == d {
			return i
		}
	}
	return -1
}

// Isolate cuts d's Raft links to every other authority (both directions).
func (g *Group) Isolate(d *daemon.Daemon) {
	i := g.Index(d)
	var others []raft.ServerAddress
	for j, l := range g.layers {
		if j != i && l != nil {
			others = append(others, raft.ServerAddress(l.Addr().String()))
			l.Block(raft.ServerAddress(g.layers[i].Addr().String()))
		}
	}
	g.layers[i].Block(others...)
}

// Heal restores every Raft link.
func (g *Group) Heal() {
	for _, l := range g.layers {
		if l != nil {
			l.Heal()
		}
	}
}

// Client returns an owner API client that talks to the given authorities.
func (g *Group) Client(ds ...*daemon.Daemon) *apiclient.Client {
	var addrs []string
	for _, d := range ds {
		addrs = append(addrs, d.APIAddr())
	}
	c, err := apiclient.New(apiclient.Options{Servers: addrs, Token: g.Token, CAPin: g.Pin, Timeout: 5 * time.Second})
	require.NoError(g.t, err)
	g.t.Cleanup(c.Close)
	return c
}

// CreateCluster creates a cluster through the owner API.
func CreateCluster(ctx context.Context, c *apiclient.Client, slug string) (map[string]any, error) {
	var out map[string]any
	err := c.Do(ctx, http.MethodPost, "/v1/clusters", map[string]any{"name": slug, "slug": slug}, &out, nil)
	return out, err
}
