package daemon_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/internal/authtest"
	"github.com/rap-fabric/core/pki"
)

// tryRaft opens a TLS connection to a Raft port with cert and reports whether
// the authority accepted it (a refused client certificate fails the first read).
func tryRaft(t *testing.T, addr string, cert *tls.Certificate) error {
	raw, err := net.DialTimeout("tcp", addr, 3*time.Second)
	require.NoError(t, err)
	defer raw.Close()
	cfg := &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13} //nolint:gosec // probing
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	c := tls.Client(raw, cfg)
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	if err := c.Handshake(); err != nil {
		return err
	}
	// raft's first byte is the RPC type; a refused peer gets an alert instead
	// of a response.
	if _, err := c.Write([]byte{0}); err != nil {
		return err
	}
	_, err = c.Read(make([]byte, 1))
	return err
}

func TestRaftPortRefusesNonMembers(t *testing.T) {
	g := authtest.NewPlain(t, 3)
	ctx := context.Background()
	l := g.Leader(10 * time.Second)
	raftAddr := g.Followers(l)[0].RaftAddr()

	// An enrolled node's certificate (cluster CA) is refused on the Raft port.
	owner := g.Client(g.DS...)
	_, pin := mkCluster(t, owner, "east")
	tok := mkToken(t, owner, "east", 1)
	ag := newFakeAgent("edge", "edge")
	var st joinStatus
	require.NoError(t, enrollClient(t, g, pin).Do(ctx, http.MethodPost, "/v1/agent/join", ag.joinBody(tok.Token), &st, nil))
	require.NoError(t, owner.Do(ctx, http.MethodPost, "/v1/join-requests/"+st.RequestID+"/approve", nil, nil, nil))
	require.NoError(t, enrollClient(t, g, pin).Do(ctx, http.MethodPost, "/v1/agent/join/"+st.RequestID+"/poll", map[string]any{"poll_secret": ag.poll}, &st, nil))
	require.Equal(t, "approved", st.Status)
	err := tryRaft(t, raftAddr, &tls.Certificate{Certificate: [][]byte{st.Certificate}, PrivateKey: ag.priv})
	require.Error(t, err)
	require.Contains(t, err.Error(), "certificate")

	// No certificate at all: refused.
	require.Error(t, tryRaft(t, raftAddr, nil))

	// A member certificate from another platform CA: refused.
	caKey, caDER, err := pki.NewCA(rand.Reader, "platform", time.Now(), time.Hour)
	require.NoError(t, err)
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	der, err := pki.IssueMemberCert(rand.Reader, caKey, caDER, "intruder", pub, time.Now(), time.Hour)
	require.NoError(t, err)
	require.Error(t, tryRaft(t, raftAddr, &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv}))

	// The group still works.
	_, err = authtest.CreateCluster(ctx, owner, "still-fine")
	require.NoError(t, err)
}
