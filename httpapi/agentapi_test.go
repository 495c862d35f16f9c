package httpapi_test

import (
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/agentapi"
	"github.com/rap-fabric/core/httpapi"
)

// TestAgentRoutesAreTheAgentapiContract: every agent route the router serves
// is a path of the agentapi contract, and every contract path is served.
func TestAgentRoutesAreTheAgentapiContract(t *testing.T) {
	contract := map[string]bool{}
	for _, p := range []string{agentapi.PathJoin, agentapi.PathJoinPoll, agentapi.PathWhoAmI, agentapi.PathHeartbeat, agentapi.PathDesired,
		agentapi.PathRenew, agentapi.PathCertStatus, agentapi.PathSnapshot, agentapi.PathCA, agentapi.PathStorageSnapshots, agentapi.PathLinks,
		agentapi.PathVPNAssignments, agentapi.PathVPNLeaseAcquire, agentapi.PathVPNLeaseRenew, agentapi.PathVPNLeaseRelease, agentapi.PathVPNStatusReport,
		agentapi.PathReleaseManifest, agentapi.PathReleaseArtifact, agentapi.PathUpdates, agentapi.PathAdminIngress, agentapi.PathHeartbeatStream} {
		contract[p] = true
	}
	served := map[string]bool{}
	for _, r := range httpapi.New(httpapi.Options{}).Routes() {
		if strings.HasPrefix(r.Path, "/v1/agent/") {
			served[r.Path] = true
			require.True(t, contract[r.Path], "agent route %s %s is not in agentapi", r.Method, r.Path)
		}
	}
	var missing []string
	for p := range contract {
		if !served[p] {
			missing = append(missing, p)
		}
	}
	sort.Strings(missing)
	require.Empty(t, missing, "agentapi paths the router does not serve")
	require.Equal(t, agentapi.PathJoinPoll, agentapi.JoinPollPath("{id}"), "the template and the path agents poll agree")
}
