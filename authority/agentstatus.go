package authority

// What an agent asks besides its heartbeat: its desired state (Desired) and
// the status of a certificate (CertificateStatus).

import (
	"context"
	"crypto/x509"

	"github.com/rap-fabric/core/agentapi"
	"github.com/rap-fabric/core/domain"
	"github.com/rap-fabric/core/fsm"
	"github.com/rap-fabric/core/pki"
	"github.com/rap-fabric/core/store"
)

// DesiredState is what a node should run in one cluster (GET
// /v1/agent/desired; the agentapi contract). The signed snapshot replaces
// this path later.
type DesiredState = agentapi.DesiredState

// Desired returns the node's desired state in its cluster (a read: any
// authority answers).
func (a *Authority) Desired(ctx context.Context, p NodePrincipal) (DesiredState, error) {
	m, err := store.GetMembership(ctx, a.db.Pool, p.ClusterID, p.NodeID)
	if err != nil {
		return DesiredState{}, asError(err)
	}
	roles, err := store.ActiveRoleAssignments(ctx, a.db.Pool, p.ClusterID, p.NodeID)
	if err != nil {
		return DesiredState{}, asError(err)
	}
	out := DesiredState{ClusterID: p.ClusterID, NodeID: p.NodeID, MembershipStatus: m.Status, Roles: []agentapi.RoleAssignment{}}
	if m.Status != string(domain.MembershipActive) {
		return out, nil
	}
	for _, r := range roles {
		out.Roles = append(out.Roles, agentapi.RoleAssignment{ID: r.ID, ClusterID: r.ClusterID, NodeID: r.NodeID, Role: domain.Role(r.Role),
			OrganizationID: r.OrganizationID, Status: r.Status, Policy: r.Policy, AssignedBy: r.AssignedBy, AssignedAt: r.AssignedAt, UpdatedAt: r.UpdatedAt})
	}
	return out, nil
}

// Certificate states answered by CertificateStatus.
const (
	CertGood    = agentapi.CertGood
	CertRevoked = agentapi.CertRevoked
	CertExpired = agentapi.CertExpired
	CertUnknown = agentapi.CertUnknown
)

// CertificateStatusResult is the answer of CertificateStatus (the agentapi
// contract).
type CertificateStatusResult = agentapi.CertStatus

// CertificateStatus tells whether a node certificate issued by a cluster CA is
// good, revoked or expired — public information, like a CRL entry. An agent
// whose TLS handshakes are refused asks this (without a client certificate)
// to tell revocation from an authority that cannot check right now.
func (a *Authority) CertificateStatus(ctx context.Context, der []byte) (CertificateStatusResult, error) {
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return CertificateStatusResult{}, Errf(CodeInvalid, "certificate must be DER")
	}
	id, err := pki.NodeIdentityOf(cert)
	if err != nil {
		return CertificateStatusResult{}, Errf(CodeInvalid, "not a node certificate")
	}
	ca, ok := a.state.ClusterCA(id.ClusterID)
	if !ok {
		return CertificateStatusResult{Status: CertUnknown}, nil
	}
	issued := false
	for _, k := range append([]fsm.CAKey{ca.Current}, ca.History...) {
		if caCert, err := x509.ParseCertificate(k.CertDER); err == nil && cert.CheckSignatureFrom(caCert) == nil {
			issued = true
			break
		}
	}
	res := CertificateStatusResult{Status: CertUnknown, ClusterID: id.ClusterID, NodeID: id.NodeID, Serial: id.Serial}
	if !issued {
		return CertificateStatusResult{Status: CertUnknown}, nil
	}
	err = a.CheckNodeCertificate(ctx, id.ClusterID, id.NodeID, id.Serial)
	switch {
	case CodeOf(err) == CodeRevoked:
		res.Status = CertRevoked
	case err != nil && CodeOf(err) != CodeUnauthorized:
		return CertificateStatusResult{}, asError(err)
	case err != nil:
		res.Status = CertUnknown
	case !a.cfg.Clock().Before(cert.NotAfter):
		res.Status = CertExpired
	default:
		res.Status = CertGood
	}
	return res, nil
}
