package authority

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/domain"
	"github.com/rap-fabric/core/store"
)

func TestCheckDocument(t *testing.T) {
	doc, err := checkDocument("policy", nil, false)
	require.NoError(t, err)
	require.JSONEq(t, `{}`, string(doc))
	doc, err = checkDocument("entry_policies", nil, true)
	require.NoError(t, err)
	require.JSONEq(t, `[]`, string(doc))

	_, err = checkDocument("policy", json.RawMessage(`{"max_hops": 4, "secret_ref": "vault:x"}`), false)
	require.NoError(t, err, "references are fine")
	for _, bad := range []string{`[1]`, `{"a":`, `"x"`, `{"nested": {"Private_Key": "k"}}`, `{"password": "p"}`} {
		_, err := checkDocument("policy", json.RawMessage(bad), false)
		var ae *Error
		require.True(t, errors.As(err, &ae), bad)
		require.Equal(t, CodeInvalid, ae.Code, bad)
	}
	_, err = checkDocument("entry_policies", json.RawMessage(`[{"organization_id": "o", "policy": {"api_key": "k"}}]`), true)
	require.Equal(t, CodeInvalid, CodeOf(err))
	_, err = checkDocument("entry_policies", json.RawMessage(`[{"org": "o"}]`), true)
	require.Equal(t, CodeInvalid, CodeOf(err))
	big := make([]byte, MaxDocumentBytes+1)
	for i := range big {
		big[i] = ' '
	}
	big[0], big[len(big)-1] = '{', '}'
	_, err = checkDocument("policy", big, false)
	require.Equal(t, CodeTooLarge, CodeOf(err))
}

func TestRemoteAccessAdapters(t *testing.T) {
	caps := []domain.Capability{domain.CapEgressPrivateNetwork, domain.CapRunSSHWorker, domain.CapRunRDPWorker}
	out, err := remoteAccessConfig(json.RawMessage(`{"x":1}`), caps)
	require.NoError(t, err)
	require.JSONEq(t, `{"x":1,"adapters":["rdp","ssh"]}`, string(out))

	out, err = remoteAccessConfig(json.RawMessage(`{"adapters":["ssh","ssh"]}`), caps)
	require.NoError(t, err)
	require.JSONEq(t, `{"adapters":["ssh"]}`, string(out))

	_, err = remoteAccessConfig(json.RawMessage(`{"adapters":["vnc"]}`), caps)
	var ae *Error
	require.True(t, errors.As(err, &ae))
	require.Equal(t, []domain.Capability{domain.CapRunVNCWorker}, ae.Details["missing_capabilities"])
	_, err = remoteAccessConfig(json.RawMessage(`{"adapters":["telnet"]}`), caps)
	require.Equal(t, CodeInvalid, CodeOf(err))
	_, err = remoteAccessConfig(json.RawMessage(`{}`), []domain.Capability{domain.CapEgressPrivateNetwork})
	require.Equal(t, CodeInvalid, CodeOf(err), "no adapter can run")

	for _, s := range []string{"rdp-worker", "vnc-worker", "ssh-worker", "core-mesh", "config-storage", "nope"} {
		_, err := checkServiceType(s)
		require.Equal(t, CodeInvalid, CodeOf(err), s)
	}
	_, err = checkServiceType(ServiceRemoteAccess)
	require.NoError(t, err)
}

func TestStorageAssignments(t *testing.T) {
	str := func(s string) *string { return &s }
	members := []store.SnapshotMember{
		{NodeID: "s1", MembershipStatus: "active"}, {NodeID: "s2", MembershipStatus: "active"}, {NodeID: "s3", MembershipStatus: "active", GroupID: str("g-other")},
		{NodeID: "a", MembershipStatus: "active", GroupID: str("g-child")}, {NodeID: "b", MembershipStatus: "disabled"},
		{NodeID: "r", MembershipStatus: "revoked"},
	}
	role := func(node, status string, policy string) store.RoleAssignment {
		return store.RoleAssignment{NodeID: node, Role: string(domain.RoleConfigStorage), Status: status, Policy: json.RawMessage(policy)}
	}
	roles := []store.RoleAssignment{
		role("s1", "active", `{}`),
		role("s2", "active", `{"groups":["g-root"]}`), // serves the g-root subtree only
		role("s3", "disabled", `{}`),
	}
	groupOf := map[string]string{"a": "g-child", "s3": "g-other"}
	parent := map[string]string{"g-child": "g-root"}
	out := storageAssignments(members, roles, groupOf, parent, 2)
	served := map[string][]string{}
	for _, sa := range out {
		served[sa.StorageNodeID] = sa.NodeIDs
	}
	require.ElementsMatch(t, []string{"s2", "s3", "a", "b"}, served["s1"], "never itself, never the revoked node")
	require.ElementsMatch(t, []string{"a"}, served["s2"], "only its groups' subtree")
	require.NotContains(t, served, "s3", "a disabled role serves nothing")

	// With a fanout of one, every member with a candidate has exactly one
	// server (s1 has none: s2 does not serve its group).
	count := map[string]int{}
	for _, sa := range storageAssignments(members, roles, groupOf, parent, 1) {
		for _, n := range sa.NodeIDs {
			require.NotEqual(t, sa.StorageNodeID, n)
			count[n]++
		}
	}
	require.Equal(t, map[string]int{"s2": 1, "s3": 1, "a": 1, "b": 1}, count)
}
