package daemon_test

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
	"github.com/rap-fabric/core/authority/daemon"
	"github.com/rap-fabric/core/authority/raftnode/rafttest"
	"github.com/rap-fabric/core/internal/pgtest"
)

// group is a harness of in-process authorities over real TCP (Raft and TLS API)
// sharing one real PostgreSQL database.
type group struct {
	t      *testing.T
	dbURL  string
	ds     []*daemon.Daemon
	layers []*rafttest.StreamLayer
	dirs   []string
	apis   []string
	token  string
	pin    string
	logs   *logs
}

// logs collects every authority's log output (Info and up) so tests can
// search it for secrets; warnings and errors also go to t.Log.
type logs struct {
	mu  sync.Mutex
	buf bytes.Buffer
	t   *testing.T
}

func (l *logs) Write(p []byte) (int, error) {
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

func (l *logs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (g *group) start(i int) *daemon.Daemon {
	t := g.t
	addr, api := "127.0.0.1:0", "127.0.0.1:0"
	if g.layers[i] != nil { // a restart keeps its addresses
		addr, api = g.layers[i].Addr().String(), g.apis[i]
	}
	layer, err := rafttest.Listen(addr)
	require.NoError(t, err)
	d, err := daemon.Start(context.Background(), daemon.Config{
		NodeID: fmt.Sprintf("a%d", i+1), DataDir: g.dirs[i], DatabaseURL: g.dbURL, RaftBind: layer.Addr().String(),
		APIListen: api, StreamLayer: layer, Logger: hclog.New(&hclog.LoggerOptions{Name: fmt.Sprintf("a%d", i+1), Level: hclog.Info, Output: g.logs}),
		HeartbeatTimeout: 300 * time.Millisecond, ElectionTimeout: 300 * time.Millisecond, LeaderLeaseTimeout: 150 * time.Millisecond,
		QuorumTimeout: time.Second,
	})
	require.NoError(t, err)
	g.ds[i] = d
	g.layers[i] = layer
	g.apis[i] = d.APIAddr()
	return d
}

// newGroup starts n authorities: the first bootstraps, the others are added.
func newGroup(t *testing.T, n int) *group {
	g := &group{logs: &logs{t: t}, t: t, dbURL: pgtest.New(t), ds: make([]*daemon.Daemon, n), layers: make([]*rafttest.StreamLayer, n), dirs: make([]string, n), apis: make([]string, n)}
	for i := range g.dirs {
		g.dirs[i] = t.TempDir()
	}
	for i := 0; i < n; i++ {
		g.start(i)
	}
	t.Cleanup(func() {
		for _, d := range g.ds {
			if d != nil {
				_ = d.Close()
			}
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(t, g.ds[0].Bootstrap(ctx))
	sys := authority.Actor{ID: "test", Kind: "system"}
	for i := 1; i < n; i++ {
		require.NoError(t, g.ds[0].AddMember(ctx, sys, g.ds[i].Node(), g.ds[i].RaftAddr(), g.ds[i].APIAddr()))
	}
	tok, err := g.ds[0].Auth.CreateOwnerToken(ctx, sys, "test owner", "")
	require.NoError(t, err)
	g.token = tok
	g.pin = g.ds[0].PlatformPin()
	require.NotEmpty(t, g.pin)
	g.eventually(10*time.Second, "all authorities know the members", func() bool {
		for _, d := range g.ds {
			if len(d.FSM.Members()) != n {
				return false
			}
		}
		return true
	})
	return g
}

func (g *group) eventually(timeout time.Duration, what string, cond func() bool) {
	g.t.Helper()
	require.NoError(g.t, rafttest.Poll(timeout, cond), "timed out waiting: %s", what)
}

// leader waits for a leader (among the running ones) that holds the fence.
func (g *group) leader(timeout time.Duration) *daemon.Daemon {
	g.t.Helper()
	var l *daemon.Daemon
	g.eventually(timeout, "a leader holding the fence", func() bool {
		for _, d := range g.ds {
			if d != nil && d.Raft.IsLeader() && d.Auth.Epoch() > 0 {
				l = d
				return true
			}
		}
		return false
	})
	return l
}

// leaderAmong waits for a fenced leader among ds.
func (g *group) leaderAmong(timeout time.Duration, ds ...*daemon.Daemon) *daemon.Daemon {
	g.t.Helper()
	var l *daemon.Daemon
	g.eventually(timeout, "a leader among the given authorities", func() bool {
		for _, d := range ds {
			if d.Raft.IsLeader() && d.Auth.Epoch() > 0 {
				l = d
				return true
			}
		}
		return false
	})
	return l
}

func (g *group) followers(l *daemon.Daemon) []*daemon.Daemon {
	var out []*daemon.Daemon
	for _, d := range g.ds {
		if d != nil && d != l {
			out = append(out, d)
		}
	}
	return out
}

func (g *group) index(d *daemon.Daemon) int {
	for i, x := range g.ds {
		if x == d {
			return i
		}
	}
	return -1
}

// isolate cuts d's Raft links to every other authority (both directions).
func (g *group) isolate(d *daemon.Daemon) {
	i := g.index(d)
	var others []raft.ServerAddress
	for j, l := range g.layers {
		if j != i && l != nil {
			others = append(others, raft.ServerAddress(l.Addr().String()))
			l.Block(raft.ServerAddress(g.layers[i].Addr().String()))
		}
	}
	g.layers[i].Block(others...)
}

func (g *group) heal() {
	for _, l := range g.layers {
		if l != nil {
			l.Heal()
		}
	}
}

// client returns an owner API client that talks to the given authorities.
func (g *group) client(ds ...*daemon.Daemon) *apiclient.Client {
	var addrs []string
	for _, d := range ds {
		addrs = append(addrs, d.APIAddr())
	}
	c, err := apiclient.New(apiclient.Options{Servers: addrs, Token: g.token, CAPin: g.pin, Timeout: 5 * time.Second})
	require.NoError(g.t, err)
	g.t.Cleanup(c.Close)
	return c
}

func createCluster(ctx context.Context, c *apiclient.Client, slug string) (map[string]any, error) {
	var out map[string]any
	err := c.Do(ctx, http.MethodPost, "/v1/clusters", map[string]any{"name": slug, "slug": slug}, &out, nil)
	return out, err
}
