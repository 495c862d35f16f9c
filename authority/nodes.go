package authority

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"errors"

	"github.com/jackc/pgx/v5"

	"github.com/rap-fabric/core/agentapi"
	"github.com/rap-fabric/core/domain"
	"github.com/rap-fabric/core/pki"
	"github.com/rap-fabric/core/store"
)

// NodeView is a physical node with its memberships.
type NodeView struct {
	store.Node
	Memberships  []store.Membership  `json:"memberships"`
	Capabilities []domain.Capability `json:"capabilities"`
}

// ListNodes lists every physical node (cluster == "") or a cluster's members.
func (a *Authority) ListNodes(ctx context.Context, cluster string, p store.Page) ([]NodeView, error) {
	if cluster != "" {
		c, err := a.GetCluster(ctx, cluster)
		if err != nil {
			return nil, err
		}
		ms, err := store.ListClusterMembers(ctx, a.db.Pool, c.ID, p)
		if err != nil {
			return nil, asError(err)
		}
		ids := make([]string, len(ms))
		for i, m := range ms {
			ids[i] = m.NodeID
		}
		nodes, err := store.GetNodes(ctx, a.db.Pool, ids)
		if err != nil {
			return nil, asError(err)
		}
		out := make([]NodeView, 0, len(ms))
		for _, m := range ms {
			out = append(out, NodeView{Node: nodes[m.NodeID], Memberships: []store.Membership{m}})
		}
		return out, nil
	}
	ns, err := store.ListNodes(ctx, a.db.Pool, p)
	if err != nil {
		return nil, asError(err)
	}
	ids := make([]string, len(ns))
	for i, n := range ns {
		ids[i] = n.ID
	}
	byNode, err := store.ListMembershipsOfNodes(ctx, a.db.Pool, ids)
	if err != nil {
		return nil, asError(err)
	}
	out := make([]NodeView, 0, len(ns))
	for _, n := range ns {
		ms := byNode[n.ID]
		if ms == nil {
			ms = []store.Membership{}
		}
		out = append(out, NodeView{Node: n, Memberships: ms})
	}
	return out, nil
}

// NodeDetail is everything the owner sees about one node.
type NodeDetail struct {
	NodeView
	Identities []store.Identity `json:"identities"`
}

// GetNode shows a node with memberships, capabilities and identities.
func (a *Authority) GetNode(ctx context.Context, id string) (NodeDetail, error) {
	n, err := store.GetNode(ctx, a.db.Pool, id)
	if err != nil {
		return NodeDetail{}, asError(err)
	}
	ms, err := store.ListNodeMemberships(ctx, a.db.Pool, id)
	if err != nil {
		return NodeDetail{}, asError(err)
	}
	caps, err := store.ReportedCapabilities(ctx, a.db.Pool, id)
	if err != nil {
		return NodeDetail{}, asError(err)
	}
	d := NodeDetail{NodeView: NodeView{Node: n, Memberships: ms, Capabilities: caps}, Identities: []store.Identity{}}
	for _, m := range ms {
		ids, err := store.ListIdentities(ctx, a.db.Pool, m.ClusterID, id)
		if err != nil {
			return NodeDetail{}, asError(err)
		}
		d.Identities = append(d.Identities, ids...)
	}
	return d, nil
}

