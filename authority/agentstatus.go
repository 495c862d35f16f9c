package authority

// What an agent asks besides its heartbeat: its desired state (Desired) and
// the status of a certificate (CertificateStatus).

import (
	"context"
	"crypto/x509"

	"github.com/rap-fabric/core/domain"
	"github.com/rap-fabric/core/fsm"
	"github.com/rap-fabric/core/pki"
	"github.com/rap-fabric/core/store"
)

// DesiredState is what a node should run in one cluster (GET
// /v1/agent/desired): its membership status and active role assignments. The
// signed snapshot replaces this path later.
type DesiredState struct {
	ClusterID        string                 `json:"cluster_id"`
	NodeID           string                 `json:"node_id"`
	MembershipStatus string                 `json:"membership_status"`
	Roles            []store.RoleAssignment `json:"roles"`
}

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
	if m.Status != string(domain.MembershipActive) {
		roles = []store.RoleAssignment{}
	}
	return DesiredState{ClusterID: p.ClusterID, NodeID: p.NodeID, MembershipStatus: m.Status, Roles: roles}, nil
}

// Certificate states answered by CertificateStatus.
const (
	CertGood    = "good"
	CertRevoked = "revoked"
	CertExpired = "expired"
	CertUnknown = "unknown"
)

// CertificateStatusResult is the answer of CertificateStatus.
type CertificateStatusResult struct {
	Status    string `json:"status"`
	ClusterID string `json:"cluster_id,omitempty"`
	NodeID    string `json:"node_id,omitempty"`
	Serial    string `json:"serial,omitempty"`
}

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
