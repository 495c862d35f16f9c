package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/apiclient"
	"github.com/rap-fabric/core/internal/pgtest"
	"github.com/rap-fabric/core/internal/testport"
	"github.com/rap-fabric/core/internal/testwait"
)

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// binaries builds the three commands once per test binary.
func binaries(t *testing.T) string {
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "rap-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binDir = dir
		cmd := exec.Command("go", "build", "-o", dir+"/", "../cmd/rap-authority", "../cmd/rapctl", "../cmd/rap-node-agent", "../internal/testworkload")
		cmd.Stderr = os.Stderr
		buildErr = cmd.Run()
	})
	require.NoError(t, buildErr)
	return binDir
}

// freePort is a loopback address whose port lies below the ephemeral range,
// so that a process restarted on it cannot find it taken by an outgoing
// connection (see internal/testport).
func freePort(t *testing.T) string { return testport.Stable(t) }

// proc is one running rap-authority process.
type proc struct {
	id, raft, api, dir string
	cmd                *exec.Cmd
	out                *syncBuf
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func startAuthority(t *testing.T, bin, dbURL string, p *proc, extra ...string) {
	args := append([]string{"run", "--id", p.id, "--data-dir", p.dir, "--database-url", dbURL, "--raft-bind", p.raft, "--api-listen", p.api,
		"--heartbeat-timeout", "500ms", "--election-timeout", "500ms", "--leader-lease-timeout", "250ms", "--quorum-timeout", "1s",
		"--metrics-listen", "127.0.0.1:0"}, extra...)
	p.cmd = exec.Command(filepath.Join(bin, "rap-authority"), args...)
	p.out = &syncBuf{}
	p.cmd.Stdout = p.out
	p.cmd.Stderr = p.out
	require.NoError(t, p.cmd.Start())
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			_ = p.cmd.Wait()
		}
		if t.Failed() {
			t.Logf("--- %s output:\n%s", p.id, p.out.String())
		}
	})
}

type status struct {
	NodeID   string `json:"node_id"`
	State    string `json:"state"`
	LeaderID string `json:"leader_id"`
	Epoch    uint64 `json:"epoch"`
	Fence    uint64 `json:"fence_epoch"`
	Quorum   bool   `json:"quorum"`
	Members  []struct {
		ID      string `json:"id"`
		Healthy bool   `json:"healthy"`
	} `json:"members"`
}

