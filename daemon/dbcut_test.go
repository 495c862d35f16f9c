package daemon_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/apiclient"
	"github.com/rap-fabric/core/internal/authtest"
)

// freezeProxy forwards TCP to PostgreSQL and can freeze: while frozen it
// neither forwards nor closes anything, as a network that drops every packet.
type freezeProxy struct {
	ln     net.Listener
	target string
	frozen atomic.Bool
	mu     sync.Mutex
	gate   chan struct{}
}

func newFreezeProxy(t *testing.T, target string) *freezeProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &freezeProxy{ln: ln, target: target, gate: make(chan struct{})}
	close(p.gate)
	t.Cleanup(func() { _ = ln.Close(); p.thaw() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	return p
}

func (p *freezeProxy) wait() {
	p.mu.Lock()
	g := p.gate
	p.mu.Unlock()
	<-g
}

func (p *freezeProxy) freeze() {
	p.mu.Lock()
	if !p.frozen.Swap(true) {
		p.gate = make(chan struct{})
	}
	p.mu.Unlock()
}

func (p *freezeProxy) thaw() {
	p.mu.Lock()
	if p.frozen.Swap(false) {
		close(p.gate)
	}
	p.mu.Unlock()
}

func (p *freezeProxy) serve(c net.Conn) {
	p.wait()
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		_ = c.Close()
		return
	}
	pipe := func(dst, src net.Conn) {
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				p.wait() // frozen: hold the bytes, as a dropped packet would be
				if _, werr := dst.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				if err != io.EOF {
					_ = err
				}
				break
			}
		}
		_ = dst.Close()
		_ = src.Close()
	}
	go pipe(s, c)
	pipe(c, s)
}

// TestPostgresUnreachableFromLeaderFailsFast (R5, in process): with the
// leader's path to PostgreSQL frozen, fenced requests answer with a clear error
// within the request deadline, nothing is acknowledged, and writes resume
// without a restart once the path is back.
func TestPostgresUnreachableFromLeaderFailsFast(t *testing.T) {
	var proxies [3]*freezeProxy
	g := authtest.NewWithDB(t, 3, func(i int, dbURL string) string {
		u, err := url.Parse(dbURL)
		require.NoError(t, err)
		proxies[i] = newFreezeProxy(t, u.Host)
		u.Host = proxies[i].ln.Addr().String()
		return u.String()
	})
	ctx := context.Background()
	l := g.Leader(10 * time.Second)
	c, err := apiclient.New(apiclient.Options{Servers: []string{l.APIAddr()}, Token: g.Token, CAPin: g.Pin, MaxRedirects: -1, Timeout: 15 * time.Second})
	require.NoError(t, err)
	_, err = authtest.CreateCluster(ctx, c, "before")
	require.NoError(t, err)

	proxies[g.Index(l)].freeze()
	for i := 0; i < 3; i++ {
		start := time.Now()
		err := c.Do(ctx, http.MethodPost, "/v1/clusters", map[string]any{"name": "during-" + string(rune('a'+i))}, nil, map[string]string{"Idempotency-Key": "cut-" + string(rune('a'+i))})
		took := time.Since(start)
		require.Error(t, err)
		t.Logf("request %d during the cut: %v after %v", i, err, took)
		require.Contains(t, []string{"unavailable", "unknown_outcome", "no_quorum"}, apiCode(err), "a clear error, got %v", err)
		require.Less(t, took, 5500*time.Millisecond, "answered within the request deadline")
	}
	proxies[g.Index(l)].thaw()
	require.NoError(t, g.Leader(10*time.Second).DB.Pool.Ping(ctx))
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err = authtest.CreateCluster(ctx, g.Client(g.DS...), "after")
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	require.NoError(t, err, "writes resume after the path is back, without a restart")
}
