package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/apiclient"
	"github.com/rap-fabric/core/authority"
	"github.com/rap-fabric/core/daemon"
	"github.com/rap-fabric/core/internal/authtest"
	"github.com/rap-fabric/core/store"
)

// After the newest audit rows are lost behind the latest Raft checkpoint (as
// a PostgreSQL restore from an older backup leaves them), the leader's
// periodic checkpointer refuses to checkpoint and says so (status, metric)
// instead of overwriting or sticking; `rap-authority audit verify` reports a
// truncation; a re-anchor is refused without a reason, when a link is broken
// (tampering must not be hidden) and when there is nothing to re-anchor;
// `rapctl audit reanchor --reason` commits a checkpoint at the chain head
// through Raft, naming the superseded checkpoint and the reason (in Raft and
// as an audit.reanchor event); verify then passes and lists the re-anchor, and
// periodic checkpoints resume and keep the re-anchor history.
func TestAuditReanchorAfterTruncation(t *testing.T) {
	bin := binaries(t)
	g := authtest.NewWithConfig(t, 1, func(_ int, c *daemon.Config) {
		c.Audit = authority.AuditConfig{CheckpointEvery: 1 << 30, CheckpointInterval: 200 * time.Millisecond}
	})
	d := g.Leader(15 * time.Second)
	ctx := context.Background()
	c := g.Client(d)
	for i := 0; i < 8; i++ {
		require.NoError(t, d.Auth.Audit(ctx, authority.Op{Action: "test.event", Actor: authority.Actor{ID: "tester", Kind: "user"},
			TargetKind: "thing", TargetID: fmt.Sprint(i)}, "ok"))
	}
	waitChained(t, g, d)
	var head int64
	headSeq := func() int64 {
		require.NoError(t, d.DB.Pool.QueryRow(ctx, `SELECT seq FROM audit_chain_head`).Scan(&head))
		return head
	}
	g.Eventually(15*time.Second, "a periodic checkpoint at the head", func() bool {
		cp, ok := d.FSM.AuditCheckpoint()
		return ok && cp.Seq == headSeq() && cp.Seq > 5
	})
	cp, _ := d.FSM.AuditCheckpoint()

	// Lose the newest 3 rows (and the head with them), as a restore does.
	conn, err := pgx.Connect(ctx, g.DBURL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	cut := cp.Seq - 3
	auditTamper(t, ctx, conn, fmt.Sprintf(`DELETE FROM cluster_audit_events WHERE seq > %[1]d;
		UPDATE audit_chain_head SET seq = %[1]d, hash = (SELECT hash FROM cluster_audit_events WHERE seq = %[1]d),
		max_id = (SELECT max(id) FROM cluster_audit_events WHERE seq IS NOT NULL)`, cut))

	// The checkpointer refuses, repeatedly, and reports it; the checkpoint stays.
	g.Eventually(20*time.Second, "the checkpointer refuses a chain behind the checkpoint", func() bool {
		b := d.Auth.AuditChainBehindStatus()
		return b != nil && b.CheckpointSeq == cp.Seq && b.Refusals >= 2
	})
	var shown authority.AuditAnchor
	require.NoError(t, c.Do(ctx, http.MethodGet, "/v1/audit/checkpoint", nil, &shown, nil))
	require.NotNil(t, shown.ChainBehind, "GET /v1/audit/checkpoint shows it")
	require.Equal(t, cp.Index, shown.ChainBehind.CheckpointIndex)
	require.Equal(t, cp.Seq, shown.Seq, "not overwritten")
	now, _ := d.FSM.AuditCheckpoint()
	require.Equal(t, cp.Index, now.Index)
	require.Equal(t, 1.0, authtest.Metric(t, d, "rap_audit_chain_behind_checkpoint"))
	require.GreaterOrEqual(t, authtest.Metric(t, d, "rap_audit_checkpoint_refusals_total"), 2.0)

	verify := func() (string, int) {
		cmd := exec.Command(filepath.Join(bin, "rap-authority"), "audit", "verify", "--database-url", g.DBURL,
			"--server", d.APIAddr(), "--token", g.Token, "--ca-pin", g.Pin)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return string(out), ee.ExitCode()
		}
		require.NoError(t, err, string(out))
		return string(out), 0
	}
	out, code := verify()
	require.Equal(t, 3, code, out)
	require.Contains(t, out, fmt.Sprintf("audit chain TRUNCATED behind the checkpoint (seq %d ", cp.Seq))
	require.Contains(t, out, "rapctl audit reanchor")

	reanchor := func(reason string) (authority.AuditAnchor, *apiclient.Error) {
		var an authority.AuditAnchor
		err := c.Do(ctx, http.MethodPost, "/v1/audit/reanchor", map[string]string{"reason": reason}, &an, nil)
		if err == nil {
			return an, nil
		}
		var ae *apiclient.Error
		require.ErrorAs(t, err, &ae)
		return an, ae
	}
	// Platform owners only.
	_, err = d.Auth.ReanchorAudit(ctx, authority.Actor{ID: "admin-1", Kind: "user", Role: store.RolePlatformAdmin},
		authority.ReanchorAuditRequest{Reason: "restored"}, "")
	var fe *authority.Error
	require.ErrorAs(t, err, &fe)
	require.Equal(t, authority.CodeForbidden, fe.Code)
	_, ae := reanchor("  ")
	require.Equal(t, "invalid_argument", ae.Code)
	require.Equal(t, http.StatusBadRequest, ae.Status)

	// A broken link is tampering: no re-anchor over it.
	var id int64
	require.NoError(t, conn.QueryRow(ctx, `SELECT id FROM cluster_audit_events WHERE seq = 2`).Scan(&id))
	auditTamper(t, ctx, conn, `UPDATE cluster_audit_events SET actor = actor || '-x' WHERE id = $1`, id)
	_, ae = reanchor("restored")
	require.Equal(t, "conflict", ae.Code)
	require.Equal(t, "audit_chain_broken", ae.Details["reason"])
	auditTamper(t, ctx, conn, `UPDATE cluster_audit_events SET actor = left(actor, length(actor) - 2) WHERE id = $1`, id)

	// The re-anchor, through rapctl.
	rc := exec.Command(filepath.Join(bin, "rapctl"), "--server", d.APIAddr(), "--token", g.Token, "--ca-pin", g.Pin,
		"-o", "json", "--idempotency-key", "reanchor-1", "audit", "reanchor", "--reason", "restored the 03-01 dump")
	o, err := rc.CombinedOutput()
	require.NoError(t, err, string(o))
	var an authority.AuditAnchor
	require.NoError(t, json.Unmarshal(o, &an), string(o))
	require.Len(t, an.Reanchors, 1)
	r := an.Reanchors[0]
	require.Equal(t, cp.Seq, r.SupersededSeq)
	require.Equal(t, cp.Index, r.SupersededIndex)
	require.Equal(t, "restored the 03-01 dump", r.Reason)
	require.GreaterOrEqual(t, r.Seq, cut)
	require.Equal(t, r.Index, an.Index)
	// A retry with the same Idempotency-Key answers the same, applies nothing.
	var again authority.AuditAnchor
	require.NoError(t, c.Do(ctx, http.MethodPost, "/v1/audit/reanchor", map[string]string{"reason": "restored the 03-01 dump"}, &again,
		map[string]string{"Idempotency-Key": "reanchor-1"}))
	require.Len(t, again.Reanchors, 1)
	require.Equal(t, r.Index, again.Reanchors[0].Index)
	fsmCP, _ := d.FSM.AuditCheckpoint()
	require.GreaterOrEqual(t, fsmCP.Index, an.Index)
	require.Equal(t, "restored the 03-01 dump", fsmCP.Reanchors[0].Reason, "recorded in the Raft state")

	var outcome string
	var details map[string]any
	require.NoError(t, conn.QueryRow(ctx, `SELECT outcome, details FROM cluster_audit_events WHERE action = 'audit.reanchor' AND outcome = 'ok'`).Scan(&outcome, &details))
	require.Equal(t, "restored the 03-01 dump", details["reason"])
	require.EqualValues(t, cp.Seq, details["superseded_seq"])
	require.EqualValues(t, 3, details["missing"])
	var oks int
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM cluster_audit_events WHERE action = 'audit.reanchor' AND outcome = 'ok'`).Scan(&oks))
	require.Equal(t, 1, oks, "the retry was not applied or audited again")
	var failed int
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM cluster_audit_events WHERE action = 'audit.reanchor' AND outcome <> 'ok'`).Scan(&failed))
	require.Equal(t, 3, failed, "the refused re-anchors are audited too")

	out, code = verify()
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "audit chain intact")
	require.Contains(t, out, fmt.Sprintf("superseded checkpoint seq %d ", cp.Seq))
	require.Contains(t, out, `reason: "restored the 03-01 dump"`)

	// Periodic checkpoints resume past the re-anchor (and anchor its event).
	require.NoError(t, d.Auth.Audit(ctx, authority.Op{Action: "test.after", Actor: authority.Actor{ID: "tester", Kind: "user"}}, "ok"))
	waitChained(t, g, d)
	g.Eventually(20*time.Second, "a periodic checkpoint after the re-anchor", func() bool {
		x, ok := d.FSM.AuditCheckpoint()
		return ok && x.Seq == headSeq() && x.Seq > r.Seq && x.Actor == "system"
	})
	x, _ := d.FSM.AuditCheckpoint()
	require.Len(t, x.Reanchors, 1, "later checkpoints keep the history")
	require.Nil(t, d.Auth.AuditChainBehindStatus())
	require.Equal(t, 0.0, authtest.Metric(t, d, "rap_audit_chain_behind_checkpoint"))
	_, ae = reanchor("again")
	require.Equal(t, "conflict", ae.Code)
	require.Equal(t, "audit_chain_not_behind", ae.Details["reason"])
	out, code = verify()
	require.Equal(t, 0, code, out)
}
