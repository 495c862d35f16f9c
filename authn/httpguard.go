package authn

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"time"
)

// DefaultMaxBodyBytes is the request body limit LimitBody and DecodeRequestJSON
// use when given 0: 1 MiB, far above any admin API payload.
const DefaultMaxBodyBytes int64 = 1 << 20

// DefaultMaxJSONDepth is the nesting limit DecodeJSON uses when given 0.
const DefaultMaxJSONDepth = 32

// LimitBody wraps next so request bodies longer than max bytes (0:
// DefaultMaxBodyBytes) are refused: a declared Content-Length above max is
// answered 413 before next runs; otherwise the body is wrapped in
// http.MaxBytesReader, whose error DecodeJSON reports as ErrBodyTooLarge.
func LimitBody(max int64, next http.Handler) http.Handler {
	if max <= 0 {
		max = DefaultMaxBodyBytes
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > max {
			WriteError(w, fmt.Errorf("%w: %d bytes declared, limit %d", ErrBodyTooLarge, r.ContentLength, max))
			return
		}
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = http.MaxBytesReader(w, r.Body, max)
		}
		next.ServeHTTP(w, r)
	})
}

// DecodeOptions configures DecodeJSON.
type DecodeOptions struct {
	MaxBytes              int64 // 0: DefaultMaxBodyBytes
	MaxDepth              int   // 0: DefaultMaxJSONDepth
	DisallowUnknownFields bool  // refuse object keys v has no field for
}

// DecodeJSON reads one JSON value from r into v. It refuses, in this order:
// more than MaxBytes (ErrBodyTooLarge, also when r is an http.MaxBytesReader
// that trips), nesting deeper than MaxDepth (ErrTooDeep, checked by a linear
// scan before any decoding allocates), and anything that is not exactly one
// valid value of v's shape (ErrBadJSON).
func DecodeJSON(r io.Reader, v any, opts DecodeOptions) error {
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = DefaultMaxBodyBytes
	}
	if opts.MaxDepth <= 0 {
		opts.MaxDepth = DefaultMaxJSONDepth
	}
	data, err := io.ReadAll(io.LimitReader(r, opts.MaxBytes+1))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return fmt.Errorf("%w: limit %d bytes", ErrBodyTooLarge, mbe.Limit)
	}
	if err != nil {
		return fmt.Errorf("%w: reading body: %v", ErrBadJSON, err)
	}
	if int64(len(data)) > opts.MaxBytes {
		return fmt.Errorf("%w: limit %d bytes", ErrBodyTooLarge, opts.MaxBytes)
	}
	if d := jsonDepth(data, opts.MaxDepth); d > opts.MaxDepth {
		return fmt.Errorf("%w: limit %d", ErrTooDeep, opts.MaxDepth)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if opts.DisallowUnknownFields {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %v", ErrBadJSON, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: trailing data after the JSON value", ErrBadJSON)
	}
	return nil
}

// jsonDepth returns the maximum nesting depth of arrays and objects in data,
// stopping early once limit is exceeded. Brackets inside strings are ignored;
// malformed input is left for the decoder to reject.
func jsonDepth(data []byte, limit int) int {
	depth, maxDepth := 0, 0
	inStr, esc := false, false
	for _, c := range data {
		if inStr {
			switch {
			case esc:
				esc = false
			case c == '\\':
				esc = true
			case c == '"':
				inStr = false
			}
			continue
		}
		switch c {
		case '"':
			inStr = true
		case '{', '[':
			depth++
			if depth > maxDepth {
				maxDepth = depth
				if maxDepth > limit {
					return maxDepth
				}
			}
		case '}', ']':
			depth--
		}
	}
	return maxDepth
}

// DecodeRequestJSON checks that r declares Content-Type application/json
// (ErrUnsupportedMediaType otherwise: HTML forms cannot send it, which also
// blunts CSRF), caps the body at opts.MaxBytes with http.MaxBytesReader and
// decodes it with DecodeJSON.
func DecodeRequestJSON(w http.ResponseWriter, r *http.Request, v any, opts DecodeOptions) error {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return fmt.Errorf("%w: want application/json", ErrUnsupportedMediaType)
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = DefaultMaxBodyBytes
	}
	if r.ContentLength > opts.MaxBytes {
		return fmt.Errorf("%w: %d bytes declared, limit %d", ErrBodyTooLarge, r.ContentLength, opts.MaxBytes)
	}
	if r.Body == nil {
		return fmt.Errorf("%w: empty body", ErrBadJSON)
	}
	return DecodeJSON(http.MaxBytesReader(w, r.Body, opts.MaxBytes), v, opts)
}

// Cookie names. The __Host- prefix makes browsers insist on Secure, Path=/ and
// no Domain attribute, so a sibling subdomain cannot set or shadow them.
const (
	SessionCookieName = "__Host-rap_session"
	DeviceCookieName  = "__Host-rap_device"
)

// NewSecureCookie returns a cookie carrying a token the way this package's
// model assumes: Secure, HttpOnly, SameSite=Strict, Path=/, expiring at
// expires (zero: a browser-session cookie).
func NewSecureCookie(name, value string, expires time.Time) *http.Cookie {
	return &http.Cookie{
		Name: name, Value: value, Path: "/", Expires: expires,
		Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode,
	}
}
