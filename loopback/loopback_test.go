package loopback

import (
	"io"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCheck(t *testing.T) {
	for _, ok := range []string{"127.0.0.1:9464", "127.0.0.2:0", "[::1]:9464", "localhost:9464"} {
		require.NoError(t, Check(ok), ok)
	}
	for _, bad := range []string{":9464", "0.0.0.0:9464", "[::]:9464", "10.1.2.3:9464", "example.com:9464", "127.0.0.1", ""} {
		require.Error(t, Check(bad), bad)
	}
	require.ErrorIs(t, Check("0.0.0.0:1"), ErrNotLoopback)
}

// TestListenRefusesAndServesPprof: a non-loopback address never listens; a
// loopback one serves the pprof index.
func TestListenRefusesAndServesPprof(t *testing.T) {
	_, err := Listen("0.0.0.0:0", Pprof())
	require.ErrorIs(t, err, ErrNotLoopback)
	s, err := Listen("127.0.0.1:0", Pprof())
	require.NoError(t, err)
	defer s.Close()
	resp, err := http.Get("http://" + s.Addr() + "/debug/pprof/")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, string(body), "goroutine")
	resp, err = http.Get("http://" + s.Addr() + "/debug/pprof/goroutine?debug=1")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
}