// RevokeNode revokes a node's identity in one cluster (fenced, high risk): its
// identities and certificates are revoked, its membership is marked revoked and
// its roles disabled. Its memberships in other clusters are untouched.
func (a *Authority) RevokeNode(ctx context.Context, actor Actor, cluster, nodeID, reason, idemKey string) (store.Membership, error) {
	if reason == "" {
		reason = "revoked by " + actor.ID
	}
	c, err := a.GetCluster(ctx, cluster)
	if err != nil {
		return store.Membership{}, err
	}
	m, err := Fenced(ctx, a, Op{Action: "node.revoke", Actor: actor, ClusterID: c.ID, TargetKind: "node", TargetID: nodeID, IdempotencyKey: idemKey,
		Details: map[string]any{"reason": reason}},
		func(tx pgx.Tx) (store.Membership, error) {
			if _, err := store.GetMembership(ctx, tx, c.ID, nodeID); err != nil {
				return store.Membership{}, err
			}
			n, err := store.RevokeIdentities(ctx, tx, c.ID, nodeID, reason)
			if err != nil {
				return store.Membership{}, err
			}
			if err := store.SetMembershipStatus(ctx, tx, c.ID, nodeID, string(domain.MembershipRevoked)); err != nil {
				return store.Membership{}, err
			}
			if _, err := store.DisableNodeRoles(ctx, tx, c.ID, nodeID); err != nil {
				return store.Membership{}, err
			}
			if err := a.appendAudit(ctx, tx, Op{Action: "certificate.revoke", Actor: actor, ClusterID: c.ID, TargetKind: "node", TargetID: nodeID,
				Details: map[string]any{"identities": n}}, "ok", int64(a.fenceEpoch.Load()), nil); err != nil {
				return store.Membership{}, err
			}
			return store.GetMembership(ctx, tx, c.ID, nodeID)
		})
	if err != nil {
		return m, err
	}
	// The revoked node knows the cluster's gossip key: replace it, so that
	// the remaining nodes' gossip moves to a key it never receives.
	if err := a.rotateGossipKeys(ctx, c.ID, actor, "node "+nodeID+" revoked"); err != nil {
		a.log.Error("node revoked but the cluster gossip key was not rotated; retry the revocation", "cluster_id", c.ID, "node_id", nodeID, "error", err)
		e := asError(err)
		return m, &Error{Code: e.Code, Message: "the node is revoked, but rotating the cluster gossip key failed; retry the revocation: " + e.Message, Err: err}
	}
	return m, nil
}

// SetMembershipStatus disables or re-enables one membership (fenced); a revoked
// membership cannot be re-enabled (the host must enroll again).
func (a *Authority) SetMembershipStatus(ctx context.Context, actor Actor, cluster, nodeID, status, idemKey string) (store.Membership, error) {
	if status != string(domain.MembershipActive) && status != string(domain.MembershipDisabled) {
		return store.Membership{}, Errf(CodeInvalid, "status must be active or disabled (use revoke to revoke)")
	}
	c, err := a.GetCluster(ctx, cluster)
	if err != nil {
		return store.Membership{}, err
	}
	action := "membership.disable"
	if status == "active" {
		action = "membership.enable"
	}
	return Fenced(ctx, a, Op{Action: action, Actor: actor, ClusterID: c.ID, TargetKind: "node", TargetID: nodeID, IdempotencyKey: idemKey},
		func(tx pgx.Tx) (store.Membership, error) {
			m, err := store.GetMembership(ctx, tx, c.ID, nodeID)
			if err != nil {
				return m, err
			}
			if m.Status == string(domain.MembershipRevoked) {
				return m, Errf(CodeConflict, "membership is revoked; the host must enroll again")
			}
			if err := store.SetMembershipStatus(ctx, tx, c.ID, nodeID, status); err != nil {
				return m, err
			}
			if status == string(domain.MembershipDisabled) {
				if _, err := store.DisableNodeRoles(ctx, tx, c.ID, nodeID); err != nil {
					return m, err
				}
			}
			return store.GetMembership(ctx, tx, c.ID, nodeID)
		})
}

// RenewedCert is a freshly issued node certificate (the agentapi contract).
type RenewedCert = agentapi.RenewedCert

