package daemon_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/apiclient"
	"github.com/rap-fabric/core/internal/authtest"
)

// answerCutProxy forwards TCP to PostgreSQL. Once armed, it cuts the first
// connection whose server-to-client bytes carry the answer to a fenced
// mutation's COMMIT (the idempotency row's "UPDATE 1" followed by "COMMIT"):
// the server has committed, the client never hears it, as when the primary
// dies between its commit and its answer.
type answerCutProxy struct {
	ln     net.Listener
	target string
	armed  atomic.Bool
	cuts   atomic.Int32
}

func newAnswerCutProxy(t *testing.T, target string) *answerCutProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &answerCutProxy{ln: ln, target: target}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	return p
}

func (p *answerCutProxy) serve(c net.Conn) {
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		_ = c.Close()
		return
	}
	pipe := func(dst, src net.Conn, inspect bool) {
		defer dst.Close()
		defer src.Close()
		buf := make([]byte, 64<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				chunk := buf[:n]
				if inspect && p.armed.Load() && bytes.Contains(chunk, []byte("UPDATE 1\x00")) && bytes.Contains(chunk, []byte("COMMIT\x00")) &&
					p.armed.CompareAndSwap(true, false) {
					p.cuts.Add(1)
					return // both sides closed; the answer is dropped
				}
				if _, werr := dst.Write(chunk); werr != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}
	go pipe(s, c, false)
	pipe(c, s, true)
}

// TestCommitAnswerLostIsUnknownAndResolvedByKey: a fenced write whose COMMIT
// reached PostgreSQL but whose answer was lost is reported unknown_outcome
// (504, with the machine code), not success and not a definite failure; the
// retry with the same Idempotency-Key returns the stored response, and the
// write exists once (one row, one audit event) however often it is retried.
func TestCommitAnswerLostIsUnknownAndResolvedByKey(t *testing.T) {
	var proxies [1]*answerCutProxy
	g := authtest.NewWithDB(t, 1, func(i int, dbURL string) string {
		u, err := url.Parse(dbURL)
		require.NoError(t, err)
		proxies[i] = newAnswerCutProxy(t, u.Host)
		u.Host = proxies[i].ln.Addr().String()
		return u.String()
	})
	ctx := context.Background()
	l := g.Leader(10 * time.Second)
	c, err := apiclient.New(apiclient.Options{Servers: []string{l.APIAddr()}, Token: g.Token, CAPin: g.Pin, MaxRedirects: -1, Timeout: 15 * time.Second})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	_, err = authtest.CreateCluster(ctx, c, "before")
	require.NoError(t, err)

	body := map[string]any{"name": "Lost answer", "slug": "lost-answer"}
	key := map[string]string{"Idempotency-Key": "lost-answer-1"}
	proxies[0].armed.Store(true)
	err = c.Do(ctx, http.MethodPost, "/v1/clusters", body, nil, key)
	require.Equal(t, int32(1), proxies[0].cuts.Load(), "the COMMIT answer was cut")
	var ae *apiclient.Error
	require.True(t, errors.As(err, &ae), "a typed API error, got %v", err)
	require.Equal(t, "unknown_outcome", ae.Code)
	require.Equal(t, http.StatusGatewayTimeout, ae.Status)

	db := l.DB.Pool
	var rowID string
	require.NoError(t, db.QueryRow(ctx, `SELECT id::text FROM clusters WHERE slug = 'lost-answer'`).Scan(&rowID), "the commit took effect")

	for i := 0; i < 2; i++ {
		var out map[string]any
		require.NoError(t, c.Do(ctx, http.MethodPost, "/v1/clusters", body, &out, key), "retry %d with the same key", i)
		require.Equal(t, rowID, out["id"], "the stored response of the first attempt")
	}
	var rows, events int
	require.NoError(t, db.QueryRow(ctx, `SELECT count(*) FROM clusters WHERE slug = 'lost-answer'`).Scan(&rows))
	require.NoError(t, db.QueryRow(ctx, `SELECT count(*) FROM cluster_audit_events WHERE outcome = 'ok' AND details->>'slug' = 'lost-answer'`).Scan(&events))
	require.Equal(t, 1, rows, "applied once")
	require.Equal(t, 1, events, "audited once")

	// The same key with another request is still refused as such.
	err = c.Do(ctx, http.MethodPost, "/v1/clusters", map[string]any{"name": "Other", "slug": "other"}, nil, key)
	require.True(t, errors.As(err, &ae))
	require.Equal(t, "idempotency_key_reused", ae.Code)
}
