package httpapi

import (
	"bytes"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/authority"
)

func TestCheckDepth(t *testing.T) {
	require.NoError(t, checkDepth([]byte(`{"a":[1,{"b":"[[[[[[["}]}`), 3))
	require.Error(t, checkDepth([]byte(`{"a":[[1]]}`), 2))
	require.NoError(t, checkDepth([]byte(`"\"[[[["`), 1))
}

// FuzzDecodeJoinRequest feeds arbitrary bodies to the decoder used for the
// unauthenticated enrollment route: it must return a typed error or a value,
// never panic.
func FuzzDecodeJoinRequest(f *testing.F) {
	f.Add([]byte(`{"token":"rapjt.0123456789abcdef.x","node_name":"n","public_key":"AAAA","facts":{"os":"linux"}}`))
	f.Add([]byte(`{"facts":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}`))
	f.Add([]byte(`{"capabilities":["can_route_mesh"],"poll_secret":"` + strings.Repeat("A", 44) + `"}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		r := httptest.NewRequest("POST", "/v1/agent/join", bytes.NewReader(body))
		w := httptest.NewRecorder()
		var in authority.JoinRequestInput
		err := decodeJSON(w, r, &in)
		if err != nil {
			var ae *authority.Error
			require.True(t, errors.As(err, &ae), "typed error, got %T", err)
			_, known := statusOf[ae.Code]
			require.True(t, known, "code %q maps to a status", ae.Code)
		}
	})
}
