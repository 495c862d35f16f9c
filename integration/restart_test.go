package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/apiclient"
	"github.com/rap-fabric/core/internal/pgtest"
	"github.com/rap-fabric/core/internal/testwait"
)

// running is a rap-authority process whose exit the test observes.
type running struct {
	*proc
	args []string
	done chan struct{} // closed when the process exited
}

// spawn starts rap-authority run with args (after the common flags) and
// watches for its exit.
func spawn(t *testing.T, bin, dbURL string, p *proc, args ...string) *running {
	all := append([]string{"run", "--id", p.id, "--data-dir", p.dir, "--database-url", dbURL, "--raft-bind", p.raft, "--api-listen", p.api,
		"--heartbeat-timeout", "500ms", "--election-timeout", "500ms", "--leader-lease-timeout", "500ms", "--quorum-timeout", "1s",
		"--metrics-listen", "127.0.0.1:0"}, args...)
	p.cmd = exec.Command(filepath.Join(bin, "rap-authority"), all...)
	p.out = &syncBuf{}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	require.NoError(t, p.cmd.Start())
	r := &running{proc: p, args: args, done: make(chan struct{})}
	cmd := p.cmd
	go func() { _ = cmd.Wait(); close(r.done) }()
	t.Cleanup(func() {
		select {
		case <-r.done:
		default:
			_ = cmd.Process.Kill()
			<-r.done
		}
		if t.Failed() {
			t.Logf("--- %s output:\n%s", p.id, p.out.String())
		}
	})
	return r
}

func (r *running) exited() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// TestJoinedAuthorityRestartsWithItsJoinFlags: an authority that joined with
// --join/--join-token/--ca-pin is killed (kill -9, then SIGTERM) and restarted
// with the very same command line after its join credential stopped working
// (the owner enrolled TOTP, which disables owner API tokens). It comes back as
// a member through Raft alone, stays up, and never calls the join routes.
func TestJoinedAuthorityRestartsWithItsJoinFlags(t *testing.T) {
	bin := binaries(t)
	dbURL := pgtest.New(t)
	ctx := context.Background()
	ps := make([]*proc, 3)
	for i := range ps {
		ps[i] = &proc{id: fmt.Sprintf("auth-%d", i+1), raft: freePort(t), api: freePort(t), dir: t.TempDir()}
	}
	first := spawn(t, bin, dbURL, ps[0], "--bootstrap")
	var boot struct {
		OwnerToken string `json:"owner_token"`
		CAPin      string `json:"ca_pin"`
	}
	testwait.Until(t, 30*time.Second, "bootstrap output", func() bool {
		sc := bufio.NewScanner(strings.NewReader(first.out.String()))
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "{") && json.Unmarshal(sc.Bytes(), &boot) == nil && boot.OwnerToken != "" {
				return true
			}
		}
		return false
	})
	rs := []*running{first}
	for _, p := range ps[1:] {
		rs = append(rs, spawn(t, bin, dbURL, p, "--join", ps[0].api, "--join-token", boot.OwnerToken, "--ca-pin", boot.CAPin))
	}
	statusOf := func(p *proc) (status, error) {
		c, err := apiclient.New(apiclient.Options{Servers: []string{p.api}, CAPin: boot.CAPin, Timeout: 3 * time.Second, MaxRedirects: -1})
		if err != nil {
			return status{}, err
		}
		defer c.Close()
		var st status
		err = c.Do(ctx, http.MethodGet, "/v1/authority/status", nil, &st, nil)
		return st, err
	}
	allMembers := func(what string) {
		testwait.Until(t, 60*time.Second, what, func() bool {
			for _, r := range rs {
				st, err := statusOf(r.proc)
				if err != nil || len(st.Members) != 3 || st.LeaderID == "" || (st.State != "Follower" && st.State != "Leader") {
					return false
				}
				for _, m := range st.Members {
					if !m.Healthy {
						return false
					}
				}
			}
			return true
		})
	}
	allMembers("three healthy members")

	// The owner enrolls TOTP: from now on the bootstrap owner token (the join
	// credential of auth-2 and auth-3) is refused.
	out, err := exec.Command(filepath.Join(bin, "rap-authority"), "bootstrap-owner", "--database-url", dbURL, "--name", "owner", "--demo-password", "restart test password").CombinedOutput()
	require.NoError(t, err, string(out))
	owner, err := apiclient.New(apiclient.Options{Servers: []string{ps[0].api, ps[1].api, ps[2].api}, Token: boot.OwnerToken, CAPin: boot.CAPin, Timeout: 3 * time.Second})
	require.NoError(t, err)
	defer owner.Close()
	err = owner.Do(ctx, http.MethodGet, "/v1/clusters", nil, nil, nil)
	var ae *apiclient.Error
	require.True(t, errors.As(err, &ae), "the owner token is refused: %v", err)
	require.Equal(t, "unauthenticated", ae.Code)

	conn, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	joinCalls := func() int {
		var n int
		require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM cluster_audit_events
			WHERE action = 'auth.refuse' AND details->>'route' LIKE 'POST /v1/authority/members%'`).Scan(&n))
		return n
	}
	before := joinCalls()

	for i, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGTERM} {
		r := rs[1+i]
		require.NoError(t, r.cmd.Process.Signal(sig))
		select {
		case <-r.done:
		case <-time.After(30 * time.Second):
			t.Fatalf("%s did not exit on %v", r.id, sig)
		}
		// The same command line as before.
		rs[1+i] = spawn(t, bin, dbURL, r.proc, r.args...)
		allMembers(fmt.Sprintf("%s back as a member after %v", r.id, sig))
		// It stays up: a join attempt with the dead credential would have
		// been refused (and audited) within the first seconds, and the old
		// code gave up and exited after 30 of them.
		until := time.Now().Add(5 * time.Second)
		for time.Now().Before(until) {
			require.False(t, rs[1+i].exited(), "%s exited after its restart:\n%s", r.id, r.out.String())
			time.Sleep(100 * time.Millisecond)
		}
		require.NotContains(t, r.out.String(), "join:", "a restarted member never runs the join")
		require.Equal(t, before, joinCalls(), "a restarted member never calls the join routes")
		st, err := statusOf(r.proc)
		require.NoError(t, err)
		require.Len(t, st.Members, 3)
	}
}
