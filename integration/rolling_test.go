package integration

import (
	"context"
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
	"github.com/rap-fabric/core/internal/testwait"
)

// versionedStatus is GET /v1/authority/status with the versions.
type versionedStatus struct {
	NodeID   string `json:"node_id"`
	Version  string `json:"version"`
	LeaderID string `json:"leader_id"`
	Quorum   bool   `json:"quorum"`
	Members  []struct {
		ID      string `json:"id"`
		Healthy bool   `json:"healthy"`
		Version string `json:"version"`
	} `json:"members"`
}

// enrollAgent runs `rap-node-agent enroll` against addrs, approves the
// pending request as the owner and returns the node id.
func enrollAgent(t *testing.T, a *agentProc, owner *apiclient.Client, addrs []string, slug, token, pin, name string) string {
	ctx := context.Background()
	mid := filepath.Join(t.TempDir(), "machine-id")
	require.NoError(t, os.WriteFile(mid, []byte(fmt.Sprintf("%032x\n", len(name)*7919+int(name[len(name)-1]))), 0o644))
	cmd := exec.Command(filepath.Join(a.bin, "rap-node-agent"), a.args("enroll", "--authority", strings.Join(addrs, ","), "--token", token, "--ca-pin", pin,
		"--name", name, "--machine-id-file", mid, "--poll-interval", "200ms")...)
	out := &syncBuf{}
	cmd.Stdout, cmd.Stderr = out, out
	require.NoError(t, cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
		}
	}()
	var reqID string
	testwait.Until(t, 30*time.Second, "a pending join request of "+name, func() bool {
		var l struct {
			Items []struct {
				ID   string `json:"id"`
				Name string `json:"requested_name"`
			} `json:"items"`
		}
		if owner.Do(ctx, http.MethodGet, "/v1/join-requests?cluster="+slug+"&status=pending", nil, &l, nil) != nil || len(l.Items) != 1 {
			return false
		}
		reqID = l.Items[0].ID
		return true
	})
	var ap struct {
		NodeID string `json:"node_id"`
	}
	require.NoError(t, owner.Do(ctx, http.MethodPost, "/v1/join-requests/"+reqID+"/approve", nil, &ap, nil))
	select {
	case err := <-done:
		require.NoError(t, err, out.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("enroll of %s did not finish:\n%s", name, out.String())
	}
	return ap.NodeID
}

