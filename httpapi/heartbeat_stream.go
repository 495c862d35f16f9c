package httpapi

// POST /v1/agent/heartbeat/stream: heartbeats from one agent over one
// long-lived request (agentapi.PathHeartbeatStream), so the agent pays the
// request overhead (headers, routing, middleware, certificate cache lookup
// per request, response headers) once per stream instead of once per
// heartbeat. Each line goes through what POST /v1/agent/heartbeat does: the
// certificate check (cached, AuthCacheTTL; a certificate revoked meanwhile
// ends the stream), the same decoder, limits and validation, Ingest, and the
// same typed errors, as one agentapi.HeartbeatStreamReply line per heartbeat.
// The POST route has no rate limit of its own; the stream answers one line
// at a time, so an agent cannot run ahead of its acks by more than what the
// connection buffers.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/rap-fabric/core/agentapi"
	"github.com/rap-fabric/core/authority"
)

// Stream limits.
const (
	// HeartbeatStreamIdle ends a stream that sent no line for this long.
	HeartbeatStreamIdle = 2 * time.Minute
	// HeartbeatStreamMaxAge ends a stream after this long (at a line
	// boundary); the agent opens a new one, maybe to another authority.
	HeartbeatStreamMaxAge = 15 * time.Minute
)

// heartbeatStreamRoute names the stream route (metrics).
const heartbeatStreamRoute = "agent.heartbeat.stream"

// errLineTooLong is a stream line beyond MaxBodyBytes.
var errLineTooLong = errors.New("line too long")

// Unwrap lets http.ResponseController reach the connection's writer (flush,
// deadlines, full duplex).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// wrapStream is wrap for the stream: its own media type, no request
// deadline (the handler sets read deadlines per line), the same metrics,
// headers and errors.
func (s *Server) wrapStream(name string, h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, code: 200}
		sw.Header().Set("X-Content-Type-Options", "nosniff")
		if ct := r.Header.Get("Content-Type"); ct != agentapi.ContentTypeNDJSON {
			s.writeError(sw, r, authority.Errf(codeUnsupportedMedia, "Content-Type must be %s", agentapi.ContentTypeNDJSON))
		} else if err := h(sw, r); err != nil {
			s.writeError(sw, r, err)
		}
		s.requests.WithLabelValues(name, strconv.Itoa(sw.code)).Inc()
		s.latency.WithLabelValues(name).Observe(time.Since(start).Seconds())
	})
}

// streamError is the stream form of the error writeError would answer.
func streamError(err error) *agentapi.StreamError {
	var ae *authority.Error
	if !errors.As(err, &ae) {
		ae = authority.AsError(err)
	}
	status, ok := statusOf[ae.Code]
	if !ok {
		status = http.StatusInternalServerError
	}
	var details map[string]any
	for k, v := range ae.Details {
		if len(k) > 0 && k[0] == '_' {
			continue
		}
		if details == nil {
			details = map[string]any{}
		}
		details[k] = v
	}
	return &agentapi.StreamError{Status: status, Code: string(ae.Code), Message: ae.Message, Details: details}
}

// readLine reads one line (without its newline) into buf, at most max bytes.
func readLine(br *bufio.Reader, buf *bytes.Buffer, max int) error {
	buf.Reset()
	for {
		chunk, err := br.ReadSlice('\n')
		if buf.Len()+len(chunk) > max+1 { // +1: the newline
			return errLineTooLong
		}
		buf.Write(chunk)
		switch {
		case err == nil:
			buf.Truncate(buf.Len() - 1)
			return nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && buf.Len() > 0:
			return nil // a last line without its newline
		default:
			return err
		}
	}
}

