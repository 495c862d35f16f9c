package authority

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestStoredResponseFingerprint: a stored response carries the request
// fingerprint; rows stored before fingerprints existed (a bare response) are
// read as such, whatever JSON they hold.
func TestStoredResponseFingerprint(t *testing.T) {
	stored, err := wrapResponse("abc", map[string]any{"id": "c1"})
	require.NoError(t, err)
	hash, resp, wrapped := unwrapResponse(stored)
	require.True(t, wrapped)
	require.Equal(t, "abc", hash)
	require.JSONEq(t, `{"id":"c1"}`, string(resp))

	for _, legacy := range []string{`{"id":"c1","name":"x"}`, `[1,2]`, `true`, `null`, `{"rap_request_sha256":"x"}`, `"s"`} {
		hash, resp, wrapped = unwrapResponse([]byte(legacy))
		require.False(t, wrapped, legacy)
		require.Empty(t, hash)
		require.Equal(t, legacy, string(resp))
	}

	require.Equal(t, "", requestHashFrom(context.Background()))
	require.Equal(t, "h1", requestHashFrom(WithRequestHash(context.Background(), "h1")))
}
