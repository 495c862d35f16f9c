package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseCheckpoint(t *testing.T) {
	h := strings.Repeat("ab", 32)
	a, err := parseCheckpoint("42:" + h)
	require.NoError(t, err)
	require.Equal(t, int64(42), a.Seq)
	require.Equal(t, h, a.Hash.String())
	require.Zero(t, a.MaxID)
	a, err = parseCheckpoint("42:" + h + ":77:5")
	require.NoError(t, err)
	require.Equal(t, int64(77), a.MaxID)
	require.Equal(t, int64(5), a.V2From)
	for _, bad := range []string{"", "42", "x:" + h, "-1:" + h, "42:abcd", "42:" + h + ":-3", "42:" + h + ":1:0", "42:" + h + ":1:2:3"} {
		_, err := parseCheckpoint(bad)
		require.Error(t, err, bad)
	}
}
