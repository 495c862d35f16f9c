package integration

import (
	"encoding/json"
	"errors"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/internal/authtest"
)

// cutProxy forwards TCP to PostgreSQL; while cut it closes every forwarded
// connection and every new one at once (PostgreSQL refusing connections).
type cutProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	cut    bool
	conns  map[net.Conn]bool
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &cutProxy{ln: ln, target: target, conns: map[net.Conn]bool{}}
	t.Cleanup(func() { _ = ln.Close() })
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

func (p *cutProxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cut {
		return false
	}
	for _, c := range cs {
		p.conns[c] = true
	}
	return true
}

func (p *cutProxy) set(cut bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = cut
	if cut {
		for c := range p.conns {
			_ = c.Close()
		}
		p.conns = map[net.Conn]bool{}
	}
}

func (p *cutProxy) serve(c net.Conn) {
	s, err := net.Dial("tcp", p.target)
	if err != nil || !p.track(c, s) {
		_ = c.Close()
		if s != nil {
			_ = s.Close()
		}
		return
	}
	go func() {
		buf := make([]byte, 32<<10)
		for {
			n, err := s.Read(buf)
			if n > 0 {
				_, _ = c.Write(buf[:n])
			}
			if err != nil {
				_ = c.Close()
				return
			}
		}
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			_, _ = s.Write(buf[:n])
		}
		if err != nil {
			_ = s.Close()
			return
		}
	}
}

// TestRapctlAuthorityHealth: `rapctl authority health` prints the health of
// an authority (table and -o json) and fails with unavailable, exit status
// non-zero, while PostgreSQL cannot be reached; ok again afterwards.
func TestRapctlAuthorityHealth(t *testing.T) {
	bin := binaries(t)
	var proxy *cutProxy
	g := authtest.NewWithDB(t, 1, func(_ int, dbURL string) string {
		u, err := url.Parse(dbURL)
		require.NoError(t, err)
		proxy = newCutProxy(t, u.Host)
		u.Host = proxy.ln.Addr().String()
		return u.String()
	})
	l := g.Leader(10 * time.Second)
	cfg := filepath.Join(t.TempDir(), "none.json")
	rapctl := func(args ...string) (string, string, int) {
		t.Helper()
		cmd := exec.Command(filepath.Join(bin, "rapctl"), append([]string{"--server", l.APIAddr(), "--token", g.Token, "--ca-pin", g.Pin}, args...)...)
		cmd.Env = append(os.Environ(), "RAPCTL_CONFIG="+cfg)
		var so, se strings.Builder
		cmd.Stdout, cmd.Stderr = &so, &se
		err := cmd.Run()
		code := 0
		if err != nil {
			var ee *exec.ExitError
			require.True(t, errors.As(err, &ee), "rapctl %v: %v", args, err)
			code = ee.ExitCode()
		}
		return so.String(), se.String(), code
	}

	g.Eventually(10*time.Second, "healthy", func() bool {
		out, _, code := rapctl("-o", "json", "authority", "health")
		var h struct {
			Status           string `json:"status"`
			DatabaseWritable bool   `json:"database_writable"`
			DatabaseServer   string `json:"database_server"`
		}
		return code == 0 && json.Unmarshal([]byte(out), &h) == nil && h.Status == "ok" && h.DatabaseWritable && h.DatabaseServer != ""
	})
	out, errOut, code := rapctl("authority", "health")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "STATUS")
	require.Contains(t, out, "ok")
	require.Contains(t, out, l.Node())

	proxy.set(true)
	out, errOut, code = rapctl("authority", "health")
	require.NotEqual(t, 0, code, "unhealthy is a failure: %s", out)
	require.Contains(t, errOut, "rapctl: unavailable:")
	require.Contains(t, errOut, "PostgreSQL unreachable")

	proxy.set(false)
	g.Eventually(15*time.Second, "healthy again", func() bool {
		_, _, code := rapctl("authority", "health")
		return code == 0
	})
}
