package authority

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/store"
	"github.com/rap-fabric/core/vpnrules"
)

func TestVPNHealth(t *testing.T) {
	now := time.Now()
	on := store.VPNConnection{DesiredState: "enabled"}
	live := &store.VPNLease{ExpiresAt: now.Add(time.Second)}
	dead := &store.VPNLease{ExpiresAt: now.Add(-time.Second)}
	for _, tc := range []struct {
		c      store.VPNConnection
		l      *store.VPNLease
		status string
		want   string
	}{
		{store.VPNConnection{DesiredState: "disabled"}, live, "assigned", "disabled"},
		{on, nil, "", "no_owner"},
		{on, dead, "assigned", "lease_expired"},
		{on, live, "assigned", "healthy"},
		{on, live, "blocked", "lease_held"},
		{on, live, "", "lease_held"},
	} {
		require.Equal(t, tc.want, health(tc.c, tc.l, tc.status, now), "%+v", tc)
	}
}

func TestVPNInvalidMapsRuleErrors(t *testing.T) {
	_, err := vpnrules.ParseFamily("ipx")
	e := vpnInvalid(err)
	var ae *Error
	require.True(t, errors.As(e, &ae))
	require.Equal(t, CodeInvalid, ae.Code)
	require.NotContains(t, ae.Message, "invalid: ", "the rule's message, without the sentinel prefix")
	other := errors.New("database down")
	require.Equal(t, other, vpnInvalid(other), "other errors pass through")
	require.NoError(t, vpnInvalid(nil))
}

func TestVPNConfigValidate(t *testing.T) {
	require.NoError(t, VPNConfig{}.Validate())
	require.Error(t, VPNConfig{ReclaimInterval: -time.Second}.Validate())
	require.Error(t, VPNConfig{DefaultLeaseTTL: time.Second}.Validate())
	require.NoError(t, VPNConfig{DefaultLeaseTTL: 10 * time.Second}.Validate())
	_, err := newVPN(nil, VPNConfig{})
	require.Error(t, err)
}
