package authority

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"regexp"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rap-fabric/core/agentapi"
	"github.com/rap-fabric/core/domain"
	"github.com/rap-fabric/core/jointoken"
	"github.com/rap-fabric/core/pki"
	"github.com/rap-fabric/core/store"
)

// Limits on join request content.
const (
	MaxFactsBytes   = 64 << 10
	MaxNodeNameLen  = 253
	pollSecretBytes = 32
)

var (
	nodeNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$`)
	hex64RE    = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// JoinRequestInput is what an agent sends to join a cluster (the agentapi
// contract).
type JoinRequestInput = agentapi.JoinRequest

// JoinStatus is what the agent learns about its request (the agentapi contract).
type JoinStatus = agentapi.JoinStatus

func validateJoin(in *JoinRequestInput) error {
	if !nodeNameRE.MatchString(in.NodeName) {
		return Errf(CodeInvalid, "node_name must be 1-253 characters of letters, digits, '.', '_' or '-'")
	}
	if !hex64RE.MatchString(in.HostFingerprint) {
		return Errf(CodeInvalid, "host_fingerprint must be 64 lowercase hex characters")
	}
	if len(in.PublicKey) != ed25519.PublicKeySize {
		return Errf(CodeInvalid, "public_key must be a 32-byte Ed25519 public key")
	}
	if len(in.NoisePublicKey) != 32 {
		return Errf(CodeInvalid, "noise_public_key must be a 32-byte X25519 public key")
	}
	if len(in.PollSecret) != pollSecretBytes {
		return Errf(CodeInvalid, "poll_secret must be 32 bytes")
	}
	if len(in.Facts) == 0 {
		in.Facts = json.RawMessage(`{}`)
	}
	if len(in.Facts) > MaxFactsBytes {
		return Errf(CodeTooLarge, "facts must be at most %d bytes", MaxFactsBytes)
	}
	var obj map[string]any
	if err := json.Unmarshal(in.Facts, &obj); err != nil {
		return Errf(CodeInvalid, "facts must be a JSON object")
	}
	if len(in.Capabilities) > len(domain.AllCapabilities) || len(in.RequestedRoles) > len(domain.AllRoles) {
		return Errf(CodeInvalid, "too many capabilities or roles")
	}
	for _, c := range in.Capabilities {
		if !c.Valid() {
			return Errf(CodeInvalid, "unknown capability %q", c)
		}
	}
	for _, r := range in.RequestedRoles {
		if !r.Valid() {
			return Errf(CodeInvalid, "unknown role %q", r)
		}
	}
	return nil
}

func pollHash(secret []byte) []byte {
	s := sha256.Sum256(append([]byte("rap-join-poll-v1\x00"), secret...))
	return s[:]
}

// errTokenInvalid is the one answer a requester gets for any token problem; the
// precise reason goes to the audit log only.
func errTokenInvalid(reason string) *Error {
	return &Error{Code: CodeTokenInvalid, Message: "join token is invalid, expired, revoked, used up or not for this cluster", Details: map[string]any{"_reason": reason}}
}

// SubmitJoinRequest validates a join token and records a pending join request
// (fenced: a minority authority cannot take join requests). viaCluster is the
// cluster the agent reached (chosen by its CA pin); the token must belong to it.
func (a *Authority) SubmitJoinRequest(ctx context.Context, source, viaCluster string, in JoinRequestInput) (JoinStatus, error) {
	actor := Actor{ID: "anonymous", Kind: "node", SourceAddr: source}
	tok, perr := jointoken.Parse(in.Token)
	tokenKey := "token:" + tok.ID
	if a.limiter.blocked("src:"+source, tokenKey) {
		return JoinStatus{}, Errf(CodeRateLimited, "too many failed join attempts; wait a minute")
	}
	if perr != nil {
		a.limiter.fail("src:" + source)
		_ = a.Audit(ctx, Op{Action: "join_request.refuse", Actor: actor, Details: map[string]any{"reason": "malformed token"}}, "denied")
		return JoinStatus{}, errTokenInvalid("malformed")
	}
	if err := validateJoin(&in); err != nil {
		return JoinStatus{}, err
	}
	now := a.cfg.Clock()
	actor.ID = "token:" + tok.ID
	var refused string
	st, err := Fenced(ctx, a, Op{Action: "join_request.receive", Actor: actor, ClusterID: viaCluster, TargetKind: "join_request",
		Details: map[string]any{"node_name": in.NodeName, "host_fingerprint": in.HostFingerprint, "token_id": tok.ID}},
		func(tx pgx.Tx) (JoinStatus, error) {
			t, err := store.GetToken(ctx, tx, tok.ID)
			switch {
			case errors.Is(err, store.ErrNotFound):
				refused = "unknown token id"
			case err != nil:
				return JoinStatus{}, err
			case !jointoken.Check(tok, t.SecretHash):
				refused = "wrong secret"
			case viaCluster != "" && t.ClusterID != viaCluster:
				refused = "token is for another cluster"
			case t.AutoApprove && viaCluster == "":
				// A bootstrap token is used only through its own cluster (the
				// agent reached it by that cluster's CA pin).
				refused = "bootstrap token used outside its cluster"
			case t.RevokedAt != nil:
				refused = "revoked"
			case !now.Before(t.ExpiresAt):
				refused = "expired"
			}
			if refused != "" {
				return JoinStatus{}, errTokenInvalid(refused)
			}
			c, err := store.GetCluster(ctx, tx, t.ClusterID)
			if err != nil {
				return JoinStatus{}, err
			}
			if c.Status != "active" {
				refused = "cluster disabled"
				return JoinStatus{}, errTokenInvalid(refused)
			}
			var scope TokenScope
			_ = json.Unmarshal(t.Scope, &scope)
			if len(scope.AllowedRoles) > 0 {
				for _, r := range in.RequestedRoles {
					if !containsRole(scope.AllowedRoles, r) {
						return JoinStatus{}, Errf(CodeInvalid, "role %q is outside this token's scope", r)
					}
				}
			}
			// A resent identical request (same key, same poll secret) returns the
			// existing request instead of using the token again.
			var existingID string
			var existingPoll []byte
			err = tx.QueryRow(ctx, `SELECT id::text, poll_secret_hash FROM node_join_requests WHERE cluster_id = $1 AND public_key = $2`, t.ClusterID, in.PublicKey).Scan(&existingID, &existingPoll)
			if err == nil {
				if subtle.ConstantTimeCompare(existingPoll, pollHash(in.PollSecret)) == 1 {
					j, err := store.GetJoinRequest(ctx, tx, existingID)
					if err != nil {
						return JoinStatus{}, err
					}
					return JoinStatus{RequestID: j.ID, ClusterID: j.ClusterID, Status: j.Status, ExpiresAt: j.ExpiresAt}, nil
				}
				return JoinStatus{}, Errf(CodeConflict, "a join request for this identity key already exists")
			} else if !errors.Is(err, pgx.ErrNoRows) {
				return JoinStatus{}, err
			}
			if _, err := store.ConsumeToken(ctx, tx, t.ID, now); err != nil {
				if errors.Is(err, store.ErrNotFound) {
					refused = "no uses left"
					return JoinStatus{}, errTokenInvalid(refused)
				}
				return JoinStatus{}, err
			}
			caps, _ := json.Marshal(nonNil(in.Capabilities))
			roles, _ := json.Marshal(nonNilRoles(in.RequestedRoles))
			j, err := store.InsertJoinRequest(ctx, tx, store.JoinRequest{ID: store.NewID(), ClusterID: t.ClusterID, TokenID: t.ID, NodeName: in.NodeName,
				NodeFingerprint: in.HostFingerprint, PublicKey: in.PublicKey, NoisePublicKey: in.NoisePublicKey, ReportedCapabilities: caps,
				ReportedFacts: in.Facts, RequestedRoles: roles, PollSecretHash: pollHash(in.PollSecret), SourceAddr: source,
				CreatedAt: now, ExpiresAt: now.Add(a.cfg.JoinRequestTTL)})
			if err != nil {
				return JoinStatus{}, err
			}
			js := JoinStatus{RequestID: j.ID, ClusterID: j.ClusterID, Status: j.Status, ExpiresAt: j.ExpiresAt}
			if t.AutoApprove {
				js.Status = "auto_approve"
			}
			return js, nil
		})
	if err != nil {
		if refused != "" {
			a.limiter.fail("src:"+source, tokenKey)
			a.log.Info("join request refused", "source", source, "token_id", tok.ID, "reason", refused)
		}
		return JoinStatus{}, err
	}
	if st.Status == "auto_approve" {
		if _, err := a.approve(ctx, Actor{ID: "bootstrap-token:" + tok.ID, Kind: "api-token", SourceAddr: source}, st.RequestID, "", true); err != nil {
			if isKnownHostRefusal(err) {
				// The host fingerprint is an enrolled host's: only an owner's
				// review may attach this request to it. It stays pending.
				st.Status = "pending"
				return st, nil
			}
			return JoinStatus{}, err
		}
		return a.PollJoinRequest(ctx, st.RequestID, in.PollSecret)
	}
	return st, nil
}

func containsRole(rs []domain.Role, r domain.Role) bool {
	for _, x := range rs {
		if x == r {
			return true
		}
	}
	return false
}

func nonNil(c []domain.Capability) []domain.Capability {
	if c == nil {
		return []domain.Capability{}
	}
	return c
}

func nonNilRoles(r []domain.Role) []domain.Role {
	if r == nil {
		return []domain.Role{}
	}
	return r
}

// PollJoinRequest tells the requester the outcome of its request; with the
// right poll secret an approved request returns the node certificate. A read:
// any authority answers.
func (a *Authority) PollJoinRequest(ctx context.Context, requestID string, pollSecret []byte) (JoinStatus, error) {
	j, err := store.GetJoinRequest(ctx, a.db.Pool, requestID)
	if err != nil || subtle.ConstantTimeCompare(j.PollSecretHash, pollHash(pollSecret)) != 1 {
		return JoinStatus{}, Errf(CodeNotFound, "no such join request")
	}
	st := JoinStatus{RequestID: j.ID, ClusterID: j.ClusterID, Status: j.Status, ExpiresAt: j.ExpiresAt}
	if j.Status == "pending" && !a.cfg.Clock().Before(j.ExpiresAt) {
		st.Status = "expired"
	}
	if j.RejectionReason != nil {
		st.Reason = *j.RejectionReason
	}
	if j.Status == "approved" && j.ApprovedNodeID != nil {
		st.NodeID = *j.ApprovedNodeID
		var der []byte
		err := a.db.Pool.QueryRow(ctx, `SELECT c.der FROM node_certificates c JOIN node_identities i ON i.id = c.identity_id
			WHERE i.cluster_id = $1 AND i.node_id = $2 AND i.public_key = $3 ORDER BY c.issued_at DESC LIMIT 1`, j.ClusterID, *j.ApprovedNodeID, j.PublicKey).Scan(&der)
		if err != nil {
			return JoinStatus{}, asError(store.MapError(err))
		}
		st.Certificate = der
		c, err := store.GetCluster(ctx, a.db.Pool, j.ClusterID)
		if err != nil {
			return JoinStatus{}, asError(err)
		}
		st.CACert = c.CACertDER
	}
	return st, nil
}

// JoinRequestView is a join request for review, with the comparison of
// requested roles against reported capabilities.
type JoinRequestView struct {
	store.JoinRequest
	KnownHostNodeID string                              `json:"known_host_node_id,omitempty"`
	RoleCheck       map[domain.Role][]domain.Capability `json:"role_missing_capabilities"`
}

func (a *Authority) joinView(ctx context.Context, j store.JoinRequest) JoinRequestView {
	v := JoinRequestView{JoinRequest: j, RoleCheck: map[domain.Role][]domain.Capability{}}
	if v.Status == "pending" && !a.cfg.Clock().Before(v.ExpiresAt) {
		v.Status = "expired"
	}
	var caps []domain.Capability
	var roles []domain.Role
	_ = json.Unmarshal(j.ReportedCapabilities, &caps)
	_ = json.Unmarshal(j.RequestedRoles, &roles)
	for _, r := range roles {
		v.RoleCheck[r] = nonNil(domain.MissingCapabilities(r, caps))
	}
	if n, err := store.FindNodeByHost(ctx, a.db.Pool, j.NodeFingerprint); err == nil {
		v.KnownHostNodeID = n.ID
	}
	return v
}

// ListJoinRequests lists join requests for review (status "" for all).
func (a *Authority) ListJoinRequests(ctx context.Context, cluster, status string, p store.Page) ([]JoinRequestView, error) {
	clusterID := ""
	if cluster != "" {
		c, err := a.GetCluster(ctx, cluster)
		if err != nil {
			return nil, err
		}
		clusterID = c.ID
	}
	js, err := store.ListJoinRequests(ctx, a.db.Pool, clusterID, status, p)
	if err != nil {
		return nil, asError(err)
	}
	out := make([]JoinRequestView, 0, len(js))
	for _, j := range js {
		out = append(out, a.joinView(ctx, j))
	}
	return out, nil
}

// GetJoinRequest shows one join request for review.
func (a *Authority) GetJoinRequest(ctx context.Context, id string) (JoinRequestView, error) {
	j, err := store.GetJoinRequest(ctx, a.db.Pool, id)
	if err != nil {
		return JoinRequestView{}, asError(err)
	}
	return a.joinView(ctx, j), nil
}

// ApproveResult is the outcome of an approval.
type ApproveResult struct {
	RequestID string    `json:"request_id"`
	ClusterID string    `json:"cluster_id"`
	NodeID    string    `json:"node_id"`
	Serial    string    `json:"certificate_serial"`
	NotAfter  time.Time `json:"certificate_not_after"`
}

// ApproveJoinRequest approves a pending request (fenced, high risk): it creates
// or reuses the host's node, adds the membership, records the identity and
// issues a cluster-scoped node certificate.
//
// A request whose host fingerprint is an enrolled host's is attached to that
// host's node only by an owner's approval (the review shows
// known_host_node_id), never by a bootstrap token; and the request's
// self-reported capabilities never replace an enrolled host's (its own
// authenticated heartbeats keep them).
func (a *Authority) ApproveJoinRequest(ctx context.Context, actor Actor, id, idemKey string) (ApproveResult, error) {
	return a.approve(ctx, actor, id, idemKey, false)
}

// knownHostReason marks the refusal of an automatic approval whose host
// fingerprint belongs to an enrolled host.
const knownHostReason = "known_host_needs_review"

func isKnownHostRefusal(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == CodeConflict && e.Details["reason"] == knownHostReason
}

func (a *Authority) approve(ctx context.Context, actor Actor, id, idemKey string, auto bool) (ApproveResult, error) {
	j, err := store.GetJoinRequest(ctx, a.db.Pool, id)
	if err != nil {
		return ApproveResult{}, asError(err)
	}
	if _, _, _, err := a.clusterSigner(j.ClusterID); err != nil {
		return ApproveResult{}, err
	}
	now := a.cfg.Clock()
	op := Op{Action: "join_request.approve", Actor: actor, ClusterID: j.ClusterID, TargetKind: "join_request", TargetID: id, IdempotencyKey: idemKey,
		Details: map[string]any{"node_name": j.NodeName}}
	return Fenced(ctx, a, op, func(tx pgx.Tx) (ApproveResult, error) {
		j, err := store.LockJoinRequest(ctx, tx, id)
		if err != nil {
			return ApproveResult{}, err
		}
		if j.Status != "pending" {
			return ApproveResult{}, Errf(CodeConflict, "join request is %s, not pending", j.Status)
		}
		if !now.Before(j.ExpiresAt) {
			return ApproveResult{}, Errf(CodeConflict, "join request expired at %s", j.ExpiresAt.Format(time.RFC3339))
		}
		node, err := store.FindNodeByHost(ctx, tx, j.NodeFingerprint)
		knownHost := err == nil
		if knownHost && auto {
			return ApproveResult{}, &Error{Code: CodeConflict, Message: "the host fingerprint belongs to an enrolled host: an owner must review this request",
				Details: map[string]any{"reason": knownHostReason, "known_host_node_id": node.ID}}
		}
		if errors.Is(err, store.ErrNotFound) {
			node, err = store.InsertNode(ctx, tx, store.Node{ID: store.NewID(), Name: j.NodeName, HostFingerprint: j.NodeFingerprint})
		}
		if err != nil {
			return ApproveResult{}, err
		}
		if _, err := store.GetMembership(ctx, tx, j.ClusterID, node.ID); err == nil {
			return ApproveResult{}, Errf(CodeConflict, "host %s is already a member of this cluster (node %s); revoke or rotate its identity instead", j.NodeName, node.ID)
		}
		if err := store.InsertMembership(ctx, tx, j.ClusterID, node.ID); err != nil {
			return ApproveResult{}, err
		}
		ident, err := store.InsertIdentity(ctx, tx, store.Identity{ID: store.NewID(), ClusterID: j.ClusterID, NodeID: node.ID, PublicKey: j.PublicKey, NoisePublicKey: j.NoisePublicKey})
		if err != nil {
			return ApproveResult{}, err
		}
		cert, _, err := a.issueCert(ctx, tx, actor, ident, node.Name, now, false)
		if err != nil {
			return ApproveResult{}, err
		}
		if !knownHost {
			// A new host starts with what it reported; an enrolled host's
			// capabilities are not for a join request to overwrite.
			var caps []domain.Capability
			_ = json.Unmarshal(j.ReportedCapabilities, &caps)
			if err := store.ReplaceReportedCapabilities(ctx, tx, node.ID, caps); err != nil {
				return ApproveResult{}, err
			}
		}
		if err := store.ApproveJoinRequest(ctx, tx, id, actor.ID, node.ID); err != nil {
			return ApproveResult{}, err
		}
		return ApproveResult{RequestID: id, ClusterID: j.ClusterID, NodeID: node.ID, Serial: cert.Serial, NotAfter: cert.NotAfter}, nil
	})
}

// issueCert signs a node certificate for ident and records it, with its own
// audit event, inside the caller's fenced transaction; it returns the
// issuing root's certificate too. fromCurrent issues it from the current
// root; otherwise from the publishing root, which differs only during a CA
// rotation's overlap (the old root, which every node pins). Enrollments use
// the publishing root (the join token's pin names it); renewals the current
// root when the node pins it (issuingRootFor, docs/ca-rotation.md).
func (a *Authority) issueCert(ctx context.Context, tx pgx.Tx, actor Actor, ident store.Identity, nodeName string, now time.Time, fromCurrent bool) (store.Certificate, []byte, error) {
	signer := a.publishingClusterSigner
	if fromCurrent {
		signer = a.clusterSigner
	}
	caKey, caDER, caKID, err := signer(ident.ClusterID)
	if err != nil {
		return store.Certificate{}, nil, err
	}
	der, serial, err := pki.IssueNodeCert(a.cfg.Rand, caKey, caDER, pki.NodeCertRequest{ClusterID: ident.ClusterID, NodeID: ident.NodeID, NodeName: nodeName,
		PublicKey: ident.PublicKey, NotBefore: now, Lifetime: a.cfg.NodeCertLifetime})
	if err != nil {
		return store.Certificate{}, nil, &Error{Code: CodeInternal, Message: "could not issue the node certificate", Err: err}
	}
	cert := store.Certificate{Serial: serial, ClusterID: ident.ClusterID, NodeID: ident.NodeID, IdentityID: ident.ID, NotBefore: now.Add(-time.Minute), NotAfter: now.Add(a.cfg.NodeCertLifetime), DER: der}
	if err := store.InsertCertificate(ctx, tx, cert); err != nil {
		return store.Certificate{}, nil, err
	}
	if err := store.SetIdentityCertificate(ctx, tx, ident.ID, serial, cert.NotBefore, cert.NotAfter); err != nil {
		return store.Certificate{}, nil, err
	}
	err = a.appendAudit(ctx, tx, Op{Action: "certificate.issue", Actor: actor, ClusterID: ident.ClusterID, TargetKind: "node", TargetID: ident.NodeID,
		Details: map[string]any{"serial": serial, "not_after": cert.NotAfter, "ca_key_id": caKID}}, "ok", int64(a.fenceEpoch.Load()), nil)
	return cert, caDER, err
}

// issuingRootFor tells whether a renewal for a node that pins the roots
// trusted (key ids, from its request) is issued from the cluster's current
// root: only when the node pins it — an agent that has not moved its pins
// (or predates CA rotation) gets a certificate of the publishing root,
// which it can verify.
func (a *Authority) issuingRootFor(clusterID string, trusted []string) bool {
	ca, ok := a.state.ClusterCA(clusterID)
	if !ok {
		return false
	}
	for _, k := range trusted {
		if k == ca.Current.KeyID {
			return true
		}
	}
	return false
}

// RejectJoinRequest rejects a pending request with a reason (fenced).
func (a *Authority) RejectJoinRequest(ctx context.Context, actor Actor, id, reason, idemKey string) (JoinRequestView, error) {
	if reason == "" || len(reason) > 1000 {
		return JoinRequestView{}, Errf(CodeInvalid, "a rejection needs a reason of at most 1000 characters")
	}
	j, err := store.GetJoinRequest(ctx, a.db.Pool, id)
	if err != nil {
		return JoinRequestView{}, asError(err)
	}
	_, err = Fenced(ctx, a, Op{Action: "join_request.reject", Actor: actor, ClusterID: j.ClusterID, TargetKind: "join_request", TargetID: id, IdempotencyKey: idemKey,
		Details: map[string]any{"reason": reason}},
		func(tx pgx.Tx) (bool, error) {
			if err := store.RejectJoinRequest(ctx, tx, id, actor.ID, reason); err != nil {
				if errors.Is(err, store.ErrConflict) {
					return false, Errf(CodeConflict, "join request is not pending")
				}
				return false, err
			}
			return true, nil
		})
	if err != nil {
		return JoinRequestView{}, err
	}
	return a.GetJoinRequest(ctx, id)
}
