package httpapi

// Typed API responses for the resources whose PostgreSQL row holds more than
// the API shows (secret hashes, certificates in DER): each is mapped from the
// store row (or the authority's view of it) once, here, so a column can
// change without changing the API, and a new column is never published by
// accident. The JSON field names are the API's and stay as they were.

import (
	"encoding/json"
	"time"

	"github.com/rap-fabric/core/authority"
	"github.com/rap-fabric/core/domain"
	"github.com/rap-fabric/core/store"
)

// Cluster is a cluster as the owner API shows it.
type Cluster struct {
	ID        string          `json:"id"`
	Name      string          `json:"name"`
	Slug      string          `json:"slug"`
	Status    string          `json:"status"`
	Region    string          `json:"region"`
	Metadata  json.RawMessage `json:"metadata"`
	CAKeyID   string          `json:"ca_key_id"`
	CreatedAt time.Time       `json:"created_at"`
	UpdatedAt time.Time       `json:"updated_at"`
	CAPin     string          `json:"ca_pin"`
}

func newCluster(c authority.ClusterView) Cluster {
	return Cluster{ID: c.ID, Name: c.Name, Slug: c.Slug, Status: c.Status, Region: c.Region, Metadata: c.Metadata, CAKeyID: c.CAKeyID,
		CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt, CAPin: c.CAPin}
}

// JoinToken is a join token as the owner API shows it (never its secret or
// the secret's hash).
type JoinToken struct {
	ID          string          `json:"id"`
	ClusterID   string          `json:"cluster_id"`
	Description string          `json:"description"`
	Scope       json.RawMessage `json:"scope"`
	AutoApprove bool            `json:"auto_approve"`
	ExpiresAt   time.Time       `json:"expires_at"`
	MaxUses     int             `json:"max_uses"`
	UsedCount   int             `json:"used_count"`
	CreatedBy   string          `json:"created_by"`
	CreatedAt   time.Time       `json:"created_at"`
	RevokedAt   *time.Time      `json:"revoked_at,omitempty"`
}

func newJoinToken(t store.JoinToken) JoinToken {
	return JoinToken{ID: t.ID, ClusterID: t.ClusterID, Description: t.Description, Scope: t.Scope, AutoApprove: t.AutoApprove,
		ExpiresAt: t.ExpiresAt, MaxUses: t.MaxUses, UsedCount: t.UsedCount, CreatedBy: t.CreatedBy, CreatedAt: t.CreatedAt, RevokedAt: t.RevokedAt}
}

// CreatedToken answers POST /v1/tokens: the token itself is shown once.
type CreatedToken struct {
	JoinToken
	Token string `json:"token"`
	CAPin string `json:"ca_pin"`
}

func newCreatedToken(t authority.CreatedToken) CreatedToken {
	return CreatedToken{JoinToken: newJoinToken(t.JoinToken), Token: t.Token, CAPin: t.CAPin}
}

// JoinRequest is a join request as the owner API shows it (never the poll
// secret's hash).
type JoinRequest struct {
	ID                   string                              `json:"id"`
	ClusterID            string                              `json:"cluster_id"`
	TokenID              string                              `json:"token_id"`
	NodeName             string                              `json:"node_name"`
	NodeFingerprint      string                              `json:"node_fingerprint"`
	PublicKey            []byte                              `json:"public_key"`
	NoisePublicKey       []byte                              `json:"noise_public_key"`
	ReportedCapabilities json.RawMessage                     `json:"reported_capabilities"`
	ReportedFacts        json.RawMessage                     `json:"reported_facts"`
	RequestedRoles       json.RawMessage                     `json:"requested_roles"`
	Status               string                              `json:"status"`
	SourceAddr           string                              `json:"source_addr"`
	CreatedAt            time.Time                           `json:"created_at"`
	ExpiresAt            time.Time                           `json:"expires_at"`
	ReviewedBy           *string                             `json:"reviewed_by,omitempty"`
	ReviewedAt           *time.Time                          `json:"reviewed_at,omitempty"`
	ApprovedNodeID       *string                             `json:"approved_node_id,omitempty"`
	RejectionReason      *string                             `json:"rejection_reason,omitempty"`
	KnownHostNodeID      string                              `json:"known_host_node_id,omitempty"`
	RoleCheck            map[domain.Role][]domain.Capability `json:"role_missing_capabilities"`
}

func newJoinRequest(v authority.JoinRequestView) JoinRequest {
	j := v.JoinRequest
	return JoinRequest{ID: j.ID, ClusterID: j.ClusterID, TokenID: j.TokenID, NodeName: j.NodeName, NodeFingerprint: j.NodeFingerprint,
		PublicKey: j.PublicKey, NoisePublicKey: j.NoisePublicKey, ReportedCapabilities: j.ReportedCapabilities, ReportedFacts: j.ReportedFacts,
		RequestedRoles: j.RequestedRoles, Status: j.Status, SourceAddr: j.SourceAddr, CreatedAt: j.CreatedAt, ExpiresAt: j.ExpiresAt,
		ReviewedBy: j.ReviewedBy, ReviewedAt: j.ReviewedAt, ApprovedNodeID: j.ApprovedNodeID, RejectionReason: j.RejectionReason,
		KnownHostNodeID: v.KnownHostNodeID, RoleCheck: v.RoleCheck}
}

// AdminUser is a platform admin account as the API shows it (never its
// password hash).
type AdminUser struct {
	ID             string     `json:"id"`
	Name           string     `json:"name"`
	Role           string     `json:"role"`
	OrganizationID *string    `json:"organization_id,omitempty"`
	Disabled       bool       `json:"disabled"`
	MFAEnrolled    bool       `json:"mfa_enrolled"`
	SetupPending   bool       `json:"setup_pending"`
	CreatedAt      time.Time  `json:"created_at"`
	EnrolledAt     *time.Time `json:"mfa_enrolled_at,omitempty"`
}

func newAdminUser(u authority.AdminAccount) AdminUser {
	if u.OrgRole != nil { // an organization account (login, setup): its organization role
		u.Role = *u.OrgRole
	}
	return AdminUser{ID: u.ID, Name: u.Name, Role: u.Role, OrganizationID: u.OrganizationID, Disabled: u.Disabled, MFAEnrolled: u.MFAEnrolled,
		SetupPending: u.SetupPending, CreatedAt: u.CreatedAt, EnrolledAt: u.EnrolledAt}
}

// one maps the result of a service call with f (on error too: the handler
// writes nothing then).
func one[T, U any](f func(T) U) func(T, error) (U, error) {
	return func(v T, err error) (U, error) { return f(v), err }
}

// many maps every element of a service call's result with f.
func many[T, U any](f func(T) U) func([]T, error) ([]U, error) {
	return func(vs []T, err error) ([]U, error) {
		if err != nil {
			return nil, err
		}
		out := make([]U, len(vs))
		for i, v := range vs {
			out[i] = f(v)
		}
		return out, nil
	}
}
