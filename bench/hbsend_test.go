package bench

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/rap-fabric/core/agentapi"
	"github.com/rap-fabric/core/apiclient"
)

// Heartbeat paths of a simulated agent.
const (
	hbPathPost   = "post"   // POST /v1/agent/heartbeat, one request per heartbeat
	hbPathStream = "stream" // lines of POST /v1/agent/heartbeat/stream (agent/runtime's way)
)

// hbSender sends one simulated agent's heartbeats by POST
// /v1/agent/heartbeat or, when stream is set, as lines of one long-lived
// POST /v1/agent/heartbeat/stream opened on first use, as agent/runtime's
// hbSender does: a stream that fails is dropped, that heartbeat goes by
// POST (counted in fallbacks) and the next one opens a new stream; a typed
// refusal on the stream is returned as the POST's would be.
type hbSender struct {
	c       *apiclient.Client
	stream  bool
	timeout time.Duration // per stream exchange (the client's timeout covers POSTs)
	st      *apiclient.Stream
	// fallbacks counts heartbeats sent by POST because the stream failed.
	fallbacks int
}

func newHBSender(c *apiclient.Client, path string) *hbSender {
	return &hbSender{c: c, stream: path == hbPathStream, timeout: 10 * time.Second}
}

func (s *hbSender) close() {
	if s.st != nil {
		s.st.Close()
		s.st = nil
	}
}

// send sends hb and waits for its ack.
func (s *hbSender) send(ctx context.Context, hb agentapi.Heartbeat) (agentapi.HeartbeatAck, error) {
	if s.stream {
		if s.st == nil {
			st, err := s.c.OpenStream(context.Background(), agentapi.PathHeartbeatStream, agentapi.ContentTypeNDJSON)
			if err != nil {
				return s.post(ctx, hb, true)
			}
			s.st = st
		}
		ack, replyErr, err := s.exchange(ctx, hb)
		if err == nil && replyErr == nil {
			return ack, nil
		}
		s.close()
		if replyErr != nil {
			return ack, replyErr
		}
		if ctx.Err() != nil {
			return ack, ctx.Err()
		}
		return s.post(ctx, hb, true)
	}
	return s.post(ctx, hb, false)
}

func (s *hbSender) post(ctx context.Context, hb agentapi.Heartbeat, fallback bool) (agentapi.HeartbeatAck, error) {
	if fallback {
		s.fallbacks++
	}
	var ack agentapi.HeartbeatAck
	err := s.c.Do(ctx, http.MethodPost, agentapi.PathHeartbeat, hb, &ack, nil)
	return ack, err
}

// exchange sends hb on the stream and reads its reply: replyErr is the
// authority's typed refusal of hb, err a failure of the stream itself.
func (s *hbSender) exchange(ctx context.Context, hb agentapi.Heartbeat) (ack agentapi.HeartbeatAck, replyErr, err error) {
	st := s.st
	timer := time.AfterFunc(s.timeout, st.Close)
	defer timer.Stop()
	stop := context.AfterFunc(ctx, st.Close)
	defer stop()
	if err := st.Send(hb); err != nil {
		return ack, nil, err
	}
	var rep agentapi.HeartbeatStreamReply
	if err := st.Recv(&rep); err != nil {
		return ack, nil, err
	}
	switch {
	case rep.Error != nil:
		e := rep.Error
		return ack, &apiclient.Error{Status: e.Status, Code: e.Code, Message: e.Message, Details: e.Details}, nil
	case rep.Ack != nil:
		return *rep.Ack, nil, nil
	}
	return ack, nil, errors.New("bench: empty heartbeat stream reply")
}
