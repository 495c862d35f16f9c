package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/authority"
	"github.com/rap-fabric/core/daemon"
	"github.com/rap-fabric/core/internal/authtest"
	"github.com/rap-fabric/core/store"
)

// auditTamper runs SQL against cluster_audit_events with the append-only
// triggers disabled: what someone with PostgreSQL superuser access can do.
func auditTamper(t *testing.T, ctx context.Context, conn *pgx.Conn, sql string, args ...any) {
	t.Helper()
	tx, err := conn.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx) //nolint:errcheck // after Commit it is a no-op
	_, err = tx.Exec(ctx, `ALTER TABLE cluster_audit_events DISABLE TRIGGER USER`)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, sql, args...)
	require.NoError(t, err, sql)
	_, err = tx.Exec(ctx, `ALTER TABLE cluster_audit_events ENABLE TRIGGER USER`)
	require.NoError(t, err)
	require.NoError(t, tx.Commit(ctx))
}

// waitChained waits until the chainer (every authority runs one; one at a
// time holds its lock) has linked every committed audit event.
func waitChained(t *testing.T, g *authtest.Group, d *daemon.Daemon) {
	t.Helper()
	g.Eventually(10*time.Second, "every audit event chained", func() bool {
		n, err := store.UnchainedAudit(context.Background(), d.DB.Pool)
		return err == nil && n == 0
	})
}

