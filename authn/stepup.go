package authn

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Action names an operation an admin can perform. The high-risk ones need a
// step-up grant; see HighRiskActions.
type Action string

// High-risk actions (spec: Platform Admin Access Security, ARCHITECTURE §12).
const (
	ActionNodeApprove        Action = "node.approve"         // approve a join request
	ActionNodeRevoke         Action = "node.revoke"          // revoke a node identity
	ActionRoleAssign         Action = "role.assign"          // assign or remove a node role
	ActionClusterTrust       Action = "cluster.trust"        // change a cluster's trust configuration
	ActionTrustRootRotate    Action = "trust.rotate"         // rotate a cluster CA / trust root
	ActionPartitionPromote   Action = "partition.promote"    // promote a partition segment
	ActionPartitionRecover   Action = "partition.recover"    // split, merge, fence or recover partitions
	ActionCrossClusterTrust  Action = "crosscluster.trust"   // create or change cross-cluster trust
	ActionSecretsAccess      Action = "secrets.access"       // read or export secret material
	ActionUpdatePolicy       Action = "update.policy"        // change update/rollout policy
	ActionJoinTokenCreate    Action = "jointoken.create"     // mint a node join token
	ActionPlatformRoleAssign Action = "platform.role.assign" // grant or remove a platform admin role
	ActionMFAReset           Action = "user.mfa.reset"       // reset another user's MFA or devices
	ActionAPITokenCreate     Action = "apitoken.create"      // mint an API token
	ActionLeaseFence         Action = "vpn.lease.fence"      // fence a VPN connection's lease (recovery)
	// Organization-scoped high-risk actions (an organization admin's session).
	ActionOrgUserManage   Action = "org.user.manage"   // invite, disable or enable an organization account
	ActionOrgPolicyChange Action = "org.policy.change" // create or delete an organization access policy
	ActionOrgInvite       Action = "org.invite"        // a platform admin invites an organization admin
	ActionOrgEndpoint     Action = "org.endpoint"      // a platform admin publishes or withdraws an endpoint
)

var highRisk = []Action{
	ActionNodeApprove, ActionNodeRevoke, ActionRoleAssign, ActionClusterTrust,
	ActionTrustRootRotate, ActionPartitionPromote, ActionPartitionRecover,
	ActionCrossClusterTrust, ActionSecretsAccess, ActionUpdatePolicy,
	ActionJoinTokenCreate, ActionPlatformRoleAssign, ActionMFAReset, ActionAPITokenCreate,
	ActionLeaseFence,
	ActionOrgUserManage, ActionOrgPolicyChange, ActionOrgInvite, ActionOrgEndpoint,
}

// HighRiskActions returns the actions that need step-up, in a stable order.
func HighRiskActions() []Action { return slices.Clone(highRisk) }

// HighRisk reports whether a needs a step-up grant.
func (a Action) HighRisk() bool { return slices.Contains(highRisk, a) }

// StepUpGrant is permission to perform one high-risk action once, bound to the
// session that verified the second factor, the action and the target id ("" when
// the action has no target; it then matches only "").
type StepUpGrant struct {
	SessionID TokenHash
	UserID    string
	Action    Action
	Target    string
	IssuedAt  time.Time
	ExpiresAt time.Time
}

// StepUpStore holds outstanding grants. Implementations must be safe for
// concurrent use; TakeStepUp must be atomic (DELETE ... RETURNING) because it
// is what makes a grant single-use.
type StepUpStore interface {
	// PutStepUp stores g, replacing any grant with the same session, action and
	// target. Implementations may drop expired grants opportunistically.
	PutStepUp(ctx context.Context, g StepUpGrant) error
	// TakeStepUp atomically removes and returns the grant for (session, action,
	// target), or an error wrapping ErrNotFound.
	TakeStepUp(ctx context.Context, session TokenHash, action Action, target string) (StepUpGrant, error)
	// DeleteSessionStepUps removes every grant of a session (logout).
	DeleteSessionStepUps(ctx context.Context, session TokenHash) error
}

// TOTPVerifier verifies a live TOTP code for a user and claims its time step
// (MFA implements it). Recovery codes are deliberately not accepted here.
type TOTPVerifier interface {
	VerifyTOTP(ctx context.Context, userID, code string) error
}

// StepUpOptions configures NewStepUp.
type StepUpOptions struct {
	Verifier    TOTPVerifier  // required
	Store       StepUpStore   // required
	Lockouts    LockoutStore  // required: counts wrong step-up codes per user
	Clock       Clock         // nil: SystemClock
	TTL         time.Duration // grant lifetime; 0: 5 min
	MaxFailures int           // wrong codes per user per window before lockout; 0: 5
	Window      time.Duration // failure window and lockout duration; 0: 15 min
}

