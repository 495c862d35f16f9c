package httpapi_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// POST /v1/audit/reanchor is an owner high-risk route: a session needs a
// step-up grant bound to it (action trust.rotate); with one, the handler
// runs, refuses a chain that is not behind the checkpoint (409
// audit_chain_not_behind) or a missing reason (400), and audits each attempt.
func TestAuditReanchorNeedsStepUp(t *testing.T) {
	e := newAdminEnv(t)
	e.login()
	e.g.Eventually(30*time.Second, "a first audit checkpoint", func() bool { _, ok := e.d.FSM.AuditCheckpoint(); return ok })
	const path = "/v1/audit/reanchor"

	r := e.do(http.MethodPost, path, map[string]any{"reason": "restored"})
	require.Equal(t, http.StatusForbidden, r.Status, "%v", r.Body)
	require.Equal(t, "step_up_required", r.code())

	g := e.stepUp(http.MethodPost, path)
	require.Equal(t, http.StatusOK, g.Status, "%v", g.Body)
	require.Equal(t, "trust.rotate", g.Body["action"])
	r = e.do(http.MethodPost, path, map[string]any{"reason": "restored"})
	require.Equal(t, http.StatusConflict, r.Status, "%v", r.Body)
	details, _ := r.Body["error"].(map[string]any)["details"].(map[string]any)
	require.Equal(t, "audit_chain_not_behind", details["reason"])

	require.Equal(t, http.StatusOK, e.stepUp(http.MethodPost, path).Status)
	r = e.do(http.MethodPost, path, map[string]any{})
	require.Equal(t, http.StatusBadRequest, r.Status, "%v", r.Body)
	require.Equal(t, "invalid_argument", r.code())

	evs := e.audit("audit.reanchor")
	require.Len(t, evs, 2)
	for _, ev := range evs {
		require.Equal(t, "failed", ev.Outcome)
		require.Equal(t, "user", ev.ActorKind)
	}
	cp, _ := e.d.FSM.AuditCheckpoint()
	require.Empty(t, cp.Reanchors, "nothing was re-anchored")
}