// Every column of an audit row is in its hash, and the chain is anchored in
// Raft: editing any column of a middle or of the newest row, swapping two
// rows, deleting the newest rows and moving the head back, and replacing them
// with new rows are each reported by `rap-authority audit verify` (checked
// against the latest Raft checkpoint read from the API) naming the first bad
// event; the leader refuses to checkpoint over a truncated chain.
func TestAuditAnchorDetectsEveryEditDeletionAndTruncation(t *testing.T) {
	bin := binaries(t)
	g := authtest.NewWithConfig(t, 1, func(_ int, c *daemon.Config) {
		// Only explicit checkpoints, so the test decides when the anchor moves.
		c.Audit = authority.AuditConfig{CheckpointEvery: 1 << 30, CheckpointInterval: 24 * time.Hour}
	})
	d := g.Leader(15 * time.Second)
	ctx := context.Background()
	c := g.Client(d)
	_, err := authtest.CreateCluster(ctx, c, "audit-anchor") // a fenced event: cluster_id and fence_epoch set
	require.NoError(t, err)
	for i := 0; i < 8; i++ {
		require.NoError(t, d.Auth.AuditRisk(ctx, authority.Op{Action: "test.event", Actor: authority.Actor{ID: "tester", Kind: "user", SourceAddr: "127.0.0.1"},
			TargetKind: "thing", TargetID: fmt.Sprint(i), Details: map[string]any{"n": i}}, "ok", map[string]string{"device": "unknown"}))
	}
	waitChained(t, g, d)

	rapctl := func(args ...string) (string, error) {
		cmd := exec.Command(filepath.Join(bin, "rapctl"), append([]string{"--server", d.APIAddr(), "--token", g.Token, "--ca-pin", g.Pin}, args...)...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := rapctl("-o", "json", "audit", "checkpoint")
	require.NoError(t, err, out)
	var cp authority.AuditAnchor
	require.NoError(t, json.Unmarshal([]byte(out), &cp), out)
	require.Positive(t, cp.Seq)
	raftCP, ok := d.FSM.AuditCheckpoint()
	require.True(t, ok, "the checkpoint is in the Raft state machine")
	require.Equal(t, cp.Seq, raftCP.Seq)
	require.Equal(t, cp.Hash[:], raftCP.Hash)
	out, err = rapctl("-o", "json", "audit", "checkpoint", "show")
	require.NoError(t, err, out)
	require.Contains(t, out, cp.Hash.String())

	verify := func() (string, int) {
		cmd := exec.Command(filepath.Join(bin, "rap-authority"), "audit", "verify", "--database-url", g.DBURL,
			"--server", d.APIAddr(), "--token", g.Token, "--ca-pin", g.Pin)
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else {
			require.NoError(t, err, string(out))
		}
		return string(out), code
	}
	requireIntact := func(what string) {
		t.Helper()
		out, code := verify()
		require.Equal(t, 0, code, "%s: %s", what, out)
		require.Contains(t, out, "intact", what)
	}
	requireBroken := func(what string, seq, id int64) string {
		t.Helper()
		out, code := verify()
		require.Equal(t, 3, code, "%s: %s", what, out)
		if id != 0 {
			require.Contains(t, out, fmt.Sprintf("first bad event id %d seq %d ", id, seq), what)
		} else {
			require.Contains(t, out, fmt.Sprintf("first bad event seq %d ", seq), what)
		}
		return out
	}
	requireIntact("untouched")

	conn, err := pgx.Connect(ctx, g.DBURL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	idAt := func(seq int64) int64 {
		var id int64
		require.NoError(t, conn.QueryRow(ctx, `SELECT id FROM cluster_audit_events WHERE seq = $1`, seq).Scan(&id))
		return id
	}
	newest := cp.Seq
	middle := newest / 2
	require.Greater(t, middle, int64(1))

	// Each column, edited in the middle row and in the newest row (the
	// checkpoint's own row), is named; restoring the row restores the chain.
	edits := []struct{ column, set string }{
		{"id", "id = id + 1000000"},
		{"seq", "seq = seq + 1000000"},
		{"at", "at = at + interval '1 second'"},
		{"cluster_id", "cluster_id = gen_random_uuid()"},
		{"organization_id", "organization_id = gen_random_uuid()"},
		{"actor", "actor = 'mallory'"},
		{"actor_kind", "actor_kind = CASE WHEN actor_kind = 'system' THEN 'user' ELSE 'system' END"},
		{"device", "device = device || '-x'"},
		{"source_addr", "source_addr = '203.0.113.9'"},
		{"action", "action = 'test.tampered'"},
		{"target_kind", "target_kind = target_kind || '-x'"},
		{"target_id", "target_id = target_id || '-x'"},
		{"outcome", "outcome = CASE WHEN outcome = 'ok' THEN 'denied' ELSE 'ok' END"},
		{"risk", `risk = risk || '{"tampered": 1}'`},
		{"details", `details = details || '{"tampered": true}'`},
		{"fence_epoch", "fence_epoch = coalesce(fence_epoch, 0) + 7"},
		{"prev_hash", "prev_hash = sha256(prev_hash)"},
		{"hash", "hash = sha256(hash)"},
	}
	for _, row := range []struct {
		name string
		seq  int64
	}{{"middle", middle}, {"newest", newest}} {
		id := idAt(row.seq)
		_, err = conn.Exec(ctx, `CREATE TEMP TABLE orig AS SELECT * FROM cluster_audit_events WHERE id = $1`, id)
		require.NoError(t, err)
		for _, e := range edits {
			what := row.name + " row, column " + e.column
			auditTamper(t, ctx, conn, `UPDATE cluster_audit_events SET `+e.set+` WHERE id = $1`, id)
			switch e.column {
			case "id":
				requireBroken(what, row.seq, id+1000000)
			case "seq":
				requireBroken(what, row.seq, 0) // the seq is missing from its place
			default:
				requireBroken(what, row.seq, id)
			}
			editedID := id
			if e.column == "id" {
				editedID = id + 1000000
			}
			auditTamper(t, ctx, conn, `UPDATE cluster_audit_events e SET (id, seq, at, cluster_id, organization_id, actor, actor_kind, device,
				source_addr, action, target_kind, target_id, outcome, risk, details, fence_epoch, prev_hash, hash) =
				(o.id, o.seq, o.at, o.cluster_id, o.organization_id, o.actor, o.actor_kind, o.device, o.source_addr, o.action,
				 o.target_kind, o.target_id, o.outcome, o.risk, o.details, o.fence_epoch, o.prev_hash, o.hash)
				FROM orig o WHERE e.id = $1`, editedID)
			requireIntact(what + " restored")
		}
		_, err = conn.Exec(ctx, `DROP TABLE orig`)
		require.NoError(t, err)
	}

	// Swap two rows' places in the chain: the first displaced position is named.
	a, b := middle-1, middle+1
	swap := fmt.Sprintf(`UPDATE cluster_audit_events SET seq = -1 WHERE seq = %[1]d; UPDATE cluster_audit_events SET seq = %[1]d WHERE seq = %[2]d;
		UPDATE cluster_audit_events SET seq = %[2]d WHERE seq = -1`, a, b)
	idB := idAt(b)
	auditTamper(t, ctx, conn, swap)
	requireBroken("swapped rows", a, idB) // row b now sits at seq a: it does not link to seq a-1
	auditTamper(t, ctx, conn, swap)
	requireIntact("swap undone")

	// Delete the newest K rows and move the chain head back: the first deleted
	// seq is named (the Raft checkpoint still says newest).
	const k = 3
	cut := newest - k
	// One transaction, so the chainer never sees the rows gone and the head not moved yet.
	auditTamper(t, ctx, conn, fmt.Sprintf(`DELETE FROM cluster_audit_events WHERE seq > %[1]d;
		UPDATE audit_chain_head SET seq = %[1]d, hash = (SELECT hash FROM cluster_audit_events WHERE seq = %[1]d),
		max_id = (SELECT max(id) FROM cluster_audit_events WHERE seq IS NOT NULL)`, cut))
	// Usually nothing else was chained since (truncated); an event the
	// authority audited meanwhile is chained onto the rewound head (replaced).
	out, code := verify()
	require.Equal(t, 3, code, out)
	require.Regexp(t, fmt.Sprintf(`first bad event (id \d+ )?seq %d \((truncated|replaced)\)`, cut+1), out)
	// Its links are intact: reported as a truncation behind the checkpoint
	// (what a restore leaves), with the re-anchor procedure.
	require.Contains(t, out, fmt.Sprintf("audit chain TRUNCATED behind the checkpoint (seq %d ", cp.Seq))
	require.Contains(t, out, fmt.Sprintf("%d event(s) anchored by the checkpoint are missing (seq %d..%d)", k, cut+1, cp.Seq))
	require.Contains(t, out, "rapctl audit reanchor")

	// The leader refuses to anchor the truncated chain: the old checkpoint
	// stays, so the evidence survives.
	out, err = rapctl("audit", "checkpoint")
	require.Error(t, err, out)
	require.Contains(t, out, "conflict")
	after, _ := d.FSM.AuditCheckpoint()
	require.Equal(t, cp.Seq, after.Seq)

	// New events chained onto the rewound head take the deleted seqs: the first
	// of them is named as inserted after the checkpoint.
	for i := 0; i < k+1; i++ {
		require.NoError(t, d.Auth.Audit(ctx, authority.Op{Action: "test.after", Actor: authority.Actor{ID: "tester", Kind: "user"}}, "ok"))
	}
	waitChained(t, g, d)
	out = requireBroken("deleted rows replaced by new ones", cut+1, idAt(cut+1))
	require.Contains(t, out, "replaced")
	require.Contains(t, out, "TRUNCATED behind the checkpoint")
	t.Logf("verify after replacing the newest rows: %s", strings.TrimSpace(out))
}

// rapctl audit export writes every chained event once, in chain order, as
// JSON lines; with --file it appends and resumes after the last line.
func TestRapctlAuditExport(t *testing.T) {
	bin := binaries(t)
	g := authtest.New(t, 1)
	d := g.Leader(15 * time.Second)
	ctx := context.Background()
	for i := 0; i < 5; i++ {
		require.NoError(t, d.Auth.Audit(ctx, authority.Op{Action: "test.export", Actor: authority.Actor{ID: "tester", Kind: "user"}, Details: map[string]any{"n": i}}, "ok"))
	}
	waitChained(t, g, d)
	file := filepath.Join(t.TempDir(), "audit.jsonl")
	export := func(args ...string) string {
		cmd := exec.Command(filepath.Join(bin, "rapctl"), append([]string{"--server", d.APIAddr(), "--token", g.Token, "--ca-pin", g.Pin, "audit", "export"}, args...)...)
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, string(out))
		return string(out)
	}
	lines := func(s string) []map[string]any {
		var out []map[string]any
		for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
			if l == "" {
				continue
			}
			var m map[string]any
			require.NoError(t, json.Unmarshal([]byte(l), &m), l)
			out = append(out, m)
		}
		return out
	}
	var head int64
	require.NoError(t, d.DB.Pool.QueryRow(ctx, `SELECT seq FROM audit_chain_head`).Scan(&head))
	all := lines(export("--page", "2")) // several pages
	require.Len(t, all, int(head))
	for i, e := range all {
		require.EqualValues(t, i+1, e["seq"], "chain order without gaps")
		require.Len(t, e["hash"], 64)
		for _, col := range []string{"id", "at", "cluster_id", "organization_id", "actor", "actor_kind", "device", "source_addr", "action",
			"target_kind", "target_id", "outcome", "risk", "details", "fence_epoch", "prev_hash"} {
			require.Contains(t, e, col)
		}
	}

	export("--file", file)
	for i := 0; i < 3; i++ {
		require.NoError(t, d.Auth.Audit(ctx, authority.Op{Action: "test.export2", Actor: authority.Actor{ID: "tester", Kind: "user"}}, "ok"))
	}
	waitChained(t, g, d)
	export("--file", file) // resumes after the last exported seq
	data, err := os.ReadFile(file)
	require.NoError(t, err)
	got := lines(string(data))
	require.Len(t, got, int(head)+3)
	for i, e := range got {
		require.EqualValues(t, i+1, e["seq"], "appended once, in order")
	}

	// --follow streams events chained after it started.
	cmd := exec.Command(filepath.Join(bin, "rapctl"), "--server", d.APIAddr(), "--token", g.Token, "--ca-pin", g.Pin,
		"audit", "export", "--follow", "--interval", "100ms", "--after-seq", fmt.Sprint(head+3))
	var buf syncBuf
	cmd.Stdout = &buf
	require.NoError(t, cmd.Start())
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	require.NoError(t, d.Auth.Audit(ctx, authority.Op{Action: "test.follow", Actor: authority.Actor{ID: "tester", Kind: "user"}}, "ok"))
	g.Eventually(10*time.Second, "the followed event is exported", func() bool { return strings.Contains(buf.String(), `"action":"test.follow"`) })
	require.Len(t, lines(buf.String()), 1)
}

// The leader checkpoints on its own: after CheckpointEvery events, and when
// the chain moved and the last checkpoint is older than CheckpointInterval;
// every authority of the group holds the same checkpoint.
func TestAuditCheckpointsTakenByTheLeader(t *testing.T) {
	g := authtest.NewWithConfig(t, 3, func(_ int, c *daemon.Config) {
		c.Audit = authority.AuditConfig{CheckpointEvery: 5, CheckpointInterval: 24 * time.Hour}
	})
	d := g.Leader(15 * time.Second)
	ctx := context.Background()
	var head int64
	headSeq := func() int64 {
		require.NoError(t, d.DB.Pool.QueryRow(ctx, `SELECT seq FROM audit_chain_head`).Scan(&head))
		return head
	}
	// The first checkpoint anchors whatever the chain holds at once.
	g.Eventually(10*time.Second, "a first checkpoint", func() bool { _, ok := d.FSM.AuditCheckpoint(); return ok })
	first, _ := d.FSM.AuditCheckpoint()
	for i := 0; i < 12; i++ {
		require.NoError(t, d.Auth.Audit(ctx, authority.Op{Action: "test.count", Actor: authority.Actor{ID: "tester", Kind: "user"}}, "ok"))
	}
	waitChained(t, g, d)
	g.Eventually(10*time.Second, "checkpoints by count keep up with the chain", func() bool {
		cp, ok := d.FSM.AuditCheckpoint()
		return ok && cp.Seq > first.Seq && headSeq()-cp.Seq < 5 && cp.Actor == "system"
	})
	cp, _ := d.FSM.AuditCheckpoint()
	g.Eventually(10*time.Second, "every authority applied it", func() bool {
		for _, x := range g.DS {
			c, ok := x.FSM.AuditCheckpoint()
			if !ok || c.Seq < cp.Seq {
				return false
			}
		}
		return true
	})

	// A short interval anchors even a single new event.
	g2 := authtest.NewWithConfig(t, 1, func(_ int, c *daemon.Config) {
		c.Audit = authority.AuditConfig{CheckpointEvery: 1 << 30, CheckpointInterval: 300 * time.Millisecond}
	})
	d2 := g2.Leader(15 * time.Second)
	require.NoError(t, d2.Auth.Audit(ctx, authority.Op{Action: "test.one", Actor: authority.Actor{ID: "tester", Kind: "user"}}, "ok"))
	g2.Eventually(10*time.Second, "a checkpoint by time reaches the head", func() bool {
		var seq int64
		require.NoError(t, d2.DB.Pool.QueryRow(ctx, `SELECT seq FROM audit_chain_head`).Scan(&seq))
		cp, ok := d2.FSM.AuditCheckpoint()
		return ok && cp.Seq == seq && seq > 0
	})
}
