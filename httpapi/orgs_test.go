package httpapi_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/authn"
	"github.com/rap-fabric/core/httpapi"
)

// TestOrgHighRiskRoutesAreRegistered: every organization step-up marker
// names a registered organization route and a high-risk organization action,
// and the routes that change accounts, policies and resources carry one.
func TestOrgHighRiskRoutesAreRegistered(t *testing.T) {
	routed := map[string]bool{}
	for _, r := range httpapi.New(httpapi.Options{}).Routes() {
		routed[r.Method+" "+r.Path] = true
	}
	marks := httpapi.OrgHighRiskRoutes()
	for k, a := range marks {
		require.True(t, routed[k], "organization high-risk marker %q names no route", k)
		require.True(t, strings.Contains(k, " /v1/orgs/{org}/"), k)
		require.True(t, authn.Action(a).HighRisk(), a)
		require.True(t, strings.HasPrefix(a, "org."), a)
	}
	for _, must := range []string{"POST /v1/orgs/{org}/users", "POST /v1/orgs/{org}/users/{uid}/disable", "POST /v1/orgs/{org}/policies",
		"DELETE /v1/orgs/{org}/policies/{pid}", "POST /v1/orgs/{org}/sessions/{sid}/revoke"} {
		require.Contains(t, marks, must)
	}
	for _, must := range []string{"POST /v1/organizations/{org}/admins", "POST /v1/organizations/{org}/endpoints"} {
		require.Contains(t, httpapi.HighRiskRoutes(), must)
	}
}