// StepUp issues and consumes step-up grants.
type StepUp struct {
	v       TOTPVerifier
	store   StepUpStore
	locks   LockoutStore
	clock   Clock
	ttl     time.Duration
	maxFail int
	window  time.Duration
}

// NewStepUp validates opts and returns a step-up manager.
func NewStepUp(opts StepUpOptions) (*StepUp, error) {
	if opts.Verifier == nil || opts.Store == nil || opts.Lockouts == nil {
		return nil, fmt.Errorf("%w: step-up needs a verifier, a grant store and a lockout store", ErrInvalidConfig)
	}
	if opts.Clock == nil {
		opts.Clock = SystemClock()
	}
	if opts.TTL == 0 {
		opts.TTL = 5 * time.Minute
	}
	if opts.MaxFailures == 0 {
		opts.MaxFailures = 5
	}
	if opts.Window == 0 {
		opts.Window = 15 * time.Minute
	}
	if opts.TTL < 0 || opts.TTL > 15*time.Minute || opts.MaxFailures < 1 || opts.Window < 0 {
		return nil, fmt.Errorf("%w: step-up TTL must be in (0,15m], MaxFailures >= 1", ErrInvalidConfig)
	}
	return &StepUp{v: opts.Verifier, store: opts.Store, locks: opts.Lockouts, clock: opts.Clock,
		ttl: opts.TTL, maxFail: opts.MaxFailures, window: opts.Window}, nil
}

// Grant verifies a fresh TOTP code for the session's user and, on success,
// stores a single-use grant for (session, action, target) valid for the TTL.
// Wrong codes count towards a per-user step-up lockout (ErrLockedOut); a code
// whose time step was already used (for example the one used at login) is
// ErrTOTPReplay. action must be high-risk (ErrUnknownAction).
func (s *StepUp) Grant(ctx context.Context, sess Session, action Action, target, code string) (StepUpGrant, error) {
	if !action.HighRisk() {
		return StepUpGrant{}, fmt.Errorf("%w: %q", ErrUnknownAction, action)
	}
	key := "stepup:" + sess.UserID
	now := s.clock.Now()
	st, err := s.locks.Lockout(ctx, key)
	if err != nil {
		return StepUpGrant{}, fmt.Errorf("authn: reading step-up lockout: %w", err)
	}
	if now.Before(st.LockedUntil) {
		return StepUpGrant{}, retryErr(ErrLockedOut, "step-up", st.LockedUntil.Sub(now))
	}
	if err := s.v.VerifyTOTP(ctx, sess.UserID, code); err != nil {
		if errors.Is(err, ErrBadSecondFactor) || errors.Is(err, ErrTOTPReplay) {
			if _, lerr := s.locks.UpdateLockout(ctx, key, failureFn(now, s.maxFail, s.window, s.window)); lerr != nil {
				return StepUpGrant{}, fmt.Errorf("authn: recording step-up failure: %w", lerr)
			}
		}
		return StepUpGrant{}, err
	}
	g := StepUpGrant{SessionID: sess.ID, UserID: sess.UserID, Action: action, Target: target, IssuedAt: now, ExpiresAt: now.Add(s.ttl)}
	if err := s.store.PutStepUp(ctx, g); err != nil {
		return StepUpGrant{}, fmt.Errorf("authn: storing step-up grant: %w", err)
	}
	return g, nil
}

// Consume spends the grant for (session, action, target). It succeeds once per
// grant and only before the grant expires; a replay, another action, another
// target, another session or an expired grant yields ErrStepUpRequired.
func (s *StepUp) Consume(ctx context.Context, sess Session, action Action, target string) error {
	g, err := s.store.TakeStepUp(ctx, sess.ID, action, target)
	if errors.Is(err, ErrNotFound) {
		return fmt.Errorf("%w: no grant for %s", ErrStepUpRequired, action)
	}
	if err != nil {
		return fmt.Errorf("authn: taking step-up grant: %w", err)
	}
	if !s.clock.Now().Before(g.ExpiresAt) || g.UserID != sess.UserID || !g.SessionID.Equal(sess.ID) {
		return fmt.Errorf("%w: grant for %s expired", ErrStepUpRequired, action)
	}
	return nil
}

// Require is the check an API handler calls before performing action: for a
// high-risk action it consumes the grant (Consume); other actions pass.
func (s *StepUp) Require(ctx context.Context, sess Session, action Action, target string) error {
	if !action.HighRisk() {
		return nil
	}
	return s.Consume(ctx, sess, action, target)
}

// Forget drops the session's outstanding grants (call on logout).
func (s *StepUp) Forget(ctx context.Context, sess Session) error {
	return s.store.DeleteSessionStepUps(ctx, sess.ID)
}
