package runtime

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/agentapi"
	"github.com/rap-fabric/core/apiclient"
	"github.com/rap-fabric/core/pki"
)

// hbAuthority is a fake authority's heartbeat routes over pinned TLS: POST
// always; the stream only when stream is set (otherwise 404, as an older
// authority's router answers).
type hbAuthority struct {
	mu           sync.Mutex
	posts, opens int
	streamed     int
	srv          *httptest.Server
	client       *apiclient.Client
}

func newHBAuthority(t *testing.T, stream bool) *hbAuthority {
	now := time.Now()
	ca := newTestCA(t, now)
	a := &hbAuthority{}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+agentapi.PathHeartbeat, func(w http.ResponseWriter, r *http.Request) {
		var hb agentapi.Heartbeat
		_ = json.NewDecoder(r.Body).Decode(&hb)
		a.mu.Lock()
		a.posts++
		a.mu.Unlock()
		_ = json.NewEncoder(w).Encode(agentapi.HeartbeatAck{Seq: hb.Seq, AuthorityID: "post"})
	})
	mux.HandleFunc("POST "+agentapi.PathHeartbeatStream, func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.opens++
		a.mu.Unlock()
		if !stream {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"error":{"code":"not_found","message":"no such route"}}`))
			return
		}
		rc := http.NewResponseController(w)
		_ = rc.EnableFullDuplex()
		sc := bufio.NewScanner(r.Body)
		for sc.Scan() {
			var hb agentapi.Heartbeat
			if json.Unmarshal(sc.Bytes(), &hb) != nil {
				return
			}
			a.mu.Lock()
			a.streamed++
			a.mu.Unlock()
			b, _ := json.Marshal(agentapi.HeartbeatStreamReply{Ack: &agentapi.HeartbeatAck{Seq: hb.Seq, AuthorityID: "stream"}})
			_, _ = w.Write(append(b, '\n'))
			_ = rc.Flush()
		}
	})
	pub, key, err := ed25519.GenerateKey(nil)
	require.NoError(t, err)
	der, err := pki.IssueServerCert(nil, ca.key, ca.der, pub, nil, []net.IP{net.ParseIP("127.0.0.1")}, now, 24*time.Hour)
	require.NoError(t, err)
	a.srv = httptest.NewUnstartedServer(mux)
	a.srv.TLS = &tls.Config{MinVersion: tls.VersionTLS13, ClientAuth: tls.RequireAnyClientCert,
		Certificates: []tls.Certificate{{Certificate: [][]byte{der, ca.der}, PrivateKey: key}}}
	a.srv.StartTLS()
	t.Cleanup(a.srv.Close)
	pin, err := pki.PinDER(ca.der)
	require.NoError(t, err)
	a.client, err = apiclient.New(apiclient.Options{Servers: []string{a.srv.Listener.Addr().String()}, CAPin: pin,
		Certificate: &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, Timeout: 5 * time.Second})
	require.NoError(t, err)
	t.Cleanup(a.client.Close)
	return a
}

// TestHeartbeatSenderUsesTheStream: against an authority with the stream
// route, heartbeats go over one stream, opened once.
func TestHeartbeatSenderUsesTheStream(t *testing.T) {
	a := newHBAuthority(t, true)
	var s hbSender
	defer s.close()
	for seq := int64(1); seq <= 3; seq++ {
		ack, err := s.send(context.Background(), a.client, heartbeat{Seq: seq}, 5*time.Second, time.Now())
		require.NoError(t, err)
		require.Equal(t, seq, ack.Seq)
		require.Equal(t, "stream", ack.AuthorityID)
	}
	require.Equal(t, 3, s.streamed)
	a.mu.Lock()
	defer a.mu.Unlock()
	require.Equal(t, 1, a.opens)
	require.Zero(t, a.posts)
}

// TestHeartbeatSenderFallsBackOn404: an older authority (404 on the stream
// route) gets every heartbeat by POST; the stream is not tried again until
// noStreamRetry has passed.
func TestHeartbeatSenderFallsBackOn404(t *testing.T) {
	a := newHBAuthority(t, false)
	var s hbSender
	defer s.close()
	now := time.Now()
	for seq := int64(1); seq <= 3; seq++ {
		ack, err := s.send(context.Background(), a.client, heartbeat{Seq: seq}, 5*time.Second, now)
		require.NoError(t, err)
		require.Equal(t, seq, ack.Seq)
		require.Equal(t, "post", ack.AuthorityID)
	}
	a.mu.Lock()
	require.Equal(t, 1, a.opens, "tried once, then POST only")
	require.Equal(t, 3, a.posts)
	a.mu.Unlock()
	_, err := s.send(context.Background(), a.client, heartbeat{Seq: 4}, 5*time.Second, now.Add(noStreamRetry+time.Second))
	require.NoError(t, err)
	a.mu.Lock()
	require.Equal(t, 2, a.opens, "tried again after noStreamRetry")
	a.mu.Unlock()
}