func TestThreeAuthorityProcesses(t *testing.T) {
	bin := binaries(t)
	dbURL := pgtest.New(t)
	ps := make([]*proc, 3)
	for i := range ps {
		ps[i] = &proc{id: fmt.Sprintf("auth-%d", i+1), raft: freePort(t), api: freePort(t), dir: t.TempDir()}
	}
	// The first process bootstraps and prints the owner token and CA pin once.
	startAuthority(t, bin, dbURL, ps[0], "--bootstrap")
	var boot struct {
		OwnerToken string `json:"owner_token"`
		CAPin      string `json:"ca_pin"`
	}
	testwait.Until(t, 30*time.Second, "bootstrap output", func() bool {
		sc := bufio.NewScanner(strings.NewReader(ps[0].out.String()))
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "{") && json.Unmarshal(sc.Bytes(), &boot) == nil && boot.OwnerToken != "" {
				return true
			}
		}
		return false
	})
	require.True(t, strings.HasPrefix(boot.CAPin, "sha256:"))
	for _, p := range ps[1:] {
		startAuthority(t, bin, dbURL, p, "--join", ps[0].api, "--join-token", boot.OwnerToken, "--ca-pin", boot.CAPin)
	}
	client := func(ps ...*proc) *apiclient.Client {
		var addrs []string
		for _, p := range ps {
			addrs = append(addrs, p.api)
		}
		c, err := apiclient.New(apiclient.Options{Servers: addrs, Token: boot.OwnerToken, CAPin: boot.CAPin, Timeout: 3 * time.Second})
		require.NoError(t, err)
		t.Cleanup(c.Close)
		return c
	}
	statusOf := func(p *proc) (status, error) {
		var st status
		err := client(p).Do(context.Background(), http.MethodGet, "/v1/authority/status", nil, &st, nil)
		return st, err
	}
	var leader string
	var epoch uint64
	testwait.Until(t, 30*time.Second, "three members, one leader, one epoch, all healthy", func() bool {
		leaders := map[string]bool{}
		epochs := map[uint64]bool{}
		for _, p := range ps {
			st, err := statusOf(p)
			if err != nil || len(st.Members) != 3 || st.LeaderID == "" {
				return false
			}
			for _, m := range st.Members {
				if !m.Healthy {
					return false
				}
			}
			leaders[st.LeaderID] = true
			epochs[st.Epoch] = true
			epoch = st.Epoch
		}
		for l := range leaders {
			leader = l
		}
		return len(leaders) == 1 && len(epochs) == 1
	})

	// rapctl drives the owner API against any authority.
	rapctl := func(args ...string) (string, error) {
		var addrs []string
		for _, p := range ps {
			if p.cmd.ProcessState == nil {
				addrs = append(addrs, p.api)
			}
		}
		cmd := exec.Command(filepath.Join(bin, "rapctl"), append([]string{"--server", strings.Join(addrs, ","), "--token", boot.OwnerToken, "--ca-pin", boot.CAPin}, args...)...)
		cmd.Env = append(os.Environ(), "RAPCTL_CONFIG="+filepath.Join(t.TempDir(), "none.json"))
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := rapctl("authority", "status")
	require.NoError(t, err, out)
	require.Contains(t, out, leader)
	out, err = rapctl("cluster", "create", "East Coast", "--slug", "east")
	require.NoError(t, err, out)
	require.Contains(t, out, "sha256:")
	out, err = rapctl("-o", "json", "token", "create", "--cluster", "east", "--ttl", "10m", "--max-uses", "2")
	require.NoError(t, err, out)
	var tok map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &tok))
	require.True(t, strings.HasPrefix(tok["token"].(string), "rapjt."))
	out, err = rapctl("token", "list", "--cluster", "east")
	require.NoError(t, err, out)
	require.Contains(t, out, tok["id"].(string))
	require.NotContains(t, out, tok["token"].(string), "list never shows the secret")
	out, err = rapctl("cluster", "create", "bad slug!", "--slug", "Bad Slug")
	require.Error(t, err)
	require.Contains(t, out, "invalid_argument")

	// kill -9 the leader: a new leader with a higher epoch; writes resume.
	var lp *proc
	for _, p := range ps {
		if p.id == leader {
			lp = p
		}
	}
	killed := time.Now()
	require.NoError(t, lp.cmd.Process.Signal(syscall.SIGKILL))
	_, _ = lp.cmd.Process.Wait()
	var rest []*proc
	for _, p := range ps {
		if p != lp {
			rest = append(rest, p)
		}
	}
	var firstWrite time.Duration
	testwait.Until(t, 20*time.Second, "a write after the leader was killed", func() bool {
		_, err := rapctl("cluster", "create", "After Kill", "--slug", "after-kill")
		if err == nil {
			firstWrite = time.Since(killed)
			return true
		}
		return false
	})
	t.Logf("leader killed → first fenced write through rapctl after %v", firstWrite)
	st, err := statusOf(rest[0])
	require.NoError(t, err)
	require.NotEqual(t, leader, st.LeaderID)
	require.Greater(t, st.Epoch, epoch)
	require.Equal(t, st.Epoch, st.Fence)

	// The killed authority restarts from its data dir and rejoins as a follower.
	lp.cmd = nil
	startAuthority(t, bin, dbURL, lp)
	testwait.Until(t, 20*time.Second, "restarted authority follows the new leader", func() bool {
		s, err := statusOf(lp)
		return err == nil && s.LeaderID == st.LeaderID && s.Epoch >= st.Epoch && s.State == "Follower"
	})
}
