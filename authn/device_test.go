package authn

import (
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestSourceNetwork(t *testing.T) {
	for in, want := range map[string]string{
		"198.51.100.77":            "198.51.100.0/24",
		"::ffff:198.51.100.77":     "198.51.100.0/24",
		"2001:db8:1:2:3:4:5:6":     "2001:db8:1:2::/64",
		"fe80::1%eth0":             "fe80::/64",
		"2001:db8:1:2:ffff::ffff":  "2001:db8:1:2::/64",
		"2001:db8:1:3:0:0:0:1":     "2001:db8:1:3::/64",
		"10.0.0.1":                 "10.0.0.0/24",
		"::ffff:10.0.0.255":        "10.0.0.0/24",
		"2001:db8:ffff:ffff::1234": "2001:db8:ffff:ffff::/64",
	} {
		require.Equal(t, want, SourceNetwork(addr(in)).String(), in)
	}
	require.False(t, SourceNetwork(netip.Addr{}).IsValid())
}

func TestAssessLogin(t *testing.T) {
	home := addr("198.51.100.7")
	away := addr("203.0.113.9")
	dev := &TrustedDevice{Networks: []netip.Prefix{SourceNetwork(home)}}
	tests := []struct {
		name                    string
		in                      RiskInput
		mfa, enroll, trusted    bool
		deviceTrusted, knownNet bool
	}{
		{"platform unknown device", RiskInput{Platform: true, MFAEnrolled: true, Source: home}, true, false, false, false, false},
		{"platform trusted device known net", RiskInput{Platform: true, MFAEnrolled: true, Device: dev, Source: home}, true, false, true, true, true},
		{"platform trusted device new net", RiskInput{Platform: true, MFAEnrolled: true, Device: dev, Source: away}, true, false, false, true, false},
		{"platform without MFA", RiskInput{Platform: true, Source: home}, false, true, false, false, false},
		{"user unknown device", RiskInput{MFAEnrolled: true, Source: home}, true, false, false, false, false},
		{"user trusted device known net", RiskInput{MFAEnrolled: true, Device: dev, Source: home}, false, false, true, true, true},
		{"user trusted device new net", RiskInput{MFAEnrolled: true, Device: dev, Source: away}, true, false, false, true, false},
		{"user without MFA", RiskInput{Source: away}, false, false, false, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := AssessLogin(tc.in)
			require.Equal(t, tc.mfa, d.SecondFactor, "second factor")
			require.Equal(t, tc.enroll, d.EnrollmentRequired, "enrollment")
			require.Equal(t, tc.trusted, d.Trusted(), "trusted")
			require.Equal(t, tc.deviceTrusted, d.DeviceTrusted)
			require.Equal(t, tc.knownNet, d.KnownNetwork)
			require.NotEmpty(t, d.RiskMap()["device"])
		})
	}
}

func TestDevicesLookup(t *testing.T) {
	clk := newFakeClock()
	store := NewMemStore(nil)
	d, err := NewDevices(DevicesOptions{Store: store, Clock: clk, Rand: seededRand(11), TTL: 24 * time.Hour, MaxNetworks: 2})
	require.NoError(t, err)
	home := addr("198.51.100.7")
	tok, dev, err := d.Register(ctx, "alice", "laptop", home)
	require.NoError(t, err)
	require.Equal(t, []netip.Prefix{SourceNetwork(home)}, dev.Networks)

	got, err := d.Lookup(ctx, tok, "alice")
	require.NoError(t, err)
	require.NotNil(t, got)
	require.Equal(t, dev.ID, got.ID)

	for name, tc := range map[string]struct{ tok, user string }{
		"other user":    {tok, "bob"},
		"no cookie":     {"", "alice"},
		"garbage":       {"rapd_nope", "alice"},
		"session token": {"raps_" + tok[5:], "alice"},
	} {
		got, err := d.Lookup(ctx, tc.tok, tc.user)
		require.NoError(t, err, name)
		require.Nil(t, got, name)
	}

	// Networks are capped, oldest dropped.
	require.NoError(t, d.Remember(ctx, dev.ID, addr("203.0.113.1")))
	require.NoError(t, d.Remember(ctx, dev.ID, addr("2001:db8::1")))
	got, _ = d.Lookup(ctx, tok, "alice")
	require.Equal(t, []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24"), netip.MustParsePrefix("2001:db8::/64")}, got.Networks)

	// Expiry.
	clk.Advance(25 * time.Hour)
	got, err = d.Lookup(ctx, tok, "alice")
	require.NoError(t, err)
	require.Nil(t, got, "expired")

	// Revocation.
	tok2, dev2, err := d.Register(ctx, "alice", "phone", home)
	require.NoError(t, err)
	require.ErrorIs(t, d.Revoke(ctx, "bob", dev2.ID), ErrNotFound, "only the owner revokes")
	require.NoError(t, d.Revoke(ctx, "alice", dev2.ID))
	got, err = d.Lookup(ctx, tok2, "alice")
	require.NoError(t, err)
	require.Nil(t, got, "revoked")
	list, err := d.List(ctx, "alice")
	require.NoError(t, err)
	require.Len(t, list, 2)
}
