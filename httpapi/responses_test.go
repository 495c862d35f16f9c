package httpapi

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/authority"
	"github.com/rap-fabric/core/domain"
	"github.com/rap-fabric/core/store"
)

// sameJSON: the typed response marshals to exactly what the row (or view)
// did before the mapping, field for field, and carries none of the hidden
// columns.
func sameJSON(t *testing.T, row, resp any, hidden ...string) {
	t.Helper()
	a, err := json.Marshal(row)
	require.NoError(t, err)
	b, err := json.Marshal(resp)
	require.NoError(t, err)
	require.JSONEq(t, string(a), string(b))
	for _, h := range hidden {
		require.NotContains(t, string(b), h)
	}
}

func TestResponsesKeepTheAPIShape(t *testing.T) {
	now := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	s := func(v string) *string { return &v }
	c := authority.ClusterView{Cluster: store.Cluster{ID: "c1", Name: "East", Slug: "east", Status: "active", Region: "eu", Metadata: json.RawMessage(`{"a":1}`),
		CAKeyID: "k1", CACertDER: []byte("SECRET-DER"), CreatedAt: now, UpdatedAt: now}, CAPin: "sha256:ab"}
	sameJSON(t, c, newCluster(c), "SECRET")

	tok := store.JoinToken{ID: "t1", ClusterID: "c1", SecretHash: []byte("SECRET-HASH"), Description: "d", Scope: json.RawMessage(`{}`), AutoApprove: true,
		ExpiresAt: now, MaxUses: 3, UsedCount: 1, CreatedBy: "u1", CreatedAt: now, RevokedAt: &now}
	sameJSON(t, tok, newJoinToken(tok), "SECRET")
	ct := authority.CreatedToken{JoinToken: tok, Token: "rapj_x", CAPin: "sha256:ab"}
	sameJSON(t, ct, newCreatedToken(ct), "SECRET")

	jr := authority.JoinRequestView{JoinRequest: store.JoinRequest{ID: "j1", ClusterID: "c1", TokenID: "t1", NodeName: "n", NodeFingerprint: "fp",
		PublicKey: []byte{1}, NoisePublicKey: []byte{2}, ReportedCapabilities: json.RawMessage(`[]`), ReportedFacts: json.RawMessage(`{}`),
		RequestedRoles: json.RawMessage(`[]`), Status: "pending", PollSecretHash: []byte("SECRET-POLL"), SourceAddr: "10.0.0.1", CreatedAt: now,
		ExpiresAt: now, ReviewedBy: s("u1"), ReviewedAt: &now, ApprovedNodeID: s("n1"), RejectionReason: s("r")},
		KnownHostNodeID: "n0", RoleCheck: map[domain.Role][]domain.Capability{domain.RoleRelayNode: {"can_route_mesh"}}}
	sameJSON(t, jr, newJoinRequest(jr), "SECRET")

	u := authority.AdminAccount{ID: "u1", Name: "owner", Role: store.RolePlatformOwner, OrganizationID: s("o1"), Disabled: true, MFAEnrolled: true,
		SetupPending: true, CreatedAt: now, EnrolledAt: &now, PasswordHash: "SECRET-ARGON"}
	sameJSON(t, u, newAdminUser(u), "SECRET")
}
