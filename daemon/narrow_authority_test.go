package daemon_test

import (
	"context"
	"errors"
	"net/http"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/apiclient"
	"github.com/rap-fabric/core/internal/authtest"
)

// A bootstrap (auto-approve) token must name its allowed roles and cluster,
// and is used only through its own cluster; requests outside its roles are
// refused.
func TestBootstrapTokenNeedsRolesAndClusterScope(t *testing.T) {
	g := authtest.New(t, 1)
	ctx := context.Background()
	g.Leader(10 * time.Second)
	owner := g.Client(g.DS...)
	_, pin := mkCluster(t, owner, "boot")
	code := func(err error) string {
		var ae *apiclient.Error
		if errors.As(err, &ae) {
			return ae.Code
		}
		return ""
	}
	err := owner.Do(ctx, http.MethodPost, "/v1/join-tokens", map[string]any{"cluster": "boot", "auto_approve": true}, nil, nil)
	require.Equal(t, "invalid_argument", code(err), "no allowed roles: %v", err)
	err = owner.Do(ctx, http.MethodPost, "/v1/join-tokens", map[string]any{"auto_approve": true, "allowed_roles": []string{"relay-node"}}, nil, nil)
	require.Equal(t, "invalid_argument", code(err), "no cluster: %v", err)

	var boot tokenResp
	require.NoError(t, owner.Do(ctx, http.MethodPost, "/v1/join-tokens", map[string]any{"cluster": "boot", "auto_approve": true, "max_uses": 3,
		"allowed_roles": []string{"entry-node"}}, &boot, nil))
	// relay-node (what the fake agent asks for) is outside the scope.
	var st joinStatus
	err = enrollClient(t, g, pin).Do(ctx, http.MethodPost, "/v1/agent/join", newFakeAgent("r", "r").joinBody(boot.Token), &st, nil)
	require.Equal(t, "invalid_argument", code(err), "%v", err)

	// Used through the platform endpoint (no cluster named by a CA pin): refused.
	in := newFakeAgent("p", "p")
	body := in.joinBody(boot.Token)
	body["requested_roles"] = []string{"entry-node"}
	plain, err := apiclient.New(apiclient.Options{Servers: []string{g.DS[0].APIAddr()}, CAPin: g.Pin})
	require.NoError(t, err)
	defer plain.Close()
	err = plain.Do(ctx, http.MethodPost, "/v1/agent/join", body, &st, nil)
	require.Equal(t, "token_invalid", code(err), "%v", err)

	// Through its cluster, inside its roles: approved at once.
	require.NoError(t, enrollClient(t, g, pin).Do(ctx, http.MethodPost, "/v1/agent/join", body, &st, nil))
	require.Equal(t, "approved", st.Status)
}

// A join request carrying an enrolled host's fingerprint cannot take over
// that host: a bootstrap token leaves it pending for review (audited), and
// even an owner's approval attaches the membership without replacing the
// host's capabilities.
func TestJoinRequestCannotOverwriteAnotherHostsCapabilities(t *testing.T) {
	g := authtest.New(t, 1)
	ctx := context.Background()
	d := g.Leader(10 * time.Second)
	owner := g.Client(g.DS...)
	_, eastPin := mkCluster(t, owner, "east")
	_, westPin := mkCluster(t, owner, "west")

	// The real host, approved in east with its capabilities.
	victim := newFakeAgent("victim", "victim-host")
	tok := mkToken(t, owner, "east", 1)
	var st joinStatus
	require.NoError(t, enrollClient(t, g, eastPin).Do(ctx, http.MethodPost, "/v1/agent/join", victim.joinBody(tok.Token), &st, nil))
	require.NoError(t, owner.Do(ctx, http.MethodPost, "/v1/join-requests/"+st.RequestID+"/approve", nil, &st, nil))
	var victimNode string
	require.NoError(t, d.DB.Pool.QueryRow(ctx, `SELECT approved_node_id::text FROM node_join_requests WHERE id = $1`, st.RequestID).Scan(&victimNode))
	caps := func() []string {
		rows, err := d.DB.Pool.Query(ctx, `SELECT capability FROM node_capabilities WHERE node_id = $1 AND reported`, victimNode)
		require.NoError(t, err)
		defer rows.Close()
		var out []string
		for rows.Next() {
			var c string
			require.NoError(t, rows.Scan(&c))
			out = append(out, c)
		}
		sort.Strings(out)
		return out
	}
	before := caps()
	require.Equal(t, []string{"can_accept_node_ingress", "can_route_mesh"}, before)

	// An impostor claims the same host fingerprint in west with other
	// capabilities, through a bootstrap token.
	impostor := newFakeAgent("impostor", "victim-host")
	body := impostor.joinBody("")
	body["capabilities"] = []string{"can_run_vpn_exit"}
	var boot tokenResp
	require.NoError(t, owner.Do(ctx, http.MethodPost, "/v1/join-tokens", map[string]any{"cluster": "west", "auto_approve": true, "max_uses": 1,
		"allowed_roles": []string{"relay-node"}}, &boot, nil))
	body["token"] = boot.Token
	require.NoError(t, enrollClient(t, g, westPin).Do(ctx, http.MethodPost, "/v1/agent/join", body, &st, nil))
	require.Equal(t, "pending", st.Status, "not approved automatically")
	require.Empty(t, st.Certificate)
	require.Equal(t, before, caps())
	var aud struct{ Items []map[string]any }
	require.NoError(t, owner.Do(ctx, http.MethodGet, "/v1/audit?action=join_request.approve&actor=bootstrap-token:"+boot.ID, nil, &aud, nil))
	require.Len(t, aud.Items, 1)
	require.Equal(t, "failed", aud.Items[0]["outcome"])
	var view struct {
		KnownHostNodeID string `json:"known_host_node_id"`
	}
	require.NoError(t, owner.Do(ctx, http.MethodGet, "/v1/join-requests/"+st.RequestID, nil, &view, nil))
	require.Equal(t, victimNode, view.KnownHostNodeID, "the review shows whose host it claims to be")

	// The owner approves it knowingly: the membership is attached, the
	// host's capabilities stay as its own heartbeats reported them.
	require.NoError(t, owner.Do(ctx, http.MethodPost, "/v1/join-requests/"+st.RequestID+"/approve", nil, nil, nil))
	require.Equal(t, before, caps())
}
