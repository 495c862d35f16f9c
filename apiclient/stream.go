package apiclient

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
)

// Stream is one long-lived request to one authority: values written with
// Send go out as lines of the request body, answers are read with Recv as
// lines of the response body, while both are open (full duplex over
// HTTP/1.1). The request carries Expect: 100-continue, so an authority that
// does not serve the path answers at once (e.g. 404) without waiting for the
// body: Send and Recv then return that answer as *Error.
type Stream struct {
	addr   string
	pw     *io.PipeWriter
	cancel context.CancelFunc

	once sync.Once
	done chan struct{}
	resp *http.Response
	err  error
	rd   *bufio.Reader
}

// OpenStream starts a stream at path (POST, the body's Content-Type
// contentType) to the authority that answered last (or the first one). It
// does not wait for the authority: the first Send or Recv reports a refusal.
// ctx bounds the whole stream.
func (c *Client) OpenStream(ctx context.Context, path, contentType string) (*Stream, error) {
	addr := c.order()[0]
	sctx, cancel := context.WithCancel(ctx)
	pr, pw := io.Pipe()
	req, err := http.NewRequestWithContext(sctx, http.MethodPost, "https://"+strings.TrimPrefix(addr, "https://")+path, pr)
	if err != nil {
		cancel()
		return nil, err
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Expect", "100-continue")
	st := &Stream{addr: addr, pw: pw, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(st.done)
		resp, err := c.sc.Do(req)
		if err != nil {
			st.err = err
			_ = pr.CloseWithError(err)
			return
		}
		if resp.StatusCode != http.StatusOK {
			data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
			var eb struct {
				Error Error `json:"error"`
			}
			if json.Unmarshal(data, &eb) != nil || eb.Error.Code == "" {
				st.err = &Error{Status: resp.StatusCode, Code: "http_" + fmt.Sprint(resp.StatusCode), Message: strings.TrimSpace(string(data))}
			} else {
				eb.Error.Status = resp.StatusCode
				st.err = &eb.Error
			}
			_ = pr.CloseWithError(st.err)
			return
		}
		st.resp = resp
		st.rd = bufio.NewReaderSize(resp.Body, 16<<10)
	}()
	return st, nil
}

// Addr is the authority the stream goes to.
func (s *Stream) Addr() string { return s.addr }

// Send writes v as one JSON line. When the authority refused the stream,
// the refusal is returned (*Error).
func (s *Stream) Send(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return s.SendLine(b)
}

// SendLine writes line (one JSON value, no newline) as it is.
func (s *Stream) SendLine(line []byte) error {
	if _, err := s.pw.Write(append(line[:len(line):len(line)], '\n')); err != nil {
		// The transport stopped reading the body: the answer says why.
		<-s.done
		if s.err != nil {
			return s.err
		}
		return err
	}
	return nil
}

// Recv reads the next answer line into v. io.EOF means the authority ended
// the stream.
func (s *Stream) Recv(v any) error {
	<-s.done
	if s.err != nil {
		return s.err
	}
	line, err := s.rd.ReadBytes('\n')
	if err != nil {
		if errors.Is(err, io.EOF) && len(line) > 0 {
			return json.Unmarshal(line, v)
		}
		return err
	}
	return json.Unmarshal(line, v)
}

// Close ends the stream (the request body ends, then the request).
func (s *Stream) Close() {
	s.once.Do(func() {
		_ = s.pw.Close()
		s.cancel()
		go func() {
			<-s.done
			if s.resp != nil {
				s.resp.Body.Close()
			}
		}()
	})
}
