package adminingress

import (
	"context"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestForwarderNeverResendsAWriteOfUnknownFate: the first authority reads a
// request and drops the connection without answering. A GET moves on to the
// next authority; a POST (which the first may have applied) is answered with
// an error and never sent to the next one.
func TestForwarderNeverResendsAWriteOfUnknownFate(t *testing.T) {
	drop := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body)
		panic(http.ErrAbortHandler)
	}))
	defer drop.Close()
	var served atomic.Int32
	ok := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		w.WriteHeader(http.StatusOK)
	}))
	defer ok.Close()
	host := func(s *httptest.Server) string { return strings.TrimPrefix(s.URL, "https://") }
	fw, err := newForwarder(Forwarding{Authorities: []string{host(drop), "https://" + host(ok) + "/"}}, nil, 5*time.Second)
	require.NoError(t, err)
	defer fw.close()
	require.Equal(t, []string{host(drop), host(ok)}, fw.order(), "addresses are normalized")
	pool := x509.NewCertPool()
	pool.AddCert(drop.Certificate())
	pool.AddCert(ok.Certificate())
	fw.hc.Transport.(*http.Transport).TLSClientConfig.RootCAs = pool

	in := httptest.NewRequest(http.MethodPost, "https://endpoint.example/v1/x", nil)
	_, err = fw.do(context.Background(), in, http.MethodPost, "/v1/x", []byte(`{"a":1}`), nil)
	require.ErrorContains(t, err, "may have been applied")
	require.Zero(t, served.Load(), "the write was not sent to another authority")

	resp, err := fw.do(context.Background(), in, http.MethodGet, "/v1/x", nil, nil)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.EqualValues(t, 1, served.Load(), "a read moves on to the next authority")
	require.Equal(t, host(ok), fw.order()[0], "the authority that answered is tried first next time")
}
