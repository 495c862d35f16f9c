package authn

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

type stepUpFixture struct {
	clk    *fakeClock
	store  *MemStore
	su     *StepUp
	secret string
	sess   Session
}

func newStepUpFixture(t *testing.T) *stepUpFixture {
	t.Helper()
	clk := newFakeClock()
	store := NewMemStore(clk.Now)
	m, secret := enrolled(t, store, clk, "alice")
	su, err := NewStepUp(StepUpOptions{Verifier: m, Store: store, Lockouts: store, Clock: clk})
	require.NoError(t, err)
	sessions, err := NewSessions(SessionsOptions{Store: store, Clock: clk, Rand: seededRand(2)})
	require.NoError(t, err)
	_, sess, err := sessions.Create(ctx, NewSession{UserID: "alice", Source: addr("198.51.100.7"), MFAAt: clk.Now()})
	require.NoError(t, err)
	clk.Advance(time.Minute) // leave the enrollment/login step behind
	return &stepUpFixture{clk: clk, store: store, su: su, secret: secret, sess: sess}
}

func (f *stepUpFixture) grant(t *testing.T, action Action, target string) {
	t.Helper()
	_, err := f.su.Grant(ctx, f.sess, action, target, code(t, f.secret, f.clk.Now()))
	require.NoError(t, err)
	f.clk.Advance(30 * time.Second) // next grant needs the next TOTP step
}

func TestStepUpConsume(t *testing.T) {
	other := Session{ID: HashToken("raps_other"), UserID: "alice"}
	tests := []struct {
		name   string
		grant  bool
		wait   time.Duration
		sess   func(f *stepUpFixture) Session
		action Action
		target string
		want   error
	}{
		{"granted action and target", true, 0, nil, ActionNodeApprove, "node-1", nil},
		{"no grant (no fresh second factor)", false, 0, nil, ActionNodeApprove, "node-1", ErrStepUpRequired},
		{"other action", true, 0, nil, ActionRoleAssign, "node-1", ErrStepUpRequired},
		{"other target", true, 0, nil, ActionNodeApprove, "node-2", ErrStepUpRequired},
		{"other session", true, 0, func(*stepUpFixture) Session { return other }, ActionNodeApprove, "node-1", ErrStepUpRequired},
		{"within TTL", true, 4 * time.Minute, nil, ActionNodeApprove, "node-1", nil},
		{"expired", true, 5 * time.Minute, nil, ActionNodeApprove, "node-1", ErrStepUpRequired},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newStepUpFixture(t)
			if tc.grant {
				_, err := f.su.Grant(ctx, f.sess, ActionNodeApprove, "node-1", code(t, f.secret, f.clk.Now()))
				require.NoError(t, err)
			}
			f.clk.Advance(tc.wait)
			sess := f.sess
			if tc.sess != nil {
				sess = tc.sess(f)
			}
			err := f.su.Consume(ctx, sess, tc.action, tc.target)
			if tc.want == nil {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, tc.want)
			}
		})
	}
}

func TestStepUpSingleUse(t *testing.T) {
	f := newStepUpFixture(t)
	f.grant(t, ActionPartitionPromote, "")
	require.NoError(t, f.su.Require(ctx, f.sess, ActionPartitionPromote, ""))
	require.ErrorIs(t, f.su.Require(ctx, f.sess, ActionPartitionPromote, ""), ErrStepUpRequired, "replayed step-up")

	// A grant for one action survives an attempt at another action.
	f.grant(t, ActionSecretsAccess, "vault")
	require.ErrorIs(t, f.su.Consume(ctx, f.sess, ActionCrossClusterTrust, "vault"), ErrStepUpRequired)
	require.NoError(t, f.su.Consume(ctx, f.sess, ActionSecretsAccess, "vault"))

	// Forget (logout) drops outstanding grants.
	f.grant(t, ActionUpdatePolicy, "")
	require.NoError(t, f.su.Forget(ctx, f.sess))
	require.ErrorIs(t, f.su.Consume(ctx, f.sess, ActionUpdatePolicy, ""), ErrStepUpRequired)
}

func TestStepUpNeedsFreshCode(t *testing.T) {
	f := newStepUpFixture(t)
	c := code(t, f.secret, f.clk.Now())
	_, err := f.su.Grant(ctx, f.sess, ActionNodeApprove, "n1", c)
	require.NoError(t, err)
	// The same TOTP code cannot mint a second grant.
	_, err = f.su.Grant(ctx, f.sess, ActionRoleAssign, "n1", c)
	require.ErrorIs(t, err, ErrTOTPReplay)
	// Recovery codes are not a step-up factor: a recovery code is not a TOTP code.
	_, err = f.su.Grant(ctx, f.sess, ActionRoleAssign, "n1", "abcd-efgh-ijkl-mnop")
	require.ErrorIs(t, err, ErrBadSecondFactor)
	// A missing code is refused.
	_, err = f.su.Grant(ctx, f.sess, ActionRoleAssign, "n1", "")
	require.ErrorIs(t, err, ErrBadSecondFactor)
	require.ErrorIs(t, f.su.Consume(ctx, f.sess, ActionRoleAssign, "n1"), ErrStepUpRequired)
}

func TestStepUpLockout(t *testing.T) {
	f := newStepUpFixture(t)
	for range 5 {
		_, err := f.su.Grant(ctx, f.sess, ActionNodeApprove, "n1", "000000")
		require.ErrorIs(t, err, ErrBadSecondFactor)
	}
	_, err := f.su.Grant(ctx, f.sess, ActionNodeApprove, "n1", code(t, f.secret, f.clk.Now()))
	require.ErrorIs(t, err, ErrLockedOut, "even the right code is refused while locked")
	f.clk.Advance(15 * time.Minute)
	_, err = f.su.Grant(ctx, f.sess, ActionNodeApprove, "n1", code(t, f.secret, f.clk.Now()))
	require.NoError(t, err)
}

func TestStepUpActions(t *testing.T) {
	f := newStepUpFixture(t)
	_, err := f.su.Grant(ctx, f.sess, Action("node.list"), "", code(t, f.secret, f.clk.Now()))
	require.ErrorIs(t, err, ErrUnknownAction)
	require.NoError(t, f.su.Require(ctx, f.sess, Action("node.list"), ""), "low-risk actions pass")
	for _, a := range []Action{ActionClusterTrust, ActionNodeApprove, ActionRoleAssign, ActionPartitionPromote,
		ActionCrossClusterTrust, ActionSecretsAccess, ActionUpdatePolicy} {
		require.True(t, a.HighRisk(), a)
		require.ErrorIs(t, f.su.Require(ctx, f.sess, a, "x"), ErrStepUpRequired, a)
	}
	require.Len(t, HighRiskActions(), 19) // 15 platform + 4 organization actions
}