// TestRollingUpgradeAndRollback: three rap-authority processes and two
// rap-node-agent processes, all built at version A. The authorities are
// replaced one at a time (followers first, the leader last) by the same
// binary built at version B, then rolled back to A the same way. Throughout,
// a prober makes a fenced write (a join token) every 300 ms through a client
// that knows all three authorities: the longest stretch between two
// successful writes stays under 20 s; after each replacement the replaced authority reports its new
// version in GET /v1/authority/status, every authority lists every member's
// version as expected (a mixed group mid-round), all members are healthy,
// a fenced write succeeds, and both agents' heartbeats arrive after it
// (the agents never restart and keep their node ids).
func TestRollingUpgradeAndRollback(t *testing.T) {
	binA := buildAt(t, "A-1.0.0", "")
	binB := buildAt(t, "B-1.1.0", "")
	dbURL := pgtest.New(t)
	ctx := context.Background()
	ps := make([]*proc, 3)
	for i := range ps {
		ps[i] = &proc{id: fmt.Sprintf("auth-%d", i+1), raft: freePort(t), api: freePort(t), dir: t.TempDir()}
	}
	rs := []*running{spawn(t, binA, dbURL, ps[0], "--bootstrap")}
	token, pin := bootOutput(t, ps[0])
	for _, p := range ps[1:] {
		rs = append(rs, spawn(t, binA, dbURL, p, "--join", ps[0].api, "--join-token", token, "--ca-pin", pin))
	}
	var addrs []string
	for _, p := range ps {
		addrs = append(addrs, p.api)
	}
	statusOf := func(p *proc) (versionedStatus, error) {
		c, err := apiclient.New(apiclient.Options{Servers: []string{p.api}, CAPin: pin, Timeout: 2 * time.Second, MaxRedirects: -1})
		if err != nil {
			return versionedStatus{}, err
		}
		defer c.Close()
		var st versionedStatus
		err = c.Do(ctx, http.MethodGet, "/v1/authority/status", nil, &st, nil)
		return st, err
	}
	want := map[string]string{"auth-1": "A-1.0.0", "auth-2": "A-1.0.0", "auth-3": "A-1.0.0"}
	settled := func(what string) string {
		var leader string
		testwait.Until(t, 90*time.Second, what, func() bool {
			leaders := map[string]bool{}
			for _, p := range ps {
				st, err := statusOf(p)
				if err != nil || st.Version != want[p.id] || st.LeaderID == "" || len(st.Members) != 3 {
					return false
				}
				for _, m := range st.Members {
					if !m.Healthy || m.Version != want[m.ID] {
						return false
					}
				}
				leaders[st.LeaderID] = true
				leader = st.LeaderID
			}
			return len(leaders) == 1
		})
		return leader
	}
	leader := settled("three healthy members at version A")

	owner, err := apiclient.New(apiclient.Options{Servers: addrs, Token: token, CAPin: pin, Timeout: 3 * time.Second})
	require.NoError(t, err)
	defer owner.Close()
	fleet, jt := mkClusterTokenN(t, owner, "fleet", 2)
	nodes := map[string]*agentProc{}
	for _, name := range []string{"edge-1", "edge-2"} {
		a := &agentProc{t: t, bin: binA, state: filepath.Join(t.TempDir(), "state.db")}
		id := enrollAgent(t, a, owner, addrs, "fleet", jt, fleet.pin, name)
		a.start()
		nodes[id] = a
	}
	heartbeatAfter := func(what string, since time.Time) {
		testwait.Until(t, 60*time.Second, what, func() bool {
			for id := range nodes {
				h, ok := latest(owner, id)[fleet.id]
				if !ok || !h.ReceivedAt.After(since) || h.AgentVer != "A-1.0.0" {
					return false
				}
			}
			return true
		})
	}
	heartbeatAfter("both agents heartbeat at version A", time.Now())

	// The prober: a fenced write (a join token, through the owner client,
	// which follows not_leader) every 300 ms; the longest stretch between two
	// successful writes is the time the group had no leader answering.
	var mu sync.Mutex
	var longest time.Duration
	var writes, failed int
	lastOK := time.Now()
	stop := make(chan struct{})
	probed := make(chan struct{})
	go func() {
		defer close(probed)
		pc, err := apiclient.New(apiclient.Options{Servers: addrs, Token: token, CAPin: pin, Timeout: 2 * time.Second})
		if err != nil {
			return
		}
		defer pc.Close()
		for {
			select {
			case <-stop:
				return
			case <-time.After(300 * time.Millisecond):
			}
			err := pc.Do(ctx, http.MethodPost, "/v1/join-tokens", map[string]any{"cluster": "fleet", "max_uses": 1, "description": "probe"}, nil, nil)
			mu.Lock()
			if err == nil {
				writes++
				if gap := time.Since(lastOK); gap > longest {
					longest = gap
				}
				lastOK = time.Now()
			} else {
				failed++
			}
			mu.Unlock()
		}
	}()

	for _, round := range []struct{ version, bin string }{{"B-1.1.0", binB}, {"A-1.0.0", binA}} {
		// Followers first, the leader last.
		var order []int
		li := 0
		for i, p := range ps {
			if p.id == leader {
				li = i
				continue
			}
			order = append(order, i)
		}
		order = append(order, li)
		for _, i := range order {
			r := rs[i]
			require.NoError(t, r.cmd.Process.Signal(syscall.SIGTERM))
			select {
			case <-r.done:
			case <-time.After(30 * time.Second):
				t.Fatalf("%s did not stop on SIGTERM", r.id)
			}
			rs[i] = spawn(t, round.bin, dbURL, ps[i])
			want[ps[i].id] = round.version
			leader = settled(fmt.Sprintf("%s back at %s, every member's version as expected", ps[i].id, round.version))
			back := time.Now()
			var tok map[string]any
			testwait.Until(t, 30*time.Second, "a fenced write after "+ps[i].id+" moved to "+round.version, func() bool {
				return owner.Do(ctx, http.MethodPost, "/v1/join-tokens", map[string]any{"cluster": "fleet", "max_uses": 1, "description": "rolling"}, &tok, nil) == nil
			})
			heartbeatAfter("both agents heartbeat after "+ps[i].id+" moved to "+round.version, back)
			for id, a := range nodes {
				require.Nil(t, a.cmd.ProcessState, "agent %s kept running", id)
			}
		}
	}
	close(stop)
	<-probed
	mu.Lock()
	gap, ok, bad := longest, writes, failed
	mu.Unlock()
	t.Logf("probe writes during both rounds: %d succeeded, %d failed; longest stretch between two successful writes: %v", ok, bad, gap)
	require.NotZero(t, ok)
	require.Less(t, gap, 20*time.Second)
	for id := range nodes {
		var n struct {
			ID string `json:"id"`
		}
		require.NoError(t, owner.Do(ctx, http.MethodGet, "/v1/nodes/"+id, nil, &n, nil))
		require.Equal(t, id, n.ID, "the agent kept its identity")
	}
}