// RenewCertificate issues a new certificate for the node's active identity
// (fenced). With newKey/newNoiseKey set it is a key rotation: the old identity
// is retired and the new keys become the node's identity. The caller has
// authenticated the node with its current certificate. trustedRoots are the
// CA root key ids the node pins: naming the current root lets it be issued
// from it during a CA rotation's overlap (issuingRootFor).
func (a *Authority) RenewCertificate(ctx context.Context, node NodePrincipal, newKey ed25519.PublicKey, newNoiseKey []byte, trustedRoots []string) (RenewedCert, error) {
	actor := Actor{ID: node.NodeID, Kind: "node", SourceAddr: node.SourceAddr}
	rotate := len(newKey) > 0 || len(newNoiseKey) > 0
	if rotate && (len(newKey) != ed25519.PublicKeySize || len(newNoiseKey) != 32) {
		return RenewedCert{}, Errf(CodeInvalid, "rotation needs a 32-byte public_key and a 32-byte noise_public_key")
	}
	action := "certificate.renew"
	if rotate {
		action = "certificate.rotate"
	}
	now := a.cfg.Clock()
	return Fenced(ctx, a, Op{Action: action, Actor: actor, ClusterID: node.ClusterID, TargetKind: "node", TargetID: node.NodeID},
		func(tx pgx.Tx) (RenewedCert, error) {
			m, err := store.GetMembership(ctx, tx, node.ClusterID, node.NodeID)
			if err != nil {
				return RenewedCert{}, err
			}
			if m.Status != string(domain.MembershipActive) {
				return RenewedCert{}, Errf(CodeRevoked, "membership is %s", m.Status)
			}
			ident, err := store.ActiveIdentity(ctx, tx, node.ClusterID, node.NodeID)
			if errors.Is(err, store.ErrNotFound) {
				return RenewedCert{}, Errf(CodeRevoked, "node has no active identity")
			}
			if err != nil {
				return RenewedCert{}, err
			}
			if rotate {
				if err := store.MarkIdentityRotated(ctx, tx, ident.ID); err != nil {
					return RenewedCert{}, err
				}
				ident, err = store.InsertIdentity(ctx, tx, store.Identity{ID: store.NewID(), ClusterID: node.ClusterID, NodeID: node.NodeID, PublicKey: newKey, NoisePublicKey: newNoiseKey})
				if err != nil {
					return RenewedCert{}, err
				}
			}
			cert, caDER, err := a.issueCert(ctx, tx, actor, ident, m.NodeName, now, a.issuingRootFor(node.ClusterID, trustedRoots))
			if err != nil {
				return RenewedCert{}, err
			}
			return RenewedCert{Serial: cert.Serial, NotAfter: cert.NotAfter, Certificate: cert.DER, CACert: caDER}, nil
		})
}

// NodePrincipal is an authenticated node (from its verified client certificate).
type NodePrincipal struct {
	ClusterID  string
	NodeID     string
	Serial     string
	SourceAddr string
	// CAKeyID is the cluster CA key that issued the certificate.
	CAKeyID string
}

// CheckNodeCertificate tells whether a presented node certificate serial is
// still good: known for this node, not revoked, its identity active (not
// rotated away or revoked), its membership not revoked.
func (a *Authority) CheckNodeCertificate(ctx context.Context, clusterID, nodeID, serial string) error {
	st, err := store.CertificateStanding(ctx, a.db.Pool, serial, clusterID, nodeID)
	switch {
	case err != nil && CodeOf(err) == CodeNotFound:
		return Errf(CodeUnauthorized, "unknown certificate")
	case err != nil:
		return asError(err) // the check failed (database unavailable): not a verdict
	case st.Revoked:
		return Errf(CodeRevoked, "certificate revoked")
	case st.IdentityStatus != string(domain.IdentityActive):
		return Errf(CodeRevoked, "certificate belongs to a %s identity", st.IdentityStatus)
	case st.MembershipStatus == string(domain.MembershipRevoked):
		return Errf(CodeRevoked, "node identity revoked")
	}
	return nil
}

// Revocations returns a cluster's revocation list.
func (a *Authority) Revocations(ctx context.Context, cluster string) ([]store.Revocation, error) {
	c, err := a.GetCluster(ctx, cluster)
	if err != nil {
		return nil, err
	}
	r, err := store.ListRevocations(ctx, a.db.Pool, c.ID)
	return r, asErrorOrNil(err)
}

// AuthenticateNode verifies a presented client certificate: it must chain to its
// cluster's CA (as held in the replicated state) and be a node certificate whose
// serial is known, unrevoked, and whose membership is not revoked.
func (a *Authority) AuthenticateNode(ctx context.Context, cert *x509.Certificate, source string) (NodePrincipal, error) {
	id, err := pki.NodeIdentityOf(cert)
	if err != nil {
		return NodePrincipal{}, Errf(CodeUnauthorized, "not a node certificate")
	}
	kid, err := a.verifyNodeCertRoots(cert, id.ClusterID)
	if err != nil {
		return NodePrincipal{}, err
	}
	if err := a.CheckNodeCertificate(ctx, id.ClusterID, id.NodeID, id.Serial); err != nil {
		return NodePrincipal{}, err
	}
	return NodePrincipal{ClusterID: id.ClusterID, NodeID: id.NodeID, Serial: id.Serial, SourceAddr: source, CAKeyID: kid}, nil
}

// ListAudit lists audit events in chain order.
func (a *Authority) ListAudit(ctx context.Context, f store.AuditFilter, p store.Page) ([]store.AuditEvent, error) {
	evs, err := store.ListAudit(ctx, a.db.Pool, f, p)
	return evs, asErrorOrNil(err)
}
