package integration

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/apiclient"
	"github.com/rap-fabric/core/authority"
	"github.com/rap-fabric/core/internal/pgtest"
	"github.com/rap-fabric/core/internal/testwait"
)

// operationsBlocks returns the ```sh blocks of docs/operations.md, in order.
func operationsBlocks(t *testing.T) []string {
	data, err := os.ReadFile("../docs/operations.md")
	require.NoError(t, err)
	var blocks []string
	var cur []string
	in := false
	for _, line := range strings.Split(string(data), "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case !in && trimmed == "```sh":
			in, cur = true, nil
		case in && trimmed == "```":
			in = false
			blocks = append(blocks, strings.Join(cur, "\n"))
		case in:
			cur = append(cur, trimmed)
		}
	}
	return blocks
}

// docBlock is the sh block of docs/operations.md that contains marker.
func docBlock(t *testing.T, marker string) string {
	for _, b := range operationsBlocks(t) {
		if strings.Contains(b, marker) {
			return b
		}
	}
	t.Fatalf("docs/operations.md has no sh block with %q", marker)
	return ""
}

// TestBackupAndRestore runs the backup and restore blocks of
// docs/operations.md verbatim (bash, with the PostgreSQL 15 client tools and
// the built binaries on PATH) against a live fabric: three rap-authority
// processes and an enrolled rap-node-agent heartbeating. After the dump a
// cluster is created that the dump does not hold. The dump is restored into
// an empty database and verified against the recorded audit anchor; the
// authorities are restarted onto it followers first, leader last. Then: all
// three come back healthy with one leader, a fenced write succeeds (the new
// leader claimed the restored fence), the cluster made before the dump is
// there and the one made after it is not, the agent keeps its node id and its
// heartbeats arrive in the restored database. Audit checkpoints are taken
// every second, so one taken after the dump lies beyond the restored chain:
// the leader refuses to checkpoint (chain_behind), `rap-authority audit
// verify` against the group's Raft checkpoint reports the truncation (exit
// 3), the re-anchor block of docs/operations.md runs as written (rapctl audit
// reanchor, then verify passes and lists it), and periodic checkpoints
// resume after it.
func TestBackupAndRestore(t *testing.T) {
	bin := binaries(t)
	dbURL := pgtest.New(t)
	ctx := context.Background()
	ps := make([]*proc, 3)
	for i := range ps {
		ps[i] = &proc{id: fmt.Sprintf("auth-%d", i+1), raft: freePort(t), api: freePort(t), dir: t.TempDir()}
	}
	// Periodic audit checkpoints every second: one taken after the dump lies
	// beyond the restored chain.
	quiet := []string{"--audit-checkpoint-interval", "1s"}
	rs := []*running{spawn(t, bin, dbURL, ps[0], append([]string{"--bootstrap"}, quiet...)...)}
	token, pin := bootOutput(t, ps[0])
	for _, p := range ps[1:] {
		rs = append(rs, spawn(t, bin, dbURL, p, append([]string{"--join", ps[0].api, "--join-token", token, "--ca-pin", pin}, quiet...)...))
	}
	var addrs []string
	for _, p := range ps {
		addrs = append(addrs, p.api)
	}
	owner, err := apiclient.New(apiclient.Options{Servers: addrs, Token: token, CAPin: pin, Timeout: 3 * time.Second})
	require.NoError(t, err)
	defer owner.Close()
	settled := func(what string) string {
		var leader string
		testwait.Until(t, 90*time.Second, what, func() bool {
			leaders := map[string]bool{}
			for _, p := range ps {
				c, err := apiclient.New(apiclient.Options{Servers: []string{p.api}, CAPin: pin, Timeout: 2 * time.Second, MaxRedirects: -1})
				if err != nil {
					return false
				}
				var st versionedStatus
				err = c.Do(ctx, http.MethodGet, "/v1/authority/status", nil, &st, nil)
				c.Close()
				if err != nil || st.LeaderID == "" || len(st.Members) != 3 {
					return false
				}
				for _, m := range st.Members {
					if !m.Healthy {
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
	leader := settled("three healthy members")

	east, jt := mkClusterTokenN(t, owner, "east", 1)
	ag := &agentProc{t: t, bin: bin, state: filepath.Join(t.TempDir(), "state.db")}
	nodeID := enrollAgent(t, ag, owner, addrs, "east", jt, east.pin, "edge-1")
	ag.start()
	heartbeatAfter := func(what string, since time.Time) {
		testwait.Until(t, 60*time.Second, what, func() bool {
			h, ok := latest(owner, nodeID)[east.id]
			return ok && h.ReceivedAt.After(since)
		})
	}
	heartbeatAfter("the agent heartbeats", time.Now())

	// The backup, as docs/operations.md writes it.
	backupDir := t.TempDir()
	env := append(os.Environ(),
		"PATH="+bin+":/usr/lib/postgresql/15/bin:"+os.Getenv("PATH"),
		"RAPCTL_CONFIG="+filepath.Join(t.TempDir(), "none.json"),
		"RAPCTL_SERVERS="+strings.Join(addrs, ","), "RAPCTL_TOKEN="+token, "RAPCTL_CA_PIN="+pin,
		"DATABASE_URL="+dbURL, "BACKUP_DIR="+backupDir)
	runBlock := func(block string, env []string) string {
		cmd := exec.Command("bash", "-euo", "pipefail", "-c", block)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s\n%s", block, out)
		return string(out)
	}
	runBlock(docBlock(t, "pg_dump"), env)
	anchor, err := os.ReadFile(filepath.Join(backupDir, "audit-checkpoint"))
	require.NoError(t, err)
	require.Regexp(t, `^\d+:[0-9a-f]+:\d+:\d+\n$`, string(anchor))

	// Written after the dump: gone after the restore. A periodic checkpoint
	// anchors it in Raft.
	_, _ = mkClusterTokenN(t, owner, "after-dump", 1)
	var dumpSeq int64
	_, err = fmt.Sscanf(string(anchor), "%d:", &dumpSeq)
	require.NoError(t, err)
	live, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	defer live.Close(ctx)
	var afterDump authority.AuditAnchor
	testwait.Until(t, 60*time.Second, "a periodic audit checkpoint over the events written after the dump", func() bool {
		var unchained, head int64
		if live.QueryRow(ctx, `SELECT (SELECT count(*) FROM cluster_audit_events WHERE seq IS NULL), (SELECT seq FROM audit_chain_head)`).Scan(&unchained, &head) != nil {
			return false
		}
		return unchained == 0 && head > dumpSeq+1 &&
			owner.Do(ctx, http.MethodGet, "/v1/audit/checkpoint", nil, &afterDump, nil) == nil && afterDump.Seq >= head
	})

	// The restore, as written.
	restored := pgtest.Empty(t)
	out := runBlock(docBlock(t, "pg_restore"), append(env, "RESTORED_URL="+restored))
	require.Contains(t, out, "audit chain intact")

	// Every authority onto the restored database, followers first.
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
	restartedAt := time.Now()
	for _, i := range order {
		r := rs[i]
		require.NoError(t, r.cmd.Process.Signal(syscall.SIGTERM))
		select {
		case <-r.done:
		case <-time.After(30 * time.Second):
			t.Fatalf("%s did not stop on SIGTERM", r.id)
		}
		rs[i] = spawn(t, bin, restored, ps[i], quiet...)
		settled(ps[i].id + " back on the restored database")
	}
	testwait.Until(t, 60*time.Second, "a fenced write on the restored database", func() bool {
		return owner.Do(ctx, http.MethodPost, "/v1/clusters", map[string]any{"name": "After Restore", "slug": "after-restore"}, nil, nil) == nil
	})
	var list struct {
		Items []struct {
			Slug string `json:"slug"`
		} `json:"items"`
	}
	require.NoError(t, owner.Do(ctx, http.MethodGet, "/v1/clusters", nil, &list, nil))
	var slugs []string
	for _, c := range list.Items {
		slugs = append(slugs, c.Slug)
	}
	require.ElementsMatch(t, []string{"east", "after-restore"}, slugs, "the dump's clusters and the new one; not the one made after the dump")
	heartbeatAfter("the agent, same node id, heartbeats into the restored database", restartedAt)
	require.Nil(t, ag.cmd.ProcessState, "the agent kept running")

	// The checkpoint taken after the dump is beyond the restored chain: the
	// leader refuses to checkpoint it (and says so), verify reports a
	// truncation behind it.
	testwait.Until(t, 60*time.Second, "the leader refuses to checkpoint the restored chain", func() bool {
		for _, p := range ps {
			c, err := apiclient.New(apiclient.Options{Servers: []string{p.api}, Token: token, CAPin: pin, Timeout: 2 * time.Second, MaxRedirects: -1})
			if err != nil {
				return false
			}
			var an authority.AuditAnchor
			err = c.Do(ctx, http.MethodGet, "/v1/audit/checkpoint", nil, &an, nil)
			c.Close()
			if err == nil && an.ChainBehind != nil && an.ChainBehind.CheckpointSeq == an.Seq && an.Seq >= afterDump.Seq {
				afterDump = an // the checkpoint the restored chain is behind
				return true
			}
		}
		return false
	})
	verify := func() (string, int) {
		o, err := exec.Command(filepath.Join(bin, "rap-authority"), "audit", "verify", "--database-url", restored,
			"--server", strings.Join(addrs, ","), "--token", token, "--ca-pin", pin).CombinedOutput()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return string(o), ee.ExitCode()
		}
		require.NoError(t, err, string(o))
		return string(o), 0
	}
	o, code := verify()
	require.Equal(t, 3, code, o)
	require.Contains(t, o, fmt.Sprintf("audit chain TRUNCATED behind the checkpoint (seq %d ", afterDump.Seq))
	require.Regexp(t, `\d+ event\(s\) anchored by the checkpoint are missing \(seq \d+\.\.`+fmt.Sprint(afterDump.Seq)+`\)`, o)
	require.Contains(t, o, "rapctl audit reanchor")

	// The re-anchor, as written, then verify passes and lists it.
	out = runBlock(docBlock(t, "rapctl audit reanchor"), append(env, "RESTORED_URL="+restored))
	require.Contains(t, out, fmt.Sprintf("superseded checkpoint seq %d ", afterDump.Seq))
	require.Contains(t, out, "reason: \"PostgreSQL restored from "+backupDir+"/rap.dump\"")
	require.Contains(t, out, "audit chain intact")
	var now authority.AuditAnchor
	testwait.Until(t, 30*time.Second, "the re-anchor applied where the owner client reads", func() bool {
		return owner.Do(ctx, http.MethodGet, "/v1/audit/checkpoint", nil, &now, nil) == nil && len(now.Reanchors) == 1
	})
	require.Equal(t, afterDump.Seq, now.Reanchors[0].SupersededSeq)
	require.Equal(t, afterDump.Index, now.Reanchors[0].SupersededIndex)

	// Periodic checkpoints resume past the re-anchor.
	re := now.Reanchors[0]
	require.NoError(t, owner.Do(ctx, http.MethodPost, "/v1/clusters", map[string]any{"name": "After Reanchor", "slug": "after-reanchor"}, nil, nil))
	testwait.Until(t, 60*time.Second, "a periodic checkpoint after the re-anchor", func() bool {
		var an authority.AuditAnchor
		return owner.Do(ctx, http.MethodGet, "/v1/audit/checkpoint", nil, &an, nil) == nil && an.Seq > re.Seq && an.Actor == "system" &&
			len(an.Reanchors) == 1 && an.ChainBehind == nil
	})
	o, code = verify()
	require.Equal(t, 0, code, o)
	require.Contains(t, o, "audit chain intact")
	require.Contains(t, o, fmt.Sprintf("re-anchored at raft index %d ", re.Index))
}
