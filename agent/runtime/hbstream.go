package runtime

// Heartbeats over a stream: the membership keeps one long-lived
// POST /v1/agent/heartbeat/stream to the authority that answered last and
// sends each heartbeat as a line of it (one request's overhead per stream,
// not per heartbeat). An authority without the route (404: an older
// version) gets plain POST /v1/agent/heartbeat for noStreamRetry before the
// stream is tried again; a stream that fails (timeout, connection lost)
// is dropped and that round's heartbeat goes by POST, which fails over
// between the authorities; the next round opens a new stream.

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/rap-fabric/core/agentapi"
	"github.com/rap-fabric/core/apiclient"
)

// noStreamRetry is how long an authority that refused the stream route gets
// plain POSTs before the stream is tried again (it may have been upgraded).
const noStreamRetry = 10 * time.Minute

// hbSender sends one membership's heartbeats (heartbeat loop only).
type hbSender struct {
	stream        *apiclient.Stream
	client        *apiclient.Client
	noStreamUntil time.Time
	// streamed and posted count heartbeats acknowledged each way (tests).
	streamed, posted int
}

func (s *hbSender) close() {
	if s.stream != nil {
		s.stream.Close()
		s.stream, s.client = nil, nil
	}
}

func (s *hbSender) post(ctx context.Context, client *apiclient.Client, hb heartbeat) (heartbeatAck, error) {
	var ack heartbeatAck
	err := client.Do(ctx, http.MethodPost, pathHeartbeat, hb, &ack, nil)
	if err == nil {
		s.posted++
	}
	return ack, err
}

// send sends hb on the stream (opened when needed) within timeout, or by
// POST when the authority has no stream route or the stream failed.
func (s *hbSender) send(ctx context.Context, client *apiclient.Client, hb heartbeat, timeout time.Duration, now time.Time) (heartbeatAck, error) {
	if now.Before(s.noStreamUntil) {
		return s.post(ctx, client, hb)
	}
	if s.stream != nil && s.client != client {
		s.close() // the certificate was renewed: a new client
	}
	if s.stream == nil {
		st, err := client.OpenStream(context.Background(), agentapi.PathHeartbeatStream, agentapi.ContentTypeNDJSON)
		if err != nil {
			return s.post(ctx, client, hb)
		}
		s.stream, s.client = st, client
	}
	ack, replyErr, streamErr := s.exchange(ctx, hb, timeout)
	switch {
	case streamErr == nil && replyErr == nil:
		s.streamed++
		return ack, nil
	case replyErr != nil:
		// The authority refused this heartbeat with a typed error (invalid,
		// revoked, …): the caller judges it as a POST's answer. The stream
		// may have ended with it: start afresh next round.
		s.close()
		return ack, replyErr
	}
	s.close()
	var ae *apiclient.Error
	if errors.As(streamErr, &ae) && (ae.Status == http.StatusNotFound || ae.Status == http.StatusMethodNotAllowed || ae.Status == http.StatusUnsupportedMediaType) {
		s.noStreamUntil = now.Add(noStreamRetry)
		return s.post(ctx, client, hb)
	}
	if errors.As(streamErr, &ae) {
		return ack, streamErr // refused at the door (revoked, unauthenticated): as a POST would be
	}
	return s.post(ctx, client, hb)
}

// exchange sends hb and reads its reply: replyErr is the authority's typed
// refusal of hb, streamErr a failure of the stream itself.
func (s *hbSender) exchange(ctx context.Context, hb heartbeat, timeout time.Duration) (ack heartbeatAck, replyErr, streamErr error) {
	st := s.stream
	timer := time.AfterFunc(timeout, st.Close)
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
	return ack, nil, errors.New("runtime: empty heartbeat stream reply")
}