// appendAckReply appends to dst the JSON encoding/json writes for
// agentapi.HeartbeatStreamReply{Ack: ack}, without reflection (it is most
// of what the stream writes); ok false (dst returned as it came) when ack
// holds what it does not write exactly as encoding/json: a string to
// escape, or a time that encoding/json refuses.
func appendAckReply(dst []byte, ack *agentapi.HeartbeatAck) (_ []byte, ok bool) {
	if !plainJSONString(ack.ClusterID) || !plainJSONString(ack.NodeID) || !plainJSONString(ack.AuthorityID) {
		return dst, false
	}
	b := append(dst, `{"ack":{"cluster_id":"`...)
	b = append(b, ack.ClusterID...)
	b = append(b, `","node_id":"`...)
	b = append(b, ack.NodeID...)
	b = append(b, `","seq":`...)
	b = strconv.AppendInt(b, ack.Seq, 10)
	b = append(b, `,"received_at":"`...)
	b, err := ack.ReceivedAt.AppendText(b) // what Time.MarshalJSON writes between its quotes
	if err != nil {
		return dst, false
	}
	b = append(b, `","authority_id":"`...)
	b = append(b, ack.AuthorityID...)
	b = append(b, `","need_facts":`...)
	b = strconv.AppendBool(b, ack.NeedFacts)
	return append(b, "}}"...), true
}

// plainJSONString reports whether encoding/json writes s as it is between
// quotes: printable ASCII without '"', '\' and the HTML characters it
// escapes.
func plainJSONString(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c > 0x7e, c == '"', c == '\\', c == '<', c == '>', c == '&':
			return false
		}
	}
	return true
}

func (s *Server) agentHeartbeatStream(w http.ResponseWriter, r *http.Request, _ authority.NodePrincipal) error {
	rc := http.NewResponseController(w)
	_ = rc.EnableFullDuplex() // HTTP/1.1: answer lines while the body is still coming
	hb := s.a.Heartbeats()
	cert, source := r.TLS.PeerCertificates[0], sourceAddr(r)
	br := bufio.NewReaderSize(r.Body, 16<<10)
	line := bodyBuffers.Get().(*bytes.Buffer)
	defer putBuffer(line)
	var out []byte
	started := false
	// send writes out (one reply, without its newline) and flushes it.
	send := func() bool {
		if !started {
			w.Header().Set("Content-Type", agentapi.ContentTypeNDJSON)
			w.Header().Set("Cache-Control", "no-store")
			w.WriteHeader(http.StatusOK)
			started = true
		}
		out = append(out, '\n')
		if _, err := w.Write(out); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	reply := func(rep agentapi.HeartbeatStreamReply) bool {
		b, _ := json.Marshal(rep)
		out = append(out[:0], b...)
		return send()
	}
	// replyAck is reply for an ack, most replies: written without
	// encoding/json, and without moving the ack to the heap.
	replyAck := func(ack agentapi.HeartbeatAck) bool {
		var ok bool
		if out, ok = appendAckReply(out[:0], &ack); !ok {
			return reply(agentapi.HeartbeatStreamReply{Ack: new(ack)})
		}
		return send()
	}
	fail := func(err error) error {
		reply(agentapi.HeartbeatStreamReply{Error: streamError(err)})
		return nil
	}
	begin := time.Now()
	for time.Since(begin) < HeartbeatStreamMaxAge {
		_ = rc.SetReadDeadline(time.Now().Add(HeartbeatStreamIdle))
		err := readLine(br, line, MaxBodyBytes)
		if errors.Is(err, errLineTooLong) {
			return fail(authority.Errf(authority.CodeTooLarge, "heartbeat line exceeds %d bytes", MaxBodyBytes))
		}
		if err != nil {
			return nil // the agent closed the stream (or went away)
		}
		body := bytes.TrimSpace(line.Bytes())
		if len(body) == 0 {
			continue
		}
		in, err := decodeHeartbeatLine(body, !s.plainHeartbeatDecode.Load())
		if err != nil {
			return fail(err)
		}
		// The certificate, per line: a cache hit, or a database check that
		// ends the stream when the node is no longer good.
		p, ok := hb.CachedPrincipal(cert, source)
		if !ok {
			ctx, cancel := context.WithTimeout(r.Context(), RequestTimeout)
			p, err = hb.Authenticate(ctx, cert, source)
			cancel()
			if err != nil {
				return fail(err)
			}
		}
		ack, err := hb.Ingest(p, in)
		if err != nil {
			if !reply(agentapi.HeartbeatStreamReply{Error: streamError(err)}) {
				return nil
			}
			continue
		}
		if !replyAck(ack) {
			return nil
		}
	}
	return nil
}
