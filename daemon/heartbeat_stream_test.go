package daemon_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/agentapi"
	"github.com/rap-fabric/core/apiclient"
	"github.com/rap-fabric/core/daemon"
	"github.com/rap-fabric/core/httpapi"
	"github.com/rap-fabric/core/internal/authtest"
)

// streamFixture is one authority (real Raft, PostgreSQL, TLS API) and an
// enrolled node's mTLS client.
type streamFixture struct {
	g      *authtest.Group
	c      *apiclient.Client
	node   string
	latest func() int64
	flush  func()
}

func newStreamFixture(t *testing.T, addr func(l *daemon.Daemon) string) *streamFixture {
	g := authtest.New(t, 1)
	l := g.Leader(15 * time.Second)
	owner := g.Client(l)
	_, pin := mkCluster(t, owner, "east")
	ag := enrollAgent(t, g, owner, pin, "east", "edge-1")
	api := l.APIAddr()
	if addr != nil {
		api = addr(l)
	}
	c, err := apiclient.New(apiclient.Options{Servers: []string{api}, CAPin: pin, ServerName: httpapi.ServerNameForCluster(ag.cluster),
		Certificate: &tls.Certificate{Certificate: [][]byte{ag.cert}, PrivateKey: ag.priv}, Timeout: 10 * time.Second})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	f := &streamFixture{g: g, c: c, node: ag.nodeID}
	f.flush = func() { require.NoError(t, l.Auth.Heartbeats().Flush(context.Background())) }
	f.latest = func() int64 {
		var seq int64
		err := l.DB.Pool.QueryRow(context.Background(), `SELECT coalesce(max(seq), 0) FROM node_heartbeat_latest WHERE node_id::text = $1`, ag.nodeID).Scan(&seq)
		require.NoError(t, err)
		return seq
	}
	return f
}

func (f *streamFixture) open(t *testing.T) *apiclient.Stream {
	st, err := f.c.OpenStream(context.Background(), agentapi.PathHeartbeatStream, agentapi.ContentTypeNDJSON)
	require.NoError(t, err)
	t.Cleanup(st.Close)
	return st
}

func recvReply(t *testing.T, st *apiclient.Stream) agentapi.HeartbeatStreamReply {
	t.Helper()
	var rep agentapi.HeartbeatStreamReply
	require.NoError(t, st.Recv(&rep))
	return rep
}

// TestHeartbeatStream: heartbeats sent over one stream (real TLS + mTLS)
// are answered one ack each, in order, and stored (last write wins); a
// heartbeat the authority refuses (invalid state) is answered with the POST
// route's typed error and the stream goes on; a line of bad JSON mid-stream
// is answered with its typed error and ends the stream, and nothing of it
// is stored; an oversized line likewise (413 too_large).
func TestHeartbeatStream(t *testing.T) {
	f := newStreamFixture(t, nil)
	st := f.open(t)
	for seq := int64(1); seq <= 5; seq++ {
		require.NoError(t, st.Send(agentapi.Heartbeat{Seq: seq, SentAt: time.Now().UTC(), AgentVersion: "1.0.0", State: "normal"}))
		rep := recvReply(t, st)
		require.Nil(t, rep.Error)
		require.NotNil(t, rep.Ack)
		require.Equal(t, seq, rep.Ack.Seq, "acks in order")
		require.Equal(t, f.node, rep.Ack.NodeID)
	}
	// Refused by validation: typed error, the stream continues.
	require.NoError(t, st.Send(agentapi.Heartbeat{Seq: 6, State: "weird"}))
	rep := recvReply(t, st)
	require.Nil(t, rep.Ack)
	require.Equal(t, agentapi.StreamError{Status: 400, Code: "invalid_argument", Message: "state must be normal or degraded"}, *rep.Error)
	require.NoError(t, st.SendLine([]byte(""))) // blank lines are skipped
	require.NoError(t, st.Send(agentapi.Heartbeat{Seq: 7, State: "normal"}))
	require.Equal(t, int64(7), recvReply(t, st).Ack.Seq)
	f.flush()
	require.Equal(t, int64(7), f.latest())

	// Bad JSON mid-stream: typed error, then the stream ends; no state.
	require.NoError(t, st.SendLine([]byte(`{"seq":8,"state":`)))
	rep = recvReply(t, st)
	require.Nil(t, rep.Ack)
	require.Equal(t, 400, rep.Error.Status)
	require.Equal(t, "invalid_argument", rep.Error.Code)
	require.Contains(t, rep.Error.Message, "invalid JSON body")
	require.ErrorIs(t, st.Recv(&rep), io.EOF, "the stream ended")
	f.flush()
	require.Equal(t, int64(7), f.latest(), "nothing of the bad line was stored")

	// An unknown field is refused as the POST route refuses it.
	st = f.open(t)
	require.NoError(t, st.SendLine([]byte(`{"seq":9,"colour":"red"}`)))
	rep = recvReply(t, st)
	require.Equal(t, "invalid_argument", rep.Error.Code)
	require.Contains(t, rep.Error.Message, "unknown field")

	// An oversized line: 413 too_large, the stream ends.
	st = f.open(t)
	require.NoError(t, st.Send(agentapi.Heartbeat{Seq: 10, State: "normal"}))
	require.Equal(t, int64(10), recvReply(t, st).Ack.Seq)
	big := `{"seq":11,"health":{"x":"` + strings.Repeat("a", httpapi.MaxBodyBytes) + `"}}`
	sendErr := make(chan error, 1)
	go func() { sendErr <- st.SendLine([]byte(big)) }()
	rep = recvReply(t, st)
	require.Equal(t, agentapi.StreamError{Status: 413, Code: "too_large", Message: "heartbeat line exceeds 1048576 bytes"}, *rep.Error)
	require.ErrorIs(t, st.Recv(&rep), io.EOF)
	st.Close()
	<-sendErr
	f.flush()
	require.Equal(t, int64(10), f.latest(), "nothing of the oversized line was stored")

	// Wrong media type: refused before streaming, as a typed HTTP error.
	bad, err := f.c.OpenStream(context.Background(), agentapi.PathHeartbeatStream, "application/json")
	require.NoError(t, err)
	defer bad.Close()
	err = bad.Recv(&rep)
	var ae *apiclient.Error
	require.True(t, errors.As(err, &ae), "%v", err)
	require.Equal(t, http.StatusUnsupportedMediaType, ae.Status)
}

// TestHeartbeatStreamOlderAuthority: an authority without the stream route
// (an older version: the request reaches the real API handler under a path
// it does not know, so its router answers 404 not_found as an older
// router would) refuses the stream at once — the client's Expect:
// 100-continue keeps it from waiting for a body — with the typed 404 the
// agent falls back on, and POST heartbeats on the same client still work.
func TestHeartbeatStreamOlderAuthority(t *testing.T) {
	f := newStreamFixture(t, func(l *daemon.Daemon) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		// An older authority: no heartbeat stream route, and HTTP/1.1
		// only (no "h2" in ALPN, as before 2026-12-06).
		cfg := l.API.TLSConfig(nil)
		cfg.NextProtos = []string{"http/1.1"}
		h := l.API.Handler()
		srv := &http.Server{TLSConfig: cfg, ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == agentapi.PathHeartbeatStream {
				r.URL.Path = "/v1/agent/heartbeat/no-such-route"
			}
			h.ServeHTTP(w, r)
		})}
		go func() { _ = srv.Serve(tls.NewListener(ln, cfg)) }()
		t.Cleanup(func() { _ = srv.Close() })
		return ln.Addr().String()
	})
	st := f.open(t)
	done := make(chan error, 1)
	go func() { done <- st.Send(agentapi.Heartbeat{Seq: 1, State: "normal"}) }()
	var err error
	select {
	case err = <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("the stream waited for a body an older authority never reads")
	}
	var ae *apiclient.Error
	require.True(t, errors.As(err, &ae), "%v", err)
	require.Equal(t, http.StatusNotFound, ae.Status)
	var rep agentapi.HeartbeatStreamReply
	require.ErrorAs(t, st.Recv(&rep), &ae)
	require.Equal(t, http.StatusNotFound, ae.Status)
	// The fallback: a plain POST on the same client.
	var ack agentapi.HeartbeatAck
	require.NoError(t, f.c.Do(context.Background(), http.MethodPost, agentapi.PathHeartbeat, agentapi.Heartbeat{Seq: 2, State: "normal"}, &ack, nil))
	require.Equal(t, int64(2), ack.Seq)
	f.flush()
	require.Equal(t, int64(2), f.latest())
}

// TestAgentRequestsShareOneConnection: over HTTP/2 an agent's heartbeat
// stream, a snapshot long poll in flight (the long-poll client made by
// WithTimeout, as agent/runtime's) and a POST heartbeat all go over one TLS
// connection to the authority: one handshake, protocol h2. Over HTTP/1.1 the
// stream and the open long poll would each hold a connection and the POST a
// third.
func TestAgentRequestsShareOneConnection(t *testing.T) {
	f := newStreamFixture(t, nil)
	var mu sync.Mutex
	var handshakes int
	conns := map[net.Conn]string{}
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		TLSHandshakeStart: func() { mu.Lock(); handshakes++; mu.Unlock() },
		GotConn: func(info httptrace.GotConnInfo) {
			proto := ""
			if tc, ok := info.Conn.(*tls.Conn); ok {
				proto = tc.ConnectionState().NegotiatedProtocol
			}
			mu.Lock()
			conns[info.Conn] = proto
			mu.Unlock()
		},
	})
	st, err := f.c.OpenStream(ctx, agentapi.PathHeartbeatStream, agentapi.ContentTypeNDJSON)
	require.NoError(t, err)
	defer st.Close()
	require.NoError(t, st.Send(agentapi.Heartbeat{Seq: 1, State: "normal"}))
	require.Equal(t, int64(1), recvReply(t, st).Ack.Seq)
	// A long poll that waits (nothing newer than this version exists).
	poll := f.c.WithTimeout(20 * time.Second)
	polled := make(chan error, 1)
	go func() {
		var out agentapi.Snapshot
		polled <- poll.Do(ctx, http.MethodGet, agentapi.PathSnapshot+"?after_version=1000000&wait=3", nil, &out, nil)
	}()
	time.Sleep(500 * time.Millisecond) // the poll is waiting on the authority
	var ack agentapi.HeartbeatAck
	require.NoError(t, f.c.Do(ctx, http.MethodPost, agentapi.PathHeartbeat, agentapi.Heartbeat{Seq: 2, State: "normal"}, &ack, nil))
	require.Equal(t, int64(2), ack.Seq)
	require.NoError(t, st.Send(agentapi.Heartbeat{Seq: 3, State: "normal"}))
	require.Equal(t, int64(3), recvReply(t, st).Ack.Seq)
	select {
	case err := <-polled:
		var ae *apiclient.Error
		if err != nil && !(errors.As(err, &ae) && ae.Status == http.StatusNotFound) {
			t.Fatalf("long poll: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the long poll did not end")
	}
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, 1, handshakes, "one TLS handshake for the stream, the long poll and the POST")
	require.Len(t, conns, 1, "one connection")
	for _, proto := range conns {
		require.Equal(t, "h2", proto)
	}
}
